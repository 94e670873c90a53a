"""Tests of the Diva and TAL-NoiseMaker specs (config/synths/{diva,talnm}.yaml) against the paper.

The specs transcribe the paper's repository (pcmbs/synth-proxy, see tools/write_vst_specs.py); here we check
Table 1's parameter counts, the specs' internal consistency, sampling and plugin vectors, and that the five
preset encoders built on the real layouts have Table 2's parameter counts. The plugins are not needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthproxy.nn.factory import ARCHITECTURES, PAPER_PARAMETER_COUNTS_M, parameter_count_table
from synthproxy.presets.sampling import PresetSampler
from synthproxy.synths.spec import SynthSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SYNTHS = ("diva", "talnm")
TABLE_1 = {
    "diva": {"num": 100, "bin": 22, "cat": 51, "total": 173},
    "talnm": {"num": 48, "bin": 3, "cat": 8, "total": 59},
}
TABLE_2_M = {  # mlp_oh, hn_oh, hn_pt, hn_ptgru, tfm (millions, 192-d audio embedding)
    "talnm": dict(zip(ARCHITECTURES, (4.8, 6.1, 4.7, 7.1, 4.8), strict=True)),
    "diva": dict(zip(ARCHITECTURES, (5.4, 6.4, 8.4, 7.2, 4.9), strict=True)),
}
N_PLUGIN_PARAMS = {"diva": 281, "talnm": 86}  # highest plugin index in the paper's repository + 1


@pytest.fixture(scope="module", params=SYNTHS)
def spec(request) -> SynthSpec:
    return load_spec(ROOT / "config" / "synths" / f"{request.param}.yaml")


def test_counts_match_table_1(spec: SynthSpec) -> None:
    assert spec.counts() == TABLE_1[spec.name]
    assert spec.n_params == TABLE_1[spec.name]["total"]


def test_spec_shape(spec: SynthSpec) -> None:
    assert spec.engine == "vst"
    assert spec.plugin and spec.plugin.startswith("/")
    assert len(spec.params) == N_PLUGIN_PARAMS[spec.name]
    assert [p.index for p in spec.params] == list(range(len(spec.params)))
    names = [p.name for p in spec.params]
    assert len(set(names)) == len(names)


def test_discrete_values_and_defaults(spec: SynthSpec) -> None:
    for p in spec.params:
        assert 0.0 <= p.default <= 1.0, p.name
        if p.kind in ("bin", "cat"):
            assert p.is_discrete, p.name
        if p.kind == "bin":
            assert p.values == (0.0, 1.0), p.name
        if p.is_discrete:
            vals = np.asarray(p.values)
            assert np.all((vals >= 0.0) & (vals <= 1.0)), p.name
            assert np.all(np.diff(vals) > 0), f"{p.name}: values not increasing"
            assert p.interval == (0.0, 1.0), p.name
            if p.weights is not None:
                assert len(p.weights) == p.cardinality and abs(sum(p.weights) - 1.0) < 1e-9, p.name
        else:
            lo, hi = p.interval
            assert 0.0 <= lo < hi <= 1.0, p.name


def test_layout_builds(spec: SynthSpec) -> None:
    layout = spec.layout
    assert len(layout.kinds) == spec.n_params
    for kind, card, p in zip(layout.kinds, layout.cardinalities, spec.used, strict=True):
        assert kind == p.kind
        assert card == (p.cardinality if kind == "cat" else 0)
        if kind == "cat":
            assert card >= 2, p.name


def test_sampling_and_plugin_vectors(spec: SynthSpec) -> None:
    presets = PresetSampler(spec, seed=0, split="train").sample(np.arange(64))
    assert presets.shape == (64, spec.n_params)
    assert presets.dtype == np.float32
    for col, p in enumerate(spec.used):
        v = presets[:, col].astype(np.float64)
        if p.kind == "cat":
            assert np.all(v == np.round(v)) and v.min() >= 0 and v.max() < p.cardinality, p.name
        elif p.is_discrete:
            assert np.all(np.isin(v.astype(np.float32), np.asarray(p.values, dtype=np.float32))), p.name
        else:
            lo, hi = p.interval
            assert v.min() >= np.float32(lo) and v.max() <= np.float32(hi), p.name
    plugin = spec.to_plugin(presets)
    assert plugin.shape == (64, len(spec.params))
    assert np.all((plugin >= 0.0) & (plugin <= 1.0))
    excluded = [p.index for p in spec.params if p.excluded]
    np.testing.assert_array_equal(plugin[:, excluded], np.tile(spec.defaults_plugin_vector()[excluded], (64, 1)))
    # Round trip through the plugin representation.
    np.testing.assert_allclose(spec.from_plugin(plugin), presets, atol=1e-6)


def test_repository_facts() -> None:
    """A few spot checks of the transcription (pcmbs/synth-proxy src/data/synths/*.py)."""
    diva = load_spec(ROOT / "config" / "synths" / "diva.yaml")
    by_name = {p.name: p for p in diva.params}
    # 24 mod sources minus _EXCLUDED_CAT_FOR_MOD, on the repository's 3-decimal grid.
    assert by_name["vcf1:freqmodsrc"].values == (0.0, 0.609, 0.652, 0.696, 0.739, 0.87, 0.913, 1.0)
    assert by_name["mod:quantisesource"].values == (0.609, 0.652, 0.696, 0.739)
    assert by_name["fx2:module"].values == (0.5, 0.75)
    assert by_name["env1:release"].interval == (0.0, 0.5)
    # The export config's 'vca:*' patterns match no 'vca1:*' name: the VCA parameters are used.
    assert not by_name["vca1:pan"].excluded and not by_name["vca1:volume"].excluded
    assert by_name["main:output"].excluded and by_name["env2:velocity"].excluded
    talnm = load_spec(ROOT / "config" / "synths" / "talnm.yaml")
    by_name = {p.name: p for p in talnm.params}
    assert by_name["lfo_1_waveform"].values == (0.0, 0.2, 0.4, 0.6, 1.0)
    assert by_name["transpose"].values == (0.0, 0.5, 0.75, 1.0)
    assert by_name["reverb_decay"].interval == (0.0, 0.6)
    assert by_name["osc_1_waveform"].weights == pytest.approx((0.45, 0.45, 0.1))
    assert by_name["delay_wet"].excluded and by_name["envelope_amount"].excluded
    assert by_name["master_volume"].default == pytest.approx(0.408, abs=1e-4)


def test_encoder_parameter_counts_match_table_2() -> None:
    layouts = {s: load_spec(ROOT / "config" / "synths" / f"{s}.yaml").layout for s in ("talnm", "diva")}
    rows = parameter_count_table(layouts)
    assert len(rows) == 2 * len(ARCHITECTURES)
    for row in rows:
        paper = TABLE_2_M[row["synth"]][row["arch"]]
        assert PAPER_PARAMETER_COUNTS_M[row["synth"]][row["arch"]] == paper
        ratio = row["params"] / (paper * 1e6)
        assert 0.9 <= ratio <= 1.1, f"{row['synth']}/{row['arch']}: {row['params']:,} vs {paper}M"
