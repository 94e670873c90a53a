"""Fidelity to the official code (pcmbs/synth-proxy): each difference found by the audit, fixed and tested.

1. MRR in both directions (paper text: audio -> preset; official evaluation code: preset -> audio).
2. (tests/test_ranking.py) the ranking score leaves the anchor out.
3. The final trainings take every tuned optimizer value (lr, betas, eps) from HPO.
4. The LR schedule's constant phase in steps, and validation twice per epoch.
5. Rendering: a 0.1 s linear fade-out before the RMS check; VSTs hosted with block size 128.
6. HPO prunes diverging trials (final training loss above a threshold), not only NaN ones.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch

from synthproxy.cli import main
from synthproxy.config import validate_config
from synthproxy.metrics.retrieval import evaluate_runs, mrr
from synthproxy.presets.sampling import PresetSampler
from synthproxy.proxy.hpo import HPOSettings, constant_predictor_l1, run_hpo
from synthproxy.proxy.train import settings_from_hpo
from synthproxy.render import RenderConfig, RenderEmbedder, fade_out
from synthproxy.synths.engines import RenderSettings, make_engine, rms
from synthproxy.synths.spec import load_spec
from synthproxy.training.schedule import CosineRestartSchedule

from .conftest import small_config
from .test_training import KEY, _settings, stores  # noqa: F401 - the module's real Dexed stores


# ---- 1. MRR directions -------------------------------------------------------------------------------
def test_mrr_directions_differ_as_computed_by_hand():
    """targets 0, 10, 20 and predictions 0, 1, 2 (1-D).

    audio -> preset: query t=10 sees predictions at distances 10, 9, 8: its own (9) ranks 2nd → (1 + 1/2 + 1)/3.
    preset -> audio: query p=2 sees targets at 2, 8, 18: its own (18) ranks 3rd → (1 + 1/2 + 1/3)/3.
    """
    target = torch.tensor([[0.0], [10.0], [20.0]])
    pred = torch.tensor([[0.0], [1.0], [2.0]])
    assert mrr(pred, target) == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert mrr(pred, target, direction="audio_to_preset") == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert mrr(pred, target, direction="preset_to_audio") == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    # groups mode (validation): one group of all three, query = row 0 → rank 1 both ways; row order decides
    assert mrr(pred, target, mode="groups", k=3, direction="preset_to_audio") == pytest.approx(1.0)


def test_evaluation_reports_both_directions():
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(300, 8, generator=gen)
    pred = target + 0.8 * torch.randn(300, 8, generator=gen)
    pred[:, 0] *= 0.2  # a shrunk dimension makes predictions crowd: the directions differ
    out = evaluate_runs(pred, target, n_runs=3, k=100, seed=1)
    a2p, p2a = out["mrr_audio_to_preset_mean"], out["mrr_preset_to_audio_mean"]
    assert out["mrr_mean"] == a2p and {"mrr_audio_to_preset_std", "mrr_preset_to_audio_std"} <= set(out)
    assert abs(a2p - p2a) > 1e-3
    # recompute the first run's pool by hand from the same seed and check both values of that run
    gen = torch.Generator().manual_seed(1)
    idx = torch.randperm(300, generator=gen)[:100]
    one = evaluate_runs(pred, target, n_runs=1, k=100, seed=1)
    assert one["mrr_preset_to_audio_mean"] == pytest.approx(mrr(pred[idx], target[idx], direction="preset_to_audio"))
    assert one["mrr_audio_to_preset_mean"] == pytest.approx(mrr(pred[idx], target[idx]))


# ---- 3. optimizer from HPO ---------------------------------------------------------------------------
def test_training_takes_lr_betas_and_eps_from_hpo(stores, tmp_path):  # noqa: F811
    best = tmp_path / "best_params.json"
    best.write_text(json.dumps({"train": {"lr": 0.0021, "betas": [0.81, 0.97], "eps": 3e-7, "min_lr": 1e-5}}))
    merged = settings_from_hpo({"lr": 1.0}, best)
    assert merged["lr"] == 0.0021 and merged["betas"] == (0.81, 0.97) and merged["eps"] == 3e-7
    assert "min_lr" not in merged and merged["optimizer_from"] == str(best)  # only the optimizer's values
    settings = _settings(stores, tmp_path / "run", epochs=1)
    args = ["train-encoder", "--train-store", str(settings["train_store"]), "--val-store", str(settings["val_store"]),
            "--embedding", KEY, "--arch", "hn_oh", "--out-dir", str(tmp_path / "run"), "--optimizer-from", str(best),
            "--settings-json", json.dumps({k: v for k, v in settings.items() if k in ("encoder", "epochs", "batch_size",
                                                                                    "val_k", "seed", "threads")}),
            "--summary", str(tmp_path / "summary.json")]
    assert main(args) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    hyper = ckpt["hyperparameters"]
    assert hyper["lr"] == 0.0021 and hyper["betas"] == [0.81, 0.97] and hyper["eps"] == 3e-7
    group = ckpt["optimizer"]["param_groups"][0]
    assert tuple(group["betas"]) == (0.81, 0.97) and group["eps"] == 3e-7
    assert json.loads((tmp_path / "summary.json").read_text())["optimizer_from"] == str(best)


def test_optimizer_from_a_missing_study_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(Exception, match="HPO result not found"):
        settings_from_hpo({}, tmp_path / "nope.json")


# ---- 4. constant phase in steps, two validations per epoch -------------------------------------------
def test_constant_steps_then_cosine():
    s = CosineRestartSchedule(1e-3, 1e-5, total_steps=600, restart_fraction=1 / 3, constant_steps=75)
    assert all(s.lr_at(t) == 1e-3 for t in range(75))
    assert s.lr_at(76) < 1e-3 and s.lr_at(199) == pytest.approx(1e-5, rel=0.05)  # end of the first cycle
    assert s.lr_at(200) == pytest.approx(1e-3)  # warm restart at one third
    frac = CosineRestartSchedule(1e-3, 1e-5, total_steps=600, constant_fraction=0.125)
    assert frac.constant_steps == 75


def test_two_validations_per_epoch(stores, tmp_path):  # noqa: F811
    from synthproxy.proxy.train import train_encoder

    result = train_encoder(_settings(stores, tmp_path / "run", epochs=2, batch_size=12, validations_per_epoch=2))
    assert [row["epoch"] for row in result.history] == [0.5, 1, 1.5, 2]
    assert all(np.isfinite(row["val_mrr"]) and np.isfinite(row["val_l1"]) for row in result.history)
    assert result.epochs_done == 2
    assert result.best_l1_epoch in (0.5, 1, 1.5, 2)


# ---- 5. rendering ------------------------------------------------------------------------------------
def test_render_fades_the_last_tenth_of_a_second_out():
    spec = load_spec("config/synths/dexed.yaml")
    cfg = RenderConfig.from_config(validate_config(small_config())["render"])
    assert cfg.fade_out == 0.1 and cfg.block_size == 128  # the official renderer's values are the defaults
    preset = spec.to_plugin(PresetSampler(spec, 0, "fade").sample_one(0)[None])[0]  # still sounding at 4.9 s
    raw = make_engine(spec, RenderSettings(sample_rate=22050, note_duration=4.8)).render(preset)
    core = RenderEmbedder(spec, RenderConfig(note_duration=4.8), sample_rates=[22050])
    faded = core.render(preset)
    n = 2205
    np.testing.assert_array_equal(faded[:-n], raw[:-n])
    ramp = np.linspace(1.0, 0.0, n)
    np.testing.assert_allclose(faded[-n:], raw[-n:] * ramp, rtol=1e-6, atol=1e-9)
    assert faded[-1] == 0.0 and rms(raw[-n:]) > 0  # the note is still sounding at the end: the fade matters
    x = np.ones(10, dtype=np.float32)
    np.testing.assert_array_equal(fade_out(x, 10, 0.5), [1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0], strict=False)


def test_vst_hosted_with_block_size_128(amsynth_plugin):
    spec = load_spec("config/synths/amsynth.yaml")
    core = RenderEmbedder(spec, RenderConfig(), plugin=amsynth_plugin, sample_rates=[22050])
    assert core.engine().settings.block_size == 128


# ---- 6. HPO pruning ----------------------------------------------------------------------------------
def test_constant_predictor_l1_by_hand(stores):  # noqa: F811
    import zarr

    y = np.asarray(zarr.open_group(str(stores["train"]), mode="r")["embeddings"][KEY][:], dtype=np.float64)
    assert constant_predictor_l1(stores["train"], KEY, batch_rows=7) == pytest.approx(np.abs(y - y.mean(0)).mean())


def test_hpo_prunes_trials_that_do_not_learn(stores, tmp_path):  # noqa: F811
    """A threshold below any reachable loss prunes every trial; the study still finishes its trial count."""
    s = HPOSettings(train_store=stores["train"], val_store=stores["val"], embedding=KEY, arch="hn_oh",
                    out_dir=tmp_path, space="opt", n_trials=2, n_startup_trials=1, seed=3, prune_train_loss=1e-6,
                    train={"encoder": {"d_hidden": 32, "num_layers": 2}, "batch_size": 16, "val_k": 4, "threads": 1})
    result = run_hpo(s)
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(t.user_attrs["train_l1"] > 1e-6 for t in study.trials)
    kept = run_hpo(HPOSettings(**{**s.__dict__, "out_dir": tmp_path / "b", "prune_train_loss": None}))
    study = optuna.load_study(study_name=kept.study_name, storage=kept.storage)
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
