"""Synth specs: the paper's Table 1 counts, agreement with the real plugins, and malformed specs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthproxy.errors import SpecError
from synthproxy.presets.sampling import PresetSampler
from synthproxy.synths.engines import DEXED_PARAMETERS, RenderSettings, VSTEngine, make_engine
from synthproxy.synths.spec import load_spec

DEXED = "config/synths/dexed.yaml"
AMSYNTH = "config/synths/amsynth.yaml"


def test_dexed_spec_matches_table1():
    spec = load_spec(DEXED)
    assert spec.counts() == {"num": 92, "bin": 0, "cat": 8, "total": 100}
    assert [p.name for p in spec.params] == list(DEXED_PARAMETERS)  # Dexed's own 155 parameters, in order
    assert spec.layout.kinds.count("cat") == 8


def test_amsynth_spec_covers_plugin(amsynth_plugin):
    spec = load_spec(AMSYNTH)
    engine = VSTEngine(spec, RenderSettings(), spec.plugin)  # the in-process engine: its plugin instance
    proc = engine._new_processor()
    reported = [d["name"] for d in proc.get_parameters_description()]
    assert [p.name for p in spec.params] == reported  # all 41, in plugin order
    assert spec.counts() == {"num": 27, "bin": 2, "cat": 5, "total": 34}
    # Excluded and default values are the plugin's own defaults on a fresh instance.
    for i, p in enumerate(spec.params):
        assert proc.get_parameter(i) == pytest.approx(p.default, abs=1e-5), p.name


def test_amsynth_discrete_values_select_distinct_plugin_steps(amsynth_plugin):
    """Each discrete value shows a different display text, in order: the values come from the plugin."""
    spec = load_spec(AMSYNTH)
    engine = VSTEngine(spec, RenderSettings(), spec.plugin)
    proc = engine._new_processor()
    for i, p in enumerate(spec.params):
        if not p.is_discrete:
            continue
        texts = []
        for v in p.values:
            proc.set_parameter(i, v)
            texts.append(proc.get_parameter_text(i))
        assert len(set(texts)) == len(texts), (p.name, texts)
        as_num = [float(t) for t in texts]
        assert as_num == sorted(as_num), (p.name, texts)


def _write(tmp_path, body: str):
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: num, colour: red}\n", "unknown key(s) ['colour']"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: float}\n", "'type' must be one of"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: num, default: 1.5}\n", "'default' must be"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: cat}\n", "needs 'cardinality' or 'values'"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: num}\n  - {name: a, type: num}\n", "appears twice"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: cat, values: [0, 2]}\n", "must lie in [0, 1]"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: cat, cardinality: 3, weights: [1, 2]}\n",
         "'weights' must be 3"),
        ("name: x\nparameters:\n  - {name: a, type: num}\n", "missing top-level key 'engine'"),
        ("name: x\nengine: dexed\nparameters:\n  - {name: a, type: num, excluded: true}\n",
         "every parameter is excluded"),
        ("name: x\nengine: dexed\nparameters: [\n", "not valid YAML"),
    ],
)
def test_malformed_specs_name_file_and_parameter(tmp_path, body, needle):
    path = _write(tmp_path, body)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_spec_with_parameter_the_plugin_lacks(tmp_path, amsynth_plugin):
    text = (Path(AMSYNTH).read_text()).replace("name: osc2_sync", "name: osc3_sync")
    path = tmp_path / "amsynth_bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=r"lacks: \['osc3_sync'\]"):
        make_engine(load_spec(path), RenderSettings())


def test_dexed_spec_with_unknown_parameter(tmp_path):
    path = _write(tmp_path, "name: x\nengine: dexed\nparameters:\n  - {name: op7_level, type: num}\n")
    with pytest.raises(SpecError, match="op7_level"):
        make_engine(load_spec(path), RenderSettings())


def test_dexed_plugin_controls_must_stay_neutral(tmp_path):
    text = Path(DEXED).read_text().replace(
        "{name: cutoff, type: num, default: 1.0, excluded: true",
        "{name: cutoff, type: num, default: 0.5, excluded: true",
    )
    path = tmp_path / "dexed_bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match="'cutoff'"):
        make_engine(load_spec(path), RenderSettings())


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from([DEXED, AMSYNTH]))
def test_preset_plugin_round_trip(index, path):
    spec = load_spec(path)
    presets = PresetSampler(spec, seed=3, split="train").sample(np.array([index, index + 1]))
    back = spec.from_plugin(spec.to_plugin(presets))
    np.testing.assert_allclose(back, presets, atol=1e-6)


def test_spec_hash_changes_with_content(tmp_path):
    a = load_spec(_write(tmp_path, "name: x\nengine: dexed\nparameters:\n  - {name: a, type: num}\n"))
    b = load_spec(_write(tmp_path, "name: x\nengine: dexed\nparameters:\n  - {name: a, type: num, default: 0.5}\n"))
    assert a.hash != b.hash
    with pytest.raises(SpecError, match="category indices"):
        load_spec(AMSYNTH).to_plugin(np.full((1, 34), 7.5))
