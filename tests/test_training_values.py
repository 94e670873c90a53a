"""Training and evaluation numbers recomputed from the checkpoints and the raw store arrays.

Replaces the by-construction checks of ``test_training.py`` (``best_l1 == min(history)``, ``0 < mrr <= 1``):
here the validation L1 of the history, the selection of ``best_l1.pt`` and the evaluation's MRR and L1 are
worked out with numpy from the checkpointed models' predictions on presets and embeddings read with zarr.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import zarr

from synthproxy.config import validate_config
from synthproxy.pipeline.dataset import DatasetPlan, finalize_split, init_store, render_shard
from synthproxy.proxy.evaluate import evaluate_checkpoint
from synthproxy.proxy.train import load_checkpoint, train_encoder

from .conftest import REPO, small_config

KEY = "mel128_avg"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Real Dexed renders: train (32 rows) and val (16 rows), mel128 avg embeddings."""
    base = small_config()
    cfg = {k: copy.deepcopy(base[k]) for k in ("seed", "render")}
    cfg["synths"] = {"dexed": {"spec": str(REPO / base["synths"]["dexed"]["spec"])}}
    cfg["representations"] = [{"name": "mel128", "reduction": "avg"}]
    cfg["dataset"] = {"chunk_rows": 8, "batch_size": 8, "splits": {"train": {"size": 32, "shard_size": 32},
                                                                   "val": {"size": 16, "shard_size": 16}}}
    cfg = validate_config(cfg)
    out = tmp_path_factory.mktemp("stores")
    paths = {}
    for split in ("train", "val"):
        plan = DatasetPlan(cfg, "dexed", split)
        path = out / f"{split}.zarr"
        init_store(plan, path, out / f"{split}_init.json")
        render_shard(plan, path, 0, out / f"{split}_0.json")
        finalize_split(plan, path, [out / f"{split}_0.json"], out / f"{split}_stats.json")
        paths[split] = path
    return paths


@pytest.fixture(scope="module")
def run(stores, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = train_encoder({"train_store": stores["train"], "val_store": stores["val"], "embedding": KEY,
                            "arch": "hn_oh", "out_dir": out, "encoder": {"d_hidden": 32, "num_layers": 2},
                            "epochs": 4, "batch_size": 8, "lr": 3e-3, "val_k": 4, "seed": 5, "threads": 1})
    return result, out


def _raw(store):
    root = zarr.open_group(str(store), mode="r")
    return np.asarray(root["presets"][:]), np.asarray(root["embeddings"][KEY][:], dtype=np.float64)


def _predict(path, presets: np.ndarray) -> np.ndarray:
    model = load_checkpoint(path).model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(presets)).double().numpy()


def test_history_and_best_checkpoint_match_a_recomputation(run, stores) -> None:
    result, out = run
    presets, target = _raw(stores["val"])
    l1 = {name: float(np.abs(_predict(out / f"{name}.pt", presets) - target).mean()) for name in ("last", "best_l1")}
    end_rows = [h for h in result.history if float(h["epoch"]).is_integer()]
    assert len(end_rows) == 4
    # the last row of the history is the validation of the weights saved in last.pt
    assert end_rows[-1]["val_l1"] == pytest.approx(l1["last"], rel=1e-5)
    # best_l1.pt holds the weights of the row with the lowest validation L1, and that value is reported
    assert l1["best_l1"] == pytest.approx(min(h["val_l1"] for h in result.history), rel=1e-5)
    assert result.best_l1 == pytest.approx(l1["best_l1"], rel=1e-5)
    assert l1["best_l1"] <= l1["last"] + 1e-9


def _mrr_by_hand(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Pool MRR (every preset a query, all presets candidates, L1 distance), both directions; no ties here."""
    d = np.abs(target[:, None, :] - pred[None, :, :]).sum(-1)  # d[q, i] = |target_q - pred_i|_1
    match = np.diag(d)
    a2p = 1.0 / (1 + (d < match[:, None]).sum(1))  # query: audio q; candidates: every prediction
    p2a = 1.0 / (1 + (d.transpose() < match[:, None]).sum(1))  # query: prediction q; candidates: every audio embedding
    assert len(np.unique(d)) == d.size  # distinct distances: ranks need no tie rule
    return float(a2p.mean()), float(p2a.mean())


def test_evaluation_scores_match_a_recomputation(run, stores) -> None:
    _, out = run
    presets, target = _raw(stores["val"])
    pred = _predict(out / "best_mrr.pt", presets)
    a2p, p2a = _mrr_by_hand(pred, target)
    scores = evaluate_checkpoint(out / "best_mrr.pt", stores["val"], n_runs=3, k=4096, seed=0)  # k > 16: one pool
    assert scores["mrr_audio_to_preset_mean"] == pytest.approx(a2p, rel=1e-9)
    assert scores["mrr_preset_to_audio_mean"] == pytest.approx(p2a, rel=1e-9)
    assert scores["l1_mean"] == pytest.approx(float(np.abs(pred - target).mean()), rel=1e-5)
    assert scores["mrr_audio_to_preset_std"] == pytest.approx(0.0, abs=1e-12) and scores["k"] == 16
    assert 1 / 16 < a2p < 1  # the encoder learnt something, but not everything: the ranks are informative
