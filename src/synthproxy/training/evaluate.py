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

from synthproxy.metrics.retrieval import evaluate_runs
from synthproxy.training.data import StoreBatches
from synthproxy.training.trainer import (
    EncoderCheckpoint,
    check_store_compatible,
    load_checkpoint,
    predict,
    resolve_device,
)


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
