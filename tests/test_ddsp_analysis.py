"""Paper-2 analysis blocks: differentiable representations, the Sec. IV synthetic benchmark, effect use and
proxy-gradient fidelity. Short clips, small batches and one thread keep the file fast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from synthproxy.audio.registry import get_representation
from synthproxy.audio.representations import MFCC, MelSpectrogram, MultiResolutionSTFT, sparse_mm_supports_grad
from synthproxy.ddsp import DDSPSynth
from synthproxy.errors import ConfigError
from synthproxy.matching.ddsp_benchmark import (
    TYPICAL_PRESET,
    benchmark_summary,
    parameter_frame,
    spectral_benchmark,
    sweep_values,
    typical_preset,
)
from synthproxy.matching.gradients import (
    ProxyEmbedding,
    SynthEmbedding,
    fade_out_torch,
    gradient_comparison,
    parameter_cosine,
    summary,
    target_pairs,
)
from synthproxy.metrics.spectral import MultiScaleSpectralLoss
from synthproxy.render import fade_out
from synthproxy.report.ddsp import (
    CHORUS_MIX_USED,
    REVERB_GAIN_USED,
    benchmark_figure,
    effects_figure,
    effects_summary,
    gradients_figure,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small_synth() -> DDSPSynth:
    """FX-Env, 1 s at 16 kHz (note-off 0.6 s): every function of the synth, 4x cheaper than the 4 s clip."""
    return DDSPSynth("fx_env", sample_rate=16000, duration=1.0, note_off=0.6)


# ------------------------------------------------------------------------------------------------
# 1. differentiable representations


@pytest.mark.parametrize("name", ["mel128", "mfcc40", "mstft", "mel16k"])
@pytest.mark.parametrize("reduction", ["avg", "nop"])
def test_embed_differentiable_equals_call(name: str, reduction: str) -> None:
    rep = get_representation(name)
    audio = 0.1 * torch.randn(3, rep.sample_rate // 2, generator=torch.Generator().manual_seed(1))
    ref = rep(audio, reduction)
    x = audio.clone().requires_grad_(True)
    out = rep.embed_differentiable(x, reduction)
    assert out.requires_grad and out.shape == ref.shape
    torch.testing.assert_close(out.detach(), ref, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # the inference path is unchanged after a differentiable pass (same object, cache and all)
    torch.testing.assert_close(rep(audio, reduction), ref, rtol=0, atol=0)


def test_differentiable_after_inference_mode_construction_and_calls() -> None:
    with torch.inference_mode():  # filters and windows made under inference mode cannot be saved for backward
        rep = MelSpectrogram(sample_rate=16000, n_fft=512, hop=128, n_mels=32)
        rep(torch.randn(1, 4000), "avg")
    x = torch.randn(2, 4000, requires_grad=True)
    rep(x.detach(), "avg")
    rep.embed_differentiable(x, "nop").square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("rep", [
    MelSpectrogram(sample_rate=8000, n_fft=64, hop=32, n_mels=8),
    MFCC(sample_rate=8000, n_fft=64, hop=32, n_mels=16, n_mfcc=6),
    MultiResolutionSTFT(sample_rate=8000, windows=(64, 32)),
], ids=["mel", "mfcc", "mstft"])
@pytest.mark.parametrize("reduction", ["avg", "nop"])
def test_embed_differentiable_gradients_match_finite_differences(rep, reduction: str) -> None:
    assert sparse_mm_supports_grad(torch.float64)  # the sparse mel product itself is differentiated on CPU
    audio = (0.3 * torch.randn(2, 160, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
             ).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: rep.embed_differentiable(a, reduction), (audio,), eps=1e-6,
                                    atol=1e-5, rtol=1e-4)


def test_mel16k_is_registered_with_its_settings() -> None:
    rep = get_representation("mel16k")
    settings = rep.settings()
    assert settings["name"] == "mel16k"
    assert (settings["sample_rate"], settings["n_fft"], settings["hop"], settings["n_mels"]) == (16000, 1024, 256, 128)
    assert rep.dim(16000, "avg") == 128 and rep.dim(16000, "nop") == 128 * (1 + 16000 // 256)
    assert get_representation("mel16k", n_mels=64).settings()["n_mels"] == 64


def test_embed_differentiable_refuses_bad_input() -> None:
    rep = get_representation("mel16k")
    with pytest.raises(Exception, match="floating torch tensor"):
        rep.embed_differentiable(np.zeros((1, 4000), dtype=np.float32), "avg")
    with pytest.raises(Exception, match="shorter than the minimum"):
        rep.embed_differentiable(torch.zeros(1, 100), "avg")


# ------------------------------------------------------------------------------------------------
# 2. the synthetic benchmark


def test_typical_preset_covers_every_variant_and_sounds(small_synth: DDSPSynth) -> None:
    for variant in ("raw_env", "fx_env"):
        synth = DDSPSynth(variant, duration=1.0, note_off=0.6)
        v = typical_preset(synth)
        assert v.shape == (synth.n_static,) and bool(((v >= 0) & (v <= 1)).all())
    assert set(small_synth.static_names) <= set(TYPICAL_PRESET)
    audio = small_synth(typical_preset(small_synth)[None])
    assert float(audio.square().mean().sqrt()) > 0.05
    with pytest.raises(ConfigError, match="unknown static parameter"):
        typical_preset(small_synth, {"nope": 0.5})
    values, i = sweep_values(0.5, 5)
    assert values.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and i == 2
    values, i = sweep_values(0.3, 5)
    assert len(values) == 6 and values[i] == 0.3


def test_benchmark_loss_is_zero_at_the_original_and_gradients_match_finite_differences(small_synth) -> None:
    params = ["filter_q", "reverb_gain", "chorus_mix"]
    df = spectral_benchmark(small_synth, steps=5, params=params, chunk=3, dtype=torch.float64)
    assert list(dict.fromkeys(df["param"])) == params
    assert set(df.columns) >= {"param", "value", "physical", "loss", "grad", "is_original", "original"}
    orig = df[df["is_original"]]
    assert len(orig) == len(params) and (orig["loss"] == 0).all()
    assert (df.loc[~df["is_original"], "loss"] > 1e-3).all()
    # reverb gain: physical value on the power scale
    row = df[(df["param"] == "reverb_gain") & (df["value"] == 1.0)]
    assert float(row["physical"].iloc[0]) == pytest.approx(0.25)

    loss_fn = MultiScaleSpectralLoss()
    v = typical_preset(small_synth, dtype=torch.float64)
    h = 1e-5
    for name, value in [("filter_q", 0.25), ("reverb_gain", 0.75), ("chorus_mix", 0.0)]:
        k = small_synth.static_names.index(name)
        batch = v.repeat(3, 1)
        batch[1, k], batch[2, k] = value + h, value - h
        with torch.no_grad():
            audio = small_synth(batch)
            lp, lm = loss_fn.per_example(audio[:1].expand(2, -1), audio[1:]).tolist()
        fd = (lp - lm) / (2 * h)
        grad = float(df[(df["param"] == name) & np.isclose(df["value"], value)]["grad"].iloc[0])
        assert grad == pytest.approx(fd, rel=2e-3, abs=1e-3), name

    table = benchmark_summary(df)
    assert list(table["param"]) == params
    assert ((table["right_fraction"] + table["flat_fraction"] + table["wrong_fraction"]).round(9) == 1).all()
    assert (table["loss_at_original"] == 0).all() and (table["basin_width"] >= 0).all()
    # filter resonance, reverb gain and chorus mix are well-behaved parameters of paper Fig. 5: no gradient points
    # away from the original; only the reverb gain is flat at 0 (power scale: d gain / du = 0 at u = 0)
    assert (table["wrong_fraction"] == 0).all() and (table["descent_fraction"] == 1).all()
    assert table.set_index("param").loc["reverb_gain", "flat_fraction"] == 0.25
    assert float(df[(df["param"] == "reverb_gain") & (df["value"] == 0)]["grad"].iloc[0]) == 0.0


def test_benchmark_summary_on_a_constructed_frame() -> None:
    values = np.linspace(0, 1, 5)
    df = pd.DataFrame({
        "param": "a", "value": values, "original": 0.5, "is_original": values == 0.5,
        "loss": [2.0, 1.0, 0.0, 3.0, 1.5], "grad": [-1.0, 1.0, 0.0, 2.0, 1e-6],
    })
    row = benchmark_summary(df).iloc[0]
    assert row["right_fraction"] == 0.5 and row["wrong_fraction"] == 0.25 and row["flat_fraction"] == 0.25
    assert (row["basin_low"], row["basin_high"]) == (0.5, 0.75)
    assert row["descent_fraction"] == pytest.approx(0.75)  # 0 → 0.25 descends, 0.25 → 0.5, 0.75 → 0.5, not 1 → 0.75


# ------------------------------------------------------------------------------------------------
# 3. effect use


def test_effects_summary_and_parameter_frame(small_synth: DDSPSynth) -> None:
    n, p = 8, small_synth.n_static
    names = list(small_synth.static_names)
    real = np.full((n, p), 0.5)
    real[:, names.index("chorus_mix")] = np.linspace(0.0, 0.09, n)  # never above the threshold
    real[:, names.index("reverb_gain")] = 0.0
    mixed = np.full((n, p), 0.5)
    mixed[:, names.index("chorus_mix")] = np.linspace(0.0, 0.7, n)  # 6 of 8 above 0.1
    frame = parameter_frame({"Real": real, "Mixed": mixed}, small_synth)
    assert set(frame.columns) == {"strategy", "sound", "param", "value", "physical", "physical_unit"}
    delay = frame[(frame["param"] == "chorus_delay")]
    assert np.allclose(delay["physical"], 5.5) and set(delay["physical_unit"]) == {"ms"}
    table = effects_summary(frame).set_index("strategy")
    assert table.loc["Real", "chorus_used"] == 0.0 and table.loc["Mixed", "chorus_used"] == 0.75
    assert table.loc["Real", "reverb_used"] == 0.0
    assert table.loc["Mixed", "reverb_used"] == 1.0  # unit 0.5 → gain 0.051 > REVERB_GAIN_USED
    assert table.loc["Mixed", "reverb_decay_median"] == pytest.approx(17.5) and table.loc["Mixed", "n"] == n
    assert 0 < CHORUS_MIX_USED < 1 and 0 < REVERB_GAIN_USED < 0.25


# ------------------------------------------------------------------------------------------------
# 4. proxy-gradient fidelity


def test_fade_out_torch_matches_the_render_fade() -> None:
    audio = np.random.default_rng(0).standard_normal((2, 4000)).astype(np.float32)
    ours = fade_out_torch(torch.from_numpy(audio), 16000, 0.1).numpy()
    ref = np.stack([fade_out(a.copy(), 16000, 0.1) for a in audio])
    np.testing.assert_array_equal(ours, ref)


def test_synth_embedding_is_the_render_pipeline(small_synth: DDSPSynth) -> None:
    rep = get_representation("mel16k")
    exact = SynthEmbedding(small_synth, rep, "avg")
    presets = torch.rand(2, small_synth.n_static, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        audio = small_synth(presets).numpy()
    ref = rep(np.stack([fade_out(a, 16000, 0.1) for a in audio]), "avg")
    torch.testing.assert_close(exact(presets), ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="expects 44100 Hz"):
        SynthEmbedding(small_synth, get_representation("mel128"), "avg")


class _Flipped(nn.Module):
    """Same values as ``fn`` but the negated Jacobian: ``2 · stop_grad(f(x)) − f(x)``."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.fn(x)
        return 2.0 * e.detach() - e


