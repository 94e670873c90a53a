"""Steps of ``workflow/rules/ranking.smk``: the sound-attribute ranking (ranking-group, ranking-summary)."""

from __future__ import annotations

import argparse
from pathlib import Path

from synthproxy.cli.common import command, config_args, load_cfg, set_threads


def _group_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--group", required=True, help="group name or its file-name form (e.g. amp_attack)")
    p.add_argument("--out-csv", required=True, type=Path)
    p.add_argument("--out-json", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("ranking-group", _group_args)
def ranking_group(args: argparse.Namespace) -> int:
    """Render, embed and score one parameter group of the sound-attribute ranking (paper Sec. 5)."""
    from synthproxy.pipeline.ranking import ranking_group as run

    set_threads(args.threads)
    run(load_cfg(args), args.synth, args.group, args.out_csv, args.out_json)
    return 0


def _summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", nargs="+", required=True, type=Path)
    p.add_argument("--side", nargs="+", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path)


@command("ranking-summary", _summary_args)
def ranking_summary(args: argparse.Namespace) -> int:
    """Ranking table (CSV, Markdown, LaTeX) and figure from the per-group scores."""
    from synthproxy.report.ranking import summarize_ranking

    print(summarize_ranking(args.scores, args.side, args.out_prefix, args.figure).to_string(index=False))
    return 0
