"""Tests of the DX7 sysex reader/writer.

The core checks run on banks made in memory from voices with known field values (built through dexed-py's own
``Patch`` API, see ``dx7_voices.py``), so they need no shared data; defective inputs are made from those banks
(truncated, wrong header, bad checksum, ...). Tests on the real banks of the shared Dexed_cart folder (the
factory ROM, the whole collection) are skipped without it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from dexed import Patch

from synthproxy.errors import ImportFormatError, PluginNotFoundError
from synthproxy.presets.formats.dx7_sysex import (
    FIELD_NAMES,
    MAX_VALUES,
    NAME_SLICE,
    DX7Voice,
    ScanReport,
    dx7_voice_to_plugin,
    init_voice_params,
    out_of_range_fields,
    pack_voices,
    parse_sysex_bytes,
    read_sysex_file,
    scan_cartridges,
    sysex_checksum,
    unpack_voices,
    write_bank_sysex,
    write_voice_sysex,
)
from synthproxy.synths.engines import RenderSettings, make_engine
from synthproxy.synths.spec import load_spec

from .dx7_voices import DEXED_CONTROLS, dexed_py_render, make_patch, named_values, vced

SHARED = Path(os.environ.get("SYNTHPROXY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CART = SHARED / "dx7" / "dexed_cart"
DEXED_SPEC = Path(__file__).resolve().parents[1] / "config" / "synths" / "dexed.yaml"

ROM1A = "Original Yamaha/DX7 ROM1/ROM1A.syx"  # factory bank, clean 4104-byte bulk dump
ROM1B = "Original Yamaha/DX7 ROM1/ROM1B.syx"
SINGLE = "!Instruments/Voice/Vocoder/VOCODER1.SYX"  # 163-byte single-voice dump


@pytest.fixture(scope="module")
def cart() -> Path:
    """The shared Dexed_cart folder; tests that need real banks are skipped without it."""
    if not CART.is_dir():
        pytest.skip(f"shared DX7 data not found at {CART} (set SYNTHPROXY_SHARED_DATA)")
    return CART


@pytest.fixture(scope="module")
def rom1a(cart: Path) -> bytes:
    return (cart / ROM1A).read_bytes()


@pytest.fixture(scope="module")
def patches() -> list[Patch]:
    """64 distinct voices with known field values: ``bank`` holds the first 32, ``bank_b`` the others."""
    return [make_patch(i) for i in range(64)]


@pytest.fixture(scope="module")
def bank_params(patches: list[Patch]) -> np.ndarray:
    return np.stack([vced(p) for p in patches[:32]])


@pytest.fixture(scope="module")
def bank(bank_params: np.ndarray) -> bytes:
    """A 32-voice bulk dump made in memory by this package's writer."""
    return write_bank_sysex(list(bank_params))


@pytest.fixture(scope="module")
def bank_b(patches: list[Patch]) -> bytes:
    return write_bank_sysex([vced(p) for p in patches[32:]])


@pytest.fixture(scope="module")
def spec():
    return load_spec(DEXED_SPEC)


def _amem_message() -> bytes:
    """A DX7II "additional voice parameters" (AMEM, format 6) dump: valid sysex, but no DX7 voice."""
    payload = bytes(1120)
    return bytes([0xF0, 0x43, 0x00, 0x06, 0x08, 0x60]) + payload + bytes([sysex_checksum(payload), 0xF7])


def _dx7ii_performance_message() -> bytes:
    """A DX7II 32-performance dump (universal format 0x7e, classification "LM  8973PM")."""
    payload = b"LM  8973PM" + bytes(1632)
    n = len(payload)
    head = bytes([0xF0, 0x43, 0x00, 0x7E, n >> 7, n & 0x7F])
    return head + payload + bytes([sysex_checksum(payload), 0xF7])


# ------------------------------------------------------------------------------------------------------
# Good input
# ------------------------------------------------------------------------------------------------------


def test_in_memory_bank_is_the_dump_dexed_py_writes(patches: list[Patch], bank: bytes) -> None:
    """Our writer, byte for byte, against a dump framed by hand around dexed-py's own packed voices."""
    payload = b"".join(p.to_packed() for p in patches[:32])
    checksum = (-sum(payload)) & 0x7F  # Yamaha: 7-bit two's complement of the payload sum
    assert bank == bytes.fromhex("f04300092000") + payload + bytes([checksum, 0xF7])


