"""Atomic file writes: a reader sees a file whole or not at all, and a crash leaves no half-written output.

Every output of the workflow goes through :func:`atomic_path`: the content is written to a temporary
sibling (same directory, hence same filesystem), flushed, and renamed over the target with
:func:`os.replace`, which is atomic on POSIX. A failure removes the temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: Path | str, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    ``fsync`` forces the data to disk before the rename (checkpoints: a crash right after must not leave an
    empty file behind the new name).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path | str, data: Any) -> None:
    """JSON (indented, sorted keys) written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def save_torch_atomic(obj: Any, path: Path | str) -> None:
    """``torch.save`` to a temporary file, fsync, rename."""
    import torch

    with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path`` (a folder) whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
