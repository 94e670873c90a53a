"""Random-access rows of chunked Zarr arrays in bounded memory, and the chunk-aware epoch order that makes it cheap.

A split too large for memory (the paper-2 stage at paper scale: 16,000 training sounds of 4 s, ~4 GB of audio;
the NSynth validation set, ~3 GB) is read by whole row-chunks through a small LRU cache. Reading rows in a full
random order would then decompress a whole chunk per row, so a streamed split's epochs follow
:func:`epoch_order`: the chunks in a seeded random order, ``block_chunks`` at a time, rows shuffled inside each
block, so every chunk is read once per epoch: the cache holds one block plus the chunk a batch straddling two
blocks still needs. A split small enough to be
*resident* (at most :func:`resident_bytes`: 512 MiB unless ``$SYNTHPROXY_RESIDENT_MB`` says otherwise) is read
once and shuffled in full, as if it were an in-memory tensor.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np
import torch
import zarr

from synthproxy.errors import StoreError

RESIDENT_MB = 512  # splits up to this size are read once and kept; $SYNTHPROXY_RESIDENT_MB overrides


def resident_bytes() -> int:
    """The resident limit in bytes: ``$SYNTHPROXY_RESIDENT_MB`` (MiB) if set, else :data:`RESIDENT_MB`."""
    raw = os.environ.get("SYNTHPROXY_RESIDENT_MB")
    try:
        mb = float(raw) if raw not in (None, "") else RESIDENT_MB
    except ValueError:
        raise StoreError(f"SYNTHPROXY_RESIDENT_MB must be a number of MiB, got {raw!r}") from None
    return int(mb * 2**20)


class ChunkedRows:
    """Rows ``rows[i]`` (logical row ``i``) of same-length Zarr arrays with the same row chunking.

    Args:
        arrays: name -> array, all with the same first dimension and row-chunk size.
        rows: the store rows of the logical rows, sorted (``None``: all rows ``0..N-1``).
        resident_limit: read everything at once when the selected rows take at most this many bytes
            (default: :func:`resident_bytes`).
        cache_chunks: row-chunks kept in the LRU cache of a streamed split (:func:`epoch_order` shuffles
            within blocks of one chunk fewer).
    """

    def __init__(self, arrays: Mapping[str, zarr.Array], rows: np.ndarray | None = None,
                 resident_limit: int | None = None, cache_chunks: int = 9) -> None:
        if not arrays:
            raise StoreError("ChunkedRows needs at least one array")
        self.arrays = dict(arrays)
        first = next(iter(self.arrays.values()))
        n_store = first.shape[0]
        chunks = {int(a.chunks[0]) for a in self.arrays.values()}
        lengths = {a.shape[0] for a in self.arrays.values()}
        if len(lengths) != 1:
            raise StoreError(f"arrays of different lengths: { {k: a.shape[0] for k, a in self.arrays.items()} }")
        self.chunk_rows = min(chunks)
        self.rows = np.arange(n_store) if rows is None else np.asarray(rows, dtype=np.int64)
        if self.rows.size and (np.any(np.diff(self.rows) <= 0) or self.rows[0] < 0 or self.rows[-1] >= n_store):
            raise StoreError("rows must be sorted, unique and within the arrays")
        row_bytes = sum(int(np.prod(a.shape[1:], dtype=np.int64)) * a.dtype.itemsize for a in self.arrays.values())
        limit = resident_bytes() if resident_limit is None else resident_limit
        self.resident = len(self.rows) * row_bytes <= limit
        self.cache_chunks = max(1, int(cache_chunks))
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._all: dict[str, np.ndarray] | None = None
        if self.resident:
            self._all = {k: np.asarray(a.get_orthogonal_selection((self.rows,)) if rows is not None else a[:])
                         for k, a in self.arrays.items()}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def chunk_of(self) -> np.ndarray:
        """The store row-chunk of every logical row."""
        return self.rows // self.chunk_rows

    def _chunk(self, chunk: int) -> dict[str, np.ndarray]:
        if chunk in self._cache:
            self._cache.move_to_end(chunk)
            return self._cache[chunk]
        lo = chunk * self.chunk_rows
        block = {k: np.asarray(a[lo:lo + self.chunk_rows]) for k, a in self.arrays.items()}
        self._cache[chunk] = block
        while len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return block

    def everything(self) -> dict[str, np.ndarray]:
        """Every selected row of every array, as read at construction (resident sources only; no copy)."""
        if self._all is None:
            raise StoreError("a streamed source is read by take(), not all at once")
        return self._all

    def take(self, idx: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """The logical rows ``idx`` (any order) of every array, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._all is not None:
            return {k: v[idx] for k, v in self._all.items()}
        store_rows = self.rows[idx]
        chunks = store_rows // self.chunk_rows
        out = {k: np.empty((len(idx), *a.shape[1:]), dtype=a.dtype) for k, a in self.arrays.items()}
        for chunk in np.unique(chunks):
            where = np.flatnonzero(chunks == chunk)
            block = self._chunk(int(chunk))
            local = store_rows[where] - int(chunk) * self.chunk_rows
            for k in out:
                out[k][where] = block[k][local]
        return out


def epoch_order(source: ChunkedRows, generator: torch.Generator, block_chunks: int | None = None) -> torch.Tensor:
    """A permutation of ``range(len(source))`` for one epoch, a pure function of the generator's state.

    Resident sources get ``torch.randperm`` (a full shuffle). Streamed ones get the chunks in random order,
    ``block_chunks`` (default: one fewer than the source's cache holds) at a time, with rows shuffled inside each
    block.
    """
    n = len(source)
    if source.resident:
        return torch.randperm(n, generator=generator)
    block = block_chunks or max(1, source.cache_chunks - 1)
    chunk_of = source.chunk_of
    chunks = np.unique(chunk_of)
    members = {int(c): np.flatnonzero(chunk_of == c) for c in chunks}
    order = torch.randperm(len(chunks), generator=generator).numpy()
    parts = []
    for b in range(0, len(order), block):
        rows = np.concatenate([members[int(chunks[i])] for i in order[b:b + block]])
        parts.append(torch.from_numpy(rows)[torch.randperm(len(rows), generator=generator)])
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)
