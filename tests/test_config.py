"""Config validation and the CLI: bad input is named, the exit status is 2, nothing is written."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from synthproxy.cli import main
from synthproxy.config import validate_config
from synthproxy.errors import ConfigError

from .conftest import REPO, small_config


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.update(colour="red"), "(top level): unknown key(s) ['colour']"),
        (lambda c: c["render"].update(velocity=300), "render.velocity: 300 is greater than the maximum of 127"),
        (lambda c: c["dataset"]["splits"]["train"].update(size=-1), "dataset.splits.train.size: -1 is less than"),
        (lambda c: c["dataset"]["splits"]["train"].update(shards=3), "dataset.splits.train: unknown key(s) ['shards']"),
        (lambda c: c["representations"].append({"name": "mel999", "reduction": "avg"}),
         "representations[2].name: unknown audio representation 'mel999'"),
        (lambda c: c["representations"].append({"name": "mel128", "reduction": "max"}), "representations[2].reduction"),
        (lambda c: c["dataset"]["splits"]["train"].update(shard_size=12), "not a multiple of dataset.chunk_rows (8)"),
        (lambda c: c["synths"]["dexed"].update(spec="config/synths/nope.yaml"), "synths.dexed.spec: file not found"),
        (lambda c: c["render"].update(note_duration=9.0), "render.note_duration"),
        (lambda c: c["render"].update(rms_min=2.0), "render.rms_min"),
    ],
)
def test_invalid_config_names_the_key(mutate, needle):
    cfg = small_config()
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert needle in str(err.value)


def test_defaults_are_filled():
    cfg = small_config()
    del cfg["render"]["max_attempts"]
    assert validate_config(cfg)["render"]["max_attempts"] == 64


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    bad = small_config()
    bad["seed"] = "x"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    code = main(["init-store", "--config", str(path), "--synth", "dexed", "--split", "train",
                 "--store", str(tmp_path / "s.zarr"), "--marker", str(tmp_path / "m.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "seed: 'x' is not of type 'integer'" in err and "Traceback" not in err
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "m.json").exists()


def test_workflow_stops_at_once_when_a_plugin_is_missing(tmp_path):
    cfg = small_config()
    cfg["synths"]["amsynth"]["plugin"] = str(tmp_path / "missing_amsynth.so")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "results/tables", "--configfile", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "missing_amsynth.so" in out and "synths.amsynth.plugin" in out


def test_invalid_config_stops_the_workflow(tmp_path):
    cfg = copy.deepcopy(small_config())
    cfg["dataset"]["chunk_rows"] = 0
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "results/tables", "--configfile", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0 and "dataset.chunk_rows: 0 is less than the minimum of 1" in proc.stdout + proc.stderr


def test_a_given_configfile_replaces_the_default_config(tmp_path):
    """--configfile must not be merged with config/config.yaml (its stages and encoder sizes would leak in)."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(small_config()))  # no ranking, hand-crafted or training sections
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "results/tables", "--configfile", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "render_shard" in out
    for rule in ("ranking_group", "train_encoder", "import_handcrafted"):
        assert rule not in out


def _dry_run(cfg: dict, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "results/tables", "--configfile", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def _validate_cli(cfg: dict, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "synthproxy", "validate-config", "--config", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_spec_naming_a_parameter_the_plugin_lacks_fails_validation_before_anything_is_written(tmp_path):
    """validate-config and snakemake -n load the plugin once and refuse the spec (file and parameter named)."""
    text = (REPO / "config" / "synths" / "amsynth.yaml").read_text().replace("name: osc2_sync", "name: osc3_sync")
    spec = tmp_path / "amsynth_bad.yaml"
    spec.write_text(text)
    cfg = small_config()
    cfg["synths"]["amsynth"]["spec"] = str(spec)
    for proc in (_validate_cli(cfg, tmp_path), _dry_run(cfg, tmp_path)):
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "osc3_sync" in out and "Traceback" not in proc.stderr, out[-2000:]
    assert not (REPO / "results" / "data" / "amsynth_bad").exists()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.update(ranking={"synths": {"dexed": "config/ranking/dexed.yaml"},
                                     "representations": [{"name": "mel128"}],
                                     "groups": ["op1 attack rate", "op9 output level"]}),
         "ranking.groups[1]: 'op9 output level' is not a group of any ranking file"),
        (lambda c: c.update(matching={"synths": {"dexed": {}}},
                            training={"archs": {"mlp_oh": {}}, "representation": "mel128_avg",
                                      "val_split": "test"}),
         "matching.synths.dexed: sound matching trains on hand-crafted presets; add handcrafted.synths.dexed"),
    ],
)
def test_names_across_sections_fail_validation(tmp_path, mutate, needle):
    """Unknown names in config lists are refused, not dropped: by validate-config and by snakemake -n."""
    cfg = small_config()
    mutate(cfg)
    for proc in (_validate_cli(cfg, tmp_path), _dry_run(cfg, tmp_path)):
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and needle in out and "Traceback" not in proc.stderr, out[-2000:]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda c: c.update(matching={"synths": {"moog": {}}}), "matching.synths.moog: not a configured synth"),
        (lambda c: c.update(matching={"synths": {"dexed": {}}, "evaluation": {"metrics": ["stft", "psnr"]}}),
         "matching.evaluation.metrics: unknown ['psnr']"),
        (lambda c: c.update(ddsp={"evaluation": {"metrics": ["lsd", "snr"]}}), "ddsp.evaluation.metrics: unknown"),
        (lambda c: c.update(ddsp={"benchmark": {"variant": "raw"}}), "ddsp.benchmark.variant"),
    ],
)
def test_stage_names_are_checked(mutate, needle):
    cfg = small_config()
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert needle in str(err.value)
