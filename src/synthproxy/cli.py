"""Command-line interface: ``python -m synthproxy <step> ...``.

Every Snakemake rule runs one of these steps, so each step also runs by hand. Steps that need the
configuration take ``--config config/config.yaml`` (by hand) or ``--config-json`` (what rules pass, so
that Snakemake re-runs a step exactly when the settings it uses change).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from synthproxy.errors import SynthProxyError

log = logging.getLogger("synthproxy")
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, configure: Callable[[argparse.ArgumentParser], None]):
    def deco(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (fn, configure)
        return fn

    return deco


def _config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", help="YAML config file (e.g. config/config.yaml)")
    g.add_argument("--config-json", help="the validated config as JSON (used by the Snakemake rules)")


def _cfg(args: argparse.Namespace) -> dict:
    from synthproxy.config import config_from_cli

    return config_from_cli(args.config, args.config_json)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _split_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--store", required=True, type=Path, help="path of the split's .zarr store")


# ---- commands -----------------------------------------------------------------------------------
@command("validate-config", _config_args)
def _validate(args: argparse.Namespace) -> int:
    """Validate a config (schema, files, plugins) and print it with defaults filled in."""
    from synthproxy.synths.engines import check_plugin_path
    from synthproxy.synths.spec import load_spec

    cfg = _cfg(args)
    for name, s in cfg["synths"].items():
        spec = load_spec(s["spec"])
        if spec.engine == "vst":
            check_plugin_path(s.get("plugin") or spec.plugin, name)
    print(json.dumps(cfg, indent=2))
    return 0


def _init_args(p: argparse.ArgumentParser) -> None:
    _split_args(p)
    p.add_argument("--marker", required=True, type=Path)


@command("init-store", _init_args)
def _init_store(args: argparse.Namespace) -> int:
    """Allocate the Zarr store of a (synth, split) and write its metadata."""
    from synthproxy.pipeline.dataset import DatasetPlan, init_store

    info = init_store(DatasetPlan(_cfg(args), args.synth, args.split), args.store, args.marker)
    log.info("store %s ready: %d/%d chunks already done", args.store, info["chunks_done"], info["n_chunks"])
    return 0


def _shard_args(p: argparse.ArgumentParser) -> None:
    _split_args(p)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--marker", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("render-shard", _shard_args)
def _render_shard(args: argparse.Namespace) -> int:
    """Sample, render, RMS-filter and embed one shard of a split into its store."""
    from synthproxy.pipeline.dataset import DatasetPlan, render_shard

    _threads(args.threads)
    info = render_shard(DatasetPlan(_cfg(args), args.synth, args.split), args.store, args.shard, args.marker)
    log.info("shard done: %s", json.dumps(info))
    return 0


def _finalize_args(p: argparse.ArgumentParser) -> None:
    _split_args(p)
    p.add_argument("--shard-markers", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("finalize-split", _finalize_args)
def _finalize(args: argparse.Namespace) -> int:
    """Check a split's store is complete and record its statistics."""
    from synthproxy.pipeline.dataset import DatasetPlan, finalize_split

    stats = finalize_split(DatasetPlan(_cfg(args), args.synth, args.split), args.store, args.shard_markers,
                           args.out)
    log.info("split complete: %s", json.dumps(stats))
    return 0


def _summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stats", nargs="+", required=True, type=Path, help="finalize-split outputs")
    p.add_argument("--out-prefix", required=True, type=Path)


@command("dataset-summary", _summary_args)
def _dataset_summary(args: argparse.Namespace) -> int:
    """Write the dataset summary table (CSV, Markdown, LaTeX)."""
    from synthproxy.analysis.dataset_summary import summarize

    print(summarize(args.stats, args.out_prefix).to_string(index=False))
    return 0


def _collect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--inputs", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("collect-tables", _collect_args)
def _collect(args: argparse.Namespace) -> int:
    """Copy finished tables into the results/tables folder with an index."""
    from synthproxy.analysis.collect import collect_tables

    collect_tables(args.inputs, args.out)
    return 0