def test_gradient_comparison_identical_and_flipped_proxies(small_synth: DDSPSynth) -> None:
    exact = SynthEmbedding(small_synth, get_representation("mel16k"), "avg")
    pairs = target_pairs(2, small_synth.n_static, [0.05, 0.3], seed=7)
    again = target_pairs(2, small_synth.n_static, [0.05, 0.3], seed=7)
    assert all(torch.equal(a, b) for a, b in zip(pairs, again, strict=True))
    dist = (pairs.presets - pairs.target_presets).abs().amax(dim=1)
    assert bool((dist <= pairs.radius.float() + 1e-6).all()) and bool((dist > 0).all())
    targets = torch.cat([exact(pairs.target_presets[i:i + 2]).detach() for i in range(0, 4, 2)])

    same = gradient_comparison(ProxyEmbedding(exact), exact, pairs.presets, targets, batch=4,
                               target_presets=pairs.target_presets, radius=pairs.radius,
                               names=small_synth.static_names)
    assert len(same) == 4
    np.testing.assert_allclose(same["cosine"], 1.0, atol=1e-6)
    np.testing.assert_array_equal(same["sign_agreement"], 1.0)
    np.testing.assert_allclose(same["loss_exact"], same["loss_proxy"])
    assert (same["loss_exact"] > 0).all() and (same["grad_norm_exact"] > 0).all()
    np.testing.assert_allclose(same["distance_linf"], dist.double().numpy(), rtol=1e-6)
    per_param = parameter_cosine(same)
    assert list(per_param["param"]) == list(small_synth.static_names)
    np.testing.assert_allclose(per_param["cosine"].dropna(), 1.0, atol=1e-6)

    flipped = gradient_comparison(ProxyEmbedding(_Flipped(exact)), exact, pairs.presets, targets, batch=3,
                                  radius=pairs.radius)
    np.testing.assert_allclose(flipped["cosine"], -1.0, atol=1e-6)
    np.testing.assert_array_equal(flipped["sign_agreement"], 0.0)

    table = summary(same)
    assert list(table["group"]) == ["0.05", "0.3", "all"] and list(table["n"]) == [2, 2, 4]
    assert table["cosine"].iloc[-1] == "1.00 ± 0.00"
    by_distance = summary(same, bins=[0.0, 0.1, 1.0])
    assert list(by_distance["n"]) == [2, 2, 4]


