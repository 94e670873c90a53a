"""Devices, seeds, determinism and thread counts for a training run; RNG state for exact resumption."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from synthproxy.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as torch understands it (``cuda:1``)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {device!r}: {exc}") from None


def _set_deterministic(mode: bool, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms`` without its import of torch._inductor (~2 s per process, for a
    compiler setting this package never uses); the public function when the private hook is missing."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # pragma: no cover - other torch versions
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


@contextlib.contextmanager
def seeded_runtime(seed: int, deterministic: bool, threads: int | None, device: torch.device) -> Iterator[None]:
    """Seeded, deterministic execution that restores the caller's RNG, determinism and thread settings."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_threads = torch.get_num_threads()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        try:
            if deterministic:
                _set_deterministic(True, warn_only=True)
            if threads:
                torch.set_num_threads(int(threads))
            torch.manual_seed(seed)
            yield
        finally:
            _set_deterministic(prev_det, warn_only=prev_warn)
            torch.set_num_threads(prev_threads)


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may draw from (torch, NumPy, Python; CUDA when in use)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
