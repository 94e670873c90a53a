"""An NSynth-like set of single notes rendered from the General MIDI programs of a SoundFont with FluidSynth.

Every melodic GM program × a pitch range × a few velocities, each a note held for ``note_seconds`` (3 s) in a
clip of ``duration`` (4 s), mono float32, reverb and chorus off, each note from a fresh synth
(:class:`synthproxy.soundsets.fluid.NoteRenderer`). Notes whose peak is below ``silence_db`` (programs without
samples at extreme pitches: e.g. FluidR3's contrabass above MIDI 59) are dropped and counted.

Melodic programs (:data:`MELODIC_PROGRAMS`, 0-based GM numbers, 102 of 128). Left out:

* 47 Timpani — a drum, though tuned (GM files it under strings);
* 55 Orchestra Hit — a whole-orchestra stab, no single instrument family;
* 96–103 Synth Effects (rain, soundtrack, crystal, atmosphere, brightness, goblins, echoes, sci-fi) — sound effects;
* 112–119 Percussive (tinkle bell, agogo, steel drums, woodblock, taiko, melodic tom, synth drum, reverse cymbal);
* 120–127 Sound Effects (fret noise, breath noise, seashore, bird, telephone, helicopter, applause, gunshot).

Kept: 8–15 Chromatic Percussion (celesta, glockenspiel, music box, vibraphone, marimba, xylophone, tubular bells,
dulcimer) — pitched instruments, NSynth's ``mallet`` family. The drum channel (MIDI channel 10) is never used.

Map to NSynth's instrument families (:data:`GM_FAMILY`):

======================  ===========================================================================
NSynth family           GM programs (0-based)
======================  ===========================================================================
keyboard                0–7 pianos, electric pianos, harpsichord, clavinet
mallet                  8–15 chromatic percussion; 108 kalimba
organ                   16–20 drawbar, percussive, rock, church and reed organ
reed                    21 accordion, 22 harmonica, 23 tango accordion (free reeds); 64–71 saxophones,
                        oboe, English horn, bassoon, clarinet; 109 bagpipe, 111 shanai
guitar                  24–31 guitars; 104 sitar, 105 banjo, 106 shamisen, 107 koto (plucked lutes, zither)
bass                    32–39 acoustic, electric and synth basses
string                  40–46 violin, viola, cello, contrabass, tremolo, pizzicato, harp; 48–51 string
                        ensembles and synth strings; 110 fiddle
vocal                   52 choir aahs, 53 voice oohs, 54 synth voice
brass                   56–63 trumpet, trombone, tuba, muted trumpet, French horn, brass section, synth brass
flute                   72–79 piccolo, flute, recorder, pan flute, blown bottle, shakuhachi, whistle, ocarina
synth_lead              80–87 leads
synth_pad               88–95 pads (NSynth itself has no pad family: its 11 families are the others)
======================  ===========================================================================

``source`` follows NSynth's ``instrument_source_str`` by what the program imitates (:data:`GM_SOURCE`):
``synthetic`` for synthesizer programs (38–39, 50–51, 54, 62–63, 80–95), ``electronic`` for electric
instruments (4–5 electric pianos, 16–18 electric organs, 26–31 electric guitars, 33–37 electric basses), else
``acoustic``. Note ids mimic NSynth's ``<family>_<source>_<instrument>-<pitch>-<velocity>``, with the GM program
as the instrument: ``keyboard_acoustic_gm000-060-100``.

Renderer choice (FluidSynth 2.3.1, FluidR3_GM, 16 kHz, 4 s clips, one core, measured for this module):

==========================================  ==========  ==============================================
way of rendering                            notes/s     same settings → bit-identical audio?
==========================================  ==========  ==============================================
``fluidsynth -F`` CLI, one run per note     2.7         yes (fresh process each time)
``fluidsynth -F`` CLI, 54 notes in one MIDI 99          rerun yes; each note ≠ its clean render (state
                                                        carried over: up to 6e-3 in the first 64 samples)
pyfluidsynth 1.4.0, one Synth, system_reset 270         rerun in the same order yes; int16 with dither
                                                        whose phase carries over, plus the same carried
                                                        voice state: a note depends on the notes before it
pyfluidsynth, a new Synth (sfload) per note ~4          yes
ctypes, fresh synth per note borrowing one  230–430     yes, and order-independent: equal to a note
loaded SoundFont (this module)                          rendered first by a new process
==========================================  ==========  ==============================================

(230 notes/s over the whole default grid, 102 programs × MIDI 36–84 × 3 velocities, with 7th-order
interpolation; 350–430 on subsets of pianos, guitars and leads. A full build renders every note twice — the
plan finds the silent notes, the write pass stores the clips — and compresses them: ~66 notes/s end to end.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthproxy.errors import ConfigError
from synthproxy.soundsets.fluid import DEFAULT_SOUNDFONT, NoteRenderer, check_soundfont, fluidsynth_version

GM_PROGRAM_NAMES: tuple[str, ...] = (
    # 0-7 piano
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    # 8-15 chromatic percussion
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    # 16-23 organ
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion",
    # 24-31 guitar
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    # 32-39 bass
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    # 40-47 strings
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    # 48-55 ensemble
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit",
    # 56-63 brass
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    # 64-71 reed
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    # 72-79 pipe
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    # 80-87 synth lead
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    # 88-95 synth pad
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)",
    "Pad 7 (halo)", "Pad 8 (sweep)",
    # 96-103 synth effects
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    # 104-111 ethnic
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    # 112-119 percussive
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    # 120-127 sound effects
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)
"""General MIDI level 1 program names, indexed by the 0-based program number."""


def _family_table() -> dict[int, str]:
    groups: dict[str, Iterable[int]] = {
        "keyboard": range(0, 8),
        "mallet": [*range(8, 16), 108],
        "organ": range(16, 21),
        "reed": [21, 22, 23, *range(64, 72), 109, 111],
        "guitar": [*range(24, 32), 104, 105, 106, 107],
        "bass": range(32, 40),
        "string": [*range(40, 47), *range(48, 52), 110],
        "vocal": [52, 53, 54],
        "brass": range(56, 64),
        "flute": range(72, 80),
        "synth_lead": range(80, 88),
        "synth_pad": range(88, 96),
    }
    table = {p: family for family, programs in groups.items() for p in programs}
    return dict(sorted(table.items()))


GM_FAMILY: dict[int, str] = _family_table()
"""Melodic GM program (0-based) → NSynth instrument family; see the module docstring."""

MELODIC_PROGRAMS: tuple[int, ...] = tuple(GM_FAMILY)
"""The 102 melodic GM programs (0-based): 0–46, 48–54, 56–95, 104–111."""

NSYNTH_FAMILIES: tuple[str, ...] = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed",
                                    "string", "synth_lead", "vocal")
"""NSynth's 11 instrument families, in its numbering (0 bass … 10 vocal)."""

