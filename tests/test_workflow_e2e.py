"""The whole DAG on config/tiny.yaml, run by Snakemake in a scratch directory (a few minutes)."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import yaml

from synthproxy.metrics.retrieval import random_mrr

from .conftest import REPO


def _md_agrees_with_csv(md_path, csv: pd.DataFrame) -> None:
    """Every "mean ± std" cell of the Markdown table is the CSV's mean and std, rounded to 4 digits."""
    lines = [ln for ln in md_path.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip().strip("*") for c in ln.strip("|").split("|")] for ln in lines[2:]]
    checked = 0
    for cells in rows:
        encoder = cells[0]
        for name, cell in zip(header[1:], cells[1:], strict=True):
            if " ± " not in cell:
                continue
            synth, label = name.split(" ", 1)
            metric = {"MRR a→p ↑": "mrr_audio_to_preset", "MRR p→a ↑": "mrr_preset_to_audio", "L1 ↓": "l1"}[label]
            ref = csv[(csv["synth"] == synth) & (csv["encoder"] == encoder)].iloc[0]
            mean, std = (float(x) for x in cell.split(" ± "))
            assert mean == pytest.approx(ref[f"{metric}_mean"], abs=5e-5) and std == pytest.approx(
                ref[f"{metric}_std"], abs=5e-5), (md_path.name, encoder, name)
            checked += 1
    assert checked >= len(csv) * 3


@pytest.mark.e2e
def test_tiny_workflow_writes_all_tables(tiny_run):
    work, _ = tiny_run
    tables = work / "results" / "tables"
    summary = pd.read_csv(tables / "dataset_summary.csv")
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    assert set(summary["synth"]) == set(tiny["synths"])
    assert len(summary) == len(tiny["synths"]) * len(tiny["dataset"]["splits"])
    for _, row in summary.iterrows():
        assert row["presets"] == tiny["dataset"]["splits"][row["split"]]["size"]
    for ext in ("md", "tex"):
        assert (tables / f"dataset_summary.{ext}").read_text().strip()
    assert "dataset_summary" in (tables / "README.md").read_text()
    assert (work / "logs" / "datasets" / "render_shard").is_dir()


@pytest.mark.e2e
def test_tiny_workflow_writes_ranking_tables_and_figures(tiny_run):
    work, _ = tiny_run
    tables = work / "results" / "tables"
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    for synth in tiny["ranking"]["synths"]:
        table = pd.read_csv(tables / f"ranking_{synth}.csv")
        assert len(table) == {"amsynth": 4, "dexed": 3}[synth]  # the tiny config's groups of each synth + overall
        assert table["parameter"].iloc[-1] == "overall"
        assert any(c.startswith("mel128 (") for c in table.columns)
        md = (tables / f"ranking_{synth}.md").read_text()
        # mn04 has no weights offline: the caption names it as skipped and says which file to provide
        assert "Skipped: mn04 (weights missing: put them at " in md and "mn04_as_mAP_432.pt" in md
        assert "anchor sound is left out" in md
        assert (tables / f"ranking_{synth}.png").stat().st_size > 10_000


@pytest.mark.e2e
def test_rerun_has_nothing_to_do(tiny_run):
    _work, cmd = tiny_run
    proc = subprocess.run([*cmd[:-2], "-n", *cmd[-2:]], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.e2e
def test_tiny_workflow_trains_and_evaluates_every_encoder(tiny_run):
    work, _ = tiny_run
    tables = work / "results" / "tables"
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    synthetic = pd.read_csv(tables / "synthetic.csv")
    assert len(synthetic) == len(tiny["training"]["archs"]) * len(tiny["synths"])
    k = tiny["training"]["evaluation"]["k"]
    for direction in ("audio_to_preset", "preset_to_audio"):
        mrr = synthetic[f"mrr_{direction}_mean"]
        assert ((mrr > 0) & (mrr <= 1)).all()
        # every trained encoder ranks amSynth presets far better than chance (random MRR = H_K / K)
        amsynth = synthetic[synthetic["synth"] == "amsynth"][f"mrr_{direction}_mean"]
        assert (amsynth > 1.5 * random_mrr(k)).all(), amsynth.tolist()
    _md_agrees_with_csv(tables / "synthetic.md", synthetic)
    text = (tables / "synthetic.md").read_text()
    assert "MRR a→p" in text and "MRR p→a" in text and "official evaluation code" in text
    assert "**" in text and r"\textbf" in (tables / "synthetic.tex").read_text()
    params = pd.read_csv(tables / "encoder_parameters.csv")
    assert params["dexed (Table 2 sizes, M)"].tolist() == pytest.approx([4.88, 6.17, 6.01, 7.07, 4.82], abs=0.01)
    assert (tables / "training_curves.png").stat().st_size > 10_000
    hpo = pd.read_csv(tables / "hpo.csv")
    assert len(hpo) == len(tiny["synths"]) * len(tiny["training"]["archs"]) and (hpo["trials"] == 2).all()
    hand = pd.read_csv(tables / "handcrafted.csv")
    assert len(hand) == 5 * 2 and {"mrr_preset_to_audio_delta_pct", "l1_delta_pct"} <= set(hand.columns)
    syn = synthetic.set_index(["synth", "encoder"])
    for _, row in hand.iterrows():  # Δ % recomputed from the two tables
        base = syn.loc[(row["synth"], row["encoder"]), "l1_mean"]
        assert row["l1_delta_pct"] == pytest.approx(100 * (row["l1_mean"] / base - 1), rel=1e-6)
    _md_agrees_with_csv(tables / "handcrafted.md", hand)


@pytest.mark.e2e
def test_tiny_workflow_imports_handcrafted_presets_and_compares_distributions(tiny_run):
    work, _ = tiny_run
    tables = work / "results" / "tables"
    counts = pd.read_csv(tables / "handcrafted_import.csv").set_index("step")
    assert int(counts.loc["kept", "dexed"]) > 0 and int(counts.loc["kept", "amsynth"]) > 0
    w = pd.read_csv(tables / "wasserstein.csv")
    assert set(w["synth"]) == {"dexed", "amsynth"} and len(w) == 4
    assert "ground metric: Euclidean" in (tables / "wasserstein.md").read_text()
    assert (tables / "umap.png").stat().st_size > 10_000
