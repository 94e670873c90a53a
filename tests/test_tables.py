"""Table writers by value: Markdown and LaTeX text, bold cells, escaping, and Table 3/4 numbers from known scores."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from synthproxy.report.encoders import SCORES, handcrafted_table, synthetic_table
from synthproxy.report.tables import to_latex, to_markdown, write_table


def _df() -> pd.DataFrame:
    return pd.DataFrame({"encoder": ["MLP-OH", "HN_OH & co"], "L1": ["0.1000 ± 0.0100", "0.2000 ± 0.0200"],
                         "n": [3, 12345], "x": [0.123456, 12345.678]})


def test_markdown_table_text_and_bold_cells() -> None:
    md = to_markdown(_df(), bold={"L1": {0}, "n": {1}})
    assert md == (
        "| encoder | L1 | n | x |\n"
        "|---|---|---|---|\n"
        "| MLP-OH | **0.1000 ± 0.0100** | 3 | 0.1235 |\n"  # floats: 4 significant digits
        "| HN_OH & co | 0.2000 ± 0.0200 | **12345** | 1.235e+04 |\n"
    )
    assert to_markdown(_df()).count("**") == 0


def test_latex_table_escapes_special_characters_and_writes_pm() -> None:
    df = _df()
    df["note"] = ["50% of a_b", "#1 \\ x"]
    tex = to_latex(df, caption="Scores & 10% of a_b, #2 \\ end", label="tab:t", bold={"x": {1}, "L1": {0}})
    assert tex == (
        "\\begin{table}[t]\n"
        "\\centering\n"
        "\\caption{Scores \\& 10\\% of a\\_b, \\#2 \\textbackslash{} end}\n"
        "\\label{tab:t}\n"
        "\\begin{tabular}{llrrl}\n"  # text columns left, numbers right
        "\\toprule\n"
        "encoder & L1 & n & x & note \\\\\n"
        "\\midrule\n"
        "MLP-OH & \\textbf{0.1000 $\\pm$ 0.0100} & 3 & 0.1235 & 50\\% of a\\_b \\\\\n"
        "HN\\_OH \\& co & 0.2000 $\\pm$ 0.0200 & 12345 & \\textbf{1.235e+04} & \\#1 \\textbackslash{} x \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
        "\\end{table}\n"
    )


def test_latex_escapes_a_backslash_before_the_characters_it_introduces() -> None:
    """``\\&`` in the input is a backslash then an ampersand: both escaped, not read as an escape sequence."""
    tex = to_latex(pd.DataFrame({"a": ["x\\&y_z"]}), caption="c", label="tab:c")
    assert "x\\textbackslash{}\\&y\\_z \\\\" in tex.splitlines()


def test_write_table_writes_each_format_and_a_separate_csv(tmp_path: Path) -> None:
    df = _df()
    long = pd.DataFrame({"encoder": ["MLP-OH", "HN-OH"], "l1_mean": [0.1, 0.2], "l1_std": [0.01, 0.02]})
    paths = write_table(df, tmp_path / "sub" / "t", "A caption.", bold={"n": {0}}, csv=long)
    assert [p.name for p in paths] == ["t.csv", "t.md", "t.tex"]
    assert (tmp_path / "sub" / "t.csv").read_text() == "encoder,l1_mean,l1_std\nMLP-OH,0.1,0.01\nHN-OH,0.2,0.02\n"
    assert (tmp_path / "sub" / "t.md").read_text() == "A caption.\n\n" + to_markdown(df, {"n": {0}})
    assert (tmp_path / "sub" / "t.tex").read_text() == to_latex(df, "A caption.", "tab:t", {"n": {0}})
    with pytest.raises(ValueError, match="unknown table format html"):
        write_table(df, tmp_path / "t", "c", formats=("html",))


# ----------------------------------------------------------------------------------------------------
# Tables 3 and 4 from hand-made scores
# ----------------------------------------------------------------------------------------------------
MRR_A2P, MRR_P2A, L1 = "mrr_audio_to_preset", "mrr_preset_to_audio", "l1"
# (synth, arch) -> {metric: mean}; hand-crafted values chosen so every relative difference is a round number
SYNTHETIC = {("dexed", "mlp_oh"): {MRR_A2P: 0.40, MRR_P2A: 0.50, L1: 0.25},
             ("dexed", "hn_oh"): {MRR_A2P: 0.50, MRR_P2A: 0.80, L1: 0.20},
             ("amsynth", "tfm"): {MRR_A2P: 0.25, MRR_P2A: 0.30, L1: 0.10}}
HAND = {("dexed", "mlp_oh"): {MRR_A2P: 0.30, MRR_P2A: 0.45, L1: 0.22},
        ("dexed", "hn_oh"): {MRR_A2P: 0.40, MRR_P2A: 0.60, L1: 0.25},
        ("amsynth", "tfm"): {MRR_A2P: 0.30, MRR_P2A: 0.15, L1: 0.125}}
# 100 * (hand / synthetic - 1), worked out by hand
DELTA = {("dexed", "mlp_oh"): {MRR_A2P: -25.0, MRR_P2A: -10.0, L1: -12.0},
         ("dexed", "hn_oh"): {MRR_A2P: -20.0, MRR_P2A: -25.0, L1: +25.0},
         ("amsynth", "tfm"): {MRR_A2P: +20.0, MRR_P2A: -50.0, L1: +25.0}}


def _write_scores(folder: Path, values: dict, n_presets: dict[str, int]) -> list[Path]:
    paths = []
    for (synth, arch), means in reversed(list(values.items())):  # file order must not matter
        data = {"synth": synth, "arch": arch, "n_presets": n_presets[synth], "n_runs": 5, "k": 32,
                "embedding": "mel128_avg"}
        for metric, mean in means.items():
            data |= {f"{metric}_mean": mean, f"{metric}_std": mean / 10}
        path = folder / f"{synth}_{arch}.json"
        path.write_text(json.dumps(data))
        paths.append(path)
    return paths


@pytest.fixture
def scores(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    assert tuple(SCORES) == (MRR_A2P, MRR_P2A, L1), "the score keys changed: update the hand-made scores"
    (tmp_path / "syn").mkdir()
    (tmp_path / "hand").mkdir()
    return (_write_scores(tmp_path / "hand", HAND, {"dexed": 64, "amsynth": 26}),
            _write_scores(tmp_path / "syn", SYNTHETIC, {"dexed": 4096, "amsynth": 4096}))


def test_handcrafted_table_relative_differences_and_bold(tmp_path: Path, scores) -> None:
    hand, synthetic = scores
    table = handcrafted_table(hand, synthetic, tmp_path / "hc")
    assert list(table["encoder"]) == ["MLP-OH", "HN-OH", "TFM"]  # the architectures' order, not the files'

    long = pd.read_csv(tmp_path / "hc.csv")
    for (synth, arch), deltas in DELTA.items():
        row = long[(long["synth"] == synth) & (long["encoder"] == {"mlp_oh": "MLP-OH", "hn_oh": "HN-OH",
                                                                     "tfm": "TFM"}[arch])]
        assert len(row) == 1
        for metric, delta in deltas.items():
            assert float(row[f"{metric}_delta_pct"].iloc[0]) == pytest.approx(delta, abs=1e-9), (synth, arch, metric)
            assert float(row[f"{metric}_mean"].iloc[0]) == HAND[(synth, arch)][metric]
        assert int(row["n_presets"].iloc[0]) == {"dexed": 64, "amsynth": 26}[synth]

    md = (tmp_path / "hc.md").read_text().splitlines()
    header = [c.strip() for c in md[2].strip("|").split("|")]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in md[4:]}
    cell = {name: {enc: rows[enc][i] for enc in rows} for i, name in enumerate(header)}
    # Δ cells: one decimal and an explicit sign
    assert cell["dexed ΔMRR a→p %"] == {"MLP-OH": "-25.0", "HN-OH": "-20.0", "TFM": ""}
    assert cell["dexed ΔMRR p→a %"] == {"MLP-OH": "-10.0", "HN-OH": "-25.0", "TFM": ""}
    assert cell["dexed ΔL1 %"] == {"MLP-OH": "-12.0", "HN-OH": "+25.0", "TFM": ""}
    assert cell["amsynth ΔMRR a→p %"]["TFM"] == "+20.0" and cell["amsynth ΔL1 %"]["TFM"] == "+25.0"
    # bold: the best hand-crafted value per column (MRR highest, L1 lowest), not the best synthetic one
    assert cell["dexed MRR a→p ↑"] == {"MLP-OH": "0.3000 ± 0.0300", "HN-OH": "**0.4000 ± 0.0400**", "TFM": ""}
    assert cell["dexed MRR p→a ↑"]["HN-OH"] == "**0.6000 ± 0.0600**"
    assert cell["dexed L1 ↓"] == {"MLP-OH": "**0.2200 ± 0.0220**", "HN-OH": "0.2500 ± 0.0250", "TFM": ""}
    assert cell["amsynth L1 ↓"]["TFM"] == "**0.1250 ± 0.0125**"
    assert sum(c.count("**") for r in rows.values() for c in r) == 2 * 6  # one bold cell per score column
    assert "(amsynth: 26, dexed: 64 presets)" in md[0]


def test_synthetic_table_bolds_the_best_encoder_per_synth_and_score(tmp_path: Path, scores) -> None:
    _, synthetic = scores
    synthetic_table(synthetic, tmp_path / "syn")
    md = (tmp_path / "syn.md").read_text().splitlines()
    header = [c.strip() for c in md[2].strip("|").split("|")]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in md[4:]}
    bold = {(header[i], enc) for enc, cells in rows.items() for i, c in enumerate(cells) if c.startswith("**")}
    assert bold == {("dexed MRR a→p ↑", "HN-OH"), ("dexed MRR p→a ↑", "HN-OH"), ("dexed L1 ↓", "HN-OH"),
                    ("amsynth MRR a→p ↑", "TFM"), ("amsynth MRR p→a ↑", "TFM"), ("amsynth L1 ↓", "TFM")}
    assert rows["MLP-OH"][header.index("dexed L1 ↓")] == "0.2500 ± 0.0250"
    tex = (tmp_path / "syn.tex").read_text()
    assert "\\textbf{0.5000 $\\pm$ 0.0500}" in tex and "5 runs of K = Q = 32 presets" in tex
