"""Figures and tables of the DDSP (paper 2) analyses.

* :func:`benchmark_figure` — the synthetic benchmark (Masuda & Saito Sec. IV, Fig. 5) of
  :func:`synthproxy.matching.ddsp_benchmark.spectral_benchmark`: per parameter the loss curve over the sweep and the
  analytic gradient, the original value as a red line, the region where the gradient points toward it shaded;
* :func:`effects_figure` / :func:`effects_summary` — the chorus and reverb parameters that several strategies
  predict on out-of-domain sounds (frame of :func:`synthproxy.matching.ddsp_benchmark.parameter_frame`): does a
  strategy keep using an effect (paper 2: Mixed keeps the chorus where Real abandons it)?
* :func:`gradients_figure` — proxy-gradient fidelity (:func:`synthproxy.matching.gradients.gradient_comparison`):
  cosine and sign agreement against the distance to the target, and the cosine per parameter.

Figures are written with :func:`synthproxy.report.figures.save_figure` (headless, atomic PNG).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from synthproxy.errors import ConfigError
from synthproxy.metrics.agreement import parameter_cosine
from synthproxy.report.figures import pyplot, save_figure
from synthproxy.report.tables import write_table

__all__ = [
    "CHORUS_MIX_USED", "EFFECT_PARAMS", "REVERB_GAIN_USED", "benchmark_figure", "benchmark_table", "effects_figure",
    "effects_summary", "gradients_figure",
]

#: The effect parameters of the FX variants, in plotting order.
EFFECT_PARAMS = ("chorus_delay", "chorus_mix", "reverb_gain", "reverb_decay")
#: The chorus counts as used when its wet/dry mix exceeds 0.1 (the wet path then carries > 10 % of the signal).
CHORUS_MIX_USED = 0.1
#: The reverb counts as used when its physical gain exceeds 0.01 (unit control ≈ 0.25 on the power scale
#: ``0.25 · u ** ln 10``). The IR ``gain · exp(−decay · t) · noise`` (uniform noise, variance 1/3) has energy
#: ``≈ gain² · sr / (2 · decay) / 3``: at 16 kHz gain 0.01 gives a wet/dry energy ratio of −16 dB (decay 10 /s)
#: to −20 dB (decay 25 /s), −18 dB at mid decay: quieter reverb is hard to hear under the dry note.
REVERB_GAIN_USED = 0.01
_RED = "#d62728"


def _check_columns(frame: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: the frame lacks columns {missing} (has {list(frame.columns)})")


# ------------------------------------------------------------------------------------------------
# synthetic benchmark (Fig. 5)


def benchmark_table(summary: pd.DataFrame, prefix: Path | str, settings: dict | None = None) -> None:
    """``prefix.{csv,md,tex}``: per parameter, how often the analytic gradient points toward the original value,
    how often it is flat, whether the sampled loss descends toward it, and the basin around it."""
    cols = ["param", "original", "right_fraction", "flat_fraction", "wrong_fraction", "descent_fraction",
            "basin_low", "basin_high", "loss_max"]
    shown = summary[cols].round(3)
    where = f" ({settings.get('variant')}, {settings.get('steps')} points per parameter)" if settings else ""
    write_table(shown, prefix, "Paper 2 Sec. IV benchmark: every parameter of the typical preset swept over [0, 1] "
                f"with the others fixed{where}. right: share of sweep points where gradient descent on the multi-scale "
                "spectral loss moves toward the original value; flat: gradient below 1e-3 of the parameter's largest; "
                "descent: the sampled loss falls at the next point toward the original (1: no local optimum); basin: "
                "the interval around the original where every point pulls the right way.",
                csv=summary)


def benchmark_figure(df: pd.DataFrame, path: Path | str, summary: pd.DataFrame | None = None, ncols: int = 5,
                     title: str | None = None) -> None:
    """Write the benchmark figure: one small panel per parameter, the loss curve on top and ``dL/dv'_k`` below.

    The red vertical line is the original value ``v_k``; the shaded quadrants (``grad < 0`` left of ``v_k``,
    ``grad > 0`` right of it) are where ``−dL/dv'_k`` points toward ``v_k`` (the red region of paper Fig. 5).
    With a :func:`~synthproxy.matching.ddsp_benchmark.benchmark_summary` frame the panel titles give the share
    of sweep points whose gradient points the right way.
    """
    _check_columns(df, ("param", "value", "loss", "grad", "original"), "benchmark_figure")
    if df.empty:
        raise ConfigError("benchmark_figure: empty benchmark frame")
    params = list(dict.fromkeys(df["param"]))
    right = {} if summary is None else dict(zip(summary["param"], summary["right_fraction"], strict=True))
    ncols = max(1, min(ncols, len(params)))
    nrows = math.ceil(len(params) / ncols)
    plt = pyplot()
    height = 3.6 * nrows + 0.9
    fig = plt.figure(figsize=(3.0 * ncols, height))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.38, wspace=0.32)
    for i, name in enumerate(params):
        part = df[df["param"] == name].sort_values("value")
        r, c = divmod(i, ncols)
        cell = outer[r, c].subgridspec(2, 1, height_ratios=[1.0, 0.8], hspace=0.08)
        ax_loss = fig.add_subplot(cell[0])
        ax_grad = fig.add_subplot(cell[1], sharex=ax_loss)
        x, loss, grad = part["value"].to_numpy(), part["loss"].to_numpy(), part["grad"].to_numpy()
        v = float(part["original"].iloc[0])
        ax_loss.plot(x, loss, color="#1f77b4", marker="o", markersize=2.5, linewidth=1.2)
        ax_grad.plot(x, grad, color="#2ca02c", marker="o", markersize=2.5, linewidth=1.2)
        bound = 1.1 * float(np.nanmax(np.abs(grad))) or 1.0
        ax_grad.set_ylim(-bound, bound)
        ax_grad.fill_between([0.0, v], -bound, 0.0, color=_RED, alpha=0.15, linewidth=0)
        ax_grad.fill_between([v, 1.0], 0.0, bound, color=_RED, alpha=0.15, linewidth=0)
        ax_grad.axhline(0.0, color="0.4", linewidth=0.6)
        for ax in (ax_loss, ax_grad):
            ax.axvline(v, color=_RED, linewidth=1.2)
            ax.set_xlim(0.0, 1.0)
            ax.tick_params(labelsize=7)
            ax.yaxis.get_offset_text().set_fontsize(7)
        ax_loss.tick_params(labelbottom=False)
        label = name if name not in right else f"{name}  ({100 * right[name]:.0f} % right)"
        ax_loss.set_title(label, fontsize=8.5)
        if c == 0:
            ax_loss.set_ylabel("loss", fontsize=8)
            ax_grad.set_ylabel("dL/dv'", fontsize=8)
        if i + ncols >= len(params):
            ax_grad.set_xlabel("unit value", fontsize=8)
    fig.suptitle(title or "Spectral loss and its gradient dL/dv', one parameter swept (red line: original value; "
                 "shaded: the gradient points toward it)", fontsize=11)
    fig.subplots_adjust(top=1.0 - 0.95 / height, bottom=0.5 / height, left=0.05, right=0.99)
    save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# effect use


def _values(frame: pd.DataFrame, param: str) -> tuple[str, pd.DataFrame]:
    """The column to plot for ``param`` (``physical`` when present and finite, else the unit ``value``)."""
    part = frame[frame["param"] == param]
    column = "physical" if "physical" in part.columns and part["physical"].notna().all() else "value"
    return column, part


def effects_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: the median of each effect parameter and how often the effects are used.

    ``frame``: long format with ``strategy``, ``param``, ``value`` (unit) and ``physical``
    (:func:`~synthproxy.matching.ddsp_benchmark.parameter_frame`). Returns one row per strategy (in order of
    appearance): ``n`` (sounds), ``<param>_median`` (physical units: ms, —, —, 1/s) for each effect parameter
    present, ``chorus_used`` (share of sounds with chorus mix > :data:`CHORUS_MIX_USED`) and ``reverb_used``
    (share with physical reverb gain > :data:`REVERB_GAIN_USED`).
    """
    _check_columns(frame, ("strategy", "param", "value"), "effects_summary")
    rows = []
    for strategy in dict.fromkeys(frame["strategy"]):
        sub = frame[frame["strategy"] == strategy]
        row: dict = {"strategy": strategy}
        n = 0
        for param in EFFECT_PARAMS:
            column, part = _values(sub, param)
            if part.empty:
                continue
            n = max(n, len(part))
            row[f"{param}_median"] = float(part[column].median())
            if param == "chorus_mix":
                row["chorus_used"] = float((part[column] > CHORUS_MIX_USED).mean())
            if param == "reverb_gain":
                if column != "physical":
                    raise ConfigError("effects_summary: reverb use needs the physical reverb gain (column 'physical')")
                row["reverb_used"] = float((part[column] > REVERB_GAIN_USED).mean())
        row["n"] = n
        rows.append(row)
    out = pd.DataFrame(rows)
    first = ["strategy", "n"]
    return out[first + [c for c in out.columns if c not in first]]


