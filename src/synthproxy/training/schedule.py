"""Per-step learning-rate schedules. The rate is a pure function of the step counter (and, for plateau
schedules, of the validation history), so a resumed run continues exactly where it stopped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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


@dataclass
class WarmupPlateauSchedule:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then ReduceLROnPlateau on a validation metric.

    Every validation (:meth:`observe`) compares ``metrics[monitor]`` with the best so far (lower is better);
    after ``patience`` validations without an improvement of more than ``threshold`` (relative) the rate is
    multiplied by ``factor`` (not below ``min_lr``) and the count restarts, as ``torch``'s ReduceLROnPlateau
    in ``rel`` mode. The sound-matching estimators train with it (official: factor 0.5, patience 5, monitor
    the validation audio mean ``a_mean``). State: step, current rate, best value, bad validations.
    """

    base_lr: float
    warmup_steps: int = 0
    monitor: str = "val_a_mean"
    factor: float = 0.5
    patience: int = 5
    threshold: float = 1e-4
    min_lr: float = 0.0
    step: int = 0
    lr: float = field(default=-1.0)
    best: float = math.inf
    bad: int = 0

    def __post_init__(self) -> None:
        if self.lr < 0:
            self.lr = self.base_lr

    def lr_at(self, step: int) -> float:
        if self.warmup_steps and step < self.warmup_steps:
            return self.lr * min(1.0, (step + 1) / self.warmup_steps)
        return self.lr

    def observe(self, metrics: dict[str, float]) -> None:
        if self.monitor not in metrics:
            return
        value = float(metrics[self.monitor])
        if value < self.best * (1.0 - self.threshold):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > self.patience:
            self.lr, self.bad = max(self.min_lr, self.lr * self.factor), 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "lr": self.lr, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.lr, self.best, self.bad = int(state["step"]), float(state["lr"]), float(state["best"]), \
            int(state["bad"])


@dataclass
class ExponentialDecaySchedule:
    """``base_lr · decay^(step / steps_per_epoch)``: paper 2's Adam schedule (decay 0.99 per epoch)."""

    base_lr: float
    decay: float
    steps_per_epoch: int
    step: int = 0

    def lr_at(self, step: int) -> float:
        return self.base_lr * self.decay ** (step / max(1, self.steps_per_epoch))

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "base_lr": self.base_lr, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
