"""Encoder training, evaluation and HPO on a small real Dexed store (48 train + 16 val presets)."""

from __future__ import annotations

import copy
import json
import shutil
import threading

import numpy as np
import pytest
import torch
import zarr

from synthproxy.cli import main
from synthproxy.config import validate_config
from synthproxy.data.batches import StoreBatches
from synthproxy.errors import ConfigError, SpecError, StoreError
from synthproxy.pipeline.dataset import DatasetPlan, finalize_split, init_store, render_shard
from synthproxy.proxy.evaluate import evaluate_checkpoint
from synthproxy.proxy.hpo import SAMPLER_ATTR, make_sampler, run_hpo
from synthproxy.proxy.train import TrainSettings, load_checkpoint, train_encoder
from synthproxy.training.loop import TrainingError
from synthproxy.training.schedule import CosineRestartSchedule

from .conftest import REPO, small_config

KEY = "mel128_avg"
TINY = {"d_hidden": 32, "num_layers": 2}  # a small HN-OH: the tests check mechanics, not accuracy


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Real Dexed renders: train (48 rows) and val (16 rows), 8-row chunks, mel128 avg embeddings."""
    base = small_config()
    cfg = {k: copy.deepcopy(base[k]) for k in ("seed", "render")}  # other sections belong to other steps
    cfg["synths"] = {"dexed": {"spec": str(REPO / base["synths"]["dexed"]["spec"])}}
    cfg["representations"] = [{"name": "mel128", "reduction": "avg"}]
    cfg["dataset"] = {"chunk_rows": 8, "batch_size": 8, "splits": {"train": {"size": 48, "shard_size": 24},
                                                                   "val": {"size": 16, "shard_size": 16}}}
    cfg = validate_config(cfg)
    out = tmp_path_factory.mktemp("stores")
    paths = {}
    for split in ("train", "val"):
        plan = DatasetPlan(cfg, "dexed", split)
        store = out / f"{split}.zarr"
        init_store(plan, store, out / f"{split}_init.json")
        markers = []
        for shard in range(plan.n_shards):
            markers.append(out / f"{split}_{shard}.json")
            render_shard(plan, store, shard, markers[-1])
        finalize_split(plan, store, markers, out / f"{split}_stats.json")
        paths[split] = store
    return paths


def _settings(stores, out_dir, **kw) -> dict:
    return {"train_store": stores["train"], "val_store": stores["val"], "embedding": KEY, "arch": "hn_oh",
            "out_dir": out_dir, "encoder": dict(TINY), "epochs": 3, "batch_size": 16, "lr": 3e-3, "val_k": 4,
            "seed": 11, "threads": 1} | kw


def _copy_store(src, dst):
    shutil.copytree(src, dst)
    return zarr.open_group(str(dst), mode="r+")


def _weights(path):
    return torch.load(path, weights_only=False)["model"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- data loader -------------------------------------------------------------------------------------
def _epoch_rows(loader, epoch, presets):
    """Store row index of every yielded preset (rows are unique: continuous params make them distinct)."""
    index = {p.tobytes(): i for i, p in enumerate(presets)}
    rows = []
    for x, e in loader.epoch(epoch):
        assert x.dtype == torch.float32 and e.dtype == torch.float32
        rows += [index[r.numpy().tobytes()] for r in x]
    return rows


@pytest.mark.parametrize("mode", ["memory", "stream", "stream-prefetch"])
def test_loader_covers_every_row_once_deterministically(stores, mode):
    presets = np.asarray(zarr.open_group(str(stores["train"]))["presets"][:])
    kw = {"memory": {}, "stream": {"in_memory_bytes": 0, "buffer_rows": 16, "prefetch": 0},
          "stream-prefetch": {"in_memory_bytes": 0, "buffer_rows": 16, "prefetch": 2}}[mode]
    loader = StoreBatches(stores["train"], KEY, batch_size=10, seed=3, **kw)
    assert loader.in_memory is (mode == "memory") and len(loader) == 5
    if mode != "memory":
        assert loader.chunks_per_block == 2  # 16-row buffer of 8-row chunks
    e0, e0_again, e1 = (_epoch_rows(loader, e, presets) for e in (0, 0, 1))
    assert sorted(e0) == list(range(48)) and sorted(e1) == list(range(48))
    assert e0 == e0_again and e0 != e1 and e0 != sorted(e0)
    in_order = StoreBatches(stores["train"], KEY, batch_size=10, shuffle=False, **kw)
    assert _epoch_rows(in_order, 0, presets) == list(range(48))
    stream = StoreBatches(stores["train"], KEY, batch_size=10, seed=3, in_memory_bytes=0, buffer_rows=16, prefetch=0)
    if mode == "stream-prefetch":  # the background thread yields exactly the same batches
        assert e0 == _epoch_rows(stream, 0, presets)


def test_loader_drop_last_and_early_close_stops_prefetch_thread(stores):
    loader = StoreBatches(stores["train"], KEY, batch_size=20, drop_last=True, prefetch=1, in_memory_bytes=0,
                          buffer_rows=8)
    assert len(loader) == 2 and [len(x) for x, _ in loader.epoch(0)] == [20, 20]
    it = loader.epoch(1)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "synthproxy-prefetch" and t.is_alive()]


def test_missing_embedding_and_incomplete_store(stores, tmp_path):
    with pytest.raises(StoreError, match=r"has no embeddings 'mfcc40_avg'; it holds \['mel128_avg'\]"):
        StoreBatches(stores["train"], "mfcc40_avg", 8)
    with pytest.raises(StoreError, match=r"has no embeddings 'nope_avg'; it holds \['mel128_avg'\]"):
        train_encoder(_settings(stores, tmp_path / "run", embedding="nope_avg"))
    root = _copy_store(stores["train"], tmp_path / "incomplete.zarr")
    root.attrs["complete"] = False
    with pytest.raises(StoreError, match="incomplete"):
        StoreBatches(tmp_path / "incomplete.zarr", KEY, 8)


# ---- schedule ----------------------------------------------------------------------------------------
def test_cosine_schedule_restarts_after_a_third():
    s = CosineRestartSchedule(1e-3, 2e-6, total_steps=300)  # e.g. 30 epochs of 10 steps
    assert s.restart_step == 100  # epoch 10
    assert s.lr_at(0) == pytest.approx(1e-3) and s.lr_at(100) == pytest.approx(1e-3)
    assert s.lr_at(50) == pytest.approx((1e-3 + 2e-6) / 2)
    assert s.lr_at(99) < 1e-5 and s.lr_at(299) < 1e-5 and min(map(s.lr_at, range(300))) >= 2e-6
    flat = CosineRestartSchedule(1e-3, 1e-5, total_steps=100, restart_fraction=None, constant_fraction=0.75)
    assert flat.lr_at(74) == 1e-3 and flat.lr_at(75) == pytest.approx(1e-3) and flat.lr_at(99) < 1e-4


# ---- training ----------------------------------------------------------------------------------------
def test_training_writes_history_and_checkpoints_and_is_deterministic(stores, tmp_path):
    a = train_encoder(_settings(stores, tmp_path / "a"))
    b = train_encoder(_settings(stores, tmp_path / "b"))
    assert _same(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"))
    assert [h["train_l1"] for h in a.history] == [h["train_l1"] for h in b.history]
    assert {p.name for p in (tmp_path / "a").glob("*.pt")} == {"last.pt", "best_mrr.pt", "best_l1.pt"}
    assert not list((tmp_path / "a").glob(".*tmp*"))
    lines = (tmp_path / "a" / "history.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_l1,val_l1,val_mrr,lr,seconds,data_wait_seconds") and len(lines) == 4
    assert a.history[0]["train_l1"] > a.history[-1]["train_l1"]  # it learns something
    assert all(0 < h["val_mrr"] <= 1 and 0 <= h["data_wait_share"] < 1 for h in a.history)
    ckpt = load_checkpoint(tmp_path / "a" / "best_l1.pt")
    attrs = zarr.open_group(str(stores["train"])).attrs
    assert ckpt.meta["spec_hash"] == attrs["spec_hash"] and ckpt.meta["param_names"] == attrs["param_names"]
    assert ckpt.meta["representation"] == attrs["representations"][KEY] and ckpt.meta["epoch"] == a.best_l1_epoch
    assert ckpt.meta["hyperparameters"]["lr"] == 3e-3 and ckpt.meta["arch"] == "hn_oh"
    # The checkpoint's model reproduces the validation L1 it was selected for.
    val = StoreBatches(stores["val"], KEY, 16, shuffle=False)
    x, y = val.read_all()
    with torch.no_grad():
        assert float((ckpt.model(x) - y).abs().mean()) == pytest.approx(a.best_l1, rel=1e-5)
    # A different seed gives different weights.
    c = train_encoder(_settings(stores, tmp_path / "c", seed=12, epochs=1))
    assert not _same(_weights(tmp_path / "c" / "last.pt"), _weights(tmp_path / "a" / "last.pt"))
    assert c.epochs_done == 1


def test_interrupted_run_resumes_to_identical_weights(stores, tmp_path):
    full = train_encoder(_settings(stores, tmp_path / "full"))

    def crash(epoch, batch, step, loss):
        if epoch == 1 and batch == 1:
            raise KeyboardInterrupt  # killed mid-epoch 2, after last.pt of epoch 1 was written

    with pytest.raises(KeyboardInterrupt):
        train_encoder(_settings(stores, tmp_path / "cut"), on_step=crash)
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["epoch"] == 1
    resumed = train_encoder(_settings(stores, tmp_path / "cut"))
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_done == 3
    assert _same(_weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "cut" / "last.pt"))
    assert [h["val_l1"] for h in full.history] == [h["val_l1"] for h in resumed.history]
    # Time-limited jobs: one epoch per invocation gives the same result too.
    for _ in range(3):
        train_encoder(_settings(stores, tmp_path / "steps", max_epochs_per_run=1))
    assert _same(_weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "steps" / "last.pt"))
    again = train_encoder(_settings(stores, tmp_path / "steps"))  # already finished: nothing to do
    assert again.resumed_from_epoch == 3 and again.epochs_done == 3
    with pytest.raises(ConfigError, match=r"cannot resume .*lr: checkpoint 0.003 vs now 0.001"):
        train_encoder(_settings(stores, tmp_path / "cut", lr=1e-3))


KILLER = """
import os, signal, sys
from pathlib import Path
from synthproxy.proxy.train import train_encoder
raw = __import__("json").loads(sys.argv[1])
settings = {k: (Path(v) if k.endswith(("_store", "_dir")) else v) for k, v in raw.items()}

