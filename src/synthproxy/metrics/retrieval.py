"""Retrieval metrics of Combes et al. (JAES 2025): mean reciprocal rank (Appendix 11.2) and mean L1 error.

A preset encoder is good when, for the audio embedding ``target[q]`` of preset ``q``, its own prediction
``pred[q]`` is the closest (in L1) among the predictions of a set of ``K`` candidate presets. The rank
``r_q`` of ``pred[q]`` in that sorted list gives the reciprocal rank ``1/r_q``; the MRR is its mean over
``Q`` queries.

Two directions (``direction``), because the paper's text and its official evaluation code differ:

* ``"audio_to_preset"`` (default; Appendix 11.2's text, and the official *validation*): the query is the
  audio embedding ``target[q]``, the candidates are the predictions ``pred[i]``;
* ``"preset_to_audio"`` (the official *evaluation* code behind Tables 3-4): the query is the prediction
  ``pred[q]``, the candidates are the audio embeddings ``target[i]``.

Two ways of choosing candidates appear in the paper, both implemented by :func:`mrr`:

* ``mode="pool"`` (evaluation, Sec. 6.1.2): one pool of ``K`` presets; every preset of the pool is a query
  (``Q = K``) and every preset of the pool is a candidate for every query.
* ``mode="groups"`` (validation during training and HPO, Sec. 6.1.3 and 11.3): the set is cut into
  ``Q = N // K`` non-overlapping groups of ``K`` presets, drawn without replacement until all are used;
  in each group, one preset is the query and the ``K`` members are the candidates. Every preset is used
  once, either as a query or as a candidate (with ``N = 131072`` and ``K = 512``: ``Q = 256``).

Ties: an exactly tied distance has no natural order, and breaking it by index (as ``argsort`` would)
biases degenerate predictors; a constant predictor would score MRR = 1 with optimistic ties. By default
(``ties="expected"``) the reciprocal rank of a query is its *expectation* under uniformly random
tie-breaking, so a constant predictor scores exactly ``H_K / K``, the score of a random ranking.

Distances use :func:`torch.cdist` with ``p=1`` computed in row blocks, so ``K = 4096`` pools and large
validation sets stay within a bounded amount of memory (``max_block_elements`` distance entries).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from synthproxy.errors import ConfigError

Ties = Literal["expected", "optimistic", "pessimistic"]
Direction = Literal["audio_to_preset", "preset_to_audio"]
DIRECTIONS: tuple[str, ...] = ("audio_to_preset", "preset_to_audio")
_EULER_GAMMA = 0.5772156649015329


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ConfigError(
            f"predictions and targets must both have shape (N, D); got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.shape[0] < 1:
        raise ConfigError("MRR of an empty set of presets is undefined")
    return pred.detach(), target.detach().to(pred.device)


def _harmonic(n: torch.Tensor) -> torch.Tensor:
    """``H_n = sum_{j<=n} 1/j`` for (float) tensors ``n >= 0``, via the digamma function."""
    return torch.digamma(n + 1.0) + _EULER_GAMMA


def _reciprocal_rank(d: torch.Tensor, d_match: torch.Tensor, ties: Ties) -> torch.Tensor:
    """Reciprocal rank of the matching candidate, given each query's distances ``d`` (Q, K) to all candidates.

    ``d_match`` (Q,) is the distance of the matching candidate (it is also present in ``d``).
    """
    less = (d < d_match[:, None]).sum(dim=1).to(torch.float64)
    equal = (d == d_match[:, None]).sum(dim=1).to(torch.float64)  # >= 1: the match itself
    if ties == "optimistic":
        return 1.0 / (less + 1.0)
    if ties == "pessimistic":
        return 1.0 / (less + equal)
    # Uniformly random order within the tie: rank in {less+1, ..., less+equal}, each with prob. 1/equal.
    return (_harmonic(less + equal) - _harmonic(less)) / equal


def _block_rows(n_cols: int, max_block_elements: int) -> int:
    """Rows per block so that a block's distance matrix has at most ``max_block_elements`` entries.

    ``torch.cdist`` with ``p=1`` does not materialise the (rows, cols, D) differences, so its output
    is the only large allocation.
    """
    return max(1, int(max_block_elements) // max(1, n_cols))


def reciprocal_ranks(
    pred: torch.Tensor,
    target: torch.Tensor,
    mode: Literal["pool", "groups"] = "pool",
    k: int | None = None,
    generator: torch.Generator | None = None,
    ties: Ties = "expected",
    max_block_elements: int = 2**24,
    direction: Direction = "audio_to_preset",
) -> torch.Tensor:
    """Per-query reciprocal ranks (float64, shape (Q,)); :func:`mrr` is their mean.

    Args:
        pred: encoder outputs ``f(x_i)``, shape (N, D).
        target: audio embeddings ``g(s(x_i))``, shape (N, D), row-aligned with ``pred``.
        mode: ``"pool"`` ranks every row against all N rows (Q = K = N; pass a subset to evaluate a
            pool of K presets); ``"groups"`` splits the rows into ``N // k`` non-overlapping groups.
        k: group size for ``mode="groups"`` (ignored for ``"pool"``).
        generator: draws the random assignment of rows to groups (without replacement); rows beyond
            ``Q * k`` are left out. ``None`` uses the rows in order (the caller has shuffled them).
        ties: how exactly tied distances rank, see the module docstring.
        max_block_elements: bound on distance-matrix entries held at once (memory for K = 4096).
        direction: ``audio_to_preset`` (queries are audio embeddings, candidates predictions) or
            ``preset_to_audio`` (the reverse), see the module docstring.
    """
    pred, target = _check_pair(pred, target)
    if direction not in DIRECTIONS:
        raise ConfigError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    queries, candidates = (target, pred) if direction == "audio_to_preset" else (pred, target)
    n = pred.shape[0]
    if ties not in ("expected", "optimistic", "pessimistic"):
        raise ConfigError(f"ties must be 'expected', 'optimistic' or 'pessimistic', got {ties!r}")
    # Distances in float64 (converted block by block, so big float32 inputs are not copied whole): sums of
    # 192 absolute differences in float32 would reorder near-equal candidates and hide exact ties.
    if mode == "pool":
        cand = candidates.to(torch.float64)
        out = []
        step = _block_rows(n, max_block_elements)
        for s in range(0, n, step):
            q = queries[s : s + step].to(torch.float64)
            d = torch.cdist(q, cand, p=1.0)  # (block, N): distance of query q to every candidate
            idx = torch.arange(s, s + q.shape[0], device=d.device)
            d_match = d[torch.arange(q.shape[0], device=d.device), idx]
            out.append(_reciprocal_rank(d, d_match, ties))
        return torch.cat(out)
    if mode == "groups":
        if k is None or int(k) < 1:
            raise ConfigError(f"mode='groups' needs a positive group size k, got {k!r}")
        k = int(k)
        n_groups = n // k
        if n_groups < 1:
            raise ConfigError(
                f"MRR with groups of K={k} candidates needs at least {k} presets, got {n}; lower K "
                "(e.g. the trainer's 'val_k' setting) or use a larger validation set"
            )
        order = torch.arange(n) if generator is None else torch.randperm(n, generator=generator)
        order = order[: n_groups * k].view(k, n_groups).t().to(pred.device)  # (Q, K); column 0: the queries
        out = []
        step = _block_rows(k, max_block_elements)
        for s in range(0, n_groups, step):
            g = order[s : s + step]
            cand = candidates[g].to(torch.float64)  # (B, K, D)
            q = queries[g[:, 0]][:, None, :].to(torch.float64)  # (B, 1, D)
            d = torch.cdist(q, cand, p=1.0)[:, 0, :]  # (B, K)
            out.append(_reciprocal_rank(d, d[:, 0], ties))
        return torch.cat(out)
    raise ConfigError(f"unknown MRR mode {mode!r}; use 'pool' (evaluation) or 'groups' (validation)")


def mrr(
    pred: torch.Tensor,
    target: torch.Tensor,
    mode: Literal["pool", "groups"] = "pool",
    k: int | None = None,
    generator: torch.Generator | None = None,
    ties: Ties = "expected",
    max_block_elements: int = 2**24,
    direction: Direction = "audio_to_preset",
) -> float:
    """Mean reciprocal rank (Appendix 11.2) with L1 distances, in (0, 1]; see :func:`reciprocal_ranks`."""
    return float(reciprocal_ranks(pred, target, mode, k, generator, ties, max_block_elements, direction).mean())


def mean_l1(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error over all entries: the training loss, and the paper's "average L1 error"."""
    pred, target = _check_pair(pred, target)
    return float((pred - target).abs().sum(dtype=torch.float64) / pred.numel())


