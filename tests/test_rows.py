"""Bounded-memory row access (synthproxy.data.rows) and the DDSP splits built on it: streamed reads give the
same rows as resident ones, epochs read each chunk once, and the paper-2 estimator trains from a streamed split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from synthproxy.data.rows import ChunkedRows, epoch_order, resident_bytes
from synthproxy.errors import StoreError

from .conftest import small_config


def _arrays(tmp_path, n=22, chunk=4):
    root = zarr.open_group(str(tmp_path / "rows.zarr"), mode="w")
    a = root.create_array("a", shape=(n, 3), chunks=(chunk, 3), dtype="float32")
    a[:] = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    b = root.create_array("b", shape=(n,), chunks=(chunk,), dtype="int64")
    b[:] = 100 + np.arange(n)
    return {"a": a, "b": b}


@pytest.mark.parametrize("resident", [True, False])
def test_take_returns_the_selected_rows_in_the_asked_order(tmp_path, resident):
    arrays = _arrays(tmp_path)
    rows = np.array([0, 1, 5, 6, 7, 12, 13, 20, 21])
    src = ChunkedRows(arrays, rows, resident_limit=10**9 if resident else 0, cache_chunks=2)
    assert src.resident is resident and len(src) == len(rows)
    idx = np.array([8, 0, 3, 3, 5, 2])
    got = src.take(idx)
    assert got["b"].tolist() == (100 + rows[idx]).tolist()
    assert np.array_equal(got["a"], np.arange(22 * 3, dtype=np.float32).reshape(22, 3)[rows[idx]])
    if not resident:
        assert len(src._cache) <= 2  # bounded: never more than cache_chunks chunks held


def test_streamed_epoch_reads_each_chunk_once_and_is_seeded(tmp_path):
    src = ChunkedRows(_arrays(tmp_path, n=40, chunk=4), resident_limit=0, cache_chunks=4)
    order = epoch_order(src, torch.Generator().manual_seed(7))
    assert sorted(order.tolist()) == list(range(40))
    assert torch.equal(order, epoch_order(src, torch.Generator().manual_seed(7)))
    assert not torch.equal(order, epoch_order(src, torch.Generator().manual_seed(8)))
    chunks = (order // 4).tolist()
    # blocks of 3 chunks (12 rows): each block's rows come from exactly 3 chunks, none seen before
    seen: set[int] = set()
    for b in range(0, 40, 12):
        block = set(chunks[b:b + 12])
        assert len(block) == min(3, (40 - b) // 4) and not (block & seen)
        seen |= block
    # the reads: with an LRU of one block + 1 chunk, taking the epoch in batches loads every chunk exactly once
    loads = []
    original = src._chunk

    def counting(chunk):
        if chunk not in src._cache:
            loads.append(chunk)
        return original(chunk)

    src._chunk = counting
    for b in range(0, 40, 5):
        src.take(order[b:b + 5].numpy())
    assert sorted(loads) == list(range(10))


def test_resident_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("SYNTHPROXY_RESIDENT_MB", "1.5")
    assert resident_bytes() == int(1.5 * 2**20)
    monkeypatch.setenv("SYNTHPROXY_RESIDENT_MB", "lots")
    with pytest.raises(StoreError, match="SYNTHPROXY_RESIDENT_MB"):
        resident_bytes()


@pytest.fixture(scope="module")
def ddsp_plan_and_data(tmp_path_factory):
    import yaml

    from synthproxy.config import validate_config
    from synthproxy.matching.ddsp_data import DDSPPlan, build_ddsp_split

    from .conftest import REPO

    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    ddsp = dict(tiny["ddsp"], variants=["fx_env"], size=40, chunk_rows=8)
    plan = DDSPPlan(validate_config(small_config(ddsp=ddsp)), "fx_env")
    out = tmp_path_factory.mktemp("ddsp")
    for split in ("train", "val", "test"):
        build_ddsp_split(plan, split, out / f"{split}.zarr")
    return plan, out


def test_streamed_ddsp_split_gives_the_resident_rows(ddsp_plan_and_data):
    from synthproxy.matching.ddsp_data import load_ddsp_split

    plan, data = ddsp_plan_and_data
    resident = load_ddsp_split(plan, data / "train.zarr")
    streamed = load_ddsp_split(plan, data / "train.zarr", resident=0)
    assert resident.resident is not None and streamed.resident is None and len(resident) == len(streamed) == 32
    idx = torch.tensor([31, 0, 9, 17, 8])
    a, b = resident.batch(idx), streamed.batch(idx)
    for name in ("static", "dynamic", "audio", "embedding"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or torch.equal(x, y), name
    torch.testing.assert_close(a.features, b.features, rtol=0, atol=1e-5)


def test_ddsp_estimator_trains_from_a_streamed_split(ddsp_plan_and_data, tmp_path, monkeypatch):
    """The same training, its data forced to stream: it runs, is seeded (two runs agree bit for bit) and sees
    every training row each epoch."""
    from synthproxy.matching import ddsp_train
    from synthproxy.matching.ddsp_data import ddsp_strategies

    plan, data = ddsp_plan_and_data
    monkeypatch.setenv("SYNTHPROXY_RESIDENT_MB", "0")
    strategy = ddsp_strategies(plan.d)["synth"]
    settings = ddsp_train.DDSPTrainSettings.from_dict(
        dict(plan.d["train"], epochs=1, batch_size=8, validate_every=1, val_size=8, estimator="gru",
             estimator_options=dict(plan.d["estimator"]["options"]), device="cpu", threads=1))
    seen: list[int] = []
    original = ddsp_train.DDSPSplit.batch

    def spy(self, idx):
        if len(self) == 32:
            seen.extend(int(i) for i in idx)
        return original(self, idx)

    monkeypatch.setattr(ddsp_train.DDSPSplit, "batch", spy)
    runs = [ddsp_train.train_ddsp_estimator(plan, data, None, strategy, settings, tmp_path / f"run{i}", "synth")
            for i in range(2)]
    assert sorted(seen[:32]) == list(range(32))
    assert np.isfinite(runs[0]["best_val_spectral"]) and runs[0]["best_val_spectral"] == runs[1]["best_val_spectral"]
    # evaluation scores one batch of renders at a time; streamed or resident, the same numbers
    import json

    scores = [ddsp_train.evaluate_ddsp_estimator(tmp_path / "run0" / "best.pt", plan, data, None,
                                                 tmp_path / f"eval{i}.json", torch.device("cpu")) for i in range(2)]
    monkeypatch.setenv("SYNTHPROXY_RESIDENT_MB", "512")
    scores.append(ddsp_train.evaluate_ddsp_estimator(tmp_path / "run0" / "best.pt", plan, data, None,
                                                     tmp_path / "eval_resident.json", torch.device("cpu")))
    ind = scores[0]["in_domain"]
    assert ind["param_l1"]["n"] == 4 and 0 < ind["param_l1"]["mean"] < 1  # 40 sounds: 32 / 4 / 4
    audio_metrics = set(ind) - {"param_l1"}
    assert len(audio_metrics) >= 3 and all(ind[k]["n"] == 4 and np.isfinite(ind[k]["mean"]) for k in audio_metrics)
    assert json.loads((tmp_path / "eval0.json").read_text())["in_domain"] == ind
    for other in scores[1:]:
        for k, v in other["in_domain"].items():
            assert v["mean"] == pytest.approx(ind[k]["mean"], rel=1e-5), k


def test_streamed_out_of_domain_split_gives_the_resident_rows(ddsp_plan_and_data, tmp_path):
    """Out-of-domain clips (here 22.05 kHz, resampled to the synth's 16 kHz and trimmed) streamed by chunks
    equal the resident ones, embeddings included."""
    from synthproxy.data import audio_store as ast
    from synthproxy.matching.ddsp_train import ood_set

    plan, _ = ddsp_plan_and_data
    n, sr = 24, 22050
    meta = {"note_id": np.array([f"n{i}" for i in range(n)], dtype=object),
            "instrument": np.array([f"i{i % 5}" for i in range(n)], dtype=object),
            "instrument_family": np.array(["bass" if i % 2 else "reed" for i in range(n)], dtype=object),
            "source": np.array(["synthetic"] * n, dtype=object), "program_name": np.array([""] * n, dtype=object),
            "program": np.full(n, -1, np.int16), "pitch": np.arange(40, 40 + n, dtype=np.int16),
            "velocity": np.full(n, 100, np.int16)}
    store = tmp_path / "ood.zarr"
    root = ast.create_audio_store(store, kind="nsynth", sample_rate=sr, duration=4.5, chunk_rows=4,
                                  settings={"seed": 0}, metadata=meta,
                                  split=np.zeros(n, dtype=np.int8))  # every clip in the train split
    t = np.arange(int(4.5 * sr)) / sr
    for c in ast.missing_chunks(root):
        s, e = ast.chunk_bounds(root, c)
        ast.write_chunk(root, c, np.stack([0.3 * np.sin(2 * np.pi * 110 * (1 + i / 7) * t) for i in range(s, e)])
                        .astype(np.float32))
    ast.mark_complete(root)
    resident = ood_set(plan, store, "train", None, embedding_targets=True)
    streamed = ood_set(plan, store, "train", None, embedding_targets=True, resident=0)
    assert resident.resident is not None and streamed.resident is None and len(resident) == len(streamed) == n
    idx = torch.tensor([23, 2, 11, 12, 5])
    a, b = resident.batch(idx), streamed.batch(idx)
    assert a.audio.shape == (5, plan.n_samples) and torch.equal(a.audio, b.audio)
    torch.testing.assert_close(a.features, b.features, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.embedding, b.embedding, rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed.batch(idx).embedding, b.embedding, rtol=0, atol=0)  # cached: the same
