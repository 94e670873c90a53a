"""Sound-matching throughput (paper 1 Sec. 8): run on demand, prints steps/s, latencies and ratios against targets.

    .venv/bin/python benchmarks/matching_throughput.py [--quick] [--sizes config|tiny|paper] [--batch-size 16]
        [--proxies hn_oh tfm] [--threads 1 2] [--results results]

1. Estimator training steps/s on the CPU: the CNN estimator (log-mel in, PresetHead logits out) trained with
   the parameter loss only, and with the parameter loss plus the proxy embedding loss through a frozen preset
   encoder (``build_encoder`` at config/config.yaml's ``training.archs`` sizes, random weights: the speed does
   not depend on their values), with the hard and the soft relaxation. The step is the one of
   ``synthproxy.matching.train`` (forward, loss, finiteness check, zero_grad, backward, AdamW step) on a batch
   of real Dexed renders (features and target embeddings computed from them). Estimator sizes: the
   ``matching`` section of config/config.yaml, or config/tiny.yaml's when the default config has none
   (``--sizes`` picks one explicitly; ``paper`` is config/paper.yaml's, the official 4.1M-parameter CNN).
   Target: the proxy loss costs <= 1.5x the step time, i.e. steps/s with proxy / without >= 0.67.
2. ``match`` latency: one full ``synthproxy.matching.invert.match_file`` call (what ``python -m synthproxy match
   IN.wav --synth S --out F`` runs: load the estimator, features, prediction, preset file written and read back,
   preview render by the real engine, distances) on a 4-s WAV rendered by the synth itself, on one CPU core;
   median of ``--repeats`` calls per synth. Needs estimators of a finished workflow run (``--results``).
   Target: < 2 s per 4-s WAV. The cold command line (a new Python process, imports included) is reported too.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import yaml
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import result  # noqa: E402

from synthproxy.audio.features import MinMaxScaler  # noqa: E402
from synthproxy.config import load_config, validate_config  # noqa: E402
from synthproxy.errors import SynthProxyError  # noqa: E402
from synthproxy.matching.datasets import MatchingPlan, matching_models  # noqa: E402
from synthproxy.matching.estimator import EstimatorSettings, make_estimator  # noqa: E402
from synthproxy.matching.invert import choose_model, estimator_path, match_file  # noqa: E402
from synthproxy.matching.losses import ProxyEmbeddingLoss, parameter_loss  # noqa: E402
from synthproxy.nn.factory import build_encoder, count_parameters  # noqa: E402
from synthproxy.presets.sampling import PresetSampler  # noqa: E402
from synthproxy.render import RenderEmbedder  # noqa: E402

STEP_RATIO_TARGET = 0.67  # steps/s with the proxy loss / without: the proxy costs <= 1.5x the step time
MATCH_TARGET_S = 2.0  # seconds per 4-s WAV, one core
WAV_SECONDS = 4.0
DEFAULT_RESULTS = REPO / "results"  # the workflow run of this checkout



def skip(name: str, reason: str) -> None:
    """A measurement that could not run, with the reason (run_all lists it as skipped)."""
    print(f"SKIP\t{name}\t{reason}", flush=True)


# ---- 1. estimator training steps/s ---------------------------------------------------------------------
def matching_config(sizes: str) -> tuple[dict[str, Any], str]:
    """config/config.yaml with a ``matching`` section: its own (``config``), or tiny.yaml's / paper.yaml's."""
    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if sizes == "config" and "matching" in raw:
        return validate_config(raw, REPO), "config/config.yaml"
    source = "paper" if sizes == "paper" else "tiny"
    other = yaml.safe_load((REPO / "config" / f"{source}.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["matching"] = other["matching"]
    note = " (config/config.yaml has no matching section)" if sizes == "config" else ""
    return validate_config(raw, REPO), f"config/{source}.yaml{note}"


def real_batch(plan: MatchingPlan, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random presets rendered by the real engine: scaled log-mel ``(n, 1, mels, frames)``, presets, targets."""
    rep = plan.reps[plan.key]
    core = RenderEmbedder(plan.spec, plan.render, {plan.key: rep}, plan.plugin)
    presets = PresetSampler(plan.spec, seed, "train").sample(np.arange(n))
    audio = np.stack([core.render(v) for v in plan.spec.to_plugin(presets)]).astype(np.float32)
    target = core.embed({plan.sample_rate: audio}, checked=False)[plan.key]
    core.close()
    feats = plan.features(audio)
    scaler = MinMaxScaler(float(feats.min()), float(feats.max()))  # the train split's scalar min/max in the workflow
    return scaler(feats)[:, None].contiguous(), torch.from_numpy(presets).float(), torch.from_numpy(target)


def steps_per_second(steps_fns: dict[str, Callable[[], float]], steps: int, repeats: int, warmup: int = 2
                     ) -> dict[str, float]:
    """Steps/s of each training step: best of ``repeats`` timings of ``steps`` steps, the variants interleaved
    within every repeat so that a burst of other work on the machine hits them alike."""
    for step in steps_fns.values():
        for _ in range(warmup):
            step()
    best = dict.fromkeys(steps_fns, float("inf"))
    for _ in range(repeats):
        for name, step in steps_fns.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: steps / seconds for name, seconds in best.items()}


