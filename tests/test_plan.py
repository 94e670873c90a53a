"""The planner (``python -m synthproxy plan``): cost-table validation, the arithmetic of the estimates on a
hand-made config and cost table, job counts against ``snakemake -n``, ``config/gpu.yaml``, and the CLI's
error path."""

from __future__ import annotations

import copy
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthproxy.cli import main
from synthproxy.config import check_workflow, load_config, validate_config
from synthproxy.errors import ConfigError
from synthproxy.plan import Cluster, CostTable, estimate_plan, format_plan, load_cost_table, validate_costs
from synthproxy.plan import estimate as estimate_module

REPO = Path(__file__).resolve().parents[1]
COSTS = REPO / "benchmarks" / "costs.yaml"


def _e(value: float, unit: str, source: str = "m", estimated: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, "unit": unit, "source": source}
    if estimated:
        out["estimated"] = True
    return out


def tiny_costs() -> dict[str, Any]:
    """A hand-made cost table with round numbers."""
    return {
        "format": 1,
        "machines": {"box": {"description": "test", "cores": 2, "gpus": 0}},
        "sources": {"m": {"kind": "measured", "benchmark": "by hand", "machine": "box", "date": "2026-01-01"},
                    "g": {"kind": "estimated", "reasoning": "GPU = CPU / 10"}},
        "jobs": {"startup_seconds": _e(1.0, "s/job")},
        "render": {"dexed": {"render_seconds": _e(0.01, "s/render"), "overhead_seconds": _e(0.002, "s/candidate"),
                             "rejected_per_preset": _e(1.0, "candidates/preset")}},
        "representations": {"mel128": {"cpu_seconds": _e(0.003, "s/clip")}},
        "training": {"mlp_oh": {"batch_size": 50, "parameters": {"dexed": 1000},
                                "cpu_step_seconds": {"dexed": _e(0.5, "s/step")},
                                "gpu_step_seconds": {"dexed": _e(0.05, "s/step", "g", True)},
                                "cpu_forward_seconds": {"dexed": _e(0.001, "s/preset")},
                                "gpu_forward_seconds": {"dexed": _e(0.0001, "s/preset", "g", True)}}},
        "retrieval": {"run_seconds": _e(4.0, "s/run"), "reference": {"k": 16, "dim": 128}},
    }


def tiny_config() -> dict[str, Any]:
    """One synth, one representation, three splits, one encoder; no other stage."""
    raw = {
        "seed": 1,
        "synths": {"dexed": {"spec": "config/synths/dexed.yaml"}},
        "render": {},
        "representations": [{"name": "mel128", "reduction": "avg"}],
        "dataset": {"chunk_rows": 32, "batch_size": 16, "splits": {
            "train": {"size": 100, "shard_size": 32}, "val": {"size": 32, "shard_size": 32},
            "test": {"size": 32, "shard_size": 32}}},
        "training": {"representation": "mel128_avg", "epochs": 2, "device": "cpu",
                     "archs": {"mlp_oh": {"batch_size": 50}}, "evaluation": {"runs": 2, "k": 16}},
    }
    return validate_config(raw, REPO)


# ---------------------------------------------------------------------------------------------- cost table
def test_the_repository_cost_table_validates_and_marks_gpu_figures_as_estimates():
    table = load_cost_table(COSTS)
    gpu = [(arch, synth) for arch, t in table.table["training"].items() for synth in t["gpu_step_seconds"]]
    assert gpu and all(table.estimated("training", a, "gpu_step_seconds", s) for a, s in gpu)
    assert not table.estimated("training", "mlp_oh", "cpu_step_seconds", "dexed")
    for name, src in table.table["sources"].items():
        if src["kind"] == "measured":
            assert src["machine"] in table.table["machines"] and src["date"] and src["benchmark"], name


@pytest.mark.parametrize("mutate, key", [
    (lambda t: t.pop("format"), "format"),
    (lambda t: t.update(format=2), "format"),
    (lambda t: t["render"]["dexed"]["render_seconds"].update(unit="ms"), "render.dexed.render_seconds.unit"),
    (lambda t: t["render"]["dexed"]["render_seconds"].update(value=-1), "render.dexed.render_seconds.value"),
    (lambda t: t["render"]["dexed"]["render_seconds"].update(value="fast"), "render.dexed.render_seconds.value"),
    (lambda t: t["render"]["dexed"]["render_seconds"].pop("source"), "render.dexed.render_seconds.source"),
    (lambda t: t["render"]["dexed"]["render_seconds"].update(source="nowhere"),
     "render.dexed.render_seconds.source"),
    (lambda t: t["render"]["dexed"].update(speed=_e(1, "x")), "render.dexed.speed"),
    (lambda t: t["training"]["mlp_oh"]["gpu_step_seconds"]["dexed"].pop("estimated"),
     "training.mlp_oh.gpu_step_seconds.dexed.estimated"),
    (lambda t: t["sources"]["m"].pop("date"), "sources.m.date"),
    (lambda t: t["sources"]["m"].update(machine="other"), "sources.m.machine"),
    (lambda t: t["sources"]["g"].pop("reasoning"), "sources.g.reasoning"),
])
def test_cost_table_errors_name_the_key(mutate, key):
    table = tiny_costs()
    mutate(table)
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate_costs(table, "costs.yaml")


