"""Tables and figures of the preset-encoder stage: Table 3 (synthetic presets), Table 4 (hand-crafted
presets, with the relative difference to synthetic), parameter counts (Table 2) and training curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from synthproxy.nn.factory import ARCHITECTURES, PAPER_PARAMETER_COUNTS_M, build_encoder, count_parameters
from synthproxy.report.figures import pyplot, save_figure
from synthproxy.report.tables import write_table
from synthproxy.synths.spec import load_spec

ARCH_NAMES = {"mlp_oh": "MLP-OH", "hn_oh": "HN-OH", "hn_pt": "HN-PT", "hn_ptgru": "HN-PTGRU", "tfm": "TFM"}


def _pm(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


MRR_COLUMNS = {"audio_to_preset": "MRR a→p", "preset_to_audio": "MRR p→a"}
MRR_CAPTION = ("MRR a→p: each audio embedding is the query and the encoder's predictions are the candidates (the "
               "paper's Appendix 11.2); MRR p→a: each prediction is the query and the audio embeddings are the "
               "candidates (the official evaluation code behind the paper's Tables 3-4).")
SCORES = ("mrr_audio_to_preset", "mrr_preset_to_audio", "l1")


def _scores(paths: list[Path]) -> pd.DataFrame:
    return pd.DataFrame([json.loads(Path(p).read_text()) for p in paths])


def _long(df: pd.DataFrame, archs: list[str]) -> pd.DataFrame:
    """One row per (synth, encoder) with the numeric mean and std of every score."""
    cols = [f"{m}_{s}" for m in SCORES for s in ("mean", "std")] + [c for c in df.columns if c.endswith("_pct")]
    rows = []
    for synth in dict.fromkeys(df["synth"]):
        d = df[df["synth"] == synth].set_index("arch")
        rows += [{"synth": synth, "encoder": ARCH_NAMES[a], **{c: d.loc[a, c] for c in cols}} for a in archs
                 if a in d.index]
    return pd.DataFrame(rows)


def _wide(df: pd.DataFrame, archs: list[str], deltas: pd.DataFrame | None = None
          ) -> tuple[pd.DataFrame, dict[str, set[int]]]:
    """Encoders × (synth, score) as ``mean ± std``, best per column in bold; ``deltas``: Δ % columns."""
    table = pd.DataFrame({"encoder": [ARCH_NAMES[a] for a in archs]})
    bold: dict[str, set[int]] = {}
    for synth in dict.fromkeys(df["synth"]):
        d = df[df["synth"] == synth].set_index("arch")
        present = [a for a in archs if a in d.index]
        for metric in SCORES:
            name = f"{synth} {MRR_COLUMNS.get(metric.removeprefix('mrr_'), 'L1')} {'↓' if metric == 'l1' else '↑'}"
            table[name] = [_pm(d.loc[a, f"{metric}_mean"], d.loc[a, f"{metric}_std"]) if a in d.index else ""
                           for a in archs]
            pick = min if metric == "l1" else max
            bold[name] = {archs.index(pick(present, key=lambda a, m=metric: d.loc[a, f"{m}_mean"]))}
            if deltas is not None:
                dd = deltas[deltas["synth"] == synth].set_index("arch")
                table[f"{synth} Δ{name.split(' ', 1)[1][:-2]} %"] = [
                    f"{dd.loc[a, f'{metric}_delta_pct']:+.1f}" if a in dd.index else "" for a in archs]
    return table, bold


def synthetic_table(scores: list[Path], out_prefix: Path, caption_extra: str = "") -> pd.DataFrame:
    """Models × synths, MRR (both directions) and L1 mean ± std, best per synth in bold (the paper's Table 3)."""
    df = _scores(scores)
    archs = [a for a in ARCH_NAMES if a in set(df["arch"])]
    table, bold = _wide(df, archs)
    first = df.iloc[0]
    caption = (f"Preset encoders on synthetic test presets: MRR and mean L1 error, mean ± std over "
               f"{int(first['n_runs'])} runs of K = Q = {int(first['k'])} presets (paper Sec. 6.1.2); target "
               f"representation {first['embedding']}. {MRR_CAPTION} Best per synth in bold.{caption_extra}")
    write_table(table, out_prefix, caption, bold=bold, csv=_long(df, archs))
    return table


def handcrafted_table(hand: list[Path], synthetic: list[Path], out_prefix: Path) -> pd.DataFrame:
    """Table 4: encoders on hand-crafted presets, with the relative difference (Δ %) to synthetic results."""
    h = _scores(hand)
    s = _scores(synthetic).set_index(["synth", "arch"])
    archs = [a for a in ARCH_NAMES if a in set(h["arch"])]
    for metric in SCORES:
        h[f"{metric}_delta_pct"] = [100 * (r[f"{metric}_mean"] / s.loc[(r["synth"], r["arch"]), f"{metric}_mean"] - 1)
                                    for _, r in h.iterrows()]
    table, bold = _wide(h, archs, deltas=h)
    long = _long(h, archs)
    long["n_presets"] = [int(h[h["synth"] == syn]["n_presets"].iloc[0]) for syn in long["synth"]]
    first = h.iloc[0]
    n = ", ".join(f"{sy}: {int(x)}" for sy, x in h.groupby("synth")["n_presets"].first().items())
    caption = (f"Synthetic-trained preset encoders on hand-crafted presets ({n} presets): MRR and mean L1, mean ± "
               f"std over {int(first['n_runs'])} runs of K = Q = {int(first['k'])} presets (all presets when fewer); "
               f"Δ: relative difference to the same encoder on synthetic test presets. {MRR_CAPTION}")
    write_table(table, out_prefix, caption, bold=bold, csv=long)
    return table


def parameter_table(spec_paths: dict[str, str], trained: list[dict[str, Any]], out_prefix: Path) -> pd.DataFrame:
    """Encoder sizes: Table 2's hyperparameters on each synth's spec (and the paper's counts), plus the sizes of
    the models this config trained (``trained``: training summaries with synth, arch, n_params; they may be
    scaled down for CPU)."""
    torch.manual_seed(0)
    sizes: dict[str, dict[str, int]] = {}
    for s in trained:
        sizes.setdefault(s["synth"], {})[s["arch"]] = s["n_params"]
    rows = []
    for arch in ARCHITECTURES:
        row: dict[str, Any] = {"encoder": ARCH_NAMES[arch]}
        for synth, spec_path in spec_paths.items():
            layout = load_spec(spec_path).layout
            row[f"{synth} (Table 2 sizes, M)"] = round(count_parameters(build_encoder(arch, layout, 192)) / 1e6, 2)
            if synth in sizes and arch in sizes[synth]:
                row[f"{synth} (trained here, M)"] = round(sizes[synth][arch] / 1e6, 3)
        row["paper Dexed / Diva / TAL-NM (M)"] = " / ".join(
            str(PAPER_PARAMETER_COUNTS_M[s][arch]) for s in ("dexed", "diva", "talnm"))
        rows.append(row)
    table = pd.DataFrame(rows)
    write_table(table, out_prefix, "Preset encoder sizes: parameters with the paper's hyperparameters (Table 2, "
                "192-d output) on each synth's spec, and of the models trained by this config (output size of "
                "its training representation).")
    return table


def training_curves(histories: dict[tuple[str, str], Path], figure: Path) -> None:
    """Validation MRR and L1 per epoch, one panel per synth and metric, one line per encoder."""
    plt = pyplot()
    import seaborn as sns

    frames = []
    for (synth, arch), path in histories.items():
        h = pd.read_csv(path)
        frames.append(h.assign(synth=synth, encoder=ARCH_NAMES[arch]))
    df = pd.concat(frames, ignore_index=True)
    synths = list(dict.fromkeys(df["synth"]))
    metrics = [("val_mrr", "validation MRR"), ("val_l1", "validation L1"), ("train_l1", "training L1")]
    fig, axes = plt.subplots(len(synths), 3, figsize=(13, 3.4 * len(synths)), squeeze=False)
    for i, synth in enumerate(synths):
        for j, (col, label) in enumerate(metrics):
            ax = axes[i][j]
            sns.lineplot(data=df[df["synth"] == synth], x="epoch", y=col, hue="encoder", marker="o", markersize=3,
                         ax=ax, legend=(i == 0 and j == 0))
            ax.set_title(f"{synth}: {label}")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, figure, dpi=130)