def make_step(plan: MatchingPlan, settings: EstimatorSettings, batch: tuple[torch.Tensor, ...],
              proxy: torch.nn.Module | None, relaxation: str) -> Callable[[], float]:
    """One training step of ``synthproxy.matching.train`` (parameter loss [+ proxy embedding loss])."""
    torch.manual_seed(0)
    model = make_estimator(settings, plan)
    model.train()
    head = model.head
    audio_loss = ProxyEmbeddingLoss(proxy, head, relaxation) if proxy is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=settings.betas,
                            weight_decay=settings.weight_decay)
    x, p, a = batch

    def step() -> float:
        logits = model(x)
        loss = parameter_loss(head, logits, p, settings.label_smoothing, settings.cat_weight)
        if audio_loss is not None:
            loss = loss + audio_loss(logits, a)
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss in the benchmark step")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def training_steps(args: argparse.Namespace) -> None:
    cfg, source = matching_config(args.sizes)
    plan = MatchingPlan(cfg, args.synth)
    settings = EstimatorSettings.from_dict(plan.estimator_settings())
    bs = args.batch_size or settings.batch_size
    n_mels, frames = plan.feature_shape
    t0 = time.perf_counter()
    batch = real_batch(plan, bs)
    print(f"[{args.synth}] estimator sizes from {source}: {settings.estimator} {settings.estimator_options}, "
          f"{count_parameters(make_estimator(settings, plan)):,} parameters, batch {bs} of {n_mels}x{frames} "
          f"log-mels ({bs} real renders in {time.perf_counter() - t0:.1f} s); {args.steps} steps, best of "
          f"{args.repeats}", flush=True)
    archs = cfg["training"]["archs"]
    out_dim = batch[2].shape[1]
    proxies = {}
    for arch in args.proxies:
        torch.manual_seed(0)
        proxies[arch] = build_encoder(arch, plan.spec.layout, out_dim, **dict(archs.get(arch, {}).get("encoder", {})))
    for threads in args.threads:
        torch.set_num_threads(threads)
        with threadpool_limits(threads):
            fns = {"param": make_step(plan, settings, batch, None, "hard")}
            fns |= {f"{arch} {relaxation}": make_step(plan, settings, batch, proxy, relaxation)
                    for arch, proxy in proxies.items() for relaxation in ("hard", "soft")}
            rates = steps_per_second(fns, args.steps, args.repeats)
        base = rates.pop("param")
        print(f"[{args.synth}] {threads} thread(s): parameter loss only {base:7.2f} steps/s", flush=True)
        result(f"{args.synth} param-loss steps/s ({threads}t)", base, "steps/s", "-", None)
        for key, rate in rates.items():
            arch, relaxation = key.split()
            ratio = rate / base
            print(f"[{args.synth}] {threads} thread(s): + proxy {arch:8s} ({count_parameters(proxies[arch]):>9,} "
                  f"parameters) {relaxation}: {rate:7.2f} steps/s, ratio {ratio:.2f}x "
                  f"(step time x{1 / ratio:.2f}; target >= {STEP_RATIO_TARGET}x)", flush=True)
            result(f"{args.synth} proxy {arch} {relaxation} / param-loss steps/s ({threads}t)", ratio, "x",
                   f">={STEP_RATIO_TARGET}", ratio / STEP_RATIO_TARGET)


# ---- 2. match latency ------------------------------------------------------------------------------------
def trained_config(results: Path, explicit: Path | None) -> tuple[dict[str, Any] | None, str]:
    """The config the run at ``results`` was trained with: ``--match-config``, else the first of the run's
    config/config.yaml, config/tiny.yaml, then the repository's, that has a ``matching`` section."""
    candidates = [explicit] if explicit else [results.parent / "config" / "config.yaml",
                                              results.parent / "config" / "tiny.yaml",
                                              REPO / "config" / "config.yaml", REPO / "config" / "tiny.yaml"]
    for path in candidates:
        if path is not None and path.is_file():
            cfg = load_config(path)
            if "matching" in cfg:
                return cfg, str(path)
    return None, f"none of {[str(p) for p in candidates]} has a matching section"


def pick_model(cfg: dict[str, Any], results: Path, synth: str, strategy: str
               ) -> tuple[str | None, str | None, str | None]:
    """``strategy``'s estimator when trained, else any trained estimator of ``synth``: ``(model, strategy,
    relaxation)``; ``(None, model to build, None)`` when none is trained."""
    models = matching_models(cfg["matching"])
    try:
        wanted = choose_model(cfg, strategy, None)
    except SynthProxyError:
        wanted = next(iter(models))
    for m in [wanted, *(m for m in models if m != wanted)]:
        if estimator_path(results, synth, m).is_file():
            return m, *models[m]
    return None, wanted, None


