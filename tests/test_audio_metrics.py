"""Audio losses and evaluation metrics (synthproxy.metrics.spectral / .audio) against auraloss and known signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthproxy.errors import AudioError, ConfigError, SpecError
from synthproxy.metrics import audio as A
from synthproxy.metrics.spectral import MultiScaleSpectralLoss

SR = 16000
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")


def _noise(shape: tuple[int, ...], seed: int, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def _tone(f0: float, seconds: float, kind: str = "sine", amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * f0 * t
    if kind == "sine":
        y = np.sin(phase)
    elif kind == "square":  # band-limited: odd harmonics 1/k
        y = sum(np.sin(k * phase) / k for k in range(1, 40, 2) if k * f0 < sr / 2) * 4 / np.pi
    elif kind == "saw":
        y = sum(np.sin(k * phase) / k for k in range(1, 40) if k * f0 < sr / 2) * 2 / np.pi
    else:
        raise ValueError(kind)
    attack = np.minimum(1.0, t / 0.02)  # 20 ms attack, then sustained
    return amp * attack * y


@pytest.fixture(scope="module")
def pair32() -> tuple[np.ndarray, np.ndarray]:
    target = _noise((3, 4096), 0, 0.1, np.float32)
    estimate = (0.5 * target + _noise((3, 4096), 1, 0.05, np.float32)).astype(np.float32)
    return target, estimate


# ------------------------------------------------------------------------------------ paper 1 vs auraloss
def test_paper1_metrics_match_auraloss_per_example(pair32):
    auraloss = pytest.importorskip("auraloss")
    target, estimate = pair32
    t, e = torch.from_numpy(target)[:, None], torch.from_numpy(estimate)[:, None]  # auraloss: (B, C, T)
    common = dict(w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, mag_distance="L1", output="loss")
    refs = {
        "stft": (auraloss.freq.STFTLoss(**common), A.stft_distance(target, estimate)),
        "mstft": (auraloss.freq.MultiResolutionSTFTLoss(**common), A.mstft_distance(target, estimate)),
        "mel": (auraloss.freq.MelSTFTLoss(SR, n_mels=128, **common), A.mel_distance(target, estimate, SR)),
    }
    for name, (ref, ours) in refs.items():
        assert ours.shape == (3,) and ours.dtype == np.float64, name
        expected = [ref(e[i : i + 1], t[i : i + 1]).item() for i in range(3)]  # auraloss(input=estimate, target)
        np.testing.assert_allclose(ours, expected, rtol=2e-5, err_msg=name)


def test_log_terms_average_to_auraloss_batch_value(pair32):
    """Per-example log-magnitude terms average to auraloss's batch value (equal-length clips)."""
    auraloss = pytest.importorskip("auraloss")
    target, estimate = pair32
    t, e = torch.from_numpy(target)[:, None], torch.from_numpy(estimate)[:, None]
    common = dict(w_sc=0.0, w_log_mag=1.0, w_lin_mag=0.0, mag_distance="L1")
    # isolate our log term: sc + log minus sc, with sc from auraloss at batch size 1
    sc_only = auraloss.freq.STFTLoss(w_sc=1.0, w_log_mag=0.0, w_lin_mag=0.0)
    ours_log = A.stft_distance(target, estimate) - [sc_only(e[i : i + 1], t[i : i + 1]).item() for i in range(3)]
    batch = auraloss.freq.STFTLoss(**common)(e, t).item()
    assert ours_log.mean() == pytest.approx(batch, rel=2e-5)
    sc_mel = auraloss.freq.MelSTFTLoss(SR, n_mels=128, w_sc=1.0, w_log_mag=0.0, w_lin_mag=0.0)
    ours_mel_log = A.mel_distance(target, estimate, SR) - [sc_mel(e[i : i + 1], t[i : i + 1]).item() for i in range(3)]
    batch_mel = auraloss.freq.MelSTFTLoss(SR, n_mels=128, **common)(e, t).item()
    assert ours_mel_log.mean() == pytest.approx(batch_mel, rel=2e-5)


def test_kaldi_mel_banks_and_dct():
    banks = A._kaldi_mel_banks(128, 1024, 32000, 0.0, 16000.0)
    assert banks.shape == (128, 513) and np.all(banks[:, -1] == 0) and banks.min() >= 0
    # adjacent triangles (in mel) sum to 1 between the first and the last centre frequency
    mel = 1127 * np.log1p(np.arange(512) * 32000 / 1024 / 700)
    delta = 1127 * np.log1p(16000 / 700) / 129  # centres at k · delta, k = 1..128
    inside = (mel > delta) & (mel < 128 * delta)
    np.testing.assert_allclose(banks[:, :512].sum(0)[inside], 1.0, atol=1e-9)
    d = A._dct_ortho(40, 40)
    np.testing.assert_allclose(d @ d.T, np.eye(40), atol=1e-12)


