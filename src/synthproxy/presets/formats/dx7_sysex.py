"""Robust reader (and writer) for Yamaha DX7 voice sysex files, as found in hand-crafted Dexed cartridges.

Hand-crafted presets are the reference distribution the proxies are compared against, so every voice
that a collection holds should be read, and every file that cannot be read should say why. Collections
such as "Dexed_cart" are decades old and were saved by many tools: besides the canonical 4104-byte
32-voice bulk dump they contain headerless 4096-byte banks, 163-byte single-voice dumps, banks of 32
unpacked voices, several banks in one file, dumps with a wrong checksum or without their end byte, and
files that hold no DX7 voice at all (DX7II/TX802 performances, 4-operator banks, macOS metadata).

Two modes follow from two uses:

* *lenient* (collection scans): a defect becomes a warning, the voices that can be recovered are kept
  and a file without any voice gets a ``skipped_reason``; a whole folder is read in one pass.
* *strict* (one file named by the user): any defect raises :class:`~synthproxy.errors.ImportFormatError`
  naming the file, the byte offset and the problem, because silently importing half a bank is worse
  than refusing it.

Voices are returned as the 155 "VCED" parameter values (the layout of a single-voice dump; OP6 first),
whatever the storage format was. Values above the documented maximum are *kept* and can be listed with
:func:`out_of_range_fields`, so that a caller decides whether a corrupt voice is dropped.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthproxy.data.atomic import write_bytes_atomic
from synthproxy.errors import ImportFormatError, PluginNotFoundError
from synthproxy.presets.formats.base import Collected, FileOutcome, PresetFormat
from synthproxy.synths.engines.dexed import DEXED_PARAMETERS, dexed_plugin_to_voice
from synthproxy.synths.spec import SynthSpec

__all__ = [
    "FIELD_NAMES",
    "MAX_VALUES",
    "NAME_SLICE",
    "VCED_SIZE",
    "VMEM_SIZE",
    "DX7SysexFormat",
    "DX7Voice",
    "ScanReport",
    "SysexReadResult",
    "dx7_voice_to_plugin",
    "init_voice_params",
    "is_init_voice",
    "out_of_range_fields",
    "pack_voices",
    "parse_sysex_bytes",
    "plugin_to_dx7_voice",
    "read_sysex_file",
    "scan_cartridges",
    "sysex_checksum",
    "unpack_voices",
    "voice_name",
    "write_bank_sysex",
    "write_voice_sysex",
]

VCED_SIZE = 155
"""Bytes of one unpacked voice (single-voice dump payload, VCED)."""
VMEM_SIZE = 128
"""Bytes of one packed voice inside a 32-voice bank (VMEM)."""
BANK_VOICES = 32
BANK_DATA_SIZE = BANK_VOICES * VMEM_SIZE  # 4096
NAME_SLICE = slice(145, 155)
"""Where the 10 name characters sit in a VCED voice; everything before them is sound parameters."""

SYSEX_START = 0xF0
SYSEX_END = 0xF7
YAMAHA_ID = 0x43
FORMAT_VCED = 0x00
FORMAT_VMEM = 0x09
_APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"

# ----------------------------------------------------------------------------------------------------
# Parameter layout
# ----------------------------------------------------------------------------------------------------

_OP_FIELDS: tuple[tuple[str, int], ...] = (
    ("R1", 99), ("R2", 99), ("R3", 99), ("R4", 99),
    ("L1", 99), ("L2", 99), ("L3", 99), ("L4", 99),
    ("BP", 99), ("LD", 99), ("RD", 99), ("LC", 3), ("RC", 3),
    ("RS", 7), ("AMS", 3), ("KVS", 7), ("OL", 99), ("M", 1), ("FC", 31), ("FF", 99), ("DET", 14),
)  # fmt: skip
_GLOBAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("PR1", 99), ("PR2", 99), ("PR3", 99), ("PR4", 99),
    ("PL1", 99), ("PL2", 99), ("PL3", 99), ("PL4", 99),
    ("ALG", 31), ("FB", 7), ("OKS", 1), ("LFS", 99), ("LFD", 99), ("LPMD", 99), ("LAMD", 99),
    ("LKS", 1), ("LFW", 5), ("LPMS", 7), ("TRNSP", 48),
)  # fmt: skip


def _build_layout() -> tuple[tuple[str, ...], np.ndarray]:
    names: list[str] = []
    maxima: list[int] = []
    for block in range(6):  # VCED stores OP6 first, OP1 last
        for fname, fmax in _OP_FIELDS:
            names.append(f"OP{6 - block} {fname}")
            maxima.append(fmax)
    for fname, fmax in _GLOBAL_FIELDS:
        names.append(fname)
        maxima.append(fmax)
    for i in range(10):
        names.append(f"NAME{i + 1}")
        maxima.append(127)
    assert len(names) == VCED_SIZE
    return tuple(names), np.asarray(maxima, dtype=np.uint8)


FIELD_NAMES, MAX_VALUES = _build_layout()
"""Name ("OP3 FC", "ALG", ...) and documented maximum of each of the 155 VCED values."""


def _build_packing() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each VCED value: the packed byte that holds it, its bit shift and its bit mask.

    The packed (VMEM) voice squeezes small fields together, e.g. byte 12 of an operator holds rate
    scaling in bits 0-2 and detune in bits 3-6. Describing every field by (byte, shift, width) makes
    unpacking a single vectorised gather and keeps packing its exact inverse.

    A parameter that owns a whole byte (rates, levels, output level, ...) is read with all 8 bits, as
    Dexed copies it: a stray bit 7 (corruption, since MIDI data bytes are 7-bit) then shows up as an
    out-of-range value and the voice gets flagged, instead of being silently turned into a plausible
    but wrong value. Bits outside the small fields are unused by the format and ignored; name
    characters are 7-bit.
    """
    table: dict[int, tuple[int, int, int]] = {}
    for op in range(6):
        v, p = op * 21, op * 17
        for k in range(11):  # R1-R4, L1-L4, BP, LD, RD
            table[v + k] = (p + k, 0, 8)
        table[v + 11] = (p + 11, 0, 2)  # LC
        table[v + 12] = (p + 11, 2, 2)  # RC
        table[v + 13] = (p + 12, 0, 3)  # RS
        table[v + 20] = (p + 12, 3, 4)  # DET
        table[v + 14] = (p + 13, 0, 2)  # AMS
        table[v + 15] = (p + 13, 2, 3)  # KVS
        table[v + 16] = (p + 14, 0, 8)  # OL
        table[v + 17] = (p + 15, 0, 1)  # M
        table[v + 18] = (p + 15, 1, 5)  # FC
        table[v + 19] = (p + 16, 0, 8)  # FF
    for k in range(8):  # PR1-4, PL1-4
        table[126 + k] = (102 + k, 0, 8)
    table[134] = (110, 0, 5)  # ALG
    table[135] = (111, 0, 3)  # FB
    table[136] = (111, 3, 1)  # OKS
    for k in range(4):  # LFS, LFD, LPMD, LAMD
        table[137 + k] = (112 + k, 0, 8)
    table[141] = (116, 0, 1)  # LKS
    table[142] = (116, 1, 3)  # LFW
    table[143] = (116, 4, 3)  # LPMS
    table[144] = (117, 0, 8)  # TRNSP
    for k in range(10):  # name
        table[145 + k] = (118 + k, 0, 7)
    assert sorted(table) == list(range(VCED_SIZE))
    src = np.array([table[i][0] for i in range(VCED_SIZE)], dtype=np.intp)
    shift = np.array([table[i][1] for i in range(VCED_SIZE)], dtype=np.uint8)
    mask = np.array([(1 << table[i][2]) - 1 for i in range(VCED_SIZE)], dtype=np.uint8)
    return src, shift, mask


