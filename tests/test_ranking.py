"""Sound-attribute ranking: group files, sweeps, the Spearman score, a real group end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from synthproxy.errors import ConfigError, SpecError
from synthproxy.pipeline.ranking import load_groups, rank_group, slug, spearman_scores, sweep_values
from synthproxy.report.ranking import summarize_ranking
from synthproxy.synths.spec import load_spec

DEXED = load_spec("config/synths/dexed.yaml")
AMSYNTH = load_spec("config/synths/amsynth.yaml")


def test_shipped_group_files_are_valid():
    for spec in (DEXED, AMSYNTH):
        groups = load_groups(f"config/ranking/{spec.name}.yaml", spec)
        assert len(groups) == 13
        assert {"envelope", "brightness", "pitch", "modulation"} <= {g.category for g in groups}
    assert "effects" in {g.category for g in load_groups("config/ranking/amsynth.yaml", AMSYNTH)}


def test_group_file_errors(tmp_path):
    bad = tmp_path / "g.yaml"
    bad.write_text("groups:\n  - {name: x, param: op9_level, category: pitch}\n")
    with pytest.raises(SpecError, match="'op9_level' is not a parameter of dexed"):
        load_groups(bad, DEXED)
    bad.write_text("groups:\n  - {name: x, param: feedback, colour: red}\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        load_groups(bad, DEXED)


def test_sweeps_are_monotone_and_bipolar_sweeps_stay_on_one_side():
    groups = {g.param: g for g in load_groups("config/ranking/amsynth.yaml", AMSYNTH)}
    v = sweep_values(AMSYNTH, groups["amp_attack"], 20, 0)
    assert len(v) == 20 and np.all(np.diff(v) > 0)
    low, high = (sweep_values(AMSYNTH, groups["filter_env_amount"], 20, j) for j in (0, 1))
    assert low.max() <= 0.5 <= high.min() and np.all(np.diff(low) > 0) and np.all(np.diff(high) > 0)
    fb = sweep_values(DEXED, {g.param: g for g in load_groups("config/ranking/dexed.yaml", DEXED)}["feedback"], 20, 0)
    assert len(fb) == 8  # a discretised parameter sweeps its own values


def test_spearman_scores():
    ordered = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 4))
    assert spearman_scores(ordered) == pytest.approx((1.0, 1.0))
    shuffled = ordered[[0, 5, 2, 7, 4, 1, 6, 3, 8, 9]]
    assert spearman_scores(shuffled)[0] < 0.8


@pytest.mark.parametrize("steps", [5, 20])
def test_noise_representation_scores_zero_and_a_perfect_one_scores_one(steps):
    """The official score leaves the anchor out: noise scores ~0 (the anchor kept: exactly 3 / (steps + 1))."""
    rng = np.random.default_rng(0)
    draws = [spearman_scores(rng.normal(size=(steps, 32))) for _ in range(1500)]
    kept = [spearman_scores(rng.normal(size=(steps, 32)), exclude_anchor=False) for _ in range(1500)]
    assert np.mean(draws) == pytest.approx(0.0, abs=0.03)
    assert np.mean(kept) == pytest.approx(3 / (steps + 1), abs=0.03)
    monotone = np.cumsum(rng.uniform(0.1, 1.0, size=(steps, 8)), axis=0)  # every feature grows along the sweep
    assert spearman_scores(monotone) == pytest.approx((1.0, 1.0))


def test_rank_group_end_to_end_with_learned_and_missing_models(tmp_path):
    settings = {
        "render": {"note": 60, "velocity": 100, "note_duration": 2.0, "duration": 5.0, "block_size": 512,
                   "rms_min": 0.01, "rms_max": 1.0, "max_attempts": 64},
        "seed": 1, "presets_per_group": 2, "steps": 4, "reductions": ["nop", "avg"],
        "representations": [
            {"name": "mel128"},
            {"name": "mn04", "label": "mn04 (random weights)", "options": {"random_weights": True}},
            {"name": "mn20", "options": {"cache_dir": str(tmp_path / "empty"), "allow_download": False}},
        ],
    }
    out = tmp_path / "r"
    df = rank_group(DEXED, None, "config/ranking/dexed.yaml", "op2_output_level", settings,
                    out / "g.csv", out / "g.json")
    side = json.loads((out / "g.json").read_text())
    assert "mn20" in side["skipped"] and "mn20_as_mAP_478.pt" in side["skipped"]["mn20"]
    assert side["evaluated"] == ["mel128", "mn04 (random weights)"]
    assert len(df) == 2 * 2 * 2 * 2  # presets x representations x reductions x anchors
    assert df["spearman"].between(-1, 1).all()
    assert set(df[df["representation"] == "mn04 (random weights)"]["dim"]) == {192, 192 * 101}
    # modulator level sweeps brightness: the mel spectrogram should order them well
    assert df[df["representation"] == "mel128"]["spearman"].mean() > 0.5

    table = summarize_ranking([out / "g.csv"], [out / "g.json"], tmp_path / "t" / "ranking_dexed", tmp_path / "f.png")
    assert list(table["parameter"]) == ["op2 output level", "overall"]
    assert (tmp_path / "f.png").stat().st_size > 10_000
    md = (tmp_path / "t" / "ranking_dexed.md").read_text()
    assert "Skipped: mn20" in md and "**" in md
    assert pd.read_csv(tmp_path / "t" / "ranking_dexed.csv").shape[0] == 2
    assert slug("LFO rate (Hz)") == "lfo_rate__hz"
