"""Counter-based random preset sampling (paper Sec. 4.1.2).

Each candidate preset is a pure function of ``(seed, split, index, attempt)``: its random numbers come
from a Philox generator keyed by ``(seed, split)`` whose counter is set from ``(index, attempt)``. Hence
a split gives bit-identical presets whether it is rendered as one shard or fifty, in any order, and a
rejected preset (RMS out of range) is replaced by the deterministic next attempt for the same index.

Continuous parameters are uniform in their interval; discrete ones (categorical, binary, discretised
numerical) are drawn from a categorical distribution (uniform unless the spec gives weights).
"""

from __future__ import annotations

import hashlib

import numpy as np

from synthproxy.synths.spec import SynthSpec


def split_key(seed: int, split: str) -> np.ndarray:
    """128-bit Philox key for a (seed, split) pair: distinct splits never share random streams."""
    digest = hashlib.sha256(f"synthproxy/{int(seed)}/{split}".encode()).digest()
    return np.frombuffer(digest[:16], dtype=np.uint64).copy()


class PresetSampler:
    """Draws preset vectors for a spec; vectorised per batch of indices, deterministic per index."""

    def __init__(self, spec: SynthSpec, seed: int, split: str) -> None:
        self.spec = spec
        self.seed = int(seed)
        self.split = split
        self._key = split_key(seed, split)
        used = spec.used
        self._lo = np.array([p.interval[0] for p in used])
        self._hi = np.array([p.interval[1] for p in used])
        discrete = [(col, p) for col, p in enumerate(used) if p.is_discrete]
        # Inverse-CDF tables for all discrete parameters at once, padded to the largest cardinality:
        # cumulative weights (padding +inf, never <= u) and the value each index stands for.
        width = max((p.cardinality for _, p in discrete), default=1)
        self._d_cols = np.array([c for c, _ in discrete], dtype=np.int64)
        self._d_last = np.array([p.cardinality - 1 for _, p in discrete], dtype=np.int64)
        self._d_cdf = np.full((len(discrete), width), np.inf)
        self._d_val = np.zeros((len(discrete), width))
        for row, (_, p) in enumerate(discrete):
            w = np.full(p.cardinality, 1.0 / p.cardinality) if p.weights is None else np.asarray(p.weights)
            cdf = np.cumsum(w)
            cdf[-1] = 1.0
            self._d_cdf[row, : p.cardinality] = cdf
            # categoricals are stored as their index; discretised numericals and binaries as their value
            self._d_val[row, : p.cardinality] = np.arange(p.cardinality) if p.kind == "cat" else p.values

    def uniforms(self, index: int, attempt: int = 0) -> np.ndarray:
        """The ``n_params`` uniforms in [0, 1) that define candidate ``attempt`` of preset ``index``."""
        gen = np.random.Generator(
            np.random.Philox(key=self._key, counter=np.array([index, attempt, 0, 0], dtype=np.uint64))
        )
        return gen.random(self.spec.n_params)

    def sample_one(self, index: int, attempt: int = 0) -> np.ndarray:
        """Preset vector (float32) of candidate ``attempt`` for ``index``."""
        return self.from_uniforms(self.uniforms(index, attempt)[None, :])[0]

    def sample(self, indices: np.ndarray, attempts: np.ndarray | None = None) -> np.ndarray:
        """Preset vectors for many indices (each with its own attempt number, default 0)."""
        indices = np.asarray(indices, dtype=np.int64)
        attempts = np.zeros_like(indices) if attempts is None else np.asarray(attempts, dtype=np.int64)
        u = np.stack([self.uniforms(int(i), int(a)) for i, a in zip(indices, attempts, strict=True)])
        return self.from_uniforms(u)

    def from_uniforms(self, u: np.ndarray) -> np.ndarray:
        """Transform uniforms to preset vectors: continuous → interval, discrete → inverse CDF."""
        out = self._lo + u * (self._hi - self._lo)
        if len(self._d_cols):
            # searchsorted(cdf, u, side="right") for every discrete column at once: entries of cdf <= u
            idx = (self._d_cdf[None, :, :] <= u[:, self._d_cols, None]).sum(axis=-1)
            idx = np.minimum(idx, self._d_last)
            out[:, self._d_cols] = self._d_val[np.arange(len(self._d_cols)), idx]
        return out.astype(np.float32)
