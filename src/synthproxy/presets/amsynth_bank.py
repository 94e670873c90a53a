"""Reader for amSynth preset banks (``*.bank``) and their exact conversion to plugin vectors.

The hand-crafted amSynth presets (Debian ``amsynth``: ``/usr/share/amsynth/banks``, 28 banks, 3,482
presets) play the role the TAL-NoiseMaker presets play in the paper (Sec. 4.1.3). They must reach the
proxies as exactly the sounds amSynth makes when a user picks them, so the conversion mirrors amSynth's
own code instead of approximating it.

**File format** (written by amSynth's ``PresetController::savePresets``)::

    amSynth
    <preset> <name> NAME WITH SPACES
    <parameter> amp_attack 0.0333333
    ...
    EOF

The values are amSynth's *parameter values* ``Parameter::getValue()`` in the parameter's own range
(``amp_attack`` in 0..2.5, ``filter_cutoff`` in -0.5..1.5, ``osc2_range`` in -3..4, ``filter_env_amount``
in -16..16, ...), printed with 6 significant digits. They are *not* the physical "control values": the
parameter law (linear / exponential / power with base and offset, ``Parameter.cpp``) turns a value into
what the DSP uses, e.g. ``amp_attack`` 0.0333 means ``0.0005 + 0.0333**3`` s. The plugin's normalised
[0, 1] value is ``(value - min) / (max - min)`` (``Parameter::getNormalisedValue``), i.e. *linear in
the stored value*: the law never enters the normalisation. :func:`control_value` applies the law for
display; :func:`to_normalised` is the exact value -> plugin mapping.

**Exactness.** amSynth computes everything in float32, and so does :func:`to_normalised`: the text is
parsed the way amSynth's bank reader parses it (``float_from_string``: a digit-by-digit float32
accumulation, *not* correctly rounded; values with an exponent go through ``std::istream``, which is),
clamped to [min, max], rounded to the step of stepped parameters (``roundf``) and normalised, each
operation rounded to float32 as in C++. The result is bit-identical to what the plugin reports after
loading the preset itself (:func:`plugin_load_preset`), on every preset of every Debian bank.

**How the plugin loads a preset itself** (DawDreamer 0.9 has no program-change API, and amSynth's
MIDI program change selects from an internal bank the VST never fills):

* ``method="program"``: amSynth's VST reads every bank file at start-up (user banks in
  ``$XDG_DATA_HOME/amsynth/banks``, then ``/usr/share/amsynth/banks``, each sorted by file name) and
  exposes preset ``i`` of bank ``b`` as VST program ``128 * b + i`` (``effSetProgram``). DawDreamer's
  ``load_preset`` hands an ``.fxb`` file to JUCE's ``loadFromFXBFile``, whose "FxBk" branch calls
  ``setCurrentProgram(k)`` for k = 0, 1, ... before restoring each program's parameters and returns
  at the first program block it cannot read. A bank whose program ``target`` is unreadable therefore
  leaves the plugin on VST program ``target``, loaded by amSynth from its own bank file with its own
  parser, and DawDreamer then reads the plugin's parameters back. The preset name in the plugin's
  state (``effGetChunk``) is checked against the file's, so a different bank order fails loudly.
  The plugin passes through programs 0 .. target-1 on the way, which leaves DSP state behind: fine
  for reading parameters, not a clean reference for audio.
* ``method="state-text"``: the preset text of the file is handed to amSynth's state loader
  (``effSetChunk`` -> ``Preset::fromString``) in an "FPCh" ``.fxp``. Works for any file, but that loader
  parses numbers with ``std::istream`` (correctly rounded), so a value can differ from the bank reader's
  by one float32 ulp; :func:`parse_value` with ``reader="state"`` reproduces it exactly.
* ``method="state"``: the same loader fed the bank reader's exact values (printed so that they read back
  bit-identically). One preset change on a fresh instance: the audio reference for rendering checks.

**Rendering.** A plugin vector set through ``set_parameter`` goes through ``setNormalisedValue``
(``value = x * (max - min) + min`` in float32, :func:`from_normalised`). That map skips some float32
values: about 10 % of the continuous values in the Debian banks (in 3,418 of 3,482 presets) cannot be
reached by *any* normalised float32, and the host lands one ulp away. A converted preset therefore
renders like the plugin holding the round-tripped values, and like the plugin that loaded the preset
itself up to what a one-ulp parameter change does to the sound (figures in ``tests/test_amsynth_bank.py``).

Strict parsing: anything amSynth would misread (or crash on, e.g. an unknown parameter name asserts in
amSynth) raises :class:`~synthproxy.errors.ImportFormatError` naming file, line and problem. A preset
that omits parameters (banks saved by older amSynth versions lack e.g. ``freq_mod_osc``) is accepted
as amSynth accepts it — the missing parameters keep their defaults — and reported as a
:class:`MissingParameters` warning.
"""

