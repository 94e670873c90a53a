"""Steps of ``workflow/rules/handcrafted.smk``: the hand-crafted presets experiment (paper Sec. 4.1.3, 7):
fetch, import, render, finalize, the import table, the distribution comparison (Fig. 3) and the encoders'
evaluation on hand-crafted presets (Table 4)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from synthproxy.cli.common import command, config_args, load_cfg, set_threads

log = logging.getLogger("synthproxy")


def _plan(args: argparse.Namespace):
    from synthproxy.pipeline.handcrafted import HandcraftedPlan

    return HandcraftedPlan(load_cfg(args), args.synth, getattr(args, "source", None))


def _hc_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--store", required=True, type=Path)


def _fetch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--url", help="archive URL (default: the pinned GitHub commit)")


@command("fetch-dx7-cartridges", _fetch_args)
def fetch_dx7_cartridges(args: argparse.Namespace) -> int:
    """Download the public DX7 cartridge compilation (pinned commit, content checksum verified)."""
    from synthproxy.presets.fetch import fetch_dx7_cartridges as run

    log.info("DX7 cartridges ready in %s", run(args.dest, args.url))
    return 0


def _import_args(p: argparse.ArgumentParser) -> None:
    _hc_args(p)
    p.add_argument("--source", type=Path, help="preset folder overriding the config's path")
    p.add_argument("--report", required=True, type=Path)


@command("import-handcrafted", _import_args)
def import_handcrafted(args: argparse.Namespace) -> int:
    """Import hand-crafted presets: read files, map onto the spec, dedup, split by file, allocate the store."""
    from synthproxy.pipeline.handcrafted import import_handcrafted as run

    report = run(_plan(args), args.store, args.report)
    log.info("imported: %s", json.dumps(dict(report["counts"])))
    return 0


def _render_args(p: argparse.ArgumentParser) -> None:
    _hc_args(p)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--marker", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("render-handcrafted", _render_args)
def render_handcrafted(args: argparse.Namespace) -> int:
    """Render, RMS-filter and embed one shard of a hand-crafted preset store."""
    from synthproxy.pipeline.handcrafted import render_handcrafted_shard

    set_threads(args.threads)
    log.info("shard done: %s", json.dumps(render_handcrafted_shard(_plan(args), args.store, args.shard, args.marker)))
    return 0


def _finalize_args(p: argparse.ArgumentParser) -> None:
    _hc_args(p)
    p.add_argument("--import-report", required=True, type=Path)
    p.add_argument("--shard-markers", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("finalize-handcrafted", _finalize_args)
def finalize_handcrafted(args: argparse.Namespace) -> int:
    """Check a hand-crafted store is complete and count what each import step kept."""
    from synthproxy.pipeline.handcrafted import finalize_handcrafted as run

    stats = run(_plan(args), args.store, args.import_report, args.shard_markers, args.out)
    log.info("hand-crafted presets: %s", json.dumps(stats["counts"]))
    return 0


def _table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stats", nargs="+", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)


@command("handcrafted-import-table", _table_args)
def handcrafted_import_table(args: argparse.Namespace) -> int:
    """Table of counts at each hand-crafted import step (CSV, Markdown)."""
    from synthproxy.report.handcrafted import import_table

    print(import_table(args.stats, args.out_prefix).to_string(index=False))
    return 0


def _dist_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--pair", nargs=3, action="append", required=True, metavar=("SYNTH", "SYNTHETIC", "HANDCRAFTED"),
                   help="a synth and its synthetic and hand-crafted stores (repeatable)")
    p.add_argument("--key", required=True, help="embedding key, e.g. mel128_avg")
    p.add_argument("--out-prefix", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path)
    p.add_argument("--projections", required=True, type=Path)


@command("distribution", _dist_args)
def distribution(args: argparse.Namespace) -> int:
    """UMAP figure and Wasserstein table of synthetic vs hand-crafted presets (paper Fig. 3)."""
    from synthproxy.pipeline.distribution import compare, settings_from_config
    from synthproxy.report.distribution import distribution_outputs

    settings = settings_from_config(load_cfg(args))
    table, points = compare({s: (Path(a), Path(b)) for s, a, b in args.pair}, args.key, settings)
    distribution_outputs(table, points, args.key, settings, args.out_prefix, args.figure, args.projections)
    print(table.to_string(index=False))
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path, help="hand-crafted store")
    p.add_argument("--synth", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n-runs", type=int, default=100)
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)


@command("evaluate-handcrafted", _eval_args)
def evaluate_handcrafted(args: argparse.Namespace) -> int:
    """Evaluate a synthetic-trained encoder on the valid hand-crafted presets (paper Table 4)."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.proxy.evaluate import evaluate_handcrafted as run

    set_threads(args.threads)
    scores = run(args.checkpoint, args.store, args.n_runs, args.k, args.seed) | {"synth": args.synth}
    write_json_atomic(args.out, scores)
    log.info("hand-crafted: MRR %.4f ± %.4f, L1 %.4f ± %.4f", scores["mrr_mean"], scores["mrr_std"],
             scores["l1_mean"], scores["l1_std"])
    return 0


def _hc_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hand", nargs="+", required=True, type=Path)
    p.add_argument("--synthetic", nargs="+", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)


@command("handcrafted-table", _hc_table_args)
def handcrafted_table(args: argparse.Namespace) -> int:
    """Table 4: encoders on hand-crafted presets with the relative difference to synthetic results."""
    from synthproxy.report.encoders import handcrafted_table as run

    print(run(args.hand, args.synthetic, args.out_prefix).to_string(index=False))
    return 0