def test_gradient_comparison_builds_targets_from_target_presets(small_synth: DDSPSynth) -> None:
    exact = SynthEmbedding(small_synth, get_representation("mel16k"), "avg")
    pairs = target_pairs(2, small_synth.n_static, [float("inf")], seed=0)
    df = gradient_comparison(ProxyEmbedding(exact), exact, pairs.presets, batch=2,
                             target_presets=pairs.target_presets, radius=pairs.radius)
    np.testing.assert_allclose(df["cosine"], 1.0, atol=1e-6)
    assert summary(df)["group"].tolist() == ["inf", "all"]
    with pytest.raises(ConfigError, match="targets or target_presets"):
        gradient_comparison(exact, exact, pairs.presets)


# ------------------------------------------------------------------------------------------------
# figures


def test_figures_are_written(tmp_path, small_synth: DDSPSynth) -> None:
    rng = np.random.default_rng(0)
    params = ["osc_mix_1", "f0", "filter_q", "reverb_gain", "chorus_delay", "chorus_mix"]
    bench = pd.concat([pd.DataFrame({
        "param": name, "value": np.linspace(0, 1, 11), "original": 0.5, "is_original": np.linspace(0, 1, 11) == 0.5,
        "loss": np.abs(np.linspace(0, 1, 11) - 0.5) + 0.1 * rng.random(11), "grad": rng.standard_normal(11),
    }) for name in params], ignore_index=True)
    benchmark_figure(bench, tmp_path / "bench.png", summary=benchmark_summary(bench), ncols=3)

    n, p = 40, small_synth.n_static
    preds = {s: rng.random((n, p)) ** (1 + i) for i, s in enumerate(["P-loss", "Real", "Mixed"])}
    effects_figure(parameter_frame(preds, small_synth), tmp_path / "effects.png")

    names = [f"p{k}" for k in range(6)]
    g_exact = rng.standard_normal((24, 6))
    g_proxy = g_exact + rng.standard_normal((24, 6)) * np.repeat([0.1, 1.0, 3.0], 8)[:, None]
    grads = pd.DataFrame({
        "pair": np.arange(24), "radius": np.repeat([0.05, 0.2, 0.5], 8), "distance_linf": rng.random(24),
        "loss_exact": rng.random(24),
        "cosine": [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(g_proxy, g_exact, strict=True)],
        "sign_agreement": (np.sign(g_proxy) == np.sign(g_exact)).mean(axis=1),
        **{f"gp__{k}": g_proxy[:, i] for i, k in enumerate(names)},
        **{f"ge__{k}": g_exact[:, i] for i, k in enumerate(names)},
    })
    gradients_figure(grads, tmp_path / "grads.png")
    for name in ("bench.png", "effects.png", "grads.png"):
        assert (tmp_path / name).stat().st_size > 5000, name