def _probe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin", required=True, help="path of a VST2/VST3 plugin")
    p.add_argument("--grid", type=int, default=401, help="values swept per parameter")
    p.add_argument("--max-discrete", type=int, default=32,
                   help="parameters with at most this many distinct display texts are reported as discrete")


@command("probe-plugin", _probe_args)
def _probe(args: argparse.Namespace) -> int:
    """Print a draft spec YAML for a VST plugin, with discrete values derived from its display text."""
    from synthproxy.synths.probe import draft_spec_yaml, probe_plugin

    print(draft_spec_yaml(probe_plugin(args.plugin, args.grid, args.max_discrete), args.plugin))
    return 0


def _render_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--store", type=Path, help="render preset --index of this store")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="WAV file to write")


@command("render", _render_args)
def _render(args: argparse.Namespace) -> int:
    """Render one preset (from a store, or the spec's defaults) to a WAV file, to listen to it."""
    import numpy as np
    import soundfile as sf

    from synthproxy.data.store import open_store
    from synthproxy.pipeline.dataset import DatasetPlan

    cfg = _cfg(args)
    split = next(iter(cfg["dataset"]["splits"]))
    plan = DatasetPlan(cfg, args.synth, split)
    from synthproxy.synths.engines import check_audio, make_engine

    sr = plan.sample_rates[0]
    engine = make_engine(plan.spec, plan.render_settings[sr], plan.synth_cfg.get("plugin"))
    if args.store:
        root = open_store(args.store)
        n = root["presets"].shape[0]
        if not 0 <= args.index < n:
            raise SynthProxyError(f"--index {args.index} out of range: {args.store} holds {n} presets")
        audio = engine.render_preset(np.asarray(root["presets"][args.index]))
    else:
        audio = engine.render(plan.spec.defaults_plugin_vector())
    check_audio(audio, f"{args.synth} render")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(args.out, audio, sr)
    log.info("wrote %s (%.2f s at %d Hz)", args.out, len(audio) / sr, sr)
    return 0


def _ranking_group_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--group", required=True, help="group name or its file-name form (e.g. amp_attack)")
    p.add_argument("--out-csv", required=True, type=Path)
    p.add_argument("--out-json", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("ranking-group", _ranking_group_args)
def _ranking_group(args: argparse.Namespace) -> int:
    """Render, embed and score one parameter group of the sound-attribute ranking (paper Sec. 5)."""
    from synthproxy.analysis.ranking import rank_group
    from synthproxy.errors import ConfigError
    from synthproxy.synths.spec import load_spec

    _threads(args.threads)
    cfg = _cfg(args)
    if "ranking" not in cfg or args.synth not in cfg["ranking"]["synths"]:
        raise ConfigError(f"ranking.synths has no entry for '{args.synth}'")
    rk = cfg["ranking"]
    settings = {"render": cfg["render"], "seed": cfg["seed"] + rk["seed"], "presets_per_group": rk["presets_per_group"],
                "steps": rk["steps"], "representations": rk["representations"], "reductions": rk["reductions"]}
    synth = cfg["synths"][args.synth]
    rank_group(load_spec(synth["spec"]), synth.get("plugin"), Path(rk["synths"][args.synth]), args.group, settings,
               args.out_csv, args.out_json)
    return 0


def _ranking_summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", nargs="+", required=True, type=Path)
    p.add_argument("--side", nargs="+", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path)


@command("ranking-summary", _ranking_summary_args)
def _ranking_summary(args: argparse.Namespace) -> int:
    """Ranking table (CSV, Markdown, LaTeX) and figure from the per-group scores."""
    from synthproxy.analysis.ranking import summarize_ranking

    print(summarize_ranking(args.scores, args.side, args.out_prefix, args.figure).to_string(index=False))
    return 0


# ---- entry point --------------------------------------------------------------------------------
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