_PACK_SRC, _PACK_SHIFT, _PACK_MASK = _build_packing()


def unpack_voices(packed: np.ndarray | bytes) -> np.ndarray:
    """Unpack ``(n, 128)`` packed VMEM voices (or a bytes object of n*128) into ``(n, 155)`` VCED values.

    Small fields are masked to their bit width, so the unused bits of a shared byte never leak into a
    value; whole-byte parameters keep all 8 bits (see ``_build_packing``). :func:`pack_voices` is the
    exact inverse.
    """
    arr = np.frombuffer(packed, dtype=np.uint8) if isinstance(packed, bytes | bytearray) else packed
    arr = np.asarray(arr, dtype=np.uint8).reshape(-1, VMEM_SIZE)
    return ((arr[:, _PACK_SRC] >> _PACK_SHIFT) & _PACK_MASK).astype(np.uint8)


def pack_voices(params: np.ndarray) -> np.ndarray:
    """Pack ``(n, 155)`` (or ``(155,)``) VCED values into ``(n, 128)`` VMEM voices.

    Raises ``ValueError`` naming the fields whose value does not fit its bit field (e.g. DET=20 needs
    5 bits where the format has 4): packing them would silently change the voice.
    """
    vals = np.asarray(params)
    if vals.shape[-1] != VCED_SIZE:
        raise ValueError(f"expected {VCED_SIZE} VCED values per voice, got shape {vals.shape}")
    vals = vals.reshape(-1, VCED_SIZE)
    if vals.dtype.kind not in "iu" or np.any(vals < 0):
        raise ValueError("VCED values must be non-negative integers")
    too_big = vals > _PACK_MASK
    if too_big.any():
        row = int(np.argwhere(too_big)[0][0])
        bad = [f"{FIELD_NAMES[c]}={int(vals[row, c])}>{int(_PACK_MASK[c])}" for c in np.flatnonzero(too_big[row])]
        raise ValueError(f"voice {row}: values do not fit the packed bit fields: {', '.join(bad)}")
    vals = vals.astype(np.uint8)
    packed = np.zeros((vals.shape[0], VMEM_SIZE), dtype=np.uint8)
    for i in range(VCED_SIZE):
        packed[:, _PACK_SRC[i]] |= vals[:, i] << _PACK_SHIFT[i]
    return packed


def sysex_checksum(payload: bytes | np.ndarray) -> int:
    """Yamaha bulk-dump checksum: the 7-bit two's complement of the sum of the payload bytes."""
    arr = np.frombuffer(payload, dtype=np.uint8) if isinstance(payload, bytes | bytearray) else payload
    return (-int(np.asarray(arr, dtype=np.int64).sum())) & 0x7F


def out_of_range_fields(params: np.ndarray) -> list[str]:
    """Fields of one VCED voice whose value exceeds the DX7 maximum, e.g. ``["OP3 FC=40>31"]``.

    Such values come from corrupt dumps or from other synths' data saved as DX7 banks; the synth
    engine would clamp or misinterpret them, so analyses usually drop those voices.
    """
    vals = np.asarray(params).reshape(-1)
    if vals.shape[0] != VCED_SIZE:
        raise ValueError(f"expected {VCED_SIZE} VCED values, got {vals.shape[0]}")
    bad = np.flatnonzero(vals[: NAME_SLICE.start] > MAX_VALUES[: NAME_SLICE.start])
    return [f"{FIELD_NAMES[i]}={int(vals[i])}>{int(MAX_VALUES[i])}" for i in bad]


def voice_name(params: np.ndarray) -> str:
    """The voice name (10 ASCII characters on the DX7), trailing blanks removed.

    Control characters are shown as blanks: some dumps carry NULs or garbage in the name.
    """
    raw = np.asarray(params).reshape(-1)[NAME_SLICE]
    return "".join(chr(b) if 32 <= b < 127 else " " for b in raw.tolist()).rstrip()


