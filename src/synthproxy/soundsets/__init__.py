"""Out-of-domain sound sets: real NSynth notes, or an NSynth-like set rendered from General MIDI with FluidSynth.

* :mod:`synthproxy.soundsets.nsynth` reads the nsynth-valid folder layout;
* :mod:`synthproxy.soundsets.gm` lists the melodic GM programs, maps them to NSynth families and renders notes
  through :mod:`synthproxy.soundsets.fluid` (a small ctypes binding to Debian's libfluidsynth);
* :mod:`synthproxy.soundsets.build` plans, splits and writes either set into a Zarr audio store
  (:mod:`synthproxy.data.audio_store`) and summarises it.
"""

from synthproxy.soundsets.build import (
    DEFAULT_SETTINGS,
    assign_splits,
    build_out_of_domain_set,
    resolve_settings,
    summary_table,
)

__all__ = ["DEFAULT_SETTINGS", "assign_splits", "build_out_of_domain_set", "resolve_settings", "summary_table"]
