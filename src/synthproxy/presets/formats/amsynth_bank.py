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
loading the preset itself (``tests/amsynth_plugin.py`` checks it), on every preset of every Debian bank.

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
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from synthproxy.data.atomic import write_text_atomic
from synthproxy.errors import ImportFormatError, PluginNotFoundError, SpecError
from synthproxy.presets.formats.base import Collected, FileOutcome, PresetFormat
from synthproxy.synths.spec import SynthSpec

__all__ = [
    "AMSYNTH_PARAMETERS",
    "AMSYNTH_PARAMETER_NAMES",
    "AMSYNTH_PLUGIN",
    "FACTORY_BANKS_DIR",
    "PRESETS_PER_BANK",
    "AmsynthBankFormat",
    "AmsynthParameter",
    "AmsynthPreset",
    "ImportResult",
    "MissingParameters",
    "PresetSource",
    "bank_text",
    "control_value",
    "default_value",
    "from_normalised",
    "import_amsynth_banks",
    "normalised_vector",
    "parse_bank",
    "parse_value",
    "to_normalised",
    "value_text",
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
    files: list[FileOutcome] = field(default_factory=list)
    """Every bank read: presets kept, or why it was skipped ("file:line: problem")."""

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
    outcomes: list[FileOutcome] = []
    for path in paths:
        file_warnings: list[MissingParameters] = []
        try:
            presets = parse_bank(path, file_warnings)
        except ImportFormatError as exc:  # skip this bank, keep the others; every bad bank is reported
            outcomes.append(FileOutcome(path.name, 0, f"skipped: {exc}"))
            continue
        warnings.extend(file_warnings)
        if not presets:
            empty.append(str(path))
        problem = "" if presets else "skipped: empty bank (no preset)"
        note = f"{len(file_warnings)} preset(s) omit parameters (amSynth defaults used)" if file_warnings else ""
        outcomes.append(FileOutcome(path.name, len(presets), problem, note))
        for pr in presets:
            vectors.append(normalised_vector(pr.values, names))
            sources.append(PresetSource(pr.file, pr.bank_index, pr.name))
    if not vectors:
        detail = "; ".join(o.problem.removeprefix("skipped: ") for o in outcomes)
        raise ImportFormatError(f"the {len(paths)} amSynth bank file(s) hold no usable preset: {detail}")
    plugin_vectors = np.stack(vectors)
    preset_vectors = spec.from_plugin(plugin_vectors)
    snapped = _count_snapped(spec, plugin_vectors, preset_vectors)
    return ImportResult(
        presets=preset_vectors, plugin_vectors=plugin_vectors, sources=sources, warnings=warnings,
        n_files=len(paths), snapped=snapped, empty_files=empty, files=outcomes,
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
# Writing, and the format
# ----------------------------------------------------------------------------------------------------
def reaching_normalised(name: str, value: float) -> float:
    """A normalised value ``x`` with ``from_normalised(name, x) == value`` when one exists (else the nearest).

    :func:`to_normalised` is exact from the plugin's side (what it reports after loading ``value``), but the
    host's ``set_parameter(x)`` maps back through ``setNormalisedValue``, which misses some values by an ulp;
    searching the neighbouring float32 values finds an ``x`` that lands on ``value`` itself. Every value a
    host could set (e.g. one this package wrote) is reached exactly.
    """
    x = _F32(to_normalised(name, value))
    target = float(_set_value(_param(name), value))
    candidates, lo, hi = [x], x, x
    for _ in range(8):  # the nearest float32 values first
        lo, hi = np.nextafter(lo, _F32(-1.0)), np.nextafter(hi, _F32(2.0))
        candidates += [lo, hi]
    for cand in candidates:
        if 0.0 <= cand <= 1.0 and from_normalised(name, float(cand)) == target:
            return float(cand)
    return float(x)


def value_text(value: float) -> str:
    """The shortest decimal text that amSynth's bank reader reads back as exactly the float32 ``value``."""
    target = float(_F32(value))
    for digits in range(6, 18):
        text = f"{target:.{digits}g}"
        if _NUMBER.fullmatch(text) and parse_value(text, "bank") == target:
            return text
    # digit-by-digit accumulation can miss a value at every precision: the exponent form is correctly rounded
    text = f"{target:.9e}"
    if parse_value(text, "bank") != target:  # pragma: no cover - strtof of 9 significant digits is exact
        raise ValueError(f"no text reads back as {target!r}")
    return text


def bank_text(presets: Sequence[tuple[str, dict[str, float]]]) -> str:
    """An amSynth bank (``amSynth`` header, ``<preset>``/``<parameter>`` lines, ``EOF``) of named value sets.

    Values are in amSynth's own units; every one of the 41 parameters is written (plugin order), so the
    preset never depends on what amSynth held before loading it.
    """
    if not 1 <= len(presets) <= PRESETS_PER_BANK:
        raise ImportFormatError(f"an amSynth bank holds 1 to {PRESETS_PER_BANK} presets, got {len(presets)}")
    lines = [HEADER]
    for name, values in presets:
        clean = " ".join(str(name).split()) or "unnamed"
        lines.append(_PRESET_PREFIX + clean)
        lines += [f"{_PARAM_PREFIX}{n} {value_text(values[n])}" for n in AMSYNTH_PARAMETER_NAMES]
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


class AmsynthBankFormat(PresetFormat):
    """amSynth banks: reads ``*.bank`` folders strictly; writes a bank amSynth opens (one preset or more)."""

    name = "amsynth_bank"
    suffix = ".bank"

    def collect(self, source: Path, spec: SynthSpec, max_files: int | None = None) -> Collected:
        source = Path(source)
        if not source.is_dir():
            raise PluginNotFoundError(f"amSynth bank folder not found: {source}; set 'handcrafted.synths.amsynth.path'")
        paths = self.files(source)
        if not paths:
            raise ImportFormatError(f"{source}: no *.bank files")
        paths = paths[:max_files] if max_files else paths
        res = import_amsynth_banks(paths, spec)
        counts = {"files read": res.n_files,
                  "files skipped (malformed or empty)": sum(o.problem.startswith("skipped") for o in res.files),
                  "presets": res.n_presets,
                  "presets omitting parameters (amSynth defaults used)": res.n_missing_warnings}
        return Collected(res.plugin_vectors, [Path(s.file).name for s in res.sources],
                         [s.bank_index for s in res.sources], [s.name for s in res.sources],
                         [Path(s.file).stem for s in res.sources], counts, dict(res.snapped), res.files)

    def files(self, source: Path) -> list[Path]:
        return sorted(Path(source).glob("*.bank"))

    def write(self, presets: np.ndarray, spec: SynthSpec, path: Path, names: Sequence[str] | None = None) -> Path:
        presets = np.atleast_2d(presets)
        unknown = [p.name for p in spec.params if p.name not in _BY_NAME]
        if unknown:
            raise SpecError(f"{spec.source_path or spec.name}: parameter(s) amSynth lacks: {unknown}")
        names = list(names) if names is not None else [f"synthproxy {i}" for i in range(len(presets))]
        sets = []
        for vec, name in zip(spec.to_plugin(presets), names, strict=True):
            given = {p.name: from_normalised(p.name, float(vec[p.index])) for p in spec.params}
            sets.append((name, {n: given.get(n, default_value(n)) for n in AMSYNTH_PARAMETER_NAMES}))
        write_text_atomic(path, bank_text(sets))
        return Path(path)

    def read(self, path: Path, spec: SynthSpec) -> tuple[np.ndarray, list[str]]:
        """Plugin vectors that make amSynth hold exactly the file's values (:func:`reaching_normalised`)."""
        presets = parse_bank(Path(path))
        if not presets:
            raise ImportFormatError(f"{path}: the bank holds no preset")
        vectors = [[reaching_normalised(p.name, pr.full_values()[p.name]) for p in spec.params] for pr in presets]
        return np.asarray(vectors, dtype=np.float64), [pr.name for pr in presets]
