"""The one training loop: :func:`fit` trains any model on any loss, with validation, checkpoints and resumption.

What goes in: a model and its optimizer, a per-step learning-rate :class:`~synthproxy.training.schedule.Schedule`,
a function giving an epoch's batches (a pure function of the epoch number, so a resumed run sees exactly the
batches the uninterrupted run saw), a loss function ``loss_fn(model, batch, step) -> (loss, n_examples)``, a
validation function returning named metrics, and the selection criteria (e.g. ``best_l1``: lowest
``val_l1``). What comes out: ``out_dir`` with ``last.pt``, one ``best_<name>.pt`` per criterion,
``history.csv`` and ``settings.json``, and a :class:`FitResult`.

Guarantees:

* **resume**: ``last.pt`` holds model, optimizer, schedule, epoch, RNG states and history; a rerun with the
  same settings continues at the epoch it was in and ends with bit-identical weights on CPU. A ``last.pt``
  written with other settings is refused (``on_stale_checkpoint="error"``) or archived to
  ``out_dir/stale/<time>/`` (``"archive"``).
* **atomic saves**: every file is written to a temporary name and renamed; best checkpoints are written before
  ``last.pt``, so a crash between the two redoes the epoch and rewrites them.
* **NaN stop**: a non-finite loss stops training before the bad step is applied, with a message naming the
  epoch, step and batch (``explain_nan`` says whether the data or the model is to blame); non-finite weights
  or validation metrics stop it too, and no checkpoint of the diverged model is written.

Validation runs ``validations_per_epoch`` times per epoch (the official proxy training validates twice) every
``validate_every`` epochs (sound matching validates on real-synth renders every N epochs); the last epoch is
always validated. A schedule with an ``observe(metrics)`` method (e.g. ReduceLROnPlateau) sees every validation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthproxy.data.atomic import write_text_atomic
from synthproxy.errors import ConfigError, SynthProxyError
from synthproxy.training.checkpoint import archive_run, read_checkpoint, save_checkpoint, write_history_csv
from synthproxy.training.runtime import rng_state, set_rng_state
from synthproxy.training.schedule import Schedule

log = logging.getLogger("synthproxy.training")

LossFn = Callable[[nn.Module, Any, "StepInfo"], tuple[torch.Tensor, int]]
"""``loss_fn(model, batch, info) -> (scalar loss, examples in the batch)``; runs in train mode."""
StepHook = Callable[[int, int, int, float], None]
"""``hook(epoch, batch_index, global_step, loss)`` called after every optimizer step (tests, progress)."""


class TrainingError(SynthProxyError):
    """Training cannot go on: the loss, the weights or a validation metric became NaN/inf."""


@dataclass(frozen=True)
class StepInfo:
    """Where a step is: 0-based epoch, batch index in the epoch, global step (before this step)."""

    epoch: int
    batch: int
    step: int


@dataclass(frozen=True)
class Selection:
    """A model-selection criterion: checkpoint ``best_<name>.pt`` keeps the best ``metric`` (``mode`` min/max)."""

    name: str
    metric: str
    mode: str = "min"

    def better(self, value: float, best: float) -> bool:
        return value < best if self.mode == "min" else value > best

    @property
    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf


@dataclass
class FitSettings:
    """How :func:`fit` runs (what is learned is the caller's business)."""

    epochs: int
    out_dir: Path
    resume: bool = True
    on_stale_checkpoint: str = "error"
    save_checkpoints: bool = True
    max_epochs_per_run: int | None = None
    validate_every: int = 1
    validations_per_epoch: int = 1
    train_loss_name: str = "train_loss"
    rate_name: str = "examples_per_second"
    checkpoint_format: str = "synthproxy-checkpoint"

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.on_stale_checkpoint not in ("error", "archive"):
            raise ConfigError("training settings: on_stale_checkpoint must be 'error' or 'archive'")
        if int(self.validate_every) < 1 or int(self.validations_per_epoch) < 1:
            raise ConfigError("training settings: validate_every and validations_per_epoch must be >= 1")


@dataclass
class FitResult:
    """What :func:`fit` did: history, best values per criterion and where the checkpoints are."""

    out_dir: Path
    history: list[dict[str, Any]]
    best: dict[str, Any]
    epochs_done: int
    resumed_from_epoch: int
    checkpoints: dict[str, Path] = field(default_factory=dict)


def _default_nan(loss: torch.Tensor, batch: Any, info: StepInfo) -> str:
    return (f"non-finite training loss ({float(loss.detach())}) at epoch {info.epoch + 1}, step {info.step} "
            f"(global), batch index {info.batch} of the epoch; lower the learning rate. The step was not applied "
            "and no checkpoint of this epoch was written.")


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    train_batches: Callable[[int], Iterator[Any]],
    loss_fn: LossFn,
    validate: Callable[[nn.Module], dict[str, float]],
    settings: FitSettings,
    selections: list[Selection],
    meta: dict[str, Any],
    check_resumable: Callable[[dict[str, Any], Path], None],
    history_columns: list[str],
    on_step: StepHook | None = None,
    explain_nan: Callable[[torch.Tensor, Any, StepInfo], str] = _default_nan,
    steps_per_epoch: int | None = None,
) -> FitResult:
    """Train ``model`` for ``settings.epochs`` epochs (resuming from ``last.pt``); see the module docstring.

    ``meta`` is stored in every checkpoint (with ``hyperparameters``: what ``settings.json`` records);
    ``check_resumable(last_checkpoint, path)`` raises :class:`ConfigError` when that run had other settings.
    ``steps_per_epoch`` places mid-epoch validations (needed when ``validations_per_epoch > 1``).
    """
    s = settings
    s.out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"last": s.out_dir / "last.pt", **{sel.name: s.out_dir / f"{sel.name}.pt" for sel in selections}}
    history: list[dict[str, Any]] = []
    best = _initial_best(selections)
    start_epoch = 0
    device = next(model.parameters()).device
    ckpt = read_checkpoint(paths["last"], map_location=device) if s.resume and paths["last"].is_file() else None
    if ckpt is not None:
        try:
            check_resumable(ckpt, paths["last"])
        except ConfigError as exc:
            if s.on_stale_checkpoint != "archive":
                raise
            archive_run(s.out_dir, [*paths.values(), s.out_dir / "history.csv", s.out_dir / "settings.json"],
                        str(exc))
            ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        history, best, start_epoch = list(ckpt["history"]), dict(ckpt["best"]), int(ckpt["epoch"])
        log.info("resuming from %s after epoch %d/%d", paths["last"], start_epoch, s.epochs)
        # the history as of the checkpoint: drops rows of an interrupted epoch, restores a deleted file (Snakemake
        # removes a job's outputs before rerunning it, while the checkpoints it does not declare stay)
        write_history_csv(s.out_dir / "history.csv", history, history_columns)
    elif s.save_checkpoints:
        for p in paths.values():  # a fresh run must not leave an older run's best checkpoints behind
            p.unlink(missing_ok=True)
    write_text_atomic(s.out_dir / "settings.json", json.dumps(meta.get("hyperparameters", {}), indent=2,
                                                              sort_keys=True))

    stop_epoch = s.epochs if s.max_epochs_per_run is None else min(s.epochs, start_epoch + s.max_epochs_per_run)
    for epoch in range(start_epoch, stop_epoch):
        validating = (epoch + 1) % s.validate_every == 0 or epoch + 1 == s.epochs
        points = _validation_points(s.validations_per_epoch if validating else 0, steps_per_epoch)
        for row in _train_one_epoch(model, optimizer, schedule, train_batches(epoch), loss_fn, epoch, points,
                                    steps_per_epoch, s, on_step, explain_nan):
            improved: list[str] = []
            t_val = time.perf_counter()
            if row.pop("validate"):
                metrics = validate(model)
                model.train()
                bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
                if bad:
                    raise TrainingError(
                        f"non-finite validation metric(s) {bad} at epoch {row['epoch']}: the model's outputs "
                        "diverged; lower the learning rate. No checkpoint of this epoch was written."
                    )
                row |= metrics
                observe = getattr(schedule, "observe", None)
                if observe is not None:
                    observe(metrics)
                for sel in selections:
                    if sel.better(metrics[sel.metric], best[sel.metric]):
                        best[sel.metric], best[f"{sel.metric}_epoch"] = metrics[sel.metric], row["epoch"]
                        improved.append(sel.name)
            row["seconds"] = row["train_seconds"] + time.perf_counter() - t_val
            history.append(row)
            epoch_done = row["epoch"] == epoch + 1
            if s.save_checkpoints:
                state = meta | {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": schedule.state_dict(), "epoch": epoch + 1 if epoch_done else epoch,
                    "rng": rng_state(), "history": history, "best": best,
                }
                for kind in improved:
                    save_checkpoint(state | {"kind": kind}, paths[kind])
                if epoch_done:  # resumption happens at epoch boundaries
                    save_checkpoint(state | {"kind": "last"}, paths["last"])
            write_history_csv(s.out_dir / "history.csv", history, history_columns)
            log.info("epoch %s/%d: %s", row["epoch"], s.epochs, ", ".join(
                f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch",) and isinstance(v, float)))
    return FitResult(out_dir=s.out_dir, history=history, best=best,
                     epochs_done=sum(1 for r in history if float(r["epoch"]).is_integer()),
                     resumed_from_epoch=start_epoch,
                     checkpoints={k: p for k, p in paths.items() if p.is_file()})


def _initial_best(selections: list[Selection]) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for sel in selections:
        best[sel.metric], best[f"{sel.metric}_epoch"] = sel.worst, 0
    return best


def _validation_points(n: int, steps_per_epoch: int | None) -> list[int]:
    """Batch counts after which to validate: ``n`` evenly spaced points, the last at the end of the epoch."""
    if n <= 0:
        return []
    if n == 1 or not steps_per_epoch:
        return [-1]  # -1: the end of the epoch
    return [round(steps_per_epoch * (k + 1) / n) for k in range(n - 1)] + [-1]


def _train_one_epoch(model: nn.Module, opt: torch.optim.Optimizer, sched: Schedule, batches: Iterator[Any],
                     loss_fn: LossFn, epoch: int, points: list[int], steps_per_epoch: int | None, s: FitSettings,
                     on_step: StepHook | None, explain_nan: Callable[[torch.Tensor, Any, StepInfo], str]
                     ) -> Iterator[dict[str, Any]]:
    """One pass over the training batches; yields a history row at every validation point and at the end."""
    model.train()
    total, n_rows, wait, lr = 0.0, 0, 0.0, sched.lr_at(sched.step)
    t0 = time.perf_counter()
    b = 0
    mid = [p for p in points if p > 0]
    try:
        while True:
            tw = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            wait += time.perf_counter() - tw
            lr = sched.lr_at(sched.step)
            for group in opt.param_groups:
                group["lr"] = lr
            info = StepInfo(epoch, b, sched.step)
            loss, n = loss_fn(model, batch, info)
            if not torch.isfinite(loss):
                raise TrainingError(explain_nan(loss, batch, info))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            total += value * n
            n_rows += n
            sched.step += 1
            if on_step is not None:
                on_step(epoch, b, sched.step, value)
            b += 1
            if mid and b == mid[0]:
                mid.pop(0)
                yield _row(round(epoch + b / max(1, steps_per_epoch or b), 4), total, n_rows, lr, t0, wait, b, s,
                           validate=True)
                total, n_rows, wait, t0 = 0.0, 0, 0.0, time.perf_counter()
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise TrainingError(
            f"weights became non-finite during epoch {epoch + 1} (last step {sched.step}, parameters "
            f"{bad[:5]}); lower the learning rate. No checkpoint of this epoch was written."
        )
    yield _row(epoch + 1, total, n_rows, lr, t0, wait, b, s, validate=bool(points))


def _row(epoch: float, total: float, n_rows: int, lr: float, t0: float, wait: float, steps: int, s: FitSettings,
         validate: bool) -> dict[str, Any]:
    seconds = time.perf_counter() - t0
    return {"epoch": epoch, s.train_loss_name: total / max(1, n_rows), "lr": lr, "train_seconds": seconds,
            "data_wait_seconds": wait, "data_wait_share": wait / seconds if seconds > 0 else 0.0,
            s.rate_name: n_rows / seconds if seconds > 0 else 0.0, "steps": steps, "validate": validate}
