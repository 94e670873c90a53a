"""The cost table: measured per-item costs (one render, one embedding, one training step, ...) as data.

``benchmarks/costs.yaml`` (written by ``benchmarks/measure_costs.py``) holds every figure as an entry
``{value, unit, source[, estimated]}``: the unit is checked against the one the planner multiplies with, the
source names a record in ``sources`` (which benchmark, which machine, which date; or, for derived figures,
the reasoning), and a figure whose source is an estimate must say ``estimated: true``, so that no derived
number passes for a measured one. :func:`load_costs` validates the file and :class:`CostTable` reads it;
every problem is a :class:`~synthproxy.errors.ConfigError` naming the file and the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from synthproxy.errors import ConfigError

COSTS_FORMAT = 1
"""Version of the table's layout (``format:`` in the file)."""

DEFAULT_COSTS = Path("benchmarks") / "costs.yaml"
"""Where the repository keeps the table (relative to the repository root)."""


class _Entry:
    """Schema marker: a cost entry ``{value, unit, source[, estimated]}`` with this unit."""

    def __init__(self, unit: str) -> None:
        self.unit = unit


_ANY = object()
"""Schema marker: any value (descriptive fields such as ``reference``)."""

_PER_SYNTH_STEP = {"*": _Entry("s/step")}
_PER_SYNTH_PRESET = {"*": _Entry("s/preset")}

SCHEMA: dict[str, Any] = {
    "format": int,
    "machines": {"*": {"description": str, "cores": int, "gpus": int, "conditions": str}},
    "sources": {"*": {"kind": str, "benchmark": str, "machine": str, "date": str, "what": str, "reasoning": str,
                      "model": _ANY, "gpu_peak_flops": _ANY}},
    "jobs": {"startup_seconds": _Entry("s/job")},
    "render": {"*": {"render_seconds": _Entry("s/render"), "overhead_seconds": _Entry("s/candidate"),
                     "rejected_per_preset": _Entry("candidates/preset"), "reference": _ANY}},
    "representations": {"*": {"cpu_seconds": _Entry("s/clip"), "gpu_seconds": _Entry("s/clip"),
                              "flops": _Entry("FLOP/clip")}},
    "training": {"*": {"batch_size": int, "parameters": {"*": int},
                       "cpu_step_seconds": _PER_SYNTH_STEP, "gpu_step_seconds": _PER_SYNTH_STEP,
                       "cpu_forward_seconds": _PER_SYNTH_PRESET, "gpu_forward_seconds": _PER_SYNTH_PRESET,
                       "step_flops": {"*": _Entry("FLOP/step")}, "forward_flops": {"*": _Entry("FLOP/preset")}}},
    "retrieval": {"run_seconds": _Entry("s/run"), "reference": _ANY},
    "handcrafted": {"*": {"files": _Entry("files"), "presets": _Entry("presets"), "path": str}},
    "estimators": {"*": {"cpu_step_seconds": _Entry("s/example"), "gpu_step_seconds": _Entry("s/example"),
                         "step_flops": _Entry("FLOP/example")}},
    "ddsp": {"*": {"cpu_forward_seconds": _Entry("s/clip"), "cpu_backward_seconds": _Entry("s/clip"),
                   "gpu_backward_seconds": _Entry("s/clip")}},
    "metrics": {"*": {"cpu_seconds": _Entry("s/clip")}},
}
"""The table's layout: nested keys (``*``: any name, e.g. a synth or an architecture) down to the entries."""

REQUIRED = ("format", "machines", "sources")


