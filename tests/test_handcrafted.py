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
from synthproxy.presets.formats.dx7_sysex import (
    dx7_voice_to_plugin,
    parse_sysex_bytes,
    read_sysex_file,
    scan_cartridges,
    write_bank_sysex,
)
from synthproxy.synths.engines import RenderSettings, make_engine
from synthproxy.synths.spec import load_spec

from .conftest import shared_data, small_config
from .dx7_voices import make_patch, vced

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


def _spec_round_trip_keeps_used_values(params: list[np.ndarray], spec) -> int:
    """Plugin vector -> preset (spec.from_plugin) -> plugin vector: used values survive, by parameter name."""
    snapped = 0
    for v in params:
        plugin = dx7_voice_to_plugin(v, spec)
        back = spec.to_plugin(spec.from_plugin(plugin[None]))[0]
        for p in spec.params:
            if p.excluded:
                assert back[p.index] == p.default, p.name  # rendered at the spec's fixed value
            elif p.name == "lfo_wave" and plugin[p.index] == 1.0:  # sample & hold: not a spec category
                assert back[p.index] == pytest.approx(0.8)  # snapped to the nearest one, sine
                snapped += 1
            else:
                assert back[p.index] == pytest.approx(plugin[p.index], abs=1e-6), p.name
    return snapped


def test_voices_map_onto_the_dexed_spec_exactly():
    spec = load_spec("config/synths/dexed.yaml")
    voices = [vced(make_patch(i)) for i in range(64)]
    sample_hold = make_patch(2)
    sample_hold.lfo.wave = 5
    assert _spec_round_trip_keeps_used_values([*voices, vced(sample_hold)], spec) == 1


@needs_cart
def test_cartridge_voices_map_onto_the_dexed_spec_exactly():
    spec = load_spec("config/synths/dexed.yaml")
    voices = [v.params for v in scan_cartridges(CART / "Original Yamaha").voices if not v.out_of_range][:256]
    assert len(voices) == 256
    _spec_round_trip_keeps_used_values(voices, spec)


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


def _render_levels(cfg: dict, presets: np.ndarray) -> np.ndarray:
    """RMS of each preset's render, worked out here: a fresh Dexed engine, the fade-out, float64 RMS."""
    spec = load_spec(cfg["synths"]["dexed"]["spec"])
    r = cfg["render"]
    settings = RenderSettings(sample_rate=44100, note=r["note"], velocity=r["velocity"],
                              note_duration=r["note_duration"], duration=r["duration"], block_size=r["block_size"])
    engine = make_engine(spec, settings)
    fade = int(44100 * r.get("fade_out", 0.0))
    levels = []
    for vec in spec.to_plugin(presets):
        audio = engine.render(vec).astype(np.float64)
        if fade:
            audio[-fade:] *= np.linspace(1.0, 0.0, fade)
        levels.append(np.sqrt(np.mean(audio**2)) if np.isfinite(audio).all() else np.nan)
    return np.asarray(levels)


def _import_render_finalize(cfg: dict, tmp_path: Path):
    plan = HandcraftedPlan(cfg, "dexed")
    store = tmp_path / "hc.zarr"
    report = import_handcrafted(plan, store, tmp_path / "import.json")
    markers = [tmp_path / f"s{i}.json" for i in range(plan.shards)]
    for i, m in enumerate(markers):
        render_handcrafted_shard(plan, store, i, m)
    stats = finalize_handcrafted(plan, store, tmp_path / "import.json", markers, tmp_path / "stats.json")
    return report, stats, zarr.open_group(str(store), mode="r")


