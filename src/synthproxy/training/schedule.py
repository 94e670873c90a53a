"""Per-step learning-rate schedules. The rate is a pure function of the step counter (and, for plateau
schedules, of the validation history), so a resumed run continues exactly where it stopped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol


class Schedule(Protocol):
    """What :func:`~synthproxy.training.loop.fit` asks of a schedule."""

    step: int

    def lr_at(self, step: int) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class CosineRestartSchedule:
    """Per-step learning rate: constant phase, cosine decay to ``min_lr``, warm restart, cosine decay.

    With ``restart_fraction = 1/3`` and 30 epochs the second decay starts at epoch 10 (Combes et al. Sec.
    6.1.3). ``constant_fraction`` (or ``constant_steps``) holds the rate at ``base_lr`` for that share (number) of
    the steps first: the official code's constant phase. The state is the step counter.
    """

    base_lr: float
    min_lr: float
    total_steps: int
    restart_fraction: float | None = 1.0 / 3.0
    constant_fraction: float = 0.0
    step: int = 0
    constant_steps: int | None = None
    """Steps at ``base_lr`` first; replaces ``constant_fraction`` when set."""

    def __post_init__(self) -> None:
        t = max(1, int(self.total_steps))
        rf = self.restart_fraction
        self.restart_step = round(t * rf) if rf not in (None, 0, 1) else t
        constant = round(t * self.constant_fraction) if self.constant_steps is None else int(self.constant_steps)
        self.constant_steps = min(constant, self.restart_step)

    def _cosine(self, pos: int, length: int) -> float:
        frac = pos / max(1, length)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * min(1.0, frac)))

    def lr_at(self, step: int) -> float:
        if step < self.constant_steps:
            return self.base_lr
        if step < self.restart_step:
            return self._cosine(step - self.constant_steps, self.restart_step - self.constant_steps)
        return self._cosine(step - self.restart_step, max(1, int(self.total_steps)) - self.restart_step)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "base_lr": self.base_lr, "min_lr": self.min_lr, "total_steps": self.total_steps,
                "restart_fraction": self.restart_fraction, "constant_steps": self.constant_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
