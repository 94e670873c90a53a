"""Loading and validating the workflow configuration.

The JSON schema (``schemas/config.schema.yaml``, also ``workflow/schemas/``) checks types, ranges and
unknown keys; :func:`validate_config` adds the checks a schema cannot express (files that must exist,
registered representations, chunk-aligned shards) and fills defaults. Every message names the key.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from synthproxy.audio.registry import embedding_key, get_representation
from synthproxy.errors import ConfigError

SCHEMA_PATH = resources.files("synthproxy") / "schemas" / "config.schema.yaml"


def load_schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path]
    return ".".join(parts).replace(".[", "[") or "(top level)"


def _fill_defaults(schema: dict[str, Any], node: Any) -> None:
    """Insert schema defaults into ``node`` (recursively for nested objects)."""
    if not isinstance(node, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill_defaults(sub, node[key])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(extra, value)


def validate_config(config: dict[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """Validate a config dict and return a copy with defaults filled in.

    ``base_dir`` is where relative paths in the config are resolved from (the workflow directory).
    """
    if not isinstance(config, dict):
        raise ConfigError("config: expected a mapping at top level")
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for e in errors[:10]:
            if e.validator == "additionalProperties":
                allowed = sorted(e.schema.get("properties", {}))
                extra = sorted(set(e.instance) - set(allowed))
                lines.append(f"{_key_path(e)}: unknown key(s) {extra}; allowed: {allowed}")
            else:
                lines.append(f"{_key_path(e)}: {e.message}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    cfg = copy.deepcopy(config)
    _fill_defaults(schema, cfg)
    base = Path(base_dir)

    for name, synth in cfg["synths"].items():
        spec = Path(synth["spec"])
        if not (spec if spec.is_absolute() else base / spec).is_file():
            raise ConfigError(f"synths.{name}.spec: file not found: {spec}")

    seen = set()
    for i, rep in enumerate(cfg.get("representations", [])):
        _check_representation(rep, f"representations[{i}]")
        key = embedding_key(rep)
        if key in seen:
            raise ConfigError(f"representations[{i}]: '{key}' is listed twice")
        seen.add(key)

    for name, synth in cfg["synths"].items():
        unknown = sorted(set(synth.get("render", {})) - set(cfg["render"]))
        if unknown:
            raise ConfigError(f"synths.{name}.render: unknown key(s) {unknown}; allowed: {sorted(cfg['render'])}")
    r = cfg["render"]
    if r["note_duration"] > r["duration"]:
        raise ConfigError(
            f"render.note_duration: {r['note_duration']} s is longer than render.duration {r['duration']} s"
        )
    if r["rms_min"] >= r["rms_max"]:
        raise ConfigError(f"render.rms_min: {r['rms_min']} must be below render.rms_max {r['rms_max']}")

    if "ranking" in cfg:
        rk = cfg["ranking"]
        for synth, groups in rk["synths"].items():
            if synth not in cfg["synths"]:
                raise ConfigError(
                    f"ranking.synths.{synth}: not a configured synth; configured: {sorted(cfg['synths'])}"
                )
            g = Path(groups)
            if not (g if g.is_absolute() else base / g).is_file():
                raise ConfigError(f"ranking.synths.{synth}: file not found: {groups}")
        labels = set()
        for i, rep in enumerate(rk["representations"]):
            _check_representation(rep, f"ranking.representations[{i}]")
            label = rep.get("label", rep["name"])
            if label in labels:
                raise ConfigError(f"ranking.representations[{i}]: label '{label}' is used twice")
            labels.add(label)

    for synth in cfg.get("handcrafted", {}).get("synths", {}):
        if synth not in cfg["synths"]:
            raise ConfigError(
                f"handcrafted.synths.{synth}: not a configured synth; configured: {sorted(cfg['synths'])}"
            )
    if "handcrafted" in cfg and abs(sum(cfg["handcrafted"]["split_fractions"]) - 1.0) > 1e-6:
        raise ConfigError(f"handcrafted.split_fractions: {cfg['handcrafted']['split_fractions']} must sum to 1")

    if "training" in cfg:
        tr = cfg["training"]
        splits = cfg.get("dataset", {}).get("splits", {})
        keys = {embedding_key(r) for r in cfg.get("representations", [])}
        if tr["representation"] not in keys:
            raise ConfigError(f"training.representation: '{tr['representation']}' is not stored; representations "
                              f"give {sorted(keys)}")
        wanted = [("training.train_split", tr["train_split"]), ("training.val_split", tr["val_split"]),
                  ("training.test_split", tr["test_split"])]
        if "hpo" in tr:
            wanted += [("training.hpo.train_split", tr["hpo"]["train_split"]),
                       ("training.hpo.val_split", tr["hpo"]["val_split"])]
        for key, split in wanted:
            if split not in splits:
                raise ConfigError(f"{key}: split '{split}' is not in dataset.splits ({sorted(splits)})")
        if tr["optimizer_from_hpo"] and "hpo" not in tr:
            raise ConfigError("training.optimizer_from_hpo: true needs a training.hpo section")

    _check_stages(cfg)
    chunk = cfg.get("dataset", {}).get("chunk_rows", 1)
    for split, s in cfg.get("dataset", {}).get("splits", {}).items():
        if s["shard_size"] % chunk:
            raise ConfigError(
                f"dataset.splits.{split}.shard_size: {s['shard_size']} is not a multiple of "
                f"dataset.chunk_rows ({chunk}); parallel shards must write whole chunks"
            )
    return cfg


def _check_ranking_groups(cfg: dict[str, Any], base: Path) -> None:
    """Every name in ``ranking.groups`` is a group of at least one synth's group file (no silent drop)."""
    from synthproxy.pipeline.ranking import load_groups, slug
    from synthproxy.synths.spec import load_spec

    known: set[str] = set()
    for synth, groups in cfg["ranking"]["synths"].items():
        spec_path = Path(cfg["synths"][synth]["spec"])
        spec = load_spec(spec_path if spec_path.is_absolute() else base / spec_path)
        known |= {slug(g.name) for g in load_groups(groups if Path(groups).is_absolute() else base / groups, spec)}
    for i, name in enumerate(cfg["ranking"]["groups"]):
        if slug(name) not in known:
            raise ConfigError(f"ranking.groups[{i}]: '{name}' is not a group of any ranking file; groups: "
                              f"{sorted(known)}")


