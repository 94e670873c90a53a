"""Training strategies as data: weights of the loss terms, and the data source, over the course of training.

A strategy (a loss schedule) is a named combination of loss terms with piecewise-linear weight curves over the
*fraction* of training, and of data phases, e.g. (paper 1 Sec. 8, the official ``loss_scheduler``)::

    mix:    {weights: {param: [[0.333, 1.0], [0.667, 0.5]], audio: [[0.333, 0.0], [0.667, 5.0]]}}

ramps the parameter loss from 1 to 0.5 and the audio-embedding loss from 0 to 5 between a third and two thirds
of all steps, and holds them outside that range. Paper 2's strategies also switch data (Fig. 6):
``data: [[0.0, in_domain], [0.5, out_of_domain]]`` (*Real*) or ``[[0.0, in_domain], [0.5, alternate]]``
(*Mixed*: batches alternate between in-domain and out-of-domain sounds; the parameter loss is zero on the
latter, which have no parameters). The same object serves both papers' training, so a config names its
strategies, it never subclasses anything.

Weights are pure functions of ``(step, total_steps)``, so a resumed run continues exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from synthproxy.errors import ConfigError

SOURCES = ("in_domain", "out_of_domain", "alternate")
"""Data sources of a phase: in-domain sounds (with parameters), out-of-domain sounds, or both alternately."""


@dataclass(frozen=True)
class WeightCurve:
    """Piecewise-linear weight over the fraction of training; constant before the first and after the last point."""

    points: tuple[tuple[float, float], ...]

    def at(self, fraction: float) -> float:
        pts = self.points
        if fraction <= pts[0][0]:
            return pts[0][1]
        for (f0, w0), (f1, w1) in itertools.pairwise(pts):
            if fraction <= f1:
                return w0 + (w1 - w0) * (fraction - f0) / (f1 - f0) if f1 > f0 else w1
        return pts[-1][1]


@dataclass(frozen=True)
class Strategy:
    """A named training strategy: one weight curve per loss term and the data phases."""

    name: str
    weights: Mapping[str, WeightCurve]
    data: tuple[tuple[float, str], ...] = ((0.0, "in_domain"),)

    def weights_at(self, step: int, total_steps: int) -> dict[str, float]:
        """Weight of every loss term at optimizer step ``step`` of ``total_steps``."""
        frac = step / max(1, total_steps)
        return {term: curve.at(frac) for term, curve in self.weights.items()}

    def source_at(self, step: int, total_steps: int) -> str:
        """The data source of the phase ``step`` falls in."""
        frac = step / max(1, total_steps)
        source = self.data[0][1]
        for start, name in self.data:
            if frac >= start:
                source = name
        return source

    @property
    def uses(self) -> set[str]:
        """Loss terms whose weight is ever non-zero (a term never used needs no computation)."""
        return {t for t, c in self.weights.items() if any(w != 0 for _, w in c.points)}

    @property
    def needs_out_of_domain(self) -> bool:
        return any(s != "in_domain" for _, s in self.data)


def _points(raw: Any, where: str) -> tuple[tuple[float, float], ...]:
    if isinstance(raw, int | float):
        return ((0.0, float(raw)),)
    if not isinstance(raw, Sequence) or not raw:
        raise ConfigError(f"{where}: expected a number or a list of [fraction, weight] pairs, got {raw!r}")
    pts = []
    for p in raw:
        if not (isinstance(p, Sequence) and len(p) == 2 and all(isinstance(v, int | float) for v in p)):
            raise ConfigError(f"{where}: each point is [fraction, weight], got {p!r}")
        pts.append((float(p[0]), float(p[1])))
    fracs = [f for f, _ in pts]
    if any(not 0 <= f <= 1 for f in fracs) or fracs != sorted(fracs):
        raise ConfigError(f"{where}: fractions must be increasing and in [0, 1], got {fracs}")
    return tuple(pts)


def strategy_from_config(name: str, raw: Mapping[str, Any], terms: Sequence[str], where: str = "") -> Strategy:
    """Build a strategy from its config entry; ``terms`` are the loss terms the training knows."""
    where = where or f"strategy '{name}'"
    if not isinstance(raw, Mapping) or "weights" not in raw:
        raise ConfigError(f"{where}: expected a mapping with 'weights' (and optionally 'data')")
    unknown = sorted(set(raw) - {"weights", "data", "description"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: ['data', 'description', 'weights']")
    weights = {}
    for term, curve in raw["weights"].items():
        if term not in terms:
            raise ConfigError(f"{where}.weights: unknown loss term '{term}'; this training has {list(terms)}")
        weights[term] = WeightCurve(_points(curve, f"{where}.weights.{term}"))
    data = tuple((float(f), str(s)) for f, s in raw.get("data", [[0.0, "in_domain"]]))
    bad = [s for _, s in data if s not in SOURCES]
    if bad or not data or data[0][0] != 0.0:
        raise ConfigError(f"{where}.data: phases are [fraction, source] from fraction 0, sources {SOURCES}; "
                          f"got {raw.get('data')}")
    return Strategy(name, weights, data)


def strategies_from_config(raw: Mapping[str, Any], terms: Sequence[str], where: str) -> dict[str, Strategy]:
    """Every strategy of a config section ``{name: {weights: ..., data: ...}}``."""
    if not raw:
        raise ConfigError(f"{where}: no strategy configured")
    return {name: strategy_from_config(name, entry, terms, f"{where}.{name}") for name, entry in raw.items()}
