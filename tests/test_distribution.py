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