from __future__ import annotations

import math
import os
import re
import struct
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from synthproxy.errors import ImportFormatError, SpecError
from synthproxy.synths.engines import RenderSettings, _quiet_stdout
from synthproxy.synths.spec import SynthSpec

__all__ = [
    "AMSYNTH_PARAMETERS",
    "AMSYNTH_PARAMETER_NAMES",
    "AMSYNTH_PLUGIN",
    "FACTORY_BANKS_DIR",
    "METHODS",
    "PRESETS_PER_BANK",
    "AmsynthParameter",
    "AmsynthPreset",
    "ImportResult",
    "MissingParameters",
    "PresetSource",
    "control_value",
    "default_value",
    "from_normalised",
    "import_amsynth_banks",
    "load_preset_into",
    "new_amsynth_processor",
    "normalised_vector",
    "parse_bank",
    "parse_value",
    "plugin_bank_files",
    "plugin_load_preset",
    "plugin_program_number",
    "plugin_render_preset",
    "to_normalised",
]

AMSYNTH_PLUGIN = "/usr/lib/vst/amsynth_vst.so"
"""Debian's amSynth VST2 plugin."""
FACTORY_BANKS_DIR = Path("/usr/share/amsynth/banks")
"""Where Debian installs amSynth's banks (``PKGDATADIR/banks``); the plugin scans it at start-up."""
PRESETS_PER_BANK = 128
"""amSynth keeps 128 presets per bank (``PresetController::kNumPresets``); VST program = 128 * bank + i."""

HEADER = "amSynth"
END_MARK = "EOF"
_PRESET_PREFIX = "<preset> <name> "
_PARAM_PREFIX = "<parameter> "
# What amSynth's two number parsers read identically to the decimal value: an optional sign, digits with
# an optional fraction, an optional lower-case exponent. ``float_from_string`` silently skips any other
# character (so "1.5E-3" would become 1.53), hence the strict pattern.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?")
_F32 = np.float32


# ----------------------------------------------------------------------------------------------------
# Parameter table (facts from amsynth 1.13 src/Parameter.cpp, in the plugin's parameter order)
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AmsynthParameter:
    """One amSynth parameter: range and step of its value, and the law that maps it to a control value.

    ``default``, ``minimum``, ``maximum``, ``step``, ``base`` and ``offset`` are float32 numbers (amSynth
    declares them as C ``float``), stored here as the Python floats they are exactly.
    """

    index: int
    name: str
    default: float
    minimum: float
    maximum: float
    step: float
    law: str  # "linear": offset + base * v, "exponential": offset + base ** v, "power": offset + v ** base
    base: float
    offset: float


def _build_parameters() -> tuple[AmsynthParameter, ...]:
    env = ("power", "3", "0.0005")
    lin = ("linear", "1", "0")
    rows: list[tuple[str, str, str, str, str, tuple[str, str, str]]] = [
        # name                  default  min     max         step
        ("amp_attack",          "0",    "0",    "2.5",      "0", env),
        ("amp_decay",           "0",    "0",    "2.5",      "0", env),
        ("amp_sustain",         "1",    "0",    "1",        "0", lin),
        ("amp_release",         "0",    "0",    "2.5",      "0", env),
        ("osc1_waveform",       "2",    "0",    "4",        "1", lin),
        ("filter_attack",       "0",    "0",    "2.5",      "0", env),
        ("filter_decay",        "0",    "0",    "2.5",      "0", env),
        ("filter_sustain",      "1",    "0",    "1",        "0", lin),
        ("filter_release",      "0",    "0",    "2.5",      "0", env),
        ("filter_resonance",    "0",    "0",    "0.97",     "0", lin),
        ("filter_env_amount",   "0",    "-16",  "16",       "0", lin),
        ("filter_cutoff",       "1.5",  "-0.5", "1.5",      "0", ("exponential", "16", "0")),
        ("osc2_detune",         "0",    "-1",   "1",        "0", ("exponential", "1.25", "0")),
        ("osc2_waveform",       "2",    "0",    "4",        "1", lin),
        ("master_vol",          "0.67", "0",    "1",        "0", ("power", "2", "0")),
        ("lfo_freq",            "0",    "0",    "7.5",      "0", ("power", "2", "0")),
        ("lfo_waveform",        "0",    "0",    "6",        "1", lin),
        ("osc2_range",          "0",    "-3",   "4",        "1", ("exponential", "2", "0")),
        ("osc_mix",             "0",    "-1",   "1",        "0", lin),
        ("freq_mod_amount",     "0",    "0",    "1.25992105", "0", ("power", "3", "-1")),
        ("filter_mod_amount",   "-1",   "-1",   "1",        "0", lin),
        ("amp_mod_amount",      "-1",   "-1",   "1",        "0", lin),
        ("osc_mix_mode",        "0",    "0",    "1",        "0", lin),
        ("osc1_pulsewidth",     "1",    "0",    "1",        "0", lin),
        ("osc2_pulsewidth",     "1",    "0",    "1",        "0", lin),
        ("reverb_roomsize",     "0",    "0",    "1",        "0", lin),
        ("reverb_damp",         "0",    "0",    "1",        "0", lin),
        ("reverb_wet",          "0",    "0",    "1",        "0", lin),
        ("reverb_width",        "1",    "0",    "1",        "0", lin),
        ("distortion_crunch",   "0",    "0",    "0.9",      "0", lin),
        ("osc2_sync",           "0",    "0",    "1",        "1", lin),
        ("portamento_time",     "0",    "0",    "1",        "0", lin),
        ("keyboard_mode",       "0",    "0",    "2",        "1", lin),
        ("osc2_pitch",          "0",    "-12",  "12",       "1", lin),
        ("filter_type",         "0",    "0",    "4",        "1", lin),
        ("filter_slope",        "1",    "0",    "1",        "1", lin),
        ("freq_mod_osc",        "0",    "0",    "2",        "1", lin),
        ("filter_kbd_track",    "1",    "0",    "1",        "0", lin),
        ("filter_vel_sens",     "1",    "0",    "1",        "0", lin),
        ("amp_vel_sens",        "1",    "0",    "1",        "0", lin),
        ("portamento_mode",     "0",    "0",    "1",        "0", lin),
    ]  # fmt: skip

    def f32(s: str) -> float:
        return float(_F32(s))

    return tuple(
        AmsynthParameter(
            index=i, name=name, default=f32(d), minimum=f32(lo), maximum=f32(hi), step=f32(st),
            law=law[0], base=f32(law[1]), offset=f32(law[2]),
        )
        for i, (name, d, lo, hi, st, law) in enumerate(rows)
    )


