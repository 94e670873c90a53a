"""Render-stage throughput and memory: run on demand, prints ratios against the targets.

    .venv/bin/python benchmarks/render_throughput.py [--synths dexed amsynth] [--n 192]

1. Pipeline vs bare engine, one core: the dataset stage (sampling, rendering, RMS filter, embedding,
   Zarr writes) against a bare loop rendering the very same candidates with the same engine.
   Target: >= 0.85x (renders per second).
2. Two worker processes vs one on the same total work (two shards vs one). Target: >= 1.8x.
3. Peak resident memory of a render-shard job at two dataset sizes (n and 4n). Target: flat (<= 1.1x).
4. VST synths: the dataset stage with the forked engine vs a fresh plugin instance per render. Target: >= 3x.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthproxy.config import validate_config  # noqa: E402
from synthproxy.pipeline.dataset import DatasetPlan, ShardRenderer, init_store, render_shard  # noqa: E402


def make_config(size: int, shard_size: int, chunk: int = 32) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    for stage in ("ranking", "handcrafted", "distribution", "training"):  # only the dataset stage is measured
        cfg.pop(stage, None)
    cfg["dataset"] = {"chunk_rows": chunk, "batch_size": 32,
                      "splits": {"bench": {"size": size, "shard_size": shard_size}}}
    return validate_config(cfg)


def pipeline_vs_bare(synth: str, n: int, tmp: Path) -> dict:
    torch.set_num_threads(1)
    cfg = make_config(n, n)
    plan = DatasetPlan(cfg, synth, "bench")
    store = tmp / f"{synth}_ratio.zarr"
    init_store(plan, store, tmp / f"{synth}_init.json")
    t0 = time.perf_counter()
    info = render_shard(plan, store, 0, tmp / f"{synth}_shard.json")
    pipeline_s = time.perf_counter() - t0
    candidates = info["this_run"]["presets_rendered"] + info["rejections"]

    # Bare loop: the same candidates (accepted and rejected), straight into the engine.
    renderer = ShardRenderer(plan)
    import zarr

    attempts = np.asarray(zarr.open_group(str(store), mode="r")["attempts"][:])
    vectors = [plan.spec.to_plugin(renderer.sampler.sample_one(i, a)[None])[0]
               for i in range(n) for a in range(int(attempts[i]) + 1)]
    engine = renderer.core.engine()
    t0 = time.perf_counter()
    for v in vectors:
        engine.render(v)
    bare_s = time.perf_counter() - t0
    return {"synth": synth, "candidates": candidates, "pipeline_renders_per_s": candidates / pipeline_s,
            "bare_renders_per_s": len(vectors) / bare_s, "accepted_presets_per_s": n / pipeline_s,
            "embed_share": info["this_run"]["embed_seconds"] / pipeline_s,
            "ratio": (candidates / pipeline_s) / (len(vectors) / bare_s)}


def _run_shards(cfg: dict, synth: str, store: Path, shards: list[int], tmp: Path,
                extra_env: dict[str, str] | None = None) -> tuple[float, list[int]]:
    """Run render-shard CLI processes in parallel; return wall time and each one's peak RSS (kB)."""
    cfg_json = json.dumps(cfg)
    env = dict(os.environ, OMP_NUM_THREADS="1", **(extra_env or {}))
    base = [sys.executable, "-m", "synthproxy", "render-shard", "--config-json", cfg_json, "--synth", synth,
            "--split", "bench", "--store", str(store), "--threads", "1"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(tmp / f"rss{s}.txt"), *base,
                               "--shard", str(s), "--marker", str(tmp / f"m{s}.json")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for s in shards]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"render-shard failed for {synth}")
    wall = time.perf_counter() - t0
    return wall, [int((tmp / f"rss{s}.txt").read_text().split()[-1]) for s in shards]


def workers(synth: str, n: int, tmp: Path) -> dict:
    cfg = make_config(2 * n, n)
    times = {}
    for k, shards in (("one", [0]), ("two", [0, 1])):
        # one worker renders shard 0 then 1 sequentially; two workers render them at once
        store = tmp / f"{synth}_workers_{k}.zarr"
        init_store(DatasetPlan(cfg, synth, "bench"), store, tmp / "i.json")
        if k == "one":
            w0, _ = _run_shards(cfg, synth, store, [0], tmp)
            w1, _ = _run_shards(cfg, synth, store, [1], tmp)
            times[k] = w0 + w1
        else:
            times[k], _ = _run_shards(cfg, synth, store, shards, tmp)
    return {"synth": synth, "one_worker_s": times["one"], "two_workers_s": times["two"],
            "speedup": times["one"] / times["two"]}


