"""Input features of the sound-matching estimators: log-mel spectrograms, batched in torch.

* paper 1 (Combes et al. Sec. 8; official ``MelSTFT``): 128 mel bands, FFT 1024, hop 512, pre-emphasis 0.97,
  power spectrogram in dB, at the proxy's audio-model rate; min–max scaled to [−1, 1] with scalar statistics of
  the training split (:class:`MinMaxScaler`);
* paper 2 (Masuda & Saito Sec. V-C): 128 mel bands, FFT 1024, hop 256, ``log(mel magnitude + 1e-3)``.

Both are :class:`LogMel` with other settings (``config``: ``matching.features`` / ``ddsp.features``). Shapes:
audio ``(B, T)`` at ``sample_rate`` → features ``(B, n_mels, frames)`` float32. The mel filters are librosa's
(Slaney); the official paper-1 code uses Kaldi-style filters (the difference is documented, not reproduced:
the estimator learns on whichever it is given).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import librosa
import numpy as np
import torch

from synthproxy.errors import ConfigError


@dataclass
class LogMel:
    """Log-mel spectrogram ``(B, T) → (B, n_mels, frames)``; ``frames = T // hop + 1`` (centred STFT)."""

    sample_rate: int = 44100
    n_fft: int = 1024
    hop: int = 512
    n_mels: int = 128
    pre_emphasis: float = 0.97
    power: float = 2.0
    log: str = "db"
    """``db``: ``10·log10(max(mel, floor))`` (paper 1); ``ln``: ``log(mel + offset)`` (paper 2)."""
    floor: float = 1e-8
    offset: float = 1e-3
    _fb: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.log not in ("db", "ln"):
            raise ConfigError(f"features.log must be 'db' or 'ln', got {self.log!r}")
        if self.power not in (1.0, 2.0):
            raise ConfigError(f"features.power must be 1 (magnitude) or 2 (power), got {self.power!r}")
        fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels)
        self._fb = torch.from_numpy(fb.astype(np.float32))  # (n_mels, n_fft // 2 + 1)
        self._window = torch.hann_window(self.n_fft)

    @classmethod
    def from_config(cls, options: dict[str, Any], sample_rate: int) -> LogMel:
        valid = {k for k in cls.__dataclass_fields__ if not k.startswith("_")} - {"sample_rate"}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ConfigError(f"unknown feature setting(s) {unknown}; valid: {sorted(valid)}")
        return cls(sample_rate=int(sample_rate), **options)

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if not k.startswith("_")}

    def __call__(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio).float()
        if x.ndim == 1:
            x = x[None]
        if self.pre_emphasis:
            x = torch.cat([x[:, :1], x[:, 1:] - self.pre_emphasis * x[:, :-1]], dim=1)
        spec = torch.stft(x, n_fft=self.n_fft, hop_length=self.hop, window=self._window.to(x.device), center=True,
                          pad_mode="reflect", return_complex=True)
        mag = spec.abs() if self.power == 1.0 else spec.real.square() + spec.imag.square()
        mel = torch.matmul(self._fb.to(x.device), mag)  # (B, n_mels, frames)
        if self.log == "db":
            return 10.0 * torch.log10(torch.clamp(mel, min=self.floor))
        return torch.log(mel + self.offset)


@dataclass
class MinMaxScaler:
    """Scale features to [−1, 1] with the scalar min and max of the training split (official paper-1 input)."""

    low: float
    high: float

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        span = max(self.high - self.low, 1e-12)
        return (features - self.low) / span * 2.0 - 1.0

    def state(self) -> dict[str, float]:
        return {"low": float(self.low), "high": float(self.high)}
