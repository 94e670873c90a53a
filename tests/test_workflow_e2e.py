"""The whole DAG on config/tiny.yaml, run by Snakemake in a scratch directory (a few minutes)."""

from __future__ import annotations

import subprocess
import sys

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
        # trained encoders rank amSynth sounds far better than chance (random MRR = H_K / K; an untrained encoder
        # scores ~1x): 1.4x on average in both directions. The tiny run trains for seconds, and its barely
        # trained preset embeddings crowd together, which hurts preset -> audio more (hub candidates), so
        # every encoder is held to 1.25x in the audio -> preset direction only.
        amsynth = synthetic[synthetic["synth"] == "amsynth"][f"mrr_{direction}_mean"]
        assert amsynth.mean() > 1.4 * random_mrr(k), (direction, amsynth.tolist())
        if direction == "audio_to_preset":
            assert (amsynth > 1.25 * random_mrr(k)).all(), amsynth.tolist()
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


@pytest.mark.e2e
def test_tiny_workflow_matches_sounds_with_proxies(tiny_run):
    """Tables 5-6 analogs: every synth x schedule x relaxation judged on the real synth, in and out of domain;
    the listening page links files that exist; the finetuning table has before/after for each synth."""
    import re

    work, _ = tiny_run
    tables = work / "results" / "tables"
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    synths = list(tiny["matching"]["synths"])
    models = {("ploss", "-"), ("mix", "hard"), ("mix", "soft"), ("switch", "hard"), ("switch", "soft")}
    for name, extra in (("matching_in_domain", ["num_l1", "cat_acc", "bin_acc"]), ("matching_out_of_domain", [])):
        table = pd.read_csv(tables / f"{name}.csv")
        for synth in synths:
            part = table[table["synth"] == synth]
            assert set(zip(part["schedule"], part["relaxation"], strict=True)) == models, (name, synth)
        for metric in ["stft", "mstft", "mel", "mfccd"]:
            assert (table[metric] > 0).all() and table[metric].notna().all(), (name, metric)
        for metric in extra:
            assert metric in table.columns
        md = (tables / f"{name}.md").read_text()
        assert "| stft | mstft | mel | mfccd |" in md and "**" in md
        assert r"\textbf" in (tables / f"{name}.tex").read_text()
    acc = pd.read_csv(tables / "matching_in_domain.csv")
    assert ((acc["cat_acc"] >= 0) & (acc["cat_acc"] <= 1)).all()
    html = (tables / "matching_examples.html").read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sum(link.endswith(".wav") for link in links) >= 2 * len(synths) * (len(models) + 1)
    for link in links:
        assert not link.startswith(("http:", "https:", "/")) and (tables / link).is_file(), link
    fine = pd.read_csv(tables / "proxy_finetune.csv")
    assert set(fine["synth"]) == set(synths)


@pytest.mark.e2e
def test_tiny_workflow_runs_the_ddsp_stage(tiny_run):
    work, _ = tiny_run
    tables = work / "results" / "tables"
    tiny = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    variants = tiny["ddsp"]["variants"]
    expected = {"fx_env": {"ploss", "synth", "real", "mixed", "conv2d", "proxy_emb", "exact_emb"},
                "raw": {"ploss", "synth", "real", "mixed"}}
    for name in ("ddsp_in_domain", "ddsp_out_of_domain"):
        table = pd.read_csv(tables / f"{name}.csv")
        for v in variants:
            assert set(table.loc[table["variant"] == v, "strategy"]) == expected[v], (name, v)
        for metric in ("lsd", "mcd", "loudness"):
            assert (table[metric] > 0).all() and table[metric].notna().all(), (name, metric)
    assert pd.read_csv(tables / "ddsp_in_domain.csv")["param_l1"].between(0, 1).all()
    effects = pd.read_csv(tables / "ddsp_effects.csv")
    assert set(effects["strategy"]) == expected["fx_env"] and effects["chorus_used"].between(0, 1).all()
    bench = pd.read_csv(tables / "ddsp_benchmark.csv")
    assert len(bench) == 25 and bench["right_fraction"].between(0, 1).all()
    grads = pd.read_csv(tables / "proxy_gradients.csv")
    assert {"all", *(f"{r:g}" for r in tiny["ddsp"]["proxy"]["radii"])} == set(grads["group"].astype(str))
    assert grads["cosine_mean"].between(-1, 1).all() and grads["sign_mean"].between(0, 1).all()
    match = pd.read_csv(tables / "proxy_gradients_matching.csv")
    assert set(match["estimator"]) == {"proxy_emb", "exact_emb"}
    for png in ("ddsp_benchmark.png", "ddsp_effects.png", "proxy_gradients.png"):
        assert (tables / png).stat().st_size > 10_000, png


@pytest.mark.e2e
def test_match_tool_turns_a_wav_into_files_the_real_synths_load(tiny_run, tmp_path):
    """`synthproxy match` with the tiny run's estimators: a 44.1 kHz stereo 24-bit WAV in, a 163-byte DX7 voice
    that dexed-py loads (and an amSynth bank) out, each with a preview rendered from the written file."""
    import numpy as np
    import soundfile as sf

    work, _ = tiny_run
    t = np.arange(int(44100 * 3.0)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-t)
    sf.write(tmp_path / "in.wav", np.stack([tone, 0.5 * tone], axis=1), 44100, subtype="PCM_24")
    for synth, out in (("dexed", "voice.syx"), ("amsynth", "patch.bank")):
        proc = subprocess.run([sys.executable, "-m", "synthproxy", "match", str(tmp_path / "in.wav"), "--synth", synth,
                               "--out", str(tmp_path / out), "--results", "results", "--config", "config/tiny.yaml"],
                              cwd=work, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "distances to the input" in proc.stdout
        preview, rate = sf.read(tmp_path / (out.split(".")[0] + ".preview.wav"))
        assert rate > 0 and np.isfinite(preview).all() and np.abs(preview).max() > 0
    data = (tmp_path / "voice.syx").read_bytes()
    assert len(data) == 163 and data[:6] == bytes([0xF0, 0x43, 0x00, 0x00, 0x01, 0x1B]) and data[-1] == 0xF7
    from dexed import Patch

    patch = Patch.from_sysex(data[6:161] + b"\x3f")  # dexed-py reads the 155 VCED bytes (+ operator-on mask)
    assert 0 <= patch.algorithm < 32 and patch.name.strip()
    assert (tmp_path / "patch.bank").read_text().startswith("amSynth")
    missing = subprocess.run([sys.executable, "-m", "synthproxy", "match", str(tmp_path / "in.wav"), "--synth",
                              "dexed", "--out", str(tmp_path / "x.syx"), "--results", str(tmp_path / "none"),
                              "--config", "config/tiny.yaml"], cwd=work, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "snakemake" in missing.stderr and "Traceback" not in missing.stderr
