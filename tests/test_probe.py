"""probe-plugin on amSynth: the discrete values it derives, checked against the plugin and the shipped spec."""

from __future__ import annotations

import re

import pytest
import yaml

from synthproxy.cli import main
from synthproxy.synths.probe import draft_spec_yaml, probe_plugin
from synthproxy.synths.spec import load_spec

from .conftest import REPO

# 169 points = multiples of 1/168 = 1/lcm(4, 6, 7, 8, 24): every k/(n-1) of amSynth's steps lies on the grid
GRID = 169


@pytest.fixture(scope="module")
def probed(amsynth_plugin):
    return {p.name: p for p in probe_plugin(amsynth_plugin, grid=GRID)}


@pytest.fixture(scope="module")
def shipped():
    return load_spec(REPO / "config" / "synths" / "amsynth.yaml")


def test_probe_finds_amsynths_discrete_parameters(probed) -> None:
    assert len(probed) == 41 and [p.index for p in probed.values()] == list(range(41))
    discrete = {name: len(p.values) for name, p in probed.items() if p.values is not None}
    assert discrete == {"osc1_waveform": 5, "osc2_waveform": 5, "lfo_waveform": 7, "osc2_range": 8, "osc2_sync": 2,
                        "keyboard_mode": 3, "osc2_pitch": 25, "filter_type": 5, "filter_slope": 2, "freq_mod_osc": 3}
    # amSynth's usual mapping: step k of n at k / (n - 1)
    assert probed["lfo_waveform"].values == [round(k / 6, 6) for k in range(7)]
    assert probed["osc2_range"].values == [round(k / 7, 6) for k in range(8)]
    assert probed["osc2_pitch"].values == [round(k / 24, 6) for k in range(25)]
    # display texts: octaves of osc2_range, semitones of osc2_pitch, waveform indices
    assert probed["osc2_range"].texts == ["0.125", "0.25", "0.5", "1", "2", "4", "8", "16"]
    assert probed["osc2_pitch"].texts == [str(k) for k in range(-12, 13)]
    assert probed["osc1_waveform"].texts == ["0", "1", "2", "3", "4"]
    # defaults read from the plugin
    assert probed["master_vol"].default == 0.67 and probed["osc2_range"].default == round(3 / 7, 6)
    assert probed["amp_sustain"].default == 1.0 and probed["osc1_waveform"].default == 0.5


def test_probe_agrees_with_the_shipped_amsynth_spec(probed, shipped) -> None:
    assert [p.name for p in shipped.params] == list(probed)  # same parameters, same order
    for p in shipped.params:
        probe = probed[p.name]
        assert p.default == pytest.approx(probe.default, abs=1e-6), p.name
        if p.values is None:
            assert probe.values is None, p.name  # continuous in the spec: many display texts in the plugin
            continue
        # the spec's steps are plugin steps (the probe writes them with 6 decimals)
        assert all(min(abs(v - w) for w in probe.values) < 1e-6 for v in p.values), p.name
    # the spec leaves out exactly the noise waveforms (osc 3, 4; LFO 3, 4: non-deterministic)
    spec = {p.name: p for p in shipped.params}
    assert sorted(set(probed["osc1_waveform"].values) - set(spec["osc1_waveform"].values)) == [0.75, 1.0]
    assert sorted(set(probed["lfo_waveform"].values) - set(spec["lfo_waveform"].values)) == [0.5, 0.666667]


@pytest.mark.parametrize("grid", [GRID, 12])
def test_each_probed_value_selects_its_step_in_the_plugin(amsynth_plugin, probed, grid: int) -> None:
    """Setting value k shows display text k; with a coarse grid (12) some values are the middle of a step
    (e.g. osc2_range: 0.272727 for the step at 2/7, which no grid point k/11 hits)."""
    import dawdreamer

    from synthproxy.synths.engines import quiet_native_output

    engine = dawdreamer.RenderEngine(44100, 128)
    with quiet_native_output():
        proc = engine.make_plugin_processor("check", amsynth_plugin)
    params = [p for p in probe_plugin(amsynth_plugin, grid=grid) if probed[p.name].values is not None]
    assert len(params) == 10  # the really discrete ones (at 12 points, continuous ones look discrete too)
    if grid == 12:
        assert next(p for p in params if p.name == "osc2_range").values[2] == 0.272727  # mid-step fallback
    checked = 0
    for p in params:
        for value, text in zip(p.values or [], p.texts, strict=True):
            proc.set_parameter(p.index, value)
            assert proc.get_parameter_text(p.index) == text, (p.name, value, text)
            checked += 1
    assert checked >= 40


def test_draft_spec_loads_and_keeps_the_probed_values(tmp_path, probed, amsynth_plugin) -> None:
    draft = draft_spec_yaml(list(probed.values()), amsynth_plugin)
    path = tmp_path / "draft.yaml"
    path.write_text(draft)
    spec = load_spec(path)
    assert spec.engine == "vst" and spec.plugin == amsynth_plugin and len(spec.params) == 41
    by_name = {p.name: p for p in spec.params}
    assert by_name["filter_type"].kind == "cat" and list(by_name["filter_type"].values) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert by_name["osc2_sync"].kind == "bin" and by_name["amp_attack"].kind == "num"
    assert by_name["osc2_range"].default == round(3 / 7, 6)
    raw = yaml.safe_load(draft)
    assert raw["parameters"][16] == {"name": "lfo_waveform", "type": "cat",
                                     "values": [round(k / 6, 6) for k in range(7)],
                                     "labels": ["0", "1", "2", "3", "4", "5", "6"]}


def test_cli_probe_plugin_prints_the_draft(capsys, amsynth_plugin) -> None:
    assert main(["probe-plugin", "--plugin", amsynth_plugin, "--grid", str(GRID)]) == 0
    out = capsys.readouterr().out
    raw = yaml.safe_load(out)
    assert raw["plugin"] == amsynth_plugin and len(raw["parameters"]) == 41
    assert next(r for r in raw["parameters"] if r["name"] == "osc2_pitch")["values"][12] == 0.5
    # a coarse grid turns continuous parameters into steps, still written as plain YAML numbers
    assert main(["probe-plugin", "--plugin", amsynth_plugin, "--grid", "9"]) == 0
    coarse = yaml.safe_load(capsys.readouterr().out)
    assert coarse["parameters"][0]["values"] == [k / 8 for k in range(9)]


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing.so", r"^error: --plugin .*missing\.so: plugin file not found$"),
    (lambda d: (d / "fake.so").write_text("not a plugin") and d / "fake.so",
     r"^error: --plugin .*fake\.so: could not load the plugin"),
])
def test_cli_probe_plugin_bad_path_is_a_one_line_error(tmp_path, capsys, make, message) -> None:
    assert main(["probe-plugin", "--plugin", str(make(tmp_path))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert re.match(message, lines[0]), lines[0]