def test_dexed_py_loads_the_in_memory_bank_as_the_voices_it_was_made_of(tmp_path: Path, patches, bank) -> None:
    (tmp_path / "mine.syx").write_bytes(bank)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dexed-py warns on a checksum mismatch
        loaded = Patch.load_bank(str(tmp_path / "mine.syx"))
    assert [p.to_sysex() for p in loaded] == [p.to_sysex() for p in patches[:32]]
    assert loaded[7].op[2].output_level == 83  # OP3 of voice 7: 99 - (5 * 7 + 3 * 2) % 25


def test_reader_returns_the_known_field_values(bank: bytes, patches: list[Patch]) -> None:
    res = parse_sysex_bytes(bank, "mine.syx", strict=True)
    assert res.warnings == [] and res.banks == 1 and len(res.voices) == 32
    assert [v.name for v in res.voices] == [f"VOICE {i:02d}" for i in range(32)]
    assert [v.voice_index for v in res.voices] == list(range(32))
    for v, p in zip(res.voices, patches, strict=False):
        np.testing.assert_array_equal(v.params, vced(p), err_msg=v.name)
        assert not v.out_of_range and not v.is_init
    # a few fields by their DX7 meaning (OP6 is stored first): voice 9 has ALG 10, OP1 coarse 2, OP6 detune 4
    v9 = res.voices[9].params
    assert v9[134] == 9 and v9[5 * 21 + 18] == 1 + 9 % 8 and v9[0 * 21 + 20] == (9 + 2 * 5) % 15
    assert FIELD_NAMES[134] == "ALG" and FIELD_NAMES[5 * 21 + 18] == "OP1 FC" and FIELD_NAMES[20] == "OP6 DET"


def test_good_real_bank_is_read_without_warnings(cart: Path, rom1a: bytes) -> None:
    assert len(rom1a) == 4104 and rom1a[:6] == bytes.fromhex("f04300092000") and rom1a[-1] == 0xF7
    res = read_sysex_file(cart / ROM1A, root=cart, strict=True)
    assert res.warnings == [] and res.skipped_reason is None
    assert len(res.voices) == 32 and res.banks == 1
    assert [v.voice_index for v in res.voices] == list(range(32))
    assert {v.bank_index for v in res.voices} == {0}
    first = res.voices[0]
    assert first.name == "BRASS   1"
    assert first.file == ROM1A and first.author == "Original Yamaha"
    assert first.params.shape == (155,) and first.params.dtype == np.uint8
    assert all(not v.out_of_range for v in res.voices)


def _check_unpacking_against_dexed_py(data: bytes) -> None:
    ours = unpack_voices(data[6:4102])
    for i in range(32):
        theirs = np.frombuffer(bytes(Patch._unpack_voice(data[6 + 128 * i : 6 + 128 * (i + 1)]))[:155], np.uint8)
        np.testing.assert_array_equal(ours[i], theirs, err_msg=f"voice {i}")


def test_unpacking_agrees_with_dexed_py(bank: bytes) -> None:
    """dexed-py's unpacker (a port of Dexed's) is an independent oracle for clean, in-range voices."""
    _check_unpacking_against_dexed_py(bank)


def test_unpacking_of_a_real_bank_agrees_with_dexed_py(rom1a: bytes) -> None:
    _check_unpacking_against_dexed_py(rom1a)


