"""Training a preset encoder to predict a synthesizer's audio embeddings (Combes et al., Sec. 3.2 and 6.1.3).

The encoder ``f`` maps a preset to the embedding space of a fixed audio model; it is trained with the
L1 loss (mean absolute error) against the embeddings stored next to the presets, using Adam and a cosine
learning-rate decay to ``min_lr`` (2e-6) with one warm restart after a third of the steps (the paper
trains 30 epochs with a restart at epoch 10; the same fractions apply to any epoch count). After every
epoch the validation MRR (non-overlapping groups of ``val_k`` = 512 candidates, Appendix 11.2) and the
validation L1 are computed and three checkpoints are kept in ``out_dir``:

* ``best_mrr.pt`` and ``best_l1.pt``: the paper's two model-selection criteria;
* ``last.pt``: everything needed to continue (model, optimizer, schedule position, epoch, RNG states,
  history), so an interrupted run restarted with the same settings resumes at the epoch it was in and
  ends with bit-identical weights on CPU (data order is a function of ``(seed, epoch)``, see
  :mod:`synthproxy.data.batches`).

Checkpoints are written via a temporary file and a rename, so a crash never leaves half a checkpoint,
and they record what the encoder's inputs and outputs mean (spec hash and name, parameter names,
embedding key and representation settings) so :func:`load_checkpoint` can refuse a mismatched store.
A non-finite loss stops training with a :class:`TrainingError` naming the epoch, step and batch, before
the bad step is applied and without writing any checkpoint of the diverged model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthproxy import __version__
from synthproxy.data.batches import StoreBatches
from synthproxy.data.store import open_store
from synthproxy.errors import ConfigError, SpecError, StoreError
from synthproxy.metrics.retrieval import mean_l1, mrr
from synthproxy.nn.factory import build_encoder, count_parameters, default_batch_size
from synthproxy.nn.stable import stable_l1
from synthproxy.synths.layout import PresetLayout
from synthproxy.training.checkpoint import read_checkpoint
from synthproxy.training.loop import FitSettings, Selection, StepHook, StepInfo, fit
from synthproxy.training.runtime import resolve_device, seeded_runtime
from synthproxy.training.schedule import CosineRestartSchedule
from synthproxy.training.settings import settings_from_dict

log = logging.getLogger("synthproxy.training")

CHECKPOINT_FORMAT = "synthproxy-encoder-checkpoint"
CHECKPOINT_VERSION = 1
HISTORY_COLUMNS = [
    "epoch", "train_l1", "val_l1", "val_mrr", "lr", "seconds", "data_wait_seconds",
    "train_seconds", "data_wait_share", "presets_per_second", "steps",
]


# ---- settings ---------------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    """Everything that defines a training run. Keys of :meth:`from_dict` are the field names.

    Fields that change what is learned must be equal for ``last.pt`` to be resumed (see
    :data:`RUNTIME_KEYS` for those that may differ between the interrupted and the resumed run).
    """

    train_store: Path
    val_store: Path
    embedding: str
    arch: str
    out_dir: Path
    encoder: dict[str, Any] = field(default_factory=dict)
    """Overrides of the architecture's Table 2 hyperparameters (``build_encoder(**encoder)``)."""
    epochs: int = 30
    batch_size: int | None = None
    """``None``: the paper's batch size for ``arch`` (256 for TFM, 512 otherwise)."""
    lr: float = 1e-3
    min_lr: float = 2e-6
    restart_fraction: float | None = 1.0 / 3.0
    """Fraction of the steps after which the cosine decay restarts at ``lr``; None/0/1: no restart."""
    constant_fraction: float = 0.0
    """Fraction of the steps at constant ``lr`` before the first decay (the HPO schedule uses 0.75)."""
    constant_steps: int | None = None
    """Steps at constant ``lr`` before the first decay; replaces ``constant_fraction`` when set (the official
    final trainings: 7,500 steps)."""
    validations_per_epoch: int = 1
    """Validations (and best-checkpoint decisions) per epoch, evenly spaced (the official trainings: 2)."""
    optimizer: str = "adam"
    """``adam`` (L2 penalty ``weight_decay``) or ``adamw`` (decoupled decay; the reference code, wd=0)."""
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    val_k: int = 512
    """Candidates per validation group (Q = N_val // val_k groups; 512 for the paper's 131K set)."""
    val_seed: int | None = None
    """Seed of the validation grouping (fixed across epochs so epochs are comparable); None: ``seed``."""
    drop_last: bool = True
    buffer_rows: int = 65536
    in_memory_bytes: int = 256 * 2**20
    device: str = "auto"
    prefetch: int = 4
    threads: int | None = None
    deterministic: bool = True
    # Start the projection head's bias at the mean training target, so the first steps fit the embedding's
    # structure instead of its offset (log-spectral targets sit far from zero).
    init_head_bias: bool = True
    resume: bool = True
    on_stale_checkpoint: str = "error"
    """What to do with a ``last.pt`` written with other settings: ``error`` (refuse, the default), or
    ``archive`` (move that run's checkpoints and history to ``out_dir/stale/<UTC time>/``, start afresh).
    The workflow archives: Snakemake reruns a training exactly when its settings changed."""
    save_checkpoints: bool = True
    max_epochs_per_run: int | None = None
    """Stop after this many epochs in this invocation (time-limited jobs); a rerun resumes."""
    optimizer_from: str | None = None
    """Where ``lr``, ``betas`` and ``eps`` come from (an HPO study's ``best_params.json``), for the record."""

    def __post_init__(self) -> None:
        self.train_store, self.val_store = Path(self.train_store), Path(self.val_store)
        self.out_dir = Path(self.out_dir)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        self.encoder = dict(self.encoder or {})
        if self.batch_size is None:
            self.batch_size = default_batch_size(self.arch)  # also rejects an unknown arch early
        else:
            default_batch_size(self.arch)
        checks = [
            (int(self.epochs) >= 1, "epochs must be >= 1"),
            (int(self.batch_size) >= 1, "batch_size must be >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), "lr must be a positive number"),
            (0 <= self.min_lr <= self.lr, "min_lr must be in [0, lr]"),
            (self.restart_fraction is None or 0 <= self.restart_fraction <= 1, "restart_fraction must be in [0, 1]"),
            (0 <= self.constant_fraction < 1, "constant_fraction must be in [0, 1)"),
            (self.constant_steps is None or int(self.constant_steps) >= 0, "constant_steps must be >= 0"),
            (int(self.validations_per_epoch) >= 1, "validations_per_epoch must be >= 1"),
            (self.optimizer in ("adam", "adamw"), "optimizer must be 'adam' or 'adamw'"),
            (self.on_stale_checkpoint in ("error", "archive"), "on_stale_checkpoint must be 'error' or 'archive'"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (all(0 <= b < 1 for b in self.betas), "betas must be in [0, 1)"),
            (self.eps > 0, "eps must be > 0"),
            (int(self.val_k) >= 1, "val_k must be >= 1"),
            (self.max_epochs_per_run is None or self.max_epochs_per_run >= 1, "max_epochs_per_run must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"training settings: {msg}")
        rf = self.restart_fraction
        if rf not in (None, 0, 1) and self.constant_fraction >= rf:
            raise ConfigError("training settings: constant_fraction must be smaller than restart_fraction")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        """Build settings from a mapping, rejecting unknown keys with the list of valid ones."""
        return settings_from_dict(cls, data, "training")

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (paths as strings, tuples as lists)."""
        d = dataclasses.asdict(self)
        for k in ("train_store", "val_store", "out_dir"):
            d[k] = str(d[k])
        d["betas"] = list(self.betas)
        return d


RUNTIME_KEYS = frozenset({
    "train_store", "val_store", "out_dir", "device", "prefetch", "threads", "resume", "max_epochs_per_run",
    "save_checkpoints", "on_stale_checkpoint", "optimizer_from",
})
"""Settings that do not change what is learned: they may differ when ``last.pt`` is resumed."""


# ---- checkpoints -------------------------------------------------------------------------------------
@dataclass
class EncoderCheckpoint:
    """A loaded checkpoint: the encoder (eval mode) and what it was trained on."""

    model: nn.Module
    meta: dict[str, Any]
    path: Path

    @property
    def embedding(self) -> str:
        return self.meta["embedding"]

    @property
    def spec_hash(self) -> str:
        return self.meta["spec_hash"]


_META_KEYS = (
    "arch", "encoder", "out_dim", "layout", "synth", "spec_name", "spec_hash", "param_names", "embedding",
    "representation", "hyperparameters", "train_store_fingerprint", "val_store_fingerprint", "n_params",
    "synthproxy_version", "torch_version",
)


def check_store_compatible(meta: dict[str, Any], store_attrs: dict[str, Any], store: Path | str,
                           what: str = "checkpoint") -> None:
    """Raise SpecError/ConfigError when a store's presets or embeddings mean something else than ``meta``'s.

    Both values are named in the message, so the cause (a changed spec, another representation) is clear.
    """
    have_hash = store_attrs.get("spec_hash")
    if have_hash != meta["spec_hash"]:
        raise SpecError(
            f"{what} was trained on presets of spec {meta.get('spec_name')!r} with hash {meta['spec_hash']}, "
            f"but data store {store} holds spec {store_attrs.get('spec_name')!r} with hash {have_hash}"
        )
    if list(store_attrs.get("param_names", [])) != list(meta["param_names"]):
        raise SpecError(f"{what} and data store {store} list different synthesizer parameters")
    reps = store_attrs.get("representations", {}) or {}
    key = meta["embedding"]
    if key not in reps:
        raise StoreError(
            f"data store {store} has no embeddings '{key}' (the {what}'s target); it holds {sorted(reps)}"
        )
    if reps[key] != meta["representation"]:
        raise ConfigError(
            f"representation '{key}' of data store {store} was computed with settings {reps[key]}, but the "
            f"{what} was trained on settings {meta['representation']}"
        )


def load_checkpoint(
    path: Path | str,
    expect_spec_hash: str | None = None,
    expect_embedding: str | None = None,
    expect_representation: dict[str, Any] | None = None,
    map_location: str | torch.device = "cpu",
) -> EncoderCheckpoint:
    """Load a checkpoint written by :func:`train_encoder` and rebuild its encoder.

    Checkpoints are pickles (they hold NumPy RNG states for exact resumption): load only trusted files.

    Args:
        expect_spec_hash: fail with a SpecError naming both hashes when the checkpoint's differs.
        expect_embedding: fail with a ConfigError naming both keys when the checkpoint's target differs.
        expect_representation: fail with a ConfigError showing both when representation settings differ.
    """
    path = Path(path)
    ckpt = read_checkpoint(path, map_location, CHECKPOINT_FORMAT)
    meta = {k: ckpt[k] for k in _META_KEYS if k in ckpt} | {"kind": ckpt.get("kind"), "epoch": ckpt.get("epoch")}
    if expect_spec_hash is not None and expect_spec_hash != meta["spec_hash"]:
        raise SpecError(
            f"checkpoint {path} was trained on spec {meta.get('spec_name')!r} with hash {meta['spec_hash']}, "
            f"expected spec hash {expect_spec_hash}"
        )
    if expect_embedding is not None and expect_embedding != meta["embedding"]:
        raise ConfigError(
            f"checkpoint {path} predicts embedding '{meta['embedding']}', expected '{expect_embedding}'"
        )
    if expect_representation is not None and expect_representation != meta["representation"]:
        raise ConfigError(
            f"checkpoint {path} was trained on representation settings {meta['representation']}, "
            f"expected {expect_representation}"
        )
    layout = PresetLayout(**meta["layout"])
    with torch.random.fork_rng(devices=[]):  # building initialises weights; keep the caller's RNG intact
        model = build_encoder(meta["arch"], layout, int(meta["out_dim"]), **meta["encoder"])
    model.load_state_dict(ckpt["model"])
    model.to(map_location).eval()
    return EncoderCheckpoint(model=model, meta=meta, path=path)


# ---- helpers -----------------------------------------------------------------------------------------
def _store_meta(train: StoreBatches, val: StoreBatches, embedding: str) -> dict[str, Any]:
    """Spec and representation metadata of the training store, checked against the validation store."""
    a = train.attrs
    for key in ("spec_hash", "param_names", "param_kinds", "cardinalities"):
        if key not in a:
            raise StoreError(f"data store {train.path} lacks the '{key}' attribute; re-create it with init-store")
    meta = {
        "synth": a.get("synth"), "spec_name": a.get("spec_name"), "spec_hash": a["spec_hash"],
        "param_names": list(a["param_names"]), "embedding": embedding,
        "representation": (a.get("representations") or {}).get(embedding, {}),
        "layout": {
            "kinds": list(a["param_kinds"]),
            "cardinalities": [int(c) if k == "cat" else 0 for k, c in zip(a["param_kinds"], a["cardinalities"],
                                                                           strict=True)],
        },
    }
    check_store_compatible(meta, val.attrs, val.path, what="training store")
    if val.dim != train.dim:
        raise StoreError(f"embedding '{embedding}' has {train.dim} dims in {train.path} but {val.dim} in {val.path}")
    return meta


def _init_head_bias(model: nn.Module, store: Path, embedding: str, rows: int = 65536) -> None:
    """Set the final projection's bias to the mean of the first ``rows`` training targets (deterministic)."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        return
    targets = open_store(store)["embeddings"][embedding]
    mean = np.asarray(targets[: min(rows, targets.shape[0])], dtype=np.float64).mean(axis=0)
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(mean, dtype=head.bias.dtype))


def predict(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder outputs and targets for every batch (eval mode, no gradients), on the CPU."""
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for x, y in batches:
            preds.append(model(x.to(device)).float().cpu())
            targets.append(y)
    return torch.cat(preds), torch.cat(targets)


def validate(model: nn.Module, val: StoreBatches, device: torch.device, k: int, seed: int) -> tuple[float, float]:
    """Validation ``(L1, MRR)``: mean absolute error over all rows and grouped MRR with K = ``k``."""
    pred, target = predict(model, val.epoch(0), device)
    l1 = mean_l1(pred, target)
    score = mrr(pred, target, mode="groups", k=k, generator=torch.Generator().manual_seed(int(seed)))
    return l1, score


@dataclass
class TrainResult:
    """What :func:`train_encoder` did: history, best scores and where the checkpoints are."""

    out_dir: Path
    history: list[dict[str, Any]]
    best_mrr: float
    best_mrr_epoch: int
    best_l1: float
    best_l1_epoch: int
    epochs_done: int
    resumed_from_epoch: int
    n_params: int
    model: nn.Module | None = None
    checkpoints: dict[str, Path] = field(default_factory=dict)


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in RUNTIME_KEYS}


def _check_resumable(meta: dict[str, Any]):
    """Refuse to resume a run whose settings or data differ (it would silently mix two experiments)."""

    def check(ckpt: dict[str, Any], path: Path) -> None:
        if ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("kind") != "last":
            raise ConfigError(f"{path} is not a synthproxy 'last' checkpoint; remove it or set resume false")
        old, new = _comparable(ckpt["hyperparameters"]), _comparable(meta["hyperparameters"])
        diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
        for key in ("spec_hash", "embedding", "representation", "train_store_fingerprint", "val_store_fingerprint"):
            if ckpt.get(key) != meta.get(key):
                diff[key] = (ckpt.get(key), meta.get(key))
        if diff:
            details = "; ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"cannot resume {path}: it was written with other settings ({details}); use another out_dir or "
                "set resume false to start over"
            )

    return check


def _explain_nan(batch_size: int):
    def explain(loss: torch.Tensor, batch: tuple[torch.Tensor, torch.Tensor], info: StepInfo) -> str:
        """Where a non-finite loss happened and whether the data or the model is to blame."""
        x, y = batch
        if not torch.isfinite(y).all():
            cause = (f"the batch's target embeddings contain {int((~torch.isfinite(y)).any(dim=1).sum())} "
                     "non-finite row(s): the data store is corrupt (rerun its render_shard/finalize-split steps)")
        elif not torch.isfinite(x).all():
            cause = "the batch's presets contain non-finite values: the data store is corrupt"
        else:
            cause = "inputs are finite, so the model diverged: lower the learning rate"
        return (f"non-finite training loss ({float(loss.detach())}) at epoch {info.epoch + 1}, step {info.step} "
                f"(global), batch index {info.batch} of the epoch (batch size {batch_size}); {cause}. The step was "
                "not applied and no checkpoint of this epoch was written.")

    return explain


# ---- training ----------------------------------------------------------------------------------------
def train_encoder(settings: TrainSettings | dict[str, Any], on_step: StepHook | None = None) -> TrainResult:
    """Train (or resume training) a preset encoder; see the module docstring.

    Raises:
        ConfigError: invalid settings, or a ``last.pt`` written with other settings (when resuming).
        StoreError / SpecError: stores missing, incomplete, without the embedding, or mutually inconsistent.
        TrainingError: the loss or the weights became non-finite.
    """
    s = settings if isinstance(settings, TrainSettings) else TrainSettings.from_dict(settings)
    device = resolve_device(s.device)
    bs = int(s.batch_size)  # set in __post_init__
    train = StoreBatches(s.train_store, s.embedding, bs, shuffle=True, seed=s.seed, drop_last=s.drop_last,
                         buffer_rows=s.buffer_rows, in_memory_bytes=s.in_memory_bytes, prefetch=s.prefetch)
    val = StoreBatches(s.val_store, s.embedding, max(bs, 1024), shuffle=False, drop_last=False,
                       buffer_rows=s.buffer_rows, in_memory_bytes=s.in_memory_bytes, prefetch=s.prefetch)
    if len(train) == 0:
        raise ConfigError(
            f"training store {s.train_store} has {train.n_rows} presets, fewer than one batch of {bs}; "
            "lower batch_size or set drop_last false"
        )
    if val.n_rows < s.val_k:
        raise ConfigError(
            f"validation store {s.val_store} has {val.n_rows} presets, fewer than val_k={s.val_k} MRR "
            "candidates per group; lower val_k"
        )
    store_meta = _store_meta(train, val, s.embedding)
    hyper = s.to_dict()
    steps_per_epoch = len(train)
    sched = CosineRestartSchedule(s.lr, s.min_lr, steps_per_epoch * s.epochs, s.restart_fraction,
                                  s.constant_fraction, constant_steps=s.constant_steps)
    val_seed = s.seed if s.val_seed is None else s.val_seed

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], _info: StepInfo
                ) -> tuple[torch.Tensor, int]:
        x, y = batch
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return stable_l1(model(x), y), x.shape[0]

    def validation(model: nn.Module) -> dict[str, float]:
        val_l1, val_mrr = validate(model, val, device, s.val_k, val_seed)
        return {"val_l1": val_l1, "val_mrr": val_mrr}

    with seeded_runtime(s.seed, s.deterministic, s.threads, device):
        layout = PresetLayout(**store_meta["layout"])
        model = build_encoder(s.arch, layout, train.dim, **s.encoder).to(device)
        if s.init_head_bias:
            _init_head_bias(model, s.train_store, s.embedding)
        opt_cls = torch.optim.AdamW if s.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(model.parameters(), lr=s.lr, betas=s.betas, eps=s.eps, weight_decay=s.weight_decay)
        meta = {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "arch": s.arch, "encoder": dict(s.encoder),
            "out_dim": train.dim, **store_meta, "hyperparameters": hyper,
            "train_store_fingerprint": train.attrs.get("fingerprint"),
            "val_store_fingerprint": val.attrs.get("fingerprint"),
            "n_params": count_parameters(model), "synthproxy_version": __version__,
            "torch_version": torch.__version__,
        }
        fit_settings = FitSettings(
            epochs=s.epochs, out_dir=s.out_dir, resume=s.resume, on_stale_checkpoint=s.on_stale_checkpoint,
            save_checkpoints=s.save_checkpoints, max_epochs_per_run=s.max_epochs_per_run,
            validations_per_epoch=s.validations_per_epoch, train_loss_name="train_l1",
            rate_name="presets_per_second", checkpoint_format=CHECKPOINT_FORMAT)
        result = fit(model, opt, sched, train.epoch, loss_fn, validation, fit_settings,
                     [Selection("best_mrr", "val_mrr", "max"), Selection("best_l1", "val_l1", "min")], meta,
                     _check_resumable(meta), HISTORY_COLUMNS, on_step, _explain_nan(bs), steps_per_epoch)
    b = result.best
    return TrainResult(
        out_dir=s.out_dir, history=result.history, best_mrr=b["val_mrr"], best_mrr_epoch=b["val_mrr_epoch"],
        best_l1=b["val_l1"], best_l1_epoch=b["val_l1_epoch"], epochs_done=result.epochs_done,
        resumed_from_epoch=result.resumed_from_epoch, n_params=count_parameters(model), model=model,
        checkpoints=result.checkpoints,
    )


OPTIMIZER_KEYS = ("lr", "betas", "eps")
"""What the final trainings take from an HPO study (the official code uses every tuned optimizer value)."""


def settings_from_hpo(settings: dict[str, Any], best_params: Path) -> dict[str, Any]:
    """``settings`` with the optimizer of an HPO study's best trial (``best_params.json``): lr, betas, eps."""
    import json

    path = Path(best_params)
    if not path.is_file():
        raise ConfigError(f"HPO result not found: {path} (run the workflow's hpo step first)")
    best = json.loads(path.read_text())
    train = best.get("train", {})
    if best.get("best_trial") is None and "best_trial" in best:
        raise ConfigError(f"{path}: the study has no finished trial (every trial was pruned or failed); widen the "
                          "search space, add trials or set training.hpo.prune_train_loss")
    if "lr" not in train:
        raise ConfigError(f"{path}: the best HPO trial sets no learning rate ('train.lr')")
    tuned = {k: train[k] for k in OPTIMIZER_KEYS if k in train}
    if "betas" in tuned:
        tuned["betas"] = tuple(float(b) for b in tuned["betas"])
    return settings | tuned | {"optimizer_from": str(path)}


def run_summary(result: TrainResult, settings: TrainSettings) -> dict[str, Any]:
    """What ``summary.json`` records of a finished training (read by the tables)."""
    return {"out_dir": str(result.out_dir), "arch": settings.arch, "lr": settings.lr, "betas": list(settings.betas),
            "eps": settings.eps, "optimizer_from": settings.optimizer_from, "epochs_done": result.epochs_done,
            "best_mrr": result.best_mrr, "best_mrr_epoch": result.best_mrr_epoch, "best_l1": result.best_l1,
            "best_l1_epoch": result.best_l1_epoch, "n_params": result.n_params,
            "checkpoints": {k: str(v) for k, v in result.checkpoints.items()}}
