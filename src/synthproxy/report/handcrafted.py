"""The hand-crafted import table: counts at each import step, one column per synth."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from synthproxy.report.tables import write_table


def import_table(stats_files: list[Path], out_prefix: Path) -> pd.DataFrame:
    """``handcrafted_import.{csv,md}`` from the ``finalize-handcrafted`` statistics of every synth."""
    cols = {}
    for p in stats_files:
        s = json.loads(Path(p).read_text())
        cols[s["synth"]] = dict(s["counts"])
    steps = list(dict.fromkeys(k for c in cols.values() for k in c))
    df = pd.DataFrame({"step": steps, **{synth: [c.get(k, "") for k in steps] for synth, c in cols.items()}})
    write_table(df, out_prefix, "Hand-crafted presets: counts at each import step (a blank means the step does "
                "not apply to that synth). Splits are 80/10/10 grouped by source file.", formats=("csv", "md"))
    return df
