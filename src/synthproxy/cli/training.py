"""Steps of ``workflow/rules/training.smk``: preset encoders (paper Sec. 6, App. 11.3): hpo, train-encoder,
evaluate-synthetic (Table 3) and encoder-tables."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from synthproxy.cli.common import command, explicit, set_threads, settings_json

log = logging.getLogger("synthproxy")


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
def hpo(args: argparse.Namespace) -> int:
    """Optuna study of an encoder's hyperparameters: QMC (Sobol) start-up then TPE, resumable."""
    from synthproxy.proxy.hpo import HPOSettings, run_hpo

    set_threads(args.threads)
    names = ["train_store", "val_store", "embedding", "arch", "out_dir", "space", "n_trials", "n_startup_trials",
             "storage", "study_name", "seed"]
    result = run_hpo(HPOSettings.from_dict(settings_json(args.settings_json) | explicit(args, names)))
    log.info("study %s: %d trials finished (%d new), best MRR %s with %s", result.study_name, result.n_finished,
             result.n_new, result.best_value, json.dumps(result.best_params))
    return 0


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
    p.add_argument("--optimizer-from", type=Path,
                   help="an HPO best_params.json whose optimizer (lr, betas, eps) to use")


@command("train-encoder", _train_args)
def train_encoder(args: argparse.Namespace) -> int:
    """Train a preset encoder on a store's embeddings (resumes from out-dir/last.pt when present)."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.proxy.train import TrainSettings, run_summary, settings_from_hpo
    from synthproxy.proxy.train import train_encoder as run

    names = ["train_store", "val_store", "embedding", "arch", "out_dir", "epochs", "batch_size", "lr", "seed",
             "device", "threads"]
    settings = settings_json(args.settings_json) | explicit(args, names)
    if args.optimizer_from:
        settings = settings_from_hpo(settings, args.optimizer_from)
    train_settings = TrainSettings.from_dict(settings)
    summary = run_summary(run(train_settings), train_settings)
    if args.summary:
        write_json_atomic(args.summary, summary)
    log.info("training done: %s", json.dumps(summary))
    return 0


def _eval_args(p: argparse.ArgumentParser) -> None:
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


@command("evaluate-synthetic", _eval_args)
def evaluate_synthetic(args: argparse.Namespace) -> int:
    """Evaluate an encoder checkpoint on a store: MRR and L1, mean ± std over runs (paper Sec. 6.1.2)."""
    from synthproxy.data.atomic import write_json_atomic
    from synthproxy.proxy.evaluate import evaluate_checkpoint, evaluation_kwargs

    set_threads(args.threads)
    kwargs = evaluation_kwargs(settings_json(args.settings_json) | explicit(args, ["n_runs", "k", "seed", "device"]))
    scores = evaluate_checkpoint(args.checkpoint, args.store, **kwargs) | {"synth": args.synth}
    write_json_atomic(args.out, scores)
    log.info("MRR %.4f ± %.4f, L1 %.4f ± %.4f (%d runs of %d presets)", scores["mrr_mean"], scores["mrr_std"],
             scores["l1_mean"], scores["l1_std"], scores["n_runs"], scores["k"])
    return 0


def _tables_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scores", nargs="+", required=True, type=Path)
    p.add_argument("--summaries", nargs="+", required=True, type=Path)
    p.add_argument("--histories", nargs="+", required=True, type=Path)
    p.add_argument("--hpo", nargs="*", default=[], type=Path)
    p.add_argument("--specs", nargs="+", required=True, help="synth=spec.yaml pairs")
    p.add_argument("--out-dir", required=True, type=Path)


@command("encoder-tables", _tables_args)
def encoder_tables(args: argparse.Namespace) -> int:
    """Table 3 (synthetic), encoder sizes, HPO results and training curves."""
    from synthproxy.report.encoders import encoder_tables as run

    run(args.scores, args.summaries, args.histories, args.hpo, dict(s.split("=", 1) for s in args.specs), args.out_dir)
    return 0
