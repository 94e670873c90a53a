"""Reading real NSynth notes from the ``nsynth-valid`` (or -train/-test) folder layout.

The folder holds ``examples.json`` — one JSON object keyed by note id, each value with NSynth's fields
(``note_str``, ``pitch``, ``velocity``, ``instrument_str``, ``instrument_family_str``, ``instrument_source_str``,
``sample_rate``, ...) — and ``audio/<note_id>.wav`` (16 kHz, 4 s, 16-bit mono). Entries with missing or
malformed fields, and audio files that are missing or unusable (see :func:`synthproxy.audio.io.load_audio`),
are reported by name and skipped; one bad file never costs the good ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from synthproxy.audio.io import load_audio
from synthproxy.errors import AudioError, PluginNotFoundError, StoreError

log = logging.getLogger(__name__)

EXAMPLES_FILE = "examples.json"
AUDIO_DIR = "audio"


@dataclass(frozen=True)
class NSynthNote:
    """One NSynth note: its id, the fields the store keeps, and the path of its WAV file."""

    note_id: str
    pitch: int
    velocity: int
    instrument: str
    instrument_family: str
    source: str
    sample_rate: int
    path: Path


@dataclass(frozen=True)
class Skipped:
    """A note left out, with the one-line reason."""

    note_id: str
    reason: str


def is_nsynth_folder(root: Path | str | None) -> bool:
    """A path (or None) in; True when it is a folder holding ``examples.json`` out."""
    return root is not None and (Path(root) / EXAMPLES_FILE).is_file()


def examples_sha256(root: Path | str) -> str:
    """An NSynth folder in, the SHA-256 of its ``examples.json`` out (part of a store's fingerprint)."""
    return hashlib.sha256((Path(root) / EXAMPLES_FILE).read_bytes()).hexdigest()


def _note_from_entry(root: Path, note_id: str, entry: object) -> NSynthNote:
    if not isinstance(entry, dict):
        raise ValueError("entry is not a JSON object")
    missing = [k for k in ("pitch", "velocity", "instrument_family_str") if k not in entry]
    if missing:
        raise ValueError(f"fields {missing} missing")
    pitch, velocity = entry["pitch"], entry["velocity"]
    if not (isinstance(pitch, int) and 0 <= pitch <= 127 and isinstance(velocity, int) and 0 <= velocity <= 127):
        raise ValueError(f"pitch {pitch!r} / velocity {velocity!r} not MIDI integers")
    if "/" in note_id or "\\" in note_id or note_id in ("", ".", ".."):
        raise ValueError("note id is not a file name")
    return NSynthNote(
        note_id=note_id, pitch=pitch, velocity=velocity,
        instrument=str(entry.get("instrument_str", note_id.rsplit("-", 2)[0])),
        instrument_family=str(entry["instrument_family_str"]),
        source=str(entry.get("instrument_source_str", "")),
        sample_rate=int(entry.get("sample_rate", 16000)),
        path=root / AUDIO_DIR / f"{note_id}.wav",
    )


def read_examples(root: Path | str, pitch_range: tuple[int, int] | None = None,
                  families: Sequence[str] | None = None) -> tuple[list[NSynthNote], list[Skipped]]:
    """An NSynth folder, an optional inclusive pitch range and family list to keep in; the notes listed in
    ``examples.json`` (sorted by note id) and the malformed entries skipped out. No audio is read."""
    root = Path(root)
    if not root.is_dir():
        raise PluginNotFoundError(f"NSynth folder not found: {root}")
    index = root / EXAMPLES_FILE
    if not index.is_file():
        raise PluginNotFoundError(f"NSynth folder {root} has no {EXAMPLES_FILE}")
    try:
        examples = json.loads(index.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{index} is not valid JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(examples, dict):
        raise StoreError(f"{index} must hold a JSON object keyed by note id, got {type(examples).__name__}")
    notes: list[NSynthNote] = []
    skipped: list[Skipped] = []
    fams = set(families) if families is not None else None
    for note_id in sorted(examples):
        try:
            note = _note_from_entry(root, note_id, examples[note_id])
        except (ValueError, TypeError) as exc:
            skipped.append(Skipped(note_id, f"bad entry in {index}: {exc}"))
            continue
        if pitch_range is not None and not pitch_range[0] <= note.pitch <= pitch_range[1]:
            continue
        if fams is not None and note.instrument_family not in fams:
            continue
        notes.append(note)
    return notes, skipped


def load_note(note: NSynthNote, sample_rate: int, n_samples: int, min_seconds: float = 0.0) -> np.ndarray:
    """A note, the wanted rate and clip length in; its ``(n_samples,)`` float32 audio out (AudioError if the file
    is unusable). Quiet notes are not refused here: the caller decides what counts as silent."""
    return load_audio(note.path, sample_rate, n_samples, min_seconds=min_seconds, silence_threshold=None)


def scan_notes(notes: Iterable[NSynthNote], sample_rate: int, n_samples: int, min_seconds: float = 0.0,
               progress: bool = False) -> tuple[list[NSynthNote], list[Skipped], list[float]]:
    """Notes, the wanted rate and length in; the notes whose audio loads cleanly, the ones skipped (with the
    reason, each also logged as a warning naming the file) and the peaks of the good ones out. Reads one file
    at a time."""
    good: list[NSynthNote] = []
    bad: list[Skipped] = []
    peaks: list[float] = []
    notes = list(notes)
    for note in tqdm(notes, desc="nsynth: checking audio", unit="note", disable=not progress):
        try:
            x = load_note(note, sample_rate, n_samples, min_seconds)
        except AudioError as exc:
            log.warning("skipping NSynth note %s: %s", note.note_id, exc)
            bad.append(Skipped(note.note_id, str(exc)))
            continue
        good.append(note)
        peaks.append(float(np.abs(x).max()))
    return good, bad, peaks
