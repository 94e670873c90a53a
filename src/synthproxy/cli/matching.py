"""Steps of ``workflow/rules/matching.smk``: the out-of-domain set, sound matching with neural proxies (paper 1
Sec. 8: features, proxy finetuning, estimator training, evaluation, tables, listening page) and ``match``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from synthproxy.cli.common import command, config_args, load_cfg, set_threads

log = logging.getLogger("synthproxy")


def _ood_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--marker", required=True, type=Path)


@command("build-out-of-domain", _ood_args)
def build_out_of_domain(args: argparse.Namespace) -> int:
    """Build the out-of-domain sound set: real NSynth when configured, else GM notes rendered with FluidSynth."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.soundsets.build import build_out_of_domain_set

    cfg = load_cfg(args)
    ood = cfg["out_of_domain"]
    nsynth = Path(ood["nsynth"]) if ood.get("nsynth") else None
    settings = dict(ood["settings"]) | ({"kind": "nsynth"} if nsynth else {})
    stats = build_out_of_domain_set(settings, args.store, nsynth)
    write_json_atomic(args.marker, stats)
    log.info("out-of-domain set: %s", json.dumps({k: stats[k] for k in ("kind", "clips", "counts")}))
    return 0


def _ood_summary_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--out-prefix", required=True, type=Path)


@command("out-of-domain-summary", _ood_summary_args)
def out_of_domain_summary(args: argparse.Namespace) -> int:
    """Table of the out-of-domain set: clips per family and split, pitch and velocity ranges."""
    from synthproxy.report.tables import write_table
    from synthproxy.soundsets.build import summary_table

    table = summary_table(args.store)
    write_table(table, args.out_prefix, "Out-of-domain sounds: clips per instrument family and split (80/10/10), "
                "pitch and velocity ranges, silent notes dropped.")
    print(table.to_string(index=False))
    return 0