def random_mrr(k: int) -> float:
    """Expected MRR of a predictor unrelated to the targets: ``H_K / K`` (for reference in reports)."""
    return sum(1.0 / j for j in range(1, int(k) + 1)) / int(k)


def evaluate_runs(
    pred: torch.Tensor,
    target: torch.Tensor,
    n_runs: int = 100,
    k: int = 4096,
    seed: int = 0,
    ties: Ties = "expected",
) -> dict[str, float | int]:
    """Sec. 6.1.2: ``n_runs`` times, draw ``k`` presets (all of them if fewer), compute MRR (Q = K) and L1.

    Runs are drawn from a generator seeded with ``seed`` so the result is reproducible; with fewer than
    ``k`` presets every run uses the whole set and the runs are identical (the paper's remark on TAL-NM).
    Standard deviations are population standard deviations over runs (0 for a single run).

    Both MRR directions are computed on the same pools: ``mrr_audio_to_preset_*`` (the paper's text) and
    ``mrr_preset_to_audio_*`` (the official evaluation code); ``mrr_mean``/``mrr_std`` repeat the first.

    Returns:
        ``mrr_audio_to_preset_mean/_std``, ``mrr_preset_to_audio_mean/_std``, ``mrr_mean``, ``mrr_std``,
        ``l1_mean``, ``l1_std``, ``n_runs``, ``k`` (the pool size used) and ``n_presets``.
    """
    pred, target = _check_pair(pred, target)
    if int(n_runs) < 1 or int(k) < 1:
        raise ConfigError(f"evaluate_runs needs n_runs >= 1 and k >= 1, got n_runs={n_runs}, k={k}")
    n = pred.shape[0]
    k_used = min(int(k), n)
    gen = torch.Generator().manual_seed(int(seed))
    mrrs: dict[str, list[float]] = {d: [] for d in DIRECTIONS}
    l1s = []
    for _ in range(int(n_runs)):
        idx = torch.randperm(n, generator=gen)[:k_used].to(pred.device)
        p, t = pred[idx], target[idx]
        for d in DIRECTIONS:
            mrrs[d].append(float(reciprocal_ranks(p, t, "pool", ties=ties, direction=d).mean()))  # type: ignore[arg-type]
        l1s.append(mean_l1(p, t))
    out: dict[str, float | int] = {}
    for d in DIRECTIONS:
        out[f"mrr_{d}_mean"], out[f"mrr_{d}_std"] = float(np.mean(mrrs[d])), float(np.std(mrrs[d]))
    return out | {
        "mrr_mean": out["mrr_audio_to_preset_mean"], "mrr_std": out["mrr_audio_to_preset_std"],
        "l1_mean": float(np.mean(l1s)), "l1_std": float(np.std(l1s)),
        "n_runs": int(n_runs), "k": k_used, "n_presets": int(n),
    }


__all__ = ["DIRECTIONS", "evaluate_runs", "mean_l1", "mrr", "random_mrr", "reciprocal_ranks"]
