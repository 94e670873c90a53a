"""The whole DAG on config/tiny.yaml, run by Snakemake in a scratch directory (a few minutes)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from .conftest import REPO, shared_data


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    work = root / "main"  # the tiny config reads ../shared/data, as on a fresh clone beside ../shared
    work.mkdir()
    (root / "shared").symlink_to(shared_data().parent)
    (work / "config").symlink_to(REPO / "config")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", "2", "results/tables", "--configfile", "config/tiny.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, cmd


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
        assert "mn04" in (tables / f"ranking_{synth}.md").read_text()  # skipped without weights, and says why
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
    assert len(synthetic) == len(tiny["training"]["archs"])
    for synth in tiny["synths"]:
        mrr = synthetic[f"{synth} MRR ↑"].str.split(" ± ").str[0].astype(float)
        assert ((mrr > 0) & (mrr <= 1)).all()
    assert "**" in (tables / "synthetic.md").read_text() and r"\textbf" in (tables / "synthetic.tex").read_text()
    params = pd.read_csv(tables / "encoder_parameters.csv")
    assert params["dexed (Table 2 sizes, M)"].tolist() == pytest.approx([4.88, 6.17, 6.01, 7.07, 4.82], abs=0.01)
    assert (tables / "training_curves.png").stat().st_size > 10_000
    hpo = pd.read_csv(tables / "hpo.csv")
    assert len(hpo) == len(tiny["synths"]) * len(tiny["training"]["archs"]) and (hpo["trials"] == 2).all()
    hand = pd.read_csv(tables / "handcrafted.csv")
    assert len(hand) == 5 and any("ΔMRR" in c for c in hand.columns)


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