def make_wav(cfg: dict[str, Any], synth: str, path: Path, max_tries: int = 64) -> None:
    """A 4-s WAV of the synth itself: the first random preset that passes the render check, trimmed to 4 s."""
    plan = MatchingPlan(cfg, synth)
    core = plan.core()
    sampler = PresetSampler(plan.spec, 1, "bench")
    audio = None
    for i in range(max_tries):
        audio = core.render(plan.spec.to_plugin(sampler.sample(np.array([i])))[0])
        if core.check(audio).ok:
            break
    core.close()
    assert audio is not None
    sf.write(path, audio[: int(WAV_SECONDS * plan.sample_rate)], plan.sample_rate, subtype="PCM_16")


def match_latency(args: argparse.Namespace) -> None:
    results = args.results.resolve()
    name = "match latency"
    if not (results / "matching").is_dir():
        for synth in args.match_synths:
            skip(f"{synth} {name}", f"no trained estimators under {results}/matching: build one with a config "
                 f"that has a matching section, e.g. snakemake --cores all results/matching/{synth}/mix_hard/"
                 "summary.json --configfile config/tiny.yaml (or its results/tables), and pass --results DIR")
        return
    cfg, cfg_source = trained_config(results, args.match_config)
    if cfg is None:
        for synth in args.match_synths:
            skip(f"{synth} {name}", cfg_source)
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d, threadpool_limits(1):
        tmp = Path(d)
        for synth in args.match_synths:
            if synth not in cfg["matching"]["synths"]:
                skip(f"{synth} {name}", f"{cfg_source}: matching.synths has no {synth}")
                continue
            model, strategy, relaxation = pick_model(cfg, results, synth, args.strategy)
            if model is None:
                skip(f"{synth} {name}", f"no trained estimator under {results}/matching/{synth}: build it with "
                     f"snakemake --cores all results/matching/{synth}/{strategy}/summary.json --configfile "
                     f"{cfg_source}")
                continue
            wav = tmp / f"{synth}_in.wav"
            make_wav(cfg, synth, wav)
            out = tmp / f"{synth}_voice{'.syx' if synth == 'dexed' else '.bank'}"
            times, report = [], {}
            try:
                for _ in range(args.repeats_match):
                    t0 = time.perf_counter()
                    report = match_file(wav, synth, out, cfg, results, strategy, relaxation)
                    times.append(time.perf_counter() - t0)
            except SynthProxyError as exc:
                skip(f"{synth} {name}", f"match_file failed: {exc}")
                continue
            med = statistics.median(times)
            print(f"[{synth}] match {WAV_SECONDS:.0f}-s WAV with {model} ({cfg_source}), 1 core: median "
                  f"{med:.3f} s of {len(times)} calls (first {times[0]:.3f} s, min {min(times):.3f} s): "
                  f"{med / MATCH_TARGET_S:.2f}x the budget (target < {MATCH_TARGET_S:.0f} s); a_mean "
                  f"{report['distances'].get('a_mean', math.nan):.3f}", flush=True)
            result(f"{synth} match latency (4-s WAV, 1 core)", med, "s", f"<{MATCH_TARGET_S:g}", MATCH_TARGET_S / med)
            if args.cli:
                cmd = [sys.executable, "-m", "synthproxy", "match", str(wav), "--synth", synth, "--out", str(out),
                       "--strategy", strategy, *(["--relaxation", relaxation] if relaxation else []),
                       "--results", str(results), "--config", cfg_source]
                env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                           PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
                cli_s = time.perf_counter() - t0
                if proc.returncode != 0:
                    skip(f"{synth} match CLI cold start", f"the command failed: {proc.stderr.strip()[-300:]}")
                    continue
                print(f"[{synth}] python -m synthproxy match (new process, imports included): {cli_s:.2f} s",
                      flush=True)
                result(f"{synth} match CLI cold (new process)", cli_s, "s", "-", None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 steps x 3 repeats, 1 thread, 3 match calls")
    ap.add_argument("--synth", default="dexed", help="synth of the training-step measurement")
    ap.add_argument("--sizes", choices=("config", "tiny", "paper"), default="config",
                    help="estimator sizes: config/config.yaml's matching section (tiny.yaml's when it has none), "
                         "tiny.yaml's or paper.yaml's")
    ap.add_argument("--batch-size", type=int, help="default: matching.train.batch_size of the chosen sizes")
    ap.add_argument("--proxies", nargs="+", default=["hn_oh", "tfm"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder of a finished run")
    ap.add_argument("--match-config", type=Path, help="the config that run was trained with (default: found)")
    ap.add_argument("--match-synths", nargs="+", default=["dexed", "amsynth"])
    ap.add_argument("--strategy", default="mix", help="preferred estimator strategy (any trained one otherwise)")
    ap.add_argument("--repeats-match", type=int, default=5)
    ap.add_argument("--no-cli", dest="cli", action="store_false", help="skip the cold command-line timing")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-match", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats, args.threads, args.repeats_match = 8, 3, [1], 3
    os.chdir(REPO)  # the configs' relative paths (synth specs) resolve from the repository
    if not args.skip_training:
        training_steps(args)
    if not args.skip_match:
        match_latency(args)


if __name__ == "__main__":
    main()