def _check_against_independent_counts(cfg: dict, report: dict, stats: dict, root, voices: list) -> None:
    """Dedup by hashing mapped rows in Python, and the RMS filter by re-rendering every row here."""
    spec = load_spec(cfg["synths"]["dexed"]["spec"])
    first: dict[bytes, int] = {}  # mapped row -> first voice holding it
    for i, v in enumerate(voices):
        first.setdefault(spec.from_plugin(dx7_voice_to_plugin(v.params, spec)[None])[0].tobytes(), i)
    kept = sorted(first.values())
    counts = dict(report["counts"])
    assert counts["mapped onto the spec"] == len(voices)
    assert counts["dropped: duplicates (names ignored)"] == len(voices) - len(kept)
    assert report["candidates"] == len(kept) == root["presets"].shape[0]
    presets = np.asarray(root["presets"][:])
    assert presets.tobytes() == b"".join(spec.from_plugin(dx7_voice_to_plugin(voices[i].params, spec)[None])[0]
                                         .tobytes() for i in kept)
    assert list(root["preset_name"][:]) == [voices[i].name for i in kept]
    assert list(root["source_file"][:]) == [voices[i].file for i in kept]

    levels = _render_levels(cfg, presets)
    lo, hi = cfg["render"]["rms_min"], cfg["render"]["rms_max"]
    valid = (levels >= lo) & (levels <= hi)
    np.testing.assert_array_equal(np.asarray(root["valid"][:]).astype(bool), valid)
    np.testing.assert_allclose(np.asarray(root["rms"][:]), levels, rtol=1e-5)
    c = stats["counts"]
    assert c["dropped: silent (RMS < rms_min)"] == int((levels < lo).sum())
    assert c["dropped: too loud (RMS > rms_max)"] == int((levels > hi).sum())
    assert c["kept"] == int(valid.sum())
    split = np.asarray(root["split"][:])
    assert [c[f"kept: {s} split"] for s in ("train", "val", "test")] == [int((valid & (split == k)).sum())
                                                                       for k in range(3)]
    emb = np.asarray(root["embeddings"]["mel128_avg"][:])
    assert np.isfinite(emb[valid]).all() and np.isnan(emb[~valid]).all()


def _bank_with_known_duplicates() -> tuple[bytes, bytes]:
    """Two banks whose import counts follow from how they were made (see the test)."""
    distinct = [vced(make_patch(i)) for i in range(10)]
    renamed = vced(make_patch(3, "COPY OF 3"))  # duplicate: names are ignored
    transposed = make_patch(5)
    transposed.transpose = 30  # duplicate: transpose (middle_c) is excluded from the spec
    moved_break = make_patch(7)
    moved_break.op[0].breakpoint = 80  # duplicate: break points are excluded too
    sample_hold = make_patch(4, "S&H OF 4")  # voice 4 has a sine LFO
    sample_hold.lfo.wave = 5  # duplicate: sample & hold is not a spec category, snapped to sine
    louder = make_patch(8, "VAR 08")
    louder.op[0].output_level -= 1  # distinct: output level is a used parameter
    silent = make_patch(6, "SILENT")
    for op in silent.op:
        op.output_level = 0  # renders silence: dropped by the RMS filter
    corrupt = vced(make_patch(9, "CORRUPT"))
    corrupt[5 * 21 + 16] = 120  # OP1 output level (last operator block) above 99: out of range
    one = write_bank_sysex([*distinct, renamed, vced(transposed), vced(moved_break), vced(sample_hold),
                            vced(louder), vced(silent), corrupt], allow_out_of_range=True)  # 17 + 15 INIT
    finer = make_patch(12, "VAR 12")
    finer.op[5].frequency_fine += 1  # distinct: OP6 fine frequency, one of the spec's last columns
    two = write_bank_sysex([*(vced(make_patch(i)) for i in range(10, 14)), vced(make_patch(0, "COPY OF 0")),
                            vced(finer)])  # 6 + 26 INIT
    return one, two


def _folder_cfg(folder: Path) -> dict:
    cfg = small_config()
    cfg["handcrafted"] = {"synths": {"dexed": {"format": "dx7_sysex", "path": str(folder)}}, "chunk_rows": 8,
                          "shards": 2}
    return validate_config(cfg)


def test_import_counts_follow_from_how_the_banks_were_made(tmp_path):
    one, two = _bank_with_known_duplicates()
    (tmp_path / "src" / "Alice").mkdir(parents=True)
    (tmp_path / "src" / "Bob").mkdir()
    (tmp_path / "src" / "Alice" / "one.syx").write_bytes(one)
    (tmp_path / "src" / "Bob" / "two.syx").write_bytes(two)
    cfg = _folder_cfg(tmp_path / "src")
    report, stats, root = _import_render_finalize(cfg, tmp_path)
    c = stats["counts"]
    assert c["files read"] == 2 and c["files with voices"] == 2 and c["banks with bad checksum (kept)"] == 0
    assert c["voices"] == 64
    assert c["dropped: out-of-range values"] == 1  # CORRUPT
    assert c["dropped: INIT VOICE"] == 15 + 26  # the empty slots of both banks
    assert c["mapped onto the spec"] == 22
    assert c["dropped: duplicates (names ignored)"] == 5  # COPY OF 3, transposed 5, moved 7, S&H OF 4, COPY OF 0
    assert c["dropped: silent (RMS < rms_min)"] == 1  # SILENT
    assert c["dropped: too loud (RMS > rms_max)"] == 0 and c["dropped: non-finite audio"] == 0
    assert c["kept"] == 16
    assert list(root["preset_name"][:]) == [*(f"VOICE {i:02d}" for i in range(10)), "VAR 08", "SILENT",
                                            *(f"VOICE {i:02d}" for i in range(10, 14)), "VAR 12"]
    assert list(root["author"][:]) == ["Alice"] * 12 + ["Bob"] * 5
    split = np.asarray(root["split"][:])
    assert len(set(split[:12])) == 1 and len(set(split[12:])) == 1  # a file's presets share a split
    voices = [v for name in ("Alice/one.syx", "Bob/two.syx")
              for v in parse_sysex_bytes((tmp_path / "src" / name).read_bytes(), name).voices
              if not v.out_of_range and not v.is_init]
    _check_against_independent_counts(cfg, report, stats, root, voices)