def is_init_voice(name: str) -> bool:
    """True for the DX7's default voice name ("INIT VOICE"): such entries are empty slots, not presets."""
    return " ".join(name.split()).upper() == "INIT VOICE"


def init_voice_params() -> np.ndarray:
    """VCED values of Dexed's "INIT VOICE": a plain sine on OP1 (algorithm 1), all other operators silent.

    Used to fill the empty slots of a bank, so that they look like what Dexed shows for a new voice.
    (A DX7's own voice-initialise differs only in the break point, A-1 instead of C3.)
    """
    op = [99, 99, 99, 99, 99, 99, 99, 0, 39, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7]
    values: list[int] = []
    for block in range(6):
        op_vals = list(op)
        if block == 5:  # OP1 (last block) is the only audible operator
            op_vals[16] = 99
        values += op_vals
    values += [99, 99, 99, 99, 50, 50, 50, 50]  # pitch EG
    values += [0, 0, 1, 35, 0, 0, 0, 1, 0, 3, 24]  # ALG FB OKS LFS LFD LPMD LAMD LKS LFW LPMS TRNSP
    values += list(b"INIT VOICE")
    out = np.asarray(values, dtype=np.uint8)
    out.setflags(write=False)
    return out


# ----------------------------------------------------------------------------------------------------
# Result types
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DX7Voice:
    """One DX7 voice read from a file, with where it came from (for provenance and per-author splits).

    ``params`` holds the 155 VCED values (OP6 first, name bytes last) and is read-only. Equality and
    hashing use the values, the name and the location, so two identical voices from different files
    are different ``DX7Voice`` objects; use :attr:`key` to compare sounds.
    """

    params: np.ndarray
    name: str
    file: str
    bank_index: int
    voice_index: int
    author: str = ""

    def __post_init__(self) -> None:
        arr = np.asarray(self.params, dtype=np.uint8).reshape(-1)
        if arr.shape[0] != VCED_SIZE:
            raise ValueError(f"a DX7 voice has {VCED_SIZE} VCED values, got {arr.shape[0]}")
        if arr.flags.writeable:
            arr = arr.copy()
            arr.setflags(write=False)
        object.__setattr__(self, "params", arr)

    @property
    def key(self) -> bytes:
        """The sound parameters (name excluded) as bytes: equal keys mean the same sound."""
        return self.params[: NAME_SLICE.start].tobytes()

    @property
    def out_of_range(self) -> list[str]:
        """See :func:`out_of_range_fields`."""
        return out_of_range_fields(self.params)

    @property
    def is_init(self) -> bool:
        """True for an "INIT VOICE" slot."""
        return is_init_voice(self.name)

    def _identity(self) -> tuple[bytes, str, str, int, int, str]:
        return (self.params.tobytes(), self.name, self.file, self.bank_index, self.voice_index, self.author)

    # The generated dataclass __eq__ would compare the arrays element-wise and fail on their truth value.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DX7Voice):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())


@dataclass
class SysexReadResult:
    """What one file yielded: its voices, the defects met on the way, or why it holds no voice.

    ``skipped_reason`` is set exactly when ``voices`` is empty; ``skipped_category`` is a short key for
    counting (``"empty"``, ``"dx7ii_performance"``, ``"unrecognised"``, ...).
    """

    voices: list[DX7Voice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped_reason: str | None = None
    skipped_category: str | None = None
    banks: int = 0
    single_voice_dumps: int = 0
    bad_checksums: int = 0
    missing_end_byte: int = 0
    truncated: int = 0


@dataclass
class ScanReport:
    """All voices of a cartridge folder plus the counts needed to describe the collection honestly.

    ``unique_all`` counts distinct sounds (names ignored); ``unique`` does the same after dropping
    voices with out-of-range values and "INIT VOICE" slots, i.e. the size of the usable reference set.
    """

    root: Path
    voices: list[DX7Voice]
    warnings: dict[str, list[str]]
    skipped: dict[str, str]
    files: int
    files_with_voices: int
    files_skipped: dict[str, int]
    banks: int
    single_voice_dumps: int
    bad_checksums: int
    missing_end_byte: int
    truncated: int
    voices_total: int
    voices_out_of_range: int
    init_voices: int
    unique_all: int
    unique: int

    def clean_voices(self) -> list[DX7Voice]:
        """First occurrence (in scan order) of each distinct sound, without corrupt or INIT voices."""
        seen: set[bytes] = set()
        out: list[DX7Voice] = []
        for voice, ok in zip(self.voices, _clean_mask(self.voices), strict=True):
            if ok and voice.key not in seen:
                seen.add(voice.key)
                out.append(voice)
        return out

    def summary(self) -> str:
        """Human-readable counts, for logs and reports."""
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(self.files_skipped.items())) or "none"
        return (
            f"{self.files} files ({self.files_with_voices} with voices; skipped: {skipped}); "
            f"{self.banks} banks + {self.single_voice_dumps} single-voice dumps; "
            f"{self.bad_checksums} bad checksums, {self.missing_end_byte} missing end bytes, "
            f"{self.truncated} truncated messages; "
            f"{self.voices_total} voices ({self.voices_out_of_range} out of range, {self.init_voices} INIT), "
            f"{self.unique_all} unique ignoring names, {self.unique} unique after dropping those"
        )


# ----------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------