_SYNTHETIC = {38, 39, 50, 51, 54, 62, 63, *range(80, 96)}
_ELECTRONIC = {4, 5, 16, 17, 18, *range(26, 32), *range(33, 38)}
GM_SOURCE: dict[int, str] = {
    p: "synthetic" if p in _SYNTHETIC else "electronic" if p in _ELECTRONIC else "acoustic" for p in MELODIC_PROGRAMS
}
"""Melodic GM program → NSynth-style ``instrument_source_str`` (acoustic, electronic, synthetic)."""


@dataclass(frozen=True)
class GMNote:
    """One note to render: a 0-based GM program, a MIDI pitch and a MIDI velocity."""

    program: int
    pitch: int
    velocity: int

    @property
    def family(self) -> str:
        return GM_FAMILY[self.program]

    @property
    def source(self) -> str:
        return GM_SOURCE[self.program]

    @property
    def program_name(self) -> str:
        return GM_PROGRAM_NAMES[self.program]

    @property
    def instrument(self) -> str:
        return f"{self.family}_{self.source}_gm{self.program:03d}"

    @property
    def note_id(self) -> str:
        return f"{self.instrument}-{self.pitch:03d}-{self.velocity:03d}"


def resolve_programs(programs: str | Sequence[int]) -> tuple[int, ...]:
    """``"melodic"`` or a list of 0-based GM program numbers in; the sorted, validated programs out.

    Only melodic programs are allowed: the others have no NSynth family.
    """
    if isinstance(programs, str):
        if programs != "melodic":
            raise ConfigError(f"GM programs must be 'melodic' or a list of program numbers, got '{programs}'")
        return MELODIC_PROGRAMS
    out = sorted({int(p) for p in programs})
    bad = [p for p in out if p not in GM_FAMILY]
    if bad or not out:
        raise ConfigError(f"GM programs {bad or '[]'} are not melodic; choose from {list(MELODIC_PROGRAMS)}")
    return tuple(out)