def _check_stages(cfg: dict[str, Any]) -> None:
    """Names in the matching and DDSP sections: configured synths, trained architectures, known metrics."""
    from synthproxy.metrics.audio import metric_names

    metrics = set(metric_names())
    if "matching" in cfg:
        m = cfg["matching"]
        for synth in m["synths"]:
            if synth not in cfg["synths"]:
                raise ConfigError(f"matching.synths.{synth}: not a configured synth; "
                                  f"configured: {sorted(cfg['synths'])}")
        archs = sorted(cfg.get("training", {}).get("archs", {}))
        if "training" in cfg and m["proxy_arch"] != "best" and m["proxy_arch"] not in archs:
            raise ConfigError(f"matching.proxy_arch: '{m['proxy_arch']}' is not trained; training.archs: {archs} "
                              "(or best)")
        bad = [x for x in m["evaluation"]["metrics"] if x not in metrics]
        if bad:
            raise ConfigError(f"matching.evaluation.metrics: unknown {bad}; valid: {sorted(metrics)}")
    if "ddsp" in cfg:
        bad = [x for x in cfg["ddsp"]["evaluation"]["metrics"] if x not in metrics]
        if bad:
            raise ConfigError(f"ddsp.evaluation.metrics: unknown {bad}; valid: {sorted(metrics)}")
        if cfg["ddsp"]["benchmark"]["variant"] not in ("raw_env", "fx_env"):
            raise ConfigError("ddsp.benchmark.variant: must be a variant with static parameters (raw_env, fx_env)")
    dist = cfg.get("distribution")
    if dist and "dataset" in cfg and dist["synthetic_split"] not in cfg["dataset"]["splits"]:
        raise ConfigError(f"distribution.synthetic_split: '{dist['synthetic_split']}' is not in dataset.splits")


def _check_representation(rep: dict[str, Any], where: str) -> None:
    """The representation is registered and accepts its options (weights are not needed to check this)."""
    try:
        get_representation(rep["name"], **rep.get("options", {}))
    except ConfigError as exc:
        raise ConfigError(f"{where}.name: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}.options: {exc}") from exc


def check_workflow(cfg: dict[str, Any], base_dir: str | Path = ".") -> None:
    """Requirements between sections of a whole workflow config (the steps get slices and skip these)."""
    if "ranking" in cfg and cfg["ranking"]["groups"] is not None:
        _check_ranking_groups(cfg, Path(base_dir))
    for synth in cfg.get("matching", {}).get("synths", {}):
        if synth not in cfg.get("handcrafted", {}).get("synths", {}):
            raise ConfigError(f"matching.synths.{synth}: sound matching trains on hand-crafted presets; add "
                              f"handcrafted.synths.{synth}")
    if "matching" in cfg and "training" not in cfg:
        raise ConfigError("matching: needs a training section (the proxies it trains with)")
    if "ddsp" in cfg and "training" not in cfg:
        raise ConfigError("ddsp: the proxy-gradient study needs a training section (the architectures it trains)")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it (relative paths resolve from the current directory)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return validate_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def config_from_cli(config_path: str | None, config_json: str | None) -> dict[str, Any]:
    """A validated config from a YAML file (by-hand runs) or inline JSON (what Snakemake rules pass)."""
    if config_json:
        try:
            return validate_config(json.loads(config_json))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json is not valid JSON: {exc}") from exc
    if config_path:
        return load_config(config_path)
    raise ConfigError("give --config PATH (a YAML config) or --config-json")


def check_synths(cfg: dict[str, Any]) -> dict[str, Any]:
    """Load every configured synth's spec and check its engine and plugin file; ``{name: SynthSpec}``.

    A missing plugin stops here, naming the path and the config key ``synths.<name>.plugin``; so does a spec that
    names a parameter the engine lacks (the plugin is loaded once to list its parameters).
    """
    from synthproxy.synths.engines import plugin_path_for, validate_engine
    from synthproxy.synths.spec import load_spec

    specs = {}
    for name, s in cfg["synths"].items():
        spec = load_spec(s["spec"])
        validate_engine(spec, plugin_path_for(spec, s.get("plugin"), name))
        specs[name] = spec
    return specs
