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


def test_mfcc40_matches_librosa():
    x = _tone()
    mel = librosa.feature.melspectrogram(y=x, sr=44100, n_fft=2048, hop_length=1024, n_mels=256,
                                         center=True, pad_mode="constant")
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=40)
    ours = get_representation("mfcc40").features(torch.from_numpy(x)[None])[0].T.numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-2 * np.abs(ref).max())


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