def isolation(synth: str, n: int, tmp: Path) -> dict:
    """The dataset stage (one render-shard job, one core) with the forked engine against a fresh plugin
    instance per render (the engine before the fork path; SYNTHPROXY_VST_ISOLATION=fresh). Same audio (tested in
    tests/test_engines.py); target >= 3x."""
    cfg = make_config(n, n)
    times = {}
    for mode in ("fresh", "fork"):
        store = tmp / f"{synth}_iso_{mode}.zarr"
        init_store(DatasetPlan(cfg, synth, "bench"), store, tmp / "i.json")
        times[mode], _ = _run_shards(cfg, synth, store, [0], tmp, {"SYNTHPROXY_VST_ISOLATION": mode})
    return {"synth": synth, "fresh_s": times["fresh"], "fork_s": times["fork"],
            "speedup": times["fresh"] / times["fork"]}


def memory(synth: str, n: int, tmp: Path) -> dict:
    peaks = {}
    for size in (n, 4 * n):
        cfg = make_config(size, size)
        store = tmp / f"{synth}_mem{size}.zarr"
        init_store(DatasetPlan(cfg, synth, "bench"), store, tmp / "i.json")
        _, rss = _run_shards(cfg, synth, store, [0], tmp)
        peaks[size] = rss[0] / 1024
    small, large = peaks[n], peaks[4 * n]
    return {"synth": synth, f"peak_MiB_{n}": small, f"peak_MiB_{4 * n}": large, "growth": large / small}


def load_spec_engine(synth: str) -> str:
    cfg = make_config(32, 32)
    return DatasetPlan(cfg, synth, "bench").spec.engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synths", nargs="+", default=["dexed", "amsynth"])
    ap.add_argument("--n", type=int, default=192,
                    help="presets per measurement (multiple of 32; a larger n amortises start-up)")
    ap.add_argument("--quick", action="store_true", help="n = 32 (start-up weighs more: rougher figures)")
    args = ap.parse_args()
    if args.quick:
        args.n = 32
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for synth in args.synths:
            r = pipeline_vs_bare(synth, args.n, tmp)
            print(f"[{synth}] pipeline {r['pipeline_renders_per_s']:.1f} renders/s "
                  f"({r['accepted_presets_per_s']:.1f} accepted presets/s, embedding {100 * r['embed_share']:.0f}% "
                  f"of the time) vs bare engine {r['bare_renders_per_s']:.1f} renders/s: "
                  f"ratio {r['ratio']:.2f}x (target >= 0.85x)", flush=True)
            print(f"RESULT\t{synth} pipeline / bare engine renders/s\t{r['ratio']:.4g}\tx\t>=0.85\t"
                  f"{r['ratio'] / 0.85:.3g}", flush=True)
            w = workers(synth, args.n, tmp)
            print(f"[{synth}] 2 workers vs 1: {w['one_worker_s']:.1f} s -> {w['two_workers_s']:.1f} s: "
                  f"speedup {w['speedup']:.2f}x (target >= 1.8x)", flush=True)
            print(f"RESULT\t{synth} 2 workers / 1 worker speed\t{w['speedup']:.4g}\tx\t>=1.8\t"
                  f"{w['speedup'] / 1.8:.3g}", flush=True)
            if load_spec_engine(synth) == "vst":
                iso = isolation(synth, args.n, tmp)
                print(f"[{synth}] dataset stage, 1 core: fresh instance per render {iso['fresh_s']:.1f} s, forked "
                      f"{iso['fork_s']:.1f} s: {iso['speedup']:.2f}x (target >= 3x)", flush=True)
                print(f"RESULT\t{synth} forked / fresh-instance dataset stage\t{iso['speedup']:.4g}\tx\t>=3\t"
                      f"{iso['speedup'] / 3:.3g}", flush=True)
            m = memory(synth, args.n, tmp)
            print(f"[{synth}] peak RSS {m[f'peak_MiB_{args.n}']:.0f} MiB at {args.n} presets, "
                  f"{m[f'peak_MiB_{4 * args.n}']:.0f} MiB at {4 * args.n}: growth {m['growth']:.2f}x "
                  "(target: flat, <= 1.10x)", flush=True)
            print(f"RESULT\t{synth} peak RSS growth at 4x presets\t{m['growth']:.4g}\tx\t<=1.1\t"
                  f"{1.1 / m['growth']:.3g}", flush=True)


if __name__ == "__main__":
    main()
