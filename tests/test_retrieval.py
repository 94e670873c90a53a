"""MRR (Appendix 11.2) and the evaluation protocol (Sec. 6.1.2): properties and hand-checked cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthproxy.errors import ConfigError
from synthproxy.metrics.retrieval import evaluate_runs, mean_l1, mrr, random_mrr, reciprocal_ranks


def _harmonic_mean_rank(k: int) -> float:
    return sum(1 / j for j in range(1, k + 1)) / k


def test_perfect_predictions_score_one_in_both_modes():
    t = torch.randn(64, 12)
    assert mrr(t, t) == pytest.approx(1.0)
    assert mrr(t, t, mode="groups", k=8, generator=torch.Generator().manual_seed(1)) == pytest.approx(1.0)
    assert mean_l1(t, t) == 0.0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 6), seed=st.integers(0, 10_000), k=st.integers(1, 10))
def test_mrr_is_in_zero_one(n, d, seed, k):
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    for ties in ("expected", "optimistic", "pessimistic"):
        assert 0.0 < mrr(pred, target, ties=ties) <= 1.0 + 1e-12
        if k <= n:
            assert 0.0 < mrr(pred, target, "groups", k=k, generator=g, ties=ties) <= 1.0 + 1e-12


def test_random_predictor_scores_harmonic_number_over_k():
    k, runs = 128, 40
    g = torch.Generator().manual_seed(0)
    scores = [mrr(torch.randn(k, 8, generator=g), torch.randn(k, 8, generator=g)) for _ in range(runs)]
    expected = _harmonic_mean_rank(k)
    assert random_mrr(k) == pytest.approx(expected)
    # The mean of K independent reciprocal ranks has std ~0.09/sqrt(K*runs) here; 4 sigma.
    assert sum(scores) / runs == pytest.approx(expected, abs=4 * 0.1 / math.sqrt(k * runs))


def test_ties_are_ranked_in_expectation_so_a_constant_predictor_is_random():
    target = torch.randn(50, 4)
    pred = torch.zeros(50, 4)
    assert mrr(pred, target) == pytest.approx(_harmonic_mean_rank(50))
    assert mrr(pred, target, ties="optimistic") == pytest.approx(1.0)
    assert mrr(pred, target, ties="pessimistic") == pytest.approx(1 / 50)


def test_hand_computed_pool_ranks():
    # 1-D embeddings: targets 0, 10, 20; predictions 0, 19, 9 (presets 1 and 2 swapped, roughly).
    target = torch.tensor([[0.0], [10.0], [20.0]])
    pred = torch.tensor([[0.0], [19.0], [9.0]])
    # query 0 -> distances (0, 19, 9): rank 1; query 1 -> (10, 9, 1): pred 1 at distance 9 is rank 2;
    # query 2 -> (20, 1, 11): pred 2 at distance 11 is rank 2.
    rr = reciprocal_ranks(pred, target)
    assert rr.tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert mean_l1(pred, target) == pytest.approx((0 + 9 + 11) / 3)


def test_groups_are_non_overlapping_and_cover_the_set():
    # In order (no generator), N=12 and K=4 give Q=3 groups {j, j+3, j+6, j+9}; row j is the query.
    target = torch.arange(12, dtype=torch.float32)[:, None]
    pred = target.clone()
    pred[1] = 100.0  # query 1's own prediction is worse than all 3 other candidates of its group
    rr = reciprocal_ranks(pred, target, mode="groups", k=4)
    assert rr.tolist() == pytest.approx([1.0, 0.25, 1.0])
    pred = target.clone()
    pred[4] = 1.0  # row 4 is a candidate of group 1 (rows 1, 4, 7, 10) only: it ties with query 1
    rr = reciprocal_ranks(pred, target, mode="groups", k=4)
    assert rr.tolist() == pytest.approx([1.0, (1 + 1 / 2) / 2, 1.0])
    # Shuffled: still Q = N // K queries, leftover rows unused; the draw depends only on the generator.
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    x, y = torch.randn(103, 5), torch.randn(103, 5)
    assert len(reciprocal_ranks(x, y, "groups", k=10, generator=g())) == 10
    assert mrr(x, y, "groups", k=10, generator=g()) == mrr(x, y, "groups", k=10, generator=g())


def test_block_size_does_not_change_the_result():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(300, 16, generator=g), torch.randn(300, 16, generator=g)
    ref = reciprocal_ranks(x, y)
    assert torch.equal(ref, reciprocal_ranks(x, y, max_block_elements=7 * 300))
    ref = reciprocal_ranks(x, y, "groups", k=20, generator=torch.Generator().manual_seed(0))
    small = reciprocal_ranks(x, y, "groups", k=20, generator=torch.Generator().manual_seed(0), max_block_elements=40)
    assert torch.equal(ref, small)


def test_evaluate_runs_protocol():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(200, 8, generator=g)
    pred = target + 1.0 * torch.randn(200, 8, generator=g)
    a = evaluate_runs(pred, target, n_runs=5, k=64, seed=1)
    assert a == evaluate_runs(pred, target, n_runs=5, k=64, seed=1)
    assert a["k"] == 64 and a["n_runs"] == 5 and a["n_presets"] == 200
    assert 0 < a["mrr_mean"] <= 1 and a["mrr_std"] > 0 and a["l1_mean"] > 0
    # Fewer presets than K: every run uses all of them, so the runs are identical.
    b = evaluate_runs(pred[:40], target[:40], n_runs=3, k=4096)
    assert b["k"] == 40 and b["mrr_std"] == pytest.approx(0.0, abs=1e-12) and b["l1_std"] == pytest.approx(0.0)
    assert b["mrr_mean"] == pytest.approx(mrr(pred[:40], target[:40]))
    perfect = evaluate_runs(target, target, n_runs=2, k=50)
    assert perfect["mrr_mean"] == pytest.approx(1.0) and perfect["l1_mean"] == 0.0


def test_bad_inputs_raise_config_errors():
    with pytest.raises(ConfigError, match=r"shape \(N, D\)"):
        mrr(torch.randn(5, 3), torch.randn(4, 3))
    with pytest.raises(ConfigError, match=r"K=8 candidates needs at least 8 presets, got 5"):
        mrr(torch.randn(5, 3), torch.randn(5, 3), mode="groups", k=8)
    with pytest.raises(ConfigError, match="unknown MRR mode"):
        mrr(torch.randn(5, 3), torch.randn(5, 3), mode="nope")  # type: ignore[arg-type]
