"""The DDSP subtractive synthesizer of paper 2 (synthproxy.ddsp): closed-form signal checks,
gradients, variants and errors. Small batches and short clips keep the file fast on one core."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from synthproxy.ddsp import DDSPSynth, variant_names
from synthproxy.ddsp.core import ParamRange, fft_convolve, n_control_frames, resample_frames, upsample_frames
from synthproxy.ddsp.effects import (
    CHORUS_DELAY_RANGE,
    CHORUS_MIX_RANGE,
    REVERB_DECAY_RANGE,
    REVERB_GAIN_RANGE,
    Chorus,
    DecayReverb,
    variable_delay,
)
from synthproxy.ddsp.envelopes import ADSR, SineLFO
from synthproxy.ddsp.filters import CUTOFF_RANGE, Q_RANGE, HarmonicLowpass, lowpass_response
from synthproxy.ddsp.oscillators import (
    AMPLITUDE_RANGE,
    F0_MULT_RANGE,
    F0_RANGE,
    OSC_MIX_RANGE,
    harmonic_distribution,
    render_partials,
)
from synthproxy.ddsp.variants import load_catalogue
from synthproxy.errors import ConfigError

SR = 16000

FX_ENV_OFFICIAL = [
    "M_OSC", "BFRQ", "F0_MULT", "Q_FILT", "PEAK_A", "AT_A", "DE_A", "SU_A", "RE_A", "AT_C", "DE_C", "SU_C", "RE_C",
    "CUT_FLOOR", "PEAK_C", "REV_GAIN", "REV_DEC", "MD_DELAY", "MD_MIX",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spectrum_magnitudes(audio: torch.Tensor) -> torch.Tensor:
    """Sine amplitudes per FFT bin of a 1-D signal (exact for bin-aligned, whole-period sinusoids)."""
    return torch.fft.rfft(audio.double()).abs() * 2.0 / audio.shape[-1]


# ------------------------------------------------------------------------------------------------
# oscillators


@pytest.mark.parametrize("mix", [0.0, 1.0, 0.3])
def test_partial_amplitudes_match_fourier_series_and_stop_at_nyquist(mix: float) -> None:
    f0, amp, n_harm = 700.0, 0.5, 24  # 1 s at 16 kHz: 1 Hz bins; harmonics 12..24 lie above Nyquist
    dist = harmonic_distribution(torch.tensor([[[mix]]], dtype=torch.float64), n_harm)  # (1, 1, 1, K)
    audio = render_partials(
        amp * dist, torch.tensor([[[f0]]], dtype=torch.float64), SR, sample_rate=SR, frame_rate=60
    )[0]
    mags = spectrum_magnitudes(audio)
    k = np.arange(1, 12)
    saw = 2.0 / (math.pi * k)
    square = np.where(k % 2 == 1, 4.0 / (math.pi * k), 0.0)
    expected = amp * ((1 - mix) * saw + mix * square)
    np.testing.assert_allclose(mags[(k * f0).astype(int)].numpy(), expected, atol=1e-9)
    others = mags.clone()
    others[(k * f0).astype(int)] = 0.0
    assert float(others.max()) < 1e-9  # no aliases of the partials above Nyquist, no leakage


def test_main_section_spectrum_is_partials_times_filter_response() -> None:
    synth = DDSPSynth("raw_f0", duration=1.0)
    q = 1 / math.sqrt(2)
    static = torch.tensor([[0.0, 0.0, 0.0, Q_RANGE.to_unit(torch.tensor(q)).item()]])  # saw, saw, mult 1, Q
    dynamic = torch.zeros(1, synth.n_frames, 3)
    dynamic[..., 0] = 0.8  # oscillator 1 amplitude; oscillator 2 silent
    dynamic[..., 2] = 1.0  # cutoff 8 kHz
    audio = synth(static.double(), dynamic.double(), torch.tensor([500.0], dtype=torch.float64))[0]
    mags = spectrum_magnitudes(audio)
    k = torch.arange(1, 16, dtype=torch.float64)  # 16 · 500 Hz = Nyquist: zeroed
    expected = 0.8 * 2 / (math.pi * k) * lowpass_response(500 * k, torch.tensor(8000.0), torch.tensor(q))
    torch.testing.assert_close(mags[(500 * k).long()], expected, atol=1e-9, rtol=1e-6)  # float32 controls
    assert float(mags[8000]) < 1e-9


def test_frame_wise_external_f0_matches_constant_f0() -> None:
    synth = DDSPSynth("raw_f0", duration=0.25)
    params = synth.sample_params(2, torch.Generator().manual_seed(3))
    f0 = torch.tensor([110.0, 440.0])
    a = synth(params.static, params.dynamic, f0)
    b = synth(params.static, params.dynamic, f0[:, None].expand(-1, synth.n_frames).contiguous())
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------
# filter


@pytest.mark.parametrize("q", [0.1, 0.707, 1.0, 2.0])
def test_lowpass_response_closed_form(q: float) -> None:
    fc, qt = torch.tensor(1000.0, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)
    assert float(lowpass_response(fc, fc, qt)) == pytest.approx(q, rel=1e-12)
    assert float(lowpass_response(fc / 1000, fc, qt)) == pytest.approx(1.0, abs=1e-4)
    for ratio in (1e3, 1e4):  # (fc/f)² needs f ≫ fc/Q
        assert float(lowpass_response(fc * ratio, fc, qt)) == pytest.approx(ratio**-2, rel=2e-3)


def test_filter_controls_scale_to_official_ranges() -> None:
    filt = HarmonicLowpass()
    c = filt.get_controls(cutoff=torch.tensor([0.0, 0.5, 1.0]), q=torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(c["cutoff"], torch.tensor([30.0, math.sqrt(30 * 8000), 8000.0]))
    torch.testing.assert_close(c["q"], torch.tensor([0.1, 2.0, 1.05]))


# ------------------------------------------------------------------------------------------------
# envelopes


def make_adsr(soft: float | None, note_off: float = 1.0) -> ADSR:
    return ADSR(1, note_off=note_off, duration=2.0, frame_rate=100, n_frames=201, level_range=(0.0, 1.0),
                soft_clamp=soft)


def adsr_curve(env: ADSR, **phys: float) -> torch.Tensor:
    args = {k: torch.tensor([[v]], dtype=torch.float64) for k, v in phys.items()}
    return env.get_signal(**args)[0, :, 0]


def test_adsr_stage_boundaries_hard_clamp() -> None:
    v = adsr_curve(make_adsr(None), floor=0.1, peak=0.9, attack=0.2, decay=0.3, sustain=0.5, release=0.4)
    sustain_level = 0.1 + 0.5 * 0.8

    def at(t: float) -> float:
        return float(v[round(t * 100)])

    assert at(0.0) == pytest.approx(0.1)  # base at note-on
    assert at(0.1) == pytest.approx(0.5)  # half-way up the attack
    assert at(0.2) == pytest.approx(0.9)  # peak at t = attack
    assert at(0.35) == pytest.approx(0.9 - 0.5 * (0.9 - sustain_level))  # half-way down the decay
    for t in (0.5, 0.75, 1.0):
        assert at(t) == pytest.approx(sustain_level)  # sustain after attack + decay, until note-off
    assert at(1.2) == pytest.approx(0.1 + 0.25 * 0.8)  # half-way through the release
    assert torch.allclose(v[140:], torch.tensor(0.1, dtype=torch.float64))  # base after release


def test_adsr_soft_clamp_is_close_to_hard_clamp_and_exact_at_the_corners() -> None:
    phys = {"floor": 0.0, "peak": 0.6, "attack": 0.2, "decay": 0.3, "sustain": 0.5, "release": 0.4}
    hard, soft = adsr_curve(make_adsr(None), **phys), adsr_curve(make_adsr(100.0), **phys)
    assert float(soft[0]) == 0.0
    assert float(soft[20]) == pytest.approx(0.6, abs=1e-12)
    assert float((soft - hard).abs().max()) < 0.01
    assert float((soft[60:100] - hard[60:100]).abs().max()) < 1e-6  # well inside the sustain


def test_adsr_clamps_to_level_range_when_released_during_attack() -> None:
    env = make_adsr(None, note_off=0.5)
    v = adsr_curve(env, floor=0.0, peak=1.0, attack=1.5, decay=0.3, sustain=1.0, release=0.1)
    # unclamped sum at t = 0.6 s: 0.6 / 1.5 − 1 < 0
    assert float(v[60]) == 0.0
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0
    assert float(v[50]) == pytest.approx(0.5 / 1.5)


def test_adsr_controls_scale_times_by_note_off_and_duration() -> None:
    env = ADSR(2, note_off=3.0, duration=4.0, frame_rate=60, n_frames=241, level_range=(0.0, 0.6))
    one = torch.ones(1, 2)
    c = env.get_controls(floor=one, peak=one, attack=one, decay=one, sustain=one, release=one)
    assert [float(c[k][0, 0]) for k in ("floor", "peak", "attack", "decay", "sustain", "release")] == pytest.approx(
        [0.6, 0.6, 3.0, 4.0, 1.0, 4.0]
    )


def test_sine_lfo() -> None:
    lfo = SineLFO(rate_hz=1.0, level=1.0, frame_rate=60, n_frames=241)
    wave = lfo.get_signal(2, torch.zeros(1, dtype=torch.float64))
    assert wave.shape == (2, 241, 1)
    assert float(wave[0, 0, 0]) == 0.0 and float(wave[0, 15, 0]) == pytest.approx(1.0)  # 0.25 s


# ------------------------------------------------------------------------------------------------
# effects


def impulse(n: int, at: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.zeros(1, n, dtype=dtype)
    x[0, at] = 1.0
    return x


def test_chorus_without_modulation_is_a_pure_delay() -> None:
    chorus = Chorus(sample_rate=SR, frame_rate=60, depth=0.0)
    x = impulse(2000, 100)
    y = chorus.get_signal(x, torch.tensor([[5.0]]), torch.tensor([[1.0]]), torch.zeros(1, 3, 1))
    assert float(y[0, 180]) == pytest.approx(1.0, abs=1e-2)  # 5 ms = 80 samples
    assert float(y.abs().sum()) == pytest.approx(1.0, abs=1e-2)
    y = chorus.get_signal(x, torch.tensor([[3.3]]), torch.tensor([[1.0]]))  # 52.8 samples: linear interpolation
    assert float(y[0, 152]) == pytest.approx(0.2, abs=1e-2) and float(y[0, 153]) == pytest.approx(0.8, abs=1e-2)
    centroid = float((y[0] * torch.arange(2000)).sum() / y[0].sum())
    assert centroid == pytest.approx(152.8, abs=1e-2)
    y = chorus.get_signal(x, torch.tensor([[5.0]]), torch.tensor([[0.25]]))
    assert float(y[0, 100]) == pytest.approx(0.75) and float(y[0, 180]) == pytest.approx(0.25, abs=1e-2)


def test_chorus_delay_follows_the_lfo() -> None:
    lfo_value = torch.full((1, 4, 1), 0.5)
    nominal = Chorus(sample_rate=SR, frame_rate=60)
    official = Chorus(sample_rate=SR, frame_rate=60, delay_mapping="official")
    d = torch.tensor([[5.0]])
    assert float(nominal.delay_samples(d, lfo_value, 10)[0, 0]) == pytest.approx(80 * (1 + 0.25 * 0.5))
    # official: LFO rescaled to 2m − 1, delay measured back from 2 · 10 ms
    assert float(official.delay_samples(d, lfo_value, 10)[0, 0]) == pytest.approx(320 - 80 * (1 + 0.25 * 0.0))
    x = impulse(4000, 50, torch.float64)
    y = nominal.get_signal(x, torch.tensor([[10.0]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64),
                           torch.full((1, 4, 1), -1.0, dtype=torch.float64))
    centroid = float((y[0] * torch.arange(4000)).sum() / y[0].sum())
    assert centroid == pytest.approx(50 + 160 * 0.75, abs=1e-6)


def test_variable_delay_zero_is_identity() -> None:
    x = torch.randn(2, 500, dtype=torch.float64)
    torch.testing.assert_close(variable_delay(x, torch.zeros(2, 1, dtype=torch.float64)), x)


def test_reverb_impulse_response_decays_exponentially() -> None:
    reverb = DecayReverb(sample_rate=SR, seed=0)
    for decay in (10.0, 25.0):
        ir = reverb.impulse_response(torch.tensor([[0.2]], dtype=torch.float64), torch.tensor([[decay]]).double())[0]
        assert ir.shape == (SR,) and float(ir[0]) == 0.0
        energy = ir[: SR - SR % 800].reshape(-1, 800).square().mean(-1)  # 50 ms blocks
        t = (torch.arange(energy.shape[0], dtype=torch.float64) + 0.5) * 0.05
        slope, intercept = np.polyfit(t.numpy(), torch.log(energy).numpy(), 1)
        assert slope == pytest.approx(-2 * decay, rel=0.05)
        # mean of (uniform noise)² · exp(−2 decay t) over a block, extrapolated to t = 0
        block = (1 - math.exp(-2 * decay * 0.05)) / (2 * decay * 0.05) * math.exp(decay * 0.05)
        assert math.exp(intercept) == pytest.approx(0.2**2 / 3 * block, rel=0.1)


def test_reverb_dry_path_and_convolution() -> None:
    reverb = DecayReverb(sample_rate=SR, seed=0)
    x = torch.randn(2, 3000)
    assert torch.equal(reverb.get_signal(x, torch.zeros(2, 1), torch.full((2, 1), 15.0)), x)
    reverb_short = DecayReverb(sample_rate=SR, seconds=0.01, seed=1)
    xs = torch.randn(1, 400, dtype=torch.float64)
    gain, decay = torch.tensor([[0.2]], dtype=torch.float64), torch.tensor([[12.0]], dtype=torch.float64)
    ir = reverb_short.impulse_response(gain, decay)
    direct = np.convolve(xs[0].numpy(), ir[0].numpy())[:400]
    np.testing.assert_allclose(reverb_short.get_signal(xs, gain, decay)[0].numpy(), xs[0].numpy() + direct,
                               atol=1e-12)
    torch.testing.assert_close(fft_convolve(xs, ir), torch.from_numpy(direct)[None])


def test_reverb_noise_is_seeded() -> None:
    torch.manual_seed(1)
    a = DecayReverb(sample_rate=SR, seed=7).noise
    torch.manual_seed(2)
    torch.rand(10)
    b = DecayReverb(sample_rate=SR, seed=7).noise
    c = DecayReverb(sample_rate=SR, seed=8).noise
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert float(a.min()) >= -1.0 and float(a.max()) < 1.0
    s1, s2 = DDSPSynth("fx_env", duration=0.25, reverb_seed=3), DDSPSynth("fx_env", duration=0.25, reverb_seed=4)
    p = s1.sample_params(1, torch.Generator().manual_seed(0))
    assert not torch.equal(s1(p.static), s2(p.static))


# ------------------------------------------------------------------------------------------------
# core


def test_param_ranges_round_trip() -> None:
    u = torch.linspace(0, 1, 11, dtype=torch.float64)
    for rng in (F0_RANGE, CUTOFF_RANGE, REVERB_GAIN_RANGE, Q_RANGE):
        torch.testing.assert_close(rng.to_unit(rng.to_physical(u)), u)
        assert float(rng.to_physical(u[:1])) == pytest.approx(rng.low)
        assert float(rng.to_physical(u[-1:])) == pytest.approx(rng.high)
    assert float(F0_RANGE.to_physical(torch.tensor(0.5))) == pytest.approx(math.sqrt(32.5 * 1980), rel=1e-6)
    assert float(REVERB_GAIN_RANGE.to_physical(torch.tensor(0.5))) == pytest.approx(0.25 * 0.5 ** math.log(10))


def test_upsampling_places_frames_at_their_times() -> None:
    frames = torch.tensor([[0.0, 1.0, 3.0]], dtype=torch.float64)  # frames at 0, 0.01, 0.02 s
    up = upsample_frames(frames, 500, 100, 10000)
    assert float(up[0, 0]) == 0.0 and float(up[0, 100]) == 1.0 and float(up[0, 150]) == 2.0
    assert torch.all(up[0, 200:] == 3.0)  # held after the last frame
    assert resample_frames(frames, 5)[0].tolist() == [0.0, 0.5, 1.0, 2.0, 3.0]
    assert n_control_frames(4.0, 60) == 241


def test_yaml_ranges_are_the_official_module_defaults() -> None:
    synth = DDSPSynth("fx_env")
    raw = DDSPSynth("raw")
    ranges = {**synth.ranges(), **raw.ranges()}
    assert ranges["f0"] == F0_RANGE and ranges["f0_mult"] == F0_MULT_RANGE
    assert ranges["osc_mix"] == OSC_MIX_RANGE and ranges["amplitude"] == AMPLITUDE_RANGE
    assert ranges["cutoff"] == CUTOFF_RANGE and ranges["filter_q"] == Q_RANGE
    assert ranges["chorus_delay"] == CHORUS_DELAY_RANGE and ranges["chorus_mix"] == CHORUS_MIX_RANGE
    assert ranges["reverb_decay"] == REVERB_DECAY_RANGE
    assert ranges["reverb_gain"].high == REVERB_GAIN_RANGE.high
    assert ranges["reverb_gain"].exponent == pytest.approx(REVERB_GAIN_RANGE.exponent)
    assert ranges["amp_attack"] == ParamRange(0.0, 3.0) and ranges["amp_release"] == ParamRange(0.0, 4.0)
    assert ranges["amp_peak"] == ParamRange(0.0, 0.6)
    assert synth.fixed_values == {"amp_floor": 0.0, "amp_env_max": 0.6, "cutoff_env_max": 1.0, "chorus_depth": 0.25,
                                  "lfo_rate": 1.0, "lfo_level": 1.0, "note_off": 3.0}
    assert load_catalogue().synth["n_harmonics"] == 24


def test_package_layers_import_one_way() -> None:
    """core ← oscillators/filters/envelopes/effects ← variants ← synth; only synthproxy.errors from outside."""
    allowed = {
        "core": set(), "oscillators": {"core"}, "filters": {"core"}, "envelopes": {"core"}, "effects": {"core"},
        "variants": {"core"}, "synth": {"core", "oscillators", "filters", "envelopes", "effects", "variants"},
    }
    package = Path(__file__).resolve().parents[1] / "src" / "synthproxy" / "ddsp"
    for name, ok in allowed.items():
        tree = ast.parse((package / f"{name}.py").read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        inner = {m.split(".")[2] for m in imported if m.startswith("synthproxy.ddsp.")}
        outer = {m for m in imported if m.startswith("synthproxy") and not m.startswith("synthproxy.ddsp")}
        assert inner <= ok, (name, inner - ok)
        assert outer <= {"synthproxy.errors"}, (name, outer)


# ------------------------------------------------------------------------------------------------
# variants


COUNTS = {  # variant: (named groups, static scalars, dynamic scalars, external f0)
    "raw": (6, 5, 3, False),
    "raw_env": (15, 21, 0, False),
    "fx": (10, 9, 3, False),
    "fx_env": (19, 25, 0, False),
    "raw_f0": (5, 4, 3, True),
    "fx_f0": (9, 8, 3, True),
    "unordered": (5, 5, 3, False),
}


def test_all_variants_are_declared() -> None:
    assert set(variant_names()) == set(COUNTS)


@pytest.mark.parametrize("variant", sorted(COUNTS))
def test_variant_counts_shapes_and_determinism(variant: str) -> None:
    synth = DDSPSynth(variant, duration=0.25)
    groups, n_static, n_dynamic, external = COUNTS[variant]
    assert len(synth.parameter_groups) == groups
    assert (synth.n_static, synth.n_dynamic, synth.external_f0) == (n_static, n_dynamic, external)
    assert len(synth.static_names) == n_static == sum(g.channels for g in synth.static_groups)
    assert synth.n_frames == 16 and synth.n_samples == 4000
    params = synth.sample_params(2, torch.Generator().manual_seed(0))
    assert params.static.shape == (2, n_static) and params.static.dtype == torch.float32
    assert (params.dynamic is None) == (n_dynamic == 0) and (params.f0_hz is None) == (not external)
    if params.dynamic is not None:
        assert params.dynamic.shape == (2, 16, n_dynamic)
        assert float(params.dynamic.min()) >= 0.0 and float(params.dynamic.max()) <= 1.0
    audio = synth(*params)
    assert audio.shape == (2, 4000) and audio.dtype == torch.float32 and torch.isfinite(audio).all()
    assert float(audio.abs().max()) > 0
    assert torch.equal(audio, synth(*params))
    assert torch.equal(audio, DDSPSynth(variant, duration=0.25)(*params))
    assert len(synth.parameter_table()) == groups + int(external)


def test_fx_env_has_the_papers_19_parameters() -> None:
    synth = DDSPSynth("fx_env")
    assert [g.official for g in synth.parameter_groups] == FX_ENV_OFFICIAL
    assert {g.name: g.channels for g in synth.parameter_groups if g.channels > 1} == {
        "osc_mix": 2, "amp_peak": 2, "amp_attack": 2, "amp_decay": 2, "amp_sustain": 2, "amp_release": 2,
    }
    assert synth.static_names[:6] == ("osc_mix_1", "osc_mix_2", "f0", "f0_mult", "filter_q", "amp_peak_1")
    assert synth.dynamic_names == () and synth.n_frames == 241 and synth.n_samples == 64000


def test_frame_wise_variants_name_their_dynamic_controls() -> None:
    assert DDSPSynth("raw").dynamic_names == ("amplitude_1", "amplitude_2", "cutoff")
    assert DDSPSynth("unordered").static_names == ("osc_mix_1", "osc_mix_2", "osc_f0_1", "osc_f0_2", "filter_q")
    assert "f0" not in DDSPSynth("fx_f0").static_names


def test_unordered_oscillators_have_independent_f0() -> None:
    synth = DDSPSynth("unordered", duration=0.25)
    static = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.5]])  # oscillator 1 at 1980 Hz, oscillator 2 at 32.5 Hz
    phys = synth.physical(static, torch.zeros(1, synth.n_frames, 3))
    torch.testing.assert_close(phys["osc_f0"], torch.tensor([[1980.0, 32.5]]))


def test_sampling_is_deterministic_given_a_generator() -> None:
    synth = DDSPSynth("fx", duration=0.25)
    torch.manual_seed(0)
    a = synth.sample_params(3, torch.Generator().manual_seed(42))
    torch.manual_seed(1)
    b = synth.sample_params(3, torch.Generator().manual_seed(42))
    c = synth.sample_params(3, torch.Generator().manual_seed(43))
    assert torch.equal(a.static, b.static) and torch.equal(a.dynamic, b.dynamic)
    assert not torch.equal(a.static, c.static)
    const = synth.sample_params(3, torch.Generator().manual_seed(42), dynamic="constant").dynamic
    assert const is not None and torch.equal(const, const[:, :1].expand_as(const))
    f0 = DDSPSynth("raw_f0", duration=0.25).sample_params(500, torch.Generator().manual_seed(0)).f0_hz
    assert f0 is not None and float(f0.min()) >= 32.5 and float(f0.max()) <= 1980.0
    assert float(torch.log(f0).median()) == pytest.approx(math.log(math.sqrt(32.5 * 1980)), abs=0.3)


def test_official_chorus_mapping_option() -> None:
    synth = DDSPSynth("fx_env", duration=0.25, options={"chorus_delay_mapping": "official"})
    assert synth.chorus is not None and synth.chorus.delay_mapping == "official"
    p = synth.sample_params(1, torch.Generator().manual_seed(0))
    assert not torch.equal(synth(p.static), DDSPSynth("fx_env", duration=0.25)(p.static))


# ------------------------------------------------------------------------------------------------
# gradients


@pytest.mark.parametrize("variant", ["fx_env", "fx", "raw_f0", "unordered"])
def test_gradients_are_finite(variant: str) -> None:
    synth = DDSPSynth(variant, duration=0.5)
    p = synth.sample_params(2, torch.Generator().manual_seed(1))
    static = p.static.clone().requires_grad_(True)
    dynamic = None if p.dynamic is None else p.dynamic.clone().requires_grad_(True)
    f0 = None if p.f0_hz is None else p.f0_hz[:, None].repeat(1, synth.n_frames).requires_grad_(True)
    synth(static, dynamic, f0).square().mean().backward()
    for x in (static, dynamic, f0):
        if x is not None:
            assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().max()) > 0


FD_PARAMS = ["osc_mix_1", "f0", "f0_mult", "filter_q", "amp_peak_1", "amp_attack_2", "amp_sustain_1",
             "cutoff_decay", "cutoff_peak", "reverb_gain", "reverb_decay", "chorus_delay", "chorus_mix"]


def test_gradients_match_finite_differences() -> None:
    synth = DDSPSynth("fx_env", duration=0.25)
    names = list(synth.static_names)
    static = torch.full((1, synth.n_static), 0.5, dtype=torch.float64)
    static += 0.2 * torch.rand(static.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) - 0.1
    static[0, names.index("f0")] = F0_RANGE.to_unit(torch.tensor(200.0)).item()  # partials clear of Nyquist
    static[0, names.index("f0_mult")] = F0_MULT_RANGE.to_unit(torch.tensor(2.1)).item()
    weights = torch.randn(synth.n_samples, generator=torch.Generator().manual_seed(6), dtype=torch.float64)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return (synth(x)[0] * weights).sum()

    x = static.clone().requires_grad_(True)
    loss(x).backward()
    assert x.grad is not None
    h = 1e-7  # small: the chorus's linear interpolation has kinks at integer read positions
    for name in FD_PARAMS:
        i = names.index(name)
        step = torch.zeros_like(static)
        step[0, i] = h
        with torch.no_grad():
            fd = (loss(static + step) - loss(static - step)) / (2 * h)
        assert float(x.grad[0, i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-6), name


def test_dynamic_gradients_match_finite_differences() -> None:
    synth = DDSPSynth("raw", duration=0.25)
    p = synth.sample_params(1, torch.Generator().manual_seed(2), dtype=torch.float64)
    assert p.dynamic is not None
    weights = torch.randn(synth.n_samples, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    dyn = p.dynamic.clone().requires_grad_(True)
    (synth(p.static, dyn)[0] * weights).sum().backward()
    assert dyn.grad is not None
    h = 1e-6
    for frame, col in ((3, 0), (8, 1), (5, 2)):
        step = torch.zeros_like(p.dynamic)
        step[0, frame, col] = h
        with torch.no_grad():
            diff = synth(p.static, p.dynamic + step)[0] - synth(p.static, p.dynamic - step)[0]
            fd = (diff * weights).sum() / (2 * h)
        assert float(dyn.grad[0, frame, col]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)


def test_partial_renderer_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    for amp_frames, f0_frames in ((4, 1), (4, 4), (1, 1)):
        amps = torch.rand(2, amp_frames, 2, 3, generator=g, dtype=torch.float64).requires_grad_(True)
        f0 = (100 + 900 * torch.rand(2, f0_frames, 2, generator=g, dtype=torch.float64)).requires_grad_(True)

        def fn(a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
            return render_partials(a, f, 150, sample_rate=4000, frame_rate=20, max_chunk_elements=200)

        assert torch.autograd.gradcheck(fn, (amps, f0), eps=1e-6, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# errors


def test_errors() -> None:
    with pytest.raises(ConfigError, match="unknown DDSP synth variant 'fx-env'"):
        DDSPSynth("fx-env")
    with pytest.raises(ConfigError, match="unknown DDSPSynth options"):
        DDSPSynth("raw", options={"n_partials": 3})
    with pytest.raises(ConfigError, match="positive"):
        DDSPSynth("raw", note_off=0.0)
    raw = DDSPSynth("raw", duration=0.25)
    dyn = torch.rand(2, raw.n_frames, 3)
    with pytest.raises(ConfigError, match=r"static must have shape \(B, 5\)"):
        raw(torch.rand(2, 4), dyn)
    with pytest.raises(ConfigError, match="floating"):
        raw(torch.ones(2, 5, dtype=torch.int64), dyn)
    with pytest.raises(ConfigError, match="needs dynamic controls"):
        raw(torch.rand(2, 5))
    with pytest.raises(ConfigError, match="dynamic must have shape"):
        raw(torch.rand(2, 5), torch.rand(2, raw.n_frames + 1, 3))
    with pytest.raises(ConfigError, match="f0_hz must not be given"):
        raw(torch.rand(2, 5), dyn, torch.full((2,), 220.0))
    raw_f0 = DDSPSynth("raw_f0", duration=0.25)
    with pytest.raises(ConfigError, match="f0 is external"):
        raw_f0(torch.rand(2, 4), dyn)
    with pytest.raises(ConfigError, match="f0_hz must have shape"):
        raw_f0(torch.rand(2, 4), dyn, torch.full((2, 7), 220.0))
    with pytest.raises(ConfigError, match="has no dynamic controls"):
        DDSPSynth("fx_env", duration=0.25)(torch.rand(2, 25), dyn)
    with pytest.raises(ConfigError, match="dynamic sampling"):
        raw.sample_params(2, dynamic="smooth")
