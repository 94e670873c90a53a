"""Measure the per-item costs that ``python -m synthproxy plan`` multiplies out, and rewrite ``costs.yaml``.

    .venv/bin/python benchmarks/measure_costs.py [--only render representations training ...] [--quick]
        [--out benchmarks/costs.yaml] [--machine-id dev-2core] [--machine-description "..."]

What is measured (CPU, on this machine; every figure is the best of a few repeats, the least disturbed by
other work on the machine):

* ``render``: the dataset stage of each synth (sampling, render, RMS filter, one mel128 embedding, Zarr writes)
  on ``--render-presets`` presets, through the same code as ``render_shard``: seconds per render, the rest of
  the pipeline per candidate, and rejected candidates per kept preset. One thread (a render job's budget).
* ``representations``: seconds per 5-s clip of every audio model named in ``config/*.yaml`` (EfficientAT
  models with random weights in the official layout: the speed does not depend on the values). One thread.
* ``training``: one optimiser step (Adam, L1 loss, forward + backward) of each encoder at Table 2 sizes and
  the paper's batch size (512; TFM 256) on each synth's layout with a 192-d target, and a forward pass per
  preset (validation / evaluation). Two threads (a training job's budget).
* ``retrieval``: one evaluation run (MRR and L1 over a pool of k = 4096 presets, 192-d).
* ``startup``: a job's fixed cost (starting Python and importing torch and the package).
* ``handcrafted``: files and distinct presets of the configured hand-crafted collections (counts, not times).
* ``estimators``: a sound-matching CNN step and a DDSP GRU step per example; ``ddsp``: the DDSP synth's
  forward and forward + backward per clip; ``metrics``: the audio metrics per clip pair.
* ``flops``: floating-point operations of every training step, forward pass, estimator step and EfficientAT clip,
  counted by ``torch.utils.flop_counter`` (exact for matrix products and convolutions; the basis of the GPU
  estimates).

GPU costs cannot be measured here. They are *derived* (``estimated: true``), see :data:`GPU_MODEL` and the
``gpu-estimate`` source written into the file: counted FLOPs / (an assumed fraction of an A100's FP32 peak) + a
launch floor per step or batch; the DDSP synth's GPU time is its CPU time / :data:`SIGNAL_SPEEDUP`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from common import best_of  # noqa: E402

from synthproxy.plan.costs import COSTS_FORMAT, load_costs  # noqa: E402

GROUPS = ("render", "representations", "training", "flops", "retrieval", "startup", "handcrafted", "estimators",
          "ddsp", "metrics")

GPU_PEAK_FLOPS = 19.5e12
"""NVIDIA A100 FP32 peak (datasheet, non-tensor-core); the training loop runs float32."""

GPU_MODEL: dict[str, dict[str, float]] = {
    # kind: fraction of the A100 FP32 peak reached on the counted FLOPs, launch floor (s per step or batch)
    "dense": {"utilisation": 0.30, "floor": 0.0015},       # MLP-OH, HN-OH, HN-PT: large GEMMs, few kernels
    "transformer": {"utilisation": 0.30, "floor": 0.004},  # TFM: 6 layers, ~40 kernels forward + backward
    "recurrent": {"utilisation": 0.25, "floor": 0.003},    # HN-PTGRU, GRU estimator: cuDNN, sequential steps
    "conv": {"utilisation": 0.15, "floor": 0.002},         # EfficientAT, CNN estimator: small / depthwise convs
}
SIGNAL_SPEEDUP = 30.0
"""DDSP synth (FFTs, cumulative sums, element-wise ops: memory-bound, not FLOP-counted): GPU time = this VM's CPU
time / this factor (A100 HBM ~1.5 TB/s against some tens of GB/s for two cores, discounted for small kernels)."""
ARCH_KIND = {"mlp_oh": "dense", "hn_oh": "dense", "hn_pt": "dense", "hn_ptgru": "recurrent", "tfm": "transformer"}
GPU_REPRESENTATIONS = ("mn04", "mn05", "mn10", "mn20", "mn30", "mn40")
"""Audio models with a ``device`` option (the hand-crafted ones always run on the CPU)."""
GPU_BATCH = {"representations": 64, "forward": 1024, "cnn": 64, "gru": 32, "ddsp": 16}
"""Items sharing one launch floor: embedding batch, evaluation batch, estimator batches, DDSP batch."""

ARCHS = ("mlp_oh", "hn_oh", "hn_pt", "hn_ptgru", "tfm")
PAPER_BATCH = {"tfm": 256}



def entry(value: float, unit: str, source: str, estimated: bool = False, digits: int = 4) -> dict[str, Any]:
    """One cost figure as stored in the table."""
    out: dict[str, Any] = {"value": float(f"{value:.{digits}g}"), "unit": unit, "source": source}
    if estimated:
        out["estimated"] = True
    return out


# ---------------------------------------------------------------------------------------------- measurements
def measure_render(synth: str, n: int, tmp: Path) -> dict[str, float]:
    """Seconds per render, the rest of the dataset pipeline per candidate, rejected candidates per preset."""
    import copy

    from synthproxy.config import validate_config
    from synthproxy.pipeline.dataset import DatasetPlan, init_store, render_shard

    torch.set_num_threads(1)
    cfg = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    for stage in ("ranking", "handcrafted", "distribution", "training"):
        cfg.pop(stage, None)
    cfg["representations"] = [{"name": "mel128", "reduction": "avg"}]
    cfg["dataset"] = {"chunk_rows": 32, "batch_size": 32, "splits": {"bench": {"size": n, "shard_size": n}}}
    cfg = validate_config(cfg, REPO)
    plan = DatasetPlan(cfg, synth, "bench")
    store = tmp / f"{synth}.zarr"
    init_store(plan, store, tmp / f"{synth}.init.json")
    info = render_shard(plan, store, 0, tmp / f"{synth}.shard.json")
    run = info["this_run"]
    candidates = n + info["rejections"]
    other = max(0.0, run["wall_seconds"] - run["render_seconds"] - run["embed_seconds"])
    return {"render_seconds": run["render_seconds"] / candidates, "overhead_seconds": other / candidates,
            "rejected_per_preset": info["rejections"] / n, "presets": n}


def configured_representations() -> dict[str, dict[str, Any]]:
    """Every audio model named in ``config/*.yaml`` (dataset and ranking lists), with one set of its options."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO / "config").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        for rep in cfg.get("representations", []) + cfg.get("ranking", {}).get("representations", []):
            out.setdefault(rep["name"], {})
    out.setdefault("mel16k", {})
    return out


def measure_representation(name: str, clips: int, repeats: int) -> float:
    """Seconds per 5-s clip at the model's rate, one thread."""
    from synthproxy.audio.registry import get_representation

    torch.set_num_threads(1)
    options: dict[str, Any] = {"random_weights": True, "device": "cpu"} if name in GPU_REPRESENTATIONS else {}
    rep = get_representation(name, **options)
    rng = np.random.default_rng(0)
    audio = torch.from_numpy((0.1 * rng.standard_normal((clips, 5 * rep.sample_rate))).astype(np.float32))
    rep(audio[:2], "avg")
    return best_of(lambda: rep(audio, "avg"), repeats) / clips


def measure_training(arch: str, synth: str, steps: int) -> dict[str, float]:
    """Seconds per optimiser step at the paper's batch size and seconds per preset of a forward pass."""
    from synthproxy.nn.factory import build_encoder, count_parameters
    from synthproxy.presets.sampling import PresetSampler
    from synthproxy.synths.spec import load_spec

    torch.set_num_threads(2)
    torch.manual_seed(0)
    spec = load_spec(REPO / "config" / "synths" / f"{synth}.yaml")
    batch = PAPER_BATCH.get(arch, 512)
    model = build_encoder(arch, spec.layout, 192)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.from_numpy(PresetSampler(spec, 0, "bench").sample(np.arange(batch)).astype(np.float32))
    y = torch.randn(batch, 192)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = (model(x) - y).abs().mean()
        loss.backward()
        opt.step()

    step()
    step_s = best_of(step, steps)
    model.eval()
    xe = torch.from_numpy(PresetSampler(spec, 0, "eval").sample(np.arange(1024)).astype(np.float32))
    with torch.no_grad():
        model(xe[:64])
        fwd = best_of(lambda: model(xe), 2) / len(xe)
    return {"step_seconds": step_s, "forward_seconds": fwd, "batch_size": batch,
            "parameters": count_parameters(model)}


def measure_retrieval(repeats: int) -> float:
    """Seconds per evaluation run (pool of k = 4096, 192-d), two threads."""
    from synthproxy.metrics.retrieval import evaluate_runs

    torch.set_num_threads(2)
    pred, target = torch.randn(4096, 192), torch.randn(4096, 192)
    evaluate_runs(pred, target, n_runs=1, k=4096)
    return best_of(lambda: evaluate_runs(pred, target, n_runs=2, k=4096), repeats) / 2


def measure_startup(repeats: int) -> float:
    """Seconds to start a step's process: Python, torch and the package's CLI imported."""
    cmd = [sys.executable, "-c", "import torch, synthproxy.cli"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return best_of(lambda: subprocess.run(cmd, check=True, env=env), repeats)


def measure_handcrafted() -> dict[str, dict[str, Any]]:
    """Files and distinct presets (mapped onto the spec, duplicates dropped, as the import step does) of the default
    config's hand-crafted collections."""
    from synthproxy.presets.formats import get_format
    from synthproxy.synths.spec import load_spec

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    out = {}
    for synth, src in cfg.get("handcrafted", {}).get("synths", {}).items():
        path = (REPO / src["path"]).resolve()
        if not path.is_dir():
            print(f"[handcrafted] {synth}: {path} is absent; keeping the previous figures", flush=True)
            continue
        fmt = get_format(src["format"])
        spec = load_spec(REPO / cfg["synths"][synth]["spec"])
        files = fmt.files(path)
        presets = spec.from_plugin(fmt.collect(path, spec).plugin_vectors)  # as import_handcrafted: map, dedup
        unique = len(np.unique(presets, axis=0)) if len(presets) else 0
        out[synth] = {"files": len(files), "presets": int(unique), "path": str(src["path"])}
    return out


def measure_estimators(repeats: int) -> dict[str, float]:
    """Seconds per example of a training step of the matching CNN (Dexed layout) and the DDSP GRU (FX-Env)."""
    from synthproxy.nn.estimators import build_estimator
    from synthproxy.synths.spec import load_spec

    torch.set_num_threads(2)
    torch.manual_seed(0)
    spec = load_spec(REPO / "config" / "synths" / "dexed.yaml")
    out = {}
    # paper 1: log-mel of a 5-s clip at 32 kHz, FFT 1024, hop 512 -> 128 x 313; batch 64
    cnn = build_estimator("cnn", layout=spec.layout)
    opt = torch.optim.AdamW(cnn.parameters())
    x = torch.randn(64, 128, 313)

    def cnn_step() -> None:
        opt.zero_grad(set_to_none=True)
        cnn(x).square().mean().backward()
        opt.step()

    cnn_step()
    out["cnn_step_seconds_per_example"] = best_of(cnn_step, repeats) / len(x)
    # paper 2: log-mel of a 4-s clip at 16 kHz, FFT 1024, hop 256 -> 128 x 251; batch 32; FX-Env sizes
    gru = build_estimator("gru", n_static=25, n_dynamic=0)
    opt2 = torch.optim.Adam(gru.parameters())
    m = torch.randn(32, 128, 251)

    def gru_step() -> None:
        opt2.zero_grad(set_to_none=True)
        gru(m).static.square().mean().backward()
        opt2.step()

    gru_step()
    out["gru_step_seconds_per_example"] = best_of(gru_step, repeats) / len(m)
    return out


def measure_ddsp(variants: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Forward and forward + backward seconds per 4-s clip at 16 kHz of the DDSP synth, batch 16, two threads."""
    from synthproxy.ddsp.synth import DDSPSynth

    torch.set_num_threads(2)
    out = {}
    for v in variants:
        synth = DDSPSynth(v)
        g = torch.Generator().manual_seed(0)
        p = synth.sample_params(16, g)
        with torch.no_grad():
            synth(p.static, p.dynamic, p.f0_hz)
            fwd = best_of(lambda s=synth, p=p: s(p.static, p.dynamic, p.f0_hz), repeats) / 16
        static = p.static.clone().requires_grad_(True)

        def fb(s: DDSPSynth = synth, p: Any = p, static: torch.Tensor = static) -> None:
            s(static, p.dynamic, p.f0_hz).square().mean().backward()

        fb()
        out[v] = {"forward_seconds": fwd, "backward_seconds": best_of(fb, repeats) / 16}
    return out


def measure_metrics(repeats: int) -> dict[str, float]:
    """Seconds per clip pair of each audio metric (paper 1's on 5 s at 44.1 kHz, paper 2's on 4 s at 16 kHz)."""
    from synthproxy.metrics.audio import AUDIO_METRICS, PAPER1_METRICS

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    out = {}
    for name, m in AUDIO_METRICS.items():
        sr, dur = (44100, 5.0) if name in PAPER1_METRICS else (16000, 4.0)
        a = (0.1 * rng.standard_normal((8, int(sr * dur)))).astype(np.float32)
        b = (0.1 * rng.standard_normal((8, int(sr * dur)))).astype(np.float32)
        m.fn(a[:1], b[:1], sr)
        out[name] = best_of(lambda m=m, a=a, b=b, sr=sr: m.fn(a, b, sr), repeats) / len(a)
    return out


def measure_flops(synths: list[str]) -> dict[str, Any]:
    """FLOPs (torch.utils.flop_counter) of one training step and per preset forward of every encoder, per
    example of the estimator steps, and per clip of the EfficientAT models."""
    from torch.utils.flop_counter import FlopCounterMode

    from synthproxy.audio.registry import get_representation
    from synthproxy.nn.estimators import build_estimator
    from synthproxy.nn.factory import build_encoder
    from synthproxy.presets.sampling import PresetSampler
    from synthproxy.synths.spec import load_spec

    def count(fn: Callable[[], Any]) -> float:
        with FlopCounterMode(display=False) as fc:
            fn()
        return float(fc.get_total_flops())

    torch.set_num_threads(2)
    out: dict[str, Any] = {"training": {}, "estimators": {}, "representations": {}}
    for arch in ARCHS:
        out["training"][arch] = {}
        for synth in synths:
            spec = load_spec(REPO / "config" / "synths" / f"{synth}.yaml")
            batch = PAPER_BATCH.get(arch, 512)
            model = build_encoder(arch, spec.layout, 192)
            x = torch.from_numpy(PresetSampler(spec, 0, "bench").sample(np.arange(batch)).astype(np.float32))
            y = torch.randn(batch, 192)
            step = count(lambda m=model, x=x, y=y: (m(x) - y).abs().mean().backward())
            model.eval()
            with torch.no_grad():
                fwd = count(lambda m=model, x=x: m(x)) / batch
            out["training"][arch][synth] = {"step": step, "forward": fwd}
    spec = load_spec(REPO / "config" / "synths" / "dexed.yaml")
    cnn = build_estimator("cnn", layout=spec.layout)
    out["estimators"]["cnn"] = count(lambda: cnn(torch.randn(4, 128, 313)).square().mean().backward()) / 4
    gru = build_estimator("gru", n_static=25, n_dynamic=0)
    out["estimators"]["gru"] = count(lambda: gru(torch.randn(4, 128, 251)).static.square().mean().backward()) / 4
    for name in configured_representations():
        if name in GPU_REPRESENTATIONS:
            rep = get_representation(name, random_weights=True, device="cpu")
            audio = 0.1 * torch.randn(2, 5 * rep.sample_rate)
            out["representations"][name] = count(lambda r=rep, a=audio: r(a, "avg")) / 2
    return out


# ---------------------------------------------------------------------------------------------- the table
def gpu_seconds(flops: float, kind: str, batch: int = 1) -> float:
    """GPU seconds of work of ``flops`` at ``utilisation`` of the A100 FP32 peak, plus the launch floor shared by a
    ``batch`` of items (``flops`` is per item then; 1 for a whole step)."""
    m = GPU_MODEL[kind]
    return flops / (m["utilisation"] * GPU_PEAK_FLOPS) + m["floor"] / batch


def derive_gpu(t: dict[str, Any]) -> None:
    """(Re-)derive every GPU entry of table ``t`` from its FLOP counts (or, for the DDSP synth, its CPU times)."""
    for e in t.get("representations", {}).values():
        if "flops" in e:
            e["gpu_seconds"] = entry(gpu_seconds(e["flops"]["value"], "conv", GPU_BATCH["representations"]),
                                     "s/clip", "gpu-estimate", True)
    for arch, e in t.get("training", {}).items():
        kind = ARCH_KIND[arch]
        if "step_flops" in e:
            e["gpu_step_seconds"] = {s: entry(gpu_seconds(f["value"], kind), "s/step", "gpu-estimate", True)
                                     for s, f in e["step_flops"].items()}
            e["gpu_forward_seconds"] = {s: entry(gpu_seconds(f["value"], kind, GPU_BATCH["forward"]), "s/preset",
                                                 "gpu-estimate", True) for s, f in e["forward_flops"].items()}
    for name, e in t.get("estimators", {}).items():
        if "step_flops" in e:
            kind = "conv" if name == "cnn" else "recurrent"
            e["gpu_step_seconds"] = entry(gpu_seconds(e["step_flops"]["value"], kind, GPU_BATCH[name]),
                                          "s/example", "gpu-estimate", True)
    for e in t.get("ddsp", {}).values():
        e["gpu_backward_seconds"] = entry(e["cpu_backward_seconds"]["value"] / SIGNAL_SPEEDUP, "s/clip",
                                          "gpu-estimate", True)


def machine_description() -> str:
    """CPU model, core count and software versions of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        cpu = fields.get("Model name", cpu).strip()
        virt = fields.get("Hypervisor vendor", "").strip()
        cpu += f" (family {fields.get('CPU family', '?').strip()} model {fields.get('Model', '?').strip()}"
        cpu += f", {virt} VM)" if virt else ")"
    except (OSError, subprocess.CalledProcessError):
        pass
    gpu = "CUDA GPU" if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Linux {platform.release()}, Python {platform.python_version()},"
            f" torch {torch.__version__}")


def build_table(old: dict[str, Any], m: dict[str, Any], machine: str, description: str, date: str,
                busy: str | None) -> dict[str, Any]:
    """The new cost table: ``old`` with every group measured in ``m`` replaced and the GPU estimates re-derived."""
    t = dict(old) if old else {}
    t["format"] = COSTS_FORMAT
    t.setdefault("machines", {})
    t["machines"][machine] = {"description": description, "cores": os.cpu_count() or 1,
                              "gpus": torch.cuda.device_count()}
    if busy:
        t["machines"][machine]["conditions"] = busy
    t.setdefault("sources", {})

    def source(name: str, what: str) -> str:
        t["sources"][name] = {"kind": "measured", "benchmark": f"benchmarks/measure_costs.py --only {name}",
                              "machine": machine, "date": date, "what": what}
        return name

    t["sources"]["gpu-estimate"] = {
        "kind": "estimated", "date": date,
        "reasoning": (
            "No GPU on the measuring machine. GPU time = FLOPs counted by torch.utils.flop_counter (source 'flops') "
            f"/ (utilisation x {GPU_PEAK_FLOPS / 1e12:.1f} TFLOP/s, the A100 FP32 peak of NVIDIA's datasheet; the "
            "training loop runs float32) + a launch floor per step or batch (kernel launches, optimizer, "
            "host-to-device copy). Utilisation / floor: "
            + "; ".join(f"{k} {v['utilisation']:.0%} / {1000 * v['floor']:.1f} ms" for k, v in GPU_MODEL.items())
            + f". Items per floor: {GPU_BATCH}. Dense layers at batch 256-512 reach roughly a third of the peak, "
            "cuDNN recurrences a quarter, small and depthwise convolutions less. The DDSP synth (FFT- and "
            f"memory-bound, not FLOP-counted): CPU time / {SIGNAL_SPEEDUP:.0f}. Expect the real figures within a "
            "factor of ~3 either way; measure on the target GPU and replace these entries (then drop "
            "estimated: true)."),
        "model": {k: dict(v) for k, v in GPU_MODEL.items()}, "gpu_peak_flops": GPU_PEAK_FLOPS,
    }
    if "startup" in m:
        source("startup", "python -c 'import torch, synthproxy.cli', best of 5")
        t["jobs"] = {"startup_seconds": entry(m["startup"], "s/job", "startup")}
    if "render" in m:
        source("render", "the dataset pipeline (render_shard, mel128 only) on 1 thread; render share from the "
                         "pipeline's own timers; reference render: 5 s at 44.1 kHz")
        t.setdefault("render", {})
        for synth, r in m["render"].items():
            t["render"][synth] = {
                "render_seconds": entry(r["render_seconds"], "s/render", "render"),
                "overhead_seconds": entry(r["overhead_seconds"], "s/candidate", "render"),
                "rejected_per_preset": entry(r["rejected_per_preset"], "candidates/preset", "render"),
                "reference": {"duration": 5.0, "sample_rate": 44100, "presets_measured": r["presets"]}}
    if "representations" in m:
        source("representations", "batched embedding of 5-s noise clips at the model's rate, 1 thread, best of 3")
        t.setdefault("representations", {})
        for name, sec in m["representations"].items():
            t["representations"].setdefault(name, {})["cpu_seconds"] = entry(sec, "s/clip", "representations")
    if "training" in m:
        source("training", "one Adam step (L1 loss) at Table 2 sizes, 192-d target, 2 threads, best of N; "
                           "forward pass of 1024 presets for the per-preset evaluation cost")
        t.setdefault("training", {})
        for arch, per_synth in m["training"].items():
            e = t["training"].setdefault(arch, {})
            e["batch_size"] = next(iter(per_synth.values()))["batch_size"]
            e["parameters"] = {s: int(v["parameters"]) for s, v in per_synth.items()}
            e["cpu_step_seconds"] = {s: entry(v["step_seconds"], "s/step", "training") for s, v in per_synth.items()}
            e["cpu_forward_seconds"] = {s: entry(v["forward_seconds"], "s/preset", "training")
                                        for s, v in per_synth.items()}
    if "flops" in m:
        source("flops", "torch.utils.flop_counter.FlopCounterMode: one training step (forward + backward) at the "
                        "paper's batch, a forward pass per preset, an estimator step per example, an EfficientAT "
                        "embedding per 5-s clip")
        f = m["flops"]
        for arch, per_synth in f["training"].items():
            e = t.setdefault("training", {}).setdefault(arch, {})
            e["step_flops"] = {s: entry(v["step"], "FLOP/step", "flops") for s, v in per_synth.items()}
            e["forward_flops"] = {s: entry(v["forward"], "FLOP/preset", "flops") for s, v in per_synth.items()}
        for name, v in f["estimators"].items():
            t.setdefault("estimators", {}).setdefault(name, {})["step_flops"] = entry(v, "FLOP/example", "flops")
        for name, v in f["representations"].items():
            t.setdefault("representations", {}).setdefault(name, {})["flops"] = entry(v, "FLOP/clip", "flops")
    if "retrieval" in m:
        source("retrieval", "metrics.retrieval.evaluate_runs, pool k = 4096, 192-d, 2 threads; scales as k^2 D")
        t["retrieval"] = {"run_seconds": entry(m["retrieval"], "s/run", "retrieval"),
                          "reference": {"k": 4096, "dim": 192}}
    if m.get("handcrafted"):
        source("handcrafted", "files and distinct presets (mapped onto the spec, duplicates dropped, before the RMS "
                              "filter: what render_handcrafted renders) of config/config.yaml's hand-crafted folders")
        t.setdefault("handcrafted", {})
        for synth, h in m["handcrafted"].items():
            t["handcrafted"][synth] = {"files": entry(h["files"], "files", "handcrafted", digits=8),
                                       "presets": entry(h["presets"], "presets", "handcrafted", digits=8),
                                       "path": h["path"]}
    if "estimators" in m:
        source("estimators", "training step per example: matching CNN (paper sizes, Dexed, 128 x 313 log-mel, "
                             "batch 64) and DDSP GRU (paper sizes, 25 static values, 128 x 251, batch 32), 2 threads")
        for name, sec in m["estimators"].items():
            t.setdefault("estimators", {}).setdefault(name, {})["cpu_step_seconds"] = entry(
                sec, "s/example", "estimators")
    if "ddsp" in m:
        source("ddsp", "DDSPSynth forward, and forward + backward w.r.t. the static parameters, 4 s at 16 kHz, "
                       "batch 16, 2 threads")
        t.setdefault("ddsp", {})
        for v, d in m["ddsp"].items():
            t["ddsp"][v] = {"cpu_forward_seconds": entry(d["forward_seconds"], "s/clip", "ddsp"),
                            "cpu_backward_seconds": entry(d["backward_seconds"], "s/clip", "ddsp")}
    if "metrics" in m:
        source("metrics", "synthproxy.metrics.audio on 8 noise clip pairs (paper 1's: 5 s at 44.1 kHz; paper 2's: "
                          "4 s at 16 kHz), 1 thread")
        t["metrics"] = {name: {"cpu_seconds": entry(sec, "s/clip", "metrics")} for name, sec in m["metrics"].items()}
    t.pop("sgemm", None)
    t["sources"].pop("sgemm", None)
    derive_gpu(t)
    return t


HEADER = """\
# Per-item costs for `python -m synthproxy plan` (src/synthproxy/plan): what one render, embedding, training step,
# evaluation run ... costs. Written by benchmarks/measure_costs.py; rerun it to re-measure the CPU entries on
# your machine (see `sources` for which benchmark, machine and date each figure comes from). Every figure is
# {value, unit, source}; `estimated: true` marks figures that were derived, not measured (all GPU figures:
# see sources.gpu-estimate for the reasoning).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="groups to re-measure")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "costs.yaml")
    ap.add_argument("--machine-id", default="dev-2core")
    ap.add_argument("--machine-description", default=None, help="default: from lscpu and the software versions")
    ap.add_argument("--conditions", default=None, help="e.g. 'busy: a workflow run shared both cores'")
    ap.add_argument("--synths", nargs="+", default=["dexed", "amsynth"])
    ap.add_argument("--render-presets", type=int, nargs=2, default=[512, 128], metavar=("DEXED", "PLUGIN"),
                    help="presets per render measurement (multiples of 32): Dexed, plugin synths")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = ap.parse_args()
    repeats = 1 if args.quick else 3
    old = load_costs(args.out, validate=False) if args.out.exists() else {}
    m: dict[str, Any] = {}
    date = dt.date.today().isoformat()
    if "startup" in args.only:
        m["startup"] = measure_startup(2 if args.quick else 5)
        print(f"[startup] {m['startup']:.2f} s", flush=True)
    if "render" in args.only:
        m["render"] = {}
        with tempfile.TemporaryDirectory() as d:
            for synth in args.synths:
                n = args.render_presets[0 if synth == "dexed" else 1]
                if args.quick:
                    n = 32 if synth != "dexed" else 64
                m["render"][synth] = r = measure_render(synth, n, Path(d))
                print(f"[render] {synth}: {1000 * r['render_seconds']:.2f} ms/render, "
                      f"{1000 * r['overhead_seconds']:.2f} ms/candidate other, "
                      f"{r['rejected_per_preset']:.2f} rejected/preset ({n} presets)", flush=True)
    if "representations" in args.only:
        m["representations"] = {}
        for name in configured_representations():
            clips = 4 if name.startswith("mn") else 16
            m["representations"][name] = s = measure_representation(name, clips, repeats)
            print(f"[representations] {name}: {1000 * s:.2f} ms/clip", flush=True)
    if "training" in args.only:
        m["training"] = {}
        for arch in ARCHS:
            m["training"][arch] = {}
            for synth in args.synths:
                steps = 2 if arch in ("tfm", "hn_ptgru") or args.quick else 5
                m["training"][arch][synth] = r = measure_training(arch, synth, steps)
                print(f"[training] {arch} {synth}: {r['step_seconds']:.3f} s/step (batch {r['batch_size']}), "
                      f"{1e6 * r['forward_seconds']:.1f} us/preset forward", flush=True)
    if "flops" in args.only:
        m["flops"] = measure_flops(args.synths)
        print(f"[flops] counted for {len(ARCHS)} encoders x {len(args.synths)} synths, estimators, EfficientAT",
              flush=True)
    if "retrieval" in args.only:
        m["retrieval"] = measure_retrieval(repeats)
        print(f"[retrieval] {m['retrieval']:.3f} s/run", flush=True)
    if "handcrafted" in args.only:
        m["handcrafted"] = measure_handcrafted()
        print(f"[handcrafted] {m['handcrafted']}", flush=True)
    if "estimators" in args.only:
        m["estimators"] = {k.split("_")[0]: v for k, v in measure_estimators(repeats).items()}
        print(f"[estimators] {m['estimators']}", flush=True)
    if "ddsp" in args.only:
        m["ddsp"] = measure_ddsp(["raw", "raw_env", "fx", "fx_env", "raw_f0", "fx_f0", "unordered"], repeats)
        print(f"[ddsp] {m['ddsp']}", flush=True)
    if "metrics" in args.only:
        m["metrics"] = measure_metrics(repeats)
        print(f"[metrics] {m['metrics']}", flush=True)
    table = build_table(old, m, args.machine_id, args.machine_description or machine_description(), date,
                        args.conditions)
    text = HEADER + yaml.safe_dump(table, sort_keys=False, width=120, allow_unicode=True)
    args.out.write_text(text)
    load_costs(args.out)  # the written table must validate
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