@needs_cart
def test_import_render_finalize_dexed(tmp_path):
    cfg = _cfg()
    report, stats, root = _import_render_finalize(cfg, tmp_path)
    # the first max_files (2) files with voices, in sorted path order, read file by file here
    files = sorted(p.relative_to(CART).as_posix() for p in CART.rglob("*") if p.suffix.lower() == ".syx")
    voices = []
    used = 0
    for f in files:
        res = read_sysex_file(CART / f, root=CART)
        if res.voices:
            voices += [v for v in res.voices if not v.out_of_range and not v.is_init]
            used += 1
            if used == 2:
                break
    _check_against_independent_counts(cfg, report, stats, root, voices)
    assert stats["counts"]["kept"] > 0
    assert all(str(f).endswith((".syx", ".SYX")) for f in root["source_file"][:])
    presets, emb = read_valid(tmp_path / "hc.zarr", "mel128_avg")
    valid = np.asarray(root["valid"][:]).astype(bool)
    np.testing.assert_array_equal(presets, np.asarray(root["presets"][:])[valid])
    np.testing.assert_array_equal(emb, np.asarray(root["embeddings"]["mel128_avg"][:])[valid])


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(PluginNotFoundError, match=r"handcrafted.synths.dexed.path"):
        HandcraftedPlan(_cfg(dexed={"path": str(tmp_path / "nope")}), "dexed").collect()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match=r"no .syx file in this folder"):
        HandcraftedPlan(_cfg(dexed={"path": str(tmp_path / "empty")}), "dexed").collect()
    with pytest.raises(ImportFormatError, match=r"no \*.bank files"):
        HandcraftedPlan(_cfg(amsynth={"path": str(tmp_path / "empty")}), "amsynth").collect()


