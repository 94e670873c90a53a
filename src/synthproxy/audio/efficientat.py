"""EfficientAT (MobileNetV3) audio embeddings as used by "Neural Proxies for Sound Synthesizers".

The paper (Sec. 5-6, App. 11.1) embeds sounds with EfficientAT models through the HEAR wrapper
(fschmid56/EfficientAT_HEAR, commit 738e57da): the audio is cut into 160 ms windows every 50 ms
(reflect-padded by half a window at both ends), and for each window the wrapper concatenates

* optionally the time-averaged normalised log-mel of the window (128 values, ``with_mel=True``), then
* the global (frequency x time) average of the outputs of blocks ``features[5]``, ``[11]``, ``[13]``
  and ``[15]`` of the network.

That gives one vector per window ("frame"); the caller applies the temporal reduction, ``nop`` (flatten
the frames) or ``avg`` (mean over frames, what the paper trains on: mn04 without mel, 192 values).
Sizes: mn04 320 (with mel) / 192, mn20 1072 / 944.

Weights are the official AudioSet checkpoints from the EfficientAT release page, loaded strictly into
:class:`~synthproxy.audio.efficientat_net.MobileNetV3Audio` (upstream silently falls back to a non-strict
load; here a mismatch is an error that lists every difference).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from synthproxy.audio.efficientat_frontend import SAMPLE_RATE, EfficientATMel
from synthproxy.audio.efficientat_net import MobileNetV3Audio, build_mobilenet, width_from_name
from synthproxy.errors import AudioError, ConfigError, PluginNotFoundError, SpecError

__all__ = [
    "CHECKPOINT_FILES",
    "HEAR_BLOCKS",
    "RELEASE_URL",
    "TIMESTAMP_HOP",
    "TIMESTAMP_WINDOW",
    "EfficientATModel",
    "checkpoint_file",
    "checkpoint_url",
    "diff_state_dict",
    "embedding_dim",
    "frame_audio",
    "hear_window_features",
    "load_weights_into",
    "read_checkpoint",
    "reduce_time",
    "resolve_weights",
]

logger = logging.getLogger(__name__)

#: Where upstream publishes its checkpoints (``<RELEASE_URL><file>``).
RELEASE_URL: str = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"

#: Official AudioSet checkpoints per width (upstream ``pretrained_models``, ``mnXX_as`` entries).
CHECKPOINT_FILES: dict[str, str] = {
    "mn01": "mn01_as_mAP_298.pt",
    "mn02": "mn02_as_mAP_378.pt",
    "mn04": "mn04_as_mAP_432.pt",
    "mn05": "mn05_as_mAP_443.pt",
    "mn10": "mn10_as_mAP_471.pt",
    "mn20": "mn20_as_mAP_478.pt",
    "mn30": "mn30_as_mAP_482.pt",
    "mn40": "mn40_as_mAP_484.pt",
}

#: Blocks whose pooled outputs form the HEAR embedding (upstream mode ``("b5", "b11", "b13", "b15")``).
HEAR_BLOCKS: tuple[int, ...] = (5, 11, 13, 15)
#: HEAR timestamp windows: 160 ms every 50 ms at 32 kHz.
TIMESTAMP_WINDOW: int = 160 * SAMPLE_RATE // 1000
TIMESTAMP_HOP: int = 50 * SAMPLE_RATE // 1000

_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


# --------------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------------


def _short_name(name: str) -> str:
    """``"mn04_as"`` -> ``"mn04"`` (validating the name)."""
    width_from_name(name)
    return name[:4]


def checkpoint_file(name: str) -> str:
    """File name of the official AudioSet checkpoint of a model (``"mn04"`` -> ``mn04_as_mAP_432.pt``)."""
    short = _short_name(name)
    if short not in CHECKPOINT_FILES:
        raise ConfigError(
            f"no official AudioSet checkpoint is published for EfficientAT {short!r} "
            f"(available: {', '.join(CHECKPOINT_FILES)}); pass a local weights file instead"
        )
    return CHECKPOINT_FILES[short]


def checkpoint_url(name: str) -> str:
    """Download URL of the official checkpoint for a model name."""
    return RELEASE_URL + checkpoint_file(name)


def _where_to_get(name: str, target: Path) -> str:
    """The sentence that tells the user how to provide a missing checkpoint."""
    try:
        file = checkpoint_file(name)
    except ConfigError:
        return f"put the weights for {name!r} at {target}"
    return f"download {file} from {RELEASE_URL + file} and put it at {target}"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(path: Path, expected: str | None, actual: str | None = None, source: str = "") -> None:
    """Raise :class:`SpecError` if ``path`` does not have the pinned SHA256 (no-op without a pin).

    ``actual`` is passed when the hash was computed while downloading; ``source`` is then the URL.
    """
    if expected is None:
        return
    actual = actual if actual is not None else _sha256_of(path)
    if actual.lower() != expected.lower():
        what = f"downloaded from {source} (not kept)" if source else "(delete it to download again)"
        raise SpecError(
            f"SHA256 mismatch for EfficientAT weights {path.name} {what}: expected {expected.lower()}, "
            f"got {actual}; the file is corrupt or not the pinned checkpoint ({path})"
        )


def _download(url: str, target: Path, sha256: str | None) -> None:
    """Fetch ``url`` into ``target`` atomically: stream to a temp file in the same dir, verify, rename.

    Readers therefore never see a partial checkpoint, even if the download is interrupted or another
    process downloads the same file at the same time.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as exc:
        raise ConfigError(f"cannot write to the EfficientAT weights cache {target.parent}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        written = 0
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
                expected_len = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                while chunk := resp.read(_CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PluginNotFoundError(
                f"could not download EfficientAT weights from {url} ({exc}); without network access, "
                f"download {target.name} elsewhere and put it at {target}"
            ) from exc
        if expected_len is not None and expected_len.isdigit() and int(expected_len) != written:
            raise PluginNotFoundError(
                f"download of {url} was cut short ({written} of {expected_len} bytes); "
                f"retry, or download {target.name} manually and put it at {target}"
            )
        _check_sha256(target, sha256, digest.hexdigest(), source=url)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_weights(
    name: str,
    path_or_none: str | Path | None,
    cache_dir: str | Path,
    sha256: str | None = None,
    allow_download: bool = True,
) -> Path:
    """Locate the checkpoint file for model ``name``, downloading it into ``cache_dir`` if needed.

    Order: an explicit local path (must exist); else ``cache_dir/<official file>``; else, if allowed, a
    one-time download from the official release into ``cache_dir``. An optional SHA256 pin is checked in
    every case, because upstream publishes no hashes and a silently different file would change every
    embedding.

    Raises:
        PluginNotFoundError: the file is missing and cannot be downloaded (message says what to put where).
        SpecError: the file does not match the SHA256 pin.
        ConfigError: bad name or malformed SHA256, or no official checkpoint exists for this width.
    """
    if sha256 is not None and not _SHA256_RE.match(sha256):
        raise ConfigError(f"sha256 pin for EfficientAT {name!r} must be 64 hex digits, got {sha256!r}")
    if path_or_none is not None:
        path = Path(path_or_none).expanduser()
        if not path.is_file():
            raise PluginNotFoundError(
                f"EfficientAT weights file not found: {path}; {_where_to_get(name, path)}"
            )
        _check_sha256(path, sha256)
        return path

    file = checkpoint_file(name)
    target = Path(cache_dir).expanduser() / file
    if target.is_file():
        _check_sha256(target, sha256)
        return target
    if not allow_download:
        raise PluginNotFoundError(
            f"EfficientAT weights {file} are not in the cache {target.parent} and downloading is disabled; "
            f"{_where_to_get(name, target)}"
        )
    url = RELEASE_URL + file
    logger.info("downloading EfficientAT weights %s to %s", url, target)
    _download(url, target, sha256)
    return target


def read_checkpoint(path: str | Path, name: str | None = None) -> dict[str, Tensor]:
    """Load a state_dict file safely (``weights_only=True``: no arbitrary code from pickles).

    Raises:
        PluginNotFoundError: the file does not exist (``name`` selects which official file to suggest).
        SpecError: the file is truncated, corrupt, or does not hold a mapping of names to tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        hint = _where_to_get(name, path) if name is not None else "check the weights path in the config"
        raise PluginNotFoundError(f"EfficientAT weights file not found: {path}; {hint}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise SpecError(
            f"cannot read EfficientAT weights {path} (truncated or corrupt file?): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise SpecError(f"EfficientAT weights {path} do not hold a state_dict (mapping of names to tensors)")
    return dict(obj)


def diff_state_dict(expected: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> list[str]:
    """Human-readable differences between a module's state_dict and a loaded one (empty if compatible).

    Lists missing keys, unexpected keys, shape mismatches and integer/float kind mismatches. Float
    precision differences (e.g. a float16 file) are not reported: ``load_state_dict`` converts them.
    """
    lines: list[str] = []
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing:
        lines.append(f"missing keys ({len(missing)}):")
        lines.extend(f"  - {k} {list(expected[k].shape)}" for k in missing)
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}):")
        lines.extend(f"  - {k} {list(given[k].shape)}" for k in unexpected)
    shape_errors = [
        f"  - {k}: expected {list(v.shape)}, file has {list(given[k].shape)}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    if shape_errors:
        lines.append(f"shape mismatches ({len(shape_errors)}):")
        lines.extend(shape_errors)
    kind_errors = [
        f"  - {k}: expected {v.dtype}, file has {given[k].dtype}"
        for k, v in expected.items()
        if k in given and v.is_floating_point() != given[k].is_floating_point()
    ]
    if kind_errors:
        lines.append(f"dtype mismatches ({len(kind_errors)}):")
        lines.extend(kind_errors)
    return lines


def load_weights_into(net: MobileNetV3Audio, path: str | Path, name: str | None = None) -> None:
    """Strictly load a checkpoint file into ``net``; any layout difference raises :class:`SpecError`.

    The one tolerated difference is absent BatchNorm ``num_batches_tracked`` counters (torch itself accepts
    files without them; they do not affect inference): they are filled with zeros.
    """
    state = read_checkpoint(path, name)
    own = net.state_dict()
    for key, value in own.items():
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    problems = diff_state_dict(own, state)
    if problems:
        width = f"width {net.width_mult}" if name is None else repr(name)
        raise SpecError(
            f"EfficientAT weights {path} do not match the {width} network:\n" + "\n".join(problems)
        )
    net.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------------------
# Embeddings
# --------------------------------------------------------------------------------------------------------


def embedding_dim(net: MobileNetV3Audio, with_mel: bool, n_mels: int = 128) -> int:
    """Size of one HEAR-style frame embedding (mn04: 320 with mel / 192 without; mn20: 1072 / 944)."""
    return (n_mels if with_mel else 0) + sum(net.block_channels(i) for i in HEAR_BLOCKS)


def frame_audio(audio: Tensor, window: int = TIMESTAMP_WINDOW, hop: int = TIMESTAMP_HOP) -> Tensor:
    """Cut ``(batch, samples)`` into HEAR timestamp windows ``(batch, frames, window)``.

    As upstream: reflect-pad ``window // 2`` samples at both ends so that window ``i`` is centred on
    sample ``i * hop``, giving ``samples // hop + 1`` frames. Reflect padding needs
    ``samples > window // 2``. Returns a strided view (no copy).
    """
    pad = window // 2
    padded = torch.nn.functional.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    return padded.unfold(-1, window, hop)


def hear_window_features(
    frontend: EfficientATMel, net: MobileNetV3Audio, windows: Tensor, with_mel: bool
) -> Tensor:
    """HEAR embedding of each audio window ``(n, window_samples)`` -> ``(n, dim)``.

    ``[mean over time of the log-mel (if with_mel)] + [mean over freq and time of features[b] for b in
    HEAR_BLOCKS]``, in that order, as upstream's ``MNHearWrapper.forward``.
    """
    mel = frontend(windows)
    parts = [mel.mean(dim=2)] if with_mel else []
    parts.extend(out.mean(dim=(2, 3)) for out in net.block_outputs(mel.unsqueeze(1), HEAR_BLOCKS))
    return torch.cat(parts, dim=1)


def reduce_time(features: Tensor, method: Literal["nop", "avg"]) -> Tensor:
    """Paper's temporal reductions of ``(batch, frames, dim)``: ``nop`` flattens, ``avg`` averages frames.

    ``nop`` flattens frame-major; upstream code flattens dim-major, a permutation of the same values that
    leaves L1/L2 distances unchanged.
    """
    if method == "nop":
        return features.reshape(features.shape[0], -1)
    if method == "avg":
        return features.mean(dim=1)
    raise ConfigError(f"unknown temporal reduction {method!r}; expected 'nop' or 'avg'")


class EfficientATModel:
    """Frozen EfficientAT embedding model: 32 kHz audio ``(batch, samples)`` -> ``(batch, frames, dim)``.

    Args:
        name: ``"mn04"``, ``"mn20"``, ... (``"_as"`` suffix accepted).
        weights: checkpoint file (see :func:`resolve_weights`), or ``None`` for upstream's random
            initialisation (tests, shape checks; a warning is logged).
        device: torch device for inference.
        with_mel: prepend the window's time-averaged log-mel (128 values) to each frame embedding.
        max_windows_per_pass: windows run through the network at once; bounds memory for long or many
            clips without changing results.
    """

    sample_rate: int = SAMPLE_RATE

    def __init__(
        self,
        name: str,
        weights: str | Path | None,
        device: str = "cpu",
        with_mel: bool = False,
        max_windows_per_pass: int = 512,
    ) -> None:
        if max_windows_per_pass < 1:
            raise ConfigError(f"max_windows_per_pass must be >= 1, got {max_windows_per_pass}")
        self.name = _short_name(name)
        self.device = torch.device(device)
        self.with_mel = with_mel
        self.max_windows_per_pass = max_windows_per_pass
        self.net = build_mobilenet(self.name).eval().to(self.device)
        self.frontend = EfficientATMel().eval().to(self.device)
        self.pretrained = False
        if weights is not None:
            self.load_weights(weights)
        else:
            logger.warning("EfficientAT %s has random weights (no checkpoint given)", self.name)

    @property
    def embedding_dim(self) -> int:
        """Size of each frame embedding."""
        return embedding_dim(self.net, self.with_mel, self.frontend.n_mels)

    @property
    def hop_length(self) -> int:
        """Samples between consecutive frame embeddings (50 ms)."""
        return TIMESTAMP_HOP

    @property
    def min_samples(self) -> int:
        """Shortest accepted clip: the half-window reflect padding needs more than 2560 samples (80 ms)."""
        return TIMESTAMP_WINDOW // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frame embeddings produced for a clip of ``num_samples`` samples (21 for 1 s, 101 for 5 s)."""
        return num_samples // TIMESTAMP_HOP + 1

    def load_weights(self, path: str | Path) -> None:
        """Strictly load a checkpoint file (see :func:`load_weights_into` for the errors raised)."""
        load_weights_into(self.net, path, self.name)
        self.net.eval()
        self.pretrained = True

    def _check_audio(self, audio: Tensor) -> Tensor:
        if not isinstance(audio, Tensor):
            raise AudioError(f"audio must be a torch.Tensor, got {type(audio).__name__}")
        if audio.dim() != 2:
            raise AudioError(f"audio must have shape (batch, samples), got shape {tuple(audio.shape)}")
        if not audio.is_floating_point():
            raise AudioError(f"audio must be floating point in [-1, 1], got dtype {audio.dtype}")
        if audio.shape[1] < self.min_samples:
            raise AudioError(
                f"audio is too short for EfficientAT: {audio.shape[1]} samples, need at least "
                f"{self.min_samples} samples ({self.min_samples / self.sample_rate * 1000:.2f} ms at "
                f"{self.sample_rate} Hz)"
            )
        bad = (~torch.isfinite(audio)).any(dim=1)
        if bool(bad.any()):
            rows = bad.nonzero().flatten().tolist()
            raise AudioError(f"audio contains NaN or inf samples in batch items {rows[:10]}")
        return audio.to(device=self.device, dtype=torch.float32)

    def embed(self, audio: Tensor) -> Tensor:
        """Frame embeddings ``(batch, frames, dim)`` of mono 32 kHz audio ``(batch, samples)``.

        Runs under ``torch.inference_mode`` (the model is a frozen feature extractor); all windows of the
        batch are processed together, ``max_windows_per_pass`` at a time. Output is float32 on the model's
        device; apply :func:`reduce_time` for ``nop``/``avg``.
        """
        with torch.inference_mode():
            audio = self._check_audio(audio)
            frames = frame_audio(audio)
            batch, n_frames, window = frames.shape
            flat = frames.reshape(batch * n_frames, window)
            chunks = [
                hear_window_features(
                    self.frontend, self.net, flat[i : i + self.max_windows_per_pass], self.with_mel
                )
                for i in range(0, flat.shape[0], self.max_windows_per_pass)
            ]
            return torch.cat(chunks, dim=0).reshape(batch, n_frames, -1)
