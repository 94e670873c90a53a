"""What a preset file format is: read a folder of hand-crafted presets, write presets a synth loads.

A format maps between a synth's own files and *plugin vectors* (one normalised value per spec parameter,
excluded ones included, see :mod:`synthproxy.synths.spec`). Reading gives a :class:`Collected` set with
provenance and the counts of every import step; writing turns preset vectors into a file the real synth
opens (a DX7 sysex dump for Dexed, a bank for amSynth).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthproxy.synths.spec import SynthSpec


@dataclass(frozen=True)
class FileOutcome:
    """What the import made of one file: presets kept, what was wrong ("" for a clean file), and a ``note`` on
    what is normal but worth knowing (e.g. presets of an older amSynth that omit newer parameters)."""

    file: str
    kept: int
    problem: str = ""
    note: str = ""


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
    files: list[FileOutcome] = field(default_factory=list)
    """One row per file read, clean or not (the per-file import report)."""


class PresetFormat(ABC):
    """A synth's preset file format (registered by ``name`` in :mod:`synthproxy.presets.formats`)."""

    name: str = ""
    suffix: str = ""
    """File-name suffix of a written file (``.syx``, ``.bank``)."""

    @abstractmethod
    def files(self, source: Path) -> list[Path]:
        """The preset files under ``source`` that :meth:`collect` reads, in its (sorted) reading order."""

    def manifest(self, source: Path) -> str:
        """A digest of the names and contents of the files under ``source``: it changes when a file is added,
        removed or edited, so the workflow reruns the import exactly then ("" when the folder is absent)."""
        source = Path(source)
        if not source.is_dir():
            return ""
        h = hashlib.sha256()
        for path in self.files(source):
            h.update(path.relative_to(source).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
        return h.hexdigest()[:16]

    @abstractmethod
    def collect(self, source: Path, spec: SynthSpec, max_files: int | None = None) -> Collected:
        """Read every preset file under ``source`` (the first ``max_files`` files when given)."""

    @abstractmethod
    def write(self, presets: np.ndarray, spec: SynthSpec, path: Path, names: Sequence[str] | None = None) -> Path:
        """Write preset vectors ``(n, spec.n_params)`` to ``path`` as a file the synth loads; returns ``path``."""

    @abstractmethod
    def read(self, path: Path, spec: SynthSpec) -> tuple[np.ndarray, list[str]]:
        """One file's presets as full plugin vectors ``(n, len(spec.params))`` and their names (strict: a
        malformed file raises :class:`~synthproxy.errors.ImportFormatError` naming file and problem)."""
