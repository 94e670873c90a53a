"""Log-mel front-end of the EfficientAT audio models, re-implemented in pure torch.

The EfficientAT checkpoints (fschmid56/EfficientAT, commit a425fdce) were trained on the output of the
upstream ``AugmentMelSTFT`` module, so the pretrained weights are only meaningful on *exactly* that input:
pre-emphasis, a symmetric-Hann STFT, Kaldi-style mel filters, ``log(x + 1e-5)`` and the fixed
``(x + 4.5) / 5`` normalisation. Upstream builds the filters with ``torchaudio.compliance.kaldi``; torchaudio
is not usable in this project, so the Kaldi filter-bank formula is implemented here and evaluated in the
same float32 arithmetic, which makes the filter matrix bit-identical to upstream's.

Only the evaluation path is implemented: upstream's training-time augmentation (random fmin/fmax jitter,
frequency and time masking) is never active when extracting embeddings.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from synthproxy.errors import AudioError

__all__ = [
    "FMAX_AUG_RANGE",
    "HOP_LENGTH",
    "LOG_OFFSET",
    "NORM_OFFSET",
    "NORM_SCALE",
    "N_FFT",
    "N_MELS",
    "PREEMPHASIS",
    "SAMPLE_RATE",
    "WIN_LENGTH",
    "EfficientATMel",
    "kaldi_mel_banks",
    "kaldi_mel_scale",
]

#: Settings with which both the upstream inference code and the HEAR wrapper build the front-end.
SAMPLE_RATE: int = 32000
N_MELS: int = 128
N_FFT: int = 1024
WIN_LENGTH: int = 800
HOP_LENGTH: int = 320
#: Upstream derives the default fmax from its training augmentation range: ``sr // 2 - 2000 // 2``.
FMAX_AUG_RANGE: int = 2000
#: Pre-emphasis ``y[n] = x[n + 1] - 0.97 * x[n]`` (upstream: conv1d with kernel ``[-0.97, 1]``).
PREEMPHASIS: float = 0.97
#: Added before the log so that silence maps to a finite value, ``ln(1e-5)``.
LOG_OFFSET: float = 1e-5
#: Upstream's "fast normalisation" of the log-mel: ``(x + 4.5) / 5``.
NORM_OFFSET: float = 4.5
NORM_SCALE: float = 5.0


def kaldi_mel_scale(freq: Tensor) -> Tensor:
    """Kaldi's mel scale ``1127 ln(1 + f / 700)`` (natural log, unlike the HTK ``2595 log10`` form)."""
    return 1127.0 * (1.0 + freq / 700.0).log()