def hpo_table(studies: list[Path], out_prefix: Path) -> pd.DataFrame:
    """Best trial of every HPO study (arch × synth); ``studies`` are ``<synth>/<arch>/best_params.json``."""
    if not studies:
        table = pd.DataFrame({"note": ["no HPO configured (training.hpo)"]})
        write_table(table, out_prefix, "Hyperparameter optimisation: not configured.")
        return table
    rows = []
    for p in studies:
        best = json.loads(Path(p).read_text())
        trials = pd.read_csv(Path(p).with_name("trials.csv"))
        rows.append({"synth": Path(p).parent.parent.name, "encoder": ARCH_NAMES[Path(p).parent.name],
                     "trials": len(trials), "best val MRR": round(float(best["best_value"]), 4),
                     "best parameters": json.dumps(best["best_params"], sort_keys=True)})
    table = pd.DataFrame(rows)
    write_table(table, out_prefix, "Hyperparameter optimisation (Optuna; scrambled-Sobol QMC start-up trials, then "
                "TPE; one epoch per trial; objective: validation MRR).")
    return table



def encoder_tables(scores: list[Path], summaries: list[Path], histories: list[Path], hpo: list[Path],
                   specs: dict[str, str], out_dir: Path) -> None:
    """Table 3 (synthetic), encoder sizes, HPO results and training curves into ``out_dir``.

    ``summaries`` and ``histories`` are ``results/models/<synth>/<arch>/{summary.json,history.csv}``.
    """
    trained = [json.loads(p.read_text()) | {"synth": p.parent.parent.name, "arch": p.parent.name} for p in summaries]
    print(synthetic_table(scores, out_dir / "synthetic").to_string(index=False))
    print(parameter_table(specs, trained, out_dir / "encoder_parameters").to_string(index=False))
    training_curves({(p.parent.parent.name, p.parent.name): p for p in histories}, out_dir / "training_curves.png")
    hpo_table(hpo, out_dir / "hpo")