def kill(epoch, batch, step, loss):
    if epoch == 1 and batch == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 mid-epoch 2: no handler, no cleanup

train_encoder(settings, on_step=kill)
"""


def test_kill_9_during_training_then_rerun_equals_an_uninterrupted_run(stores, tmp_path):
    """SIGKILL mid-epoch (a real kill -9 of the process), then a rerun: the same checkpoints and history as a run
    never interrupted, no temporary file left; a finished run whose history.csv was deleted gets it back."""
    import subprocess
    import sys
    from pathlib import Path

    full = train_encoder(_settings(stores, tmp_path / "full"))
    cut = _settings(stores, tmp_path / "cut")
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps({k: str(v) if isinstance(v, Path) else v
                                                                     for k, v in cut.items()})],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=False)["epoch"] == 1
    resumed = train_encoder(cut)
    assert resumed.resumed_from_epoch == 1
    for name in ("last.pt", "best_l1.pt", "best_mrr.pt"):
        assert _same(_weights(tmp_path / "full" / name), _weights(tmp_path / "cut" / name)), name
    columns = ["epoch", "train_l1", "val_l1", "val_mrr", "lr", "steps"]
    assert [[h[c] for c in columns] for h in full.history] == [[h[c] for c in columns] for h in resumed.history]
    assert not [p for p in (tmp_path / "cut").iterdir() if "tmp" in p.name]
    (tmp_path / "cut" / "history.csv").unlink()  # what Snakemake does to a rerun job's outputs
    train_encoder(cut)
    lines = (tmp_path / "cut" / "history.csv").read_text().splitlines()
    assert len(lines) == 1 + len(full.history)


@pytest.mark.parametrize("arch", ["mlp_oh", "hn_oh", "hn_pt", "hn_ptgru", "tfm"])
def test_training_is_identical_with_one_and_two_threads(stores, tmp_path, arch):
    """Bit-identical checkpoints whatever the thread count (the reason is in training/runtime.py)."""
    one = train_encoder(_settings(stores, tmp_path / "one", arch=arch, threads=1, encoder={}, epochs=2))
    two = train_encoder(_settings(stores, tmp_path / "two", arch=arch, threads=2, encoder={}, epochs=2))
    assert _same(_weights(tmp_path / "one" / "last.pt"), _weights(tmp_path / "two" / "last.pt"))
    assert [h["val_l1"] for h in one.history] == [h["val_l1"] for h in two.history]


def test_stale_checkpoint_is_archived_when_asked(stores, tmp_path):
    """The workflow reruns a training when its settings change: the old run is moved aside, not resumed."""
    out = tmp_path / "run"
    train_encoder(_settings(stores, out, epochs=1))
    old_last = (out / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="cannot resume"):
        train_encoder(_settings(stores, out, epochs=2))
    assert (out / "last.pt").read_bytes() == old_last  # refusing changed nothing
    fresh = train_encoder(_settings(stores, out, epochs=2, on_stale_checkpoint="archive"))
    assert fresh.resumed_from_epoch == 0 and fresh.epochs_done == 2
    (stale,) = (out / "stale").iterdir()
    assert (stale / "last.pt").read_bytes() == old_last
    assert {p.name for p in stale.iterdir()} >= {"last.pt", "best_mrr.pt", "best_l1.pt", "history.csv"}
    again = train_encoder(_settings(stores, out, epochs=2, on_stale_checkpoint="archive"))
    assert again.resumed_from_epoch == 2  # same settings: resumed as usual
    with pytest.raises(ConfigError, match="on_stale_checkpoint"):
        train_encoder(_settings(stores, out, on_stale_checkpoint="delete"))


def test_checkpoint_mismatch_messages(stores, tmp_path):
    train_encoder(_settings(stores, tmp_path / "run", epochs=1))
    path = tmp_path / "run" / "last.pt"
    have = zarr.open_group(str(stores["train"])).attrs["spec_hash"]
    with pytest.raises(SpecError, match=rf"hash {have}, expected spec hash 0123456789abcdef"):
        load_checkpoint(path, expect_spec_hash="0123456789abcdef")
    with pytest.raises(ConfigError, match=r"predicts embedding 'mel128_avg', expected 'mn04_avg'"):
        load_checkpoint(path, expect_embedding="mn04_avg")
    # Stores whose spec or representation differ from the checkpoint's are refused by the evaluation.
    root = _copy_store(stores["val"], tmp_path / "other_spec.zarr")
    root.attrs["spec_hash"] = "ffffffffffffffff"
    with pytest.raises(SpecError, match=rf"hash {have}, but data store .* holds spec .* with hash ffffffffffffffff"):
        evaluate_checkpoint(path, tmp_path / "other_spec.zarr", n_runs=1)
    root = _copy_store(stores["val"], tmp_path / "other_rep.zarr")
    reps = dict(root.attrs["representations"])
    reps[KEY] = reps[KEY] | {"n_mels": 64}
    root.attrs["representations"] = reps
    with pytest.raises(ConfigError, match=r"computed with settings .*'n_mels': 64.* on settings .*'n_mels': 128"):
        evaluate_checkpoint(path, tmp_path / "other_rep.zarr", n_runs=1)


def test_evaluate_checkpoint(stores, tmp_path):
    train_encoder(_settings(stores, tmp_path / "run", epochs=1))
    scores = evaluate_checkpoint(tmp_path / "run" / "best_mrr.pt", stores["val"], n_runs=3, k=4096, seed=0)
    assert scores["n_presets"] == 16 and scores["k"] == 16 and scores["n_runs"] == 3
    assert scores["mrr_std"] == pytest.approx(0, abs=1e-12)  # all runs identical
    small = evaluate_checkpoint(tmp_path / "run" / "best_mrr.pt", stores["val"], n_runs=4, k=8, seed=0)
    assert small["k"] == 8 and small["l1_mean"] > 0
    assert {"mrr_mean", "mrr_std", "l1_mean", "l1_std", "n_presets", "k"} <= set(scores)


def test_non_finite_loss_stops_with_location_and_saves_nothing(stores, tmp_path):
    root = _copy_store(stores["train"], tmp_path / "nan.zarr")
    emb = root["embeddings"][KEY]
    row = np.asarray(emb[21])
    row[5] = np.nan
    emb[21] = row
    with pytest.raises(TrainingError, match=r"non-finite training loss \(nan\) at epoch 1, step \d+ \(global\), "
                                            r"batch index \d of the epoch .*target embeddings contain 1 non-finite"):
        train_encoder(_settings(stores, tmp_path / "run", train_store=tmp_path / "nan.zarr"))
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob(".*tmp*"))


def test_settings_errors(stores, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown preset encoder architecture 'resnet'; valid architectures: mlp_oh"):
        train_encoder(_settings(stores, tmp_path, arch="resnet"))
    with pytest.raises(ConfigError, match=r"unknown training setting\(s\) \['learning_rate'\]"):
        TrainSettings.from_dict(_settings(stores, tmp_path, learning_rate=1.0))
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        train_encoder(_settings(stores, tmp_path, encoder={"width": 3}))
    with pytest.raises(ConfigError, match=r"fewer than val_k=32"):
        train_encoder(_settings(stores, tmp_path, val_k=32))
    assert TrainSettings.from_dict(_settings(stores, tmp_path, arch="tfm", batch_size=None)).batch_size == 256


# ---- HPO ---------------------------------------------------------------------------------------------
def test_hpo_qmc_then_tpe_resumes_without_redoing_trials(stores, tmp_path):
    hpo = {"train_store": stores["train"], "val_store": stores["val"], "embedding": KEY, "arch": "hn_oh",
           "out_dir": tmp_path / "hpo", "n_startup_trials": 2, "seed": 5,
           "train": {"batch_size": 16, "val_k": 4, "encoder": dict(TINY), "threads": 1}}
    first = run_hpo(hpo | {"n_trials": 2})  # e.g. a job that was stopped after two trials
    assert first.space == "opt" and first.n_new == 2  # Dexed: optimizer-only space, as in the paper
    second = run_hpo(hpo | {"n_trials": 4})
    assert second.n_new == 2 and second.n_finished == 4
    third = run_hpo(hpo | {"n_trials": 4})
    assert third.n_new == 0 and third.n_finished == 4
    assert third.samplers == {0: "qmc", 1: "qmc", 2: "tpe", 3: "tpe"}
    assert set(third.best_params) == {"lr", "min_lr_factor", "beta1", "beta2", "eps"}
    assert third.best_train["min_lr"] == pytest.approx(third.best_params["lr"] * third.best_params["min_lr_factor"])
    assert 0 < third.best_value <= 1
    lines = third.trials_csv.read_text().splitlines()
    assert len(lines) == 5 and f"user_attrs_{SAMPLER_ATTR}" in lines[0]
    assert json.loads((tmp_path / "hpo" / "best_params.json").read_text())["n_finished"] == 4
    # The QMC phase samples the whole known space with scrambled Sobol; TPE is multivariate.
    import optuna

    sampler = make_sampler({}, 2, 0)
    assert isinstance(sampler.qmc, optuna.samplers.QMCSampler) and isinstance(sampler.tpe, optuna.samplers.TPESampler)
    assert sampler.qmc._qmc_type == "sobol" and sampler.qmc._scramble is True
    study = optuna.load_study(study_name=third.study_name, storage=third.storage)
    assert [t.params.keys() == third.best_params.keys() for t in study.trials] == [True] * 4


def test_hpo_architecture_space(stores, tmp_path):
    result = run_hpo({"train_store": stores["train"], "val_store": stores["val"], "embedding": KEY,
                      "arch": "mlp_oh", "out_dir": tmp_path, "space": "all", "n_trials": 1, "n_startup_trials": 1,
                      "train": {"batch_size": 16, "val_k": 4, "threads": 1}})
    assert {"num_layers", "d_hidden"} <= set(result.best_params) and result.samplers == {0: "qmc"}
    assert set(result.best_encoder) == {"num_layers", "d_hidden"} and result.best_encoder["d_hidden"] % 512 == 0


# ---- CLI ---------------------------------------------------------------------------------------------
def test_cli_train_and_evaluate(stores, tmp_path, capsys):
    common = ["--train-store", str(stores["train"]), "--val-store", str(stores["val"]), "--embedding", KEY]
    extra = json.dumps({"encoder": TINY, "val_k": 4, "threads": 1})
    assert main(["train-encoder", *common, "--arch", "hn_oh", "--out-dir", str(tmp_path / "run"), "--epochs", "1",
                 "--batch-size", "16", "--settings-json", extra, "--summary", str(tmp_path / "summary.json")]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["epochs_done"] == 1
    assert main(["evaluate-synthetic", "--checkpoint", str(tmp_path / "run" / "best_l1.pt"), "--store",
                 str(stores["val"]), "--out", str(tmp_path / "scores.json"), "--n-runs", "2", "--k", "8"]) == 0
    assert json.loads((tmp_path / "scores.json").read_text())["k"] == 8
    assert main(["train-encoder", *common, "--arch", "hn_oh", "--out-dir", str(tmp_path / "x"), "--embedding",
                 "nope_avg"]) == 2
    assert "has no embeddings 'nope_avg'; it holds ['mel128_avg']" in capsys.readouterr().err