def test_field_layout_spot_checks(bank: bytes) -> None:
    """A few fields decoded by hand from the packed bytes (OP6 is stored first in both layouts)."""
    packed = np.frombuffer(bank[6:4102], np.uint8).reshape(32, 128)
    params = unpack_voices(packed)
    assert FIELD_NAMES[0] == "OP6 R1" and FIELD_NAMES[5 * 21 + 16] == "OP1 OL" and FIELD_NAMES[134] == "ALG"
    for v in range(32):
        p, q = packed[v], params[v]
        assert q[134] == p[110] & 0x1F  # ALG
        assert q[135] == p[111] & 0x07 and q[136] == (p[111] >> 3) & 1  # FB, OKS
        assert q[143] == (p[116] >> 4) & 0x07 and q[142] == (p[116] >> 1) & 0x07  # LPMS, LFW
        for op in range(6):
            assert q[op * 21 + 18] == (p[op * 17 + 15] >> 1) & 0x1F  # FC
            assert q[op * 21 + 20] == (p[op * 17 + 12] >> 3) & 0x0F  # DET
            assert q[op * 21 + 12] == (p[op * 17 + 11] >> 2) & 0x03  # RC
        assert bytes(q[NAME_SLICE]) == bytes(p[118:128])


def test_pack_is_exact_inverse_on_a_clean_bank(bank: bytes) -> None:
    packed = np.frombuffer(bank[6:4102], np.uint8).reshape(32, 128)
    np.testing.assert_array_equal(pack_voices(unpack_voices(packed)), packed)


def test_single_voice_dump(cart: Path) -> None:
    res = read_sysex_file(cart / SINGLE, root=cart, strict=True)
    assert len(res.voices) == 1 and res.single_voice_dumps == 1 and res.warnings == []
    assert res.voices[0].name == "VOCODER 01" and res.voices[0].author == "!Instruments"


# ------------------------------------------------------------------------------------------------------
# Defects: lenient keeps what it can, strict names file, offset and problem
# ------------------------------------------------------------------------------------------------------


def test_truncated_bank(bank: bytes, bank_params: np.ndarray) -> None:
    data = bank[:1000]  # 994 data bytes: 7 complete packed voices
    res = parse_sysex_bytes(data, "cut.syx", strict=False)
    assert len(res.voices) == 7 and res.truncated == 1
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices]), bank_params[:7])
    assert any("truncated 32-voice bulk dump" in w and "7 complete voice(s) kept" in w for w in res.warnings)
    with pytest.raises(ImportFormatError, match=r"cut\.syx: truncated 32-voice bulk dump .* byte offset 1000"):
        parse_sysex_bytes(data, "cut.syx", strict=True)


def test_truncated_header_without_any_voice() -> None:
    res = parse_sysex_bytes(bytes.fromhex("f04300"), "stub.syx", strict=False)
    assert res.voices == [] and res.skipped_category == "truncated"
    with pytest.raises(ImportFormatError, match=r"stub\.syx: truncated .* byte offset 0"):
        parse_sysex_bytes(bytes.fromhex("f04300"), "stub.syx", strict=True)


def test_wrong_manufacturer(bank: bytes) -> None:
    data = bank[:1] + b"\x41" + bank[2:]  # Roland ID instead of Yamaha
    res = parse_sysex_bytes(data, "roland.syx", strict=False)
    assert res.voices == [] and "manufacturer 0x41" in (res.skipped_reason or "")
    with pytest.raises(ImportFormatError, match=r"roland\.syx: .*manufacturer 0x41.* byte offset 0"):
        parse_sysex_bytes(data, "roland.syx", strict=True)


def test_wrong_byte_count(bank: bytes, bank_params: np.ndarray) -> None:
    data = bank[:4] + b"\x10\x00" + bank[6:]  # a quirk of some old librarians
    res = parse_sysex_bytes(data, "count.syx", strict=False)
    assert len(res.voices) == 32 and any("byte count field 0x10 0x00" in w for w in res.warnings)
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices]), bank_params)
    with pytest.raises(ImportFormatError, match=r"count\.syx: byte count field .* byte offset 4"):
        parse_sysex_bytes(data, "count.syx", strict=True)


def test_bad_checksum(bank: bytes, bank_params: np.ndarray) -> None:
    good = bank[4102]
    data = bank[:4102] + bytes([good ^ 0x01]) + bank[4103:]
    res = parse_sysex_bytes(data, "sum.syx", strict=False)
    assert len(res.voices) == 32 and res.bad_checksums == 1
    assert res.warnings == [
        f"bad checksum in bank 0 (expected 0x{good:02x}, found 0x{good ^ 1:02x}) at byte offset 4102: voices kept"
    ]
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices]), bank_params)
    with pytest.raises(ImportFormatError, match=r"sum\.syx: bad checksum in bank 0 .* byte offset 4102"):
        parse_sysex_bytes(data, "sum.syx", strict=True)


