"""Paper-2 tables (Tables II-IX analogs), effect use, and the proxy-gradient table.

* ``ddsp_in_domain.*`` / ``ddsp_out_of_domain.*``: rows variant × strategy (and the Conv2D baseline), columns LSD,
  MCD, loudness L1 (and parameter L1 in-domain); best per variant in bold; f0 variants name their pitch tracker;
* ``ddsp_effects.*`` + figure: the predicted chorus and reverb parameters of each strategy on out-of-domain
  sounds, and how often each effect is used;
* ``proxy_gradients.*`` + figure: how the proxy's embedding-loss gradients compare with the exact ones, and the
  match quality of estimators trained through either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthproxy.report.tables import write_table

METRICS = ("lsd", "mcd", "loudness", "param_l1")
LABELS = {"lsd": "LSD", "mcd": "MCD", "loudness": "loudness L1", "param_l1": "param L1"}


def _rows(results: list[dict[str, Any]], section: str) -> pd.DataFrame:
    rows = []
    for r in results:
        if section not in r:
            continue
        tracker = f" (f0: {r['pitch_tracker']})" if r.get("pitch_tracker") else ""
        row = {"variant": r["variant"] + tracker, "strategy": r["model"]}
        for m in METRICS:
            if m in r[section]:
                row[m] = r[section][m]["mean"]
                row[f"{m}_std"] = r[section][m].get("std", float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def _write(long: pd.DataFrame, out_prefix: Path, caption: str) -> pd.DataFrame:
    cols = [m for m in METRICS if m in long.columns]
    shown = long[["variant", "strategy"]].copy()
    bold: dict[str, set[int]] = {}
    for m in cols:
        label = LABELS[m]
        shown[label] = [f"{v:.3f} ± {s:.3f}" if np.isfinite(s) else (f"{v:.4f}" if np.isfinite(v) else "")
                        for v, s in zip(long[m], long.get(f"{m}_std", np.nan * long[m]), strict=True)]
        bold[label] = {int(long.loc[idx, m].idxmin())
                       for _, idx in long.groupby("variant").groups.items() if long.loc[idx, m].notna().any()}
    write_table(shown, out_prefix, caption, bold=bold, csv=long)
    return shown


def ddsp_tables(score_files: list[Path], out_dir: Path) -> None:
    """The in-domain and out-of-domain tables and the effect-use table and figure."""
    results = [json.loads(Path(p).read_text()) for p in score_files]
    common = ("Estimators of the differentiable synth (paper 2): strategies P-loss (parameter loss), Synth (ramp to "
              "the spectral loss, in-domain), Real (then out-of-domain sounds), Mixed (both losses, alternating "
              "in-domain and out-of-domain batches), and the Conv2D baseline (P-loss); lower is better, best per "
              "variant in bold. LSD: log-spectral distance (dB); MCD: mel-cepstral distortion (dB, DTW-aligned); "
              "loudness: A-weighted loudness L1 (dB).")
    _write(_rows(results, "in_domain"), out_dir / "ddsp_in_domain",
           f"Differentiable-synth sound matching on in-domain sounds (test split). {common} param L1: mean absolute "
           "error of the normalised parameters.")
    _write(_rows(results, "out_of_domain"), out_dir / "ddsp_out_of_domain",
           f"Differentiable-synth sound matching on out-of-domain sounds (NSynth-style test notes). {common}")
    from synthproxy.report.ddsp import effects_figure

    effects = effect_frame(results)
    if effects.empty:
        write_table(pd.DataFrame({"note": ["no variant with effects was evaluated out of domain"]}),
                    out_dir / "ddsp_effects", "Effect use on out-of-domain sounds.")
        _blank_figure(out_dir / "ddsp_effects.png", "no variant with effects was evaluated out of domain")
        return
    write_table(effect_table(effects), out_dir / "ddsp_effects",
                "Effect use on out-of-domain sounds: median predicted chorus delay (ms) and mix, reverb gain and decay "
                "(1/s) of each estimator, and the share of sounds where the chorus (mix > 0.1) or the reverb (gain > "
                "0.01) is used. Paper 2's question: does Mixed keep using the chorus where Real abandons it?")
    effects_figure(effects, out_dir / "ddsp_effects.png")


def effect_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Long frame of the out-of-domain effect predictions (``strategy`` = ``variant/model``, ``param``, ``value``
    unit control, ``physical`` value, ``physical_unit``), as the evaluations recorded them."""
    frames = []
    for r in results:
        label = f"{r['variant']}/{r['model']}"
        for param, v in r.get("effects", {}).items():
            frames.append(pd.DataFrame({"strategy": label, "sound": np.arange(len(v["value"])), "param": param,
                                        "value": v["value"], "physical": v["physical"], "physical_unit": v["unit"]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def effect_table(effects: pd.DataFrame) -> pd.DataFrame:
    from synthproxy.report.ddsp import effects_summary

    out = effects_summary(effects)
    split = out["strategy"].str.split("/", n=1, expand=True)
    out.insert(0, "variant", split[0])
    out["strategy"] = split[1]
    return out.round(4)


def _blank_figure(path: Path, text: str) -> None:
    from synthproxy.report.figures import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(4, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    save_figure(fig, path, dpi=100)


def proxy_gradients_table(gradients_csv: Path, scores: list[Path], out_prefix: Path, figure: Path) -> pd.DataFrame:
    """Two tables and a figure: gradient agreement by distance to the target (the study's summary,
    ``<csv stem>.summary.csv``) at ``out_prefix``, and match quality through the proxy vs through the exact
    embedding loss at ``<out_prefix>_matching``."""
    from synthproxy.report.ddsp import gradients_figure

    df = pd.read_csv(gradients_csv)
    summary = pd.read_csv(Path(gradients_csv).with_suffix(".summary.csv"))
    shown = pd.DataFrame({
        "radius (L∞)": summary["group"].astype(str), "pairs": summary["n"].astype(int),
        "distance L∞": summary["distance_linf_mean"].round(3), "cosine": summary["cosine"],
        "sign agreement": summary["sign_agreement"], "exact loss": summary["loss_exact_mean"].round(3)})
    write_table(shown, out_prefix, "Proxy-gradient fidelity on the DDSP FX-Env synth: for held-out presets x and "
                "targets at L∞ radius r (inf: another test preset), the gradient of L1(embedding(x), target) w.r.t. "
                "the preset through the proxy against the exact one through synth + the same representation: cosine "
                "similarity and sign agreement (parameters with a non-negligible exact gradient), mean ± std over "
                "pairs.", csv=summary)
    rows = []
    for r in (json.loads(Path(p).read_text()) for p in scores):
        for section in ("in_domain", "out_of_domain"):
            if section in r:
                rows.append({"estimator": r["model"], "embedding loss": r.get("embedding") or "-",
                             "set": section.replace("_", " "),
                             **{LABELS[m]: round(r[section][m]["mean"], 4) for m in METRICS if m in r[section]}})
    match = pd.DataFrame(rows)
    bold = {}
    for col in [LABELS[m] for m in METRICS if LABELS[m] in match.columns]:
        bold[col] = {int(match.loc[idx, col].idxmin()) for _, idx in match.groupby("set").groups.items()
                     if match.loc[idx, col].notna().any()}
    write_table(match.fillna(""), Path(f"{out_prefix}_matching"),
                "What a proxy costs where the truth is known: FX-Env estimators trained with the embedding loss "
                "through the frozen proxy (proxy_emb) or through the synth and the representation (exact_emb), same "
                "schedule; lower is better, best per set in bold.", bold=bold, csv=match)
    gradients_figure(df, figure)
    return shown