def _kaldi_mel_scale_scalar(freq: float) -> float:
    """Same as :func:`kaldi_mel_scale` in double precision, used for the band edges as Kaldi does."""
    return 1127.0 * math.log(1.0 + freq / 700.0)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> Tensor:
    """Triangular Kaldi mel filters as a ``(n_mels, n_fft // 2 + 1)`` float32 matrix.

    Kaldi spaces ``n_mels + 2`` band edges evenly on its mel scale between ``fmin`` and ``fmax``; filter
    ``m`` rises linearly *in the mel domain* from edge ``m`` to a peak of 1 at edge ``m + 1`` and falls to
    0 at edge ``m + 2`` (no area normalisation). Kaldi only evaluates the ``n_fft // 2`` bins below Nyquist;
    upstream EfficientAT then appends a zero column for the Nyquist bin so the matrix multiplies a onesided
    STFT directly; this function returns that padded matrix.

    The band edges are computed in double precision and everything per-bin in float32, matching the
    arithmetic of ``torchaudio.compliance.kaldi.get_mel_banks`` (with VTLN warp factor 1, i.e. no warping)
    so that the result is bit-identical to the filters the checkpoints were trained with.
    """
    if n_mels < 4:
        raise ValueError(f"Kaldi mel banks need at least 4 bands, got n_mels={n_mels}")
    if n_fft % 2 != 0:
        raise ValueError(f"n_fft must be even, got {n_fft}")
    nyquist = 0.5 * sample_rate
    if fmax <= 0.0:  # Kaldi convention: non-positive fmax is an offset from Nyquist
        fmax += nyquist
    if not (0.0 <= fmin < nyquist and 0.0 < fmax <= nyquist and fmin < fmax):
        raise ValueError(f"need 0 <= fmin < fmax <= Nyquist ({nyquist} Hz), got fmin={fmin}, fmax={fmax}")

    mel_low = _kaldi_mel_scale_scalar(fmin)
    mel_high = _kaldi_mel_scale_scalar(fmax)
    # n_mels + 1 intervals: the outermost filters reach the band edges with their feet.
    delta = (mel_high - mel_low) / (n_mels + 1)

    band = torch.arange(n_mels, dtype=torch.float32).unsqueeze(1)
    left = mel_low + band * delta
    centre = mel_low + (band + 1.0) * delta
    right = mel_low + (band + 2.0) * delta

    bin_hz = sample_rate / n_fft
    bin_mel = kaldi_mel_scale(bin_hz * torch.arange(n_fft // 2, dtype=torch.float32)).unsqueeze(0)
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return nn.functional.pad(banks, (0, 1))


class EfficientATMel(nn.Module):
    """Waveform ``(batch, samples)`` at 32 kHz -> normalised log-mel ``(batch, n_mels, frames)``.

    Evaluation-mode equivalent of upstream ``AugmentMelSTFT``. The number of frames is
    ``1 + (samples - 1) // hop_length`` (pre-emphasis drops one sample, the STFT is centred). The centred
    STFT reflect-pads ``n_fft // 2`` samples on each side, which is only defined for inputs longer than the
    padding, hence the minimum input length :attr:`min_samples` (514 samples with the default settings).
    """

    window: Tensor
    mel_basis: Tensor

    def __init__(
        self,
        n_mels: int = N_MELS,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = WIN_LENGTH,
        hop_length: int = HOP_LENGTH,
        n_fft: int = N_FFT,
        fmin: float = 0.0,
        fmax: float | None = None,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.sample_rate = sample_rate
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.fmin = float(fmin)
        self.fmax = float(sample_rate // 2 - FMAX_AUG_RANGE // 2) if fmax is None else float(fmax)
        # Not persistent: upstream stores no front-end state in its checkpoints, and keeping these out of
        # state_dict() keeps the network's state_dict identical to the official layout.
        self.register_buffer("window", torch.hann_window(win_length, periodic=False), persistent=False)
        self.register_buffer(
            "mel_basis", kaldi_mel_banks(n_mels, n_fft, sample_rate, self.fmin, self.fmax), persistent=False
        )

    @property
    def min_samples(self) -> int:
        """Shortest accepted input: after pre-emphasis it must exceed the ``n_fft // 2`` reflect padding."""
        return self.n_fft // 2 + 2

    def num_frames(self, num_samples: int) -> int:
        """Number of output frames for an input of ``num_samples`` samples."""
        return 1 + (num_samples - 1) // self.hop_length

    def forward(self, audio: Tensor) -> Tensor:
        """Compute the normalised log-mel spectrogram of a batch of waveforms."""
        if audio.dim() != 2:
            raise AudioError(f"expected audio of shape (batch, samples), got shape {tuple(audio.shape)}")
        if audio.shape[-1] < self.min_samples:
            min_ms = self.min_samples / self.sample_rate * 1000
            raise AudioError(
                f"audio is too short for the EfficientAT mel front-end: {audio.shape[-1]} samples, "
                f"need at least {self.min_samples} samples ({min_ms:.1f} ms at {self.sample_rate} Hz)"
            )
        audio = audio.to(torch.float32)
        emphasised = audio[:, 1:] - PREEMPHASIS * audio[:, :-1]
        spec = torch.stft(
            emphasised,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = torch.view_as_real(spec).pow(2).sum(dim=-1)
        # Kept in float32 even under autocast, as upstream does: the power spectrum spans a range that
        # half precision cannot hold.
        with torch.autocast(device_type=power.device.type, enabled=False):
            mel = torch.matmul(self.mel_basis, power)
        return ((mel + LOG_OFFSET).log() + NORM_OFFSET) / NORM_SCALE