AMSYNTH_PARAMETERS: tuple[AmsynthParameter, ...] = _build_parameters()
"""The 41 amSynth parameters in the plugin's order."""
AMSYNTH_PARAMETER_NAMES: tuple[str, ...] = tuple(p.name for p in AMSYNTH_PARAMETERS)
_BY_NAME: dict[str, AmsynthParameter] = {p.name: p for p in AMSYNTH_PARAMETERS}


def _param(name: str) -> AmsynthParameter:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"'{name}' is not an amSynth parameter; valid names: {list(AMSYNTH_PARAMETER_NAMES)}") from None


# ----------------------------------------------------------------------------------------------------
# Exact float32 arithmetic of amSynth
# ----------------------------------------------------------------------------------------------------
def _strtof(text: str) -> float:
    """Correctly rounded decimal -> float32 (what ``std::istream >> float`` / ``strtof`` return).

    ``np.float32(float(text))`` rounds twice (to float64, then float32) and can be one ulp off at a
    tie, so the nearest float32 is chosen among the neighbours with exact rational arithmetic.
    """
    exact = Fraction(text)
    negative = text.lstrip().startswith("-")
    if abs(exact) >= 2**128:  # beyond float32: strtof returns +-inf (amSynth then clamps)
        return -math.inf if exact < 0 else math.inf
    guess = _F32(float(exact))
    best = guess
    for cand in (np.nextafter(guess, _F32(-np.inf)), np.nextafter(guess, _F32(np.inf))):
        if not np.isfinite(cand):
            continue
        d_best, d_cand = abs(Fraction(float(best)) - exact), abs(Fraction(float(cand)) - exact)
        if d_cand < d_best or (d_cand == d_best and int(cand.view(np.uint32)) % 2 == 0):
            best = cand
    value = float(best)
    return -0.0 if value == 0.0 and negative else value


def _bank_reader_float(text: str) -> float:
    """amSynth's ``float_from_string`` (``PresetController.cpp``), reproduced in float32 step by step.

    It accumulates the digits as ``rez = rez * 10 + d`` and divides ``fact`` by 10 per decimal, both in
    float32, and returns ``rez * fact`` — not correctly rounded, so the exact float amSynth holds after
    reading a bank can differ from ``strtof`` by an ulp. Texts containing ``e`` go through ``strtof``.
    """
    if "e" in text:
        return _strtof(text)
    rez, fact = _F32(0.0), _F32(1.0)
    s = text
    if s.startswith("-"):
        s, fact = s[1:], _F32(-1.0)
    point_seen = False
    for ch in s:
        if ch == ".":
            point_seen = True
        elif "0" <= ch <= "9":
            if point_seen:
                fact = _F32(fact / _F32(10.0))
            rez = _F32(rez * _F32(10.0) + _F32(ord(ch) - 48))
    return float(_F32(rez * fact))


