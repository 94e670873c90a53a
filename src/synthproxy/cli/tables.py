"""Step of ``workflow/rules/tables.smk``: collect-tables (every table and figure into ``results/tables``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthproxy.cli.common import command


def _collect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("collect-tables", _collect_args)
def collect_tables(args: argparse.Namespace) -> int:
    """Copy finished tables into the results/tables folder with an index."""
    from synthproxy.report.collect import collect_tables as run

    run(args.inputs, args.out)
    return 0
