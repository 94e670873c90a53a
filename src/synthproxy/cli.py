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


def _hc_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--store", required=True, type=Path)


def _hc_plan(args: argparse.Namespace):
    from synthproxy.pipeline.handcrafted import HandcraftedPlan

    cfg = _cfg(args)
    if getattr(args, "source", None):  # the workflow passes the fetched folder when the configured one is absent
        cfg["handcrafted"]["synths"][args.synth]["path"] = str(args.source)
    return HandcraftedPlan(cfg, args.synth)


def _hc_import_args(p: argparse.ArgumentParser) -> None:
    _hc_args(p)
    p.add_argument("--source", type=Path, help="preset folder overriding the config's path")
    p.add_argument("--report", required=True, type=Path)


@command("import-handcrafted", _hc_import_args)
def _hc_import(args: argparse.Namespace) -> int:
    """Import hand-crafted presets: read files, map onto the spec, dedup, split by file, allocate the store."""
    from synthproxy.pipeline.handcrafted import import_handcrafted

    report = import_handcrafted(_hc_plan(args), args.store, args.report)
    log.info("imported: %s", json.dumps(dict(report["counts"])))
    return 0


def _hc_render_args(p: argparse.ArgumentParser) -> None:
    _hc_args(p)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--marker", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("render-handcrafted", _hc_render_args)
def _hc_render(args: argparse.Namespace) -> int:
    """Render, RMS-filter and embed one shard of a hand-crafted preset store."""
    from synthproxy.pipeline.handcrafted import render_handcrafted_shard

    _threads(args.threads)
    log.info("shard done: %s", json.dumps(render_handcrafted_shard(_hc_plan(args), args.store, args.shard,
                                                                     args.marker)))
    return 0


