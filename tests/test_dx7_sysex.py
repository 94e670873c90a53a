"""Tests of the DX7 sysex reader/writer on real banks from the shared Dexed_cart folder.

Defective inputs are made in memory from real banks (truncated, wrong header, bad checksum, ...), so the
tests exercise the same bytes a user's files contain without copying data into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from synthproxy.errors import ImportFormatError, PluginNotFoundError
from synthproxy.presets.formats.dx7_sysex import (
    FIELD_NAMES,
    MAX_VALUES,
    NAME_SLICE,
    DX7Voice,
    ScanReport,
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

SHARED = Path(os.environ.get("SYNTHPROXY_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
CART = SHARED / "dx7" / "dexed_cart"

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
def bank(cart: Path) -> bytes:
    return (cart / ROM1A).read_bytes()


@pytest.fixture(scope="module")
def bank_b(cart: Path) -> bytes:
    return (cart / ROM1B).read_bytes()


@pytest.fixture(scope="module")
def bank_params(bank: bytes) -> np.ndarray:
    return np.stack([v.params for v in parse_sysex_bytes(bank, "rom1a.syx", strict=True).voices])


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


def test_good_bank_is_read_without_warnings(cart: Path, bank: bytes) -> None:
    assert len(bank) == 4104 and bank[:6] == bytes.fromhex("f04300092000") and bank[-1] == 0xF7
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


def test_unpacking_agrees_with_dexed_py(bank: bytes) -> None:
    """dexed-py's unpacker (a port of Dexed's) is an independent oracle for clean, in-range voices."""
    from dexed.patch import Patch

    ours = unpack_voices(bank[6:4102])
    for i in range(32):
        theirs = np.frombuffer(bytes(Patch._unpack_voice(bank[6 + 128 * i : 6 + 128 * (i + 1)]))[:155], np.uint8)
        np.testing.assert_array_equal(ours[i], theirs, err_msg=f"voice {i}")


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
    assert len(res.voices) == 64 and res.missing_end_byte == 1 and res.voices[32].name == "PIANO   4"


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
    assert res.voices[0].name == "BRASS   1" and res.voices[32].name == "PIANO   4"


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
    v = DX7Voice(bank_params[0], "BRASS   1", "a.syx", 0, 0, "")
    with pytest.raises(AttributeError):
        v.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        v.params[0] = 1
    same = DX7Voice(bank_params[0].copy(), "BRASS   1", "a.syx", 0, 0, "")
    assert v == same and hash(v) == hash(same) and len({v, same}) == 1
    assert v != DX7Voice(bank_params[0], "BRASS   1", "b.syx", 0, 0, "") and v.key == same.key


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
    voices = parse_sysex_bytes(bank, "rom1a.syx").voices
    np.testing.assert_array_equal(np.frombuffer(write_bank_sysex(voices), np.uint8), np.frombuffer(bank, np.uint8))

    data = write_bank_sysex(list(bank_params[:10]))
    assert len(data) == 4104 and data[:6] == bytes.fromhex("f04300092000") and data[-1] == 0xF7
    res = parse_sysex_bytes(data, "mine.syx", strict=True)  # strict: checksum and framing are valid
    assert len(res.voices) == 32
    np.testing.assert_array_equal(np.stack([v.params for v in res.voices[:10]]), bank_params[:10])
    assert all(v.name == "INIT VOICE" and v.is_init for v in res.voices[10:])
    np.testing.assert_array_equal(res.voices[31].params, init_voice_params())
    assert out_of_range_fields(init_voice_params()) == []
    with pytest.raises(ValueError, match="holds 32 voices"):
        write_bank_sysex([*bank_params, bank_params[0]])


def test_pack_rejects_values_that_do_not_fit(bank_params: np.ndarray) -> None:
    p = bank_params[0].copy()
    p[20] = 16  # OP6 DET has 4 bits
    with pytest.raises(ValueError, match="OP6 DET=16>15"):
        pack_voices(p)


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


@pytest.mark.slow
def test_full_collection_counts(full_scan: ScanReport) -> None:
    rep = full_scan
    # README: 3,875 files (the folder holds 3,874 .syx files plus LICENSE).
    assert 3_850 <= rep.files <= 3_880
    assert rep.files_with_voices >= rep.files - 30
    assert sum(rep.files_skipped.values()) == rep.files - rep.files_with_voices
    assert rep.bad_checksums == 132
    assert rep.missing_end_byte == 1
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
