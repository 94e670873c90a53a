"""Hand-crafted representations: sizes, agreement with librosa, batching, and bad audio."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from synthproxy.audio.registry import available, get_representation
from synthproxy.errors import AudioError, ConfigError

N = 5 * 44100


def _tone(n=N, sr=44100, f=440.0):
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * f * t) * np.exp(-t)).astype(np.float32)


@pytest.mark.parametrize(("name", "dim"), [("mel128", 128), ("mfcc40", 40), ("mstft", 4071)])
def test_avg_sizes(name, dim):
    assert get_representation(name).dim(N, "avg") == dim


def test_nop_sizes():
    frames = 1 + N // 1024
    assert get_representation("mel128").dim(N, "nop") == 128 * frames
    assert get_representation("mstft").dim(N, "nop") == 4071 * (1 + N // 2048)


def test_mel128_matches_librosa():
    x = _tone()
    ref = librosa.feature.melspectrogram(y=x, sr=44100, n_fft=2048, hop_length=1024, n_mels=128,
                                         center=True, pad_mode="constant", power=2.0)
    ours = get_representation("mel128").mel(torch.from_numpy(x)[None])[0].T.numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * ref.max())


def _rich_tone(n=N, sr=44100):
    """A decaying 220 Hz sawtooth-like tone over a little white noise: every mel band holds real energy.

    (A pure sine leaves most of the 256 bands at float32 rounding noise, where no two implementations agree on
    the dB value and a comparison can only be loose.)
    """
    t = np.arange(n) / sr
    harmonics = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 100) if 220 * k < sr / 2)
    noise = np.random.default_rng(0).standard_normal(n)
    return (0.2 * harmonics * np.exp(-0.5 * t) + 0.01 * noise).astype(np.float32)


def test_mfcc40_matches_librosa_coefficient_by_coefficient():
    """Each of the 40 coefficients within 0.1 % of its own typical size (RMS over frames) of librosa's.

    Same settings as ``MFCC``: 256-bin Slaney mel of the 2048/1024 power STFT (centred, zero padding),
    ``power_to_db`` with ``top_db=None``, orthonormal DCT-II.
    """
    x = _rich_tone()
    mel = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=44100, n_fft=2048, hop_length=1024,
                                         n_mels=256, center=True, pad_mode="constant", power=2.0)
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=40, dct_type=2, norm="ortho")
    ours = get_representation("mfcc40").features(torch.from_numpy(x)[None])[0].T.numpy().astype(np.float64)
    assert ours.shape == ref.shape == (40, 1 + N // 1024)
    scale = np.sqrt(np.mean(ref**2, axis=1))  # (40,) typical size of each coefficient
    assert scale.min() > 1.0  # every coefficient is far from zero, so its tolerance below is meaningful
    tol = 1e-3 * scale
    worst = np.abs(ours - ref).max(axis=1) / tol
    assert worst.max() <= 1.0, f"coefficients off by more than 0.1 % of their size: {np.flatnonzero(worst > 1)}"
    # and the time average stored as the mfcc40_avg embedding
    avg = get_representation("mfcc40")(x, "avg")[0].numpy()
    np.testing.assert_allclose(avg, ref.mean(axis=1), rtol=0, atol=float(tol.min()))


def test_batch_equals_single_and_silence_is_finite():
    rep = get_representation("mstft")
    batch = np.stack([_tone(f=220), np.zeros(N, dtype=np.float32)])
    both = rep(batch, "avg")
    assert torch.isfinite(both).all()
    torch.testing.assert_close(both[0], rep(batch[:1], "avg")[0], rtol=1e-5, atol=1e-5)


def test_bad_audio_and_names():
    rep = get_representation("mel128")
    with pytest.raises(AudioError, match="shorter than the minimum of 1025 samples"):
        rep(np.zeros(100, dtype=np.float32), "avg")
    bad = _tone()
    bad[10] = np.inf
    with pytest.raises(AudioError, match="NaN/inf"):
        rep(bad, "avg")
    with pytest.raises(ConfigError, match="unknown audio representation 'mel999'"):
        get_representation("mel999")
    with pytest.raises(ConfigError, match="unknown temporal reduction"):
        rep(_tone(), "max")
    assert {"mel128", "mfcc40", "mstft", "mn04", "mn20"} <= set(available())


def test_audio_at_another_rate_is_resampled_to_the_models_rate():
    rep = get_representation("mel128")
    x44 = _tone()
    x22 = librosa.resample(x44, orig_sr=44100, target_sr=22050, res_type="soxr_hq")
    direct = rep(x44, "avg")
    via = rep(x22, "avg", sample_rate=22050)
    assert via.shape == direct.shape
    # the band above 11 kHz is lost at 22.05 kHz; the 440 Hz tone's bins agree
    torch.testing.assert_close(via[0, :40], direct[0, :40], rtol=0.05, atol=0.3)
