"""Audio representations: audio models that map audio batches to per-frame features.

The paper's hand-crafted baselines (Appendix 11.1) live here; :mod:`synthproxy.audio.registry` finds
them, and the learned models (EfficientAT, ...), by name. Every representation takes a batch ``(B, T)``
of float32 audio at its own ``sample_rate`` and returns ``(B, frames, features)``; a temporal reduction
then gives the vector stored and learned: ``nop`` concatenates the frames, ``avg`` averages them (paper Sec. 5.1).

All computations are batched torch ops (``torch.stft``; mel filters from librosa, computed once), so
one call embeds a whole render batch.

``Representation.__call__`` runs under ``torch.inference_mode()`` (the dataset path);
:meth:`Representation.embed_differentiable` computes the same numbers with autograd (the analysis of gradients
through "synth + representation"), on the input's device and in its dtype (float32, or float64 for gradient
checks). The hand-crafted models support it; learned ones (EfficientAT) do not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import librosa
import numpy as np
import torch

from synthproxy.errors import AudioError, ConfigError

REDUCTIONS = ("nop", "avg")
_LOG_EPS = 1e-5


def reduce_frames(features: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply a temporal reduction to ``(B, frames, F)`` features."""
    if reduction == "avg":
        return features.mean(dim=1)
    if reduction == "nop":
        return features.reshape(features.shape[0], -1)
    raise ConfigError(f"unknown temporal reduction '{reduction}'; valid: {list(REDUCTIONS)}")