def test_a_missing_cost_entry_names_its_key():
    cfg = tiny_config()
    costs = tiny_costs()
    del costs["representations"]["mel128"]
    with pytest.raises(ConfigError, match=r"no cost entry 'representations\.mel128'"):
        estimate_plan(cfg, CostTable(costs), Cluster(1, 2, 0), REPO)
    costs = tiny_costs()
    cfg["training"]["archs"] = {"tfm": {}}
    with pytest.raises(ConfigError, match=r"no cost entry 'training\.tfm'"):
        estimate_plan(cfg, CostTable(costs), Cluster(1, 2, 0), REPO)


# ---------------------------------------------------------------------------------------------- arithmetic
def test_estimate_arithmetic_on_a_hand_made_config():
    plan = estimate_plan(tiny_config(), CostTable(tiny_costs()), Cluster(nodes=1, cores_per_node=2, gpus_per_node=0),
                    REPO)
    # dataset: per kept preset 2 candidates x (10 ms render + 2 ms other) + 3 ms mel128 = 27 ms
    per = 2 * (0.01 + 0.002) + 0.003
    ds = plan.stage("dataset")
    assert ds.rules() == {"init_store": 3, "render_shard": 6, "finalize_split": 3, "dataset_summary": 1}
    # 6 shards (train: 3 x 32 + 4 presets; val, test: 32) with a 1-s start-up each; 7 start-only jobs of 1 s
    shard_seconds = 6 * 1.0 + 164 * per + 7 * 1.0
    assert ds.core_hours == pytest.approx(shard_seconds / 3600)
    assert ds.longest_job_hours == pytest.approx((1.0 + 32 * per) / 3600)
    # storage: 100 presets x 4 B + 128-d mel x 4 B + rms 4 B + attempts 2 B per row, 164 rows
    assert ds.storage_gb == pytest.approx(164 * (4 * 100 + 4 * 128 + 6) / 1e9)
    assert ds.gpu_hours == 0
    # training: 2 epochs x (100 // 50) steps x 0.5 s + 2 validations x 32 presets x 1 ms + 1 s start-up, 2 threads
    tr = plan.stage("training")
    train_seconds = 2 * 2 * 0.5 + 2 * 32 * 0.001 + 1.0
    assert tr.core_hours == pytest.approx(2 * train_seconds / 3600)
    assert tr.storage_gb == pytest.approx(4 * 1000 * 5 / 1e9)
    # evaluation: 32 test presets x 1 ms + 2 runs x 4 s (k = 16 = reference, 128-d = reference) + 1 s, 2 threads;
    # encoder_tables: 1 s on 1 thread
    ev = plan.stage("evaluation")
    assert ev.rules() == {"evaluate_synthetic": 1, "encoder_tables": 1}
    assert ev.core_hours == pytest.approx((2 * (0.032 + 8.0 + 1.0) + 1.0) / 3600)
    assert plan.stage("tables").rules() == {"collect_tables": 1}
    assert plan.jobs == 13 + 1 + 2 + 1
    # wall-clock on 2 cores: each stage's core-hours over 2 cores, or its longest job
    assert ds.wall_hours(plan.cluster) == pytest.approx(max(shard_seconds / 2, 1.0 + 32 * per) / 3600)
    assert ev.wall_hours(plan.cluster) == pytest.approx(max((2 * 9.032 + 1.0) / 2, 9.032) / 3600)
    text = format_plan(plan)
    assert "dataset" in text and "total" in text


def test_gpu_costs_apply_to_device_auto_only_when_the_cluster_has_gpus():
    cfg = tiny_config()
    cfg["training"]["device"] = "auto"
    on_cpu = estimate_plan(cfg, CostTable(tiny_costs()), Cluster(1, 2, 0), REPO).stage("training")
    on_gpu = estimate_plan(cfg, CostTable(tiny_costs()), Cluster(1, 2, 1), REPO).stage("training")
    assert on_cpu.gpu_hours == 0
    # 4 steps x 0.05 s + 64 validation presets x 0.1 ms on the GPU
    assert on_gpu.gpu_hours == pytest.approx((4 * 0.05 + 64 * 0.0001) / 3600)
    assert on_gpu.core_hours == pytest.approx(2 * (1.0 + 4 * 0.05 + 64 * 0.0001) / 3600)
    cfg["training"]["device"] = "cpu"
    assert estimate_plan(cfg, CostTable(tiny_costs()), Cluster(1, 2, 1), REPO).stage("training").gpu_hours == 0


