"""The ranking table and figure (paper Sec. 5.1, Fig. 2) from the per-group scores of ``rank_group``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from synthproxy.report.figures import pyplot, save_figure
from synthproxy.report.tables import write_table


def summarize_ranking(score_csvs: list[Path], side_jsons: list[Path], out_prefix: Path, figure: Path) -> pd.DataFrame:
    """Table (best reduction per representation) and a Fig.-2-like plot, plus the skipped list."""
    df = pd.concat([pd.read_csv(p) for p in score_csvs], ignore_index=True)
    skipped: dict[str, str] = {}
    anchors = set()
    for p in side_jsons:
        side = json.loads(Path(p).read_text())
        skipped.update(side["skipped"])
        anchors.add(side.get("exclude_anchor", False))
    # The paper keeps, per representation, the reduction with the best overall mean.
    overall = df.groupby(["representation", "reduction"])["spearman"].mean()
    best = {rep: overall[rep].idxmax() for rep in df["representation"].unique()}
    df = df[[best[r] == red for r, red in zip(df["representation"], df["reduction"], strict=True)]]
    dims = df.groupby("representation")["dim"].first()
    labels = {r: f"{r} ({best[r]}, {dims[r]})" for r in best}
    order = list(dict.fromkeys(df["group"]))
    stats = df.groupby(["group", "representation"])["spearman"].agg(["mean", "std"]).reset_index()
    table = pd.DataFrame({"parameter": order,
                          "category": [df[df["group"] == g]["category"].iloc[0] for g in order]})
    bold: dict[str, set[int]] = {}
    for rep in best:
        s = stats[stats["representation"] == rep].set_index("group").loc[order]
        table[labels[rep]] = [f"{m:.3f} ± {sd:.3f}" for m, sd in zip(s["mean"], s["std"], strict=True)]
    means = stats.pivot(index="group", columns="representation", values="mean").loc[order]
    for i, g in enumerate(order):
        bold.setdefault(labels[means.loc[g].idxmax()], set()).add(i)
    total = df.groupby("representation")["spearman"].agg(["mean", "std"])
    table.loc[len(table)] = ["overall", ""] + [f"{total.loc[r, 'mean']:.3f} ± {total.loc[r, 'std']:.3f}" for r in best]
    bold.setdefault(labels[total["mean"].idxmax()], set()).add(len(table) - 1)
    synth = df["synth"].iloc[0]
    n = df.groupby(["group", "representation"]).size().iloc[0]
    caption = (f"Sound-attribute ranking on {synth}: Spearman correlation of L1-distance rankings with the true "
               f"parameter order, mean ± std over {n} rankings per parameter (best reduction per representation; "
               "best per row in bold). ")
    if anchors == {True}:
        caption += "The anchor sound is left out of its own ranking (the official score)."
    else:
        caption += ("The anchor sound is kept in its own ranking (inflated: a noise representation scores "
                    "3 / (steps + 1) on average, e.g. 0.14 at 20 steps, not 0).")
    if skipped:
        def short(reason: str) -> str:  # "... put it at /path/file.pt" → the file to provide
            if "put it at " in reason:
                return f"weights missing: put them at {reason.rsplit('put it at ', 1)[1]}"
            return reason

        caption += " Skipped: " + "; ".join(f"{k} ({short(v)})" for k, v in sorted(skipped.items())) + "."
    write_table(table, out_prefix, caption, bold=bold)

    plt = pyplot()
    import seaborn as sns

    plot = df.assign(label=df["representation"].map(labels))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(order)), 4.5))
    sns.pointplot(data=plot, x="group", y="spearman", hue="label", order=order, errorbar="sd", dodge=0.5,
                  linestyle="none", markersize=4, err_kws={"linewidth": 1}, ax=ax)
    ax.set_xlabel("")
    ax.set_ylabel("Spearman correlation (mean ± std)")
    ax.set_title(f"Sound-attribute ranking, {synth}")
    ax.tick_params(axis="x", rotation=45)
    for t in ax.get_xticklabels():
        t.set_ha("right")
    ax.legend(title="representation (reduction, size)", fontsize=8, title_fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, figure)
    return table