def test_empty_file() -> None:
    res = parse_sysex_bytes(b"", "empty.syx", strict=False)
    assert res.voices == [] and res.skipped_reason == "empty file" and res.skipped_category == "empty"
    with pytest.raises(ImportFormatError, match=r"empty\.syx: empty file at byte offset 0"):
        parse_sysex_bytes(b"", "empty.syx", strict=True)


def test_non_voice_sysex_only() -> None:
    data = _dx7ii_performance_message()
    res = parse_sysex_bytes(data, "perf.syx", strict=False)
    assert res.voices == [] and res.skipped_category == "dx7ii_performance"
    assert res.skipped_reason is not None and res.skipped_reason.startswith("DX7II performance data (format 0x7e")
    with pytest.raises(ImportFormatError, match=r"perf\.syx: DX7II performance data .* byte offset 0"):
        parse_sysex_bytes(data, "perf.syx", strict=True)


def test_real_dx7ii_performance_file_is_skipped(cart: Path) -> None:
    res = read_sysex_file(cart / "Original Yamaha/DX7IIFD/DX7IIFDPerf.SYX")
    assert res.voices == [] and res.skipped_category == "dx7ii_performance"


def test_missing_end_byte(bank: bytes, bank_params: np.ndarray) -> None:
    data = bank[:-1]
    res = parse_sysex_bytes(data, "noend.syx", strict=False)
    assert len(res.voices) == 32 and res.missing_end_byte == 1 and res.bad_checksums == 0
    assert res.warnings == ["missing end byte F7 after bank 0 at byte offset 4103: voices kept"]
    with pytest.raises(ImportFormatError, match=r"noend\.syx: missing end byte F7 .* byte offset 4103"):
        parse_sysex_bytes(data, "noend.syx", strict=True)


def test_missing_end_byte_before_next_bank(bank: bytes, bank_b: bytes) -> None:
    res = parse_sysex_bytes(bank[:-1] + bank_b, "two.syx", strict=False)
    assert len(res.voices) == 64 and res.missing_end_byte == 1 and res.voices[32].name == "VOICE 32"


def test_stray_bit7_in_data_keeps_voices_and_flags_them(bank: bytes) -> None:
    data = bytearray(bank)
    data[6 + 128 * 3] |= 0x80  # OP6 R1 of voice 3
    data[4102] = sysex_checksum(bytes(data[6:4102]))  # bit 7 does not change the 7-bit checksum
    res = parse_sysex_bytes(bytes(data), "bit7.syx", strict=False)
    assert len(res.voices) == 32 and any("bit 7 set" in w for w in res.warnings)
    assert [i for i, v in enumerate(res.voices) if v.out_of_range] == [3]
    assert res.voices[3].out_of_range[0].startswith("OP6 R1=")
    with pytest.raises(ImportFormatError, match=r"bit7\.syx: 1 data bytes with bit 7 set .* byte offset 390"):
        parse_sysex_bytes(bytes(data), "bit7.syx", strict=True)


def test_stray_bytes_between_messages(bank: bytes, bank_b: bytes) -> None:
    data = bank + b"\x00\x00\x00" + bank_b
    res = parse_sysex_bytes(data, "gap.syx", strict=False)
    assert len(res.voices) == 64 and any("3 bytes outside any sysex message" in w for w in res.warnings)
    with pytest.raises(ImportFormatError, match=r"gap\.syx: 3 bytes outside .* byte offset 4104"):
        parse_sysex_bytes(data, "gap.syx", strict=True)


# ------------------------------------------------------------------------------------------------------
# Several messages and other layouts
# ------------------------------------------------------------------------------------------------------


def test_two_banks_in_one_file(bank: bytes, bank_b: bytes) -> None:
    res = parse_sysex_bytes(bank + bank_b, "two.syx", strict=True)
    assert len(res.voices) == 64 and res.banks == 2 and res.warnings == []
    assert [(v.bank_index, v.voice_index) for v in res.voices] == [(b, i) for b in (0, 1) for i in range(32)]
    assert res.voices[0].name == "VOICE 00" and res.voices[32].name == "VOICE 32"


