"""Streaming (preset, embedding) batches out of a Zarr store, for training and evaluating preset encoders.

A training store can be far larger than memory (the paper trains on 10M presets), and random row access
into a chunked, compressed store is slow, so the loader reads whole chunks: each epoch it shuffles the
order of the store's row-chunks, reads ``chunks_per_block`` of them at a time into a buffer (bounded
memory: ``buffer_rows`` rows), shuffles the rows inside the buffer and cuts batches out of it. Rows left
over at the end of a buffer are carried into the next one, so every batch except possibly the last is
full. The shuffles come from a NumPy generator seeded with ``(seed, epoch)``, so the order of an epoch
is a pure function of the seed and the epoch number: a run resumed at epoch ``e`` sees exactly the
batches the uninterrupted run saw.

Stores at most ``in_memory_bytes`` large are read once and kept; their epochs are full shuffles
(a single buffer holding every chunk). An optional background thread (``prefetch``) reads and
decompresses the next batches while the model trains on the current one; the trainer measures how long
it still waits for data.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from synthproxy.data.store import open_store, require_embedding
from synthproxy.errors import ConfigError, StoreError


def open_training_store(path: Path | str, embedding: str) -> tuple[zarr.Group, zarr.Array, zarr.Array]:
    """Open a complete store and return ``(root, presets, embeddings[embedding])``.

    Raises:
        StoreError: store missing, not finalized (``complete`` attribute not true), without the embedding
            ``embedding`` (the message lists the ones it has), or with mismatched row counts.
    """
    root = open_store(Path(path))
    if root.attrs.get("complete") is not True:
        raise StoreError(
            f"data store {path} is incomplete (its 'complete' attribute is not set): finish its "
            "render_shard jobs and run finalize-split before training on it"
        )
    emb = require_embedding(root, embedding, path)
    presets = root["presets"]
    if presets.shape[0] != emb.shape[0]:
        raise StoreError(f"data store {path}: {presets.shape[0]} presets but {emb.shape[0]} embeddings")
    return root, presets, emb


class StoreBatches:
    """Seeded, chunk-aligned, bounded-memory batches of ``(presets, embeddings)`` float32 tensors.

    Args:
        path: a finalized store (see :mod:`synthproxy.data.store`).
        embedding: key of the embedding array, e.g. ``mel128_avg``.
        batch_size: rows per batch.
        shuffle: shuffle chunk order and rows within buffers (training); ``False`` reads rows in store
            order (prediction for evaluation).
        seed: base seed of the per-epoch generators.
        drop_last: drop a final partial batch (keeps BatchNorm statistics from a tiny last batch).
        buffer_rows: rows held in the shuffle buffer (rounded to whole chunks, at least one chunk).
        in_memory_bytes: stores up to this size are read once and fully shuffled every epoch.
        prefetch: batches read ahead by a background thread (0: read in the caller's thread).
    """

    def __init__(
        self,
        path: Path | str,
        embedding: str,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        buffer_rows: int = 65536,
        in_memory_bytes: int = 256 * 2**20,
        prefetch: int = 4,
    ) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
        self.path = Path(path)
        self.embedding = embedding
        self.root, self._presets, self._emb = open_training_store(path, embedding)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.prefetch = max(0, int(prefetch))
        self.n_rows = int(self._presets.shape[0])
        self.n_params = int(self._presets.shape[1])
        self.dim = int(self._emb.shape[1])
        self.chunk_rows = int(self._presets.chunks[0])
        if int(self._emb.chunks[0]) != self.chunk_rows:
            raise StoreError(f"data store {path}: presets and embeddings are chunked differently")
        self.n_chunks = -(-self.n_rows // self.chunk_rows)
        self.nbytes = self.n_rows * (self.n_params + self.dim) * 4
        self.in_memory = self.nbytes <= int(in_memory_bytes)
        self.chunks_per_block = self.n_chunks if self.in_memory else max(1, int(buffer_rows) // self.chunk_rows)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        """The store's attributes (spec hash, parameter names, representation settings, ...)."""
        return dict(self.root.attrs)

    def __len__(self) -> int:
        """Batches per epoch."""
        full, rest = divmod(self.n_rows, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    # ---- reading ---------------------------------------------------------------------------------
    def _read_chunks(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the given chunks, in the given chunk order (float32)."""
        if self._cache is not None:
            rows = np.concatenate([np.arange(c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.n_rows))
                                   for c in chunks])
            return self._cache[0][rows], self._cache[1][rows]
        ps, es = [], []
        for c in chunks:
            s, e = int(c) * self.chunk_rows, min((int(c) + 1) * self.chunk_rows, self.n_rows)
            ps.append(np.asarray(self._presets[s:e], dtype=np.float32))
            es.append(np.asarray(self._emb[s:e], dtype=np.float32))
        return np.concatenate(ps), np.concatenate(es)

    def _ensure_cache(self) -> None:
        if self.in_memory and self._cache is None:
            self._cache = (np.asarray(self._presets[:], dtype=np.float32), np.asarray(self._emb[:], dtype=np.float32))

    def _generate(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The epoch's batches as NumPy arrays (runs in the prefetch thread when enabled)."""
        self._ensure_cache()
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.n_chunks) if self.shuffle else np.arange(self.n_chunks)
        carry_p = np.empty((0, self.n_params), np.float32)
        carry_e = np.empty((0, self.dim), np.float32)
        for b0 in range(0, self.n_chunks, self.chunks_per_block):
            p, e = self._read_chunks(order[b0 : b0 + self.chunks_per_block])
            if self.shuffle:
                perm = rng.permutation(len(p))
                p, e = p[perm], e[perm]
            if len(carry_p):
                p, e = np.concatenate([carry_p, p]), np.concatenate([carry_e, e])
            n_full = len(p) // self.batch_size * self.batch_size
            for s in range(0, n_full, self.batch_size):
                yield p[s : s + self.batch_size], e[s : s + self.batch_size]
            carry_p, carry_e = p[n_full:], e[n_full:]
        if len(carry_p) and not self.drop_last:
            yield carry_p, carry_e

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate over the batches of ``epoch`` as float32 tensors ``(presets (B, P), embeddings (B, D))``.

        With ``prefetch > 0`` a daemon thread fills a bounded queue; closing the iterator (or leaving a
        ``for`` loop early, e.g. on an error) stops the thread.
        """
        if self.prefetch == 0:
            for p, e in self._generate(epoch):
                yield torch.from_numpy(p), torch.from_numpy(e)
            return
        yield from _prefetched(self._generate(epoch), self.prefetch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch(0)

    def read_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every row in store order (for targets of evaluation; holds N x (P + D) float32 in memory)."""
        p, e = self._read_chunks(np.arange(self.n_chunks))
        return torch.from_numpy(p), torch.from_numpy(e)


_DONE = object()


def _prefetched(source: Iterator[tuple[np.ndarray, np.ndarray]], depth: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Run ``source`` in a background thread, ``depth`` items ahead; re-raise its errors in the caller."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for p, e in source:
                item = (torch.from_numpy(np.ascontiguousarray(p)), torch.from_numpy(np.ascontiguousarray(e)))
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    thread = threading.Thread(target=work, name="synthproxy-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                q.get_nowait()
            thread.join(timeout=0.05)
