"""Reading audio files robustly: any common format, rate, bit depth and channel count → mono float32.

:func:`load_audio` reads WAV/FLAC/OGG (and whatever else libsndfile reads) with soundfile, mixes the channels
down to mono by averaging, resamples with soxr (high quality) and pads with zeros or trims to a fixed length.
Every way a file can be unusable raises an :class:`~synthproxy.errors.AudioError` whose message is one line and
names the file: missing, a folder, empty, not audio, unreadable/corrupt (including truncated WAV data and
damaged Ogg streams), no frames, shorter than a minimum, all silent, NaN/inf samples.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from synthproxy.errors import AudioError

_WAV_DATA_SHORT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_OGG_DAMAGE = ("Corrupted bitstream", "reports a hole")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _damage(info: str) -> str | None:
    """What libsndfile's log (``extra_info``) says is wrong with a file that still opened, or None."""
    m = _WAV_DATA_SHORT.search(info)
    if m and int(m.group(2)) < int(m.group(1)):
        return f"truncated: the data chunk holds {m.group(2)} of {m.group(1)} bytes"
    for marker in _OGG_DAMAGE:
        if marker in info:
            return "damaged Ogg stream (" + _one_line(next(ln for ln in info.splitlines() if marker in ln)) + ")"
    return None


def audio_info(path: Path | str) -> tuple[int, int, int]:
    """A path in, ``(frames, sample_rate, channels)`` from the header out; AudioError when it is not audio."""
    path = _check_path(Path(path))
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise _open_error(path, exc) from None
    return int(info.frames), int(info.samplerate), int(info.channels)


def _check_path(path: Path) -> Path:
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.is_dir():
        raise AudioError(f"expected an audio file but got a folder: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    if not os.access(path, os.R_OK):
        raise AudioError(f"audio file is not readable (permission denied): {path}")
    return path


def _open_error(path: Path, exc: BaseException) -> AudioError:
    msg = _one_line(exc)
    if "Format not recognised" in msg or "unknown format" in msg.lower():
        return AudioError(f"not an audio file (format not recognised): {path}")
    msg = msg.replace(f"Error opening {str(path)!r}: ", "").replace(f"Error opening '{path}': ", "")
    msg = re.sub(r"^Error\s*:\s*", "", msg)
    return AudioError(f"corrupt or unreadable audio file {path}: {msg}")


def load_audio(path: Path | str, sample_rate: int, n_samples: int | None = None, *, min_seconds: float = 0.0,
               silence_threshold: float | None = 0.0, strict: bool = True) -> np.ndarray:
    """An audio file, the wanted sample rate and optionally a length in samples in; ``(n_samples,)`` float32 out.

    The channels are averaged to mono, the audio resampled to ``sample_rate`` (soxr, high quality), then
    zero-padded or trimmed to ``n_samples`` (None: keep the resampled length). Raises a one-line
    :class:`AudioError` naming the file when it is missing, a folder, empty, not audio, corrupt or unreadable
    (``strict``: also a truncated WAV data chunk or a damaged Ogg stream, which libsndfile would read short
    without an error), has no frames, lasts less than ``min_seconds`` (before padding), has NaN/inf samples,
    or is silent (peak ``<= silence_threshold``; with the default 0.0, only all-zero audio; None: no check).
    """
    path = _check_path(Path(path))
    if sample_rate <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate} (reading {path})")
    try:
        with sf.SoundFile(str(path)) as f:
            if strict and (damage := _damage(f.extra_info)):
                raise AudioError(f"corrupt audio file {path}: {damage}")
            sr = int(f.samplerate)
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, MemoryError) as exc:
        raise _open_error(path, exc) from None
    if data.shape[0] == 0:
        raise AudioError(f"audio file has no samples (0 frames): {path}")
    seconds = data.shape[0] / sr
    if seconds < min_seconds:
        raise AudioError(f"audio file too short: {seconds:.3f} s < {min_seconds:g} s minimum: {path}")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"audio file has {bad} NaN/inf samples: {path}")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    peak = float(np.abs(mono).max())
    if silence_threshold is not None and peak <= silence_threshold:
        what = "all zeros" if peak == 0 else f"peak {peak:.3g} <= {silence_threshold:g}"
        raise AudioError(f"audio file is silent ({what}): {path}")
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ").astype(np.float32, copy=False)
    if n_samples is not None:
        mono = fit_length(mono, n_samples)
    return np.ascontiguousarray(mono, dtype=np.float32)


def fit_length(x: np.ndarray, n_samples: int) -> np.ndarray:
    """A 1-D signal and a length in; the signal trimmed or zero-padded at the end to that length out."""
    if n_samples < 0:
        raise AudioError(f"n_samples must be >= 0, got {n_samples}")
    if len(x) >= n_samples:
        return x[:n_samples]
    return np.pad(x, (0, n_samples - len(x)))