def test_mixed_messages_keep_voices_and_report_the_rest(bank: bytes, bank_params: np.ndarray) -> None:
    single = write_voice_sysex(bank_params[5])
    data = _amem_message() + bank + single
    for strict in (False, True):  # a supplement next to voices is not a defect, even in strict mode
        res = parse_sysex_bytes(data, "mixed.syx", strict=strict)
        assert len(res.voices) == 33 and res.banks == 1 and res.single_voice_dumps == 1
        assert res.voices[32].bank_index == 1 and res.voices[32].voice_index == 0
        np.testing.assert_array_equal(res.voices[32].params, bank_params[5])
        assert res.warnings == [
            "ignored DX7II/TX802 additional voice parameters for 32 voices (AMEM, format 0x06) at byte offset 0"
        ]


def test_headerless_packed_bank(bank: bytes, bank_params: np.ndarray) -> None:
    res = parse_sysex_bytes(bank[6:4102], "raw.syx", strict=True)
    assert len(res.voices) == 32 and res.warnings == []
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices]), bank_params)


def test_unpacked_155_byte_voices(bank_params: np.ndarray) -> None:
    raw = bank_params.tobytes()  # 32 x 155 = 4960 bytes without framing
    res = parse_sysex_bytes(raw, "unpacked.syx", strict=True)
    assert len(res.voices) == 32
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices]), bank_params)
    framed = b"".join(write_voice_sysex(p) for p in bank_params)  # 32 single-voice dumps in a row
    res = parse_sysex_bytes(framed, "singles.syx", strict=True)
    assert len(res.voices) == 32 and res.single_voice_dumps == 32
    assert [v.bank_index for v in res.voices] == list(range(32))
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices]), bank_params)


def test_unrecognised_data() -> None:
    res = parse_sysex_bytes(b"hello world", "text.syx", strict=False)
    assert res.skipped_reason == "unrecognised data of 11 bytes" and res.skipped_category == "unrecognised"
    with pytest.raises(ImportFormatError, match=r"text\.syx: unrecognised data of 11 bytes at byte offset 0"):
        parse_sysex_bytes(b"hello world", "text.syx", strict=True)


# ------------------------------------------------------------------------------------------------------
# Values, voices, writing
# ------------------------------------------------------------------------------------------------------


def test_out_of_range_fields(bank_params: np.ndarray) -> None:
    p = bank_params[0].copy()
    assert out_of_range_fields(p) == []
    p[3 * 21 + 18] = 40  # block 3 is OP3
    p[134] = 33
    assert out_of_range_fields(p) == ["OP3 FC=40>31", "ALG=33>31"]
    assert MAX_VALUES[144] == 48 and FIELD_NAMES[144] == "TRNSP"


def test_voice_is_frozen_and_read_only(bank_params: np.ndarray) -> None:
    v = DX7Voice(bank_params[0], "VOICE 00", "a.syx", 0, 0, "")
    with pytest.raises(AttributeError):
        v.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        v.params[0] = 1
    same = DX7Voice(bank_params[0].copy(), "VOICE 00", "a.syx", 0, 0, "")
    assert v == same and hash(v) == hash(same) and len({v, same}) == 1
    assert v != DX7Voice(bank_params[0], "VOICE 00", "b.syx", 0, 0, "") and v.key == same.key


def test_write_voice_sysex(bank_params: np.ndarray) -> None:
    data = write_voice_sysex(bank_params[2], "MY VOICE")
    assert len(data) == 163 and data[:6] == bytes.fromhex("f0430000011b")
    assert data[-1] == 0xF7 and data[161] == sysex_checksum(data[6:161])
    (voice,) = parse_sysex_bytes(data, "one.syx", strict=True).voices
    assert voice.name == "MY VOICE"
    np.testing.assert_array_equal(voice.params[: NAME_SLICE.start], bank_params[2][: NAME_SLICE.start])
    with pytest.raises(ValueError, match="at most 10 characters"):
        write_voice_sysex(bank_params[2], "A NAME TOO LONG")
    bad = bank_params[2].copy()
    bad[134] = 40
    with pytest.raises(ValueError, match="ALG=40>31"):
        write_voice_sysex(bad, "BAD")
    assert len(write_voice_sysex(bad, "BAD", allow_out_of_range=True)) == 163


