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

    chunk = cfg.get("dataset", {}).get("chunk_rows", 1)
    for split, s in cfg.get("dataset", {}).get("splits", {}).items():
        if s["shard_size"] % chunk:
            raise ConfigError(
                f"dataset.splits.{split}.shard_size: {s['shard_size']} is not a multiple of "
                f"dataset.chunk_rows ({chunk}); parallel shards must write whole chunks"
            )
    return cfg


def _check_representation(rep: dict[str, Any], where: str) -> None:
    """The representation is registered and accepts its options (weights are not needed to check this)."""
    try:
        get_representation(rep["name"], **rep.get("options", {}))
    except ConfigError as exc:
        raise ConfigError(f"{where}.name: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{where}.options: {exc}") from exc


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

    A missing plugin stops here, naming the path and the config key ``synths.<name>.plugin``.
    """
    from synthproxy.synths.engines import plugin_path_for
    from synthproxy.synths.spec import load_spec

    specs = {}
    for name, s in cfg["synths"].items():
        spec = load_spec(s["spec"])
        plugin_path_for(spec, s.get("plugin"), name)
        specs[name] = spec
    return specs
