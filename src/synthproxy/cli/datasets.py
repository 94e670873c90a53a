"""Steps of ``workflow/rules/datasets.smk``: synthetic datasets (init-store, render-shard, finalize-split,
dataset-summary)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from synthproxy.cli.common import command, config_args, load_cfg, set_threads

log = logging.getLogger("synthproxy")


def _split_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--store", required=True, type=Path, help="path of the split's .zarr store")


def _init_args(p: argparse.ArgumentParser) -> None:
    _split_args(p)
    p.add_argument("--marker", required=True, type=Path)


@command("init-store", _init_args)
def init_store(args: argparse.Namespace) -> int:
    """Allocate the Zarr store of a (synth, split) and write its metadata."""
    from synthproxy.pipeline.dataset import DatasetPlan
    from synthproxy.pipeline.dataset import init_store as run

    info = run(DatasetPlan(load_cfg(args), args.synth, args.split), args.store, args.marker)
    log.info("store %s ready: %d/%d chunks already done", args.store, info["chunks_done"], info["n_chunks"])
    return 0


def _shard_args(p: argparse.ArgumentParser) -> None:
    _split_args(p)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--marker", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("render-shard", _shard_args)
def render_shard(args: argparse.Namespace) -> int:
    """Sample, render, RMS-filter and embed one shard of a split into its store."""
    from synthproxy.pipeline.dataset import DatasetPlan
    from synthproxy.pipeline.dataset import render_shard as run

    set_threads(args.threads)
    info = run(DatasetPlan(load_cfg(args), args.synth, args.split), args.store, args.shard, args.marker)
    log.info("shard done: %s", json.dumps(info))
    return 0


def _finalize_args(p: argparse.ArgumentParser) -> None:
    _split_args(p)
    p.add_argument("--shard-markers", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("finalize-split", _finalize_args)
def finalize_split(args: argparse.Namespace) -> int:
    """Check a split's store is complete and record its statistics."""
    from synthproxy.pipeline.dataset import DatasetPlan
    from synthproxy.pipeline.dataset import finalize_split as run

    stats = run(DatasetPlan(load_cfg(args), args.synth, args.split), args.store, args.shard_markers, args.out)
    log.info("split complete: %s", json.dumps(stats))
    return 0


def _summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stats", nargs="+", required=True, type=Path, help="finalize-split outputs")
    p.add_argument("--out-prefix", required=True, type=Path)


@command("dataset-summary", _summary_args)
def dataset_summary(args: argparse.Namespace) -> int:
    """Write the dataset summary table (CSV, Markdown, LaTeX)."""
    from synthproxy.report.dataset_summary import summarize

    print(summarize(args.stats, args.out_prefix).to_string(index=False))
    return 0
