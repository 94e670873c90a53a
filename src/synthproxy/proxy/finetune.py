"""Finetuning a synthetic-trained proxy on hand-crafted presets (paper 1 Sec. 8; official ``synth_proxy_ft``).

Before the proxy serves sound matching, it is finetuned on the hand-crafted *train* split: L1 to the audio
model's embedding, AdamW, ReduceLROnPlateau on the validation L1, through the one training loop. The
hand-crafted *test* split is evaluated before and after (MRR in both directions and L1, as Table 4), so the
tables say what finetuning bought.

Which proxy: ``matching.proxy_arch`` names an architecture, or ``best``: the architecture with the lowest
validation L1 of the synth's proxy trainings (so a small run uses a proxy that learned something).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthproxy.data.store import open_store, read_valid
from synthproxy.errors import ConfigError, StoreError
from synthproxy.metrics.retrieval import evaluate_runs, mean_l1, mrr
from synthproxy.nn.stable import stable_l1
from synthproxy.proxy.train import CHECKPOINT_FORMAT, check_store_compatible, load_checkpoint, predict
from synthproxy.training.checkpoint import read_checkpoint
from synthproxy.training.loop import FitSettings, Selection, StepInfo, fit
from synthproxy.training.runtime import resolve_device, seeded_runtime
from synthproxy.training.schedule import WarmupPlateauSchedule
from synthproxy.training.settings import settings_from_dict

log = logging.getLogger("synthproxy.proxy")


def choose_proxy(summaries: list[Path], arch: str) -> Path:
    """The checkpoint to finetune: ``arch``'s best-L1 checkpoint, or for ``best`` the lowest validation L1."""
    runs = {Path(p).parent.name: json.loads(Path(p).read_text()) | {"dir": Path(p).parent} for p in summaries}
    if not runs:
        raise ConfigError("no trained proxy to choose from (the training stage produced no summary.json)")
    if arch == "best":
        arch = min(runs, key=lambda a: runs[a]["best_l1"])
    elif arch not in runs:
        raise ConfigError(f"matching.proxy_arch: '{arch}' was not trained; trained: {sorted(runs)} (or 'best')")
    return runs[arch]["dir"] / "best_l1.pt"


@dataclass
class FinetuneSettings:
    """Finetuning settings (``matching.finetune``); official: 250 epochs, batch 64, AdamW."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.01
    factor: float = 0.5
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    eval_runs: int = 20
    eval_k: int = 256
    val_k: int = 64

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneSettings:
        return settings_from_dict(cls, data, "matching.finetune")


def _scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: FinetuneSettings, device: torch.device
            ) -> dict[str, Any]:
    batches = ((x[i:i + 1024], y[i:i + 1024]) for i in range(0, len(x), 1024))
    pred, target = predict(model, batches, device)
    return evaluate_runs(pred, target, n_runs=s.eval_runs, k=min(s.eval_k, len(x)), seed=s.seed)


def finetune_proxy(checkpoint: Path, handcrafted_store: Path, out_dir: Path, settings: FinetuneSettings
                   ) -> dict[str, Any]:
    """Finetune ``checkpoint`` on the store's train split; returns the before/after test scores (also saved)."""
    s = settings
    device = resolve_device(s.device)
    ckpt = load_checkpoint(checkpoint, map_location=device)
    check_store_compatible(ckpt.meta, dict(open_store(handcrafted_store).attrs), handcrafted_store)
    data = {split: tuple(torch.from_numpy(a) for a in read_valid(handcrafted_store, ckpt.embedding, (split,)))
            for split in ("train", "val", "test")}
    if any(len(x) < 2 for x, _ in data.values()):
        raise StoreError(f"{handcrafted_store}: a hand-crafted split has fewer than 2 valid presets")
    before = _scores(ckpt.model, *data["test"], s, device)
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    raw = read_checkpoint(checkpoint, "cpu", CHECKPOINT_FORMAT)
    meta = {k: v for k, v in raw.items() if k not in ("model", "optimizer", "scheduler", "rng", "history", "best",
                                                       "epoch", "kind")}
    meta |= {"finetuned_from": str(checkpoint), "finetune": vars(s) | {"device": str(device)},
             "hyperparameters": raw["hyperparameters"] | {"finetune": vars(s)}}
    steps = len(x_train) // s.batch_size if len(x_train) >= s.batch_size else 1

    def batches(epoch: int):
        gen = torch.Generator().manual_seed(s.seed * 1000 + epoch)
        order = torch.randperm(len(x_train), generator=gen)
        bs = min(s.batch_size, len(x_train))
        for b in range(steps):
            idx = order[b * bs:(b + 1) * bs]
            yield x_train[idx], y_train[idx]

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], _: StepInfo) -> tuple[torch.Tensor, int]:
        x, y = (t.to(device) for t in batch)
        return stable_l1(model(x), y), len(x)

    def validate(model: nn.Module) -> dict[str, float]:
        pred, target = predict(model, ((x_val[i:i + 1024], y_val[i:i + 1024]) for i in range(0, len(x_val), 1024)),
                               device)
        k = min(s.val_k, len(x_val))
        return {"val_l1": mean_l1(pred, target), "val_mrr": mrr(pred, target, mode="groups", k=k,
                                                                generator=torch.Generator().manual_seed(s.seed))}

    def check_resumable(last: dict[str, Any], path: Path) -> None:
        if last.get("finetune") != meta["finetune"] or last.get("finetuned_from") != meta["finetuned_from"]:
            raise ConfigError(f"cannot resume {path}: it finetuned with other settings or another proxy")

    model = ckpt.model
    for p in model.parameters():
        p.requires_grad_(True)
    with seeded_runtime(s.seed, True, s.threads, device):
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        sched = WarmupPlateauSchedule(s.lr, 0, "val_l1", s.factor, s.patience)
        result = fit(model, opt, sched, batches, loss_fn, validate,
                     FitSettings(epochs=s.epochs, out_dir=out_dir, on_stale_checkpoint="archive",
                                 train_loss_name="train_l1", rate_name="presets_per_second",
                                 checkpoint_format=CHECKPOINT_FORMAT),
                     [Selection("best_l1", "val_l1", "min")], meta, check_resumable,
                     ["epoch", "train_l1", "val_l1", "val_mrr", "lr", "seconds"], steps_per_epoch=steps)
    tuned = load_checkpoint(out_dir / "best_l1.pt", map_location=device)
    after = _scores(tuned.model, *data["test"], s, device)
    summary = {"checkpoint": str(out_dir / "best_l1.pt"), "finetuned_from": str(checkpoint),
               "arch": ckpt.meta["arch"], "synth": ckpt.meta.get("synth"), "embedding": ckpt.embedding,
               "n_train": len(x_train), "n_val": len(x_val), "n_test": len(data["test"][0]),
               "epochs_done": result.epochs_done, "best_val_l1": result.best["val_l1"], "before": before,
               "after": after}
    return summary
