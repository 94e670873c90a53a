"""The differentiable subtractive synthesizer of paper 2, assembled from ``variants.yaml``.

Signal path (paper Fig. 3; modules in brackets)::

    f0 (static | external) ──► oscillator fundamentals f1 = f0, f2 = f0 · f0_mult  (unordered: own f0s)
    amplitude (dynamic | ADSR) ─┐                                   [oscillators]
    osc_mix ────────────────────┴► partial amplitudes (B, F, O, K) at 60 frames/s
    cutoff (dynamic | ADSR), q ──► × |H(k·f_o)| low-pass response     [filters, envelopes]
                                   ► additive render (B, T)            [oscillators]
    (FX)  1 Hz LFO ──► chorus(delay, mix) ──► reverb(gain, decay)      [envelopes, effects]

Inputs are unit controls in [0, 1] (except an external f0, in Hz): ``static (B, P)`` with columns
:attr:`DDSPSynth.static_names`, ``dynamic (B, n_frames, D)`` with columns
:attr:`DDSPSynth.dynamic_names`. Each module maps its own controls to physical units
(``get_controls``) with the ranges of ``variants.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from synthproxy.ddsp.core import ParamRange, n_control_frames
from synthproxy.ddsp.effects import Chorus, DecayReverb
from synthproxy.ddsp.envelopes import ADSR, SineLFO
from synthproxy.ddsp.filters import HarmonicLowpass
from synthproxy.ddsp.oscillators import SawSquareOscillators
from synthproxy.ddsp.variants import AMP_ENVELOPE, CUTOFF_ENVELOPE, ParamGroup, VariantSpec, get_variant, load_catalogue
from synthproxy.errors import ConfigError

OPTION_KEYS = ("chorus_delay_mapping", "envelope_soft_clamp", "max_chunk_elements", "dynamic_sampling", "n_harmonics")
DYNAMIC_SAMPLING = ("adsr", "constant")


class SynthParams(NamedTuple):
    """Inputs of :meth:`DDSPSynth.forward`: ``static (B, P)``, ``dynamic (B, n_frames, D) | None``,
    ``f0_hz (B,) | None`` (external-f0 variants only)."""

    static: Tensor
    dynamic: Tensor | None
    f0_hz: Tensor | None


def _envelope_controls(prefix: str, unit: Mapping[str, Tensor], names: tuple[str, ...]) -> dict[str, Tensor]:
    """``{'amp_attack': x, ...}`` → ``{'attack': x, ...}`` for the groups ``names``."""
    return {name[len(prefix):]: unit[name] for name in names}


class DDSPSynth(nn.Module):
    """Differentiable two-oscillator subtractive synthesizer (Masuda & Saito, TASLP 2023).

    Args:
        variant: one of ``raw``, ``raw_env``, ``fx``, ``fx_env``, ``raw_f0``, ``fx_f0``, ``unordered``.
        sample_rate: audio rate in Hz.
        duration: clip length in seconds (``n_samples = round(duration · sample_rate)``).
        note_off: note-off time of the envelopes in seconds (> 0).
        frame_rate: rate of the control signals (envelopes, LFO, dynamic controls) in frames/s.
        reverb_seed: seed of the reverb's noise impulse response (FX variants).
        options: overrides of ``variants.yaml``'s ``options`` (``chorus_delay_mapping``,
            ``envelope_soft_clamp``, ``max_chunk_elements``, ``dynamic_sampling``) and of
            ``n_harmonics`` (partials per oscillator, official 24).

    The module has no trainable parameters; it follows the device and dtype of its inputs.
    """

    def __init__(
        self,
        variant: str,
        sample_rate: int = 16000,
        duration: float = 4.0,
        note_off: float = 3.0,
        frame_rate: float = 60,
        reverb_seed: int = 0,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or duration <= 0 or frame_rate <= 0 or note_off <= 0:
            raise ConfigError(
                f"DDSPSynth needs positive sample_rate, duration, frame_rate and note_off; got {sample_rate}, "
                f"{duration}, {frame_rate}, {note_off}"
            )
        if frame_rate >= sample_rate:
            raise ConfigError(f"frame_rate ({frame_rate}) must be below sample_rate ({sample_rate})")
        catalogue = load_catalogue()
        self.variant_spec: VariantSpec = get_variant(variant)
        unknown = set(options or {}) - set(OPTION_KEYS)
        if unknown:
            raise ConfigError(f"unknown DDSPSynth options {sorted(unknown)}; known: {', '.join(OPTION_KEYS)}")
        self.options: dict[str, Any] = {
            **catalogue.options, "n_harmonics": catalogue.synth["n_harmonics"], **(options or {})
        }
        if not isinstance(self.options["n_harmonics"], int) or self.options["n_harmonics"] < 1:
            raise ConfigError(f"n_harmonics must be a positive integer, got {self.options['n_harmonics']!r}")
        if self.options["dynamic_sampling"] not in DYNAMIC_SAMPLING:
            raise ConfigError(f"dynamic_sampling must be one of {DYNAMIC_SAMPLING}")
        self.variant = variant
        self.sample_rate = sample_rate
        self.duration = float(duration)
        self.note_off = float(note_off)
        self.frame_rate = frame_rate
        self.reverb_seed = int(reverb_seed)
        self.n_samples = round(duration * sample_rate)
        self.n_frames = n_control_frames(duration, frame_rate)
        self._context = {"note_off": self.note_off, "duration": self.duration, "nyquist": sample_rate / 2.0}
        self._catalogue_groups = catalogue.parameters
        self._sampling_groups = catalogue.sampling
        self._catalogue_fixed = catalogue.fixed_values
        self._build(catalogue.synth)

    # ----------------------------------------------------------------------------------------------
    # assembly: the one place where variant data becomes modules

    def _range(self, name: str) -> ParamRange:
        return self._catalogue_groups[name].resolve_range(self._context)

    def _make_adsr(self, prefix: str, names: tuple[str, ...], channels: int, level_max: float) -> ADSR:
        ranges = {name[len(prefix):]: self._range(name) for name in names}
        soft = self.options["envelope_soft_clamp"]
        return ADSR(
            channels, note_off=self.note_off, duration=self.duration, frame_rate=self.frame_rate,
            n_frames=self.n_frames, level_range=(0.0, level_max), soft_clamp=None if soft is None else float(soft),
            ranges=ranges,
        )

    def _build(self, shared: Mapping[str, Any]) -> None:
        spec, fixed = self.variant_spec, self.variant_spec.fixed
        ordered = spec.oscillators == "ordered"
        n_osc = int(shared["n_oscillators"])
        if spec.group("osc_mix").channels != n_osc:
            raise ConfigError(f"variant {spec.name!r}: osc_mix has {spec.group('osc_mix').channels} channels for "
                              f"{n_osc} oscillators")
        osc_ranges = {
            "f0": self._range("f0" if ordered else "osc_f0"),
            "osc_mix": self._range("osc_mix"),
            "amplitude": self._range("amplitude"),
        }
        if ordered:
            osc_ranges["f0_mult"] = self._range("f0_mult")
        self.oscillators = SawSquareOscillators(
            n_osc, int(self.options["n_harmonics"]), sample_rate=self.sample_rate,
            frame_rate=self.frame_rate, ranges=osc_ranges, max_chunk_elements=int(self.options["max_chunk_elements"]),
        )
        self.filter = HarmonicLowpass(ranges={"cutoff": self._range("cutoff"), "q": self._range("filter_q")})
        self.amp_envelope: ADSR | None = None
        self.cutoff_envelope: ADSR | None = None
        if spec.sources["amplitude"] == "envelope":
            self.amp_envelope = self._make_adsr(
                "amp_", AMP_ENVELOPE, spec.group("amp_peak").channels, fixed["amp_env_max"]
            )
        if spec.sources["cutoff"] == "envelope":
            self.cutoff_envelope = self._make_adsr(
                "cutoff_", CUTOFF_ENVELOPE, spec.group("cutoff_peak").channels, fixed["cutoff_env_max"]
            )
        self.lfo: SineLFO | None = None
        self.chorus: Chorus | None = None
        self.reverb: DecayReverb | None = None
        if "chorus" in spec.effects:
            self.lfo = SineLFO(
                rate_hz=fixed["lfo_rate"], level=fixed["lfo_level"], frame_rate=self.frame_rate, n_frames=self.n_frames
            )
            self.chorus = Chorus(
                sample_rate=self.sample_rate, frame_rate=self.frame_rate, depth=fixed["chorus_depth"],
                delay_mapping=str(self.options["chorus_delay_mapping"]),
                ranges={"delay": self._range("chorus_delay"), "mix": self._range("chorus_mix")},
            )
        if "reverb" in spec.effects:
            self.reverb = DecayReverb(
                sample_rate=self.sample_rate, seconds=float(shared["reverb_seconds"]), seed=self.reverb_seed,
                ranges={"gain": self._range("reverb_gain"), "decay": self._range("reverb_decay")},
            )

    def extra_repr(self) -> str:
        return (f"variant={self.variant!r}, sample_rate={self.sample_rate}, duration={self.duration}, "
                f"note_off={self.note_off}, frame_rate={self.frame_rate}, P={self.n_static}, D={self.n_dynamic}")

    # ----------------------------------------------------------------------------------------------
    # description

    @property
    def parameter_groups(self) -> tuple[ParamGroup, ...]:
        """The estimated parameter groups: static ones, then dynamic ones (``group.role``)."""
        return (*self.variant_spec.static, *self.variant_spec.dynamic)

    @property
    def static_groups(self) -> tuple[ParamGroup, ...]:
        return self.variant_spec.static

    @property
    def dynamic_groups(self) -> tuple[ParamGroup, ...]:
        return self.variant_spec.dynamic

    @property
    def static_names(self) -> tuple[str, ...]:
        """Column names of ``static``: the groups in ``variants.yaml`` order, each expanded to its channels."""
        return tuple(n for g in self.variant_spec.static for n in g.scalar_names)

    @property
    def dynamic_names(self) -> tuple[str, ...]:
        """Column names of ``dynamic`` (last axis), e.g. ``amplitude_1, amplitude_2, cutoff``."""
        return tuple(n for g in self.variant_spec.dynamic for n in g.scalar_names)

    @property
    def n_static(self) -> int:
        return len(self.static_names)

    @property
    def n_dynamic(self) -> int:
        return len(self.dynamic_names)

    @property
    def external_f0(self) -> bool:
        """True when ``forward`` needs ``f0_hz`` (Raw-f0, FX-f0)."""
        return self.variant_spec.sources["f0"] == "external"

    @property
    def fixed_values(self) -> dict[str, float]:
        values = dict(self.variant_spec.fixed)
        if self.amp_envelope is not None or self.cutoff_envelope is not None:
            values["note_off"] = self.note_off
        return values

    def ranges(self) -> dict[str, ParamRange]:
        """Physical range of every static and dynamic group (symbolic bounds resolved)."""
        return {g.name: self._range(g.name) for g in self.parameter_groups}

    def parameter_table(self) -> list[dict[str, Any]]:
        """One row per static, dynamic and external group: name, official key, role, channels, range, unit."""
        rows = []
        for g in (*self.variant_spec.static, *self.variant_spec.dynamic, *self.variant_spec.external):
            rows.append({
                "name": g.name, "official": g.official, "role": g.role, "channels": g.channels,
                **self._range(g.name).as_dict(), "unit": g.unit, "doc": g.doc,
            })
        return rows

    # ----------------------------------------------------------------------------------------------
    # input handling

    def _check_inputs(
        self, static: Tensor, dynamic: Tensor | None, f0_hz: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        name = f"DDSPSynth({self.variant!r})"
        if not isinstance(static, Tensor) or not static.is_floating_point() or static.dim() != 2:
            raise ConfigError(f"{name}: static must be a floating (B, {self.n_static}) tensor, got "
                              f"{getattr(static, 'shape', type(static).__name__)}")
        batch = static.shape[0]
        if static.shape[1] != self.n_static or batch == 0:
            raise ConfigError(f"{name}: static must have shape (B, {self.n_static}) with columns "
                              f"{list(self.static_names)}, got {tuple(static.shape)}")
        like = {"dtype": static.dtype, "device": static.device}
        if self.n_dynamic:
            want = (batch, self.n_frames, self.n_dynamic)
            if dynamic is None:
                raise ConfigError(f"{name}: needs dynamic controls of shape {want} ({list(self.dynamic_names)})")
            if not isinstance(dynamic, Tensor) or tuple(dynamic.shape) != want:
                raise ConfigError(f"{name}: dynamic must have shape {want} (B, n_frames, D), got "
                                  f"{tuple(getattr(dynamic, 'shape', ()))}; resample frame-wise controls with "
                                  f"synthproxy.ddsp.core.resample_frames")
            dynamic = dynamic.to(**like)
        elif dynamic is not None:
            raise ConfigError(f"{name}: has no dynamic controls, but dynamic was given")
        if self.external_f0:
            if f0_hz is None:
                raise ConfigError(f"{name}: f0 is external; pass f0_hz of shape (B,) or (B, {self.n_frames}) in Hz")
            if not isinstance(f0_hz, Tensor) or tuple(f0_hz.shape) not in ((batch,), (batch, self.n_frames)):
                raise ConfigError(f"{name}: f0_hz must have shape ({batch},) or ({batch}, {self.n_frames}), got "
                                  f"{tuple(getattr(f0_hz, 'shape', ()))}")
            f0_hz = f0_hz.to(**like)
        elif f0_hz is not None:
            raise ConfigError(f"{name}: f0 is a static parameter of this variant; f0_hz must not be given")
        return static, dynamic, f0_hz

    def unit_controls(self, static: Tensor, dynamic: Tensor | None = None) -> dict[str, Tensor]:
        """Split the inputs by group: static groups ``(B, C)``, dynamic groups ``(B, n_frames, C)``."""
        out: dict[str, Tensor] = {}
        col = 0
        for g in self.variant_spec.static:
            out[g.name] = static[:, col:col + g.channels]
            col += g.channels
        col = 0
        for g in self.variant_spec.dynamic:
            assert dynamic is not None
            out[g.name] = dynamic[..., col:col + g.channels]
            col += g.channels
        return out

    def physical(self, static: Tensor, dynamic: Tensor | None = None) -> dict[str, Tensor]:
        """Physical values of every static and dynamic group (same shapes as :meth:`unit_controls`)."""
        ranges = self.ranges()
        return {k: ranges[k].to_physical(v) for k, v in self.unit_controls(static, dynamic).items()}

    # ----------------------------------------------------------------------------------------------
    # rendering

    def _control_curves(self, unit: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Unit amplitude ``(B, F, O)`` and unit cutoff ``(B, F, 1)`` from dynamic controls or ADSRs."""
        if self.amp_envelope is not None:
            env = self.amp_envelope
            controls = env.get_controls(**_envelope_controls("amp_", unit, AMP_ENVELOPE))
            controls["floor"] = torch.full_like(controls["peak"], self.variant_spec.fixed["amp_floor"])
            amplitude = env.get_signal(**controls)
        else:
            amplitude = unit["amplitude"]
        if self.cutoff_envelope is not None:
            env = self.cutoff_envelope
            cutoff = env.get_signal(**env.get_controls(**_envelope_controls("cutoff_", unit, CUTOFF_ENVELOPE)))
        else:
            cutoff = unit["cutoff"]
        return amplitude, cutoff

    def _fundamentals(self, unit: Mapping[str, Tensor], f0_hz: Tensor | None) -> Tensor:
        """Oscillator fundamentals in Hz, ``(B, 1, O)`` or ``(B, F, O)`` (frame-wise external f0)."""
        osc = self.oscillators
        if self.variant_spec.oscillators == "unordered":
            return osc.ranges["f0"].to_physical(unit["osc_f0"]).unsqueeze(1)
        if f0_hz is None:
            f1 = osc.ranges["f0"].to_physical(unit["f0"]).unsqueeze(1)  # (B, 1, 1)
        else:
            f1 = f0_hz.reshape(f0_hz.shape[0], -1, 1)  # (B, 1 or F, 1)
        mult = osc.ranges["f0_mult"].to_physical(unit["f0_mult"]).unsqueeze(1)  # (B, 1, O − 1)
        return osc.ordered_frequencies(f1, mult)

    def forward(self, static: Tensor, dynamic: Tensor | None = None, f0_hz: Tensor | None = None) -> Tensor:
        """Render audio.

        Args:
            static: ``(B, P)`` unit controls in [0, 1], columns :attr:`static_names`.
            dynamic: ``(B, n_frames, D)`` unit controls in [0, 1], columns :attr:`dynamic_names`
                (frame-wise variants only).
            f0_hz: ``(B,)`` or ``(B, n_frames)`` fundamental of oscillator 1 in Hz (external-f0
                variants only).

        Returns:
            ``(B, n_samples)`` audio in the dtype and on the device of ``static``; differentiable
            w.r.t. ``static``, ``dynamic`` and ``f0_hz``.
        """
        static, dynamic, f0_hz = self._check_inputs(static, dynamic, f0_hz)
        unit = self.unit_controls(static, dynamic)
        amplitude_u, cutoff_u = self._control_curves(unit)
        osc = self.oscillators
        amplitude = osc.ranges["amplitude"].to_physical(amplitude_u)
        osc_mix = osc.ranges["osc_mix"].to_physical(unit["osc_mix"]).unsqueeze(1)
        fundamentals = self._fundamentals(unit, f0_hz)
        partial_amps, partial_freqs = osc.partials(amplitude, osc_mix, fundamentals)
        filt = self.filter.get_controls(cutoff=cutoff_u, q=unit["filter_q"].unsqueeze(1))
        partial_amps = self.filter.get_signal(partial_amps, partial_freqs, filt["cutoff"], filt["q"])
        audio = osc.get_signal(partial_amps, fundamentals, self.n_samples)
        if self.chorus is not None and self.lfo is not None:
            ch = self.chorus.get_controls(delay=unit["chorus_delay"], mix=unit["chorus_mix"])
            audio = self.chorus.get_signal(audio, ch["delay"], ch["mix"], self.lfo.get_signal(audio.shape[0], audio))
        if self.reverb is not None:
            audio = self.reverb(audio=audio, gain=unit["reverb_gain"], decay=unit["reverb_decay"])
        return audio

    # ----------------------------------------------------------------------------------------------
    # in-domain sampling

    def sample_params(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        dynamic: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> SynthParams:
        """Uniformly random inputs for making in-domain data.

        - ``static``: i.i.d. uniform in [0, 1], ``(B, P)``.
        - ``dynamic`` (frame-wise variants), mode ``adsr`` (default, as the official dataset configs):
          each dynamic group is the output of a random ADSR with uniform unit parameters — amplitudes
          with floor 0 and levels up to 0.6, the cutoff as a unit control in [0, 1] (log-mapped to Hz
          by the filter); mode ``constant``: one uniform value per clip and channel, held over all frames.
        - ``f0_hz`` (external-f0 variants): log-uniform over the f0 range, one value per clip, ``(B,)``.

        Draws, in this order, from ``generator`` (on its device; the global RNG if None) and returns
        tensors on ``device`` (default: the generator's) in ``dtype``: the same generator state always
        gives the same parameters.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        mode = dynamic or self.options["dynamic_sampling"]
        if mode not in DYNAMIC_SAMPLING:
            raise ConfigError(f"dynamic sampling must be one of {DYNAMIC_SAMPLING}, got {mode!r}")
        gen_device = generator.device if generator is not None else torch.device("cpu")
        out_device = torch.device(device) if device is not None else gen_device

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=generator, device=gen_device, dtype=torch.float64)

        static = rand(batch_size, self.n_static)
        dyn: Tensor | None = None
        if self.n_dynamic:
            if mode == "constant":
                dyn = rand(batch_size, 1, self.n_dynamic).expand(-1, self.n_frames, -1).contiguous()
            else:
                dyn = torch.cat([self._random_curve(g, batch_size, rand) for g in self.variant_spec.dynamic], dim=-1)
        f0 = self._range("f0").to_physical(rand(batch_size)) if self.external_f0 else None
        like = {"device": out_device, "dtype": dtype}
        return SynthParams(
            static.to(**like), None if dyn is None else dyn.to(**like), None if f0 is None else f0.to(**like)
        )

    def _random_curve(self, group: ParamGroup, batch: int, rand: Any) -> Tensor:
        """A random ADSR curve ``(B, n_frames, C)`` for the dynamic group ``amplitude`` or ``cutoff``."""
        names = self._sampling_groups[group.name]
        prefix = "amp_" if group.name == "amplitude" else "cutoff_"
        level_max = self._catalogue_fixed["amp_env_max" if group.name == "amplitude" else "cutoff_env_max"]
        env = self._make_adsr(prefix, names, group.channels, level_max)
        unit = {name[len(prefix):]: rand(batch, group.channels) for name in names}
        controls = env.get_controls(**unit)
        if "floor" not in controls:
            controls["floor"] = torch.full_like(controls["peak"], self._catalogue_fixed["amp_floor"])
        return env.get_signal(**controls)
