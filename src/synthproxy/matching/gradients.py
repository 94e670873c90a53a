"""Proxy-gradient fidelity: does a frozen preset encoder give the gradients of the real "synth + audio model"?

Sound matching with an audio loss back-propagates ``L1(embedding(preset), target)`` to the preset. With a proxy
(paper 1) the embedding is a frozen preset encoder; for the differentiable DDSP synth of paper 2 the *exact*
embedding is available too: preset → :class:`~synthproxy.ddsp.DDSPSynth` → the render's linear fade-out of the
last ``fade_seconds`` (as :func:`synthproxy.render.fade_out` applies to every stored render) →
:meth:`Representation.embed_differentiable <synthproxy.audio.representations.Representation.embed_differentiable>`.
This module compares the two gradients on preset–target pairs at controlled distances.

* :class:`PresetEmbedding`: ``(presets (B, P) float tensor) -> (B, D)``, differentiable w.r.t. the presets;
  :class:`ProxyEmbedding` (a frozen encoder) and :class:`SynthEmbedding` (the exact path) implement it;
* :func:`target_pairs`: deterministic ``(x, x_j, r)`` triples: ``x`` uniform presets, ``x_j`` held-out
  perturbations of ``x`` at L∞ radius ``r``; targets are ``t = exact(x_j)``;
* :func:`gradient_comparison`: per pair the cosine and sign agreement of ``g_proxy = ∂L1(proxy(x), t)/∂x`` and
  ``g_exact = ∂L1(exact(x), t)/∂x``, the distance, the losses, and both gradients (columns ``gp__<param>`` /
  ``ge__<param>``); :func:`parameter_cosine` and :func:`summary` reduce it to tables;
  :func:`synthproxy.report.ddsp.gradients_figure` plots it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from synthproxy.audio.representations import Representation
from synthproxy.ddsp import DDSPSynth
from synthproxy.errors import ConfigError
from synthproxy.metrics.agreement import (
    GRAD_PREFIX,
    gradient_arrays,
    parameter_cosine,
    row_cosine,
    sign_agreement,
)

__all__ = [
    "PairSet", "PresetEmbedding", "ProxyEmbedding", "SynthEmbedding", "fade_out_torch", "gradient_arrays",
    "gradient_comparison", "parameter_cosine", "summary", "target_pairs",
]

@runtime_checkable
class PresetEmbedding(Protocol):
    """A differentiable map from static presets ``(B, P)`` (unit values, float tensor) to embeddings ``(B, D)``."""

    def __call__(self, presets: Tensor) -> Tensor: ...


class ProxyEmbedding:
    """A frozen preset encoder as a :class:`PresetEmbedding`.

    ``encoder`` maps ``(B, P)`` presets to ``(B, D)``; an ``nn.Module`` is put in eval mode and its weights stop
    requiring gradients (gradients still flow to the presets). Presets are moved to ``device`` when given.
    """

    def __init__(self, encoder: nn.Module | Callable[[Tensor], Tensor], device: torch.device | str | None = None
                 ) -> None:
        if isinstance(encoder, nn.Module):
            encoder.eval()
            for p in encoder.parameters():
                p.requires_grad_(False)
        self.encoder = encoder
        self.device = None if device is None else torch.device(device)

    def __call__(self, presets: Tensor) -> Tensor:
        return self.encoder(presets if self.device is None else presets.to(self.device))


def fade_out_torch(audio: Tensor, sample_rate: int, seconds: float) -> Tensor:
    """:func:`synthproxy.render.fade_out` in torch, differentiable and out of place: the last
    ``n = int(sample_rate · seconds)`` samples of ``(..., T)`` audio times ``linspace(1, 0, n)`` (the product in
    float64, then cast back, as the numpy version does)."""
    n = min(int(sample_rate * seconds), audio.shape[-1])
    if n <= 0:
        return audio
    ramp = torch.linspace(1.0, 0.0, n, dtype=torch.float64, device=audio.device)
    tail = (audio[..., -n:].to(torch.float64) * ramp).to(audio.dtype)
    return torch.cat([audio[..., :-n], tail], dim=-1)


class SynthEmbedding:
    """The exact embedding: preset → ``synth(static)`` → fade-out → ``representation.embed_differentiable``.

    Args:
        synth: a static-only DDSP variant (``raw_env``, ``fx_env``: no frame-wise controls, no external f0),
            at the representation's sample rate.
        representation: a differentiable audio model (``mel16k``, ``mel128``, ``mfcc40``, ``mstft``).
        reduction: ``avg`` or ``nop``.
        fade_seconds: the render pipeline's final linear fade-out (config ``render.fade_out``, default 0.1 s).

    Differentiable w.r.t. the presets; runs on the presets' device and in their dtype.
    """

    def __init__(self, synth: DDSPSynth, representation: Representation, reduction: str,
                 fade_seconds: float = 0.1) -> None:
        if synth.n_dynamic or synth.external_f0:
            raise ConfigError(f"SynthEmbedding needs a static-only DDSP variant (raw_env, fx_env); "
                              f"'{synth.variant}' has frame-wise controls or an external f0")
        if not representation.differentiable:
            raise ConfigError(f"{representation.name} has no differentiable path")
        if representation.sample_rate != synth.sample_rate:
            raise ConfigError(f"the synth renders at {synth.sample_rate} Hz but {representation.name} expects "
                              f"{representation.sample_rate} Hz: build DDSPSynth(sample_rate="
                              f"{representation.sample_rate}) (no differentiable resampling here)")
        if fade_seconds < 0:
            raise ConfigError(f"fade_seconds must be >= 0, got {fade_seconds}")
        self.synth = synth
        self.representation = representation
        self.reduction = reduction
        self.fade_seconds = float(fade_seconds)

    def audio(self, presets: Tensor) -> Tensor:
        """The faded render ``(B, T)`` of ``(B, P)`` presets."""
        return fade_out_torch(self.synth(presets), self.synth.sample_rate, self.fade_seconds)

    def __call__(self, presets: Tensor) -> Tensor:
        return self.representation.embed_differentiable(self.audio(presets), self.reduction)


class PairSet(NamedTuple):
    """``presets (N, P)``: the start points ``x``; ``target_presets (N, P)``: the held-out ``x_j``;
    ``radius (N,)``: the L∞ radius each ``x_j`` was drawn at (``inf``: an independent preset)."""

    presets: Tensor
    target_presets: Tensor
    radius: Tensor


def target_pairs(n_presets: int, n_params: int, radii: Sequence[float], seed: int,
                 dtype: torch.dtype = torch.float32, base: Tensor | None = None, pool: Tensor | None = None
                 ) -> PairSet:
    """Deterministic ``(x, x_j, r)`` triples: ``n_presets`` uniform presets, each paired with one target per radius.

    ``base`` ``(n_presets, n_params)`` gives the start presets instead (e.g. a held-out test split) and ``pool``
    ``(M, n_params)`` the presets an independent target (``r >= 1``) is drawn from (default: uniform).

    For radius ``r < 1`` the target is ``x_j = x + δ`` with ``δ`` uniform in ``[−r, r]^P`` rescaled so that
    ``‖δ‖∞ = r``; a coordinate that would leave [0, 1] is reflected (``x − δ_k``) and, if that leaves it too,
    clipped, so ``‖x − x_j‖∞ <= r`` (the actual distance is recorded by :func:`gradient_comparison`). ``r >= 1``
    (or ``inf``) draws ``x_j`` independently (uniform). The same ``x`` serve every radius, so the radius is the
    only thing that changes across groups. Rows are ordered radius-major: ``N = len(radii) · n_presets``.
    """
    if n_presets < 1 or n_params < 1 or not radii:
        raise ConfigError("target_pairs needs n_presets >= 1, n_params >= 1 and at least one radius")
    if any(not r > 0 for r in radii):
        raise ConfigError(f"radii must be > 0, got {list(radii)}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if base is None:
        base = torch.rand(n_presets, n_params, generator=gen, dtype=torch.float64)
    else:
        base = torch.as_tensor(base, dtype=torch.float64).cpu()
        if tuple(base.shape) != (n_presets, n_params):
            raise ConfigError(f"base must be ({n_presets}, {n_params}), got {tuple(base.shape)}")
    if pool is not None:
        pool = torch.as_tensor(pool, dtype=torch.float64).cpu()
        if pool.ndim != 2 or pool.shape[1] != n_params or len(pool) < 1:
            raise ConfigError(f"pool must be (M >= 1, {n_params}), got {tuple(pool.shape)}")
    xs, targets, rs = [], [], []
    for r in radii:
        u = torch.rand(n_presets, n_params, generator=gen, dtype=torch.float64) * 2.0 - 1.0
        if r >= 1.0 and pool is not None:  # another preset of the pool (never the start preset itself when M > 1)
            shift = torch.randint(1, max(len(pool), 2), (n_presets,), generator=gen)
            target = pool[(torch.arange(n_presets) + shift) % len(pool)]
        elif r >= 1.0:
            target = torch.rand(n_presets, n_params, generator=gen, dtype=torch.float64)
        else:
            delta = r * u / u.abs().amax(dim=1, keepdim=True)
            target = base + delta
            outside = (target < 0.0) | (target > 1.0)
            target = torch.where(outside, base - delta, target).clamp(0.0, 1.0)
        xs.append(base)
        targets.append(target)
        rs.append(torch.full((n_presets,), float(r), dtype=torch.float64))
    return PairSet(torch.cat(xs).to(dtype), torch.cat(targets).to(dtype), torch.cat(rs))


def _embed_batched(fn: PresetEmbedding, presets: Tensor, batch: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([fn(presets[i:i + batch]).detach() for i in range(0, presets.shape[0], batch)])


def _l1_grad(fn: PresetEmbedding, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row ``L1 = mean_d |fn(x) − t|`` ``(B,)`` and its gradient w.r.t. ``x`` ``(B, P)`` (rows independent)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        emb = fn(x)
        if emb.ndim != 2 or emb.shape[0] != x.shape[0]:
            raise ConfigError(f"an embedding must map (B, P) presets to (B, D), got {tuple(emb.shape)}")
        if emb.shape != t.shape:
            raise ConfigError(f"embedding {tuple(emb.shape)} and target {tuple(t.shape)} differ in shape")
        loss = (emb - t.to(device=emb.device, dtype=emb.dtype)).abs().mean(dim=1)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad.detach()


def gradient_comparison(
    proxy: PresetEmbedding,
    exact: PresetEmbedding,
    presets: Tensor,
    targets: Tensor | None = None,
    batch: int = 16,
    *,
    target_presets: Tensor | None = None,
    radius: Tensor | Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    sign_threshold: float = 1e-3,
) -> pd.DataFrame:
    """Compare the proxy's and the exact gradients of the L1 embedding loss on ``N`` preset–target pairs.

    Args:
        proxy, exact: the two :class:`PresetEmbedding` s (same embedding space).
        presets: ``(N, P)`` start presets ``x``.
        targets: ``(N, D)`` target embeddings ``t``; None: ``t = exact(target_presets)``.
        batch: pairs per forward/backward pass.
        target_presets: ``(N, P)`` held-out presets ``x_j`` (recorded distances ``‖x − x_j‖``; needed when
            ``targets`` is None).
        radius: ``(N,)`` radius of each pair (e.g. :attr:`PairSet.radius`), recorded for :func:`summary`.
        names: parameter names for the gradient columns (default ``p0 .. p{P-1}``).
        sign_threshold: parameters with ``|g_exact| <= sign_threshold · max_k |g_exact,k|`` of the pair are
            ignored by the sign agreement (no usable sign).

    Returns:
        One row per pair: ``pair``, ``radius``, ``distance_linf``, ``distance_l2`` (NaN without
        ``target_presets``), ``loss_exact`` / ``loss_proxy`` (``L1`` of each embedding to ``t``), ``cosine``,
        ``sign_agreement``, ``grad_norm_exact`` / ``grad_norm_proxy``, then ``gp__<name>`` and ``ge__<name>``:
        the two gradients. :func:`parameter_cosine` gives the cosine per parameter over the pairs.
    """
    if presets.ndim != 2:
        raise ConfigError(f"presets must be (N, P), got {tuple(presets.shape)}")
    n, p = presets.shape
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if targets is None:
        if target_presets is None:
            raise ConfigError("gradient_comparison needs targets or target_presets")
        targets = _embed_batched(exact, target_presets.to(presets), batch)
    if targets.ndim != 2 or targets.shape[0] != n:
        raise ConfigError(f"targets must be (N={n}, D), got {tuple(targets.shape)}")
    if target_presets is not None and tuple(target_presets.shape) != (n, p):
        raise ConfigError(f"target_presets must be ({n}, {p}), got {tuple(target_presets.shape)}")
    names = [f"p{k}" for k in range(p)] if names is None else list(names)
    if len(names) != p:
        raise ConfigError(f"{len(names)} names for {p} parameters")
    radii = np.full(n, np.nan) if radius is None else np.asarray(torch.as_tensor(radius, dtype=torch.float64))
    if radii.shape != (n,):
        raise ConfigError(f"radius must have shape ({n},), got {radii.shape}")

    losses: dict[str, list[np.ndarray]] = {"proxy": [], "exact": []}
    grads: dict[str, list[np.ndarray]] = {"proxy": [], "exact": []}
    for start in range(0, n, batch):
        x, t = presets[start:start + batch], targets[start:start + batch]
        for key, fn in (("proxy", proxy), ("exact", exact)):
            loss, grad = _l1_grad(fn, x, t)
            losses[key].append(loss.cpu().double().numpy())
            grads[key].append(grad.cpu().double().numpy())
    g_proxy, g_exact = np.concatenate(grads["proxy"]), np.concatenate(grads["exact"])
    if target_presets is None:
        d_inf = d_l2 = np.full(n, np.nan)
    else:
        diff = (presets.detach().double() - target_presets.detach().double().to(presets.device)).cpu().numpy()
        d_inf, d_l2 = np.abs(diff).max(axis=1), np.linalg.norm(diff, axis=1)
    frame = pd.DataFrame({
        "pair": np.arange(n), "radius": radii, "distance_linf": d_inf, "distance_l2": d_l2,
        "loss_exact": np.concatenate(losses["exact"]), "loss_proxy": np.concatenate(losses["proxy"]),
        "cosine": row_cosine(g_proxy, g_exact), "sign_agreement": sign_agreement(g_proxy, g_exact, sign_threshold),
        "grad_norm_exact": np.linalg.norm(g_exact, axis=1), "grad_norm_proxy": np.linalg.norm(g_proxy, axis=1),
    })
    grad_cols = {f"{GRAD_PREFIX['proxy']}{name}": g_proxy[:, k] for k, name in enumerate(names)}
    grad_cols |= {f"{GRAD_PREFIX['exact']}{name}": g_exact[:, k] for k, name in enumerate(names)}
    return pd.concat([frame, pd.DataFrame(grad_cols)], axis=1)


def summary(df: pd.DataFrame, bins: Sequence[float] | None = None) -> pd.DataFrame:
    """Mean ± std of ``cosine``, ``sign_agreement`` and ``loss_exact`` per radius (or per ``distance_linf`` bin
    when ``bins`` edges are given, or when no radius was recorded), and an ``all`` row.

    Columns: ``group``, ``n``, ``cosine_mean``, ``cosine_std``, ``sign_mean``, ``sign_std``, ``loss_exact_mean``,
    ``distance_linf_mean`` and the formatted ``cosine`` / ``sign_agreement`` (``"0.83 ± 0.10"``) for a table.
    """
    if bins is not None or df["radius"].isna().all():
        edges = np.asarray(bins if bins is not None else
                           np.quantile(df["distance_linf"].dropna(), [0, 0.25, 0.5, 0.75, 1.0]), dtype=float)
        keys = pd.cut(df["distance_linf"], np.unique(edges), include_lowest=True).astype(str)
    else:
        keys = df["radius"].map(lambda r: "inf" if math.isinf(r) else f"{r:g}")
    rows = []
    groups = [(key, part) for key, part in df.groupby(keys, sort=False)]
    if bins is None and not df["radius"].isna().all():
        groups.sort(key=lambda kp: float(kp[1]["radius"].iloc[0]))
    for key, part in [*groups, ("all", df)]:
        rows.append({
            "group": key, "n": len(part),
            "cosine_mean": part["cosine"].mean(), "cosine_std": part["cosine"].std(ddof=0),
            "sign_mean": part["sign_agreement"].mean(), "sign_std": part["sign_agreement"].std(ddof=0),
            "loss_exact_mean": part["loss_exact"].mean(), "distance_linf_mean": part["distance_linf"].mean(),
        })
    out = pd.DataFrame(rows)
    out["cosine"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(out["cosine_mean"], out["cosine_std"], strict=True)]
    out["sign_agreement"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(out["sign_mean"], out["sign_std"], strict=True)]
    return out
