"""Real engines: audible, deterministic renders with no state leaking from one preset to the next."""

from __future__ import annotations

import numpy as np
import pytest

from synthproxy.errors import AudioError, PluginNotFoundError
from synthproxy.presets.sampling import PresetSampler
from synthproxy.synths.engines import RenderSettings, check_audio, make_engine, rms
from synthproxy.synths.spec import load_spec

SETTINGS = RenderSettings(sample_rate=22050)


def _vec(spec, **named):
    v = spec.defaults_plugin_vector()
    names = [p.name for p in spec.params]
    for k, x in named.items():
        v[names.index(k)] = x
    return v


def test_dexed_renders_sound():
    spec = load_spec("config/synths/dexed.yaml")
    audio = make_engine(spec, SETTINGS).render(spec.defaults_plugin_vector())
    assert audio.shape == (SETTINGS.n_samples,) and audio.dtype == np.float32
    assert 0.01 < rms(audio) < 1.0
    assert rms(audio[-SETTINGS.sample_rate // 2 :]) < rms(audio[: SETTINGS.sample_rate])  # note released at 2 s


def test_amsynth_renders_sound(amsynth_plugin):
    spec = load_spec("config/synths/amsynth.yaml")
    audio = make_engine(spec, SETTINGS).render(spec.defaults_plugin_vector())
    assert audio.shape == (SETTINGS.n_samples,) and 0.01 < rms(audio) < 1.0


@pytest.mark.parametrize("synth", ["dexed", "amsynth"])
def test_render_does_not_depend_on_previous_presets(synth, amsynth_plugin):
    """Render B, then a long-tailed preset A, then B again: B must be identical, sample for sample."""
    spec = load_spec(f"config/synths/{synth}.yaml")
    engine = make_engine(spec, SETTINGS)
    if synth == "amsynth":
        tail = _vec(spec, reverb_wet=1.0, reverb_roomsize=1.0, amp_release=1.0, lfo_freq=0.7, amp_mod_amount=0.9)
    else:
        tail = _vec(spec, **{f"op{i}_eg_rate_4": 0.45 for i in range(1, 7)}, lfo_pm_depth=0.9, feedback=1.0)
    b = PresetSampler(spec, 0, "leak").sample(np.arange(3))
    first = [engine.render_preset(p) for p in b]
    engine.render(tail)
    again = [engine.render_preset(p) for p in b]
    for x, y in zip(first, again, strict=True):
        assert x.tobytes() == y.tobytes()
    assert any(rms(x) > 0 for x in first)


def test_missing_plugin_names_path_and_config_key(tmp_path):
    spec = load_spec("config/synths/amsynth.yaml")
    with pytest.raises(PluginNotFoundError) as err:
        make_engine(spec, SETTINGS, plugin_path=str(tmp_path / "nope.so"))
    assert "nope.so" in str(err.value) and "synths.amsynth.plugin" in str(err.value)


def test_non_finite_and_silent_audio_are_rejected():
    with pytest.raises(AudioError, match="NaN/inf samples \\(first at sample 3\\)"):
        check_audio(np.array([0, 0.1, 0.2, np.nan], dtype=np.float32), "clip")
    with pytest.raises(AudioError, match="silent"):
        check_audio(np.zeros(100, dtype=np.float32), "clip", min_rms=0.01)
    check_audio(np.full(100, 0.5, dtype=np.float32), "clip", min_rms=0.01)


# ---- the forked VST engine: exact, isolated, and it cleans up ------------------------------------
_FRESH_PROCESS = """
import sys, numpy as np
from synthproxy.synths.engines import RenderSettings, VSTEngine
from synthproxy.synths.spec import load_spec
spec = load_spec("config/synths/amsynth.yaml")
vec = np.frombuffer(bytes.fromhex(sys.argv[1]), dtype=np.float64)
sys.stdout.buffer.write(VSTEngine(spec, RenderSettings(sample_rate=22050), sys.argv[2]).render(vec).tobytes())
"""


def _fresh_process_render(vec, plugin):
    """The reference: the first render of a fresh instance in a fresh process (no plugin-global state yet)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _FRESH_PROCESS, vec.astype(np.float64).tobytes().hex(), plugin],
                         capture_output=True, check=True, timeout=120)
    return np.frombuffer(out.stdout, dtype=np.float32)


def test_forked_vst_renders_exactly_a_fresh_process_even_with_noise(amsynth_plugin):
    from synthproxy.synths.engines.forked import ForkingVSTEngine

    spec = load_spec("config/synths/amsynth.yaml")
    leaky = _vec(spec, reverb_wet=1.0, reverb_roomsize=1.0, amp_release=1.0, lfo_freq=0.7, amp_mod_amount=0.9)
    noise = _vec(spec, osc1_waveform=0.75, osc2_waveform=1.0, amp_release=0.6)  # amSynth's process-wide RNG
    plain = PresetSampler(spec, 3, "fork").sample(np.arange(1))
    a = spec.to_plugin(plain)[0]
    engine = make_engine(spec, SETTINGS, amsynth_plugin)
    assert isinstance(engine, ForkingVSTEngine)
    try:
        first = [engine.render(v) for v in (a, noise, leaky, noise, a)]
        pid = engine.zygote_pid
    finally:
        engine.close()
    for got, ref in ((first[0], a), (first[1], noise), (first[3], noise), (first[4], a)):
        assert got.tobytes() == _fresh_process_render(ref, amsynth_plugin).tobytes()
    import os

    with pytest.raises(ProcessLookupError):  # close() stopped and reaped the zygote
        os.kill(pid, 0)


def test_forked_vst_timeout_and_missing_parameter_are_clear_errors(amsynth_plugin, tmp_path):
    import dataclasses

    from synthproxy.errors import RenderError, SpecError
    from synthproxy.synths.engines.forked import ForkingVSTEngine

    spec = load_spec("config/synths/amsynth.yaml")
    with ForkingVSTEngine(spec, SETTINGS, amsynth_plugin, timeout=0.001) as engine, \
            pytest.raises(RenderError, match="exceeded the timeout"):
        engine.render(spec.defaults_plugin_vector())
    renamed = dataclasses.replace(spec.params[0], name="no_such_knob")
    bad = dataclasses.replace(spec, params=(renamed, *spec.params[1:]))
    with pytest.raises(SpecError, match="no_such_knob"):
        make_engine(bad, SETTINGS, amsynth_plugin)
