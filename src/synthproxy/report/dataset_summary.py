"""The dataset summary table: per synth and split, presets, rejections, RMS statistics, throughput."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from synthproxy.report.tables import write_table

CAPTION = (
    "Synthetic datasets: presets kept per synth and split, candidates rejected by the RMS filter "
    "(too quiet / too loud / non-finite), RMS of the kept renders, and render+embed throughput per job."
)


def summarize(split_stats: list[Path], out_prefix: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(split_stats):
        s = json.loads(Path(path).read_text())
        reasons = s.get("rejections_by_reason", {})
        # a store from before per-chunk statistics, resumed: reasons and speed are unknown for some chunks
        known = not s.get("chunks_without_stats")
        total = s["presets"] + s["rejections"]
        rows.append({
            "synth": s["synth"], "split": s["split"], "presets": s["presets"], "params": s["params"],
            "rejected": s["rejections"],
            "rejected %": round(100.0 * s["rejections"] / total, 2) if total else 0.0,
            **{label: reasons.get(key, 0) if known else "n/a" for label, key in (
                ("too quiet", "too_quiet"), ("too loud", "too_loud"), ("non-finite", "non_finite"))},
            "RMS mean ± std": f"{s['rms_mean']:.3f} ± {s['rms_std']:.3f}",
            "RMS min": round(s["rms_min"], 4), "RMS max": round(s["rms_max"], 4),
            "presets/s per job": s.get("presets_per_second_per_job") if known else "n/a",
            "embeddings": ", ".join(f"{k} ({v[1]})" for k, v in sorted(s["embeddings"].items())),
        })
    df = pd.DataFrame(rows)
    write_table(df, out_prefix, CAPTION)
    return df
