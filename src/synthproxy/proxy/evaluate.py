"""Evaluating a trained preset encoder on a (test) store, as in Sec. 6.1.2 of Combes et al.

The encoder predicts the embedding of every preset of the store (in batches, streamed from the store),
then :func:`synthproxy.metrics.retrieval.evaluate_runs` draws ``n_runs`` pools of ``k`` presets and reports
the mean and standard deviation of the MRR (Q = K) and of the mean L1 error over the runs: 100 runs of
4096 presets in the paper. Before predicting, the store is checked against the checkpoint (spec hash,
parameter names, representation settings), because an encoder evaluated on presets or embeddings that
mean something else would produce plausible-looking but meaningless numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from synthproxy.data.batches import StoreBatches
from synthproxy.data.store import open_store, read_valid
from synthproxy.errors import ConfigError
from synthproxy.metrics.retrieval import evaluate_runs
from synthproxy.proxy.train import EncoderCheckpoint, check_store_compatible, load_checkpoint, predict
from synthproxy.training.runtime import resolve_device


def evaluate_checkpoint(
    checkpoint: Path | str,
    store: Path | str,
    n_runs: int = 100,
    k: int = 4096,
    seed: int = 0,
    batch_size: int = 1024,
    device: str = "auto",
    prefetch: int = 4,
    in_memory_bytes: int = 256 * 2**20,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on every preset of ``store``.

    Returns:
        ``mrr_mean``, ``mrr_std``, ``l1_mean``, ``l1_std``, ``n_presets``, ``k`` (pool size actually used,
        at most ``n_presets``), ``n_runs``, ``seed`` plus what was evaluated (checkpoint, store, arch,
        embedding, checkpoint kind and epoch) and ``predict_seconds``.

    Raises:
        SpecError / ConfigError / StoreError: the store does not match the checkpoint, is incomplete or
            lacks the checkpoint's embedding.
    """
    dev = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, map_location=dev)
    batches = StoreBatches(store, ckpt.embedding, batch_size, shuffle=False, drop_last=False,
                           in_memory_bytes=in_memory_bytes, prefetch=prefetch)
    check_store_compatible(ckpt.meta, batches.attrs, store)
    return score_batches(ckpt, batches.epoch(0), dev, n_runs, k, seed) | {
        "checkpoint": str(checkpoint), "store": str(store)}


def evaluation_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Check the keyword arguments of :func:`evaluate_checkpoint` given on the command line or as JSON."""
    import inspect

    valid = set(inspect.signature(evaluate_checkpoint).parameters) - {"checkpoint", "store"}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise ConfigError(f"unknown evaluation setting(s) {unknown}; valid: {sorted(valid)}")
    return kwargs


def score_batches(ckpt: EncoderCheckpoint, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
                  device: torch.device, n_runs: int, k: int, seed: int) -> dict[str, Any]:
    """Predict every batch of ``(presets, embeddings)`` and score the runs; any preset source may feed it."""
    t0 = time.perf_counter()
    pred, target = predict(ckpt.model, batches, device)
    seconds = time.perf_counter() - t0
    return evaluate_runs(pred, target, n_runs=n_runs, k=k, seed=seed) | {
        "seed": int(seed), "arch": ckpt.meta["arch"], "embedding": ckpt.embedding,
        "checkpoint_kind": ckpt.meta.get("kind"), "epoch": ckpt.meta.get("epoch"), "predict_seconds": seconds,
    }


def evaluate_handcrafted(checkpoint: Path, store: Path, n_runs: int, k: int, seed: int) -> dict[str, Any]:
    """MRR and L1 of a synthetic-trained encoder on the valid hand-crafted presets (all splits; paper Table 4)."""
    cpu = torch.device("cpu")
    ckpt = load_checkpoint(checkpoint, map_location=cpu)
    check_store_compatible(ckpt.meta, dict(open_store(store).attrs), store)
    presets, emb = read_valid(store, ckpt.embedding)
    x, y = torch.from_numpy(presets), torch.from_numpy(emb)
    batches = ((x[i:i + 1024], y[i:i + 1024]) for i in range(0, len(x), 1024))
    return score_batches(ckpt, batches, cpu, n_runs, k, seed) | {"checkpoint": str(checkpoint), "store": str(store)}
