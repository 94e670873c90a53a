"""Synthetic vs hand-crafted presets (paper Sec. 7, Fig. 3): the Wasserstein table and the UMAP figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from synthproxy.data.atomic import write_text_atomic
from synthproxy.report.figures import pyplot, save_figure
from synthproxy.report.tables import write_table

GROUND_METRIC = "Euclidean (L2) distance"


def distribution_outputs(table: pd.DataFrame, points: pd.DataFrame, key: str, settings: dict[str, Any],
                         out_prefix: Path, figure: Path, projections: Path) -> None:
    """``wasserstein.{csv,md,tex}``, the projected points (CSV) and ``umap.png``."""
    caption = (f"Wasserstein-1 distance between the audio embeddings of synthetic and hand-crafted presets "
               f"(exact optimal transport with POT, uniform weights, ground metric: {GROUND_METRIC}); mean ± std "
               f"over {settings['repeats']} pairs of random subsamples of equal size. The reference column compares "
               "two disjoint synthetic subsamples (no distribution shift).")
    write_table(table, out_prefix, caption)
    write_text_atomic(projections, points.to_csv(index=False))
    _plot(points, figure, key)


def _plot(points: pd.DataFrame, figure: Path, key: str) -> None:
    plt = pyplot()
    import seaborn as sns

    synths = list(dict.fromkeys(points["synth"]))
    fig, axes = plt.subplots(1, len(synths), figsize=(5 * len(synths), 4.6), squeeze=False)
    for ax, synth in zip(axes[0], synths, strict=True):
        d = points[points["synth"] == synth]
        sns.scatterplot(data=d, x="umap_1", y="umap_2", hue="set", hue_order=["synthetic", "hand-crafted"],
                        s=6, alpha=0.5, linewidth=0, ax=ax)
        ax.set_title(f"{synth}: UMAP of {key}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(markerscale=3, fontsize=8)
    fig.tight_layout()
    save_figure(fig, figure)
