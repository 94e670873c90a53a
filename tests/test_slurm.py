"""The workflow through `--profile profiles/slurm` on a real single-node SLURM cluster (tests/slurm_cluster.py).

Needs root and the Debian packages slurmctld slurmd slurm-client munge (scripts/setup.sh): skipped without root,
an error as root without the packages (CI runs as root after setup.sh, so these tests must not skip there).
Every job's command is recorded with the SLURM_JOB_ID it ran under: the jobs' bash sources $BASH_ENV (exported
to the jobs by sbatch --export=ALL), which appends `SLURM_JOB_ID, SLURM_STEP_ID, command` to a file.
The GPU-request test needs no cluster (a dry run): it runs everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import REPO, shared_data
from .slurm_cluster import ClusterUnavailable, SlurmCluster, missing_requirements

PROFILES = ["--profile", str(REPO / "profiles" / "slurm"), "--profile", str(REPO / "tests" / "slurm_profile")]
# Through SLURM, every job costs two more parses of the workflow (the plugin's jobstep Snakemake, then the one
# inside `srun`, ~5 s each) and up to ~20 s of status-check backoff, so the whole tiny DAG (79 jobs) would take
# more than 15 minutes on 2 cores. The SLURM run covers every kind of job the cluster sees instead: single-core
# dataset jobs (init_store, render_shard, finalize_split) and a 2-thread training job (train_encoder), with their
# dependencies: 8 jobs, 2-4 minutes. The local end-to-end test (test_workflow_e2e.py) runs the whole tiny DAG.
SLURM_TARGETS = ["results/models/amsynth/mlp_oh/summary.json"]
SLURM_TIMEOUT = 600  # s, for `timeout`

RECORDER = r"""# sourced by every non-interactive bash (BASH_ENV): one file per command, with the SLURM job it ran in
if [ -n "${BASH_EXECUTION_STRING:-}" ] && [ -n "${SYNTHPROXY_JOBENV_DIR:-}" ]; then
  printf '%s\t%s\t%s\n' "${SLURM_JOB_ID:-}" "${SLURM_STEP_ID:-}" "${BASH_EXECUTION_STRING//$'\n'/ }" \
    > "$SYNTHPROXY_JOBENV_DIR/$$.$RANDOM.tsv" 2>/dev/null || true
