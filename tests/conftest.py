"""Shared fixtures: small real configs, paths to the repo and to ../shared/data."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
AMSYNTH_PLUGIN = "/usr/lib/vst/amsynth_vst.so"


def shared_data() -> Path:
    return Path(os.environ.get("SYNTHPROXY_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    """Specs in configs are relative to the repo root, as when the workflow runs."""
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="session")
def amsynth_plugin() -> str:
    if not Path(AMSYNTH_PLUGIN).exists():
        pytest.fail(f"{AMSYNTH_PLUGIN} missing: run scripts/setup.sh (installs Debian's amsynth)")
    return AMSYNTH_PLUGIN


def small_config(**overrides) -> dict:
    """A tiny but complete config: 2 synths, 2 cheap representations, 16-row chunks."""
    cfg = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
    for stage in ("ranking", "handcrafted", "distribution", "training", "out_of_domain", "matching", "ddsp"):
        # tests add the stages they need
        cfg.pop(stage, None)
    cfg["representations"] = [{"name": "mel128", "reduction": "avg"}, {"name": "mfcc40", "reduction": "avg"}]
    cfg["dataset"] = {"chunk_rows": 8, "batch_size": 8,
                      "splits": {"train": {"size": 24, "shard_size": 8}, "test": {"size": 8, "shard_size": 8}}}
    cfg = copy.deepcopy(cfg)
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


@pytest.fixture
def cfg() -> dict:
    from synthproxy.config import validate_config

    return validate_config(small_config())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The whole DAG of config/tiny.yaml, run once per session in a scratch directory laid out as a fresh clone
    beside ../shared: ``(workdir, command)``. The end-to-end and the report-in-a-browser tests share it."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("e2e")
    work = root / "main"  # the tiny config reads ../shared/data, as on a fresh clone beside ../shared
    work.mkdir()
    (root / "shared").symlink_to(shared_data().parent)
    (work / "config").symlink_to(REPO / "config")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", "2", "results/tables", "--configfile", "config/tiny.yaml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, cmd
