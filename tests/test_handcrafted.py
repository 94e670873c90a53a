"""Hand-crafted import pipeline: mapping, dedup, file-grouped splits, provenance, bad sources."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from synthproxy.config import validate_config
from synthproxy.data.store import read_valid
from synthproxy.errors import ConfigError, ImportFormatError, PluginNotFoundError
from synthproxy.pipeline.handcrafted import (
    HandcraftedPlan,
    assign_splits,
    finalize_handcrafted,
    import_handcrafted,
    render_handcrafted_shard,
)
from synthproxy.presets.fetch import fetch_dx7_cartridges, syx_manifest
from synthproxy.presets.formats.dx7_sysex import dx7_voice_to_plugin, scan_cartridges
from synthproxy.synths.engines import DEXED_PARAMETERS, dexed_plugin_to_voice
from synthproxy.synths.spec import load_spec

from .conftest import shared_data, small_config

CART = shared_data() / "dx7" / "dexed_cart"
needs_cart = pytest.mark.skipif(not CART.is_dir(), reason=f"DX7 cartridges not found at {CART}")


def _cfg(**hc):
    cfg = small_config()
    cfg["handcrafted"] = {"synths": {"dexed": {"format": "dx7_sysex", "path": str(CART), "max_files": 2},
                                     "amsynth": {"format": "amsynth_bank", "path": "/usr/share/amsynth/banks",
                                                 "max_files": 1}},
                          "chunk_rows": 8, "shards": 2}
    for k, v in hc.items():
        cfg["handcrafted"]["synths"][k].update(v)
    return validate_config(cfg)


@needs_cart
def test_dx7_voices_map_onto_the_dexed_spec_exactly():
    spec = load_spec("config/synths/dexed.yaml")
    voices = [v for v in scan_cartridges(CART / "Ajay").voices if not v.out_of_range][:64]
    used = [DEXED_PARAMETERS[p.name][0] for p in spec.params if not p.excluded and DEXED_PARAMETERS[p.name][0] >= 0]
    for v in voices:
        plugin = spec.to_plugin(spec.from_plugin(dx7_voice_to_plugin(v.params, spec)[None]))[0]
        back = np.frombuffer(dexed_plugin_to_voice(plugin, [p.name for p in spec.params]), dtype=np.uint8)
        # every byte the spec uses survives the trip (lfo wave S&H is snapped: not in the spec's categories)
        same = back[used] == v.params[used]
        assert same.all() or set(np.array(used)[~same]) == {142}, v.name


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=5, max_size=300), st.integers(0, 1000))
def test_splits_never_divide_a_file(file_ids, seed):
    files = [f"f{i}.syx" for i in file_ids]
    split = assign_splits(files, (0.8, 0.1, 0.1), seed)
    for f in set(files):
        assert len({int(s) for s, g in zip(split, files, strict=True) if g == f}) == 1
    assert assign_splits(files, (0.8, 0.1, 0.1), seed).tolist() == split.tolist()


def test_split_fractions_follow_the_target():
    files = [f"bank{i // 32}.syx" for i in range(32 * 200)]
    split = assign_splits(files, (0.8, 0.1, 0.1), 0)
    np.testing.assert_allclose(np.bincount(split, minlength=3) / len(files), [0.8, 0.1, 0.1], atol=0.01)


@needs_cart
def test_import_render_finalize_dexed(tmp_path):
    plan = HandcraftedPlan(_cfg(), "dexed")
    store = tmp_path / "hc.zarr"
    report = import_handcrafted(plan, store, tmp_path / "import.json")
    counts = dict(report["counts"])
    assert counts["mapped onto the spec"] - counts["dropped: duplicates (names ignored)"] == report["candidates"]
    markers = [tmp_path / f"s{i}.json" for i in range(2)]
    for i, m in enumerate(markers):
        render_handcrafted_shard(plan, store, i, m)
    stats = finalize_handcrafted(plan, store, tmp_path / "import.json", markers, tmp_path / "stats.json")
    root = zarr.open_group(str(store), mode="r")
    n = root["presets"].shape[0]
    valid = np.asarray(root["valid"][:]).astype(bool)
    assert stats["counts"]["kept"] == valid.sum() > 0
    assert len(np.unique(np.asarray(root["presets"][:]), axis=0)) == n  # no duplicates
    assert all(str(f).endswith((".syx", ".SYX")) for f in root["source_file"][:])
    assert np.isfinite(np.asarray(root["embeddings"]["mel128_avg"][:])[valid]).all()
    lv = np.asarray(root["rms"][:])[valid]
    assert (lv >= 0.01).all() and (lv <= 1.0).all()
    presets, emb = read_valid(store, "mel128_avg")
    assert len(presets) == len(emb) == valid.sum()


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(PluginNotFoundError, match=r"handcrafted.synths.dexed.path"):
        HandcraftedPlan(_cfg(dexed={"path": str(tmp_path / "nope")}), "dexed").collect()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match=r"no .syx file in this folder"):
        HandcraftedPlan(_cfg(dexed={"path": str(tmp_path / "empty")}), "dexed").collect()
    with pytest.raises(ImportFormatError, match=r"no \*.bank files"):
        HandcraftedPlan(_cfg(amsynth={"path": str(tmp_path / "empty")}), "amsynth").collect()


def test_malformed_amsynth_bank_stops_the_import_naming_file_and_line(tmp_path, amsynth_plugin):
    banks = tmp_path / "banks"
    banks.mkdir()
    good = sorted(Path("/usr/share/amsynth/banks").glob("*.bank"))[0]
    text = good.read_text().splitlines()
    line = next(i for i, t in enumerate(text) if t.startswith("<parameter> amp_decay "))
    text[line] = "<parameter> amp_decay loud"
    (banks / "broken.bank").write_text("\n".join(text) + "\n")
    plan = HandcraftedPlan(_cfg(amsynth={"path": str(banks)}), "amsynth")
    with pytest.raises(ImportFormatError, match=rf"broken.bank:{line + 1}: .*'loud'"):
        import_handcrafted(plan, tmp_path / "hc.zarr", tmp_path / "r.json")
    assert not (tmp_path / "hc.zarr").exists() and not (tmp_path / "r.json").exists()


@needs_cart
def test_fetch_offline_says_where_to_put_files_and_reuses_a_verified_copy(tmp_path):
    with pytest.raises(PluginNotFoundError, match=r"handcrafted.synths.dexed.path"):
        fetch_dx7_cartridges(tmp_path / "dx7", url="http://127.0.0.1:9/none.tar.gz", timeout=2)
    copy_dir = tmp_path / "copy"
    shutil.copytree(CART, copy_dir)
    assert fetch_dx7_cartridges(copy_dir, url="http://127.0.0.1:9/none.tar.gz") == copy_dir  # verified: no download
    assert syx_manifest(copy_dir) == syx_manifest(CART)


def test_unknown_synth_in_handcrafted_config():
    cfg = copy.deepcopy(small_config())
    cfg["handcrafted"] = {"synths": {"moog": {"format": "dx7_sysex", "path": "x"}}}
    with pytest.raises(ConfigError, match=r"handcrafted.synths.moog: not a configured synth"):
        validate_config(cfg)