# Non-voice Yamaha bulk formats met in DX7 collections: (category, description).
_BULK_FORMATS: dict[int, tuple[str, str]] = {
    0x01: ("tx7_performance", "TX7 performance data (PCED, format 0x01)"),
    0x02: ("tx7_performance", "TX7 32-performance function data (PMEM, format 0x02)"),
    0x03: ("four_op_voice", "4-operator single voice (DX21/DX27/DX100, format 0x03)"),
    0x04: ("four_op_voice", "4-operator 32-voice bank (DX21/DX27/DX100/TX81Z, format 0x04)"),
    0x05: ("dx7ii_supplement", "DX7II additional voice parameters (ACED, format 0x05)"),
    0x06: ("dx7ii_supplement", "DX7II/TX802 additional voice parameters for 32 voices (AMEM, format 0x06)"),
}
# Universal bulk dumps (format 0x7e) carry a 10-character ASCII classification.
_UNIVERSAL_FORMATS: dict[str, tuple[str, str]] = {
    "LM  8973PE": ("dx7ii_performance", "DX7II performance data"),
    "LM  8973PM": ("dx7ii_performance", "DX7II performance data"),
    "LM  8973S ": ("dx7ii_system", "DX7II system set-up data"),
    "LM  8952PM": ("tx802_performance", "TX802 performance data"),
}


_HIGH_BIT_CONSEQUENCE = "voices kept; a parameter byte with bit 7 set reads as an out-of-range value"


def _vced_values(raw: np.ndarray) -> np.ndarray:
    """Unpacked (VCED) voices as stored, except name characters, which are 7-bit like in packed voices."""
    out = np.array(raw, dtype=np.uint8, copy=True).reshape(-1, VCED_SIZE)
    out[:, NAME_SLICE] &= 0x7F
    return out


@dataclass(frozen=True)
class _VoiceFormat:
    fmt: int
    data_size: int
    voice_size: int
    label: str


_VMEM = _VoiceFormat(FORMAT_VMEM, BANK_DATA_SIZE, VMEM_SIZE, "32-voice bulk dump")
_VCED = _VoiceFormat(FORMAT_VCED, VCED_SIZE, VCED_SIZE, "single-voice dump")