def test_mfccd_identical_gain_and_timbre():
    x = _noise((1, 8000), 13, 0.1)
    assert A.mfcc_distance(x, x, SR)[0] == 0.0
    # a gain shifts every log-mel band by 20 log10 g (no band at the 1e-8 floor for noise): only c0 changes,
    # and c0 is dropped
    assert A.mfcc_distance(x, 0.3 * x, SR)[0] == pytest.approx(0.0, abs=1e-9)
    saw = _tone(220.0, 0.5, "saw")[None]
    assert A.mfcc_distance(saw, _tone(220.0, 0.5, "sine")[None], SR)[0] > 1.0


def test_a_mean_formula():
    got = A.a_mean(np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.array([2.0, 2.0]), np.array([8.0, 4.0]))
    np.testing.assert_allclose(got, [(1 + 1 + 2 + 2) / 4, (2 + 0 + 2 + 1) / 4])


# ------------------------------------------------------------------------------------ multi-scale spectral loss
@pytest.mark.parametrize("gain", [0.5, 2.0])
def test_multiscale_scaled_copy(gain):
    x = torch.from_numpy(_noise((2, 4096), 3))
    loss = MultiScaleSpectralLoss(eps_log=1e-12, eps_div=0.0)
    terms = loss.terms(x, gain * x)
    assert len(terms) == 12
    for key, value in terms.items():
        assert value.shape == (2,) and value.dtype == torch.float64
        expected = abs(math.log(gain)) if key.startswith("log") else abs(1 - gain)
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-6, err_msg=key)
    per = loss.per_example(x, gain * x)
    np.testing.assert_allclose(per.numpy(), 6 * (abs(math.log(gain)) + abs(1 - gain)), rtol=1e-6)
    assert loss(x, gain * x).item() == pytest.approx(per.mean().item())
    # official variant: power spectrogram (log term doubles, sc of powers) and mean over scales and terms
    official = MultiScaleSpectralLoss(power=2, normalize=True, eps_log=1e-12, eps_div=0.0)
    expected = (2 * abs(math.log(gain)) + abs(1 - gain**2)) / 2
    np.testing.assert_allclose(official.per_example(x, gain * x).numpy(), expected, rtol=1e-6)


def test_multiscale_identical_is_zero_and_1d_input():
    x = torch.from_numpy(_noise((4096,), 4))
    loss = MultiScaleSpectralLoss()
    assert loss.per_example(x, x).shape == (1,)
    assert loss(x, x).item() == 0.0


@pytest.mark.parametrize("power", [1, 2])
def test_multiscale_gradients_finite_for_silence_and_identity(power):
    loss = MultiScaleSpectralLoss(power=power)
    target = torch.from_numpy(_noise((2, 2048), 5, 0.1, np.float32))
    for estimate in (torch.zeros(2, 2048), target.clone()):
        estimate.requires_grad_(True)
        value = loss(target, estimate)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(estimate.grad).all()
    silent_both = torch.zeros(1, 2048, requires_grad=True)
    loss(torch.zeros(1, 2048), silent_both).backward()
    assert torch.isfinite(silent_both.grad).all()