def _records_grad(x: torch.Tensor) -> bool:
    """True when an op on ``x`` records an autograd graph (outside inference mode, grad on, ``x`` needs grad)."""
    return x.requires_grad and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def _constant_like(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A constant (filterbank, DCT matrix) on ``like``'s device and in its dtype, usable in an autograd graph.

    For float32 CPU input this is ``t`` itself (the inference path is unchanged). A tensor created under
    ``inference_mode`` cannot be saved for backward, so outside inference mode such a tensor is cloned.
    """
    out = t.to(device=like.device, dtype=like.dtype)
    if out.is_inference() and not torch.is_inference_mode_enabled():
        out = out.clone()
    return out


_SPARSE_GRAD_OK: dict[torch.dtype, bool] = {}


def sparse_mm_supports_grad(dtype: torch.dtype = torch.float32) -> bool:
    """Whether ``torch.sparse.mm(sparse COO, dense)`` back-propagates to the dense operand on CPU (checked once
    per dtype on a tiny product against the dense result; the mel product falls back to dense when not)."""
    if dtype not in _SPARSE_GRAD_OK:
        ok = False
        try:
            with torch.inference_mode(False), torch.enable_grad():
                a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], dtype=dtype)
                x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=dtype, requires_grad=True)
                torch.sparse.mm(a.to_sparse().coalesce(), x).sum().backward()
                ok = x.grad is not None and bool(torch.allclose(x.grad, a.sum(0)[:, None].expand(2, 2)))
        except (RuntimeError, NotImplementedError):  # pragma: no cover - depends on the torch build
            ok = False
        _SPARSE_GRAD_OK[dtype] = ok
    return _SPARSE_GRAD_OK[dtype]


def all_finite(x: torch.Tensor) -> bool:
    """True when no value is NaN/inf. On CPU numpy's check is ~20x faster than ``torch.isfinite``."""
    if x.device.type == "cpu":
        return bool(np.isfinite(x.detach().numpy()).all())
    return bool(torch.isfinite(x).all())


class Representation:
    """Base class: an audio model with a fixed input sample rate."""

    name: str = ""
    sample_rate: int = 44100
    min_samples: int = 1
    # On CPU, batches are embedded this many clips at a time: a few clips' spectrograms stay in cache,
    # which makes STFT-based features ~2.5x faster per clip than one pass over a 32-clip batch.
    cpu_block: int | None = None
    # Whether embed_differentiable is available (pure torch ops from the audio to the embedding).
    differentiable: bool = False

    def features(self, audio: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """``(B, T)`` audio → ``(B, frames, F)`` features."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """Everything that determines the output, recorded in the data store's attributes."""
        return {"name": self.name, "sample_rate": self.sample_rate}

    def __call__(
        self, audio: torch.Tensor | np.ndarray, reduction: str, sample_rate: int | None = None,
        check_input: bool = True,
    ) -> torch.Tensor:
        """Embed ``(B, T)`` (or ``(T,)``) audio; audio at another ``sample_rate`` is resampled to the model's.

        ``check_input=False`` skips the NaN/inf scan of the audio for callers that have already done it
        (the render pipeline); the output is always checked.
        """
        if sample_rate is not None and sample_rate != self.sample_rate:
            audio = resample(np.asarray(audio, dtype=np.float32), sample_rate, self.sample_rate)
        audio = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio)
        if audio.ndim == 1:
            audio = audio[None]
        if audio.shape[-1] < self.min_samples:
            raise AudioError(
                f"{self.name}: audio of {audio.shape[-1]} samples is shorter than the minimum of "
                f"{self.min_samples} samples at {self.sample_rate} Hz"
            )
        if check_input and not all_finite(audio):
            raise AudioError(f"{self.name}: audio holds NaN/inf samples")
        audio = audio.float()
        block = self.cpu_block if audio.device.type == "cpu" and self.cpu_block else audio.shape[0]
        with torch.inference_mode():
            out = torch.cat([self._embed(audio[i:i + block] if block < audio.shape[0] else audio, reduction)
                             for i in range(0, audio.shape[0], block)])
        if not all_finite(out):
            raise AudioError(f"{self.name}: embedding holds NaN/inf values")
        return out

    def embed_differentiable(self, audio: torch.Tensor, reduction: str) -> torch.Tensor:
        """Embed ``(B, T)`` (or ``(T,)``) audio at the model's rate with autograd: ``(B, D)``.

        The same numbers as :meth:`__call__` (same ops, same CPU blocking) but differentiable w.r.t. ``audio``,
        on its device and in its floating dtype (float32 as ``__call__``; float64 for gradient checks). No
        resampling and no NaN scan (a scan would synchronise every call); the caller owns the input.
        """
        if not self.differentiable:
            raise ConfigError(f"{self.name}: this audio model has no differentiable path (embed_differentiable)")
        if not torch.is_tensor(audio) or not audio.is_floating_point():
            raise AudioError(f"{self.name}: embed_differentiable takes a floating torch tensor (B, T)")
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2:
            raise AudioError(f"{self.name}: audio must have shape (B, T) or (T,), got {tuple(audio.shape)}")
        if audio.shape[-1] < self.min_samples:
            raise AudioError(
                f"{self.name}: audio of {audio.shape[-1]} samples is shorter than the minimum of "
                f"{self.min_samples} samples at {self.sample_rate} Hz"
            )
        if audio.dtype not in (torch.float32, torch.float64):
            audio = audio.float()
        block = self.cpu_block if audio.device.type == "cpu" and self.cpu_block else audio.shape[0]
        with torch.inference_mode(False):
            if block >= audio.shape[0]:
                return self._embed(audio, reduction)
            return torch.cat([self._embed(audio[i:i + block], reduction) for i in range(0, audio.shape[0], block)])

    def _embed(self, audio: torch.Tensor, reduction: str) -> torch.Tensor:
        if reduction == "avg" and hasattr(self, "pooled"):  # a cheaper exact path for time averages
            return self.pooled(audio)
        return reduce_frames(self.features(audio), reduction)

    def dim(self, n_samples: int, reduction: str) -> int:
        """Embedding size for audio of ``n_samples`` samples (computed on silence, so always exact)."""
        return int(self(torch.zeros(1, n_samples), reduction).shape[-1])


# Recent power spectrograms, so representations with the same STFT (mel128, mfcc40 and mstft's 2048/1024
# resolution) embedding the same batch compute it once. Entries hold the audio tensor itself: a hit needs
# the very same object (``is``), which cannot be freed and replaced while it is referenced here.
_POWER_CACHE: list[tuple[torch.Tensor, int, int, torch.Tensor]] = []
_POWER_CACHE_SIZE = 4


class _STFTMixin:
    window_cache: dict[tuple, torch.Tensor]
    cpu_block: int | None = 4
    differentiable: bool = True

    def _power(self, audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
        """``(B, T)`` → power spectrogram ``(B, n_fft//2+1, frames)`` with a Hann window."""
        if _records_grad(audio):  # a differentiable pass: neither read nor fill the (inference) cache
            return self._compute_power(audio, n_fft, hop)
        for cached_audio, c_fft, c_hop, power in _POWER_CACHE:
            if cached_audio is audio and c_fft == n_fft and c_hop == hop:
                return power
        power = self._compute_power(audio, n_fft, hop)
        # keep only the current batch's spectrograms: memory stays at one batch whatever the dataset size
        _POWER_CACHE[:] = [e for e in _POWER_CACHE if e[0] is audio][: _POWER_CACHE_SIZE - 1]
        _POWER_CACHE.insert(0, (audio, n_fft, hop, power))
        return power

    def _compute_power(self, audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
        # windows made under inference_mode cannot be saved for backward: the mode is part of the key
        key = (n_fft, str(audio.device), audio.dtype, torch.is_inference_mode_enabled())
        if key not in self.window_cache:
            self.window_cache[key] = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
        spec = torch.stft(
            audio, n_fft=n_fft, hop_length=hop, window=self.window_cache[key], center=True,
            pad_mode="constant", return_complex=True,
        )
        return spec.real.square() + spec.imag.square()  # ~10x faster than abs().square() on CPU


@dataclass
class MelSpectrogram(_STFTMixin, Representation):
    """mel128: log 128-bin mel spectrogram, 44.1 kHz, window 2048, hop 1024 (paper App. 11.1)."""

    name: str = "mel128"
    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024
    n_mels: int = 128
    window_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.min_samples = self.n_fft // 2 + 1
        fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        self._fb = torch.from_numpy(fb.T.astype(np.float32))  # (freqs, mels)
        # Triangular filters overlap pairwise: <= 2 of n_mels weights per FFT bin are non-zero, so on CPU a
        # sparse product is ~10x cheaper than the dense one (which dominated the whole feature extraction).
        self._fb_sparse = self._fb.T.to_sparse().coalesce()  # (mels, freqs)

    def mel(self, audio: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram ``(B, frames, n_mels)``."""
        power = self._power(audio, self.n_fft, self.hop)  # (B, freqs, frames)
        grad = _records_grad(power)
        if audio.device.type == "cpu" and (not grad or sparse_mm_supports_grad(power.dtype)):
            fb_sparse = _constant_like(self._fb_sparse, power)
            mel = torch.stack([torch.sparse.mm(fb_sparse, p) for p in power])
        else:
            mel = torch.matmul(_constant_like(self._fb, power).T, power)
        return mel.transpose(1, 2)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(audio) + _LOG_EPS)

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels,
                                     "log_eps": _LOG_EPS, "mel_norm": "slaney"}


@dataclass
class MFCC(_STFTMixin, Representation):
    """mfcc40: 40 MFCCs from a 256-bin log-mel spectrogram, same STFT as mel128 (paper App. 11.1)."""

    name: str = "mfcc40"
    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 1024
    n_mels: int = 256
    n_mfcc: int = 40
    window_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.min_samples = self.n_fft // 2 + 1
        self._mel = MelSpectrogram(sample_rate=self.sample_rate, n_fft=self.n_fft, hop=self.hop,
                                   n_mels=self.n_mels)
        # Orthonormal DCT-II matrix (as librosa.feature.mfcc with norm="ortho").
        n = torch.arange(self.n_mels, dtype=torch.float64)
        k = torch.arange(self.n_mfcc, dtype=torch.float64)[:, None]
        dct = torch.cos(math.pi / self.n_mels * (n + 0.5) * k) * math.sqrt(2.0 / self.n_mels)
        dct[0] /= math.sqrt(2.0)
        self._dct = dct.T.float()  # (mels, mfcc)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        # librosa's power_to_db (10 log10, top_db=None) followed by an orthonormal DCT.
        db = 10.0 * torch.log10(torch.clamp(self._mel.mel(audio), min=1e-10))
        return db @ _constant_like(self._dct, db)

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"n_fft": self.n_fft, "hop": self.hop, "n_mels": self.n_mels,
                                     "n_mfcc": self.n_mfcc}


@dataclass
class MultiResolutionSTFT(_STFTMixin, Representation):
    """mstft: log magnitude spectrograms at 7 resolutions (windows 4096..64, hop = window/2).

    ``avg`` concatenates each resolution's time-averaged log magnitudes (2049 + 1025 + ... + 33 = 4071
    values). Frame rates differ across resolutions, so for ``nop`` each resolution is average-pooled onto
    the coarsest time grid (adaptive pooling) before the frames are concatenated.
    """

    name: str = "mstft"
    sample_rate: int = 44100
    windows: tuple[int, ...] = (4096, 2048, 1024, 512, 256, 128, 64)
    window_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.min_samples = max(self.windows) // 2 + 1

    def _logmags(self, audio: torch.Tensor) -> list[torch.Tensor]:
        # log(sqrt(p) + eps) without the sqrt pass: 0.5 * log(p + eps^2) differs by < eps relative.
        return [0.5 * torch.log(self._power(audio, w, w // 2) + _LOG_EPS**2) for w in self.windows]

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        n_coarse = audio.shape[-1] // (max(self.windows) // 2) + 1
        pooled = [torch.nn.functional.adaptive_avg_pool1d(m, n_coarse) for m in self._logmags(audio)]
        return torch.cat(pooled, dim=1).transpose(1, 2)

    def pooled(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.mean(dim=-1) for m in self._logmags(audio)], dim=-1)

    def settings(self) -> dict[str, Any]:
        return super().settings() | {"windows": list(self.windows), "hops": [w // 2 for w in self.windows]}


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``(B, T)`` audio with soxr (high quality) when a model's rate differs from the render's."""
    if sr_in == sr_out:
        return audio
    return librosa.resample(audio, orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq", axis=-1).astype(np.float32)
