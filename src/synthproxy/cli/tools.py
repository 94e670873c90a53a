"""Steps used by hand rather than by rules: validate-config, render (listen to a preset), probe-plugin."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthproxy.cli.common import command, config_args, load_cfg


@command("validate-config", config_args)
def validate_config(args: argparse.Namespace) -> int:
    """Validate a config (schema, files, plugins) and print it with defaults filled in."""
    from synthproxy.config import check_synths, check_workflow

    cfg = load_cfg(args)
    check_workflow(cfg)
    check_synths(cfg)
    print(json.dumps(cfg, indent=2))
    return 0


def _render_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--store", type=Path, help="render preset --index of this store")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="audio file to write (.wav, .flac or .ogg)")


@command("render", _render_args)
def render(args: argparse.Namespace) -> int:
    """Render one preset (from a store, or the spec's defaults) to an audio file, to listen to it."""
    from synthproxy.pipeline.listen import render_to_file

    render_to_file(load_cfg(args), args.synth, args.out, args.store, args.index)
    return 0


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", required=True, help="path of a VST2/VST3 plugin")
    p.add_argument("--grid", type=int, default=401, help="values swept per parameter")
    p.add_argument("--max-discrete", type=int, default=32,
                   help="parameters with at most this many distinct display texts are reported as discrete")


@command("probe-plugin", _probe_args)
def probe_plugin(args: argparse.Namespace) -> int:
    """Print a draft spec YAML for a VST plugin, with discrete values derived from its display text."""
    from synthproxy.synths.probe import draft_spec_yaml
    from synthproxy.synths.probe import probe_plugin as run

    print(draft_spec_yaml(run(args.plugin, args.grid, args.max_discrete), args.plugin))
    return 0