def _hc_finalize_args(p: argparse.ArgumentParser) -> None:
    _hc_args(p)
    p.add_argument("--import-report", required=True, type=Path)
    p.add_argument("--shard-markers", nargs="+", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("finalize-handcrafted", _hc_finalize_args)
def _hc_finalize(args: argparse.Namespace) -> int:
    """Check a hand-crafted store is complete and count what each import step kept."""
    from synthproxy.pipeline.handcrafted import finalize_handcrafted

    stats = finalize_handcrafted(_hc_plan(args), args.store, args.import_report, args.shard_markers, args.out)
    log.info("hand-crafted presets: %s", json.dumps(stats["counts"]))
    return 0


def _hc_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stats", nargs="+", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)


@command("handcrafted-import-table", _hc_table_args)
def _hc_table(args: argparse.Namespace) -> int:
    """Table of counts at each hand-crafted import step (CSV, Markdown)."""
    from synthproxy.pipeline.handcrafted import import_table

    import_table(args.stats, args.out_prefix)
    return 0


def _fetch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--url", help="archive URL (default: the pinned GitHub commit)")


@command("fetch-dx7", _fetch_args)
def _fetch(args: argparse.Namespace) -> int:
    """Download the public DX7 cartridge compilation (pinned commit, content checksum verified)."""
    from synthproxy.presets.fetch import fetch_dx7_cartridges

    log.info("DX7 cartridges ready in %s", fetch_dx7_cartridges(args.dest, args.url))
    return 0


def _settings_json(text: str | None) -> dict:
    """``--settings-json`` value: a JSON object, or ``@path`` of a JSON file."""
    if not text:
        return {}
    try:
        data = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthProxyError(f"--settings-json: cannot read a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise SynthProxyError("--settings-json: expected a JSON object")
    return data


def _explicit(args: argparse.Namespace, names: list[str]) -> dict:
    """Arguments given on the command line (they override --settings-json)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-store", required=True, type=Path)
    p.add_argument("--val-store", required=True, type=Path)
    p.add_argument("--embedding", required=True, help="embedding key, e.g. mel128_avg")
    p.add_argument("--arch", required=True, help="mlp_oh, hn_oh, hn_pt, hn_ptgru or tfm")
    p.add_argument("--out-dir", required=True, type=Path, help="checkpoints, history.csv, settings.json")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int)
    p.add_argument("--settings-json", help="other TrainSettings fields as JSON (or @file.json)")
    p.add_argument("--summary", type=Path, help="write the run's summary (best scores, paths) as JSON")
    p.add_argument("--lr-from", type=Path, help="an HPO best_params.json whose learning rate to use")


@command("train-encoder", _train_args)
def _train_encoder(args: argparse.Namespace) -> int:
    """Train a preset encoder on a store's embeddings (resumes from out-dir/last.pt when present)."""
    from synthproxy.training.trainer import TrainSettings, train_encoder

    names = ["train_store", "val_store", "embedding", "arch", "out_dir", "epochs", "batch_size", "lr", "seed",
             "device", "threads"]
    settings = _settings_json(args.settings_json) | _explicit(args, names)
    if args.lr_from:
        best = json.loads(args.lr_from.read_text())
        if "lr" not in best.get("train", {}):
            raise SynthProxyError(f"{args.lr_from}: the best HPO trial sets no learning rate ('train.lr')")
        settings["lr"] = float(best["train"]["lr"])
    result = train_encoder(TrainSettings.from_dict(settings))
    summary = {"out_dir": str(result.out_dir), "arch": args.arch, "lr": settings.get("lr"),
               "epochs_done": result.epochs_done, "best_mrr": result.best_mrr,
               "best_mrr_epoch": result.best_mrr_epoch, "best_l1": result.best_l1,
               "best_l1_epoch": result.best_l1_epoch, "n_params": result.n_params,
               "checkpoints": {k: str(v) for k, v in result.checkpoints.items()}}
    if args.summary:
        from synthproxy.pipeline.dataset import write_json_atomic

        write_json_atomic(args.summary, summary)
    log.info("training done: %s", json.dumps(summary))
    return 0


def _eval_encoder_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path, help="test store")
    p.add_argument("--out", required=True, type=Path, help="JSON file with the scores")
    p.add_argument("--n-runs", type=int, help="runs (default 100, as the paper)")
    p.add_argument("--k", type=int, help="presets per run (default 4096, as the paper)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.add_argument("--threads", type=int)
    p.add_argument("--settings-json", help="other evaluate_checkpoint arguments as JSON (or @file.json)")
    p.add_argument("--synth", help="synth name recorded with the scores (for the tables)")


@command("evaluate-encoder", _eval_encoder_args)
def _evaluate_encoder(args: argparse.Namespace) -> int:
    """Evaluate an encoder checkpoint on a store: MRR and L1, mean ± std over runs (paper Sec. 6.1.2)."""
    import inspect

    from synthproxy.pipeline.dataset import write_json_atomic
    from synthproxy.training.evaluate import evaluate_checkpoint

    if args.threads:
        _threads(args.threads)
    kwargs = _settings_json(args.settings_json) | _explicit(args, ["n_runs", "k", "seed", "device"])
    valid = set(inspect.signature(evaluate_checkpoint).parameters) - {"checkpoint", "store"}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise SynthProxyError(f"unknown evaluation setting(s) {unknown}; valid: {sorted(valid)}")
    scores = evaluate_checkpoint(args.checkpoint, args.store, **kwargs) | {"synth": args.synth}
    write_json_atomic(args.out, scores)
    log.info("MRR %.4f ± %.4f, L1 %.4f ± %.4f (%d runs of %d presets)", scores["mrr_mean"], scores["mrr_std"],
             scores["l1_mean"], scores["l1_std"], scores["n_runs"], scores["k"])
    return 0


def _hpo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-store", required=True, type=Path, help="HPO training store")
    p.add_argument("--val-store", required=True, type=Path, help="HPO validation store")
    p.add_argument("--embedding", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--out-dir", required=True, type=Path, help="trials.csv, best_params.json (and optuna.db)")
    p.add_argument("--space", help="all, opt or auto (default: opt for Dexed, all otherwise)")
    p.add_argument("--n-trials", type=int, help="total trials of the study (finished ones are not redone)")
    p.add_argument("--n-startup-trials", type=int, help="QMC trials before TPE")
    p.add_argument("--storage", help="Optuna storage URL shared by parallel workers (default sqlite in out-dir)")
    p.add_argument("--study-name")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--settings-json", help="other HPOSettings fields as JSON (or @file.json)")


@command("hpo", _hpo_args)
def _hpo(args: argparse.Namespace) -> int:
    """Optuna study of an encoder's hyperparameters: QMC (Sobol) start-up then TPE, resumable."""
    from synthproxy.training.hpo import HPOSettings, run_hpo

    if args.threads:
        _threads(args.threads)
    names = ["train_store", "val_store", "embedding", "arch", "out_dir", "space", "n_trials", "n_startup_trials",
             "storage", "study_name", "seed"]
    result = run_hpo(HPOSettings.from_dict(_settings_json(args.settings_json) | _explicit(args, names)))
    log.info("study %s: %d trials finished (%d new), best MRR %s with %s", result.study_name, result.n_finished,
             result.n_new, result.best_value, json.dumps(result.best_params))
    return 0


def _dist_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--pair", nargs=3, action="append", required=True, metavar=("SYNTH", "SYNTHETIC", "HANDCRAFTED"),
                   help="a synth and its synthetic and hand-crafted stores (repeatable)")
    p.add_argument("--key", required=True, help="embedding key, e.g. mel128_avg")
    p.add_argument("--out-prefix", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path)
    p.add_argument("--projections", required=True, type=Path)


@command("distribution", _dist_args)
def _distribution(args: argparse.Namespace) -> int:
    """UMAP figure and Wasserstein table of synthetic vs hand-crafted presets (paper Fig. 3)."""
    from synthproxy.analysis.distribution import compare, settings_from_config

    cfg = _cfg(args)
    pairs = {s: (Path(a), Path(b)) for s, a, b in args.pair}
    print(compare(pairs, args.key, settings_from_config(cfg), args.out_prefix, args.figure, args.projections)
          .to_string(index=False))
    return 0


def _eval_hc_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path, help="hand-crafted store")
    p.add_argument("--synth", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n-runs", type=int, default=100)
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)


@command("evaluate-handcrafted", _eval_hc_args)
def _evaluate_hc(args: argparse.Namespace) -> int:
    """Evaluate a synthetic-trained encoder on the valid hand-crafted presets (paper Table 4)."""
    from synthproxy.analysis.encoder_results import evaluate_handcrafted
    from synthproxy.pipeline.dataset import write_json_atomic

    _threads(args.threads)
    scores = evaluate_handcrafted(args.checkpoint, args.store, args.n_runs, args.k, args.seed) | {"synth": args.synth}
    write_json_atomic(args.out, scores)
    log.info("hand-crafted: MRR %.4f ± %.4f, L1 %.4f ± %.4f", scores["mrr_mean"], scores["mrr_std"],
             scores["l1_mean"], scores["l1_std"])
    return 0


def _enc_tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", nargs="+", required=True, type=Path)
    p.add_argument("--summaries", nargs="+", required=True, type=Path)
    p.add_argument("--histories", nargs="+", required=True, type=Path)
    p.add_argument("--hpo", nargs="*", default=[], type=Path)
    p.add_argument("--specs", nargs="+", required=True, help="synth=spec.yaml pairs")
    p.add_argument("--out-dir", required=True, type=Path)


@command("encoder-tables", _enc_tables_args)
def _encoder_tables(args: argparse.Namespace) -> int:
    """Table 3 (synthetic), encoder sizes, HPO results and training curves."""
    from synthproxy.analysis import encoder_results as er

    trained = []
    for p in args.summaries:  # results/models/<synth>/<arch>/summary.json
        trained.append(json.loads(p.read_text()) | {"synth": p.parent.parent.name, "arch": p.parent.name})
    print(er.synthetic_table(args.scores, args.out_dir / "synthetic").to_string(index=False))
    specs = dict(s.split("=", 1) for s in args.specs)
    print(er.parameter_table(specs, trained, args.out_dir / "encoder_parameters").to_string(index=False))
    er.training_curves({(p.parent.parent.name, p.parent.name): p for p in args.histories},
                       args.out_dir / "training_curves.png")
    er.hpo_table(args.hpo, args.out_dir / "hpo")
    return 0


def _hc_eval_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hand", nargs="+", required=True, type=Path)
    p.add_argument("--synthetic", nargs="+", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)


@command("handcrafted-table", _hc_eval_table_args)
def _handcrafted_table(args: argparse.Namespace) -> int:
    """Table 4: encoders on hand-crafted presets with the relative difference to synthetic results."""
    from synthproxy.analysis.encoder_results import handcrafted_table

    print(handcrafted_table(args.hand, args.synthetic, args.out_prefix).to_string(index=False))
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