def test_write_bank_round_trip(bank_params: np.ndarray, bank: bytes) -> None:
    voices = parse_sysex_bytes(bank, "mine.syx").voices
    np.testing.assert_array_equal(np.frombuffer(write_bank_sysex(voices), np.uint8), np.frombuffer(bank, np.uint8))

    data = write_bank_sysex(list(bank_params[:10]))
    assert len(data) == 4104 and data[:6] == bytes.fromhex("f04300092000") and data[-1] == 0xF7
    assert data[4102] == (-sum(data[6:4102])) & 0x7F
    res = parse_sysex_bytes(data, "mine.syx", strict=True)  # strict: checksum and framing are valid
    assert len(res.voices) == 32
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices[:10]]), bank_params[:10])
    assert all(v.name == "INIT VOICE" and v.is_init for v in res.voices[10:])
    np.testing.assert_array_equal(res.voices[31].params, init_voice_params())
    assert out_of_range_fields(init_voice_params()) == []
    with pytest.raises(ValueError, match="holds 32 voices"):
        write_bank_sysex([*bank_params, bank_params[0]])


def test_real_bank_round_trips_byte_for_byte(rom1a: bytes) -> None:
    voices = parse_sysex_bytes(rom1a, "rom1a.syx", strict=True).voices
    assert write_bank_sysex(voices) == rom1a


def test_pack_rejects_values_that_do_not_fit(bank_params: np.ndarray) -> None:
    p = bank_params[0].copy()
    p[20] = 16  # OP6 DET has 4 bits
    with pytest.raises(ValueError, match="OP6 DET=16>15"):
        pack_voices(p)


# ------------------------------------------------------------------------------------------------------
# DX7 voices -> Dexed plugin vectors, checked against dexed-py's own loader
# ------------------------------------------------------------------------------------------------------


def test_plugin_vector_holds_each_known_value_under_its_dexed_name(patches: list[Patch], spec) -> None:
    """Value v of a field with maximum m sits at v / m under the field's Dexed parameter name.

    Names and values come from dexed-py's Patch attributes, not from this package's offset table: a wrong
    offset, a swapped pair of fields or a reversed operator order puts some value under another name.
    """
    names = [p.name for p in spec.params]
    assert set(named_values(patches[0])) == set(names) - DEXED_CONTROLS  # every voice field has a Dexed name
    for patch in patches:
        plugin = dx7_voice_to_plugin(vced(patch), spec)
        for name, (value, maximum) in named_values(patch).items():
            assert plugin[names.index(name)] == pytest.approx(value / maximum, abs=1e-12), (patch.name, name)
        for name in DEXED_CONTROLS:  # plugin-level controls stay at the spec's (neutral) defaults
            assert plugin[names.index(name)] == spec.params[names.index(name)].default


def _our_render(params: np.ndarray, spec, engine) -> np.ndarray:
    return engine.render(dx7_voice_to_plugin(params, spec))


def test_in_memory_voices_render_like_dexed_py_loading_the_bank(tmp_path: Path, bank: bytes, spec) -> None:
    """Our path (reader -> dx7_voice_to_plugin -> dexed engine) vs dexed-py's (Patch.load_bank -> load_patch)."""
    settings = RenderSettings()
    engine = make_engine(spec, settings)
    (tmp_path / "mine.syx").write_bytes(bank)
    theirs = Patch.load_bank(str(tmp_path / "mine.syx"))
    for voice, patch in zip(parse_sysex_bytes(bank, "mine.syx", strict=True).voices, theirs, strict=True):
        ours = _our_render(voice.params, spec, engine)
        ref = dexed_py_render(patch, settings.sample_rate, settings.note, settings.velocity, settings.note_duration,
                              settings.duration)[: settings.n_samples]
        np.testing.assert_array_equal(ours, ref, err_msg=voice.name)
        assert np.sqrt(np.mean(ref.astype(np.float64) ** 2)) > 0.02, voice.name  # a real sound, not silence


