"""Dataset steps: bit-identical across shard layouts and reruns, resumable, RMS-filtered, checked."""

from __future__ import annotations

import copy
import json
from collections import Counter

import numpy as np
import pytest
import zarr

from synthproxy.config import validate_config
from synthproxy.errors import ConfigError, StoreError
from synthproxy.pipeline import dataset as ds
from synthproxy.pipeline.dataset import DatasetPlan, finalize_split, init_store, render_shard
from synthproxy.presets.sampling import PresetSampler
from synthproxy.synths.engines import RenderSettings, make_engine
from synthproxy.synths.spec import load_spec

from .conftest import small_config


def _build(tmp_path, cfg, synth="dexed", split="train", order=None, tag="a"):
    plan = DatasetPlan(cfg, synth, split)
    store = tmp_path / tag / f"{synth}_{split}.zarr"
    init_store(plan, store, tmp_path / tag / "init.json")
    shards = list(range(plan.n_shards)) if order is None else order
    markers = []
    for s in shards:
        markers.append(tmp_path / tag / f"shard{s}.json")
        render_shard(plan, store, s, markers[-1])
    stats = finalize_split(plan, store, markers, tmp_path / tag / "stats.json")
    return zarr.open_group(str(store), mode="r"), stats


def _arrays(root):
    out = {k: np.asarray(root[k][:]) for k in ("presets", "rms", "attempts")}
    out |= {k: np.asarray(root["embeddings"][k][:]) for k in root["embeddings"].array_keys()}
    return out


def test_bit_identical_across_shard_counts_orders_and_reruns(tmp_path, cfg):
    one = copy.deepcopy(cfg)
    one["dataset"]["splits"]["train"]["shard_size"] = 24
    root_a, _ = _build(tmp_path, validate_config(one), tag="one")
    root_b, stats = _build(tmp_path, cfg, order=[2, 0, 1], tag="three")
    root_c, _ = _build(tmp_path, cfg, tag="three-again")
    a, b, c = _arrays(root_a), _arrays(root_b), _arrays(root_c)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes() == c[key].tobytes(), key
    assert stats["presets"] == 24 and np.isfinite(a["mel128_avg"]).all()
    assert root_b.attrs["spec_hash"] == stats["spec_hash"] and root_b.attrs["complete"] is True
    assert root_b.attrs["representations"]["mel128_avg"]["n_mels"] == 128
    assert root_b["presets"].chunks == (8, 100)


def _replay_rms_filter(cfg: dict, synth: str, split: str) -> dict:
    """The RMS filter replayed by hand: candidates (index, attempt) from the sampler, each rendered by a fresh
    engine, faded out, its RMS taken in float64 and compared with the configured range, until one passes."""
    spec = load_spec(cfg["synths"][synth]["spec"])
    r = cfg["render"]
    settings = RenderSettings(sample_rate=44100, note=r["note"], velocity=r["velocity"],
                              note_duration=r["note_duration"], duration=r["duration"], block_size=r["block_size"])
    engine = make_engine(spec, settings, cfg["synths"][synth].get("plugin"))
    sampler = PresetSampler(spec, cfg["seed"], split)
    fade = int(44100 * r.get("fade_out", 0.0))
    reasons: Counter[str] = Counter()
    out: dict[str, list] = {"attempts": [], "rms": [], "presets": []}
    for index in range(cfg["dataset"]["splits"][split]["size"]):
        for attempt in range(r["max_attempts"]):
            preset = sampler.sample_one(index, attempt)
            audio = engine.render(spec.to_plugin(preset[None])[0]).astype(np.float64)
            if fade:
                audio[-fade:] *= np.linspace(1.0, 0.0, fade)
            if not np.isfinite(audio).all():
                reasons["non_finite"] += 1
                continue
            level = np.sqrt(np.mean(audio**2))
            if level < r["rms_min"] or level > r["rms_max"]:
                reasons["too_quiet" if level < r["rms_min"] else "too_loud"] += 1
                continue
            out["attempts"].append(attempt)
            out["rms"].append(level)
            out["presets"].append(preset)
            break
        else:
            raise AssertionError(f"index {index}: no candidate passes")
    return {"reasons": dict(reasons), "attempts": np.array(out["attempts"]), "rms": np.array(out["rms"]),
            "presets": np.stack(out["presets"])}


@pytest.fixture(scope="module")
def replayed() -> dict:
    return _replay_rms_filter(validate_config(small_config()), "dexed", "train")


def test_rms_filter_and_rejection_counts_match_a_replay_by_hand(tmp_path, cfg, replayed):
    root, stats = _build(tmp_path, cfg)
    np.testing.assert_array_equal(np.asarray(root["attempts"][:]), replayed["attempts"])
    np.testing.assert_allclose(np.asarray(root["rms"][:]), replayed["rms"], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(root["presets"][:]), replayed["presets"])
    assert stats["rejections"] == sum(replayed["reasons"].values()) > 0  # random DX7 presets are often silent
    assert stats["rejections_by_reason"] == replayed["reasons"]
    assert stats["rms_min"] == pytest.approx(replayed["rms"].min(), rel=1e-6)
    assert stats["rms_max"] == pytest.approx(replayed["rms"].max(), rel=1e-6)


