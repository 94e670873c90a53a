"""Run every benchmark of benchmarks/ and print one table of the measured figures against their targets.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only matching ddsp ...] [--list]

Each benchmark script (render, embedding, training, matching, ddsp, then any other ``*_throughput.py``) runs as
a subprocess, from the repository, with ``--quick`` when given; its own output is shown as it comes. Besides
its human output a script prints one machine-readable line per measured figure::

    RESULT<TAB>name<TAB>value<TAB>unit<TAB>target<TAB>ratio

with ``target`` an expression such as ``>=0.85``, ``<=5`` or ``<2`` (``-``: a figure without target, reported
for the record) and ``ratio`` the value measured against the target, >= 1 when the target is met (``-`` without
target); and ``SKIP<TAB>name<TAB>reason`` for a measurement that could not run (e.g. no trained model). The
table lists benchmark, measurement, value, target, ratio and pass/fail (decided here from value and target).

Exit code 0 (targets missed are reported, not errors), 1 when a script crashes (its stderr tail is shown).
"""

from __future__ import annotations

import argparse
import math
import operator
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ORDER = ("render_throughput", "embedding_throughput", "training_throughput", "matching_throughput",
         "ddsp_throughput")
OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
TARGET_RE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")


@dataclass
class Row:
    """One line of the table."""

    benchmark: str
    name: str
    value: str
    unit: str
    target: str
    ratio: str
    status: str


def scripts() -> list[Path]:
    """The benchmark scripts: the known ones in their order, then any other ``*_throughput.py``."""
    known = [HERE / f"{name}.py" for name in ORDER if (HERE / f"{name}.py").is_file()]
    others = sorted(p for p in HERE.glob("*_throughput.py") if p not in known)
    return known + others


def short(path: Path) -> str:
    return path.stem.removesuffix("_throughput")


def select(all_scripts: list[Path], only: list[str] | None) -> list[Path]:
    """Scripts named by ``--only`` (``matching``, ``matching_throughput`` or ``matching_throughput.py``)."""
    if not only:
        return all_scripts
    by_name = {}
    for p in all_scripts:
        by_name |= {short(p): p, p.stem: p, p.name: p}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise SystemExit(f"--only: unknown benchmark(s) {unknown}; known: {[short(p) for p in all_scripts]}")
    return list(dict.fromkeys(by_name[n] for n in only))


def status(value: str, target: str) -> str:
    """``pass``/``FAIL`` from the value and the target expression; ``info`` without target."""
    m = TARGET_RE.match(target)
    if target.strip() in ("", "-") or m is None:
        return "info"
    try:
        v = float(value)
    except ValueError:
        return "FAIL"
    if math.isnan(v):
        return "FAIL"
    return "pass" if OPS[m.group(1)](v, float(m.group(2))) else "FAIL"


def parse(benchmark: str, line: str) -> Row | None:
    """A table row from a ``RESULT`` or ``SKIP`` line (None for any other line)."""
    parts = line.rstrip("\n").split("\t")
    if parts[0] == "RESULT" and len(parts) >= 6:
        _, name, value, unit, target, ratio = parts[:6]
        return Row(benchmark, name, value, unit, target, ratio, status(value, target))
    if parts[0] == "SKIP" and len(parts) >= 3:
        return Row(benchmark, parts[1], "-", "", "-", "-", "skip: " + parts[2])
    return None


def run(script: Path, quick: bool, timeout: float | None) -> tuple[list[Row], int, str, float]:
    """Run one script, echoing its output; returns its rows, exit code, stderr tail and wall time."""
    cmd = [sys.executable, str(script), *(["--quick"] if quick else [])]
    rows: list[Row] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                row = parse(short(script), line)
                if row is not None:
                    rows.append(row)
                else:
                    print(f"  {line.rstrip()}", flush=True)
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            err.write(f"\n[run_all] killed after {timeout} s\n")
        err.seek(0)
        tail = "\n".join(err.read().splitlines()[-25:])
    return rows, rc, tail, time.perf_counter() - t0


def table(rows: list[Row]) -> str:
    """A fixed-width table of the rows."""
    header = ("benchmark", "measurement", "value", "target", "ratio", "pass/fail")
    body = [(r.benchmark, r.name, f"{r.value} {r.unit}".strip(), r.target, r.ratio, r.status) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    widths[-1] = min(widths[-1], 60)

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) if i < len(cells) - 1 else str(c)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, body)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every script (a few minutes in all)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks only (e.g. matching ddsp)")
    ap.add_argument("--timeout", type=float, help="seconds after which a script is killed (counts as a crash)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args()
    chosen = select(scripts(), args.only)
    if args.list:
        print("\n".join(short(p) for p in chosen))
        return 0
    rows: list[Row] = []
    crashed: list[tuple[str, int, str]] = []
    for script in chosen:
        print(f"== {script.name}{' --quick' if args.quick else ''}", flush=True)
        got, rc, tail, seconds = run(script, args.quick, args.timeout)
        print(f"== {script.name}: exit {rc}, {seconds:.0f} s, {len(got)} figure(s)", flush=True)
        rows += got
        if rc != 0:
            crashed.append((script.name, rc, tail))
            rows.append(Row(short(script), "(script)", "-", "", "-", "-", f"CRASH (exit {rc})"))
    print()
    print(table(rows) if rows else "no figures were reported")
    n = {s: sum(r.status == s for r in rows) for s in ("pass", "FAIL", "info")}
    skipped = sum(r.status.startswith("skip") for r in rows)
    print(f"\n{n['pass']} pass, {n['FAIL']} fail, {n['info']} info, {skipped} skipped, {len(crashed)} crashed")
    for name, rc, tail in crashed:
        print(f"\n-- {name} crashed (exit {rc}); stderr tail:\n{tail}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
