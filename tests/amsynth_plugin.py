"""Test helper: amSynth's plugin loading a preset *itself*, the reference for the bank conversion.

The workflow never needs this: it sets normalised values with ``set_parameter``. The tests use it to check
that :mod:`synthproxy.presets.formats.amsynth_bank` converts every preset exactly as the plugin does.

How the plugin loads a preset itself (DawDreamer 0.9 has no program-change API, and amSynth's
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

"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthproxy.errors import ImportFormatError
from synthproxy.presets.formats.amsynth_bank import (
    _PRESET_PREFIX,
    AMSYNTH_PARAMETERS,
    AMSYNTH_PLUGIN,
    FACTORY_BANKS_DIR,
    HEADER,
    PRESETS_PER_BANK,
    AmsynthPreset,
)
from synthproxy.synths.engines import RenderSettings, quiet_native_output


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
    with quiet_native_output():
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
        with quiet_native_output():
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