def _fail(where: str, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {key}: {msg}")


def _check_entry(node: Any, unit: str, key: str, where: str, sources: dict[str, Any]) -> None:
    if not isinstance(node, dict):
        raise _fail(where, key, f"expected a cost entry {{value, unit, source}}, got {node!r}")
    extra = sorted(set(node) - {"value", "unit", "source", "estimated"})
    if extra:
        raise _fail(where, key, f"unknown key(s) {extra}; allowed: ['estimated', 'source', 'unit', 'value']")
    for field in ("value", "unit", "source"):
        if field not in node:
            raise _fail(where, f"{key}.{field}", "missing")
    value = node["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _fail(where, f"{key}.value", f"expected a finite number >= 0, got {value!r}")
    if node["unit"] != unit:
        raise _fail(where, f"{key}.unit", f"expected '{unit}', got {node['unit']!r}")
    if node["source"] not in sources:
        raise _fail(where, f"{key}.source", f"'{node['source']}' is not in sources ({sorted(sources)})")
    estimated = node.get("estimated", False)
    if not isinstance(estimated, bool):
        raise _fail(where, f"{key}.estimated", f"expected true or false, got {estimated!r}")
    if sources[node["source"]].get("kind") == "estimated" and not estimated:
        raise _fail(where, f"{key}.estimated", f"source '{node['source']}' is an estimate: the entry must say "
                                               "estimated: true")


def _check(node: Any, schema: Any, key: str, where: str, sources: dict[str, Any]) -> None:
    if schema is _ANY:
        return
    if isinstance(schema, _Entry):
        _check_entry(node, schema.unit, key, where, sources)
        return
    if isinstance(schema, type):
        if isinstance(node, bool) or not isinstance(node, schema):
            raise _fail(where, key, f"expected {schema.__name__}, got {node!r}")
        return
    if not isinstance(node, dict):
        raise _fail(where, key, f"expected a mapping, got {node!r}")
    for name, sub in node.items():
        child = f"{key}.{name}" if key else str(name)
        if name in schema:
            _check(sub, schema[name], child, where, sources)
        elif "*" in schema:
            _check(sub, schema["*"], child, where, sources)
        else:
            raise _fail(where, child, f"unknown key; allowed here: {sorted(schema)}")


def validate_costs(table: Any, where: str = "cost table") -> dict[str, Any]:
    """Check a cost table's layout, units, sources and estimate marks; returns it. ``where`` names the file."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a mapping at top level")
    for key in REQUIRED:
        if key not in table:
            raise _fail(where, key, "missing")
    if table["format"] != COSTS_FORMAT:
        raise _fail(where, "format", f"this planner reads format {COSTS_FORMAT}, got {table['format']!r}")
    sources = table["sources"]
    if not isinstance(sources, dict):
        raise _fail(where, "sources", f"expected a mapping, got {sources!r}")
    machines = table["machines"] if isinstance(table["machines"], dict) else {}
    for name, src in sources.items():
        if not isinstance(src, dict) or src.get("kind") not in ("measured", "estimated"):
            raise _fail(where, f"sources.{name}.kind", "expected measured or estimated")
        required = ("benchmark", "machine", "date") if src["kind"] == "measured" else ("reasoning",)
        for field in required:
            if not src.get(field):
                raise _fail(where, f"sources.{name}.{field}", f"missing (a {src['kind']} figure must give it)")
        if src.get("machine") and src["machine"] not in machines:
            raise _fail(where, f"sources.{name}.machine", f"'{src['machine']}' is not in machines ({sorted(machines)})")
    _check(table, SCHEMA, "", where, sources)
    return table


def load_costs(path: str | Path, validate: bool = True) -> dict[str, Any]:
    """Read (and by default validate) a cost-table YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cost table not found: {path} (write it with benchmarks/measure_costs.py)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return validate_costs(raw, str(path)) if validate else raw


class CostTable:
    """Read access to a validated cost table; a missing figure raises a ConfigError naming its key."""

    def __init__(self, table: dict[str, Any], where: str = "cost table") -> None:
        self.table = validate_costs(table, where)
        self.where = where

    def _node(self, path: tuple[str, ...], hint: str) -> Any:
        node: Any = self.table
        for i, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                missing = ".".join(path[: i + 1])
                raise ConfigError(f"{self.where}: no cost entry '{missing}'{hint} (measure it with "
                                  "benchmarks/measure_costs.py or add it by hand)")
            node = node[key]
        return node

    def value(self, *path: str, hint: str = "") -> float:
        """The value of entry ``path`` (e.g. ``value("render", "dexed", "render_seconds")``)."""
        return float(self._node(path, hint)["value"])

    def has(self, *path: str) -> bool:
        """Whether the table holds ``path``."""
        try:
            self._node(path, "")
        except ConfigError:
            return False
        return True

    def estimated(self, *path: str) -> bool:
        """Whether entry ``path`` is derived rather than measured."""
        return bool(self._node(path, "").get("estimated", False))

    def get(self, *path: str, hint: str = "") -> Any:
        """Any node of the table (e.g. a ``reference`` record)."""
        return self._node(path, hint)

    def provenance(self) -> list[str]:
        """Where the figures come from: one line per machine and date of measured sources, one per estimate."""
        machines = self.table.get("machines", {})
        measured: dict[tuple[str, str], list[str]] = {}
        out = []
        for name, s in self.table["sources"].items():
            if s["kind"] == "measured":
                measured.setdefault((s["machine"], s["date"]), []).append(name)
            else:
                out.append(f"ESTIMATED, not measured: '{name}' figures (reasoning: sources.{name}.reasoning)")
        lines = []
        for (machine, date), names in measured.items():
            m = machines.get(machine, {})
            cond = f"; {m['conditions']}" if m.get("conditions") else ""
            lines.append(f"measured {date} on {machine} ({m.get('cores', '?')} cores{cond}): {', '.join(names)}")
        return lines + out


def load_cost_table(path: str | Path = DEFAULT_COSTS) -> CostTable:
    """Load and validate ``path`` as a :class:`CostTable`."""
    return CostTable(load_costs(path, validate=False), str(path))