def effects_figure(frame: pd.DataFrame, path: Path | str, title: str | None = None) -> None:
    """Write the distributions of the chorus (delay, mix) and reverb (gain, decay) parameters per strategy:
    a violin and the individual sounds (jittered points) per strategy, in physical units, with the "used"
    thresholds (:data:`CHORUS_MIX_USED`, :data:`REVERB_GAIN_USED`) as dashed lines."""
    _check_columns(frame, ("strategy", "param", "value"), "effects_figure")
    params = [p for p in EFFECT_PARAMS if (frame["param"] == p).any()]
    if not params:
        raise ConfigError(f"effects_figure: none of {list(EFFECT_PARAMS)} in the frame")
    strategies = list(dict.fromkeys(frame["strategy"]))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params) + 0.6, 3.8), squeeze=False)
    rng = np.random.default_rng(0)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    thresholds = {"chorus_mix": CHORUS_MIX_USED, "reverb_gain": REVERB_GAIN_USED}
    for ax, param in zip(axes[0], params, strict=True):
        column, part = _values(frame, param)
        for i, strategy in enumerate(strategies):
            values = part.loc[part["strategy"] == strategy, column].to_numpy(dtype=float)
            if values.size == 0:
                continue
            color = colors[i % len(colors)]
            if values.size > 1 and np.ptp(values) > 0:
                body = ax.violinplot(values, positions=[i], widths=0.8, showextrema=False)["bodies"][0]
                body.set_facecolor(color)
                body.set_alpha(0.3)
            jitter = rng.uniform(-0.18, 0.18, values.size)
            ax.scatter(i + jitter, values, s=5, color=color, alpha=0.6, linewidths=0)
            ax.hlines(np.median(values), i - 0.3, i + 0.3, color="black", linewidth=1.5)
        if param in thresholds and column == "physical":
            ax.axhline(thresholds[param], color=_RED, linestyle="--", linewidth=1, label="used above")
            ax.legend(fontsize=7, loc="upper right")
        unit = ""
        if "physical_unit" in part.columns and column == "physical" and part["physical_unit"].notna().any():
            unit = str(part["physical_unit"].dropna().iloc[0])
        ax.set_title(param, fontsize=10)
        ax.set_ylabel(("physical value" if column == "physical" else "unit value") + (f" ({unit})" if unit else ""),
                      fontsize=8)
        ax.set_xticks(range(len(strategies)))
        ax.set_xticklabels(strategies, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title or "Effect parameters predicted per strategy (black: median)", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)


