"""The synthetic benchmark of paper 2 (Masuda & Saito, TASLP 2023, Sec. IV, Fig. 5), and DDSP parameter frames.

Start from one sound ``x = f(v)`` of the DDSP synth at a *typical* preset ``v``; for every static parameter
``k`` sweep ``v'_k`` over [0, 1] (the other parameters fixed), render ``x' = f(v')`` and record the multi-scale
spectral loss ``L(x, x')`` and its analytic gradient ``dL/dv'_k`` (backprop through the synth). Gradient
descent can tune ``v'_k`` back to ``v_k`` where ``−dL/dv'_k`` points toward ``v_k``, i.e. where the gradient is
positive for ``v'_k > v_k`` and negative for ``v'_k < v_k`` (the red region of Fig. 5). The paper finds this
for most parameters, but not for the oscillator frequency (chaotic gradients, local optima at harmonic
ratios) nor for the chorus delay (gradients near zero away from ``v_k``).

* :func:`typical_preset` — the documented default vector :data:`TYPICAL_PRESET`;
* :func:`spectral_benchmark` — the sweeps, one batch (in chunks) per parameter, as a tidy DataFrame;
* :func:`benchmark_summary` — per parameter: the fraction of sweep points where the gradient points the right
  way (and where it is flat or wrong), and the basin around ``v_k`` where it always does;
* :func:`parameter_frame` — predicted static presets of several strategies as a long DataFrame in unit and
  physical values (input of :func:`synthproxy.report.ddsp.effects_figure`).

The figure (:func:`synthproxy.report.ddsp.benchmark_figure`) lives in the report layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from synthproxy.ddsp import DDSPSynth
from synthproxy.errors import ConfigError
from synthproxy.metrics.spectral import MultiScaleSpectralLoss

__all__ = [
    "TYPICAL_PRESET", "benchmark_summary", "parameter_frame", "scalar_groups", "spectral_benchmark", "sweep_values",
    "typical_preset",
]

#: The typical preset ``v`` of the benchmark, as unit controls (every static column of every variant; a variant
#: uses the columns it has). Physical values for the default synth (16 kHz, 4 s clip, note-off 3 s):
#:
#: * oscillators: f0 = 0.465 → 220 Hz (A3, mid register: the 24 partials of both oscillators stay below 8 kHz);
#:   f0_mult = 1/14 → 1.5 (oscillator 2 a fifth above: its partials interleave with oscillator 1's instead of
#:   coinciding, so both oscillators are separately audible and f0_mult has its own spectral signature);
#:   osc_mix 0.25 / 0.75 (oscillator 1 mostly saw, oscillator 2 mostly square, so each mix has an effect);
#:   filter_q 0.5 → Q 1.05 (a mild resonance, not self-oscillating).
#: * amplitude ADSRs (levels up to 0.6): peaks 0.8 / 0.6 → 0.48 / 0.36 (both audible, oscillator 1 louder);
#:   attack 0.05 / 0.1 of the note-off → 0.15 / 0.3 s; decay 0.15 / 0.25 of the clip → 0.6 / 1.0 s; sustain
#:   0.6 / 0.5 of the peak; release 0.1 / 0.15 → 0.4 / 0.6 s (the note ends before the clip does, so the
#:   release and the reverb tail are heard). The two oscillators have different envelopes, so every control
#:   of each is identifiable.
#: * cutoff ADSR ("some filter envelope"): floor 0.4 → 280 Hz, peak 0.8 → 2.6 kHz (log 30 Hz .. 8 kHz),
#:   attack 0.1 → 0.3 s, decay 0.2 → 0.8 s, sustain 0.5 → 855 Hz, release 0.15 → 0.6 s: a clear opening
#:   and closing sweep over the harmonics of the 220 Hz note.
#: * effects on: reverb gain 0.5 → 0.051 on the power scale (IR energy gain² · sr / (2 · decay) / 3 ≈ 0.39, a
#:   wet/dry ratio of ≈ −4 dB: a clearly audible room), decay 0.5 → 17.5 /s (−60 dB after ≈ 0.4 s); chorus
#:   delay 0.5 → 5.5 ms, mix 0.5 (a strong, symmetric chorus). Mid-range effect values leave room on both sides
#:   of ``v_k`` for the sweep.
#: * ``osc_f0_*`` (Unordered only): 220 and 330 Hz, as f0 and f0 · f0_mult above.
TYPICAL_PRESET: dict[str, float] = {
    "osc_mix_1": 0.25, "osc_mix_2": 0.75,
    "f0": 0.465, "f0_mult": 1.0 / 14.0, "filter_q": 0.5,
    "osc_f0_1": 0.465, "osc_f0_2": 0.564,
    "amp_peak_1": 0.8, "amp_peak_2": 0.6,
    "amp_attack_1": 0.05, "amp_attack_2": 0.1,
    "amp_decay_1": 0.15, "amp_decay_2": 0.25,
    "amp_sustain_1": 0.6, "amp_sustain_2": 0.5,
    "amp_release_1": 0.1, "amp_release_2": 0.15,
    "cutoff_attack": 0.1, "cutoff_decay": 0.2, "cutoff_sustain": 0.5, "cutoff_release": 0.15,
    "cutoff_floor": 0.4, "cutoff_peak": 0.8,
    "reverb_gain": 0.5, "reverb_decay": 0.5,
    "chorus_delay": 0.5, "chorus_mix": 0.5,
}


def scalar_groups(synth: DDSPSynth) -> dict[str, tuple[str, int]]:
    """``{static column name: (group name, channel)}`` in :attr:`DDSPSynth.static_names` order."""
    out: dict[str, tuple[str, int]] = {}
    for group in synth.static_groups:
        for channel, name in enumerate(group.scalar_names):
            out[name] = (group.name, channel)
    return out


def typical_preset(synth: DDSPSynth, overrides: Mapping[str, float] | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The typical preset ``v`` of :data:`TYPICAL_PRESET` for ``synth``'s static columns, ``(P,)``.

    ``overrides`` replace single columns (unit values in [0, 1]); unknown names are refused.
    """
    values = dict(TYPICAL_PRESET)
    for name, value in (overrides or {}).items():
        if name not in synth.static_names:
            raise ConfigError(f"unknown static parameter '{name}' of variant {synth.variant}; "
                              f"known: {list(synth.static_names)}")
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{name}: unit controls lie in [0, 1], got {value}")
        values[name] = float(value)
    missing = [n for n in synth.static_names if n not in values]
    if missing:  # pragma: no cover - every catalogue column has a typical value
        raise ConfigError(f"no typical value for {missing}")
    return torch.tensor([values[n] for n in synth.static_names], dtype=dtype)


