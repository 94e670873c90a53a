"""Steps of ``workflow/rules/ddsp.smk``: differentiable-synth sound matching (paper 2) and the proxy-gradient study:
ddsp-data, ddsp-train, ddsp-evaluate, ddsp-benchmark, ddsp-proxy, proxy-gradients, ddsp-tables."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from synthproxy.cli.common import command, config_args, load_cfg, set_threads

log = logging.getLogger("synthproxy")


def _plan(args: argparse.Namespace):
    from synthproxy.matching.ddsp_data import DDSPPlan

    return DDSPPlan(load_cfg(args), args.variant)


def _data_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--variant", required=True)
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--marker", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("ddsp-data", _data_args)
def ddsp_data(args: argparse.Namespace) -> int:
    """Sample, render (DDSP synth), check and embed a variant's in-domain data, split 80/10/10."""
    from synthproxy.matching.ddsp_data import build_ddsp_data

    set_threads(args.threads)
    info = build_ddsp_data(_plan(args), args.out_dir, args.marker)
    log.info("ddsp data: %s", json.dumps(info))
    return 0


def _train_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--variant", required=True)
    p.add_argument("--model", required=True, help="ploss, synth, real, mixed, conv2d, proxy_emb or exact_emb")
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--ood-store", type=Path)
    p.add_argument("--proxy", type=Path, help="ddsp-proxy's summary.json (for proxy_emb)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("ddsp-train", _train_args)
def ddsp_train(args: argparse.Namespace) -> int:
    """Train a paper-2 estimator with a strategy's parameter, spectral (and embedding) losses."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.errors import ConfigError
    from synthproxy.matching.ddsp_data import ddsp_strategies
    from synthproxy.matching.ddsp_study import embedding_for
    from synthproxy.matching.ddsp_train import DDSPTrainSettings, train_ddsp_estimator

    set_threads(args.threads)
    cfg = load_cfg(args)
    plan = _plan(args)
    models = plan.models()
    if args.model not in models:
        raise ConfigError(f"--model {args.model!r}: not an estimator of variant {args.variant}; "
                          f"models: {sorted(models)}")
    m = models[args.model]
    settings = DDSPTrainSettings.from_dict({"seed": cfg["seed"],
                                            "threads": args.threads} | dict(plan.d["train"])
                                           | {"estimator": m["estimator"],
                                              "estimator_options": dict(plan.d["estimator"]["options"])
                                              if m["estimator"] == plan.d["estimator"]["name"] else {}})
    embedding = embedding_for(m["embedding"], plan, args.proxy) if m["embedding"] else None
    summary = train_ddsp_estimator(plan, args.data_dir, args.ood_store, ddsp_strategies(plan.d)[m["strategy"]],
                                   settings, args.out_dir, args.model, embedding, m["embedding"])
    write_json_atomic(args.summary, summary)
    log.info("ddsp %s %s: best validation spectral loss %.4f", args.variant, args.model, summary["best_val_spectral"])
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--variant", required=True)
    p.add_argument("--estimator", required=True, type=Path)
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--ood-store", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("ddsp-evaluate", _eval_args)
def ddsp_evaluate(args: argparse.Namespace) -> int:
    """LSD, MCD, loudness (and parameter L1) of an estimator's test predictions, in and out of domain."""
    from synthproxy.matching.ddsp_train import evaluate_ddsp_estimator
    from synthproxy.training.runtime import resolve_device

    set_threads(args.threads)
    plan = _plan(args)
    result = evaluate_ddsp_estimator(args.estimator, plan, args.data_dir, args.ood_store, args.out,
                                     resolve_device(plan.d["train"].get("device", "auto")))
    log.info("ddsp %s %s: in-domain %s", args.variant, result["model"], json.dumps(result["in_domain"]))
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--out-csv", required=True, type=Path, help="every sweep point (param, value, loss, grad)")
    p.add_argument("--summary-prefix", required=True, type=Path, help="per-parameter summary table (.csv/.md/.tex)")
    p.add_argument("--figure", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("ddsp-benchmark", _bench_args)
def ddsp_benchmark(args: argparse.Namespace) -> int:
    """Sec. IV: sweep each parameter around a typical preset; multi-scale loss and its analytic gradient."""
    from synthproxy.matching.ddsp_benchmark import benchmark_summary
    from synthproxy.matching.ddsp_study import run_benchmark
    from synthproxy.report.ddsp import benchmark_figure, benchmark_table

    set_threads(args.threads)
    cfg = load_cfg(args)
    df = run_benchmark(cfg, args.out_csv)
    summary = benchmark_summary(df)
    benchmark_table(summary, args.summary_prefix, cfg["ddsp"]["benchmark"])
    benchmark_figure(df, args.figure, summary)
    return 0


def _proxy_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--summaries", nargs="+", required=True, type=Path, help="the proxy stage's summary.json files")
    p.add_argument("--data-dir", required=True, type=Path, help="the fx_env in-domain data")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--summary", required=True, type=Path)
    p.add_argument("--threads", type=int, default=2)


@command("ddsp-proxy", _proxy_args)
def ddsp_proxy(args: argparse.Namespace) -> int:
    """Train a preset encoder (the proxy stage's best architecture) for the DDSP FX-Env synth."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.matching.ddsp_study import train_study_proxy

    cfg = load_cfg(args)
    summary = train_study_proxy(cfg, args.summaries, args.data_dir, args.out_dir, args.threads)
    write_json_atomic(args.summary, summary)
    log.info("ddsp proxy %s: best validation L1 %.4f", summary["arch"], summary["best_l1"])
    return 0


def _grad_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--proxy", required=True, type=Path, help="ddsp-proxy's summary.json")
    p.add_argument("--data-dir", required=True, type=Path)
    p.add_argument("--out-csv", required=True, type=Path)
    p.add_argument("--threads", type=int, default=1)


@command("proxy-gradients", _grad_args)
def proxy_gradients(args: argparse.Namespace) -> int:
    """Compare the proxy's embedding-loss gradients with the exact ones through the DDSP synth."""
    from synthproxy.matching.ddsp_study import run_gradient_study

    set_threads(args.threads)
    df = run_gradient_study(load_cfg(args), args.proxy, args.data_dir, args.out_csv)
    log.info("gradient study: %d pairs", len(df))
    return 0


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", nargs="+", required=True, type=Path)
    p.add_argument("--out-dir", required=True, type=Path)


@command("ddsp-tables", _tables_args)
def ddsp_tables(args: argparse.Namespace) -> int:
    """Tables II-IX analogs (in and out of domain) and the effect use of out-of-domain predictions."""
    from synthproxy.report.ddsp_tables import ddsp_tables as run

    run(args.scores, args.out_dir)
    return 0


def _grad_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gradients", required=True, type=Path)
    p.add_argument("--scores", nargs=2, required=True, type=Path, help="evaluations of proxy_emb and exact_emb")
    p.add_argument("--out-prefix", required=True, type=Path)
    p.add_argument("--figure", required=True, type=Path)


@command("proxy-gradients-table", _grad_table_args)
def proxy_gradients_table(args: argparse.Namespace) -> int:
    """How faithful the proxy's gradients are, and what matching through the proxy costs against the exact loss."""
    from synthproxy.report.ddsp_tables import proxy_gradients_table as run

    run(args.gradients, args.scores, args.out_prefix, args.figure)
    return 0
