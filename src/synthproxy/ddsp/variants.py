"""The synthesizer variants of paper 2 (Table I) as data: loading and validating ``variants.yaml``.

:func:`get_variant` returns a :class:`VariantSpec` — which modules a variant uses, where each control
comes from (static / dynamic / external / envelope), its parameter groups with their channel counts,
ranges and scales, and its fixed values. :class:`synthproxy.ddsp.synth.DDSPSynth` builds the modules
from it. This module depends only on :mod:`synthproxy.ddsp.core` and :mod:`synthproxy.errors`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from synthproxy.ddsp.core import SCALES, ParamRange
from synthproxy.errors import ConfigError

ROLES = ("static", "dynamic", "external")
SYMBOLS = ("note_off", "duration", "nyquist")
AMP_ENVELOPE = ("amp_peak", "amp_attack", "amp_decay", "amp_sustain", "amp_release")
CUTOFF_ENVELOPE = (
    "cutoff_attack", "cutoff_decay", "cutoff_sustain", "cutoff_release", "cutoff_floor", "cutoff_peak",
)
EFFECT_GROUPS = {"chorus": ("chorus_delay", "chorus_mix"), "reverb": ("reverb_gain", "reverb_decay")}
ENVELOPE_FIXED = ("amp_floor", "amp_env_max", "cutoff_env_max")
CHORUS_FIXED = ("chorus_depth", "lfo_rate", "lfo_level")
_GROUP_KEYS = {"official", "channels", "low", "high", "scale", "exponent", "unit", "doc"}
_VARIANT_KEYS = {
    "paper", "official_config", "doc", "oscillators", "sources", "effects", "static", "dynamic", "external", "fixed",
}


@dataclass(frozen=True)
class ParamGroup:
    """A named parameter with ``channels`` values (e.g. one per oscillator).

    ``low`` / ``high`` may be symbols (``note_off``, ``duration``, ``nyquist``) resolved by
    :meth:`resolve_range`. ``role`` is ``static``, ``dynamic`` or ``external`` (empty in the catalogue).
    """

    name: str
    official: str
    channels: int
    low: float | str
    high: float | str
    scale: str
    exponent: float
    unit: str
    doc: str
    role: str = ""

    @property
    def scalar_names(self) -> tuple[str, ...]:
        """``name`` for one channel, ``name_1 .. name_C`` for several."""
        if self.channels == 1:
            return (self.name,)
        return tuple(f"{self.name}_{i}" for i in range(1, self.channels + 1))

    def resolve_range(self, context: Mapping[str, float]) -> ParamRange:
        """The physical range, with symbolic bounds taken from ``context``."""

        def bound(value: float | str) -> float:
            return float(context[value]) if isinstance(value, str) else float(value)

        return ParamRange(bound(self.low), bound(self.high), self.scale, self.exponent)


@dataclass(frozen=True)
class VariantSpec:
    """One synthesizer architecture of Table I.

    ``sources`` maps ``amplitude`` and ``cutoff`` to ``dynamic`` or ``envelope`` and ``f0`` to
    ``static`` or ``external``; ``oscillators`` is ``ordered`` (f2 = f0 · f0_mult) or ``unordered``.
    """

    name: str
    paper: str
    official_config: str
    doc: str
    oscillators: str
    sources: Mapping[str, str]
    effects: tuple[str, ...]
    static: tuple[ParamGroup, ...]
    dynamic: tuple[ParamGroup, ...]
    external: tuple[ParamGroup, ...]
    fixed: Mapping[str, float]

    def group(self, name: str) -> ParamGroup:
        for g in (*self.static, *self.dynamic, *self.external):
            if g.name == name:
                return g
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(g.name == name for g in (*self.static, *self.dynamic, *self.external))


@dataclass(frozen=True)
class Catalogue:
    """Everything in ``variants.yaml``: shared settings, parameter groups, fixed values and variants."""

    synth: Mapping[str, Any]
    options: Mapping[str, Any]
    parameters: Mapping[str, ParamGroup]
    fixed_values: Mapping[str, float]
    variants: Mapping[str, VariantSpec]
    sampling: Mapping[str, tuple[str, ...]]


def _fail(msg: str) -> ConfigError:
    return ConfigError(f"ddsp variants.yaml: {msg}")


def _parse_group(name: str, raw: Mapping[str, Any]) -> ParamGroup:
    unknown = set(raw) - _GROUP_KEYS
    if unknown:
        raise _fail(f"parameter {name!r} has unknown keys {sorted(unknown)}")
    for key in ("low", "high"):
        value = raw.get(key)
        if isinstance(value, str) and value not in SYMBOLS:
            raise _fail(f"parameter {name!r}: {key} {value!r} is neither a number nor one of {SYMBOLS}")
        if value is None:
            raise _fail(f"parameter {name!r} has no {key}")
    if raw.get("scale") not in SCALES:
        raise _fail(f"parameter {name!r}: scale must be one of {SCALES}, got {raw.get('scale')!r}")
    channels = raw.get("channels")
    if not isinstance(channels, int) or channels < 1:
        raise _fail(f"parameter {name!r}: channels must be a positive integer, got {channels!r}")
    return ParamGroup(
        name=name, official=str(raw.get("official", "")), channels=channels, low=raw["low"], high=raw["high"],
        scale=raw["scale"], exponent=float(raw.get("exponent", 1.0)), unit=str(raw.get("unit", "")),
        doc=str(raw.get("doc", "")),
    )


def _role_groups(
    variant: str, raw: Mapping[str, Any], role: str, parameters: Mapping[str, ParamGroup]
) -> tuple[ParamGroup, ...]:
    names = raw.get(role) or []
    out = []
    for name in names:
        if name not in parameters:
            raise _fail(f"variant {variant!r}: unknown parameter {name!r} in {role}")
        g = parameters[name]
        out.append(ParamGroup(**{**g.__dict__, "role": role}))
    return tuple(out)


def _check_variant(spec: VariantSpec) -> None:
    """The roles of the groups must agree with the declared sources, oscillators and effects."""

    def need(names: tuple[str, ...], role: str, why: str) -> None:
        groups = {"static": spec.static, "dynamic": spec.dynamic, "external": spec.external}[role]
        present = {g.name for g in groups}
        missing = [n for n in names if n not in present]
        if missing:
            raise _fail(f"variant {spec.name!r}: {why} needs {role} parameters {missing}")

    def forbid(names: tuple[str, ...], why: str) -> None:
        present = [n for n in names if spec.has(n)]
        if present:
            raise _fail(f"variant {spec.name!r}: {why} excludes parameters {present}")

    all_names = [g.name for g in (*spec.static, *spec.dynamic, *spec.external)]
    if len(set(all_names)) != len(all_names):
        raise _fail(f"variant {spec.name!r} lists a parameter twice: {all_names}")
    need(("osc_mix", "filter_q"), "static", "the oscillators and filter")
    for control, groups in (("amplitude", AMP_ENVELOPE), ("cutoff", CUTOFF_ENVELOPE)):
        source = spec.sources.get(control)
        if source == "dynamic":
            need((control,), "dynamic", f"{control} source 'dynamic'")
            forbid(groups, f"{control} source 'dynamic'")
        elif source == "envelope":
            need(groups, "static", f"{control} source 'envelope'")
            forbid((control,), f"{control} source 'envelope'")
        else:
            raise _fail(f"variant {spec.name!r}: sources.{control} must be 'dynamic' or 'envelope', got {source!r}")
    f0_source = spec.sources.get("f0")
    if spec.oscillators == "ordered":
        need(("f0_mult",), "static", "ordered oscillators")
        forbid(("osc_f0",), "ordered oscillators")
        if f0_source == "static":
            need(("f0",), "static", "f0 source 'static'")
        elif f0_source == "external":
            need(("f0",), "external", "f0 source 'external'")
        else:
            raise _fail(f"variant {spec.name!r}: sources.f0 must be 'static' or 'external', got {f0_source!r}")
    elif spec.oscillators == "unordered":
        if f0_source != "static":
            raise _fail(f"variant {spec.name!r}: unordered oscillators need sources.f0 'static'")
        need(("osc_f0",), "static", "unordered oscillators")
        forbid(("f0", "f0_mult"), "unordered oscillators")
    else:
        raise _fail(f"variant {spec.name!r}: oscillators must be 'ordered' or 'unordered', got {spec.oscillators!r}")
    for effect, groups in EFFECT_GROUPS.items():
        if effect in spec.effects:
            need(groups, "static", f"effect {effect!r}")
        else:
            forbid(groups, f"no {effect!r} effect")
    unknown_fx = set(spec.effects) - set(EFFECT_GROUPS)
    if unknown_fx:
        raise _fail(f"variant {spec.name!r}: unknown effects {sorted(unknown_fx)}")
    required_fixed: tuple[str, ...] = ()
    if "envelope" in (spec.sources["amplitude"], spec.sources["cutoff"]):
        required_fixed += ENVELOPE_FIXED
    if "chorus" in spec.effects:
        required_fixed += CHORUS_FIXED
    missing = [n for n in required_fixed if n not in spec.fixed]
    if missing:
        raise _fail(f"variant {spec.name!r}: missing fixed values {missing}")
    for g in spec.external:
        if g.name != "f0":
            raise _fail(f"variant {spec.name!r}: only f0 can be external, got {g.name!r}")


def parse_catalogue(raw: Mapping[str, Any]) -> Catalogue:
    """Validate the parsed YAML document and build the :class:`Catalogue`."""
    if raw.get("version") != 1:
        raise _fail(f"unsupported version {raw.get('version')!r}")
    parameters = {name: _parse_group(name, g) for name, g in (raw.get("parameters") or {}).items()}
    fixed_values = {}
    for name, entry in (raw.get("fixed_values") or {}).items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise _fail(f"fixed value {name!r} needs a 'value'")
        fixed_values[name] = float(entry["value"])
    variants = {}
    for name, v in (raw.get("variants") or {}).items():
        unknown = set(v) - _VARIANT_KEYS
        if unknown:
            raise _fail(f"variant {name!r} has unknown keys {sorted(unknown)}")
        fixed_names = v.get("fixed") or []
        bad = [f for f in fixed_names if f not in fixed_values]
        if bad:
            raise _fail(f"variant {name!r}: unknown fixed values {bad}")
        spec = VariantSpec(
            name=name, paper=str(v.get("paper", name)), official_config=str(v.get("official_config", "")),
            doc=str(v.get("doc", "")), oscillators=str(v.get("oscillators", "")), sources=dict(v.get("sources") or {}),
            effects=tuple(v.get("effects") or ()),
            static=_role_groups(name, v, "static", parameters), dynamic=_role_groups(name, v, "dynamic", parameters),
            external=_role_groups(name, v, "external", parameters),
            fixed={f: fixed_values[f] for f in fixed_names},
        )
        _check_variant(spec)
        variants[name] = spec
    sampling = {k: tuple(v) for k, v in (raw.get("sampling") or {}).items()}
    for control, names in sampling.items():
        bad = [n for n in names if n not in parameters]
        if bad:
            raise _fail(f"sampling.{control}: unknown parameters {bad}")
    return Catalogue(
        synth=dict(raw.get("synth") or {}), options=dict(raw.get("options") or {}), parameters=parameters,
        fixed_values=fixed_values, variants=variants, sampling=sampling,
    )


@functools.cache
def load_catalogue() -> Catalogue:
    """The package's ``variants.yaml``, parsed and validated (cached)."""
    text = (resources.files("synthproxy.ddsp") / "variants.yaml").read_text(encoding="utf-8")
    return parse_catalogue(yaml.safe_load(text))


def variant_names() -> tuple[str, ...]:
    return tuple(load_catalogue().variants)


def get_variant(name: str) -> VariantSpec:
    """The :class:`VariantSpec` called ``name``; :class:`ConfigError` for an unknown name."""
    variants = load_catalogue().variants
    if name not in variants:
        raise ConfigError(f"unknown DDSP synth variant {name!r}; choose one of {', '.join(variants)}")
    return variants[name]