@lru_cache(maxsize=65536)
def parse_value(text: str, reader: str = "bank") -> float:
    """The float32 amSynth holds after reading the number ``text`` (returned as an exact Python float).

    ``reader="bank"``: amSynth's bank-file reader (what a user gets when choosing a preset; used by
    :func:`parse_bank`). ``reader="state"``: the plugin state / single-preset loader
    (``Preset::fromString``, ``std::istream``). Raises ``ValueError`` for text that is not a plain decimal
    number (amSynth would misread it).
    """
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a decimal number: {text!r}")
    if reader == "bank":
        return _bank_reader_float(text)
    if reader == "state":
        return _strtof(text)
    raise ValueError(f"reader must be 'bank' or 'state', got {reader!r}")


def _set_value(p: AmsynthParameter, value: float) -> np.float32:
    """``Parameter::setValue``: clamp to [min, max], then snap stepped parameters with ``roundf``."""
    v = _F32(value)
    lo, hi = _F32(p.minimum), _F32(p.maximum)
    v = lo if v < lo else v  # std::max(value, min), keeping its operand order (and -0.0)
    v = hi if hi < v else v  # std::min(..., max)
    if p.step > 0.0:
        q = float(_F32((v - lo) / _F32(p.step)))  # >= 0 after clamping
        v = _F32(lo + _F32(_F32(math.floor(q + 0.5)) * _F32(p.step)))  # roundf: half away from zero
    return v


def to_normalised(name: str, value: float) -> float:
    """The plugin's normalised [0, 1] value for amSynth parameter ``name`` holding ``value`` (its own units).

    Exactly what amSynth's ``getNormalisedValue`` reports after ``setValue(value)``: ``value`` is taken
    as a float32 (pass the output of :func:`parse_value` to reproduce a file), clamped, step-rounded
    and mapped linearly with float32 arithmetic. Out-of-range values are clamped as amSynth clamps
    them; NaN raises ``ValueError``.
    """
    if math.isnan(value):
        raise ValueError(f"{name}: value is NaN")
    p = _param(name)
    v = _set_value(p, value)
    lo, hi = _F32(p.minimum), _F32(p.maximum)
    return float(_F32(_F32(v - lo) / _F32(hi - lo)))


def from_normalised(name: str, normalised: float) -> float:
    """The value amSynth holds after the host sets the normalised ``normalised`` (``setNormalisedValue``).

    ``value = x * (max - min) + min`` in float32, then clamp and step. ``from_normalised(n,
    to_normalised(n, v))`` is ``v`` for stepped parameters but can be one ulp off for continuous ones
    (no float32 ``x`` reaches ``v`` then), which is why a preset set through ``set_parameter`` may render
    a hair differently from the preset loaded by the plugin itself.
    """
    p = _param(name)
    lo, hi = _F32(p.minimum), _F32(p.maximum)
    return float(_set_value(p, float(_F32(_F32(_F32(normalised) * _F32(hi - lo)) + lo))))


def control_value(name: str, value: float) -> float:
    """Apply the parameter law to a (clamped, stepped) value: what amSynth's DSP receives.

    E.g. ``amp_attack`` -> seconds (``0.0005 + v**3``), ``filter_cutoff`` -> ``16**v``, ``osc2_range`` ->
    frequency ratio ``2**v``. For display and sanity checks; the normalisation does not use it.
    """
    p = _param(name)
    v = _set_value(p, value)
    base, offset = _F32(p.base), _F32(p.offset)
    if p.law == "linear":
        out = offset + base * v
    elif p.law == "exponential":
        out = offset + _F32(np.power(base, v))
    else:
        out = offset + _F32(np.power(v, base))
    return float(_F32(out))


def default_value(name: str) -> float:
    """amSynth's default value of a parameter (what a preset that omits it gets)."""
    return _param(name).default


def normalised_vector(values: dict[str, float], names: Sequence[str] = AMSYNTH_PARAMETER_NAMES) -> np.ndarray:
    """Normalised plugin values for ``names`` (default: all 41, plugin order); absent names take defaults."""
    return np.array([to_normalised(n, values.get(n, default_value(n))) for n in names], dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# Bank files
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MissingParameters:
    """A preset that omits parameters: amSynth gives them their defaults. One warning per preset."""

    file: str
    line: int
    bank_index: int
    name: str
    missing: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: preset #{self.bank_index} '{self.name}' omits {len(self.missing)} "
            f"parameter(s) {list(self.missing)}; amSynth's defaults are used for them"
        )


