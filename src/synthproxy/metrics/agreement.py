"""Agreement of two gradient fields: row cosine, sign agreement, column cosine (numpy).

Used to compare a proxy's gradients with the exact ones (:mod:`synthproxy.matching.gradients`) and by the
report that plots them. ``a`` and ``b`` are ``(N, P)`` arrays: ``N`` examples (preset–target pairs), ``P``
parameters; ``b`` is the reference (the exact gradient). :func:`gradient_arrays` and :func:`parameter_cosine`
read a comparison frame whose gradient columns follow :data:`GRAD_PREFIX`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthproxy.errors import ConfigError

__all__ = ["GRAD_PREFIX", "column_cosine", "gradient_arrays", "parameter_cosine", "row_cosine", "sign_agreement"]

#: Column prefixes of the two gradients in a gradient-comparison frame (``gp__<param>``, ``ge__<param>``).
GRAD_PREFIX = {"proxy": "gp__", "exact": "ge__"}


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"gradient arrays must both be (N, P), got {a.shape} and {b.shape}")
    return a, b


def _cosine(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Cosine along ``axis``; NaN where either vector is exactly zero (no direction)."""
    na, nb = np.linalg.norm(a, axis=axis), np.linalg.norm(b, axis=axis)
    dot = np.sum(a * b, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dot / (na * nb)
    return np.where((na > 0) & (nb > 0), np.clip(out, -1.0, 1.0), np.nan)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N,)`` cosine similarity of each example's gradient vectors."""
    a, b = _pair(a, b)
    return _cosine(a, b, axis=1)


def column_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(P,)`` cosine, per parameter, of the vectors of its partial derivatives over the ``N`` examples."""
    a, b = _pair(a, b)
    return _cosine(a, b, axis=0)


def sign_agreement(a: np.ndarray, b: np.ndarray, rel_threshold: float = 1e-3) -> np.ndarray:
    """``(N,)`` fraction of parameters where ``sign(a) == sign(b)``, over the parameters whose reference
    ``|b|`` exceeds ``rel_threshold · max_k |b_k|`` of that example (smaller ones carry no usable sign);
    NaN for an all-zero reference."""
    a, b = _pair(a, b)
    if rel_threshold < 0:
        raise ConfigError(f"rel_threshold must be >= 0, got {rel_threshold}")
    scale = np.abs(b).max(axis=1, keepdims=True)
    mask = (np.abs(b) > rel_threshold * scale) & (scale > 0)
    agree = (np.sign(a) == np.sign(b)) & mask
    counts = mask.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, agree.sum(axis=1) / counts, np.nan)


def gradient_arrays(df: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parameter names and the ``(N, P)`` proxy and exact gradients of a gradient-comparison frame
    (:func:`synthproxy.matching.gradients.gradient_comparison`)."""
    names = [c[len(GRAD_PREFIX["exact"]):] for c in df.columns if c.startswith(GRAD_PREFIX["exact"])]
    g_proxy = df[[GRAD_PREFIX["proxy"] + n for n in names]].to_numpy(dtype=np.float64)
    g_exact = df[[GRAD_PREFIX["exact"] + n for n in names]].to_numpy(dtype=np.float64)
    return names, g_proxy, g_exact


def parameter_cosine(df: pd.DataFrame) -> pd.DataFrame:
    """Per parameter over the pairs: ``cosine`` of the proxy and exact partial derivatives, ``sign_agreement``
    (share of pairs with the same sign, among those where the exact derivative is non-zero), and the mean
    ``|g|`` of each."""
    names, g_proxy, g_exact = gradient_arrays(df)
    nonzero = g_exact != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        sign = np.where(nonzero.any(axis=0),
                        ((np.sign(g_proxy) == np.sign(g_exact)) & nonzero).sum(axis=0) / nonzero.sum(axis=0), np.nan)
    return pd.DataFrame({
        "param": names, "cosine": column_cosine(g_proxy, g_exact), "sign_agreement": sign,
        "mean_abs_exact": np.abs(g_exact).mean(axis=0), "mean_abs_proxy": np.abs(g_proxy).mean(axis=0),
    })
