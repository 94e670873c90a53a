"""Settings dataclasses from config mappings, and the resume check every training shares.

:func:`settings_from_dict` builds a settings dataclass from a config section, refusing unknown keys with the
list of valid ones (``where`` names the section, e.g. ``matching.train``). :func:`same_settings_check` makes the
``check_resumable`` hook of :func:`synthproxy.training.loop.fit`: a ``last.pt`` written with other values of the
given metadata keys is not resumed (the loop then archives it or stops, as configured).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from synthproxy.errors import ConfigError

T = TypeVar("T")


def settings_from_dict(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """``cls(**data)`` for a dataclass ``cls``; unknown or missing keys raise :class:`ConfigError` naming ``where``."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown {where} setting(s) {unknown}; valid: {sorted(names)}")
    try:
        return cls(**data)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{where} settings: {exc}") from None


def same_settings_check(meta: Mapping[str, Any], keys: Sequence[str]) -> Callable[[dict[str, Any], Path], None]:
    """The ``check_resumable(checkpoint, path)`` hook refusing a checkpoint whose ``keys`` differ from ``meta``'s."""

    def check(ckpt: dict[str, Any], path: Path) -> None:
        diff = [k for k in keys if ckpt.get(k) != meta.get(k)]
        if diff:
            raise ConfigError(f"cannot resume {path}: written with other {diff}")

    return check