@dataclass(frozen=True)
class AmsynthPreset:
    """One preset of a bank file.

    ``values`` holds the parameters the file gives, in amSynth's own units, as the exact float32 amSynth's
    bank reader makes of them (:func:`parse_value`); ``texts`` the numbers as written, for handing the
    preset to the plugin's own loader. ``missing`` lists omitted parameters (they take their defaults).
    """

    name: str
    values: dict[str, float]
    file: str
    bank_index: int
    line: int = 0
    texts: dict[str, str] = field(default_factory=dict, repr=False)
    missing: tuple[str, ...] = ()

    def full_values(self) -> dict[str, float]:
        """All 41 parameters in plugin order, omitted ones at amSynth's defaults."""
        return {n: self.values.get(n, default_value(n)) for n in AMSYNTH_PARAMETER_NAMES}

    def plugin_vector(self) -> np.ndarray:
        """Normalised values of all 41 parameters in the plugin's order (exact, see :func:`to_normalised`)."""
        return normalised_vector(self.values)


def _fail(path: Path | str, line: int, msg: str) -> ImportFormatError:
    return ImportFormatError(f"{path}:{line}: {msg}")


def parse_bank(path: str | Path, warnings: list[MissingParameters] | None = None) -> list[AmsynthPreset]:
    """Read an amSynth bank file strictly; returns its presets in file order.

    Raises :class:`ImportFormatError` ("file:line: problem") for: a missing ``amSynth`` header, a line that
    is neither ``<preset> <name> ...``, ``<parameter> NAME VALUE`` nor the final ``EOF``, a parameter
    before the first preset, an unknown parameter name, a repeated parameter, a value that is not a
    plain decimal number, a preset without parameters, more than 128 presets (amSynth's bank size),
    non-UTF-8 text, CR line endings, and truncation: every bank amSynth writes ends with an ``EOF`` line,
    so a file that stops before it (e.g. cut in the middle of a line) is refused.

    A preset that omits parameters is kept (amSynth uses the defaults) and reported: one
    :class:`MissingParameters` per such preset in ``AmsynthPreset.missing`` and, if given, appended to
    ``warnings``.

    An *empty bank* (header and ``EOF`` only) is a well-formed file that holds no preset: it returns
    ``[]`` (amSynth itself loads it as a bank of blank presets, which are not hand-crafted sounds).
    :func:`import_amsynth_banks` reports it and refuses an import that yields no preset at all.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read bank file: {exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(path, line, f"not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from exc
    if "\x00" in text:
        raise _fail(path, text[: text.index("\x00")].count("\n") + 1, "NUL byte in a text file")
    if "\r" in text:
        raise _fail(
            path, text[: text.index("\r")].count("\n") + 1,
            "carriage return: the file has Windows (CRLF) line endings, which amSynth does not read",
        )
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the newline after the last line
        lines.pop()
    if not lines or lines[0] != HEADER:
        first = lines[0][:40] if lines else ""
        raise _fail(path, 1, f"missing '{HEADER}' header line (found {first!r}): not an amSynth bank file")
    last = len(lines)
    if lines[-1] != END_MARK:
        raise _fail(
            path, last,
            f"file ends without the '{END_MARK}' line amSynth writes after the last preset: truncated "
            f"(last line: {lines[-1][:60]!r})",
        )

    presets: list[AmsynthPreset] = []
    cur: dict[str, Any] | None = None

    def close(end_line: int) -> None:
        if cur is None:
            return
        if not cur["values"]:
            raise _fail(path, cur["line"], f"preset '{cur['name']}' has no parameters (before line {end_line})")
        missing = tuple(n for n in AMSYNTH_PARAMETER_NAMES if n not in cur["values"])
        preset = AmsynthPreset(
            name=cur["name"], values=cur["values"], file=str(path), bank_index=len(presets), line=cur["line"],
            texts=cur["texts"], missing=missing,
        )
        if missing and warnings is not None:
            warnings.append(MissingParameters(str(path), preset.line, preset.bank_index, preset.name, missing))
        presets.append(preset)

    for lineno, line in enumerate(lines[1:-1], start=2):
        if line.startswith(_PRESET_PREFIX):
            close(lineno)
            if len(presets) >= PRESETS_PER_BANK:
                raise _fail(path, lineno, f"more than {PRESETS_PER_BANK} presets (amSynth's bank size)")
            cur = {"name": line[len(_PRESET_PREFIX):], "line": lineno, "values": {}, "texts": {}}
        elif line.startswith(_PARAM_PREFIX):
            if cur is None:
                raise _fail(path, lineno, "<parameter> line before the first <preset> line")
            fields = line[len(_PARAM_PREFIX):].split(" ")
            if len(fields) != 2 or not fields[1]:
                what = "no value" if len(fields) < 2 or not fields[1] else f"{len(fields) - 1} values"
                raise _fail(path, lineno, f"expected '<parameter> NAME VALUE', got {what}: {line[:80]!r}")
            name, value_text = fields
            if name not in _BY_NAME:
                raise _fail(
                    path, lineno,
                    f"unknown parameter '{name}' in preset '{cur['name']}'; amSynth parameters are "
                    f"{list(AMSYNTH_PARAMETER_NAMES)}",
                )
            if name in cur["values"]:
                raise _fail(path, lineno, f"parameter '{name}' given twice in preset '{cur['name']}'")
            try:
                value = parse_value(value_text, "bank")
            except ValueError:
                raise _fail(
                    path, lineno, f"value of '{name}' is not a number: {value_text!r}"
                ) from None
            cur["values"][name] = value
            cur["texts"][name] = value_text
        elif line == END_MARK:
            raise _fail(path, lineno, f"'{END_MARK}' line before the end of the file (line {last} is the last)")
        else:
            raise _fail(
                path, lineno,
                f"expected '<preset> <name> NAME' or '<parameter> NAME VALUE', got {line[:80]!r}",
            )
    close(last)
    return presets


# ----------------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PresetSource:
    """Where an imported preset comes from."""

    file: str
    bank_index: int
    name: str


@dataclass
class ImportResult:
    """Presets of one or more banks as spec preset vectors, with exact plugin vectors and provenance.

    ``plugin_vectors`` has one column per *spec* parameter (``spec.params`` order, excluded ones included),
    holding the exact plugin values of the preset — what renders the preset as amSynth plays it.
    ``presets`` are the preset vectors (``spec.from_plugin``: excluded parameters dropped, discrete ones
    snapped to the spec grid); ``snapped`` counts, per parameter, the presets whose value was moved by
    more than 1e-6 in that step (e.g. a noise waveform the spec leaves out). ``empty_files`` lists banks
    that hold no preset.
    """

    presets: np.ndarray
    plugin_vectors: np.ndarray
    sources: list[PresetSource]
    warnings: list[MissingParameters]
    n_files: int
    snapped: dict[str, int]
    empty_files: list[str] = field(default_factory=list)

    @property
    def n_presets(self) -> int:
        return len(self.sources)

    @property
    def n_missing_warnings(self) -> int:
        """Presets that omit at least one parameter."""
        return len(self.warnings)

    @property
    def n_missing_values(self) -> int:
        """Parameter values taken from amSynth's defaults, over all presets."""
        return sum(len(w.missing) for w in self.warnings)

    def counts(self) -> dict[str, int]:
        return {
            "files": self.n_files, "presets": self.n_presets, "missing_warnings": self.n_missing_warnings,
            "missing_values": self.n_missing_values, "empty_files": len(self.empty_files),
        }