def sweep_values(original: float, steps: int) -> tuple[np.ndarray, int]:
    """``steps`` evenly spaced values over [0, 1] plus the original (unless it is on the grid), sorted, and the
    index of the original among them."""
    if steps < 2:
        raise ConfigError(f"a sweep needs at least 2 steps, got {steps}")
    grid = np.linspace(0.0, 1.0, steps)
    on_grid = np.flatnonzero(np.isclose(grid, original, rtol=0.0, atol=1e-6))  # float32 presets
    if on_grid.size:
        grid[on_grid[0]] = original
        return grid, int(on_grid[0])
    values = np.sort(np.append(grid, original))
    return values, int(np.flatnonzero(values == original)[0])


def spectral_benchmark(
    synth: DDSPSynth,
    preset: torch.Tensor | None = None,
    *,
    steps: int = 21,
    params: Sequence[str] | None = None,
    loss: MultiScaleSpectralLoss | None = None,
    chunk: int = 8,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    dynamic: torch.Tensor | None = None,
    f0_hz: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Sweep every static parameter of ``synth`` around ``preset`` and record the spectral loss and its gradient.

    Args:
        synth: the DDSP synth (any variant; frame-wise variants need ``dynamic``, external-f0 ones ``f0_hz``).
        preset: ``(P,)`` unit controls ``v``; default :func:`typical_preset`.
        steps: sweep points over [0, 1] per parameter (the original value is added when not on the grid).
        params: the static columns to sweep (default: all, in :attr:`DDSPSynth.static_names` order).
        loss: the spectral loss ``L(target, estimate)``; default the paper's :class:`MultiScaleSpectralLoss`
            (FFT 64 .. 2048, 75 % overlap, magnitude, sum over scales).
        chunk: sweep points rendered per batch (memory bound); all points of a parameter share the batching.
        dtype, device: of the renders (float64 for finite-difference checks).
        dynamic: ``(1, n_frames, D)`` dynamic controls held fixed (frame-wise variants only).
        f0_hz: ``(1,)`` external f0 in Hz held fixed (external-f0 variants only).

    Returns:
        One row per (parameter, sweep point): ``param``, ``column`` (index in ``static``), ``value`` (unit
        ``v'_k``), ``physical`` (its physical value), ``original`` (``v_k``), ``is_original``, ``loss``
        (``L(x, x')``) and ``grad`` (``dL/dv'_k``).
    """
    if chunk < 1:
        raise ConfigError(f"chunk must be >= 1, got {chunk}")
    loss_fn = loss if loss is not None else MultiScaleSpectralLoss()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    v = (typical_preset(synth, dtype=dtype) if preset is None else torch.as_tensor(preset, dtype=dtype)).to(dev)
    if v.shape != (synth.n_static,):
        raise ConfigError(f"preset must have shape ({synth.n_static},), got {tuple(v.shape)}")
    names = list(synth.static_names) if params is None else list(params)
    unknown = [n for n in names if n not in synth.static_names]
    if unknown:
        raise ConfigError(f"unknown static parameters {unknown}; known: {list(synth.static_names)}")
    groups = scalar_groups(synth)
    dyn = None if dynamic is None else dynamic.to(device=dev, dtype=dtype)
    f0 = None if f0_hz is None else f0_hz.to(device=dev, dtype=dtype)

    def render(static: torch.Tensor) -> torch.Tensor:
        n = static.shape[0]
        return synth(static, None if dyn is None else dyn.expand(n, -1, -1), None if f0 is None else f0.expand(n))

    rows: list[dict] = []
    for name in names:
        k = synth.static_names.index(name)
        values, i_orig = sweep_values(float(v[k]), steps)
        group, channel = groups[name]
        for start in range(0, len(values), chunk):
            part = torch.as_tensor(values[start:start + chunk], dtype=dtype, device=dev)
            col = part.clone().requires_grad_(True)
            base = v[None].expand(len(part), -1)
            static = torch.cat([base[:, :k], col[:, None], base[:, k + 1:]], dim=1)
            # The original x is rendered as row 0 of the same batch: a batch renders its rows identically, while
            # a lone render may differ in the last float bit (which the log term would turn into a loss > 0).
            audio = render(torch.cat([v[None], static]))
            per_example = loss_fn.per_example(audio[:1].detach().expand(len(part), -1), audio[1:])
            (grad,) = torch.autograd.grad(per_example.sum(), col)
            with torch.no_grad():
                physical = synth.physical(static.detach(), None if dyn is None else dyn.expand(len(part), -1, -1))
            phys = physical[group][:, channel].cpu().numpy()
            losses, grads = per_example.detach().cpu().numpy(), grad.cpu().numpy()
            for j in range(len(part)):
                rows.append({
                    "param": name, "column": k, "value": float(values[start + j]), "physical": float(phys[j]),
                    "original": float(v[k]), "is_original": start + j == i_orig,
                    "loss": float(losses[j]), "grad": float(grads[j]),
                })
    return pd.DataFrame(rows)


def _direction(df: pd.DataFrame, flat_tol: float) -> pd.Series:
    """Per row: ``right`` (−grad points toward the original), ``flat`` (|grad| <= flat_tol · the parameter's
    max |grad|), ``wrong``, or ``original``."""
    scale = df.groupby("param")["grad"].transform(lambda g: g.abs().max())
    offset = df["value"] - df["original"]
    flat = df["grad"].abs() <= flat_tol * scale
    right = np.sign(df["grad"]) == np.sign(offset)
    out = np.where(df["is_original"], "original", np.where(flat, "flat", np.where(right, "right", "wrong")))
    return pd.Series(out, index=df.index)


def benchmark_summary(df: pd.DataFrame, flat_tol: float = 1e-3) -> pd.DataFrame:
    """One row per parameter of a :func:`spectral_benchmark` frame (in its order).

    Columns: ``param``, ``original``, ``points`` (sweep points other than the original), ``right_fraction``
    (share of them where ``−dL/dv'_k`` points toward ``v_k``: gradient descent moves the right way), ``flat_fraction``
    (``|grad| <= flat_tol · max |grad|`` of the parameter: no usable pull), ``wrong_fraction``,
    ``descent_fraction`` (share of sweep points where the *sampled* loss is lower at the next point toward ``v_k``:
    1 for a loss curve without local optima), ``basin_low`` /
    ``basin_high`` / ``basin_width`` (the contiguous interval around ``v_k`` over which every sweep point points
    the right way), ``loss_at_original``, ``loss_max`` and ``grad_abs_max``.
    """
    direction = _direction(df, flat_tol)
    rows = []
    for name, part in df.groupby("param", sort=False):
        d = direction[part.index].to_numpy()
        values = part["value"].to_numpy()
        i0 = int(np.flatnonzero(part["is_original"].to_numpy())[0])
        lo = i0
        while lo > 0 and d[lo - 1] == "right":
            lo -= 1
        hi = i0
        while hi < len(d) - 1 and d[hi + 1] == "right":
            hi += 1
        others = d[d != "original"]
        n = max(len(others), 1)
        loss = part["loss"].to_numpy()
        # the sampled loss falls at the next sweep point toward the original (no local optimum in between)
        descends = np.concatenate([loss[:i0] > loss[1:i0 + 1], loss[i0 + 1:] > loss[i0:-1]])
        rows.append({
            "param": name, "original": float(part["original"].iloc[0]), "points": len(others),
            "right_fraction": float(np.sum(others == "right") / n),
            "flat_fraction": float(np.sum(others == "flat") / n),
            "wrong_fraction": float(np.sum(others == "wrong") / n),
            "descent_fraction": float(descends.mean()) if descends.size else float("nan"),
            "basin_low": float(values[lo]), "basin_high": float(values[hi]),
            "basin_width": float(values[hi] - values[lo]),
            "loss_at_original": float(part["loss"].iloc[i0]), "loss_max": float(part["loss"].max()),
            "grad_abs_max": float(part["grad"].abs().max()),
        })
    return pd.DataFrame(rows)


def parameter_frame(
    predictions: Mapping[str, np.ndarray | torch.Tensor], synth: DDSPSynth, params: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Predicted static presets of several strategies as a long frame, unit and physical values.

    Args:
        predictions: ``{strategy: (N, P) unit static presets}`` (e.g. the estimators' predictions on the
            out-of-domain test sounds; ``N`` may differ per strategy).
        synth: the synth whose :attr:`DDSPSynth.static_names` and ranges define the columns.
        params: the columns to keep (default: all).

    Returns:
        Columns ``strategy``, ``sound`` (row index in the strategy's array), ``param``, ``value`` (unit
        control), ``physical`` (physical value) and ``physical_unit`` (e.g. ``ms``).
    """
    names = list(synth.static_names) if params is None else list(params)
    unknown = [n for n in names if n not in synth.static_names]
    if unknown:
        raise ConfigError(f"unknown static parameters {unknown}; known: {list(synth.static_names)}")
    groups = scalar_groups(synth)
    units = {g.name: g.unit for g in synth.static_groups}
    frames = []
    for strategy, presets in predictions.items():
        static = torch.as_tensor(np.asarray(presets, dtype=np.float64))
        if static.ndim != 2 or static.shape[1] != synth.n_static:
            raise ConfigError(f"{strategy}: predictions must be (N, {synth.n_static}), got {tuple(static.shape)}")
        with torch.no_grad():
            physical = synth.physical(static)
        for name in names:
            group, channel = groups[name]
            frames.append(pd.DataFrame({
                "strategy": strategy, "sound": np.arange(static.shape[0]), "param": name,
                "value": static[:, synth.static_names.index(name)].numpy(),
                "physical": physical[group][:, channel].numpy(), "physical_unit": units[group],
            }))
    if not frames:
        return pd.DataFrame(columns=["strategy", "sound", "param", "value", "physical", "physical_unit"])
    return pd.concat(frames, ignore_index=True)
