"""Command-line interface: ``python -m synthproxy <step> ...``.

Every Snakemake rule runs one of these steps, with the rule's name (``render_shard`` → ``render-shard``), so
each step also runs by hand. The steps live in one module per rules file (:mod:`.datasets`, :mod:`.ranking`,
:mod:`.handcrafted`, :mod:`.training`, :mod:`.matching`, :mod:`.tables`; by-hand tools in :mod:`.tools`); they
parse arguments and call one function of the package. Steps that need the configuration take ``--config
config/config.yaml`` (by hand) or ``--config-json`` (what rules pass, so that Snakemake re-runs a step exactly
when the settings it uses change).
"""

from __future__ import annotations

import argparse
import logging
import sys

from synthproxy.cli import (  # noqa: F401 - importing registers the steps
    datasets,
    ddsp,
    handcrafted,
    matching,
    plan,
    ranking,
    tables,
    tools,
    training,
)
from synthproxy.cli.common import COMMANDS
from synthproxy.errors import SynthProxyError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m synthproxy", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")
    for name, (fn, configure) in COMMANDS.items():
        p = sub.add_parser(name, help=(fn.__doc__ or "").strip().splitlines()[0])
        configure(p)
        p.set_defaults(func=fn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except SynthProxyError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.verbose:
            raise
        # outputs are written atomically and chunk by chunk: nothing half-written stays, a rerun resumes
        print(f"interrupted: {args.command} stopped; rerun it (or the workflow) to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