class _Parser:
    """State of one lenient or strict parse; ``problem`` is where the two modes differ."""

    def __init__(self, data: bytes, source: str, strict: bool, author: str) -> None:
        self.data = bytes(data)
        self.arr = np.frombuffer(self.data, dtype=np.uint8)
        self.source = source
        self.strict = strict
        self.author = author
        self.result = SysexReadResult()
        self.bank = 0
        self.nonvoice: list[tuple[int, str, str]] = []  # (offset, category, description)
        self.fatal: list[tuple[int, str, str]] = []  # defects that yielded no voice

    # -- reporting ------------------------------------------------------------------------------------

    def problem(self, offset: int, what: str, consequence: str) -> None:
        """A defect: fatal in strict mode, a warning (with what was done about it) otherwise."""
        if self.strict:
            raise ImportFormatError(f"{self.source}: {what} at byte offset {offset}")
        self.result.warnings.append(f"{what} at byte offset {offset}: {consequence}")

    def skip_file(self, offset: int, category: str, reason: str) -> SysexReadResult:
        if self.strict:
            raise ImportFormatError(f"{self.source}: {reason} at byte offset {offset}: no DX7 voice data")
        self.result.skipped_reason = reason
        self.result.skipped_category = category
        return self.result

    # -- entry point ----------------------------------------------------------------------------------

    def run(self) -> SysexReadResult:
        data = self.data
        if not data:
            return self.skip_file(0, "empty", "empty file")
        if data.startswith(_APPLEDOUBLE_MAGIC):
            return self.skip_file(0, "appledouble", "macOS AppleDouble metadata (resource fork), not sysex")
        if data[0] != SYSEX_START and b"\xf0\x43" not in data:
            self.read_headerless()
        else:
            self.read_messages()
        return self.finish()

    def finish(self) -> SysexReadResult:
        res = self.result
        if res.voices:
            for off, _, desc in self.nonvoice:
                res.warnings.append(f"ignored {desc} at byte offset {off}")
            return res
        if self.nonvoice:
            counts = Counter(desc for _, _, desc in self.nonvoice)
            reason = "; ".join(f"{desc} x{n}" if n > 1 else desc for desc, n in counts.items())
            return self.skip_file(self.nonvoice[0][0], self.nonvoice[0][1], reason)
        if self.fatal:
            off, category, reason = self.fatal[0]
            return self.skip_file(off, category, reason)
        return self.skip_file(0, "unrecognised", f"unrecognised data of {len(self.data)} bytes")

    # -- headerless data ------------------------------------------------------------------------------

    def read_headerless(self) -> None:
        """Raw voice data without sysex framing, as some librarians save banks (Dexed loads them too)."""
        n = len(self.data)
        if n % BANK_DATA_SIZE == 0:
            fmt = _VMEM
        elif n % VCED_SIZE == 0:
            fmt = _VCED
        elif n % VMEM_SIZE == 0:
            fmt = _VMEM
            self.problem(
                0,
                f"headerless data of {n} bytes is not a whole number of 4096-byte banks",
                f"read as {n // VMEM_SIZE} packed voices",
            )
        else:
            self.fatal.append((0, "unrecognised", f"unrecognised data of {n} bytes"))
            return
        high = np.flatnonzero(self.arr >= 0x80)
        if high.size:
            self.problem(
                int(high[0]),
                f"{high.size} bytes with bit 7 set in headerless voice data",
                _HIGH_BIT_CONSEQUENCE,
            )
        block = self.arr
        if fmt is _VMEM:
            params = unpack_voices(block.reshape(-1, VMEM_SIZE))
        else:
            params = _vced_values(block.reshape(-1, VCED_SIZE))
        if (params[:, : NAME_SLICE.start] > MAX_VALUES[: NAME_SLICE.start]).any(axis=1).all():
            # Every "voice" out of range: this is some other data that happens to have a DX7 size.
            self.fatal.append((0, "unrecognised", f"unrecognised data of {n} bytes (no plausible DX7 voice)"))
            return
        for start in range(0, params.shape[0], BANK_VOICES):
            self.emit(params[start : start + BANK_VOICES])
            self.result.banks += 1

    # -- sysex messages -------------------------------------------------------------------------------

    def read_messages(self) -> None:
        data, n = self.data, len(self.data)
        pos = 0
        while pos < n:
            j = data.find(bytes([SYSEX_START]), pos)
            if j < 0:
                self.stray(pos, n)
                break
            if j > pos:
                self.stray(pos, j)
            pos = self.message(j)

    def stray(self, start: int, stop: int) -> None:
        chunk = self.data[start:stop]
        if chunk == bytes([SYSEX_END]) * len(chunk):
            self.problem(start, f"{len(chunk)} extra end byte(s) F7", "ignored")
        elif start == 0:
            self.problem(start, f"{len(chunk)} bytes of non-sysex data before the first message", "ignored")
        else:
            self.problem(start, f"{len(chunk)} bytes outside any sysex message", "ignored")

    def skip_message(self, j: int) -> int:
        """End offset of a message we do not decode: after its F7, or at the next F0 if it has none."""
        d = self.data
        hits = [x for x in (d.find(bytes([SYSEX_END]), j + 1), d.find(bytes([SYSEX_START]), j + 1)) if x >= 0]
        k = min(hits) if hits else len(d)
        return k + 1 if k < len(d) and d[k] == SYSEX_END else k

    def message(self, j: int) -> int:
        """Decode the message starting at ``j`` (an F0); return the offset just after it."""
        d, n = self.data, len(self.data)
        if j + 1 >= n:
            self.problem(j, "sysex start byte F0 at end of file", "ignored")
            self.fatal.append((j, "truncated", "truncated sysex message (F0 at end of file)"))
            return n
        if d[j + 1] >= 0x80:
            self.problem(j, f"sysex start byte F0 followed by status byte 0x{d[j + 1]:02x}", "ignored")
            return j + 1
        if d[j + 1] != YAMAHA_ID:
            self.nonvoice.append(
                (j, "other_manufacturer", f"sysex message of manufacturer 0x{d[j + 1]:02x} (not Yamaha)")
            )
            return self.skip_message(j)
        if j + 3 >= n or d[j + 2] >= 0x80 or d[j + 3] >= 0x80:
            self.problem(j, "truncated Yamaha sysex header", "ignored")
            self.fatal.append((j, "truncated", "truncated Yamaha sysex header"))
            return self.skip_message(j)
        sub = d[j + 2] & 0xF0
        if sub == 0x10:
            self.nonvoice.append((j, "parameter_change", "parameter-change message (not a voice dump)"))
            return self.skip_message(j)
        if sub != 0x00:
            self.nonvoice.append((j, "other_yamaha", f"Yamaha sysex message of type 0x{sub:02x} (not a voice dump)"))
            return self.skip_message(j)
        fmt = d[j + 3]
        if fmt == FORMAT_VMEM:
            return self.voice_message(j, _VMEM)
        if fmt == FORMAT_VCED:
            return self.voice_message(j, _VCED)
        if fmt == 0x7E:
            ident = d[j + 6 : j + 16].decode("ascii", "replace")
            category, desc = _UNIVERSAL_FORMATS.get(ident, ("other_yamaha", "Yamaha universal bulk data"))
            self.nonvoice.append((j, category, f"{desc} (format 0x7e, {ident!r})"))
        else:
            category, desc = _BULK_FORMATS.get(
                fmt, ("other_yamaha", f"Yamaha bulk dump of format 0x{fmt:02x} (not a DX7 voice)")
            )
            self.nonvoice.append((j, category, desc))
        return self.skip_message(j)

    def terminator(self, start: int) -> int:
        """First F7 or "F0 43" at or after ``start`` (len(data) if none): where a short message stopped."""
        d = self.data
        hits = [x for x in (d.find(bytes([SYSEX_END]), start), d.find(b"\xf0\x43", start)) if x >= 0]
        return min(hits) if hits else len(d)

    def voice_message(self, j: int, vf: _VoiceFormat) -> int:
        """Read a 32-voice (VMEM) or single-voice (VCED) dump, recovering what a defect leaves intact.

        The length given by the format is trusted first: when the end byte F7 sits where the format puts
        it, the message is complete even if some data bytes carry a stray bit 7 (a common corruption of
        old dumps, which Dexed ignores). Only otherwise is the message cut at the first F7 or next
        Yamaha message, to recover the complete voices of a truncated dump.
        """
        d, n = self.data, len(self.data)
        where = f"bank {self.bank}" if vf is _VMEM else f"single-voice dump (bank {self.bank})"
        if j + 6 > n or any(b >= 0x80 for b in d[j + 1 : j + 6]):
            stop = self.terminator(j + 1)
            what = f"truncated {vf.label} header ({min(stop, j + 6) - j} of 6 bytes)"
            self.result.truncated += 1
            self.problem(j, what, "ignored")
            self.fatal.append((j, "truncated", what))
            return stop + 1 if stop < n and d[stop] == SYSEX_END else stop
        count = (d[j + 4] << 7) | d[j + 5]
        if count != vf.data_size:
            self.problem(
                j + 4,
                f"byte count field 0x{d[j + 4]:02x} 0x{d[j + 5]:02x} of {where} says "
                f"{count} bytes, a {vf.label} has {vf.data_size}",
                f"read as {vf.data_size} bytes",
            )
        start = j + 6
        c = start + vf.data_size  # where the checksum belongs
        e = c + 1  # where the end byte F7 belongs
        complete = e < n and d[e] == SYSEX_END
        if not complete:
            stop = self.terminator(start)
            if stop < c:
                return self.truncated_message(start, stop, vf, where)
        payload = self.arr[start:c]
        high = np.flatnonzero(payload >= 0x80)
        if high.size:
            self.problem(
                start + int(high[0]),
                f"{high.size} data bytes with bit 7 set in {where}",
                _HIGH_BIT_CONSEQUENCE,
            )
        self.emit_block(start, vf.data_size // vf.voice_size, vf)
        if complete:
            self.check_checksum(payload, c, where)
            return e + 1
        if c >= n:
            self.result.missing_end_byte += 1
            self.problem(c, f"missing checksum and end byte F7 after {where}", "voices kept (checksum not checked)")
            return n
        if d[c] == SYSEX_END:
            self.result.missing_end_byte += 1
            self.problem(
                c,
                f"missing end byte F7 after {where} (F7 found where the checksum belongs: the "
                "checksum or the end byte is missing)",
                "voices kept (checksum not checked)",
            )
            return c + 1
        self.check_checksum(payload, c, where)
        stop = self.terminator(e)
        if stop < n and d[stop] == SYSEX_END:
            self.problem(e, f"{stop - e} extra bytes before the end byte F7 of {where}", "ignored")
            return stop + 1
        self.result.missing_end_byte += 1
        self.problem(e, f"missing end byte F7 after {where}", "voices kept")
        return e

    def truncated_message(self, start: int, stop: int, vf: _VoiceFormat, where: str) -> int:
        """Keep the complete voices of a dump cut short at ``stop``; return where parsing resumes."""
        avail = stop - start
        n_voices = avail // vf.voice_size
        what = f"truncated {vf.label} in {where}: {avail} of {vf.data_size} data bytes"
        self.result.truncated += 1
        if n_voices:
            self.problem(stop, what, f"{n_voices} complete voice(s) kept")
            self.emit_block(start, n_voices, vf)
        else:
            self.problem(stop, what, "no complete voice")
            self.fatal.append((stop, "truncated", what))
        return stop + 1 if stop < len(self.data) and self.data[stop] == SYSEX_END else stop

    def check_checksum(self, payload: np.ndarray, c: int, where: str) -> None:
        """Compare the checksum byte as stored: one with bit 7 set is not valid MIDI data, hence bad."""
        found = self.data[c]
        expected = sysex_checksum(payload)
        if found != expected:
            self.result.bad_checksums += 1
            note = "; bit 7 set, low 7 bits match" if found & 0x7F == expected else ""
            self.problem(
                c,
                f"bad checksum in {where} (expected 0x{expected:02x}, found 0x{found:02x}{note})",
                "voices kept",
            )

    def emit_block(self, start: int, count: int, vf: _VoiceFormat) -> None:
        raw = self.arr[start : start + count * vf.voice_size].reshape(count, vf.voice_size)
        params = unpack_voices(raw) if vf is _VMEM else _vced_values(raw)
        self.emit(params)
        if vf is _VMEM:
            self.result.banks += 1
        else:
            self.result.single_voice_dumps += 1

    def emit(self, params: np.ndarray) -> None:
        """Append one bank's voices; the bank counter gives each message of the file its own index."""
        params = np.ascontiguousarray(params, dtype=np.uint8)
        params.setflags(write=False)
        for i in range(params.shape[0]):
            row = params[i]
            self.result.voices.append(DX7Voice(row, voice_name(row), self.source, self.bank, i, self.author))
        self.bank += 1


def parse_sysex_bytes(data: bytes, source: str, strict: bool = False, *, author: str = "") -> SysexReadResult:
    """Find every DX7 voice in ``data`` (the content of a file called ``source`` in messages).

    In strict mode a truncated message, a wrong header or byte count, a bad or missing checksum, a
    missing end byte, stray bytes, an empty file or a file holding only non-voice sysex raise
    :class:`ImportFormatError` with the file, byte offset and problem. Non-voice messages *next to*
    voice dumps (e.g. the DX7II supplement that follows a voice bank) are not defects and are only
    reported as warnings. In lenient mode every defect becomes a warning and the intact voices are kept.
    """
    return _Parser(data, source, strict, author).run()


def _relative(path: Path, root: Path | None) -> tuple[str, str]:
    """(file label, author) of ``path``: the path under ``root`` and its first folder, if any."""
    if root is None:
        return str(path), ""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:  # not under root: keep the path as given, no author
        return str(path), ""
    return rel.as_posix(), rel.parts[0] if len(rel.parts) > 1 else ""


def read_sysex_file(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, strict: bool = False
) -> SysexReadResult:
    """Read one ``.syx`` file. With ``root``, voices record the path under it and its first folder.

    Raises :class:`PluginNotFoundError` if the file does not exist (a wrong path is a configuration
    error, not a malformed file).
    """
    p = Path(path)
    if not p.is_file():
        raise PluginNotFoundError(f"{p}: sysex file not found")
    file_label, author = _relative(p, Path(root) if root is not None else None)
    return parse_sysex_bytes(p.read_bytes(), file_label, strict, author=author)


def _in_range_mask(voices: Sequence[DX7Voice]) -> np.ndarray:
    """True for voices whose values are all within the DX7 maxima (vectorised over a whole scan)."""
    if not voices:
        return np.zeros(0, dtype=bool)
    allp = np.stack([v.params[: NAME_SLICE.start] for v in voices])
    return ~(allp > MAX_VALUES[: NAME_SLICE.start]).any(axis=1)


def _clean_mask(voices: Sequence[DX7Voice]) -> np.ndarray:
    """True for voices that are neither out of range nor INIT VOICE."""
    not_init = np.array([not v.is_init for v in voices], dtype=bool)
    return _in_range_mask(voices) & not_init


def syx_files(root: Path) -> list[Path]:
    """Every ``.syx`` file (any case) under ``root``, in sorted relative-path order."""
    return sorted((p for p in root.rglob("*") if p.suffix.lower() == ".syx" and p.is_file()),
                  key=lambda p: p.relative_to(root).as_posix())


def scan_cartridges(root: str | os.PathLike[str]) -> ScanReport:
    """Read every ``.syx`` file (any case) under ``root`` in sorted path order, leniently.

    Sorted order makes voice order, and hence any sample drawn from it, reproducible across machines.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise PluginNotFoundError(
            f"DX7 cartridge folder {root_path} does not exist (or is not a folder); "
            "set its location with the config key handcrafted.dexed.source_dir"
        )
    files = syx_files(root_path)
    if not files:
        raise ImportFormatError(f"{root_path}: no .syx file in this folder or its subfolders")

    voices: list[DX7Voice] = []
    warnings: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    files_skipped: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    files_with_voices = 0
    for p in files:
        res = read_sysex_file(p, root_path)
        label = p.relative_to(root_path).as_posix()
        if res.warnings:
            warnings[label] = res.warnings
        if res.voices:
            files_with_voices += 1
            voices.extend(res.voices)
        else:
            skipped[label] = res.skipped_reason or "no voice"
            files_skipped[res.skipped_category or "unrecognised"] += 1
        for name in ("banks", "single_voice_dumps", "bad_checksums", "missing_end_byte", "truncated"):
            totals[name] += getattr(res, name)

    clean = _clean_mask(voices)
    n_out = int((~_in_range_mask(voices)).sum())
    return ScanReport(
        root=root_path,
        voices=voices,
        warnings=warnings,
        skipped=skipped,
        files=len(files),
        files_with_voices=files_with_voices,
        files_skipped=dict(files_skipped),
        banks=totals["banks"],
        single_voice_dumps=totals["single_voice_dumps"],
        bad_checksums=totals["bad_checksums"],
        missing_end_byte=totals["missing_end_byte"],
        truncated=totals["truncated"],
        voices_total=len(voices),
        voices_out_of_range=n_out,
        init_voices=sum(1 for v in voices if v.is_init),
        unique_all=len({v.key for v in voices}),
        unique=len({v.key for v, ok in zip(voices, clean, strict=True) if ok}),
    )


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


def _encode_name(name: str) -> np.ndarray:
    if len(name) > 10:
        raise ValueError(f"a DX7 voice name has at most 10 characters, got {name!r}")
    if any(not 32 <= ord(ch) < 127 for ch in name):
        raise ValueError(f"a DX7 voice name must be printable ASCII, got {name!r}")
    return np.frombuffer(name.ljust(10).encode("ascii"), dtype=np.uint8)


def _checked_params(voice_params: np.ndarray, name: str | None, allow_out_of_range: bool) -> np.ndarray:
    vals = np.asarray(voice_params).reshape(-1)
    if vals.shape[0] != VCED_SIZE:
        raise ValueError(f"expected {VCED_SIZE} VCED values, got {vals.shape[0]}")
    if vals.dtype.kind not in "iu" or np.any(vals < 0) or np.any(vals > 127):
        raise ValueError("VCED values must be integers in 0..127 (7-bit MIDI data)")
    vals = vals.astype(np.uint8)
    if name is not None:
        vals[NAME_SLICE] = _encode_name(name)
    if not allow_out_of_range:
        bad = out_of_range_fields(vals)
        if bad:
            raise ValueError(f"voice values above the DX7 maximum: {', '.join(bad)}")
    return vals


def _frame(fmt: int, payload: np.ndarray, channel: int) -> bytes:
    if not 0 <= channel <= 15:
        raise ValueError(f"MIDI channel must be 0..15, got {channel}")
    size = payload.shape[0]
    head = bytes([SYSEX_START, YAMAHA_ID, channel, fmt, size >> 7, size & 0x7F])
    return head + payload.tobytes() + bytes([sysex_checksum(payload), SYSEX_END])


def write_voice_sysex(
    voice_params: np.ndarray, name: str | None = None, *, channel: int = 0, allow_out_of_range: bool = False
) -> bytes:
    """A 163-byte single-voice dump (F0 43 0n 00 01 1B, 155 values, checksum, F7) that Dexed or a DX7 loads.

    ``name`` (up to 10 ASCII characters) replaces the name bytes of ``voice_params``; ``None`` keeps them.
    Values above the DX7 maxima raise ``ValueError`` unless ``allow_out_of_range`` (a synth would
    misread them).
    """
    vals = _checked_params(voice_params, name, allow_out_of_range)
    return _frame(FORMAT_VCED, vals, channel)


def write_bank_sysex(
    voices: Sequence[DX7Voice | np.ndarray], *, channel: int = 0, allow_out_of_range: bool = False
) -> bytes:
    """A 4104-byte 32-voice bulk dump of up to 32 voices; empty slots are filled with INIT VOICE.

    Accepts :class:`DX7Voice` objects or arrays of 155 VCED values (whose name bytes are used).
    """
    if len(voices) > BANK_VOICES:
        raise ValueError(f"a DX7 bank holds {BANK_VOICES} voices, got {len(voices)}")
    rows = [_checked_params(v.params if isinstance(v, DX7Voice) else v, None, allow_out_of_range) for v in voices]
    rows += [init_voice_params()] * (BANK_VOICES - len(rows))
    packed = pack_voices(np.stack(rows)).reshape(-1)
    return _frame(FORMAT_VMEM, packed, channel)


# ----------------------------------------------------------------------------------------------------
# The format: DX7 voices <-> Dexed plugin vectors
# ----------------------------------------------------------------------------------------------------
def dx7_voice_to_plugin(params: np.ndarray, spec: SynthSpec) -> np.ndarray:
    """A 155-byte VCED voice as a Dexed plugin vector on the spec grid (value v of a control with
    ``steps`` positions is ``v / (steps - 1)``, which Dexed's own mapping turns back into v)."""
    out = spec.defaults_plugin_vector()
    for i, p in enumerate(spec.params):
        offset, steps = DEXED_PARAMETERS[p.name]
        if offset >= 0:
            out[i] = min(float(params[offset]) / (steps - 1), 1.0)
    return out


def plugin_to_dx7_voice(plugin_vector: np.ndarray, spec: SynthSpec) -> np.ndarray:
    """The 155 VCED values of a Dexed plugin vector (Dexed's own quantisation, see the ``dexed`` engine).

    A DX7 dump has no operator on/off switch: a plugin vector with an operator switched off cannot be
    written and raises :class:`ImportFormatError`.
    """
    voice = dexed_plugin_to_voice(np.asarray(plugin_vector, dtype=np.float64), [p.name for p in spec.params])
    if voice[155] != 0b111111:
        raise ImportFormatError("a DX7 voice dump cannot store operators switched off; switch them on")
    return np.frombuffer(voice[:VCED_SIZE], dtype=np.uint8).copy()


def _voice_name(name: str) -> str:
    clean = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in name)
    return clean[:10]


def _named_voices(presets: np.ndarray, spec: SynthSpec, names: Sequence[str] | None) -> list[np.ndarray]:
    """1 to 32 preset vectors as VCED voices named ``names`` (default ``SYNPROX000``, ...)."""
    presets = np.atleast_2d(presets)
    if not 1 <= len(presets) <= BANK_VOICES:
        raise ImportFormatError(f"a DX7 file holds 1 to {BANK_VOICES} voices, got {len(presets)}")
    names = list(names) if names is not None else [f"SYNPROX{i:03d}" for i in range(len(presets))]
    voices = []
    for vec, name in zip(spec.to_plugin(presets), names, strict=True):
        v = plugin_to_dx7_voice(vec, spec)
        v[NAME_SLICE] = _encode_name(_voice_name(name))
        voices.append(v)
    return voices


def _file_outcomes(report: ScanReport, voices: list[DX7Voice], clean: list[DX7Voice]) -> list[FileOutcome]:
    """Per-file rows of the import report: voices kept and every defect met (skipped, repaired, dropped).

    Files without a voice are all listed; of the files with voices, those the import read (``max_files``).
    """
    kept = Counter(v.file for v in clean)
    read = Counter(v.file for v in voices)
    out_of_range = Counter(v.file for v in voices if v.out_of_range)
    labels = sorted(set(read) | set(report.skipped), key=str)
    rows = []
    for label in labels:
        problems = list(report.warnings.get(label, []))
        if label in report.skipped:
            problems.insert(0, f"skipped: {report.skipped[label]}")
        if out_of_range[label]:
            problems.append(f"{out_of_range[label]} voice(s) dropped: values beyond the DX7 maxima")
        rows.append(FileOutcome(label, kept[label], "; ".join(problems)))
    return rows


class DX7SysexFormat(PresetFormat):
    """Dexed / DX7 sysex: reads cartridge folders leniently; writes a 163-byte voice or a 4104-byte bank."""

    name = "dx7_sysex"
    suffix = ".syx"

    def collect(self, source: Path, spec: SynthSpec, max_files: int | None = None) -> Collected:
        source = Path(source)
        if not source.is_dir():
            raise PluginNotFoundError(
                f"DX7 cartridge folder not found: {source}; set 'handcrafted.synths.dexed.path' in the config, or "
                "set 'handcrafted.synths.dexed.fetch: true' to download the public compilation (network needed once)"
            )
        report = scan_cartridges(source)
        files = sorted({v.file for v in report.voices})
        keep_files = set(files[:max_files]) if max_files else set(files)
        voices = [v for v in report.voices if v.file in keep_files]
        counts = {"files read": report.files, "files with voices": report.files_with_voices,
                  "files skipped (no DX7 voice)": sum(report.files_skipped.values()),
                  "banks with bad checksum (kept)": report.bad_checksums, "voices": report.voices_total}
        if max_files:
            counts["voices in the first max_files files"] = len(voices)
        clean = [v for v in voices if not v.out_of_range and not v.is_init]
        counts["dropped: out-of-range values"] = sum(bool(v.out_of_range) for v in voices)
        counts["dropped: INIT VOICE"] = sum(bool(v.is_init) and not v.out_of_range for v in voices)
        outcomes = _file_outcomes(report, voices, clean)
        if not clean:
            bad = "; ".join(f"{o.file}: {o.problem}" for o in outcomes if o.problem)[:2000]
            raise ImportFormatError(f"{source}: no usable DX7 voice found ({bad or 'no .syx file with voices'})")
        vectors = np.stack([dx7_voice_to_plugin(v.params, spec) for v in clean])
        return Collected(vectors, [v.file for v in clean], [v.bank_index * 32 + v.voice_index for v in clean],
                         [v.name for v in clean], [v.author for v in clean], counts, files=outcomes)

    def files(self, source: Path) -> list[Path]:
        return syx_files(Path(source))

    def write(self, presets: np.ndarray, spec: SynthSpec, path: Path, names: Sequence[str] | None = None) -> Path:
        """One preset → a single-voice dump (163 bytes); 2..32 presets → a 32-voice bank (4104 bytes)."""
        voices = _named_voices(presets, spec, names)
        data = write_voice_sysex(voices[0]) if len(voices) == 1 else write_bank_sysex(voices)
        write_bytes_atomic(path, data)
        return Path(path)

    def write_bank(self, presets: np.ndarray, spec: SynthSpec, path: Path, names: Sequence[str] | None = None
                   ) -> Path:
        """Up to 32 presets as a 4104-byte 32-voice cartridge (the other slots INIT VOICE)."""
        write_bytes_atomic(path, write_bank_sysex(_named_voices(presets, spec, names)))
        return Path(path)

    def read(self, path: Path, spec: SynthSpec) -> tuple[np.ndarray, list[str]]:
        res = read_sysex_file(Path(path), strict=True)
        if not res.voices:
            raise ImportFormatError(f"{path}: no DX7 voice in the file")
        return np.stack([dx7_voice_to_plugin(v.params, spec) for v in res.voices]), [v.name for v in res.voices]