def import_amsynth_banks(bank_paths: Iterable[str | Path], spec: SynthSpec) -> ImportResult:
    """Read bank files (strictly, see :func:`parse_bank`) and map every preset to ``spec``'s preset vector.

    Each preset becomes a full plugin vector first (omitted parameters at amSynth's defaults, the exact
    conversion of :func:`to_normalised`), then a preset vector via ``spec.from_plugin``; parameters the
    spec excludes are rendered at the spec's fixed values later. No rendering happens here: silence
    filtering and de-duplication are later pipeline steps. Raises :class:`SpecError` if the spec names a
    parameter amSynth lacks and :class:`ImportFormatError` if no file holds a preset.
    """
    paths = [Path(p) for p in bank_paths]
    unknown = [p.name for p in spec.params if p.name not in _BY_NAME]
    if unknown:
        raise SpecError(
            f"{spec.source_path or spec.name}: spec names parameter(s) amSynth lacks: {unknown}; amSynth "
            f"parameters are {list(AMSYNTH_PARAMETER_NAMES)}"
        )
    if not paths:
        raise ImportFormatError("no amSynth bank files given")
    names = [p.name for p in spec.params]
    vectors: list[np.ndarray] = []
    sources: list[PresetSource] = []
    warnings: list[MissingParameters] = []
    empty: list[str] = []
    for path in paths:
        presets = parse_bank(path, warnings)
        if not presets:
            empty.append(str(path))
        for pr in presets:
            vectors.append(normalised_vector(pr.values, names))
            sources.append(PresetSource(pr.file, pr.bank_index, pr.name))
    if not vectors:
        raise ImportFormatError(f"the {len(paths)} amSynth bank file(s) hold no preset: {[str(p) for p in paths]}")
    plugin_vectors = np.stack(vectors)
    preset_vectors = spec.from_plugin(plugin_vectors)
    snapped = _count_snapped(spec, plugin_vectors, preset_vectors)
    return ImportResult(
        presets=preset_vectors, plugin_vectors=plugin_vectors, sources=sources, warnings=warnings,
        n_files=len(paths), snapped=snapped, empty_files=empty,
    )


def _count_snapped(spec: SynthSpec, plugin_vectors: np.ndarray, presets: np.ndarray) -> dict[str, int]:
    """Per used parameter: how many presets ``spec.from_plugin`` moved (to the grid or into [0, 1])."""
    back = spec.to_plugin(presets)
    out: dict[str, int] = {}
    for p in spec.used:
        n = int(np.sum(np.abs(back[:, p.index] - plugin_vectors[:, p.index]) > 1e-6))
        if n:
            out[p.name] = n
    return out


