"""What every stage that renders a configured synth derives from the validated config.

:class:`SynthPlan` resolves a synth's spec, plugin, render settings and audio models once, gives the parts of
a store's metadata that every stage shares (spec and representation descriptions), and builds the one
render core (:class:`~synthproxy.render.RenderEmbedder`) the stage renders through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthproxy.audio.registry import representations_from_config
from synthproxy.audio.representations import Representation
from synthproxy.errors import ConfigError
from synthproxy.render import RenderConfig, RenderEmbedder
from synthproxy.synths.engines import RenderSettings
from synthproxy.synths.spec import SynthSpec, load_spec


@dataclass
class SynthPlan:
    """A configured synth with its render settings and (when the config has them) representations."""

    cfg: dict[str, Any]
    synth: str

    def __post_init__(self) -> None:
        if self.synth not in self.cfg["synths"]:
            raise ConfigError(f"unknown synth '{self.synth}'; configured: {sorted(self.cfg['synths'])}")
        self.synth_cfg: dict[str, Any] = self.cfg["synths"][self.synth]
        self.spec: SynthSpec = load_spec(self.synth_cfg["spec"])
        self.render = RenderConfig.from_config(self.cfg["render"] | dict(self.synth_cfg.get("render", {})))
        self.reps: dict[str, tuple[Representation, str]] = representations_from_config(
            self.cfg.get("representations", []))
        # The first representation's rate is the primary render; the RMS filter is applied on it.
        self.sample_rates = list(dict.fromkeys(rep.sample_rate for rep, _ in self.reps.values())) or [44100]

    @property
    def plugin(self) -> str | None:
        return self.synth_cfg.get("plugin") or self.spec.plugin

    @property
    def render_settings(self) -> dict[int, RenderSettings]:
        return {sr: self.render.settings(sr) for sr in self.sample_rates}

    def spec_meta(self) -> dict[str, Any]:
        """What a preset vector of the store means: spec name and hash, parameter names, kinds, cardinalities."""
        return {"spec_name": self.spec.name, "spec_hash": self.spec.hash, "param_names": self.spec.names,
                "param_kinds": [p.kind for p in self.spec.used],
                "cardinalities": [p.cardinality for p in self.spec.used]}

    def representation_meta(self) -> dict[str, Any]:
        """Rates and settings of every embedding of the store."""
        return {"sample_rates": self.sample_rates,
                "representations": {key: rep.settings() | {"reduction": red} for key, (rep, red) in self.reps.items()}}

    def embedding_dims(self) -> dict[str, int]:
        return {key: rep.dim(self.render.settings(rep.sample_rate).n_samples, red)
                for key, (rep, red) in self.reps.items()}

    def render_embedder(self) -> RenderEmbedder:
        return RenderEmbedder(self.spec, self.render, self.reps, self.synth_cfg.get("plugin"), self.sample_rates)
