"""Out-of-domain sound sets: FluidSynth GM renders, the NSynth reader, splits, the audio store, load_audio."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import zarr

from synthproxy.audio.io import load_audio
from synthproxy.data import audio_store as ast
from synthproxy.errors import AudioError, ConfigError, PluginNotFoundError, StoreError
from synthproxy.soundsets import assign_splits, build_out_of_domain_set, resolve_settings, summary_table
from synthproxy.soundsets import build as build_mod
from synthproxy.soundsets.fluid import DEFAULT_SOUNDFONT, load_library
from synthproxy.soundsets.gm import GM_FAMILY, MELODIC_PROGRAMS, GMNote, GMRenderer, gm_notes

SR = 16000
T = 4 * SR
# 2 programs x 2 pitches x 1 velocity, two chunks of two notes
TINY_GM = {"chunk_rows": 2, "gm": {"programs": [0, 40], "pitch_min": 48, "pitch_max": 60, "pitch_step": 12,
                                   "velocities": [100]}}


@pytest.fixture(scope="module")
def renderer() -> GMRenderer:
    if not DEFAULT_SOUNDFONT.is_file():
        pytest.fail(f"{DEFAULT_SOUNDFONT} missing: apt-get install -y --no-install-recommends fluidsynth "
                    "fluid-soundfont-gm")
    with GMRenderer() as r:
        yield r


@pytest.fixture(scope="module")
def gm_store(tmp_path_factory, renderer) -> Path:
    path = tmp_path_factory.mktemp("gm") / "ood.zarr"
    stats = build_out_of_domain_set(TINY_GM, path, progress=False)
    assert stats["kind"] == "fluidsynth_gm" and stats["clips"] == 4 and stats["chunks_written"] == 2
    return path


# ---------------------------------------------------------------- GM programs and FluidSynth renders


def test_melodic_programs_and_family_map():
    assert len(MELODIC_PROGRAMS) == 102
    excluded = {47, 55, *range(96, 104), *range(112, 128)}
    assert set(MELODIC_PROGRAMS) == set(range(128)) - excluded
    families = {"bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                "synth_lead", "synth_pad", "vocal"}
    assert set(GM_FAMILY.values()) == families
    assert GM_FAMILY[0] == "keyboard" and GM_FAMILY[12] == "mallet" and GM_FAMILY[33] == "bass"
    assert GM_FAMILY[73] == "flute" and GM_FAMILY[52] == "vocal" and GM_FAMILY[90] == "synth_pad"
    with pytest.raises(ConfigError, match="not melodic"):
        gm_notes(programs=[47])
    notes = gm_notes(programs=[0, 40], pitch_min=36, pitch_max=84, pitch_step=12, velocities=[100, 75])
    assert len(notes) == 2 * 5 * 2 and notes[0] == GMNote(0, 36, 75)


def test_gm_render_store(gm_store):
    root = ast.open_audio_store(gm_store)
    assert root["audio"].shape == (4, T) and root["audio"].dtype == np.float32
    assert root.attrs["sample_rate"] == SR and root.attrs["duration"] == 4.0 and root.attrs["kind"] == "fluidsynth_gm"
    audio = root["audio"][:]
    peaks = np.abs(audio).max(axis=1)
    assert np.all(peaks > 0.01) and np.all(peaks < 1.0)  # audible, not clipping
    assert np.array_equal(root["peak"][:], peaks)
    np.testing.assert_array_equal(root["program"][:], [0, 0, 40, 40])
    np.testing.assert_array_equal(root["pitch"][:], [48, 60, 48, 60])
    np.testing.assert_array_equal(root["velocity"][:], [100] * 4)
    assert list(root["instrument_family"][:]) == ["keyboard", "keyboard", "string", "string"]
    assert list(root["program_name"][:]) == ["Acoustic Grand Piano"] * 2 + ["Violin"] * 2
    assert list(root["note_id"][:]) == ["keyboard_acoustic_gm000-048-100", "keyboard_acoustic_gm000-060-100",
                                        "string_acoustic_gm040-048-100", "string_acoustic_gm040-060-100"]
    assert root.attrs["complete"] and root.attrs["counts"]["total"] == 4


def test_gm_render_bit_identical_on_rerun(gm_store, tmp_path):
    again = build_out_of_domain_set(TINY_GM, tmp_path / "again.zarr", progress=False)
    assert again["fingerprint"] == ast.stored_fingerprint(gm_store)
    a = ast.open_audio_store(gm_store)["audio"][:]
    b = ast.open_audio_store(tmp_path / "again.zarr")["audio"][:]
    assert a.tobytes() == b.tobytes()


def test_no_leak_from_long_release_note(renderer):
    probe = GMNote(0, 60, 100)
    with GMRenderer() as fresh:
        clean = fresh.render(probe)  # first note of a brand-new renderer
    pad = renderer.render(GMNote(94, 60, 127))  # halo pad: still sounding when its clip ends
    assert np.abs(pad[-SR // 10:]).max() > 1e-3
    after = renderer.render(probe)
    assert after.tobytes() == clean.tobytes()


def test_renders_are_dry(renderer):
    lead = renderer.render(GMNote(80, 60, 127))  # square lead: short release; reverb would leave a tail
    assert np.abs(lead[: 3 * SR]).max() > 0.05
    assert np.all(lead[-SR // 2:] == 0.0)


def test_silent_notes_dropped_and_counted(tmp_path, renderer):
    # FluidR3's contrabass has no samples above MIDI 59
    stats = build_out_of_domain_set({"chunk_rows": 4, "gm": {"programs": [43], "pitch_min": 40, "pitch_max": 70,
                                                             "pitch_step": 10, "velocities": [100]}},
                                    tmp_path / "cb.zarr", progress=False)
    assert stats["candidates"] == 4 and stats["clips"] == 2 and stats["silent_dropped"] == 2
    table = summary_table(tmp_path / "cb.zarr")
    assert table.loc["string", "silent_dropped"] == 2 and table.loc["all", "clips"] == 2


def test_missing_fluidsynth_or_soundfont_errors(tmp_path):
    with pytest.raises(PluginNotFoundError, match="fluid-soundfont-gm") as exc:
        GMRenderer(soundfont=tmp_path / "none.sf2")
    assert "\n" not in str(exc.value) and "none.sf2" in str(exc.value)
    with pytest.raises(PluginNotFoundError, match=r"apt-get install .*fluidsynth fluid-soundfont-gm"):
        load_library(str(tmp_path / "libfluidsynth.so.3"))


# ---------------------------------------------------------------- NSynth reader


def _tone(freq: float, seconds: float = 4.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t) * np.exp(-t)).astype(np.float32)


def _entry(note_id: str, pitch: int, velocity: int) -> dict:
    family, source, _ = note_id.split("-")[0].split("_")
    return {"note_str": note_id, "pitch": pitch, "velocity": velocity, "instrument_str": note_id.rsplit("-", 2)[0],
            "instrument_family_str": family, "instrument_source_str": source, "sample_rate": SR, "qualities": [0] * 10}


@pytest.fixture
def nsynth_dir(tmp_path) -> Path:
    root = tmp_path / "nsynth-valid"
    (root / "audio").mkdir(parents=True)
    good = {"bass_electronic_018-040-100": 82.4, "guitar_acoustic_010-060-075": 261.6,
            "keyboard_acoustic_004-064-127": 329.6, "mallet_acoustic_062-072-050": 523.3,
            "reed_acoustic_023-055-100": 196.0, "string_acoustic_014-067-025": 392.0}
    examples = {}
    for note_id, freq in good.items():
        _, pitch, vel = note_id.split("-")
        examples[note_id] = _entry(note_id, int(pitch), int(vel))
        sf.write(root / "audio" / f"{note_id}.wav", _tone(freq), SR, subtype="PCM_16")
    # one stored at 44.1 kHz stereo 24-bit: resampled and mixed down
    sf.write(root / "audio" / "string_acoustic_014-067-025.wav", np.stack([_tone(392.0, sr=44100)] * 2, 1), 44100,
             subtype="PCM_24")
    examples["brass_acoustic_015-064-100"] = _entry("brass_acoustic_015-064-100", 64, 100)
    (root / "audio" / "brass_acoustic_015-064-100.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
                                                                     + bytes(range(200)))  # corrupt
    examples["flute_synthetic_000-079-025"] = _entry("flute_synthetic_000-079-025", 79, 25)  # WAV missing
    (root / "examples.json").write_text(json.dumps(examples))
    return root


def test_nsynth_reader_skips_bad_files(nsynth_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        stats = build_out_of_domain_set({"chunk_rows": 4}, tmp_path / "ns.zarr", nsynth=nsynth_dir, progress=False)
    assert stats["kind"] == "nsynth" and stats["clips"] == 6 and stats["skipped"] == 2
    assert "brass_acoustic_015-064-100" in caplog.text and "flute_synthetic_000-079-025" in caplog.text
    root = ast.open_audio_store(tmp_path / "ns.zarr")
    assert root.attrs["kind"] == "nsynth"
    dropped = {d["note_id"]: d["reason"] for d in root.attrs["info"]["dropped"]}
    assert dropped == {"brass_acoustic_015-064-100": "bad", "flute_synthetic_000-079-025": "bad"}
    ids = list(root["note_id"][:])
    assert ids == sorted(ids) and "bass_electronic_018-040-100" in ids
    assert set(root["program"][:]) == {-1}
    i = ids.index("guitar_acoustic_010-060-075")
    assert np.abs(root["audio"][i] - _tone(261.6)).max() < 1e-4  # 16-bit quantisation only
    j = ids.index("string_acoustic_014-067-025")
    assert np.abs(root["audio"][j] - _tone(392.0)).max() < 1e-2  # resampled from 44.1 kHz stereo
    assert root["pitch"][i] == 60 and root["velocity"][i] == 75 and root["instrument_family"][i] == "guitar"
    assert root["source"][i] == "acoustic" and root["instrument"][i] == "guitar_acoustic_010"
    table = summary_table(root)
    assert table.loc["all", "clips"] == 6 and table.loc["all", "skipped"] == 2
    assert table.loc["all", ["train", "val", "test"]].sum() == 6


def test_nsynth_missing_folder_falls_back_or_fails(tmp_path):
    with pytest.raises(PluginNotFoundError, match="NSynth folder not found"):
        build_out_of_domain_set({"kind": "nsynth"}, tmp_path / "x.zarr", nsynth=tmp_path / "nope", progress=False)
    assert build_mod._choose_kind(resolve_settings({}), tmp_path / "nope") == "fluidsynth_gm"


# ---------------------------------------------------------------- splits


def test_split_deterministic_and_proportions():
    keys = [f"note{i:04d}" for i in range(1000)]
    a = assign_splits(keys, seed=3)
    np.testing.assert_array_equal(a, assign_splits(keys, seed=3))
    assert np.bincount(a, minlength=3).tolist() == [800, 100, 100]
    assert not np.array_equal(a, assign_splits(keys, seed=4))
    perm = np.random.default_rng(0).permutation(1000)
    np.testing.assert_array_equal(assign_splits([keys[i] for i in perm], seed=3), a[perm])  # order-independent
    groups = [f"inst{i % 50}" for i in range(1000)]
    g = assign_splits(groups, seed=0)
    for inst in set(groups):
        assert len({int(g[i]) for i in range(1000) if groups[i] == inst}) == 1
    assert abs(np.bincount(g, minlength=3)[0] - 800) <= 20


# ---------------------------------------------------------------- the store


def _synthetic_store(path: Path, n: int = 10, chunk_rows: int = 4, seed: int = 0) -> zarr.Group:
    meta = {"note_id": np.array([f"n{i}" for i in range(n)], dtype=object),
            "instrument": np.array([f"i{i % 3}" for i in range(n)], dtype=object),
            "instrument_family": np.array(["bass" if i % 2 else "reed" for i in range(n)], dtype=object),
            "source": np.array(["acoustic"] * n, dtype=object), "program_name": np.array([""] * n, dtype=object),
            "program": np.full(n, -1, np.int16), "pitch": np.arange(40, 40 + n, dtype=np.int16),
            "velocity": np.full(n, 100, np.int16)}
    split = assign_splits(list(meta["note_id"]), seed)
    root = ast.create_audio_store(path, kind="nsynth", sample_rate=100, duration=0.5, chunk_rows=chunk_rows,
                                  settings={"seed": seed}, metadata=meta, split=split)
    for c in ast.missing_chunks(root):
        s, e = ast.chunk_bounds(root, c)
        ast.write_chunk(root, c, np.arange(s, e, dtype=np.float32)[:, None] + np.zeros((1, 50), np.float32))
    ast.mark_complete(root)
    return root


def test_store_resumes_after_interruption(gm_store, tmp_path, monkeypatch):
    root = zarr.open_group(str(gm_store), mode="r+")
    full = root["audio"][:]
    root["chunk_done"][1] = 0  # as if interrupted before chunk 1 was finished
    root["audio"][2:4] = 0.0
    with pytest.raises(StoreError, match="incomplete"):
        ast.open_audio_store(gm_store)
    stats = build_out_of_domain_set(TINY_GM, gm_store, progress=False)
    assert stats["resumed"] and stats["chunks_written"] == 1
    assert ast.open_audio_store(gm_store)["audio"][:].tobytes() == full.tobytes()
    # a real interruption: the second chunk's write fails, the rerun writes only that chunk
    calls = []

    def flaky(root, chunk, audio):
        calls.append(chunk)
        if len(calls) == 2:
            raise KeyboardInterrupt
        ast.write_chunk(root, chunk, audio)

    path = tmp_path / "interrupted.zarr"
    monkeypatch.setattr(build_mod, "write_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_out_of_domain_set(TINY_GM, path, progress=False)
    monkeypatch.setattr(build_mod, "write_chunk", ast.write_chunk)
    assert ast.missing_chunks(zarr.open_group(str(path), mode="r")) == [1]
    stats = build_out_of_domain_set(TINY_GM, path, progress=False)
    assert stats["resumed"] and stats["chunks_written"] == 1
    assert ast.open_audio_store(path)["audio"][:].tobytes() == full.tobytes()


def test_store_with_other_settings_replaced_or_refused(nsynth_dir, tmp_path):
    path = tmp_path / "ns.zarr"
    first = build_out_of_domain_set({"seed": 0}, path, nsynth=nsynth_dir, progress=False)
    second = build_out_of_domain_set({"seed": 1}, path, nsynth=nsynth_dir, progress=False)
    assert second["fingerprint"] != first["fingerprint"] and not second["resumed"]
    assert ast.stored_fingerprint(path) == second["fingerprint"]
    with pytest.raises(StoreError, match="other settings"):
        build_out_of_domain_set({"seed": 2}, path, nsynth=nsynth_dir, progress=False, if_mismatch="error")
    with pytest.raises(StoreError, match="other settings"):
        ast.open_audio_store(path, expect_fingerprint=first["fingerprint"])
    assert build_out_of_domain_set({"seed": 1}, path, nsynth=nsynth_dir, progress=False)["resumed"]
    assert not (tmp_path / "ns.zarr.tmp").exists()


def test_batches_of_one_split_in_store_order(tmp_path):
    root = _synthetic_store(tmp_path / "s.zarr", n=10, chunk_rows=4)
    for split in ("train", "val", "test", None):
        rows = ast.split_rows(root, split)
        got_idx, sizes = [], []
        for idx, audio in ast.iter_audio_batches(root, split, batch_size=3):
            assert audio.shape == (len(idx), 50) and audio.dtype == np.float32
            np.testing.assert_array_equal(audio[:, 0], idx.astype(np.float32))
            got_idx.extend(idx.tolist())
            sizes.append(len(idx))
        assert got_idx == rows.tolist()
        assert all(s == 3 for s in sizes[:-1])
    with pytest.raises(StoreError, match="unknown split"):
        list(ast.iter_audio_batches(root, "dev"))


def test_write_features_streams_and_resumes(tmp_path):
    root = _synthetic_store(tmp_path / "f.zarr", n=10, chunk_rows=4)
    calls = []

    def fn(audio: np.ndarray) -> np.ndarray:
        calls.append(len(audio))
        return np.repeat(audio[:, :5, None], 2, axis=2)  # (B, 5 frames, 2 bands)

    arr = ast.write_features(root, "toy", fn, batch=3, meta={"v": 1})
    assert arr.shape == (10, 5, 2) and root["features/toy"].shape == (10, 5, 2)
    np.testing.assert_array_equal(arr[:, 0, 0], np.arange(10, dtype=np.float32))
    assert max(calls) <= 3
    calls.clear()
    root["features_done/toy"][1] = 0
    ast.write_features(root, "toy", fn, batch=8, meta={"v": 1})
    assert calls == [4]  # only chunk 1 (rows 4..7)
    ast.write_features(root, "toy", fn, batch=8, meta={"v": 2})  # other settings: recomputed whole
    assert sum(calls[1:]) == 1 + 10


def test_settings_validation():
    with pytest.raises(ConfigError, match=r"unknown out-of-domain setting 'gm\.pitchmin'"):
        resolve_settings({"gm": {"pitchmin": 3}})
    with pytest.raises(ConfigError, match="split_fractions"):
        resolve_settings({"split_fractions": {"train": 0.5, "val": 0.1, "test": 0.1}})
    assert resolve_settings({})["gm"]["velocities"] == [75, 100, 127]


# ---------------------------------------------------------------- load_audio


def test_load_audio_formats_rates_channels(tmp_path):
    x = _tone(440.0, seconds=1.0, sr=22050)
    sf.write(tmp_path / "a.wav", np.stack([x, x], 1), 22050, subtype="PCM_24")
    sf.write(tmp_path / "a.flac", x, 22050)
    sf.write(tmp_path / "a.ogg", x, 22050)
    sf.write(tmp_path / "a32.wav", x.astype(np.float64), 22050, subtype="DOUBLE")
    ref = _tone(440.0, seconds=1.0, sr=SR)
    for name in ("a.wav", "a.flac", "a.ogg", "a32.wav"):
        y = load_audio(tmp_path / name, SR, n_samples=2 * SR)
        assert y.shape == (2 * SR,) and y.dtype == np.float32
        assert np.all(y[SR + 100:] == 0.0)  # zero-padded
        tol = 0.05 if name.endswith("ogg") else 5e-3
        assert np.abs(y[200:SR - 200] - ref[200:SR - 200]).max() < tol
    assert load_audio(tmp_path / "a.wav", SR, n_samples=100).shape == (100,)
    assert load_audio(tmp_path / "a.wav", SR).shape == (SR,)


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str, dict]]:
    tmp.mkdir(exist_ok=True)
    (tmp / "empty.wav").write_bytes(b"")
    (tmp / "notes.wav").write_text("this is a text file, not audio\n" * 10)
    (tmp / "badheader.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 64)
    sf.write(tmp / "whole.wav", _tone(440.0, 1.0), SR)
    (tmp / "truncated.wav").write_bytes((tmp / "whole.wav").read_bytes()[:4000])
    sf.write(tmp / "zero_frames.wav", np.zeros(0, np.float32), SR)
    sf.write(tmp / "short.wav", _tone(440.0, 0.1), SR)
    sf.write(tmp / "silent.wav", np.zeros(SR, np.float32), SR)
    nan = _tone(440.0, 1.0)
    nan[100] = np.nan
    sf.write(tmp / "nan.wav", nan, SR, subtype="FLOAT")
    inf = _tone(440.0, 1.0)
    inf[5] = np.inf
    sf.write(tmp / "inf.wav", inf, SR, subtype="FLOAT")
    (tmp / "folder.wav").mkdir(exist_ok=True)
    flac = tmp / "good.flac"
    sf.write(flac, np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32), SR)
    data = bytearray(flac.read_bytes())
    data[len(data) // 2: len(data) // 2 + 4000] = bytes(4000)
    (tmp / "corrupt.flac").write_bytes(bytes(data))
    return {
        "missing": (tmp / "nothere.wav", "not found", {}),
        "folder": (tmp / "folder.wav", "folder", {}),
        "empty": (tmp / "empty.wav", "empty", {}),
        "non-audio": (tmp / "notes.wav", "not an audio file", {}),
        "corrupt header": (tmp / "badheader.wav", "corrupt or unreadable", {}),
        "corrupt data": (tmp / "corrupt.flac", "corrupt or unreadable", {}),
        "truncated": (tmp / "truncated.wav", "truncated", {}),
        "zero frames": (tmp / "zero_frames.wav", "0 frames", {}),
        "too short": (tmp / "short.wav", "too short", {"min_seconds": 0.5}),
        "silent": (tmp / "silent.wav", "silent", {}),
        "nan": (tmp / "nan.wav", "NaN/inf", {}),
        "inf": (tmp / "inf.wav", "NaN/inf", {}),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "non-audio", "corrupt header", "corrupt data",
                                  "truncated", "zero frames", "too short", "silent", "nan", "inf"])
def test_load_audio_bad_input(tmp_path, case):
    path, message, kwargs = _bad_files(tmp_path / "bad")[case]
    with pytest.raises(AudioError, match=message) as exc:
        load_audio(path, SR, n_samples=SR, **kwargs)
    text = str(exc.value)
    assert "\n" not in text and path.name in text


def test_load_audio_thresholds(tmp_path):
    sf.write(tmp_path / "quiet.wav", _tone(440.0, 1.0, amp=1e-4), SR, subtype="FLOAT")
    assert load_audio(tmp_path / "quiet.wav", SR).shape == (SR,)
    with pytest.raises(AudioError, match="silent"):
        load_audio(tmp_path / "quiet.wav", SR, silence_threshold=1e-3)
    assert math.isclose(float(np.abs(load_audio(tmp_path / "quiet.wav", SR, silence_threshold=None)).max()), 1e-4,
                        rel_tol=0.01)