REAL_BANKS = [ROM1A, ROM1B, "Original Yamaha/DX7 ROM2/ROM2A.syx", "Original Yamaha/DX7 ROM4/ROM4B.syx",
              "Big Mamma/BIGMAMMA018.SYX", "Aminet/033.syx", "Bo Tomlyn/BoTomlyn_Analog1/Analog 1 - A.SYX",
              "Charles Copp/CHUKSYNT.SYX"]  # 256 voices from clean 4104-byte dumps of several authors


@pytest.mark.parametrize("bank_file", REAL_BANKS)
def test_cartridge_voices_render_like_dexed_py_loading_them(cart: Path, bank_file: str, spec) -> None:
    path = cart / bank_file
    if not path.exists():
        pytest.skip(f"{bank_file} not in this copy of the collection")
    settings = RenderSettings()
    engine = make_engine(spec, settings)
    res = read_sysex_file(path, root=cart, strict=True)
    theirs = Patch.load_bank(str(path))
    assert len(res.voices) == len(theirs) == 32
    audible = 0
    for voice, patch in zip(res.voices, theirs, strict=True):
        assert not voice.out_of_range, voice.name  # dexed-py rescales out-of-range values; ours flags them
        ours = _our_render(voice.params, spec, engine)
        ref = dexed_py_render(patch, settings.sample_rate, settings.note, settings.velocity, settings.note_duration,
                              settings.duration)[: settings.n_samples]
        np.testing.assert_array_equal(ours, ref, err_msg=f"{bank_file} voice {voice.voice_index} {voice.name}")
        audible += np.sqrt(np.mean(ref.astype(np.float64) ** 2)) > 0.01
    assert audible >= 28


# ------------------------------------------------------------------------------------------------------
# Folder scans
# ------------------------------------------------------------------------------------------------------


def test_scan_small_tree(tmp_path: Path, bank: bytes, bank_b: bytes) -> None:
    (tmp_path / "Zed").mkdir()
    (tmp_path / "Alice" / "sub").mkdir(parents=True)
    (tmp_path / "Zed" / "b.SYX").write_bytes(bank_b)
    (tmp_path / "Alice" / "sub" / "a.syx").write_bytes(bank)
    (tmp_path / "Alice" / "copy.syx").write_bytes(bank[:4102] + bytes([bank[4102] ^ 1]) + b"\xf7")
    (tmp_path / "top.syx").write_bytes(write_bank_sysex([]))  # 32 INIT VOICE slots
    (tmp_path / "empty.syx").write_bytes(b"")
    (tmp_path / "perf.syx").write_bytes(_dx7ii_performance_message())
    (tmp_path / "notes.txt").write_text("not a sysex file")
    rep = scan_cartridges(tmp_path)
    assert rep.files == 6 and rep.files_with_voices == 4
    assert rep.files_skipped == {"empty": 1, "dx7ii_performance": 1}
    assert set(rep.skipped) == {"empty.syx", "perf.syx"}
    assert rep.banks == 4 and rep.bad_checksums == 1 and rep.missing_end_byte == 0
    assert list(rep.warnings) == ["Alice/copy.syx"]
    assert rep.voices_total == 128 and rep.init_voices == 32 and rep.voices_out_of_range == 0
    assert rep.unique_all == 65 and rep.unique == 64  # ROM1A twice; the 32 INIT slots are one sound
    assert [v.file for v in rep.voices[::32]] == ["Alice/copy.syx", "Alice/sub/a.syx", "Zed/b.SYX", "top.syx"]
    assert [v.author for v in rep.voices[::32]] == ["Alice", "Alice", "Zed", ""]
    clean = rep.clean_voices()
    assert len(clean) == 64 and clean[0].file == "Alice/copy.syx"
    assert "128 voices" in rep.summary()


def test_scan_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PluginNotFoundError, match=r"nope.*handcrafted\.dexed\.source_dir"):
        scan_cartridges(missing)


def test_scan_folder_without_syx(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ImportFormatError, match=str(tmp_path)):
        scan_cartridges(tmp_path)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PluginNotFoundError, match="sysex file not found"):
        read_sysex_file(tmp_path / "gone.syx")


