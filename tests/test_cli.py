"""CLI steps used by hand: ``render`` and ``validate-config`` (``probe-plugin``: test_probe.py).

Outputs are checked by value (the written audio against a render made here, the printed config against the
schema's defaults); bad input must give exit status 2 and a one-line ``error: ...`` without a traceback.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
import zarr

from synthproxy.cli import main
from synthproxy.config import validate_config
from synthproxy.pipeline.dataset import DatasetPlan, finalize_split, init_store, render_shard
from synthproxy.synths.engines import RenderSettings, make_engine
from synthproxy.synths.spec import load_spec

from .conftest import REPO, small_config


def _cfg() -> dict:
    cfg = small_config()
    cfg["dataset"]["splits"] = {"test": {"size": 8, "shard_size": 8}}
    return validate_config(cfg)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """8 real Dexed presets (the test split of the small config)."""
    out = tmp_path_factory.mktemp("cli")
    plan = DatasetPlan(_cfg(), "dexed", "test")
    path = out / "test.zarr"
    init_store(plan, path, out / "init.json")
    render_shard(plan, path, 0, out / "shard.json")
    finalize_split(plan, path, [out / "shard.json"], out / "stats.json")
    return path


def _reference(cfg: dict, plugin_vector: np.ndarray) -> np.ndarray:
    """The render worked out here: a fresh Dexed engine and the configured fade-out at the end."""
    spec = load_spec(cfg["synths"]["dexed"]["spec"])
    r = cfg["render"]
    settings = RenderSettings(sample_rate=44100, note=r["note"], velocity=r["velocity"],
                              note_duration=r["note_duration"], duration=r["duration"], block_size=r["block_size"])
    audio = make_engine(spec, settings).render(plugin_vector).astype(np.float64)
    fade = int(44100 * r.get("fade_out", 0.0))
    if fade:
        audio[-fade:] *= np.linspace(1.0, 0.0, fade)
    return audio


def _read(path: Path) -> tuple[np.ndarray, float]:
    """Audio and the step of its sample format (1 LSB of 16-bit PCM, as soundfile writes WAV/FLAC)."""
    audio, sr = sf.read(path, dtype="float64")
    assert sr == 44100
    return audio, {"PCM_16": 2.0**-15, "PCM_24": 2.0**-23, "FLOAT": 1e-7}[sf.info(path).subtype]


def _one_line_error(capsys, pattern: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.mark.parametrize(("index", "suffix"), [(3, ".wav"), (6, ".flac")])
def test_render_writes_the_stored_preset(tmp_path, store, index, suffix) -> None:
    cfg = _cfg()
    out = tmp_path / f"preset{suffix}"
    assert main(["render", "--config-json", json.dumps(cfg), "--synth", "dexed", "--store", str(store),
                 "--index", str(index), "--out", str(out)]) == 0
    audio, lsb = _read(out)
    spec = load_spec(cfg["synths"]["dexed"]["spec"])
    preset = np.asarray(zarr.open_group(str(store), mode="r")["presets"][index])
    ref = _reference(cfg, spec.to_plugin(preset[None])[0])
    assert audio.shape == ref.shape == (5 * 44100,)
    assert np.abs(audio - ref).max() <= 2 * lsb  # the same sound, up to the 16-bit quantisation (and scaling)
    other = _reference(cfg, spec.to_plugin(np.asarray(zarr.open_group(str(store))["presets"][index - 1])[None])[0])
    assert np.abs(audio - other).max() > 100 * lsb  # and not another preset's


def test_render_without_store_writes_the_spec_defaults(tmp_path) -> None:
    cfg = _cfg()
    out = tmp_path / "default.wav"
    assert main(["render", "--config-json", json.dumps(cfg), "--synth", "dexed", "--out", str(out)]) == 0
    audio, lsb = _read(out)
    ref = _reference(cfg, load_spec(cfg["synths"]["dexed"]["spec"]).defaults_plugin_vector())
    assert np.abs(audio - ref).max() <= 2 * lsb and np.abs(ref).max() > 0.01


@pytest.mark.parametrize(("args", "pattern"), [
    (["--index", "8"], r"--index 8 out of range: .*test\.zarr holds 8 presets$"),
    (["--index", "-1"], r"--index -1 out of range: .*holds 8 presets$"),
    (["--out-is-folder"], r"--out .* is a folder; give a file name such as .*preset\.wav$"),
    (["--out-suffix", ".mp3"], r"--out .*x\.mp3: unknown audio file type '\.mp3'; use one of \['\.flac', '\.ogg', "
                               r"'\.wav'\]$"),
    (["--synth", "moog"], r"unknown synth 'moog'; configured: \['amsynth', 'dexed'\]$"),
    (["--store", "missing.zarr"], r"data store not found: .*missing\.zarr"),
])
def test_render_bad_input_is_a_one_line_error(tmp_path, capsys, store, args, pattern) -> None:
    opts = {"--synth": "dexed", "--store": str(store), "--index": "0", "--out": str(tmp_path / "x.wav")}
    if args[0] == "--out-is-folder":
        opts["--out"] = str(tmp_path)
    elif args[0] == "--out-suffix":
        opts["--out"] = str(tmp_path / f"x{args[1]}")
    elif args[0] == "--store":
        opts["--store"] = str(tmp_path / args[1])
    else:
        opts[args[0]] = args[1]
    argv = ["render", "--config-json", json.dumps(_cfg())] + [x for kv in opts.items() for x in kv]
    assert main(argv) == 2
    _one_line_error(capsys, pattern)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, not even a partial file


def test_render_missing_config_file_is_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["render", "--config", str(tmp_path / "nope.yaml"), "--synth", "dexed",
                 "--out", str(tmp_path / "x.wav")]) == 2
    _one_line_error(capsys, r"config file not found: .*nope\.yaml$")


# ----------------------------------------------------------------------------------------------------
# validate-config
# ----------------------------------------------------------------------------------------------------
def _defaults(schema: dict) -> dict:
    """Default of every property the schema gives one, recursively: {key: default or nested dict}."""
    out = {}
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[key] = sub["default"]
        elif sub.get("type") == "object" and "properties" in sub:
            nested = _defaults(sub)
            if nested:
                out[key] = nested
    return out


def test_validate_config_prints_the_config_with_the_schemas_defaults(capsys) -> None:
    raw = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    assert main(["validate-config", "--config", "config/tiny.yaml"]) == 0
    printed = json.loads(capsys.readouterr().out)
    schema = yaml.safe_load((REPO / "src" / "synthproxy" / "schemas" / "config.schema.yaml").read_text())
    defaults = _defaults(schema)
    # every value the file gives is kept as given
    assert printed["seed"] == raw["seed"] and printed["dataset"]["splits"] == raw["dataset"]["splits"]
    assert {k: printed["render"][k] for k in raw["render"]} == raw["render"]
    # every render setting the file leaves out gets the schema's default
    missing = set(defaults["render"]) - set(raw["render"])
    assert missing, "tiny.yaml sets every render key: nothing left to check"
    assert {k: printed["render"][k] for k in missing} == {k: defaults["render"][k] for k in missing}


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda c: c["dataset"]["splits"]["train"].update(size=-1),
     r"^  dataset\.splits\.train\.size: -1 is less than the minimum of 1$"),
    (lambda c: c.update(rendr={}), r"^  \(top level\): unknown key\(s\) \['rendr'\]; allowed: \["),
])
def test_validate_config_names_the_bad_key_without_traceback(tmp_path, capsys, edit, pattern) -> None:
    cfg = copy.deepcopy(yaml.safe_load((REPO / "config" / "tiny.yaml").read_text()))
    edit(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    lines = captured.err.rstrip("\n").splitlines()
    assert lines[0] == f"error: {path}: invalid config:"
    assert len(lines) == 2 and re.match(pattern, lines[1]), captured.err


def test_validate_config_missing_plugin_is_a_one_line_error(tmp_path, capsys) -> None:
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    cfg["synths"]["amsynth"]["plugin"] = str(tmp_path / "amsynth.so")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate-config", "--config", str(path)]) == 2
    _one_line_error(capsys, r"plugin for synth 'amsynth' not found: .*amsynth\.so .*'synths\.amsynth\.plugin'")