# ----------------------------------------------------------------------------------------------------
# The plugin loading a preset itself (verification of the conversion)
# ----------------------------------------------------------------------------------------------------
def _fx_id() -> int:
    return int.from_bytes(b"amsy", "big")  # amSynth's VST unique ID (CCONST('a','m','s','y'))


def _fxp_chunk(text: bytes, program_name: str) -> bytes:
    """A VST2 "FPCh" preset (fxProgramSet, big-endian) carrying ``text`` as the plugin's chunk."""
    name = program_name.encode("utf-8")[:27].ljust(28, b"\0")
    head = b"CcnK" + struct.pack(">i", 0) + b"FPCh" + struct.pack(">iiii", 1, _fx_id(), 0, 1)
    return head + name + struct.pack(">i", len(text)) + text


def _fxb_select_program(target: int) -> bytes:
    """A VST2 "FxBk" bank (fxSet, big-endian) that leaves the plugin on program ``target``.

    Programs ``0 .. target-1`` are valid empty programs (``numParams`` 0, so restoring them changes no
    parameter); program ``target`` has a broken magic, so JUCE's ``loadFromFXBFile`` returns right after
    ``setCurrentProgram(target)``. JUCE skips the program the plugin is on, see :func:`_select_program`.
    """
    empty = b"CcnK" + struct.pack(">i", 0) + b"FxCk" + struct.pack(">iiii", 1, _fx_id(), 0, 0) + bytes(28)
    broken = b"NONE" + bytes(len(empty) - 4)
    head = b"CcnK" + struct.pack(">i", 0) + b"FxBk" + struct.pack(">iiii", 1, _fx_id(), 0, target + 1) + bytes(128)
    return head + empty * target + broken


def plugin_bank_files(
    factory_dir: str | Path = FACTORY_BANKS_DIR, user_dir: str | Path | None = None
) -> list[Path]:
    """The bank files amSynth's plugin exposes as programs, in program order.

    Mirrors ``scan_preset_banks``: the user bank folder (``$XDG_DATA_HOME`` or ``~/.local/share``, then
    ``amsynth/banks``) and then the factory folder, each in byte order of the file names, keeping files
    that start with ``amSynth\\n``.
    """
    if user_dir is None:
        data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.environ.get("HOME", ""), ".local/share")
        user_dir = Path(data_home) / "amsynth" / "banks"
    out: list[Path] = []
    dirs = [Path(user_dir)]
    if Path(factory_dir) != Path(user_dir):
        dirs.append(Path(factory_dir))
    for d in dirs:
        if not d.is_dir():
            continue
        for name in sorted(os.listdir(d), key=os.fsencode):
            f = d / name
            try:
                with open(f, "rb") as fh:
                    if fh.read(len(HEADER) + 1) == (HEADER + "\n").encode():
                        out.append(f)
            except OSError:
                continue
    return out


def plugin_program_number(preset: AmsynthPreset, banks: Sequence[Path] | None = None) -> int:
    """The VST program under which amSynth's plugin exposes ``preset`` (``128 * bank + index``)."""
    banks = plugin_bank_files() if banks is None else banks
    target = Path(preset.file).resolve()
    for b, path in enumerate(banks):
        if path.resolve() == target:
            return PRESETS_PER_BANK * b + preset.bank_index
    raise ImportFormatError(
        f"{preset.file}: not one of the banks amSynth's plugin loads ({len(banks)} files under the user and "
        "factory bank folders); use method='state' to load a preset from any file"
    )


def new_amsynth_processor(engine: Any, plugin_path: str = AMSYNTH_PLUGIN, name: str = "amsynth") -> Any:
    """A fresh DawDreamer processor of amSynth (plugin chatter silenced)."""
    with _quiet_stdout():
        return engine.make_plugin_processor(name, str(plugin_path))


def _state_text(processor: Any) -> str:
    """The plugin's own state (``effGetChunk``: amSynth's preset text), via DawDreamer's ``save_state``."""
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "state.fxb")
        processor.save_state(f)
        data = Path(f).read_bytes()
    start = data.find(b"amSynth1.0preset")
    if start < 0:
        raise RuntimeError("amSynth's plugin state holds no preset text")
    return data[start:].split(b"\0", 1)[0].decode("utf-8", "replace")


def _chunk_text(values: dict[str, str], name: str) -> bytes:
    """amSynth's single-preset text, NUL-terminated: ``effSetChunk`` reads it as a C string."""
    lines = ["amSynth1.0preset", f"<preset> <name> {' '.join(name.split()) or 'unnamed'}"]
    lines += [f"<parameter> {n} {t}" for n, t in values.items()]
    return ("\n".join(lines) + "\n").encode("utf-8") + b"\0"