# ------------------------------------------------------------------------------------------------------
# The whole collection
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_scan(cart: Path) -> ScanReport:
    return scan_cartridges(cart)


def _dump_defects(data: bytes) -> dict[str, int]:
    """Defects of the Yamaha voice dumps in a file, counted with a few lines of our own.

    A dump starts ``F0 43 0n`` (n: MIDI channel, high nibble 0 = bulk dump) then the format, 0x09 (32 voices,
    4096 bytes) or 0x00 (one voice, 155 bytes), two byte-count bytes, the payload, the checksum (the 7-bit two's
    complement of the payload sum) and F7. The checksum byte as stored must equal it: a stored byte with bit 7
    set is not MIDI data, hence bad even when its low 7 bits match.
    """
    out = {"bad_checksum": 0, "bad_checksum_bit7": 0, "missing_end_byte": 0, "truncated": 0}
    start = data.find(b"\xf0\x43")
    while start != -1:
        if start + 3 < len(data) and data[start + 2] < 0x10 and data[start + 3] in (0x00, 0x09):
            c = start + 6 + (4096 if data[start + 3] == 0x09 else 155)  # where the checksum belongs
            if c >= len(data):
                out["truncated"] += 1  # payload cut short (or the checksum and end byte missing)
            elif c + 1 < len(data) and data[c + 1] == 0xF7:
                expected = (-sum(data[start + 6 : c])) & 0x7F
                if data[c] != expected:
                    out["bad_checksum"] += 1
                    out["bad_checksum_bit7"] += data[c] & 0x7F == expected
            else:
                out["missing_end_byte"] += 1
        start = data.find(b"\xf0\x43", start + 1)
    return out


@pytest.mark.slow
def test_full_collection_counts(full_scan: ScanReport, cart: Path) -> None:
    rep = full_scan
    syx = sorted(os.path.relpath(os.path.join(d, f), cart) for d, _, fs in os.walk(cart) for f in fs
                 if f.lower().endswith(".syx"))
    # README: 3,875 files (the folder holds 3,874 .syx files plus LICENSE).
    assert rep.files == len(syx) and 3_850 <= rep.files <= 3_880
    # every file either gave voices or is listed as skipped, never both
    with_voices = {v.file for v in rep.voices}
    assert with_voices.isdisjoint(rep.skipped) and with_voices | set(rep.skipped) == set(syx)
    assert rep.files_with_voices == len(with_voices) >= rep.files - 30
    defects = {k: 0 for k in ("bad_checksum", "bad_checksum_bit7", "missing_end_byte", "truncated")}
    for f in syx:
        for k, n in _dump_defects((cart / f).read_bytes()).items():
            defects[k] += n
    assert rep.bad_checksums == defects["bad_checksum"] > 100  # 132 in Dexed_cart 1.0 ...
    bit7 = sum("bad checksum" in w and "bit 7 set, low 7 bits match" in w
               for ws in rep.warnings.values() for w in ws)
    assert bit7 == defects["bad_checksum_bit7"] > 100  # ... 112 of them only have bit 7 set on the checksum byte
    assert rep.missing_end_byte == defects["missing_end_byte"] == 1
    assert rep.truncated == defects["truncated"] == 1
    assert 120_000 <= rep.voices_total <= 122_000  # README: about 121k
    assert 30_300 <= rep.unique_all <= 30_900  # README: about 30.6k unique by values, names ignored
    # README: about 27.7k once out-of-range and INIT VOICE are dropped. This reader also flags pitch-EG
    # values above 99 (dexed-py rescales them into range instead), which drops ~170 more voices.
    assert 27_200 <= rep.unique <= 28_000
    assert rep.unique == len(rep.clean_voices())
    files = [v.file for v in rep.voices]
    assert files == sorted(files)  # deterministic, sorted path order


@pytest.mark.slow
def test_pack_unpack_identity_on_all_real_voices(full_scan: ScanReport) -> None:
    params = np.stack([v.params for v in full_scan.voices])
    np.testing.assert_array_equal(unpack_voices(pack_voices(params)), params)
