"""Render one preset to an audio file to listen to it (``python -m synthproxy render``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from synthproxy.data.atomic import atomic_path
from synthproxy.data.store import open_store
from synthproxy.errors import ConfigError, StoreError
from synthproxy.pipeline.plan import SynthPlan
from synthproxy.synths.engines import check_audio

log = logging.getLogger("synthproxy")
AUDIO_SUFFIXES = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def check_audio_path(out: Path) -> str:
    """The soundfile format for ``out`` (``.wav``, ``.flac``, ``.ogg``); a folder or another suffix is an error."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out / 'preset.wav'}")
    fmt = AUDIO_SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out {out}: unknown audio file type '{out.suffix}'; use one of {sorted(AUDIO_SUFFIXES)}")
    return fmt


def write_audio(out: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio atomically; the format follows the suffix."""
    fmt = check_audio_path(out)
    with atomic_path(out) as tmp:
        sf.write(tmp, audio, sample_rate, format=fmt)


def render_to_file(cfg: dict[str, Any], synth: str, out: Path, store: Path | None = None, index: int = 0) -> Path:
    """Render preset ``index`` of ``store`` (or the spec's defaults) at the first representation's rate."""
    check_audio_path(out)
    plan = SynthPlan(cfg, synth)
    core = plan.render_embedder()
    if store is not None:
        root = open_store(store)
        n = root["presets"].shape[0]
        if not 0 <= index < n:
            raise ConfigError(f"--index {index} out of range: {store} holds {n} presets")
        preset = np.asarray(root["presets"][index])
        if not np.isfinite(preset).all():
            raise StoreError(f"{store}: preset {index} was never written (its shard has not run); render another "
                             "index or run the workflow's render_shard step first")
        plugin_vector = plan.spec.to_plugin(preset[None, :])[0]
    else:
        plugin_vector = plan.spec.defaults_plugin_vector()
    audio = core.render(plugin_vector)
    check_audio(audio, f"{synth} render")
    write_audio(out, audio, core.primary)
    log.info("wrote %s (%.2f s at %d Hz)", out, len(audio) / core.primary, core.primary)
    return Path(out)
