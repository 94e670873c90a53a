"""Differentiable-synth throughput (paper 2): run on demand, prints x realtime, steps/s and ratios against targets.

    .venv/bin/python benchmarks/ddsp_throughput.py [--quick] [--variants fx_env raw ...] [--batches 1 16 64]
        [--threads 1] [--hidden 256 1024] [--train-batches 16 64]

1. Batched render speed of ``synthproxy.ddsp.DDSPSynth`` (16 kHz, 4-s clips, note-off at 3 s: the ``ddsp``
   defaults) for every variant and batch size, in x realtime (seconds of audio rendered per second of wall
   time), on ``--threads`` CPU threads (default one core): forward only (no grad), and forward + backward of
   the multi-scale spectral loss (``synthproxy.metrics.spectral.MultiScaleSpectralLoss``, paper settings)
   against a second render, gradients w.r.t. every input. Parameters from ``DDSPSynth.sample_params``.
   Target: FX-Env forward at batch 64 >= 50x realtime per core.
2. Training steps/s of paper 2's GRU estimator (``synthproxy.nn.estimators.GRUEstimator``) on FX-Env, at a
   small (hidden 256) and the paper's (hidden 1024) size, batch 16 and 64: the step of
   ``synthproxy.matching.ddsp_train`` (estimator on the log-mel features, the synth renders the prediction,
   multi-scale spectral loss + 20 x parameter L1, finiteness check, Adam step). The targets are rendered by the
   synth and their features computed once, before timing, as the workflow stores them with the data set.
   No target (reported for the record).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import best_of, result  # noqa: E402

from synthproxy.audio.features import LogMel  # noqa: E402
from synthproxy.config import validate_config  # noqa: E402
from synthproxy.ddsp import DDSPSynth  # noqa: E402
from synthproxy.matching.ddsp_train import Estimate, param_l1  # noqa: E402
from synthproxy.metrics.spectral import MultiScaleSpectralLoss  # noqa: E402
from synthproxy.nn.estimators import GRUEstimator  # noqa: E402

VARIANTS = ("raw", "raw_env", "fx", "fx_env", "raw_f0", "fx_f0", "unordered")
TARGET_VARIANT, TARGET_BATCH, TARGET_X = "fx_env", 64, 50.0
PARAM_SCALE = 20.0  # paper 2: parameter L1 x 20



def ddsp_settings() -> dict[str, Any]:
    """The ``ddsp`` section (defaults filled) of config/config.yaml, or of config/tiny.yaml when it has none."""
    for name in ("config.yaml", "tiny.yaml"):
        raw = yaml.safe_load((REPO / "config" / name).read_text())
        if "ddsp" in raw:
            return validate_config(raw, REPO)["ddsp"]
    raise SystemExit("neither config/config.yaml nor config/tiny.yaml has a ddsp section")



def make_synth(variant: str, d: dict[str, Any]) -> DDSPSynth:
    return DDSPSynth(variant, sample_rate=int(d["sample_rate"]), duration=float(d["duration"]),
                     note_off=float(d["note_off"]))


def render_point(synth: DDSPSynth, mss: MultiScaleSpectralLoss, batch: int, gen: torch.Generator, repeats: int,
                 repeats_backward: int) -> tuple[float, float]:
    """x realtime of one batch size: forward (no grad), and forward + backward of the MSS loss."""
    params = synth.sample_params(batch, gen)
    with torch.no_grad():
        target = synth(*synth.sample_params(batch, gen))

    def forward() -> None:
        with torch.no_grad():
            synth(*params)

    def backward() -> None:
        inputs = [None if t is None else t.clone().requires_grad_() for t in params]
        mss(target, synth(*inputs)).backward()

    audio_s = batch * synth.duration
    return audio_s / best_of(forward, repeats), audio_s / best_of(backward, repeats_backward)


def render_speed(args: argparse.Namespace, d: dict[str, Any]) -> None:
    mss = MultiScaleSpectralLoss()
    for variant in args.variants:
        synth = make_synth(variant, d)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            synth(*synth.sample_params(2, gen))  # warm-up (allocator, first-call costs)
        for batch in args.batches:
            fwd, bwd = render_point(synth, mss, batch, gen, args.repeats, args.repeats_backward)
            is_target = (variant, batch) == (TARGET_VARIANT, TARGET_BATCH)
            goal = f" (target >= {TARGET_X:.0f}x: {fwd / TARGET_X:.2f}x)" if is_target else ""
            print(f"{variant:9s} batch {batch:3d}: forward {fwd:7.1f}x realtime{goal}, forward+backward (MSS) "
                  f"{bwd:6.1f}x realtime", flush=True)
            if is_target:
                result(f"{variant} forward b{batch} ({args.threads}t)", fwd, "x realtime", f">={TARGET_X:g}",
                       fwd / TARGET_X)
                result(f"{variant} forward+backward b{batch} ({args.threads}t)", bwd, "x realtime", "-", None)


def gru_steps(args: argparse.Namespace, d: dict[str, Any]) -> None:
    variant = args.train_variant
    synth = make_synth(variant, d)
    features = LogMel.from_config(dict(d["features"]), synth.sample_rate)
    mss = MultiScaleSpectralLoss()
    gen = torch.Generator().manual_seed(1)
    for hidden in args.hidden:
        for batch in args.train_batches:
            static, dynamic, f0 = synth.sample_params(batch, gen)
            with torch.no_grad():
                audio = synth(static, dynamic, f0)
            x = features(audio)  # (B, n_mels, frames): stored with the data set in the workflow
            torch.manual_seed(0)
            model = GRUEstimator(synth.n_static, synth.n_dynamic, n_mels=features.n_mels, hidden_size=hidden,
                                 channels=args.channels)
            model.train()
            opt = torch.optim.Adam(model.parameters(), lr=5e-3)

            def step(model: GRUEstimator = model, opt: torch.optim.Optimizer = opt, x: torch.Tensor = x,
                     audio: torch.Tensor = audio, static: torch.Tensor = static, dynamic: Any = dynamic,
                     f0: Any = f0) -> None:
                est = Estimate(model(x), synth)
                audio_hat = synth(est.static, est.dynamic, f0)
                loss = PARAM_SCALE * param_l1(est, static, dynamic) + mss(audio, audio_hat)
                if not torch.isfinite(loss):
                    raise RuntimeError("non-finite loss in the benchmark step")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            step()  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            rate = args.steps / (time.perf_counter() - t0)
            n_params = sum(p.numel() for p in model.parameters())
            print(f"GRU estimator hidden {hidden:4d} ({n_params:>9,} parameters), {variant}, batch {batch:3d}: "
                  f"{rate:6.3f} steps/s ({rate * batch:6.1f} clips/s; MSS + 20 x parameter L1, synth in the loop)",
                  flush=True)
            result(f"GRU h{hidden} {variant} b{batch} training steps/s ({args.threads}t)", rate, "steps/s", "-", None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="variants fx_env and raw, one repeat, GRU hidden 256 at batch 16 (2 steps)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16, 64])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the target is per core)")
    ap.add_argument("--repeats", type=int, default=3, help="forward timings per point (best kept)")
    ap.add_argument("--repeats-backward", type=int, default=2, help="forward+backward timings per point")
    ap.add_argument("--train-variant", default="fx_env", choices=VARIANTS)
    ap.add_argument("--hidden", nargs="+", type=int, default=[256, 1024], help="GRU sizes (paper: 1024)")
    ap.add_argument("--channels", type=int, default=64, help="conv channels of the GRU estimator (paper: 64)")
    ap.add_argument("--train-batches", nargs="+", type=int, default=[16, 64])
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per point (after one warm-up)")
    ap.add_argument("--skip-render", action="store_true")
    ap.add_argument("--skip-training", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.variants, args.repeats, args.repeats_backward = ["fx_env", "raw"], 1, 1
        args.hidden, args.train_batches, args.steps = [256], [16], 2
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    d = ddsp_settings()
    print(f"DDSP synth at {d['sample_rate']} Hz, {d['duration']} s clips, {args.threads} thread(s)", flush=True)
    if not args.skip_render:
        render_speed(args, d)
    if not args.skip_training:
        gru_steps(args, d)


if __name__ == "__main__":
    main()
