"""Compare two workflow result folders: every Zarr array and every table value must be identical.

    .venv/bin/python tools/compare_results.py RESULTS_A RESULTS_B

Used to prove that a refactoring changed no output: run the same config before and after, then compare.
Timing values are skipped (they differ from run to run): the seconds columns of ``chunk_stats`` and table
columns about time or throughput. Prints every difference and exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

TIMING_COLUMN = re.compile(r"second|/s\b|per job|duration|datetime|time", re.IGNORECASE)
CHUNK_STATS_COUNTS = 3  # chunk_stats columns 0..2 are counts; 3..5 are seconds


def _arrays(group: zarr.Group, prefix: str = "") -> dict[str, zarr.Array]:
    out: dict[str, zarr.Array] = {}
    for name, arr in group.arrays():
        out[prefix + name] = arr
    for name, sub in group.groups():
        out.update(_arrays(sub, f"{prefix}{name}/"))
    return out


def compare_stores(a: Path, b: Path) -> list[str]:
    problems = []
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    aa, ab = _arrays(ga), _arrays(gb)
    if set(aa) != set(ab):
        problems.append(f"{a.name}: arrays differ: {sorted(set(aa) ^ set(ab))}")
    for name in sorted(set(aa) & set(ab)):
        x, y = np.asarray(aa[name][:]), np.asarray(ab[name][:])
        if name == "chunk_stats":
            x, y = x[:, :CHUNK_STATS_COUNTS], y[:, :CHUNK_STATS_COUNTS]
        if x.shape != y.shape or x.dtype != y.dtype:
            problems.append(f"{a.name}/{name}: shape/dtype {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
        elif x.dtype.kind == "f" and not np.array_equal(x, y, equal_nan=True):
            diff = np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64)))
            problems.append(f"{a.name}/{name}: values differ (max |diff| {diff:.3g})")
        elif x.dtype.kind != "f" and not np.array_equal(x, y):
            problems.append(f"{a.name}/{name}: values differ")
    return problems


def compare_tables(a: Path, b: Path) -> list[str]:
    problems = []
    da, db = pd.read_csv(a, dtype=str, keep_default_na=False), pd.read_csv(b, dtype=str, keep_default_na=False)
    if list(da.columns) != list(db.columns) or len(da) != len(db):
        return [f"{a.name}: columns/rows differ: {list(da.columns)} x {len(da)} vs {list(db.columns)} x {len(db)}"]
    for col in da.columns:
        if TIMING_COLUMN.search(str(col)):
            continue
        bad = (da[col] != db[col]).to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            problems.append(f"{a.name}: column {col!r} differs in {int(bad.sum())} row(s), e.g. row {i}: "
                            f"{da[col][i]!r} vs {db[col][i]!r}")
    return problems


def compare(a: Path, b: Path) -> list[str]:
    problems: list[str] = []
    stores_a = sorted(p.relative_to(a) for p in a.glob("data/*/*.zarr"))
    stores_b = sorted(p.relative_to(b) for p in b.glob("data/*/*.zarr"))
    if stores_a != stores_b:
        problems.append(f"stores differ: {sorted(set(map(str, stores_a)) ^ set(map(str, stores_b)))}")
    for rel in sorted(set(stores_a) & set(stores_b)):
        problems += compare_stores(a / rel, b / rel)
    tables_a = sorted(p.name for p in (a / "tables").glob("*.csv"))
    tables_b = sorted(p.name for p in (b / "tables").glob("*.csv"))
    if tables_a != tables_b:
        problems.append(f"tables differ: {sorted(set(tables_a) ^ set(tables_b))}")
    for name in sorted(set(tables_a) & set(tables_b)):
        problems += compare_tables(a / "tables" / name, b / "tables" / name)
    if not stores_a or not tables_a:
        problems.append(f"nothing to compare in {a} ({len(stores_a)} stores, {len(tables_a)} tables)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    problems = compare(args.a, args.b)
    n_stores = len(list(args.a.glob("data/*/*.zarr")))
    n_tables = len(list((args.a / "tables").glob("*.csv")))
    for p in problems:
        print(p)
    print(f"{n_stores} stores, {n_tables} tables compared: " + ("identical" if not problems else
                                                                 f"{len(problems)} difference(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
