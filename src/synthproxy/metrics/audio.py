"""Audio-domain evaluation metrics of both papers, one value per example.

Every audio metric takes ``target`` and ``estimate`` as numpy arrays or torch tensors of shape ``(B, T)`` or
``(T,)`` (treated as ``B = 1``), at ``sample_rate`` Hz where it matters, and returns a ``(B,)`` numpy
float64 array. Torch inputs are computed on their own device; computation is in float32 when both inputs
are float32 (as in the official code, and 2-3x faster on CPU) and in float64 otherwise; batches are processed
in chunks of ``_CHUNK`` clips so memory stays bounded on thousands of clips. Bad input raises
:class:`~synthproxy.errors.AudioError` (different shapes, NaN/inf samples, clips shorter than one analysis
window, empty batches).

Paper 1 — Combes et al. (JAES 2025), Sec. 8.1, computed as in the official code (``pcmbs/synth-proxy``,
``src/ssm/litm_ssm.py``, ``src/utils/evaluation/mfccd.py``, ``src/utils/audio.py``) with auraloss 0.4.0
settings. With ``X`` the estimate's and ``Y`` the target's magnitudes,
``X = sqrt(max(|STFT(x)|^2, 1e-8))`` (Hann window, periodic; ``center=True``, reflect padding)::

    sc(X, Y)  = ||Y - X||_F / ||Y||_F
    log(X, Y) = mean_{f,t} |ln X - ln Y|

* :func:`stft_distance`: ``sc + log`` with n_fft 1024, hop 256, window 1024 (``auraloss.freq.STFTLoss``,
  ``w_sc = w_log_mag = 1``, ``w_lin_mag = 0``).
* :func:`mstft_distance`: mean over the auraloss default resolutions (n_fft, hop, win) = (1024, 120, 600),
  (2048, 240, 1200), (512, 50, 240) of ``sc + log`` (``auraloss.freq.MultiResolutionSTFTLoss``).
* :func:`mel_distance`: ``sc + log`` on ``M = F @ X``, ``F = librosa.filters.mel(sr, n_fft=1024, n_mels=128)``
  (Slaney scale and norm, 0 to sr/2), n_fft 1024, hop 256 (``auraloss.freq.MelSTFTLoss``). No
  perceptual weighting, no scale invariance (auraloss defaults).
* :func:`mfcc_distance` (MFCCD): pre-emphasis ``y[n] = x[n+1] - 0.97 x[n]``; power STFT with n_fft 1024,
  hop **512**, symmetric Hann window 1024, ``center=True``; 128 Kaldi-style triangular mel filters
  (``1127 ln(1 + f/700)``, 0 to ``sr // 2``, no Nyquist bin); ``10 log10(max(mel, 1e-8))``; orthonormal
  DCT-II, 40 coefficients, c0 dropped; ``mean |c - ĉ|`` over the 39 coefficients and frames.
* :func:`a_mean`: ``(stft + mstft + mel + 0.25 · mfccd) / 4``, the checkpoint-selection score.

Reduction: auraloss returns one value per *batch*, and its spectral convergence pools the norms over the
whole batch (``||Y_batch - X_batch||_F / ||Y_batch||_F``), so a batch value is not the mean of per-clip
values. Here every term is computed per clip (the log terms and MFCCD average exactly to auraloss's batch
value; the spectral convergence equals auraloss's value for a batch of one). The official code also logs
MFCCD already multiplied by 0.25; :func:`mfcc_distance` returns it unscaled and :func:`a_mean` applies 0.25.

Paper 2 — Masuda & Saito (TASLP 2023), Sec. V-E, eq. (6); official code ``hyakuchiki/SSSSM-DDSP``
(``diffsynth/spectral.py``: ``compute_lsd``, ``compute_loudness``, ``loudness_loss``):

* :func:`lsd`: power spectrogram ``P = |STFT|^2`` (n_fft 1024, hop 256, periodic Hann, no padding),
  ``d = 10 log10(P̂ + 1e-5) - 10 log10(P + 1e-5)``. ``mode="official"`` (default) is the code's
  ``sqrt(sum_{f,t} d^2) / n_frames``, which equals ``sqrt(F / n_frames) · RMS(d)`` (F = 513 bins) and so
  depends on the clip length; ``mode="frame"`` is the textbook LSD ``mean_t sqrt(mean_f d^2)`` (in dB).
  The paper's printed eq. (6) ``sqrt(sum_i 10 log10 S(i)/Ŝ(i))`` is garbled (no square).
* :func:`mcd`: not in the official code; our implementation of the paper's text. Per clip: NaN if the clip's
  peak is at or below ``silence_db`` dBFS (-100 dB; all-silent clips, no exception, one ``RuntimeWarning``
  per call); silence trimmed with ``librosa.effects.trim(top_db=60)``; mel power spectrogram (n_fft 1024,
  hop 256, 40 HTK mel bands 40–7600 Hz, no filter norm — the settings of the official ``Mfcc`` monitor);
  ``L = ln(max(M, max(M) · 10^(-80/10)))`` (a floor 80 dB below the clip's peak, so MCD is gain-invariant);
  cepstrum ``c_k = (1/N) sum_n L_n cos(π k (n + 1/2) / N)`` for k = 1..19 (c0 dropped), i.e. the cosine-series
  coefficients with ``L_n = c_0 + 2 sum_k c_k cos(...)``; frames aligned by ``librosa.sequence.dtw`` on the
  Euclidean cost ``||c_t - ĉ_s||``; ``MCD = (10 sqrt(2) / ln 10) · mean over the path of ||c_t - ĉ_s||``.
  Trimming works on librosa's 512-sample frames, so up to about a frame of silence can remain at each end; a
  leading silence therefore changes MCD a little (edge frames), not by the large amount it does unaligned.
  With this cepstrum normalisation the usual constant makes MCD the RMS (over mel bands) difference in dB of
  the two mean-removed, cepstrally smoothed log-mel power spectra (Parseval).
* :func:`loudness_l1`: A-weighted loudness per frame as in the official (DDSP v0 port) ``compute_loudness``:
  STFT n_fft 2048, hop ``sr // 50`` (50 frames/s), ``center=True`` reflect padding, **rectangular window**
  (the official ``torch.stft`` call passes no window; DDSP's TensorFlow original uses Hann:
  ``window="hann"``); ``L_t = mean_f max(10 log10(|X|^2 + 1e-5) + A(f) - 20.7, -120)`` with
  ``A = librosa.A_weighting`` (floored at -80 dB), reference 20.7 dB (white noise of amplitude 1 at n_fft
  2048 is 0 dB), floor -120 dB; padded with -120 / trimmed to ``int(T / sr · 50)`` frames.
  ``domain="db"`` (default, the paper's text: "average L1 distance between the loudness ... at each spectral
  frame") gives ``mean_t |L_t - L̂_t|`` in dB; ``domain="power"`` is the official ``loudness_loss``,
  ``mean_t |10^(L̂_t/10) - 10^(L_t/10)|``.
* :func:`parameter_l1`: ``mean_p |pred_p - target_p|`` of normalised parameter vectors (both papers).

:data:`AUDIO_METRICS` maps metric names to functions; :func:`compute_audio_metrics` evaluates a list of names
(``PAPER1_METRICS``, ``PAPER2_METRICS``, or ``"a_mean"``); an unknown name raises
:class:`~synthproxy.errors.ConfigError`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import librosa
import numpy as np
import torch
from scipy.spatial.distance import cdist

from synthproxy.errors import AudioError, ConfigError, SpecError

__all__ = [
    "AUDIO_METRICS",
    "MCD_CONSTANT",
    "PAPER1_METRICS",
    "PAPER2_METRICS",
    "MetricSpec",
    "a_mean",
    "a_weighted_loudness",
    "compute_audio_metrics",
    "get_metric",
    "loudness_l1",
    "lsd",
    "mcd",
    "mel_distance",
    "metric_names",
    "mfcc_distance",
    "mstft_distance",
    "parameter_l1",
    "stft_distance",
]

ArrayLike = np.ndarray | torch.Tensor

_CHUNK = 16  # clips per STFT chunk
_AURALOSS_EPS = 1e-8  # auraloss STFTLoss clamps |X|^2 at this before the square root
MCD_CONSTANT = 10.0 * math.sqrt(2.0) / math.log(10.0)  # ≈ 6.1418 dB


# ---------------------------------------------------------------------------------------------- input handling
def _to_batch(x: object, which: str, metric: str) -> torch.Tensor:
    """numpy / torch / sequence → float32 (if given float32) or float64 torch tensor of shape (B, T).

    Torch tensors stay on their device.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not t.is_floating_point():
            raise AudioError(
                f"{metric}: {which} must be floating-point audio (integer PCM: scale to [-1, 1] first), got dtype "
                f"{t.dtype}"
            )
        t = t if t.dtype == torch.float32 else t.to(torch.float64)
    else:
        a = np.asarray(x)
        if not np.issubdtype(a.dtype, np.floating):
            raise AudioError(
                f"{metric}: {which} must be floating-point audio (integer PCM: scale to [-1, 1] first), got dtype "
                f"{a.dtype}"
            )
        dtype = np.float32 if a.dtype == np.float32 else np.float64
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        raise AudioError(f"{metric}: {which} must have shape (B, T) or (T,), got {tuple(t.shape)}")
    return t


