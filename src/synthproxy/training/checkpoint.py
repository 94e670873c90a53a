"""Checkpoint and history files of a training run: atomic writes, clear errors on load, stale-run archives.

A run directory holds ``last.pt`` (everything needed to resume: model, optimizer, schedule, epoch, RNG
states, history), one ``best_<name>.pt`` per selection criterion, ``history.csv`` and ``settings.json``.
Checkpoints are pickles (they carry NumPy RNG states for exact resumption): load only trusted files.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from synthproxy.data.atomic import save_torch_atomic, write_text_atomic
from synthproxy.errors import ConfigError

log = logging.getLogger("synthproxy.training")


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` via a temporary file, fsync and an atomic rename: a crash never leaves half a file."""
    save_torch_atomic(state, path)


def read_checkpoint(path: Path | str, map_location: str | torch.device = "cpu", fmt: str | None = None
                    ) -> dict[str, Any]:
    """The checkpoint dict at ``path``; a missing, unreadable or foreign file raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(ckpt, dict) or (fmt is not None and ckpt.get("format") != fmt):
        raise ConfigError(f"{path} is not a synthproxy {fmt or ''} checkpoint".replace("  ", " "))
    return ckpt


def write_history_csv(path: Path, history: list[dict[str, Any]], columns: list[str]) -> None:
    """Write the per-validation history with ``columns`` atomically (other keys are left out)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    write_text_atomic(Path(path), buf.getvalue())


def archive_run(out_dir: Path, files: Iterable[Path], reason: str) -> Path:
    """Move a run's files to ``out_dir/stale/<UTC time>/`` (a run with other settings is kept, not mixed in)."""
    stale = out_dir / "stale" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stale.mkdir(parents=True, exist_ok=True)
    for p in files:
        if p.is_file():
            p.rename(stale / p.name)
    log.warning("%s; moved that run's files to %s and starting afresh", reason, stale)
    return stale