def test_impossible_rms_range_stops_with_index_and_reasons(tmp_path, cfg):
    bad = copy.deepcopy(cfg)
    bad["render"] |= {"rms_min": 0.99, "rms_max": 1.0, "max_attempts": 3}
    plan = DatasetPlan(validate_config(bad), "dexed", "test")
    store = tmp_path / "s.zarr"
    init_store(plan, store, tmp_path / "init.json")
    with pytest.raises(StoreError, match=r"preset index 0: 3 consecutive candidates rejected"):
        render_shard(plan, store, 0, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()
    assert np.asarray(zarr.open_group(str(store))["chunk_done"][:]).sum() == 0


def test_interrupted_shard_resumes_without_corruption(tmp_path, cfg, monkeypatch):
    cfg = copy.deepcopy(cfg)
    cfg["dataset"]["splits"]["train"]["shard_size"] = 24  # one shard of three chunks
    cfg = validate_config(cfg)
    reference = _arrays(_build(tmp_path, cfg, tag="ref")[0])

    plan = DatasetPlan(cfg, "dexed", "train")
    store = tmp_path / "int" / "s.zarr"
    init_store(plan, store, tmp_path / "int" / "init.json")
    original = ds.ShardRenderer.rows
    calls = {"n": 0}

    def crash_on_second_chunk(self, start, stop, progress=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return original(self, start, stop, progress)

    monkeypatch.setattr(ds.ShardRenderer, "rows", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        render_shard(plan, store, 0, tmp_path / "int" / "m.json")
    assert not (tmp_path / "int" / "m.json").exists()
    assert np.asarray(zarr.open_group(str(store))["chunk_done"][:]).tolist() == [1, 0, 0]
    with pytest.raises(StoreError, match="2 chunk\\(s\\) not written"):
        finalize_split(plan, store, [], tmp_path / "int" / "stats.json")

    monkeypatch.setattr(ds.ShardRenderer, "rows", original)
    init_store(plan, store, tmp_path / "int" / "init.json")  # a rerun keeps the matching store
    info = render_shard(plan, store, 0, tmp_path / "int" / "m.json")
    assert info["chunks_resumed"] == 1 and info["this_run"]["presets_rendered"] == 16
    resumed = _arrays(zarr.open_group(str(store), mode="r"))
    for key in reference:
        assert resumed[key].tobytes() == reference[key].tobytes(), key


def test_split_statistics_cover_every_chunk_after_resumed_shards(tmp_path, cfg, replayed):
    """A shard re-run with all its chunks done renders nothing; the split's figures must not drop to zero."""
    root, first = _build(tmp_path, cfg, tag="s")
    plan = DatasetPlan(cfg, "dexed", "train")
    store = tmp_path / "s" / "dexed_train.zarr"
    markers = [tmp_path / "s" / f"again{s}.json" for s in range(plan.n_shards)]
    for s, m in enumerate(markers):
        assert render_shard(plan, store, s, m)["this_run"]["presets_rendered"] == 0
    again = finalize_split(plan, store, markers, tmp_path / "s" / "stats2.json")
    assert first["rejections_by_reason"] == again["rejections_by_reason"] == replayed["reasons"]
    assert again["rejections"] == sum(replayed["reasons"].values()) > 0
    assert again["presets_per_second_per_job"] == first["presets_per_second_per_job"] > 0
    assert again["chunks_without_stats"] == 0
    cs = np.asarray(root["chunk_stats"][:])
    assert cs.shape == (3, 6) and (cs[:, 5] > 0).all()  # one row per chunk, wall seconds recorded


def test_store_written_with_other_settings_is_refused(tmp_path, cfg):
    plan = DatasetPlan(cfg, "dexed", "test")
    store = tmp_path / "s.zarr"
    init_store(plan, store, tmp_path / "init.json")
    other = copy.deepcopy(cfg)
    other["seed"] = 99
    with pytest.raises(StoreError, match="written with other settings"):
        render_shard(DatasetPlan(validate_config(other), "dexed", "test"), store, 0, tmp_path / "m.json")
    with pytest.raises(StoreError, match="data store not found"):
        render_shard(plan, tmp_path / "missing.zarr", 0, tmp_path / "m.json")
    # init with the new settings replaces the stale store
    init_store(DatasetPlan(validate_config(other), "dexed", "test"), store, tmp_path / "init.json")
    assert zarr.open_group(str(store)).attrs["seed"] == 99


def test_unknown_synth_split_and_shard(cfg):
    with pytest.raises(ConfigError, match="unknown synth 'moog'"):
        DatasetPlan(cfg, "moog", "train")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        DatasetPlan(cfg, "dexed", "dev")
    with pytest.raises(ConfigError, match="shard 7 out of range"):
        DatasetPlan(cfg, "dexed", "train").shard_rows(7)


def test_amsynth_split(tmp_path, amsynth_plugin):
    cfg = small_config()
    cfg["dataset"]["splits"] = {"test": {"size": 8, "shard_size": 8}}
    root, stats = _build(tmp_path, validate_config(cfg), synth="amsynth", split="test")
    assert root["presets"].shape == (8, 34) and stats["presets"] == 8
    assert json.loads((tmp_path / "a" / "stats.json").read_text())["synth"] == "amsynth"