def _features_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--handcrafted-store", required=True, type=Path)
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--marker", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("matching-features", _features_args)
def matching_features(args: argparse.Namespace) -> int:
    """Render the chosen hand-crafted presets and store the estimator's input features (in-domain set)."""
    from synthproxy.matching.datasets import MatchingPlan, build_in_domain

    set_threads(args.threads)
    info = build_in_domain(MatchingPlan(load_cfg(args), args.synth), args.handcrafted_store, args.store, args.marker)
    log.info("matching set: %s", json.dumps(info))
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--summaries", nargs="+", required=True, type=Path, help="the synth's proxy summary.json files")
    p.add_argument("--handcrafted-store", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("finetune-proxy", _finetune_args)
def finetune_proxy(args: argparse.Namespace) -> int:
    """Finetune the chosen proxy on the hand-crafted train split; test scores before and after."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.proxy.finetune import FinetuneSettings, choose_proxy
    from synthproxy.proxy.finetune import finetune_proxy as run

    cfg = load_cfg(args)
    m = cfg["matching"]
    settings = FinetuneSettings.from_dict({"seed": cfg["seed"], "device": cfg["training"]["device"],
                                           "threads": args.threads} | dict(m["finetune"]))
    summary = run(choose_proxy(args.summaries, m["proxy_arch"]), args.handcrafted_store, args.out_dir, settings)
    write_json_atomic(args.summary, summary)
    log.info("proxy %s finetuned: test L1 %.4f -> %.4f", summary["arch"], summary["before"]["l1_mean"],
             summary["after"]["l1_mean"])
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--model", required=True, help="an estimator of the config, e.g. ploss, mix_hard, switch_soft")
    p.add_argument("--store", required=True, type=Path, help="the synth's matching store")
    p.add_argument("--proxy", type=Path, help="finetune-proxy's summary.json (needed by audio-loss strategies)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("train-estimator", _train_args)
def train_estimator(args: argparse.Namespace) -> int:
    """Train a sound-matching estimator (parameter loss + audio loss through the frozen proxy)."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.errors import ConfigError
    from synthproxy.matching.datasets import MatchingPlan
    from synthproxy.matching.train import EstimatorSettings
    from synthproxy.matching.train import train_estimator as run

    cfg = load_cfg(args)
    plan = MatchingPlan(cfg, args.synth)
    models = plan.models()
    if args.model not in models:
        raise ConfigError(f"--model {args.model!r}: not an estimator of this config; models: {sorted(models)}")
    strategy, relaxation = models[args.model]
    proxy = Path(json.loads(args.proxy.read_text())["checkpoint"]) if args.proxy else None
    settings = EstimatorSettings.from_dict({"seed": cfg["seed"]} | plan.estimator_settings(
        cfg["training"]["device"], args.threads))
    summary = run(plan, args.store, proxy, plan.strategies()[strategy], relaxation or "hard", settings,
                  args.out_dir, args.model)
    write_json_atomic(args.summary, summary)
    log.info("estimator %s: best validation a_mean %.4f at epoch %s", args.model, summary["best_val_a_mean"],
             summary["best_epoch"])
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--synth", required=True)
    p.add_argument("--estimator", required=True, type=Path, help="the estimator's best.pt")
    p.add_argument("--store", required=True, type=Path)
    p.add_argument("--ood-store", type=Path, help="the out-of-domain set")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--examples-dir", type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("evaluate-matching", _eval_args)
def evaluate_matching(args: argparse.Namespace) -> int:
    """Render an estimator's test predictions on the real synth and score them, in and out of domain."""
    from synthproxy.matching.datasets import MatchingPlan
    from synthproxy.matching.evaluate import evaluate_estimator
    from synthproxy.training.runtime import resolve_device

    set_threads(args.threads)
    cfg = load_cfg(args)
    ev = cfg["matching"]["evaluation"]
    result = evaluate_estimator(args.estimator, MatchingPlan(cfg, args.synth), args.store, args.ood_store, args.out,
                                args.examples_dir, ev["examples"], ev["out_of_domain"],
                                resolve_device(cfg["training"]["device"]))
    log.info("%s %s: in-domain a_mean %.4f", args.synth, result["model"], result["in_domain"]["a_mean"]["mean"])
    return 0


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", nargs="+", required=True, type=Path)
    p.add_argument("--examples", nargs="+", required=True, type=Path, help="examples folder of each score file")
    p.add_argument("--finetune", nargs="+", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--page", required=True, type=Path)
    p.add_argument("--report-page", required=True, type=Path)


@command("matching-tables", _tables_args)
def matching_tables(args: argparse.Namespace) -> int:
    """Tables 5-6 analogs, the proxy-finetuning table and the listening page."""
    from synthproxy.report.matching import finetune_table, listening_page
    from synthproxy.report.matching import matching_tables as tables

    in_dom, out_dom = tables(args.scores, args.out_dir)
    print(in_dom.to_string(index=False), out_dom.to_string(index=False), sep="\n\n")
    print(finetune_table(args.finetune, args.out_dir / "proxy_finetune").to_string(index=False))
    listening_page(args.scores, args.examples, args.page, args.report_page)
    return 0


def _match_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("wav", type=Path, help="the sound to match (WAV, FLAC or OGG)")
    p.add_argument("--synth", required=True)
    p.add_argument("--out", required=True, type=Path, help="preset file to write (.syx for Dexed, .bank for amSynth)")
    p.add_argument("--strategy", default="mix", help="the estimator's training schedule (default mix)")
    p.add_argument("--relaxation", help="hard or soft (default: the config's first)")
    p.add_argument("--bank", action="store_true", help="Dexed: write a 32-voice cartridge instead of one voice")
    p.add_argument("--results", type=Path, default=Path("results"), help="the workflow's results folder")
    p.add_argument("--config", type=Path, default=Path("config/config.yaml"),
                   help="the config the estimators were trained with (default config/config.yaml)")


@command("match", _match_args)
def match(args: argparse.Namespace) -> int:
    """WAV in, a preset file the real synth loads out (plus OUT.preview.wav rendered from that file)."""
    from synthproxy.config import load_config
    from synthproxy.matching.invert import match_file

    report = match_file(args.wav, args.synth, args.out, load_config(args.config), args.results, args.strategy,
                        args.relaxation, args.bank)
    d = report["distances"]
    print(f"wrote {report['preset_file']} ({report['format']}) and {report['preview']} in {report['seconds']} s; "
          f"model {report['model']}; distances to the input: " + ", ".join(f"{k} {v:.3f}" for k, v in d.items()))
    return 0
