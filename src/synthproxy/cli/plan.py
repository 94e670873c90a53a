"""Step used by hand before a run: plan (jobs, core-hours, GPU-hours, storage and wall-clock per stage)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from synthproxy.cli.common import command, config_args, load_cfg


def _plan_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--costs", default="benchmarks/costs.yaml", help="cost table (default: benchmarks/costs.yaml)")
    p.add_argument("--nodes", type=int, default=1, help="nodes of the planned cluster (default 1)")
    p.add_argument("--cores-per-node", type=int, default=16, help="CPU cores per node (default 16)")
    p.add_argument("--gpus", type=int, default=1,
                   help="GPUs per node (default 1; 0 plans device 'auto' work on the CPU)")
    p.add_argument("--json", action="store_true", help="print the per-stage figures as JSON")


def encoder_sizer(cfg: dict[str, Any]):
    """``(arch, synth, overrides) -> parameters`` of the encoder a config trains (built once, on the CPU)."""
    from synthproxy.nn.factory import build_encoder, count_parameters
    from synthproxy.synths.spec import load_spec

    def count(arch: str, synth: str, overrides: dict[str, Any]) -> int:
        import torch

        with torch.random.fork_rng(devices=[]):
            model = build_encoder(arch, load_spec(cfg["synths"][synth]["spec"]).layout, 192, **overrides)
        return count_parameters(model)

    return count


@command("plan", _plan_args)
def plan(args: argparse.Namespace) -> int:
    """Print a config's jobs, core-hours, GPU-hours, storage and wall-clock per stage, from measured costs."""
    from synthproxy.plan import Cluster, estimate_plan, format_plan, load_cost_table

    cfg = load_cfg(args)
    costs = load_cost_table(args.costs)
    result = estimate_plan(cfg, costs, Cluster(args.nodes, args.cores_per_node, args.gpus),
                      encoder_sizer=encoder_sizer(cfg))
    if args.json:
        stages = {s.name: {"jobs": s.jobs, "core_hours": s.core_hours, "gpu_hours": s.gpu_hours,
                           "storage_gb": s.storage_gb, "wall_hours": s.wall_hours(result.cluster),
                           "rules": s.rules(), "notes": s.notes} for s in result.stages}
        print(json.dumps({"stages": stages, "totals": result.totals()}, indent=2))
    else:
        print(format_plan(result, f"plan of {args.config or 'the given config'} with costs {args.costs}"))
    return 0
