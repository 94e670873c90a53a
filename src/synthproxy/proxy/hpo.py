"""Hyperparameter optimisation of a preset encoder with Optuna (Combes et al., Appendix 11.3).

One study per (synth, arch), kept in an Optuna storage (SQLite file by default) and opened with
``load_if_exists=True``: rerunning resumes the study, and several workers pointed at the same storage
share it. Trials first follow a scrambled Sobol sequence (exploration, ``n_startup_trials``) and then
a multivariate TPE (exploitation), as in the paper (128 QMC + 75 TPE trials for TAL-NM and Diva, 64 + 36
for Dexed). Each trial trains the encoder for one epoch on the HPO training store and returns the
validation MRR (maximised). ``n_trials`` is the study's total: finished trials are never redone and a
rerun only adds the missing ones.

Search spaces are data (``hpo_spaces.yaml``, transcribed from the reference repository): the "all" space
tunes architecture and optimizer, the "opt" space only the optimizer of the Table 2 architecture.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from synthproxy.data.atomic import write_json_atomic, write_text_atomic
from synthproxy.data.batches import open_training_store
from synthproxy.errors import ConfigError
from synthproxy.nn.factory import ARCHITECTURES, encoder_hyperparameters
from synthproxy.proxy.train import TrainSettings, train_encoder
from synthproxy.training.loop import TrainingError

log = logging.getLogger("synthproxy.proxy.hpo")

SPACES_PATH = Path(__file__).with_name("hpo_spaces.yaml")
SAMPLER_ATTR = "sampler"
"""User attribute of every trial naming the sampler that chose its parameters (``qmc`` or ``tpe``)."""


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency of the HPO step only
        raise ConfigError("hyperparameter optimisation needs optuna: pip install optuna") from None
    return optuna


def load_spaces(path: Path | str | None = None) -> dict[str, Any]:
    """The search-space file (default: the packaged ``hpo_spaces.yaml``)."""
    path = Path(path) if path else SPACES_PATH
    if not path.is_file():
        raise ConfigError(f"HPO search-space file not found: {path}")
    return yaml.safe_load(path.read_text())


def search_space(arch: str, space: str, spaces: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``(parameters, fixed)`` of ``arch`` in ``space`` ("all" or "opt"), validated.

    ``parameters`` maps a name to ``{type, low, high, step?, log?, target}``; ``fixed`` holds settings
    every trial of this space uses (``{"encoder": {...}, "train": {...}}``).
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown preset encoder architecture {arch!r}; valid architectures: "
                          f"{', '.join(ARCHITECTURES)}")
    entry = (spaces.get("archs") or {}).get(arch)
    if not entry or space not in entry:
        raise ConfigError(f"no HPO search space {space!r} for {arch!r} in the search-space file")
    params = dict(entry[space])
    valid_encoder = set(encoder_hyperparameters(arch)) | {"mlp_factor"}
    valid_train = {f.name for f in fields(TrainSettings)} | {"min_lr_factor", "beta1", "beta2"}
    for name, p in params.items():
        where, _, key = str(p.get("target", "")).partition(".")
        ok = (where == "encoder" and key in valid_encoder) or (where == "train" and key in valid_train)
        if not ok or p.get("type") not in ("int", "float") or not p["low"] <= p["high"]:
            raise ConfigError(f"HPO search space {arch}/{space}: invalid parameter {name!r}: {p}")
    return params, dict((entry.get("fixed") or {}).get(space) or {})


def distributions(params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Optuna distributions of a search space (what the QMC sampler draws jointly)."""
    optuna = _optuna()
    out = {}
    for name, p in params.items():
        if p["type"] == "int":
            out[name] = optuna.distributions.IntDistribution(int(p["low"]), int(p["high"]), log=bool(p.get("log")),
                                                             step=int(p.get("step", 1)))
        else:
            out[name] = optuna.distributions.FloatDistribution(float(p["low"]), float(p["high"]),
                                                               log=bool(p.get("log")), step=p.get("step"))
    return out


