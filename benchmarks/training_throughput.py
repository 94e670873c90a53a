"""Training throughput of the preset encoders on CPU: run on demand, prints presets/s and data-wait share.

    .venv/bin/python benchmarks/training_throughput.py [--quick] [--rows 8192] [--archs tfm ...] [--threads 2]

Each encoder (Table 2 sizes, the paper's batch sizes, Dexed's layout, 192-d target) trains one epoch on
a Zarr store laid out exactly like the workflow's (real chunking, streamed by the training loader with
its prefetch thread); the loader's wait is measured inside the training loop. Target: data wait <= 5 %
of step time. The store holds random presets of the Dexed spec and random targets: throughput does not
depend on the values. ``--quick``: 2048 rows and, unless ``--archs`` is given, only the fastest encoders (MLP-OH, HN-OH,
HN-PT: those the loader must keep up with; the wait share is rough with so few steps).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import result  # noqa: E402

from synthproxy.data.store import StoreLayout, create_store  # noqa: E402
from synthproxy.presets.sampling import PresetSampler  # noqa: E402
from synthproxy.proxy.train import train_encoder  # noqa: E402
from synthproxy.synths.spec import load_spec  # noqa: E402

WAIT_TARGET_PERCENT = 5.0



def make_store(path: Path, rows: int, dim: int = 192, chunk: int = 1024) -> None:
    spec = load_spec(REPO / "config" / "synths" / "dexed.yaml")
    meta = {"spec_name": spec.name, "spec_hash": spec.hash, "param_names": spec.names,
            "param_kinds": [p.kind for p in spec.used], "cardinalities": [p.cardinality for p in spec.used],
            "representations": {"bench_avg": {"name": "bench"}}, "split": path.stem}
    root = create_store(path, StoreLayout(rows, spec.n_params, chunk, {"bench_avg": dim}), meta)
    sampler = PresetSampler(spec, 0, path.stem)
    rng = np.random.default_rng(0)
    for s in range(0, rows, chunk):
        e = min(s + chunk, rows)
        root["presets"][s:e] = sampler.sample(np.arange(s, e))
        root["embeddings"]["bench_avg"][s:e] = rng.standard_normal((e - s, dim)).astype(np.float32)
    root.attrs["complete"] = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2048 training rows, the three fastest encoders")
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--archs", nargs="+", help="default: all five (--quick: mlp_oh hn_oh hn_pt)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stream", action="store_true", help="never hold the store in memory (paper-scale path)")
    args = ap.parse_args()
    if args.quick:
        args.rows = 2048
    if args.archs is None:
        args.archs = ["mlp_oh", "hn_oh", "hn_pt"] if args.quick else ["mlp_oh", "hn_oh", "hn_pt", "hn_ptgru", "tfm"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        make_store(tmp / "train.zarr", args.rows)
        make_store(tmp / "val.zarr", 1024)
        print(f"{args.rows} presets, {args.threads} threads, loader {'streaming' if args.stream else 'default'}")
        for arch in args.archs:
            settings = {"train_store": tmp / "train.zarr", "val_store": tmp / "val.zarr", "embedding": "bench_avg",
                        "arch": arch, "out_dir": tmp / arch, "epochs": 1, "threads": args.threads,
                        "save_checkpoints": False, "resume": False, "device": "cpu"}
            if args.stream:
                settings |= {"in_memory_bytes": 0, "buffer_rows": 4096}
            train_encoder(settings)
            h = pd.read_csv(tmp / arch / "history.csv").iloc[-1]
            rate, share = h["presets_per_second"], 100 * h["data_wait_share"]
            print(f"{arch:9s} {rate:8.1f} presets/s   data wait {share:5.2f} % of step time (target <= 5 %)",
                  flush=True)
            result(f"{arch} data wait share ({args.threads}t)", share, "%", f"<={WAIT_TARGET_PERCENT:g}",
                   WAIT_TARGET_PERCENT / share if share > 0 else float("inf"))
            result(f"{arch} training presets/s ({args.threads}t)", rate, "presets/s", "-", None)


if __name__ == "__main__":
    main()