def gm_notes(programs: str | Sequence[int] = "melodic", pitch_min: int = 36, pitch_max: int = 84,
             pitch_step: int = 1, velocities: Sequence[int] = (75, 100, 127)) -> list[GMNote]:
    """Programs, an inclusive MIDI pitch range with a step, and velocities in; the grid of notes out,
    ordered by program, then pitch, then velocity (the store's row order)."""
    progs = resolve_programs(programs)
    if not (0 <= pitch_min <= pitch_max <= 127) or pitch_step < 1:
        raise ConfigError(f"GM pitch range must satisfy 0 <= pitch_min <= pitch_max <= 127 and step >= 1, got "
                          f"{pitch_min}..{pitch_max} step {pitch_step}")
    vels = sorted({int(v) for v in velocities})
    if not vels or any(not 1 <= v <= 127 for v in vels):
        raise ConfigError(f"GM velocities must be a non-empty list within 1..127, got {list(velocities)}")
    return [GMNote(p, pitch, v) for p in progs for pitch in range(pitch_min, pitch_max + 1, pitch_step) for v in vels]


def file_sha256(path: Path, block: int = 1 << 22) -> str:
    """A file path in, the hex SHA-256 of its bytes out."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


class GMRenderer:
    """Renders :class:`GMNote` clips: ``GMRenderer(soundfont, sample_rate, duration, note_seconds, gain)`` in,
    :meth:`render` gives ``(round(duration * sample_rate),)`` float32 mono clips."""

    def __init__(self, soundfont: Path | str = DEFAULT_SOUNDFONT, sample_rate: int = 16000, duration: float = 4.0,
                 note_seconds: float = 3.0, gain: float = 0.5, interpolation: str = "7th") -> None:
        if not 0 < note_seconds <= duration:
            raise ConfigError(f"note_seconds must be within (0, duration={duration}], got {note_seconds}")
        self.n_samples = round(duration * sample_rate)
        self.note_samples = round(note_seconds * sample_rate)
        self._renderer = NoteRenderer(check_soundfont(soundfont), sample_rate=sample_rate, gain=gain,
                                      interpolation=interpolation)

    @property
    def version(self) -> str:
        """The libfluidsynth runtime version."""
        return self._renderer.version

    def render(self, note: GMNote) -> np.ndarray:
        """A note in, its ``(n_samples,)`` float32 clip out (not yet checked for silence)."""
        return self._renderer.render(note.program, note.pitch, note.velocity, self.note_samples, self.n_samples)

    def close(self) -> None:
        """Free the synth and the SoundFont."""
        self._renderer.close()

    def __enter__(self) -> GMRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "GM_FAMILY",
    "GM_PROGRAM_NAMES",
    "GM_SOURCE",
    "MELODIC_PROGRAMS",
    "NSYNTH_FAMILIES",
    "GMNote",
    "GMRenderer",
    "file_sha256",
    "fluidsynth_version",
    "gm_notes",
    "resolve_programs",
]