def suggest(trial: Any, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter (the same distributions as :func:`distributions`)."""
    values = {}
    for name, p in params.items():
        if p["type"] == "int":
            values[name] = trial.suggest_int(name, int(p["low"]), int(p["high"]), step=int(p.get("step", 1)),
                                             log=bool(p.get("log")))
        else:
            values[name] = trial.suggest_float(name, float(p["low"]), float(p["high"]), step=p.get("step"),
                                               log=bool(p.get("log")))
    return values


def to_settings(values: dict[str, Any], params: dict[str, dict[str, Any]], fixed: dict[str, Any], arch: str
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Map sampled values to ``(encoder overrides, training settings)`` (see hpo_spaces.yaml for the names)."""
    enc = dict(fixed.get("encoder", {}))
    train = dict(fixed.get("train", {}))
    for name, value in values.items():
        where, _, key = params[name]["target"].partition(".")
        (enc if where == "encoder" else train)[key] = value
    if "mlp_factor" in enc:
        d_token = enc.get("d_token", encoder_hyperparameters(arch).get("d_token"))
        enc["d_ff"] = int(enc.pop("mlp_factor") * d_token)
    if "min_lr_factor" in train:
        train["min_lr"] = train["lr"] * train.pop("min_lr_factor")
    if "beta1" in train or "beta2" in train:
        train["betas"] = (train.pop("beta1", 0.9), train.pop("beta2", 0.999))
    return enc, train


# ---- sampler -----------------------------------------------------------------------------------------
def make_sampler(search: dict[str, Any], n_startup_trials: int, seed: int, tpe_options: dict[str, Any] | None = None):
    """A :class:`QMCThenTPESampler` (built lazily so that importing this module does not need optuna)."""
    optuna = _optuna()

    class QMCThenTPESampler(optuna.samplers.BaseSampler):
        """Scrambled Sobol QMC for the first ``n_startup_trials`` trials of the study, TPE afterwards.

        The choice is made once per trial (in ``before_trial``) from the number of earlier trials that
        did not fail, so a resumed study continues where it stopped. During the QMC phase the whole known
        search space is sampled jointly, including the first trial (Optuna's QMCSampler alone would draw
        the first trial at random because it infers the space from completed trials).
        """

        def __init__(self) -> None:
            self.search_space = search
            self.n_startup_trials = int(n_startup_trials)
            opts = {"multivariate": True, "group": True} | dict(tpe_options or {})
            with warnings.catch_warnings():  # QMC and multivariate TPE are flagged experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.qmc = optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                                      warn_independent_sampling=False)
                self.tpe = optuna.samplers.TPESampler(n_startup_trials=0, seed=seed, **opts)
            self._phase: dict[int, str] = {}

        def phase(self, number: int) -> str:
            """``"qmc"`` or ``"tpe"``: the sampler that chose trial ``number``'s parameters."""
            return self._phase.get(number, "tpe")

        def _delegate(self, trial: Any):
            return self.qmc if self.phase(trial.number) == "qmc" else self.tpe

        def before_trial(self, study: Any, trial: Any) -> None:
            earlier = [t for t in study.get_trials(deepcopy=False)
                       if t.number < trial.number and t.state != optuna.trial.TrialState.FAIL]
            self._phase[trial.number] = "qmc" if len(earlier) < self.n_startup_trials else "tpe"
            self._delegate(trial).before_trial(study, trial)

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            if self.phase(trial.number) == "qmc":
                return dict(self.search_space)
            return self.tpe.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return self._delegate(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            return self._delegate(trial).sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
            self._delegate(trial).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.qmc.reseed_rng()
            self.tpe.reseed_rng()

    return QMCThenTPESampler()


# ---- settings and study ------------------------------------------------------------------------------
@dataclass
class HPOSettings:
    """One study. ``train`` holds TrainSettings fields applied to every trial (batch_size, device, ...)."""

    train_store: Path
    val_store: Path
    embedding: str
    arch: str
    out_dir: Path
    synth: str | None = None
    """Synth name for the study name; None: the store's ``synth`` attribute."""
    space: str = "auto"
    """``all`` (architecture + optimizer), ``opt`` (optimizer only) or ``auto`` (``opt`` for Dexed)."""
    n_trials: int | None = None
    n_startup_trials: int | None = None
    seed: int | None = None
    storage: str | None = None
    """Optuna storage URL; None: ``sqlite:///<out_dir>/optuna.db``."""
    study_name: str | None = None
    """None: ``<synth>_<arch>_<space>``."""
    spaces_file: Path | None = None
    train: dict[str, Any] = field(default_factory=dict)
    heartbeat_interval: int | None = 60
    """RDB storages: a trial whose worker stops beating for 2 intervals is marked failed and replaced."""
    prune_train_loss: float | str | None = "baseline"
    """Prune a trial (Optuna's PRUNED state) whose final training loss is non-finite or above this value, as the
    official code does (0.75 with mn04 embeddings). ``"baseline"``: twice the L1 of a constant predictor of the
    mean training embedding (a diverging trial ends far above it; one epoch of a healthy trial can still be a
    little above it at small scales); None: prune only non-finite losses."""

    def __post_init__(self) -> None:
        self.train_store, self.val_store = Path(self.train_store), Path(self.val_store)
        self.out_dir = Path(self.out_dir)
        self.spaces_file = Path(self.spaces_file) if self.spaces_file else None
        self.train = dict(self.train or {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HPOSettings:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(f"unknown HPO setting(s) {unknown}; valid: {names}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"HPO settings: {exc}") from None


@dataclass
class HPOResult:
    """Outcome of :func:`run_hpo`."""

    study_name: str
    storage: str
    space: str
    best_value: float | None
    best_params: dict[str, Any]
    best_encoder: dict[str, Any]
    best_train: dict[str, Any]
    n_finished: int
    n_new: int
    trials_csv: Path
    samplers: dict[int, str] = field(default_factory=dict)


def _storage(url: str, heartbeat: int | None):
    optuna = _optuna()
    if url.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql"):
        kwargs = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat} if heartbeat else {}
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None  # parallel workers wait
        with warnings.catch_warnings():  # heartbeats are flagged experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
    return url


def _finished(study: Any) -> list[Any]:
    optuna = _optuna()
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                    optuna.trial.TrialState.PRUNED))


def run_hpo(settings: HPOSettings | dict[str, Any]) -> HPOResult:
    """Create or resume the study and run trials until it holds ``n_trials`` finished ones.

    Writes ``trials.csv`` (one row per trial: number, state, value, parameters, sampler, validation L1,
    parameter count, seconds) and ``best_params.json`` to ``out_dir``.
    """
    optuna = _optuna()
    s = settings if isinstance(settings, HPOSettings) else HPOSettings.from_dict(settings)
    spaces = load_spaces(s.spaces_file)
    defaults = spaces.get("defaults", {})
    root, _, _ = open_training_store(s.train_store, s.embedding)  # fail early on bad stores
    open_training_store(s.val_store, s.embedding)
    synth = s.synth or root.attrs.get("synth") or "synth"
    space = s.space
    if space == "auto":
        space = "opt" if synth in defaults.get("optimizer_only_synths", []) else "all"
    if space not in ("all", "opt"):
        raise ConfigError(f"HPO space must be 'all', 'opt' or 'auto', got {s.space!r}")
    params, fixed = search_space(s.arch, space, spaces)
    n_trials = int(s.n_trials if s.n_trials is not None else defaults["n_trials"][space])
    n_startup = int(s.n_startup_trials if s.n_startup_trials is not None else defaults["n_startup_trials"][space])
    seed = int(s.seed if s.seed is not None else defaults.get("seed", 42))
    if n_trials < 1 or n_startup < 0:
        raise ConfigError(f"HPO needs n_trials >= 1 and n_startup_trials >= 0, got {n_trials}, {n_startup}")
    trial_defaults = dict(defaults.get("training", {}))
    trial_base = trial_defaults | {"seed": seed} | dict(s.train)
    bad = sorted(set(trial_base) - {f.name for f in fields(TrainSettings)})
    if bad:
        raise ConfigError(f"unknown training setting(s) {bad} in HPO 'train'")
    top = sorted(set(trial_base) & {"train_store", "val_store", "embedding", "arch", "out_dir"})
    if top:
        raise ConfigError(f"HPO 'train' must not set {top}: they are HPO settings of their own")
    TrainSettings(train_store=s.train_store, val_store=s.val_store, embedding=s.embedding, arch=s.arch,
                  out_dir=s.out_dir, **trial_base)  # fail before the study starts on a bad setting

    s.out_dir.mkdir(parents=True, exist_ok=True)
    url = s.storage or f"sqlite:///{(s.out_dir / 'optuna.db').resolve()}"
    study_name = s.study_name or f"{synth}_{s.arch}_{space}"
    sampler = make_sampler(distributions(params), n_startup, seed, defaults.get("tpe"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=_storage(url, s.heartbeat_interval),
                                sampler=sampler, direction="maximize", load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ConfigError(f"study {study_name} in {url} exists with another direction; use another study_name")

    threshold = prune_threshold(s.prune_train_loss, s.train_store, s.embedding)

    def objective(trial: Any) -> float:
        trial.set_user_attr(SAMPLER_ATTR, sampler.phase(trial.number))
        values = suggest(trial, params)
        enc, train_over = to_settings(values, params, fixed, s.arch)
        cfg = trial_base | train_over | {
            "train_store": s.train_store, "val_store": s.val_store, "embedding": s.embedding, "arch": s.arch,
            "out_dir": s.out_dir / "trials" / f"trial_{trial.number:04d}",
            "encoder": dict(trial_base.get("encoder") or {}) | enc,
            "save_checkpoints": False, "resume": False,
        }
        try:
            result = train_encoder(TrainSettings.from_dict(cfg))
        except TrainingError as exc:
            # A diverged configuration is pruned (as in the official code), not a crash
            trial.set_user_attr("error", str(exc))
            log.warning("trial %d diverged, pruned: %s", trial.number, exc)
            raise optuna.TrialPruned(str(exc)) from None
        last = result.history[-1]
        trial.set_user_attr("train_l1", last["train_l1"])
        if not math.isfinite(last["train_l1"]) or (threshold is not None and last["train_l1"] > threshold):
            log.warning("trial %d pruned: final training loss %.4g above %.4g", trial.number, last["train_l1"],
                        threshold)
            raise optuna.TrialPruned(f"training loss {last['train_l1']:.4g} > {threshold}")
        trial.set_user_attr("val_l1", last["val_l1"])
        trial.set_user_attr("n_params", result.n_params)
        trial.set_user_attr("seconds", last["seconds"])
        trial.set_user_attr("data_wait_share", last["data_wait_share"])
        return float(last["val_mrr"])

    done_before = len(_finished(study))
    remaining = n_trials - done_before
    if remaining > 0:
        log.info("study %s: %d/%d trials finished, running %d more", study_name, done_before, n_trials, remaining)
        study.optimize(objective, n_trials=remaining, gc_after_trial=True, callbacks=[
            optuna.study.MaxTrialsCallback(n_trials, states=(optuna.trial.TrialState.COMPLETE,
                                                             optuna.trial.TrialState.PRUNED))])
    finished = _finished(study)
    csv_path = s.out_dir / "trials.csv"
    _write_trials_csv(study, csv_path)
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
                and math.isfinite(t.value)]
    best = max(complete, key=lambda t: t.value, default=None)  # pruned trials are never the best
    best_params = dict(best.params) if best else {}
    enc, train_over = to_settings(best_params, params, fixed, s.arch) if best else ({}, {})
    result = HPOResult(
        study_name=study_name, storage=url, space=space, best_value=best.value if best else None,
        best_params=best_params, best_encoder=enc, best_train=train_over, n_finished=len(finished),
        n_new=len(finished) - done_before, trials_csv=csv_path,
        samplers={t.number: t.user_attrs.get(SAMPLER_ATTR, "?") for t in study.get_trials(deepcopy=False)},
    )
    summary = {"study_name": study_name, "storage": url, "space": space, "best_value": result.best_value,
               "best_trial": best.number if best else None, "best_params": best_params,
               "encoder": enc, "train": {k: list(v) if isinstance(v, tuple) else v for k, v in train_over.items()},
               "n_finished": result.n_finished}
    write_json_atomic(s.out_dir / "best_params.json", summary)
    return result


BASELINE_FACTOR = 2.0
"""``prune_train_loss: baseline`` prunes above this multiple of the constant predictor's L1."""


def prune_threshold(setting: float | str | None, train_store: Path, embedding: str) -> float | None:
    """The training-loss threshold above which trials are pruned (see ``HPOSettings.prune_train_loss``)."""
    if setting is None or (isinstance(setting, int | float) and not isinstance(setting, bool)):
        return None if setting is None else float(setting)
    if setting != "baseline":
        raise ConfigError(f"HPO prune_train_loss must be a number, 'baseline' or null, got {setting!r}")
    return BASELINE_FACTOR * constant_predictor_l1(train_store, embedding)


def constant_predictor_l1(store: Path, embedding: str, batch_rows: int = 65536) -> float:
    """Mean L1 error of predicting the mean training embedding for every preset (streamed, two passes)."""
    import numpy as np

    _, _, emb = open_training_store(store, embedding)
    n = emb.shape[0]
    total = np.zeros(emb.shape[1])
    for s in range(0, n, batch_rows):
        total += np.asarray(emb[s:s + batch_rows], dtype=np.float64).sum(axis=0)
    mean = total / n
    err = 0.0
    for s in range(0, n, batch_rows):
        err += float(np.abs(np.asarray(emb[s:s + batch_rows], dtype=np.float64) - mean).sum())
    return err / (n * emb.shape[1])


def _write_trials_csv(study: Any, path: Path) -> None:
    df = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "datetime_start",
                                       "datetime_complete", "duration"))
    write_text_atomic(path, df.to_csv(index=False))
