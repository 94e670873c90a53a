"""UMAP figure and Wasserstein table of synthetic vs hand-crafted presets (paper Fig. 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthproxy.pipeline.dataset import DatasetPlan, finalize_split, init_store, render_shard
from synthproxy.pipeline.distribution import compare, wasserstein, wasserstein_repeats
from synthproxy.pipeline.handcrafted import (
    HandcraftedPlan,
    finalize_handcrafted,
    import_handcrafted,
    render_handcrafted_shard,
)
from synthproxy.report.distribution import distribution_outputs

from .test_handcrafted import _cfg, needs_cart


def test_wasserstein_basics():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    assert wasserstein(a, a) == pytest.approx(0.0, abs=1e-9)
    assert wasserstein(a, a + np.array([3.0, 0, 0])) == pytest.approx(3.0, rel=1e-6)  # a pure shift moves by 3
    r = wasserstein_repeats(a, a + 5.0, n=20, repeats=3, seed=0)
    assert r["w_mean"] > 5 * r["w_ref_mean"] and r["n"] == 20


def test_w1_of_a_set_and_its_translate_is_the_length_of_the_shift():
    """Jensen gives W1 >= |mean(b) - mean(a)| = |v| and moving every point by v costs |v|: W1 = |v|, exactly."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(60, 5))
    v = np.array([0.3, -1.2, 0.5, 2.0, -0.7])
    b = (a + v)[rng.permutation(60)]  # point order does not matter
    assert wasserstein(a, b) == pytest.approx(np.linalg.norm(v), rel=1e-7)  # sqrt(6.27) = 2.504, not 6.27
    assert wasserstein(b, a) == pytest.approx(np.linalg.norm(v), rel=1e-7)


def test_w1_small_cases_worked_out_by_hand():
    # two points each: every matching costs 1 + sqrt(2), each point carrying mass 1/2
    a, b = np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
    assert wasserstein(a, b) == pytest.approx((1 + np.sqrt(2)) / 2, rel=1e-9)
    # 1-D, 3 vs 2 points: W1 = integral of |F_a - F_b| = 1/3 + 2/3 + 1/6 + 2 * 1/2 = 13/6
    assert wasserstein(np.array([[0.0], [1.0], [3.0]]), np.array([[2.0], [5.0]])) == pytest.approx(13 / 6, rel=1e-9)


def test_w1_in_one_dimension_is_the_area_between_the_cdfs():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=37), rng.exponential(size=23) + 0.5
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid[:-1], side="right") / len(b)
    area = float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))
    assert wasserstein(a[:, None], b[:, None]) == pytest.approx(area, rel=1e-9)
    same_size = rng.normal(size=23)  # equal sizes: the mean gap between sorted values
    expected = np.abs(np.sort(same_size) - np.sort(b)).mean()
    assert wasserstein(same_size[:, None], b[:, None]) == pytest.approx(expected, rel=1e-9)


def test_wasserstein_repeats_known_values():
    """A synthetic set of one repeated point vs that point moved by v: W1 = |v| in every repeat, reference 0."""
    v = np.array([3.0, -4.0, 12.0])  # |v| = 13
    syn, hc = np.zeros((40, 3)), np.zeros((25, 3)) + v
    r = wasserstein_repeats(syn, hc, n=30, repeats=4, seed=0)
    assert r["n"] == 20  # at most half the synthetic set (two disjoint halves) and all of the hand-crafted one
    assert r["w_mean"] == pytest.approx(13.0, rel=1e-9) and r["w_std"] == pytest.approx(0.0, abs=1e-9)
    assert r["w_ref_mean"] == pytest.approx(0.0, abs=1e-9) and r["w_ref_std"] == pytest.approx(0.0, abs=1e-9)


@needs_cart
def test_compare_writes_table_figure_and_points(tmp_path):
    cfg = _cfg()
    plan = DatasetPlan(cfg, "dexed", "train")
    syn = tmp_path / "train.zarr"
    init_store(plan, syn, tmp_path / "i.json")
    markers = [tmp_path / f"m{s}.json" for s in range(plan.n_shards)]
    for s, m in enumerate(markers):
        render_shard(plan, syn, s, m)
    finalize_split(plan, syn, markers, tmp_path / "stats.json")
    hplan = HandcraftedPlan(cfg, "dexed")
    hc = tmp_path / "hc.zarr"
    import_handcrafted(hplan, hc, tmp_path / "imp.json")
    hm = [tmp_path / f"h{s}.json" for s in range(2)]
    for s, m in enumerate(hm):
        render_handcrafted_shard(hplan, hc, s, m)
    finalize_handcrafted(hplan, hc, tmp_path / "imp.json", hm, tmp_path / "hstats.json")

    settings = {"seed": 0, "umap_samples": 20, "umap_neighbors": 5, "umap_min_dist": 0.1, "wasserstein_samples": 10,
                "repeats": 2}
    table, pts = compare({"dexed": (syn, hc)}, "mel128_avg", settings)
    distribution_outputs(table, pts, "mel128_avg", settings, tmp_path / "w", tmp_path / "umap.png",
                         tmp_path / "points.csv")
    assert list(table["space"]) == ["embedding (mel128_avg, 128 dims)", "UMAP 2-D projection"]
    assert "ground metric: Euclidean" in (tmp_path / "w.md").read_text()
    assert (tmp_path / "umap.png").stat().st_size > 10_000
    points = pd.read_csv(tmp_path / "points.csv")
    assert set(points["set"]) == {"synthetic", "hand-crafted"} and np.isfinite(points[["umap_1", "umap_2"]]).all().all()