_DEFAULT_TEXTS = {p.name: repr(p.default) for p in AMSYNTH_PARAMETERS}  # exact: float32 -> 17 digits -> strtof


def _load_file(processor: Any, data: bytes, suffix: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        f = os.path.join(tmp, "preset" + suffix)
        Path(f).write_bytes(data)
        with _quiet_stdout():
            return bool(processor.load_preset(f))


METHODS = ("program", "state", "state-text")


def load_preset_into(processor: Any, preset: AmsynthPreset, method: str = "program",
                     banks: Sequence[Path] | None = None) -> None:
    """Make a DawDreamer amSynth processor load ``preset`` itself (see the module docstring).

    ``method="program"``: select the plugin's own program for the preset (its bank must be one the
    plugin scans) and check the name amSynth reports. ``method="state"`` / ``"state-text"``: hand the
    preset (bank reader's exact values / the file's number texts) to the plugin's state loader; because
    that loader keeps the current value of parameters a preset omits, an all-defaults preset is loaded
    first, so a re-used processor gets the same values as a fresh one. DawDreamer copies the plugin's
    parameters into its own values after ``load_preset``, so ``get_parameter`` and rendering then use
    what amSynth loaded.
    """
    if method == "program":
        program = plugin_program_number(preset, banks)
        # JUCE never re-selects the program the plugin is on, so first step onto another one (whichever
        # program the plugin was on, it ends on ``other``), then onto the preset's.
        other = 1 if program == 0 else 0
        _load_file(processor, _fxb_select_program(other), ".fxb")
        _load_file(processor, _fxb_select_program(program), ".fxb")
        got = _state_text(processor).split("\n")[1]
        if got != _PRESET_PREFIX + preset.name:
            raise ImportFormatError(
                f"{preset.file}: amSynth's program {program} is {got!r}, expected preset #{preset.bank_index} "
                f"'{preset.name}': the plugin scans other bank files ({plugin_bank_files()[:3]}...)"
            )
    elif method in ("state", "state-text"):
        # repr() of a float32 value reads back (strtof) as exactly that float32
        texts = preset.texts if method == "state-text" else {n: repr(v) for n, v in preset.values.items()}
        _load_file(processor, _fxp_chunk(_chunk_text(_DEFAULT_TEXTS, "defaults"), "defaults"), ".fxp")
        if not _load_file(processor, _fxp_chunk(_chunk_text(texts, preset.name), preset.name), ".fxp"):
            raise ImportFormatError(f"{preset.file}: amSynth's plugin refused preset '{preset.name}'")
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def plugin_load_preset(
    preset: AmsynthPreset,
    method: str = "program",
    *,
    processor: Any = None,
    plugin_path: str = AMSYNTH_PLUGIN,
    banks: Sequence[Path] | None = None,
) -> np.ndarray:
    """The 41 normalised values amSynth's plugin reports after loading ``preset`` itself (plugin order).

    Uses a fresh plugin instance unless ``processor`` is given (re-using one is much faster and gives
    the same values, since every method sets every parameter). Reference for :func:`to_normalised`.
    """
    if processor is None:
        import dawdreamer

        engine = dawdreamer.RenderEngine(44100, 512)
        processor = new_amsynth_processor(engine, plugin_path)
    load_preset_into(processor, preset, method, banks)
    return np.array([processor.get_parameter(i) for i in range(len(AMSYNTH_PARAMETERS))], dtype=np.float64)


def plugin_render_preset(
    preset: AmsynthPreset,
    settings: RenderSettings | None = None,
    method: str = "state",
    *,
    plugin_path: str = AMSYNTH_PLUGIN,
    engine: Any = None,
    banks: Sequence[Path] | None = None,
) -> np.ndarray:
    """Audio of a fresh amSynth that loaded ``preset`` itself, rendered exactly like ``VSTEngine.render``.

    The reference the converted plugin vector is compared against (same note, velocity, durations,
    mono mix by channel mean). The default ``method="state"`` changes the preset once on a fresh
    instance; ``"program"`` steps through every earlier program first, whose left-over DSP state makes
    a few presets sound different (e.g. 'Synth Cello': identical parameters, peak difference 0.83).
    """
    import dawdreamer

    s = settings or RenderSettings()
    engine = engine or dawdreamer.RenderEngine(s.sample_rate, s.block_size)
    proc = new_amsynth_processor(engine, plugin_path, "synth")
    load_preset_into(proc, preset, method, banks)
    engine.load_graph([(proc, [])])
    proc.add_midi_note(s.note, s.velocity, 0.0, s.note_duration)
    engine.render(s.duration)
    audio = engine.get_audio()
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    return np.ascontiguousarray(mono[: s.n_samples], dtype=np.float32)
