"""What a preset file format is: read a folder of hand-crafted presets, write presets a synth loads.

A format maps between a synth's own files and *plugin vectors* (one normalised value per spec parameter,
excluded ones included, see :mod:`synthproxy.synths.spec`). Reading gives a :class:`Collected` set with
provenance and the counts of every import step; writing turns preset vectors into a file the real synth
opens (a DX7 sysex dump for Dexed, a bank for amSynth).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthproxy.synths.spec import SynthSpec


@dataclass
class Collected:
    """Imported presets as full plugin vectors ``(n, len(spec.params))`` with provenance and step counts."""

    plugin_vectors: np.ndarray
    source_file: list[str]
    bank_index: list[int]
    preset_name: list[str]
    author: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    snapped: dict[str, int] = field(default_factory=dict)


class PresetFormat(ABC):
    """A synth's preset file format (registered by ``name`` in :mod:`synthproxy.presets.formats`)."""

    name: str = ""
    suffix: str = ""
    """File-name suffix of a written file (``.syx``, ``.bank``)."""

    @abstractmethod
    def collect(self, source: Path, spec: SynthSpec, max_files: int | None = None) -> Collected:
        """Read every preset file under ``source`` (the first ``max_files`` files when given)."""

    @abstractmethod
    def write(self, presets: np.ndarray, spec: SynthSpec, path: Path, names: Sequence[str] | None = None) -> Path:
        """Write preset vectors ``(n, spec.n_params)`` to ``path`` as a file the synth loads; returns ``path``."""