# ------------------------------------------------------------------------------------------------
# proxy-gradient fidelity


def gradients_figure(df: pd.DataFrame, path: Path | str, title: str | None = None) -> None:
    """Write the proxy-gradient fidelity figure: cosine and sign agreement of the proxy and exact gradients
    against the L∞ distance to the target (points; mean per radius as a line), and the cosine per parameter
    over all pairs (bars)."""
    _check_columns(df, ("cosine", "sign_agreement", "distance_linf", "radius"), "gradients_figure")
    if df.empty:
        raise ConfigError("gradients_figure: empty comparison frame")
    per_param = parameter_cosine(df)
    plt = pyplot()
    fig = plt.figure(figsize=(13.0, 7.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.0, 1.0], hspace=0.55, wspace=0.22)
    x = df["distance_linf"].to_numpy(dtype=float)
    if np.isnan(x).all():
        x = df["radius"].to_numpy(dtype=float)
    for j, (column, label) in enumerate((("cosine", "cosine similarity"), ("sign_agreement", "sign agreement"))):
        ax = fig.add_subplot(grid[0, j])
        ax.scatter(x, df[column], s=10, alpha=0.6, color="#1f77b4", linewidths=0)
        if df["radius"].notna().any():
            means = df.groupby("radius").agg(d=("distance_linf", "mean"), m=(column, "mean"))
            finite = np.isfinite(means.index.to_numpy(dtype=float))
            ax.plot(means["d"][finite], means["m"][finite], color=_RED, marker="o", linewidth=1.5,
                    label="mean per radius")
            ax.legend(fontsize=8)
        ax.axhline(0.0 if column == "cosine" else 0.5, color="0.5", linewidth=0.7, linestyle=":")
        ax.set_ylim(-1.05 if column == "cosine" else -0.02, 1.05)
        ax.set_xlabel("‖x − x_target‖∞ (unit parameters)", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.set_title(f"{label}: proxy vs exact gradient", fontsize=10)
    ax = fig.add_subplot(grid[1, :])
    cos = per_param["cosine"].to_numpy(dtype=float)
    ax.bar(np.arange(len(per_param)), np.nan_to_num(cos), color=np.where(cos >= 0, "#1f77b4", _RED))
    ax.axhline(0.0, color="0.4", linewidth=0.7)
    ax.set_xticks(np.arange(len(per_param)))
    ax.set_xticklabels(per_param["param"], rotation=60, ha="right", fontsize=8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("cosine over pairs", fontsize=9)
    ax.set_title("per-parameter cosine of ∂L/∂x_k (proxy vs exact) over all pairs", fontsize=10)
    fig.suptitle(title or f"Proxy-gradient fidelity ({len(df)} pairs)", fontsize=11)
    fig.subplots_adjust(top=0.91, bottom=0.17, left=0.06, right=0.99)
    save_figure(fig, path)