@pytest.mark.parametrize("power", [1, 2])
def test_multiscale_gradient_matches_finite_differences(power):
    loss = MultiScaleSpectralLoss(fft_sizes=(32, 64, 128), power=power, w_lin=0.5)
    target = torch.from_numpy(_noise((1, 160), 6))
    estimate = torch.from_numpy(_noise((1, 160), 7)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda e: loss(target, e), (estimate,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True
    )
    # and along a few explicit directions (central differences vs. the analytic directional derivative)
    value = loss(target, estimate)
    (grad,) = torch.autograd.grad(value, estimate)
    for seed in range(3):
        u = torch.from_numpy(_noise((1, 160), 100 + seed))
        h = 1e-6
        with torch.no_grad():
            fd = (loss(target, estimate + h * u) - loss(target, estimate - h * u)) / (2 * h)
        assert fd.item() == pytest.approx((grad * u).sum().item(), rel=1e-5, abs=1e-8)


def test_multiscale_float32_and_errors():
    loss = MultiScaleSpectralLoss()
    x = torch.from_numpy(_noise((2, 2048), 8, dtype=np.float32))
    assert loss(x, 0.5 * x).dtype == torch.float32
    with pytest.raises(AudioError, match="same shape"):
        loss(x, x[:, :-1])
    with pytest.raises(AudioError, match="too short"):
        loss(x[:, :1000], x[:, :1000])
    bad = x.clone()
    bad[1, 5] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        loss(x, bad)
    with pytest.raises(AudioError):
        MultiScaleSpectralLoss(power=3)


# ------------------------------------------------------------------------------------ paper 2
@pytest.mark.parametrize("gain", [0.5, 3.0])
def test_lsd_scaled_copy(gain):
    x = _noise((2, 8192), 9)
    n_frames = (8192 - 1024) // 256 + 1
    expected = 20 * abs(math.log10(gain))
    np.testing.assert_allclose(A.lsd(x, gain * x, mode="frame"), expected, rtol=1e-4)
    np.testing.assert_allclose(A.lsd(x, gain * x), expected * math.sqrt(513 / n_frames), rtol=1e-4)
    assert np.all(A.lsd(x, x) == 0)


def test_loudness_of_sines_differs_by_level_ratio():
    a1, a2 = 0.5, 0.125
    x1, x2 = _tone(440.0, 1.0, amp=a1)[None], _tone(440.0, 1.0, amp=a2)[None]
    x1, x2 = x1[:, SR // 10 :], x2[:, SR // 10 :]  # drop the attack
    # exact when no bin reaches the eps / floor: per frame, mean_f(10 log10(a² P) + A) - mean_f(...) = 20 log10 a1/a2
    exact = dict(eps=1e-30, range_db=1000.0)
    l1, l2 = A.a_weighted_loudness(x1, SR, **exact), A.a_weighted_loudness(x2, SR, **exact)
    assert l1.shape == (1, int(x1.shape[1] / SR * 50))
    np.testing.assert_allclose(l1 - l2, 20 * math.log10(a1 / a2), atol=1e-9)
    assert A.loudness_l1(x1, x2, SR, **exact)[0] == pytest.approx(20 * math.log10(a1 / a2), abs=1e-9)
    # with the official eps (1e-5) and floor (-120 dB) a few low-leakage bins deviate slightly
    assert A.loudness_l1(x1, x2, SR)[0] == pytest.approx(20 * math.log10(a1 / a2), abs=0.05)
    l1, l2 = A.a_weighted_loudness(x1, SR), A.a_weighted_loudness(x2, SR)
    power = A.loudness_l1(x1, x2, SR, domain="power")[0]
    assert power == pytest.approx(np.mean(np.abs(10 ** (l2 / 10) - 10 ** (l1 / 10))))
    assert A.loudness_l1(x1, x1, SR)[0] == 0.0


def test_loudness_matches_direct_numpy_computation():
    x = _noise((3000,), 10, 0.2)
    n_fft, hop = 2048, SR // 50
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = np.stack([padded[i : i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # rectangular window
    freqs = np.arange(n_fft // 2 + 1) * SR / n_fft
    f2 = freqs**2
    with np.errstate(divide="ignore"):
        aw = 2.0 + 20 * (np.log10(12194**2) + 2 * np.log10(f2) - np.log10(f2 + 12194**2) - np.log10(f2 + 20.6**2)
                         - 0.5 * np.log10(f2 + 107.7**2) - 0.5 * np.log10(f2 + 737.9**2))
    aw = np.maximum(aw, -80.0)
    expected = np.maximum(10 * np.log10(power + 1e-5) + aw - 20.7, -120).mean(axis=1)[: int(3000 / SR * 50)]
    np.testing.assert_allclose(A.a_weighted_loudness(x, SR)[0], expected, atol=1e-3)


def test_mcd_identity_gain_timbre_and_leading_silence():
    x = _tone(330.0, 0.75, "saw")
    other = _tone(330.0, 0.75, "square")
    delayed = np.concatenate([np.zeros(SR // 4), x])[: x.shape[0]]
    batch_t = np.stack([x, x, x, x])
    batch_e = np.stack([x, 0.2 * x, other, delayed])
    same, gain, timbre, shift = A.mcd(batch_t, batch_e, SR)
    assert same == 0.0
    assert gain == pytest.approx(0.0, abs=1e-6)
    assert timbre > 1.0
    # a leading silence (and the lost tail) costs little: trimming is frame-granular (512 samples), so a few
    # edge frames still differ, but DTW absorbs the shift; without alignment the same pair is far apart
    assert shift < 0.1 * timbre
    assert shift < 0.5 * A.mcd(x, delayed, SR, dtw=False)[0]
    assert shift < 0.2 * A.mcd(x, delayed, SR, trim=False, dtw=False)[0]


def test_mcd_silent_clip_gives_nan_without_crash():
    x = _tone(330.0, 0.5)
    with pytest.warns(RuntimeWarning, match="silent"):
        got = A.mcd(np.stack([x, x]), np.stack([np.zeros_like(x), x]), SR)
    assert np.isnan(got[0]) and got[1] == 0.0


# ------------------------------------------------------------------------------------ shared behaviour
def test_identical_signals_give_zero_everywhere():
    x = _noise((2, 4096), 11, 0.3)
    out = A.compute_audio_metrics(x, x, SR, [*A.PAPER1_METRICS, *A.PAPER2_METRICS, "a_mean"])
    assert list(out) == ["stft", "mstft", "mel", "mfccd", "lsd", "mcd", "loudness", "a_mean"]
    for name, value in out.items():
        assert value.shape == (2,) and value.dtype == np.float64, name
        np.testing.assert_allclose(value, 0.0, atol=1e-12, err_msg=name)


def test_registry_and_a_mean_via_names(pair32):
    target, estimate = pair32
    out = A.compute_audio_metrics(target, estimate, SR, ["a_mean", "stft"])
    assert list(out) == ["a_mean", "stft"]
    parts = [A.get_metric(n).fn(target, estimate, SR) for n in A.PAPER1_METRICS]
    np.testing.assert_allclose(out["a_mean"], A.a_mean(*parts))
    with pytest.raises(ConfigError, match=r"'loud'.*stft.*mstft.*mel.*mfccd.*lsd.*mcd.*loudness"):
        A.compute_audio_metrics(target, estimate, SR, ["lsd", "loud"])
    with pytest.raises(ConfigError, match="valid names"):
        A.get_metric("nope")


def test_input_forms_and_precision(pair32):
    target, estimate = pair32
    ref = A.stft_distance(target.astype(np.float64), estimate.astype(np.float64))
    np.testing.assert_allclose(A.stft_distance(target, estimate), ref, rtol=1e-4)  # float32 path
    np.testing.assert_allclose(A.stft_distance(torch.from_numpy(target), torch.from_numpy(estimate)), ref, rtol=1e-4)
    one = A.lsd(target[0], estimate[0])
    assert one.shape == (1,) and one[0] == pytest.approx(A.lsd(target, estimate)[0])


@pytest.mark.parametrize("name", ["stft", "mstft", "mel", "mfccd", "lsd", "mcd", "loudness"])
def test_metric_errors(name):
    fn = A.get_metric(name).fn
    x = _noise((2, 4096), 12, 0.1)
    with pytest.raises(AudioError, match="same shape"):
        fn(x, x[:1], SR)
    bad = x.copy()
    bad[1, 10] = np.inf
    with pytest.raises(AudioError, match="NaN or inf"):
        fn(x, bad, SR)
    with pytest.raises(AudioError, match="too short"):
        fn(x[:, :200], x[:, :200], SR)
    with pytest.raises(AudioError):
        fn(x[None], x[None], SR)


def test_parameter_l1():
    pred = np.array([[0.0, 0.5, 1.0], [0.2, 0.2, 0.2]])
    target = np.array([[0.0, 0.0, 0.0], [0.2, 0.5, 0.8]])
    np.testing.assert_allclose(A.parameter_l1(pred, target), [0.5, 0.3])
    np.testing.assert_allclose(A.parameter_l1(torch.tensor(pred[0]), torch.tensor(target[0])), [0.5])
    with pytest.raises(SpecError, match="shapes differ"):
        A.parameter_l1(pred, target[:, :2])
    with pytest.raises(SpecError, match="NaN"):
        A.parameter_l1(pred, np.full_like(target, np.nan))


# ------------------------------------------------------------------------------------ CUDA
@CUDA
def test_cuda_matches_cpu(pair32):
    target, estimate = (torch.from_numpy(a.astype(np.float64)) for a in pair32)
    loss = MultiScaleSpectralLoss()
    cpu = loss.per_example(target, estimate)
    gpu_est = estimate.cuda().requires_grad_(True)
    gpu = loss.per_example(target.cuda(), gpu_est)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
    gpu.sum().backward()
    assert torch.isfinite(gpu_est.grad).all()
    for name in ("stft", "mel", "mfccd", "lsd", "loudness"):
        fn = A.get_metric(name).fn
        np.testing.assert_allclose(fn(target.cuda(), estimate.cuda(), SR), fn(target, estimate, SR), rtol=1e-9)