def _check_finite(t: torch.Tensor, which: str, metric: str) -> None:
    bad = ~torch.isfinite(t).all(dim=1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten().tolist()
        shown = ", ".join(str(i) for i in idx[:10]) + (", ..." if len(idx) > 10 else "")
        raise AudioError(f"{metric}: {which} has NaN or inf samples in {len(idx)} clip(s) (index {shown})")


def _pair(target: ArrayLike, estimate: ArrayLike, metric: str, min_length: int, why: str) -> tuple[torch.Tensor, ...]:
    t = _to_batch(target, "target", metric)
    e = _to_batch(estimate, "estimate", metric)
    if t.shape != e.shape:
        raise AudioError(
            f"{metric}: target and estimate must have the same shape, got {tuple(t.shape)} and {tuple(e.shape)}"
        )
    if t.shape[0] == 0:
        raise AudioError(f"{metric}: empty batch")
    if t.shape[1] < min_length:
        raise AudioError(f"{metric}: clips of {t.shape[1]} samples are too short; at least {min_length} needed ({why})")
    dtype = torch.float32 if t.dtype == e.dtype == torch.float32 else torch.float64
    t, e = t.to(dtype), e.to(device=t.device, dtype=dtype)
    _check_finite(t, "target", metric)
    _check_finite(e, "estimate", metric)
    return t, e


def _check_rate(sample_rate: float, metric: str) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise AudioError(f"{metric}: sample_rate must be a positive number, got {sample_rate!r}")
    if not sample_rate > 0 or not math.isfinite(sample_rate) or float(sample_rate) != int(sample_rate):
        raise AudioError(f"{metric}: sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _chunked(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], t: torch.Tensor, e: torch.Tensor) -> np.ndarray:
    """Apply ``fn((b, T), (b, T)) -> (b,)`` to chunks of the batch; returns (B,) float64 numpy."""
    parts = [fn(t[i : i + _CHUNK], e[i : i + _CHUNK]) for i in range(0, t.shape[0], _CHUNK)]
    return torch.cat(parts).cpu().numpy().astype(np.float64, copy=False)


@lru_cache(maxsize=64)
def _window(kind: str, n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if kind == "hann":
        return torch.hann_window(n, periodic=True, dtype=dtype, device=device)
    if kind == "hann_symmetric":
        return torch.hann_window(n, periodic=False, dtype=dtype, device=device)
    if kind == "boxcar":
        return torch.ones(n, dtype=dtype, device=device)
    raise ConfigError(f"unknown window {kind!r}; valid: 'boxcar', 'hann'")


def _power_stft(x: torch.Tensor, n_fft: int, hop: int, win_length: int, window: str, center: bool) -> torch.Tensor:
    """(B, T) → (B, n_fft // 2 + 1, frames) power spectrogram |STFT|^2 (reflect padding when centred)."""
    s = torch.stft(
        x, n_fft, hop_length=hop, win_length=win_length, window=_window(window, win_length, x.device, x.dtype),
        center=center, pad_mode="reflect", return_complex=True,
    )
    return (s * s.conj()).real


# ---------------------------------------------------------------------------------------------- paper 1
def _auraloss_mag(x: torch.Tensor, n_fft: int, hop: int, win_length: int) -> torch.Tensor:
    return torch.sqrt(torch.clamp(_power_stft(x, n_fft, hop, win_length, "hann", True), min=_AURALOSS_EPS))


def _sc_plus_log(x_mag: torch.Tensor, y_mag: torch.Tensor) -> torch.Tensor:
    """Per-example ``||Y - X||_F / ||Y||_F + mean |ln X - ln Y|`` of (B, F, N) magnitudes → (B,)."""
    sc = torch.linalg.vector_norm(y_mag - x_mag, dim=(-2, -1)) / torch.linalg.vector_norm(y_mag, dim=(-2, -1))
    log = (torch.log(x_mag) - torch.log(y_mag)).abs().mean(dim=(-2, -1))
    return sc + log


def stft_distance(
    target: ArrayLike, estimate: ArrayLike, *, fft_size: int = 1024, hop_size: int = 256, win_length: int = 1024
) -> np.ndarray:
    """STFT distance (Combes et al. 2025, Sec. 8.1; ``auraloss.freq.STFTLoss`` as in the official code).

    ``sc + log`` (see the module docstring) on Hann-windowed magnitudes; ``(B, T), (B, T) -> (B,)``.
    """
    t, e = _pair(target, estimate, "stft_distance", fft_size, "one FFT frame")
    return _chunked(
        lambda a, b: _sc_plus_log(_auraloss_mag(b, fft_size, hop_size, win_length),
                                  _auraloss_mag(a, fft_size, hop_size, win_length)),
        t, e,
    )


def mstft_distance(
    target: ArrayLike,
    estimate: ArrayLike,
    *,
    fft_sizes: Sequence[int] = (1024, 2048, 512),
    hop_sizes: Sequence[int] = (120, 240, 50),
    win_lengths: Sequence[int] = (600, 1200, 240),
) -> np.ndarray:
    """Multi-resolution STFT distance (Combes et al. 2025, Sec. 8.1; ``auraloss.freq.MultiResolutionSTFTLoss``).

    Mean over resolutions of :func:`stft_distance`'s ``sc + log``; defaults are auraloss's default resolutions.
    ``(B, T), (B, T) -> (B,)``.
    """
    if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) or not fft_sizes:
        raise AudioError("mstft_distance: fft_sizes, hop_sizes and win_lengths must be non-empty and of equal length")
    t, e = _pair(target, estimate, "mstft_distance", max(fft_sizes), "one frame of the largest FFT")

    def one(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
        for n, h, w in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
            total = total + _sc_plus_log(_auraloss_mag(b, n, h, w), _auraloss_mag(a, n, h, w))
        return total / len(fft_sizes)

    return _chunked(one, t, e)


@lru_cache(maxsize=16)
def _slaney_mel_fb(sample_rate: int, n_fft: int, n_mels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # float32 filter values as in auraloss (librosa's default dtype), used in the inputs' precision
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    return torch.from_numpy(fb).to(device=device, dtype=dtype)


def mel_distance(
    target: ArrayLike,
    estimate: ArrayLike,
    sample_rate: int,
    *,
    n_mels: int = 128,
    fft_size: int = 1024,
    hop_size: int = 256,
    win_length: int = 1024,
) -> np.ndarray:
    """Mel-STFT distance (Combes et al. 2025, Sec. 8.1; ``auraloss.freq.MelSTFTLoss(sample_rate, n_mels=128)``).

    ``sc + log`` on ``F @ X`` with the librosa Slaney mel filterbank; ``(B, T), (B, T) -> (B,)``.
    """
    sr = _check_rate(sample_rate, "mel_distance")
    if n_mels > fft_size:
        raise AudioError(f"mel_distance: n_mels ({n_mels}) must not exceed fft_size ({fft_size})")
    t, e = _pair(target, estimate, "mel_distance", fft_size, "one FFT frame")
    fb = _slaney_mel_fb(sr, fft_size, n_mels, t.device, t.dtype)
    return _chunked(
        lambda a, b: _sc_plus_log(fb @ _auraloss_mag(b, fft_size, hop_size, win_length),
                                  fb @ _auraloss_mag(a, fft_size, hop_size, win_length)),
        t, e,
    )


def _kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular filters on the Kaldi mel scale ``1127 ln(1 + f/700)``, (n_mels, n_fft // 2 + 1).

    Filters are evaluated at the bin frequencies ``k · sr / n_fft`` for ``k < n_fft // 2``; the Nyquist column
    is zero (as in EfficientAT's preprocessing, which pads Kaldi's banks with one zero column).
    """
    nyquist = 0.5 * sample_rate
    high = fmax if fmax > 0 else fmax + nyquist
    if not (0.0 <= fmin < nyquist and 0.0 < high <= nyquist and fmin < high):
        raise AudioError(f"mfcc_distance: invalid mel range fmin={fmin}, fmax={fmax} at {sample_rate} Hz")

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    m_low, m_high = mel(fmin), mel(high)
    delta = (m_high - m_low) / (n_mels + 1)
    b = np.arange(n_mels, dtype=np.float64)[:, None]
    left, centre, right = m_low + b * delta, m_low + (b + 1.0) * delta, m_low + (b + 2.0) * delta
    m = mel(sample_rate / n_fft * np.arange(n_fft // 2, dtype=np.float64))[None, :]
    banks = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return np.pad(banks, ((0, 0), (0, 1)))


def _dct_ortho(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (n_out, n_in): row k is ``sqrt(2/N) cos(π k (n + 1/2) / N)``, row 0 / sqrt(2)."""
    k = np.arange(n_out, dtype=np.float64)[:, None]
    n = np.arange(n_in, dtype=np.float64)[None, :]
    mat = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (n + 0.5) / n_in)
    mat[0] /= np.sqrt(2.0)
    return mat


@lru_cache(maxsize=16)
def _mfccd_mats(
    sample_rate: int, n_fft: int, n_mels: int, n_mfcc: int, fmin: float, fmax: float, device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    banks = torch.from_numpy(_kaldi_mel_banks(n_mels, n_fft, sample_rate, fmin, fmax)).to(device=device, dtype=dtype)
    dct = torch.from_numpy(_dct_ortho(n_mfcc, n_mels)[1:]).to(device=device, dtype=dtype)  # c0 dropped
    return banks, dct


def mfcc_distance(
    target: ArrayLike,
    estimate: ArrayLike,
    sample_rate: int,
    *,
    n_mels: int = 128,
    n_mfcc: int = 40,
    n_fft: int = 1024,
    hop_length: int = 512,
    win_length: int = 1024,
    fmin: float = 0.0,
    fmax: float | None = None,
    eps: float = 1e-8,
) -> np.ndarray:
    """MFCC distance MFCCD (Combes et al. 2025, Sec. 8.1; official ``MFCCDist(n_mels=128, n_mfcc=40, "L1")``).

    Pre-emphasis 0.97, power STFT (symmetric Hann, n_fft 1024, hop 512), 128 Kaldi mel bands from 0 to
    ``sr // 2``, ``10 log10(max(·, eps))``, orthonormal DCT-II to 40 coefficients, c0 dropped; mean absolute
    difference over the 39 coefficients and frames. Unscaled (the official log and :func:`a_mean` use
    ``0.25 ·`` this). ``(B, T), (B, T) -> (B,)``.
    """
    sr = _check_rate(sample_rate, "mfcc_distance")
    if not 2 <= n_mfcc <= n_mels:
        raise AudioError(f"mfcc_distance: need 2 <= n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
    hi = float(sr // 2) if fmax is None else float(fmax)
    t, e = _pair(target, estimate, "mfcc_distance", n_fft + 1, "one FFT frame after pre-emphasis")
    banks, dct = _mfccd_mats(sr, n_fft, n_mels, n_mfcc, float(fmin), hi, t.device, t.dtype)

    def ceps(x: torch.Tensor) -> torch.Tensor:
        pre = x[:, 1:] - 0.97 * x[:, :-1]
        s = torch.stft(
            pre, n_fft, hop_length=hop_length, win_length=win_length,
            window=_window("hann_symmetric", win_length, x.device, x.dtype), center=True, pad_mode="reflect",
            return_complex=True,
        )
        p = (s * s.conj()).real
        mel_db = 10.0 * torch.log10(torch.clamp(banks @ p, min=eps))
        return dct @ mel_db  # (B, n_mfcc - 1, frames)

    return _chunked(lambda a, b: (ceps(b) - ceps(a)).abs().mean(dim=(-2, -1)), t, e)


def a_mean(
    stft: ArrayLike, mstft: ArrayLike, mel: ArrayLike, mfccd: ArrayLike, *, mfccd_weight: float = 0.25
) -> np.ndarray:
    """Checkpoint score of Combes et al. (2025), Sec. 8.1: ``(stft + mstft + mel + 0.25 · mfccd) / 4``.

    Inputs are per-example values (``(B,)``, or scalars) of the four paper-1 metrics with *unscaled* MFCCD.
    """
    parts = [np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
             for v in (stft, mstft, mel, mfccd)]
    try:
        parts = list(np.broadcast_arrays(*parts))
    except ValueError as exc:
        raise AudioError(f"a_mean: metric arrays have incompatible shapes {[p.shape for p in parts]}") from exc
    return np.atleast_1d((parts[0] + parts[1] + parts[2] + mfccd_weight * parts[3]) / 4.0)


# ---------------------------------------------------------------------------------------------- paper 2
def lsd(
    target: ArrayLike,
    estimate: ArrayLike,
    *,
    n_fft: int = 1024,
    hop_length: int = 256,
    eps: float = 1e-5,
    mode: Literal["official", "frame"] = "official",
) -> np.ndarray:
    """Log-spectral distance in dB (Masuda & Saito 2023, Sec. V-E eq. (6); official ``compute_lsd``).

    ``d = 10 log10(P̂ + eps) - 10 log10(P + eps)`` on power spectrograms (periodic Hann, n_fft 1024, hop 256,
    no padding). ``mode="official"``: ``sqrt(sum_{f,t} d^2) / n_frames`` (the code; scales with
    ``sqrt(n_bins / n_frames)``); ``mode="frame"``: ``mean_t sqrt(mean_f d^2)``. ``(B, T), (B, T) -> (B,)``.
    """
    if mode not in ("official", "frame"):
        raise ConfigError(f"lsd: unknown mode {mode!r}; valid: 'official', 'frame'")
    t, e = _pair(target, estimate, "lsd", n_fft, "one FFT frame, no padding")

    def one(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        p = _power_stft(a, n_fft, hop_length, n_fft, "hann", False)
        p_hat = _power_stft(b, n_fft, hop_length, n_fft, "hann", False)
        d2 = (10.0 * (torch.log10(p_hat + eps) - torch.log10(p + eps))).square()
        if mode == "official":
            return torch.sqrt(d2.sum(dim=(-2, -1))) / p.shape[-1]
        return torch.sqrt(d2.mean(dim=-2)).mean(dim=-1)

    return _chunked(one, t, e)


@lru_cache(maxsize=16)
def _cepstrum_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """(n_mfcc - 1, n_mels): ``c_k = (1/N) sum_n L_n cos(π k (n + 1/2) / N)`` for k = 1 .. n_mfcc - 1."""
    k = np.arange(1, n_mfcc, dtype=np.float64)[:, None]
    n = np.arange(n_mels, dtype=np.float64)[None, :]
    return np.cos(np.pi * k * (n + 0.5) / n_mels) / n_mels


def _mcd_cepstra(
    y: np.ndarray, sr: int, *, n_fft: int, hop_length: int, n_mels: int, n_mfcc: int, fmin: float, fmax: float,
    trim: bool, top_db: float, floor_db: float, silence_db: float,
) -> np.ndarray | None:
    """(frames, n_mfcc - 1) cepstra of one clip, or None if the clip is silent."""
    peak = float(np.max(np.abs(y)))
    if peak <= 10.0 ** (silence_db / 20.0):
        return None
    if trim:
        y, _ = librosa.effects.trim(y, top_db=top_db)
    if y.shape[0] < n_fft:
        y = np.pad(y, (0, n_fft - y.shape[0]))
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=True, norm=None,
        power=2.0, center=True,
    )
    floor = max(float(mel.max()) * 10.0 ** (-floor_db / 10.0), 1e-30)  # 1e-30: no energy in 40-7600 Hz (e.g. DC)
    return (_cepstrum_matrix(n_mfcc, n_mels) @ np.log(np.maximum(mel, floor))).T


def mcd(
    target: ArrayLike,
    estimate: ArrayLike,
    sample_rate: int,
    *,
    n_fft: int = 1024,
    hop_length: int = 256,
    n_mels: int = 40,
    n_mfcc: int = 20,
    fmin: float = 40.0,
    fmax: float = 7600.0,
    trim: bool = True,
    top_db: float = 60.0,
    dtw: bool = True,
    floor_db: float = 80.0,
    silence_db: float = -100.0,
) -> np.ndarray:
    """Mel-cepstral distortion in dB (Masuda & Saito 2023, Sec. V-E; not in the official code).

    Silence trimmed (``librosa.effects.trim(top_db)``), cepstra ``c_1..c_{n_mfcc-1}`` of the natural-log mel
    power spectrum (c0 dropped; see the module docstring for the normalisation), DTW alignment
    (``librosa.sequence.dtw`` on the Euclidean cost) and ``MCD = 10 sqrt(2) / ln 10 · mean_path ||c - ĉ||``.
    ``dtw=False`` compares frames one to one over the shorter length. A clip whose peak is at or below
    ``silence_db`` dBFS (target or estimate) gives NaN (with one ``RuntimeWarning`` per call), not an error.
    ``fmax`` is clipped to ``sample_rate / 2``. ``(B, T), (B, T) -> (B,)``.
    """
    sr = _check_rate(sample_rate, "mcd")
    if not 2 <= n_mfcc <= n_mels:
        raise AudioError(f"mcd: need 2 <= n_mfcc <= n_mels, got n_mfcc={n_mfcc}, n_mels={n_mels}")
    t, e = _pair(target, estimate, "mcd", n_fft, "one FFT frame")
    t_np, e_np = t.cpu().to(torch.float64).numpy(), e.cpu().to(torch.float64).numpy()
    kw = dict(n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, n_mfcc=n_mfcc, fmin=float(fmin),
              fmax=min(float(fmax), sr / 2.0), trim=trim, top_db=top_db, floor_db=floor_db, silence_db=silence_db)
    out = np.full(t_np.shape[0], np.nan, dtype=np.float64)
    for i in range(t_np.shape[0]):
        c = _mcd_cepstra(t_np[i], sr, **kw)
        c_hat = _mcd_cepstra(e_np[i], sr, **kw)
        if c is None or c_hat is None:
            continue
        if dtw:
            cost = cdist(c, c_hat, metric="euclidean")
            _, path = librosa.sequence.dtw(C=cost, backtrack=True)
            dist = float(cost[path[:, 0], path[:, 1]].mean())
        else:
            n = min(c.shape[0], c_hat.shape[0])
            dist = float(np.linalg.norm(c[:n] - c_hat[:n], axis=1).mean())
        out[i] = MCD_CONSTANT * dist
    n_silent = int(np.isnan(out).sum())
    if n_silent:
        warnings.warn(
            f"mcd: {n_silent} of {out.shape[0]} clip pair(s) have a silent target or estimate "
            f"(peak <= {silence_db} dBFS); their MCD is NaN", RuntimeWarning, stacklevel=2,
        )
    return out


@lru_cache(maxsize=16)
def _a_weighting_db(sample_rate: int, n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
    with np.errstate(divide="ignore"):  # log10(0) at DC; librosa floors it at min_db = -80
        weights = librosa.A_weighting(freqs)
    return torch.from_numpy(np.asarray(weights, dtype=np.float64)).to(device=device, dtype=dtype)


def _loudness_torch(
    x: torch.Tensor, sr: int, n_fft: int, frame_rate: int, ref_db: float, range_db: float, eps: float, window: str
) -> torch.Tensor:
    hop = sr // frame_rate
    p = _power_stft(x, n_fft, hop, n_fft, window, True)
    loud = 10.0 * torch.log10(p + eps) + _a_weighting_db(sr, n_fft, x.device, x.dtype)[:, None] - ref_db
    loud = torch.clamp(loud, min=-range_db).mean(dim=-2)  # (B, frames)
    expected = int(x.shape[-1] / float(sr) * frame_rate)
    if loud.shape[-1] >= expected:
        return loud[:, :expected]
    return torch.nn.functional.pad(loud, (0, expected - loud.shape[-1]), value=-range_db)


def _loudness_args(sample_rate: int, n_fft: int, frame_rate: int, window: str, metric: str) -> int:
    sr = _check_rate(sample_rate, metric)
    if window not in ("boxcar", "hann"):
        raise ConfigError(f"{metric}: unknown window {window!r}; valid: 'boxcar', 'hann'")
    if frame_rate <= 0 or sr // frame_rate < 1:
        raise AudioError(f"{metric}: frame_rate {frame_rate} is not possible at {sr} Hz")
    return sr


def a_weighted_loudness(
    audio: ArrayLike,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    frame_rate: int = 50,
    ref_db: float = 20.7,
    range_db: float = 120.0,
    eps: float = 1e-5,
    window: Literal["boxcar", "hann"] = "boxcar",
) -> np.ndarray:
    """A-weighted loudness per frame in dB, as the official (DDSP v0 port) ``compute_loudness``.

    ``L_t = mean_f max(10 log10(|X_{f,t}|^2 + eps) + A(f) - ref_db, -range_db)``, hop ``sr // frame_rate``;
    ``(B, T) or (T,) -> (B, int(T / sr · frame_rate))`` float64.
    """
    sr = _loudness_args(sample_rate, n_fft, frame_rate, window, "a_weighted_loudness")
    x = _to_batch(audio, "audio", "a_weighted_loudness")
    if x.shape[0] == 0 or x.shape[1] < max(n_fft, sr // frame_rate):
        raise AudioError(f"a_weighted_loudness: clips of {x.shape[1]} samples are too short; at least "
                         f"{max(n_fft, sr // frame_rate)} needed (one FFT frame)")
    _check_finite(x, "audio", "a_weighted_loudness")
    parts = [_loudness_torch(x[i : i + _CHUNK], sr, n_fft, frame_rate, ref_db, range_db, eps, window)
             for i in range(0, x.shape[0], _CHUNK)]
    return torch.cat(parts).cpu().numpy().astype(np.float64, copy=False)


def loudness_l1(
    target: ArrayLike,
    estimate: ArrayLike,
    sample_rate: int,
    *,
    domain: Literal["db", "power"] = "db",
    n_fft: int = 2048,
    frame_rate: int = 50,
    ref_db: float = 20.7,
    range_db: float = 120.0,
    eps: float = 1e-5,
    window: Literal["boxcar", "hann"] = "boxcar",
) -> np.ndarray:
    """Loudness L1 (Masuda & Saito 2023, Sec. V-E "Loud"); see :func:`a_weighted_loudness`.

    ``domain="db"``: ``mean_t |L_t - L̂_t|`` in dB (paper text); ``domain="power"``:
    ``mean_t |10^(L̂_t/10) - 10^(L_t/10)|`` (official ``loudness_loss``). ``(B, T), (B, T) -> (B,)``.
    """
    if domain not in ("db", "power"):
        raise ConfigError(f"loudness_l1: unknown domain {domain!r}; valid: 'db', 'power'")
    sr = _loudness_args(sample_rate, n_fft, frame_rate, window, "loudness_l1")
    t, e = _pair(target, estimate, "loudness_l1", max(n_fft, sr // frame_rate), "one FFT frame")

    def one(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        la = _loudness_torch(a, sr, n_fft, frame_rate, ref_db, range_db, eps, window)
        lb = _loudness_torch(b, sr, n_fft, frame_rate, ref_db, range_db, eps, window)
        if domain == "power":
            la, lb = torch.pow(10.0, la / 10.0), torch.pow(10.0, lb / 10.0)
        return (lb - la).abs().mean(dim=-1)

    return _chunked(one, t, e)


# ---------------------------------------------------------------------------------------------- parameters
def parameter_l1(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Mean absolute error of normalised parameter vectors (both papers): ``(B, P), (B, P) -> (B,)``.

    ``(P,)`` inputs count as ``B = 1``. Raises :class:`~synthproxy.errors.SpecError` on shape mismatch or
    non-finite values.
    """
    arrs = []
    for which, v in (("pred", pred), ("target", target)):
        a = np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] == 0:
            raise SpecError(f"parameter_l1: {which} must have shape (B, P) or (P,) with P >= 1, got {a.shape}")
        if not np.isfinite(a).all():
            raise SpecError(f"parameter_l1: {which} contains NaN or inf")
        arrs.append(a)
    if arrs[0].shape != arrs[1].shape:
        raise SpecError(f"parameter_l1: pred and target shapes differ: {arrs[0].shape} and {arrs[1].shape}")
    return np.abs(arrs[0] - arrs[1]).mean(axis=1)


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MetricSpec:
    """One audio metric: ``fn(target, estimate, sample_rate) -> (B,)`` (lower is better for all)."""

    name: str
    fn: Callable[[ArrayLike, ArrayLike, int], np.ndarray]
    paper: str
    unit: str
    description: str


AUDIO_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("stft", lambda t, e, sr: stft_distance(t, e), "Combes et al. 2025, Sec. 8.1", "",
                   "auraloss STFTLoss (1024/256/1024), SC + log magnitude"),
        MetricSpec("mstft", lambda t, e, sr: mstft_distance(t, e), "Combes et al. 2025, Sec. 8.1", "",
                   "auraloss MultiResolutionSTFTLoss (default resolutions)"),
        MetricSpec("mel", lambda t, e, sr: mel_distance(t, e, sr), "Combes et al. 2025, Sec. 8.1", "",
                   "auraloss MelSTFTLoss (128 mels, 1024/256)"),
        MetricSpec("mfccd", lambda t, e, sr: mfcc_distance(t, e, sr), "Combes et al. 2025, Sec. 8.1", "dB",
                   "L1 of 40 MFCCs (c0 dropped) from a 128-band mel (unscaled)"),
        MetricSpec("lsd", lambda t, e, sr: lsd(t, e), "Masuda & Saito 2023, Sec. V-E eq. (6)", "dB",
                   "log-spectral distance, official formula"),
        MetricSpec("mcd", lambda t, e, sr: mcd(t, e, sr), "Masuda & Saito 2023, Sec. V-E", "dB",
                   "mel-cepstral distortion, trimmed, DTW-aligned"),
        MetricSpec("loudness", lambda t, e, sr: loudness_l1(t, e, sr), "Masuda & Saito 2023, Sec. V-E", "dB",
                   "L1 of A-weighted loudness (2048-point FFT, 50 frames/s)"),
    )
}
PAPER1_METRICS: tuple[str, ...] = ("stft", "mstft", "mel", "mfccd")
PAPER2_METRICS: tuple[str, ...] = ("lsd", "mcd", "loudness")
_DERIVED = ("a_mean",)


def metric_names() -> tuple[str, ...]:
    """All names :func:`compute_audio_metrics` accepts (the registry's and the derived ``a_mean``)."""
    return (*AUDIO_METRICS, *_DERIVED)


def get_metric(name: str) -> MetricSpec:
    """Registry entry of ``name``; raises :class:`~synthproxy.errors.ConfigError` listing valid names."""
    try:
        return AUDIO_METRICS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown audio metric {name!r}; valid names: {', '.join(AUDIO_METRICS)}") from None


def compute_audio_metrics(
    target: ArrayLike, estimate: ArrayLike, sample_rate: int, names: Sequence[str] = PAPER1_METRICS + PAPER2_METRICS
) -> dict[str, np.ndarray]:
    """Evaluate metrics by name: ``{name: (B,) float64}`` in the order asked.

    ``"a_mean"`` computes (and reuses) the four paper-1 metrics. All names are checked before any work; an
    unknown one raises :class:`~synthproxy.errors.ConfigError` listing the valid names.
    """
    if isinstance(names, str):
        names = [names]
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in AUDIO_METRICS and n not in _DERIVED]
    if unknown:
        raise ConfigError(
            f"unknown audio metric(s) {', '.join(repr(n) for n in unknown)}; valid names: {', '.join(metric_names())}"
        )
    needed = [n for n in names if n in AUDIO_METRICS]
    if "a_mean" in names:
        needed += [n for n in PAPER1_METRICS if n not in needed]
    values = {n: AUDIO_METRICS[n].fn(target, estimate, sample_rate) for n in needed}
    if "a_mean" in names:
        values["a_mean"] = a_mean(*(values[n] for n in PAPER1_METRICS))
    return {n: values[n] for n in names}