def _amsynth_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A good bank and three bad ones (bad value, truncated, Windows line endings); ``{file: expected problem}``."""
    banks = tmp_path / "banks"
    banks.mkdir()
    good = sorted(Path("/usr/share/amsynth/banks").glob("*.bank"))[0]
    text = good.read_text().splitlines()
    (banks / "a_good.bank").write_text("\n".join(text) + "\n")
    line = next(i for i, t in enumerate(text) if t.startswith("<parameter> amp_decay "))
    broken = list(text)
    broken[line] = "<parameter> amp_decay loud"
    (banks / "b_broken.bank").write_text("\n".join(broken) + "\n")
    (banks / "c_truncated.bank").write_text("\n".join(text[:40]) + "\n")
    (banks / "d_windows.bank").write_bytes(("\r\n".join(text) + "\r\n").encode())
    return banks, {"b_broken.bank": rf"b_broken.bank:{line + 1}: .*'loud'",
                   "c_truncated.bank": r"c_truncated.bank:40: file ends without the 'EOF' line",
                   "d_windows.bank": r"d_windows.bank:1: carriage return"}


def _read_file_report(path: Path) -> dict[str, tuple[int, str]]:
    import csv

    with path.open() as f:
        return {r["file"]: (int(r["presets_kept"]), r["problem"]) for r in csv.DictReader(f)}


def test_bad_amsynth_banks_are_skipped_and_all_named(tmp_path, amsynth_plugin, capsys):
    import re

    banks, expected = _amsynth_folder(tmp_path)
    plan = HandcraftedPlan(_cfg(amsynth={"path": str(banks), "max_files": None}), "amsynth")
    report = import_handcrafted(plan, tmp_path / "hc.zarr", tmp_path / "import.json")
    n_good = len(plan.collect().preset_name)
    rows = _read_file_report(tmp_path / "import.files.csv")
    assert set(rows) == {"a_good.bank", *expected}
    assert rows["a_good.bank"][1] == "" and rows["a_good.bank"][0] == n_good > 0  # the good bank is kept whole
    err = capsys.readouterr().err
    assert "3 of 4 preset file(s) skipped or repaired" in err
    for name, pattern in expected.items():
        kept, problem = rows[name]
        assert kept == 0 and problem.startswith("skipped: ") and re.search(pattern, problem), (name, problem)
        assert re.search(pattern, err), name  # every bad bank named on stderr, with file:line
    assert dict(report["counts"])["files skipped (malformed or empty)"] == 3
    assert [f["file"] for f in report["files_with_problems"]] == sorted(expected)
    assert zarr.open_group(str(tmp_path / "hc.zarr"), mode="r")["presets"].shape[0] == report["candidates"]


def test_only_bad_amsynth_banks_stop_the_import_naming_every_one(tmp_path, amsynth_plugin):
    banks, expected = _amsynth_folder(tmp_path)
    (banks / "a_good.bank").unlink()
    plan = HandcraftedPlan(_cfg(amsynth={"path": str(banks), "max_files": None}), "amsynth")
    with pytest.raises(ImportFormatError) as err:
        import_handcrafted(plan, tmp_path / "hc.zarr", tmp_path / "r.json")
    for name in expected:
        assert name in str(err.value)
    assert not (tmp_path / "hc.zarr").exists() and not (tmp_path / "r.json").exists()


def test_dx7_import_names_every_skipped_or_repaired_file(tmp_path, capsys):
    one, _ = _bank_with_known_duplicates()
    clean = write_bank_sysex([vced(make_patch(i)) for i in range(4)])
    src = tmp_path / "src"
    src.mkdir()
    (src / "a_clean.syx").write_bytes(clean)
    (src / "b_corrupt_voice.syx").write_bytes(one)  # one voice beyond the DX7 maxima
    bad_sum = bytearray(clean)
    bad_sum[-2] ^= 0x01
    (src / "c_checksum.syx").write_bytes(bytes(bad_sum))
    (src / "d_no_end.syx").write_bytes(clean[:-1])
    (src / "e_truncated.syx").write_bytes(clean[:3000])
    roland = bytearray(clean)
    roland[1] = 0x41
    (src / "f_roland.syx").write_bytes(bytes(roland))
    (src / "g_text.syx").write_bytes(b"this is not sysex\n")
    cfg = _folder_cfg(src)
    report = import_handcrafted(HandcraftedPlan(cfg, "dexed"), tmp_path / "hc.zarr", tmp_path / "import.json")
    rows = _read_file_report(tmp_path / "import.files.csv")
    assert set(rows) == {p.name for p in src.iterdir()}
    assert rows["a_clean.syx"][1] == "" and rows["a_clean.syx"][0] == 4  # INIT slots are no defect
    assert "1 voice(s) dropped: values beyond the DX7 maxima" in rows["b_corrupt_voice.syx"][1]
    assert "checksum" in rows["c_checksum.syx"][1].lower()
    assert "end" in rows["d_no_end.syx"][1].lower()
    assert "trunc" in rows["e_truncated.syx"][1].lower()
    for name in ("f_roland.syx", "g_text.syx"):
        kept, problem = rows[name]
        assert kept == 0 and problem.startswith("skipped: "), (name, problem)
    bad = [f for f, (_, problem) in rows.items() if problem]
    assert len(bad) == 6 and [f["file"] for f in report["files_with_problems"]] == sorted(bad)
    err = capsys.readouterr().err
    assert f"6 of 7 preset file(s) skipped or repaired (full list: {tmp_path / 'import.files.csv'})" in err
    for name in bad:
        assert name in err


def test_preset_folder_manifest_changes_when_a_file_is_added_edited_or_removed(tmp_path):
    from synthproxy.presets.formats import get_format

    fmt = get_format("dx7_sysex")
    src = tmp_path / "src"
    assert fmt.manifest(src) == ""  # absent folder
    src.mkdir()
    (src / "a.syx").write_bytes(write_bank_sysex([vced(make_patch(0))]))
    (src / "notes.txt").write_text("not read by the import")
    first = fmt.manifest(src)
    (src / "notes.txt").write_text("edited")
    assert fmt.manifest(src) == first  # files the import does not read do not count
    (src / "b.SYX").write_bytes(write_bank_sysex([vced(make_patch(1))]))
    added = fmt.manifest(src)
    (src / "b.SYX").write_bytes(write_bank_sysex([vced(make_patch(2))]))
    edited = fmt.manifest(src)
    (src / "b.SYX").unlink()
    assert len({first, added, edited}) == 3 and fmt.manifest(src) == first


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