def test_batch_size_scales_the_measured_step():
    cfg = tiny_config()
    cfg["training"]["archs"]["mlp_oh"]["batch_size"] = 25  # half the measured batch: half the step, twice the steps
    tr = estimate_plan(cfg, CostTable(tiny_costs()), Cluster(1, 2, 0), REPO).stage("training")
    assert tr.core_hours == pytest.approx(2 * (2 * 4 * 0.25 + 2 * 32 * 0.001 + 1.0) / 3600)


# ---------------------------------------------------------------------------------------------- vs the code
def test_defaults_copied_from_other_layers_are_the_same():
    from synthproxy.matching.datasets import matching_models
    from synthproxy.matching.ddsp_data import STATIC_VARIANTS, ddsp_models
    from synthproxy.matching.ddsp_train import DDSPTrainSettings
    from synthproxy.matching.estimator import EstimatorSettings
    from synthproxy.nn.factory import ARCHITECTURES, default_batch_size
    from synthproxy.proxy.finetune import FinetuneSettings
    from synthproxy.proxy.train import TrainSettings

    def defaults(cls: type) -> dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(cls)}

    assert estimate_module.FIT_DEFAULTS.items() <= defaults(TrainSettings).items()
    assert estimate_module.MATCHING_TRAIN_DEFAULTS.items() <= defaults(EstimatorSettings).items()
    assert estimate_module.FINETUNE_DEFAULTS.items() <= defaults(FinetuneSettings).items()
    assert estimate_module.DDSP_TRAIN_DEFAULTS.items() <= defaults(DDSPTrainSettings).items()
    assert estimate_module.DDSP_STATIC_VARIANTS == STATIC_VARIANTS
    for arch in ARCHITECTURES:
        assert estimate_module.PAPER_BATCH.get(arch, estimate_module.DEFAULT_BATCH) == default_batch_size(arch)
    cfg = load_config(REPO / "config" / "tiny.yaml")
    m = cfg["matching"]
    assert estimate_module._matching_models(m) == {k: v[1] is not None for k, v in matching_models(m).items()}
    for v in ("raw", "raw_env", "fx_env"):
        assert estimate_module._ddsp_models(cfg["ddsp"], v) == list(ddsp_models(cfg["ddsp"], v))


def _snakemake_job_stats(configfile: str) -> dict[str, int]:
    """The "Job stats" table of a forced dry run (every job, whatever exists already)."""
    snakemake = Path(sys.executable).parent / "snakemake"
    out = subprocess.run([str(snakemake), "-n", "-F", "results/tables", "--configfile", configfile],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    block = text[text.index("Job stats:"):]
    stats: dict[str, int] = {}
    for line in block.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        stats[parts[0]] = int(parts[1])
    return stats


def test_job_counts_equal_snakemake_dry_run_on_tiny():
    stats = _snakemake_job_stats("config/tiny.yaml")
    total = stats.pop("total")
    cfg = load_config(REPO / "config" / "tiny.yaml")
    plan = estimate_plan(cfg, load_cost_table(COSTS), Cluster(), REPO)
    assert plan.rules() == stats
    assert plan.jobs == total


# ---------------------------------------------------------------------------------------------- gpu.yaml
def test_gpu_config_validates_and_its_proxy_stage_fits_about_eight_gpu_minutes():
    cfg = load_config(REPO / "config" / "gpu.yaml")
    check_workflow(cfg, REPO)
    assert cfg["training"]["device"] == "auto"
    assert all(not a.get("encoder") for a in cfg["training"]["archs"].values())  # Table 2 sizes
    assert all(cfg["dataset"]["splits"][cfg["training"]["train_split"]]["size"] >= 65536 for _ in [0])
    plan = estimate_plan(cfg, load_cost_table(COSTS), Cluster(1, 16, 1), REPO)
    proxy_gpu_minutes = 60 * sum(plan.stage(s).gpu_hours for s in ("hpo", "training", "evaluation"))
    assert 4 <= proxy_gpu_minutes <= 12


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_prints_a_table(capsys):
    assert main(["plan", "--config", str(REPO / "config" / "tiny.yaml"), "--costs", str(COSTS)]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "render_shard" not in out and "dataset" in out


@pytest.mark.parametrize("args, message", [
    (["--config", "no/such.yaml"], "config file not found: no/such.yaml"),
    (["--config", "config/tiny.yaml", "--costs", "no/costs.yaml"], "cost table not found: no/costs.yaml"),
])
def test_cli_errors_are_one_line_with_status_2(args, message, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_names_a_bad_cost_key_and_a_missing_entry(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    table = yaml.safe_load(COSTS.read_text())
    bad = copy.deepcopy(table)
    bad["render"]["dexed"]["render_seconds"]["unit"] = "ms"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["plan", "--config", "config/tiny.yaml", "--costs", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "render.dexed.render_seconds.unit" in err and len(err.strip().splitlines()) == 1
    missing = copy.deepcopy(table)
    del missing["representations"]["mstft"]
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump(missing))
    assert main(["plan", "--config", "config/tiny.yaml", "--costs", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "representations.mstft" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
