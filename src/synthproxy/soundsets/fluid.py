"""A minimal ctypes binding to libfluidsynth that renders single notes from a clean synth state.

Why not pyfluidsynth or the ``fluidsynth`` command line (measured with FluidSynth 2.3.1, FluidR3_GM, 16 kHz,
one core; see the module docstring of :mod:`synthproxy.soundsets.gm`):

* pyfluidsynth's ``Synth.get_samples`` gives only dithered 16-bit stereo, and its dither position carries over
  from note to note, so a note's samples depend on what was rendered before it (a resumed chunk would differ
  from a full run); resetting the synth between notes (``system_reset``) still leaves voice state behind that
  changes the first 64-sample block of the next note.
* ``fluidsynth -F`` is clean and deterministic when run once per note, but each run reloads the 148 MB
  SoundFont (~0.37 s a note); many notes in one MIDI file render fast but share the leaking voice state above.

Here the SoundFont is loaded once into a *host* synth and lent, for each note, to a brand-new synth
(``fluid_synth_add_sfont`` / ``fluid_synth_remove_sfont``), which renders 32-bit float samples with
``fluid_synth_write_float``: every note starts from a freshly constructed synth, is bit-identical to a note
rendered by a new process, and does not depend on the order of rendering. Reverb and chorus are off; only
MIDI channel 0 and bank 0 are used (never the drum channel 9).

The library is Debian's ``libfluidsynth3`` (pulled in by the ``fluidsynth`` package), API version 2.x.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from pathlib import Path

import numpy as np

from synthproxy.errors import ConfigError, PluginNotFoundError

DEBIAN_PACKAGES = "fluidsynth fluid-soundfont-gm"
INSTALL_HINT = f"install Debian's {DEBIAN_PACKAGES} (apt-get install -y --no-install-recommends {DEBIAN_PACKAGES})"
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
LIBRARY_NAMES = ("libfluidsynth.so.3", "fluidsynth")

_FLUID_OK = 0
_FLUID_FAILED = -1
_LOG_LEVELS_SILENCED = (2, 3, 4)  # FLUID_WARN, FLUID_INFO, FLUID_DBG: per-note synths warn about unset presets
INTERPOLATIONS = {"none": 0, "linear": 1, "4th": 4, "7th": 7}

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


def _declare(lib: ctypes.CDLL) -> None:
    vp, ci, cd, cs = ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_char_p
    protos: dict[str, tuple[type | None, list[type]]] = {
        "new_fluid_settings": (vp, []),
        "delete_fluid_settings": (None, [vp]),
        "fluid_settings_setint": (ci, [vp, cs, ci]),
        "fluid_settings_setnum": (ci, [vp, cs, cd]),
        "new_fluid_synth": (vp, [vp]),
        "delete_fluid_synth": (None, [vp]),
        "fluid_synth_sfload": (ci, [vp, cs, ci]),
        "fluid_synth_get_sfont_by_id": (vp, [vp, ci]),
        "fluid_synth_add_sfont": (ci, [vp, vp]),
        "fluid_synth_remove_sfont": (ci, [vp, vp]),
        "fluid_synth_program_select": (ci, [vp, ci, ci, ci, ci]),
        "fluid_synth_set_interp_method": (ci, [vp, ci, ci]),
        "fluid_synth_noteon": (ci, [vp, ci, ci, ci]),
        "fluid_synth_noteoff": (ci, [vp, ci, ci]),
        "fluid_synth_write_float": (ci, [vp, ci, vp, ci, ci, vp, ci, ci]),
        "fluid_version_str": (cs, []),
        "fluid_set_log_function": (vp, [ci, vp, vp]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def load_library(path: str | None = None) -> ctypes.CDLL:
    """Path of a libfluidsynth (None: Debian's ``libfluidsynth.so.3``) in, the loaded library out.

    Raises a one-line :class:`PluginNotFoundError` naming the Debian packages when it is not installed.
    """
    global _lib
    with _lib_lock:
        if _lib is not None and path is None:
            return _lib
        candidates = [path] if path else [*LIBRARY_NAMES, ctypes.util.find_library("fluidsynth")]
        lib = None
        for name in candidates:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            raise PluginNotFoundError(f"FluidSynth library (libfluidsynth) not found: {INSTALL_HINT}")
        try:
            _declare(lib)
        except AttributeError as exc:
            raise PluginNotFoundError(f"libfluidsynth too old (FluidSynth 2.x needed, {exc}): {INSTALL_HINT}") from None
        for level in _LOG_LEVELS_SILENCED:
            lib.fluid_set_log_function(level, None, None)
        if path is None:
            _lib = lib
        return lib


def fluidsynth_version(lib: ctypes.CDLL | None = None) -> str:
    """Nothing in, the runtime version of libfluidsynth out (e.g. ``"2.3.1"``)."""
    lib = lib or load_library()
    return lib.fluid_version_str().decode()


def check_soundfont(path: Path | str) -> Path:
    """A SoundFont path in, the same path out once it is a readable file; else a one-line error with the fix."""
    path = Path(path)
    if not path.is_file():
        raise PluginNotFoundError(f"SoundFont not found: {path}: {INSTALL_HINT}")
    return path


class NoteRenderer:
    """Renders one note at a time from a fresh FluidSynth synth that borrows a SoundFont loaded once.

    ``NoteRenderer(soundfont, sample_rate, gain)`` in; :meth:`render` gives mono float32 clips. Not thread-safe:
    use one renderer per thread or process. Close it (or use it as a context manager) to free the SoundFont.
    """

    def __init__(self, soundfont: Path | str = DEFAULT_SOUNDFONT, sample_rate: int = 16000, gain: float = 0.5,
                 interpolation: str = "4th", polyphony: int = 64, library: str | None = None) -> None:
        if interpolation not in INTERPOLATIONS:
            raise ConfigError(f"unknown FluidSynth interpolation '{interpolation}'; valid: {list(INTERPOLATIONS)}")
        if not 8000 <= sample_rate <= 96000:
            raise ConfigError(f"FluidSynth sample rate must be within 8000..96000 Hz, got {sample_rate}")
        if not 0 < gain <= 10:
            raise ConfigError(f"FluidSynth gain must be within (0, 10], got {gain}")
        self.soundfont = check_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self.gain = float(gain)
        self._interp = INTERPOLATIONS[interpolation]
        self._lib = load_library(library)
        lib = self._lib
        self._settings = lib.new_fluid_settings()
        for key, value in (("synth.reverb.active", 0), ("synth.chorus.active", 0), ("synth.polyphony", polyphony),
                           ("synth.cpu-cores", 1), ("synth.midi-channels", 16), ("synth.audio-channels", 1),
                           ("synth.lock-memory", 0), ("synth.dynamic-sample-loading", 0), ("synth.verbose", 0)):
            lib.fluid_settings_setint(self._settings, key.encode(), value)
        lib.fluid_settings_setnum(self._settings, b"synth.sample-rate", float(self.sample_rate))
        lib.fluid_settings_setnum(self._settings, b"synth.gain", self.gain)
        self._host = lib.new_fluid_synth(self._settings)
        if not self._host:
            raise PluginNotFoundError(f"FluidSynth could not create a synth: {INSTALL_HINT}")
        sfid = lib.fluid_synth_sfload(self._host, str(self.soundfont).encode(), 0)
        if sfid == _FLUID_FAILED:
            self.close()
            raise PluginNotFoundError(f"FluidSynth could not load the SoundFont {self.soundfont}: {INSTALL_HINT}")
        self._sfont = lib.fluid_synth_get_sfont_by_id(self._host, sfid)

    @property
    def version(self) -> str:
        """The libfluidsynth runtime version."""
        return fluidsynth_version(self._lib)

    def render(self, program: int, pitch: int, velocity: int, note_samples: int, total_samples: int,
               bank: int = 0) -> np.ndarray:
        """GM program (0..127), MIDI pitch and velocity, note-on length and clip length in samples in;
        ``(total_samples,)`` float32 mono (mean of left and right) out. The note is released after
        ``note_samples`` and the clip ends ``total_samples`` after the note-on, whatever still sounds."""
        if self._host is None:
            raise ConfigError("NoteRenderer is closed")
        if not (0 <= program < 128 and 0 <= pitch < 128 and 1 <= velocity < 128):
            raise ConfigError(f"MIDI values out of range: program {program}, pitch {pitch}, velocity {velocity}")
        if not 0 < note_samples <= total_samples:
            raise ConfigError(f"note length {note_samples} must be within 1..{total_samples} samples")
        lib = self._lib
        synth = lib.new_fluid_synth(self._settings)
        if not synth:
            raise PluginNotFoundError(f"FluidSynth could not create a synth: {INSTALL_HINT}")
        out = np.zeros((total_samples, 2), dtype=np.float32)
        try:
            sfid = lib.fluid_synth_add_sfont(synth, self._sfont)
            if sfid == _FLUID_FAILED:
                raise PluginNotFoundError(f"FluidSynth could not attach the SoundFont {self.soundfont}")
            try:
                if lib.fluid_synth_program_select(synth, 0, sfid, bank, program) != _FLUID_OK:
                    raise ConfigError(f"SoundFont {self.soundfont} has no preset bank {bank} program {program}")
                lib.fluid_synth_set_interp_method(synth, -1, self._interp)
                lib.fluid_synth_noteon(synth, 0, pitch, velocity)
                self._write(synth, out[:note_samples])
                lib.fluid_synth_noteoff(synth, 0, pitch)
                if total_samples > note_samples:
                    self._write(synth, out[note_samples:])
            finally:
                lib.fluid_synth_remove_sfont(synth, self._sfont)  # lent, not owned: deleting must not free it
        finally:
            lib.delete_fluid_synth(synth)
        return out.mean(axis=1, dtype=np.float32)

    def _write(self, synth: int, view: np.ndarray) -> None:
        # view: (n, 2) C-contiguous slice of the output; left at offset 0, right at 1, stride 2 floats
        ptr = view.ctypes.data
        if self._lib.fluid_synth_write_float(synth, len(view), ptr, 0, 2, ptr, 1, 2) != _FLUID_OK:
            raise PluginNotFoundError("FluidSynth failed to render audio")

    def close(self) -> None:
        """Free the host synth (and the SoundFont it owns) and the settings; idempotent."""
        lib = self._lib
        if getattr(self, "_host", None):
            lib.delete_fluid_synth(self._host)
        self._host = None
        if getattr(self, "_settings", None):
            lib.delete_fluid_settings(self._settings)
        self._settings = None

    def __enter__(self) -> NoteRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