fi
"""
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


@pytest.fixture(scope="module")
def slurm_cluster(request):
    reason = missing_requirements()
    if reason:
        if os.geteuid() == 0:  # CI (root, after scripts/setup.sh): a missing package is an error, not a skip
            pytest.fail(f"SLURM test cluster unavailable: {reason}")
        pytest.skip(reason)
    cluster = SlurmCluster()
    failed_before = request.session.testsfailed
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
    print(f"\nslurm cluster started in {cluster.timings['start']:.1f} s ({cluster.base})")
    try:
        yield cluster
    finally:
        cluster.stop()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(cluster.base, ignore_errors=True)
        else:
            print(f"slurm cluster logs kept in {cluster.logdir}")


def _recorder(root: Path) -> dict[str, str]:
    (root / "jobenv").mkdir()
    (root / "record_jobenv.sh").write_text(RECORDER)
    return {"BASH_ENV": str(root / "record_jobenv.sh"), "SYNTHPROXY_JOBENV_DIR": str(root / "jobenv")}


def _records(root: Path) -> list[tuple[str, str, str]]:
    out = []
    for f in sorted((root / "jobenv").glob("*.tsv")):
        job, step, cmd = f.read_text().rstrip("\n").split("\t", 2)
        out.append((job, step, cmd))
    return out


def _snakemake(cluster, workdir: Path, args: list[str], env: dict[str, str], timeout: int):
    """Snakemake through the profiles, under `timeout -k 10` (SIGINT first: Snakemake then scancels its jobs)."""
    cmd = ["timeout", "-s", "INT", "-k", "10", str(timeout), sys.executable, "-m", "snakemake",
           "--directory", str(workdir), *PROFILES, *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env(**env), timeout=timeout + 30)
    finally:
        cluster.cancel_active()  # nothing of this run may hold the node for the next one
    proc.seconds = time.monotonic() - t0
    proc.output = proc.stdout + proc.stderr
    proc.timed_out = proc.returncode in (124, 137, -9) or proc.seconds >= timeout
    return proc


def _explain(proc, cluster) -> str:
    jobs = "\n".join("|".join(j.values()) for j in cluster.jobs())
    timed_out = " (timed out)" if proc.timed_out else ""
    return (f"exit {proc.returncode} after {proc.seconds:.0f} s{timed_out}\n--- snakemake (last 6000 chars) ---\n"
            f"{proc.output[-6000:]}\n--- squeue -t all ---\n{jobs}\n{cluster.diagnostics()}")


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm_e2e")
    work = root / "main"  # the tiny config reads ../shared/data, as in test_workflow_e2e.py
    work.mkdir()
    (root / "shared").symlink_to(shared_data().parent)
    (work / "config").symlink_to(REPO / "config")
    proc = _snakemake(slurm_cluster, work, ["--snakefile", str(REPO / "Snakefile"), *SLURM_TARGETS,
                                            "--configfile", "config/tiny.yaml"], _recorder(root), SLURM_TIMEOUT)
    print(f"\nslurm tiny run: {proc.seconds:.0f} s, exit {proc.returncode}")
    return root, work, proc


@pytest.mark.slurm
def test_tiny_workflow_runs_every_job_under_slurm(slurm_cluster, slurm_run):
    root, work, proc = slurm_run
    assert proc.returncode == 0, _explain(proc, slurm_cluster)
    for target in SLURM_TARGETS:
        assert (work / target).exists(), target

    planned = int(re.search(r"^total\s+(\d+)", proc.output, re.M).group(1))
    submitted = SUBMITTED.findall(proc.output)  # (snakemake job, SLURM job id, SLURM log)
    assert len(submitted) == planned, _explain(proc, slurm_cluster)
    slurm_ids = [sid for _, sid, _ in submitted]
    assert len(set(slurm_ids)) == len(slurm_ids)

    scheduler = {j["id"]: j for j in slurm_cluster.jobs()}
    records = _records(root)
    steps = [r for r in records if " -m synthproxy " in r[2]]
    assert all(job for job, _, _ in steps), [r for r in steps if not r[0]]  # no step ran outside SLURM
    rules = set()
    for _, sid, logfile in submitted:
        rule = re.search(r"/rule_([A-Za-z0-9_]+)/", logfile).group(1)
        rules.add(rule)
        # the scheduler ran it, in the default partition, and it ended well
        job = scheduler[sid]
        assert job["state"] == "COMPLETED" and job["partition"] == "debug", job
        assert job["comment"].startswith(f"rule_{rule}"), job
        assert Path(logfile).is_file(), logfile  # the plugin's per-job SLURM log (kept by tests/slurm_profile)
        # the rule's own command ran exactly once, inside that job (in an srun step)
        mine = [r for r in steps if r[0] == sid]
        step = rule.replace("_", "-")
        assert len(mine) == 1 and f"-m synthproxy {step} " in mine[0][2], (rule, sid, mine)
        assert mine[0][1] != "", mine
    assert {"init_store", "render_shard", "finalize_split", "train_encoder"} <= rules, rules
    assert len(steps) == len(submitted)


@pytest.mark.slurm
def test_failing_job_fails_the_workflow_and_shows_its_log(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(
        'rule fail:\n'
        '    output: "never.txt"\n'
        '    log: "logs/fail.log"\n'
        '    resources: mem_mb=200, runtime=5\n'
        '    shell: "echo \'synthproxy-test: this job fails on purpose\' > {log}; exit 1"\n'
    )
    proc = _snakemake(slurm_cluster, tmp_path, ["--snakefile", str(tmp_path / "Snakefile")], _recorder(tmp_path),
                      180)
    print(f"\nslurm failing-job run: {proc.seconds:.0f} s, exit {proc.returncode}")
    assert proc.returncode != 0 and not proc.timed_out, _explain(proc, slurm_cluster)
    assert "Error in rule fail" in proc.output, _explain(proc, slurm_cluster)
    assert "synthproxy-test: this job fails on purpose" in proc.output, _explain(proc, slurm_cluster)  # its log
    submitted = SUBMITTED.findall(proc.output)
    assert submitted, _explain(proc, slurm_cluster)
    scheduler = {j["id"]: j for j in slurm_cluster.jobs()}
    for _, sid, _ in submitted:
        assert scheduler[sid]["state"] == "FAILED", scheduler[sid]
    ran = [r for r in _records(tmp_path) if "fails on purpose" in r[2]]
    assert ran and all(job in {sid for _, sid, _ in submitted} for job, _, _ in ran), ran
    assert not (tmp_path / "never.txt").exists()


def _dry_run_resources(tmp_path: Path, device: str) -> dict[str, str]:
    """rule -> the `resources:` line Snakemake prints for its job, in a dry run of the tiny config with `device`."""
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    cfg["training"]["device"] = device
    work = tmp_path / device.replace(":", "_") / "main"
    work.mkdir(parents=True)
    (work.parent / "shared").symlink_to(shared_data().parent)
    (work / "config").symlink_to(REPO / "config")
    (work / "device.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "-n",
           "results/models/amsynth/mlp_oh/summary.json", "results/hpo/amsynth/mlp_oh/best_params.json",
           "--configfile", str(work / "device.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out, rule = {}, None
    for line in (proc.stdout + proc.stderr).splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif rule and line.strip().startswith("resources:"):
            out[rule] = line.strip()
    return out


@pytest.mark.slow
def test_training_jobs_request_a_gpu_only_for_cuda(tmp_path):
    """sbatch --gpus=1 (the plugin's `gpu` resource) for hpo and train_encoder when training.device is CUDA."""
    cuda = _dry_run_resources(tmp_path, "cuda")
    cpu = _dry_run_resources(tmp_path, "cpu")
    for rule in ("hpo", "train_encoder"):
        assert re.search(r"\bgpu=1\b", cuda[rule]), cuda[rule]
        assert not re.search(r"\bgpu=[1-9]", cpu[rule]), cpu[rule]
    for rule in ("init_store", "render_shard", "finalize_split"):
        assert not re.search(r"\bgpu=[1-9]", cuda[rule]), cuda[rule]
    for resources in (*cuda.values(), *cpu.values()):
        assert "slurm_extra" not in resources  # the plugin refuses --gres/--gpus in slurm_extra
