"""Sound-attribute ranking evaluation of audio representations (paper Sec. 5.1, Fig. 2).

For each parameter group, random base presets (valid by the RMS filter, the group's fixed values set) have one
parameter swept monotonically in ``steps`` values. A representation embeds the sounds, a temporal
reduction is applied, and the pairwise L1 distances rank the sounds by distance to the first and to the
last step; the Spearman correlation of each ranking with the true order is one score ("ranking"). A
group's score is the mean ± std over its presets × 2 rankings.

Per group, the job renders each base preset's sweep, embeds it with every representation and keeps
only the correlations, so memory stays at one sweep of audio whatever the representation sizes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import spearmanr

from synthproxy.audio.registry import get_representation
from synthproxy.audio.representations import REDUCTIONS, Representation
from synthproxy.data.atomic import write_json_atomic, write_text_atomic
from synthproxy.errors import ConfigError, PluginNotFoundError, SpecError, StoreError
from synthproxy.presets.sampling import PresetSampler
from synthproxy.render import RenderConfig, RenderEmbedder
from synthproxy.synths.spec import SynthSpec, load_spec

log = logging.getLogger(__name__)


def slug(name: str) -> str:
    """File-name form of a group name ("amp attack" → "amp_attack")."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


@dataclass(frozen=True)
class RankingGroup:
    name: str
    param: str
    category: str
    bipolar: bool = False
    range: tuple[float, float] = (0.0, 1.0)
    fixed: tuple[tuple[str, float], ...] = ()


def load_groups(path: str | Path, spec: SynthSpec) -> list[RankingGroup]:
    """Read a ranking-group YAML and check every parameter name against the synth's spec."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ranking groups file not found: {path}")
    raw = yaml.safe_load(path.read_text())
    names = {p.name for p in spec.params}
    groups = []
    for i, g in enumerate(raw.get("groups", [])):
        unknown = set(g) - {"name", "param", "category", "bipolar", "range", "fixed"}
        if unknown:
            raise ConfigError(f"{path}: groups[{i}]: unknown key(s) {sorted(unknown)}")
        for p in [g["param"], *g.get("fixed", {})]:
            if p not in names:
                raise SpecError(f"{path}: groups[{i}] ('{g['name']}'): '{p}' is not a parameter of {spec.name}")
        lo, hi = g.get("range", [0.0, 1.0])
        groups.append(RankingGroup(g["name"], g["param"], g.get("category", ""), bool(g.get("bipolar", False)),
                                   (float(lo), float(hi)), tuple(sorted(g.get("fixed", {}).items()))))
    if not groups:
        raise ConfigError(f"{path}: no 'groups'")
    if len({g.name for g in groups}) != len(groups):
        raise ConfigError(f"{path}: group names must be unique")
    return groups


def sweep_values(spec: SynthSpec, group: RankingGroup, steps: int, preset_index: int) -> np.ndarray:
    """Monotonically increasing plugin values for the swept parameter of one base preset."""
    p = spec.params[[q.name for q in spec.params].index(group.param)]
    lo, hi = group.range
    if group.bipolar:  # alternate sides, never crossing the midpoint
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if preset_index % 2 == 0 else (mid, hi)
    if p.values is not None:
        vals = np.array([v for v in p.values if lo - 1e-9 <= v <= hi + 1e-9])
        return vals if len(vals) <= steps else vals[np.round(np.linspace(0, len(vals) - 1, steps)).astype(int)]
    return np.linspace(lo, hi, steps)


def spearman_scores(emb: np.ndarray, exclude_anchor: bool = True) -> tuple[float, float]:
    """Spearman correlations of the L1-distance rankings to the first and to the last step.

    ``exclude_anchor`` (the official score) leaves the anchor sound out of its own ranking: it is always
    nearest to itself, and keeping it inflates the score: a representation of pure noise then scores
    ``3 / (n + 1)`` on average for ``n`` steps (0.14 at 20 steps) instead of 0. ``False`` reproduces that variant.
    """
    d = np.abs(emb[:, None, :] - emb[None, :, :]).sum(-1, dtype=np.float64)
    order = np.arange(len(emb))
    first, last = (slice(1, None), slice(None, -1)) if exclude_anchor else (slice(None), slice(None))
    rho_min = spearmanr(d[0][first], order[first]).statistic
    rho_max = spearmanr(d[-1][last], order[::-1][last]).statistic
    return float(np.nan_to_num(rho_min)), float(np.nan_to_num(rho_max))


def _labelled_representations(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for e in entries:
        label = e.get("label", e["name"])
        if label in out:
            raise ConfigError(f"ranking.representations: label '{label}' appears twice")
        out[label] = e
    return out


def rank_group(spec: SynthSpec, plugin: str | None, groups_path: Path, group_name: str,
               settings: dict[str, Any], out_csv: Path, out_json: Path) -> pd.DataFrame:
    """Render, embed and score one group; write the per-ranking scores and the skipped representations."""
    groups = {slug(g.name): g for g in load_groups(groups_path, spec)}
    if slug(group_name) not in groups:
        raise ConfigError(f"unknown ranking group '{group_name}'; {groups_path} defines {sorted(groups)}")
    group = groups[slug(group_name)]
    r = settings["render"]
    n_presets, steps = int(settings["presets_per_group"]), int(settings["steps"])

    reps: dict[str, Representation] = {}
    skipped: dict[str, str] = {}
    for label, e in _labelled_representations(settings["representations"]).items():
        rep = get_representation(e["name"], **e.get("options", {}))
        try:  # learned models resolve their weights here: no weights → skipped with the reason
            rep(torch.zeros(1, max(rep.min_samples, rep.sample_rate)), "avg")
        except (PluginNotFoundError, SpecError) as exc:
            skipped[label] = str(exc)
            log.warning("ranking: skipping %s: %s", label, exc)
            continue
        reps[label] = rep
    if not reps:
        raise ConfigError(f"ranking: no representation available (skipped: {skipped})")
    reductions = settings.get("reductions", list(REDUCTIONS))
    core = RenderEmbedder(spec, RenderConfig.from_config(settings["render"]),
                          {(label, red): (rep, red) for label, rep in reps.items() for red in reductions}, plugin)
    names = [p.name for p in spec.params]
    col = names.index(group.param)
    fixed = [(names.index(k), v) for k, v in group.fixed]
    sampler = PresetSampler(spec, settings["seed"], f"ranking/{group.name}")
    rows, rejected = [], 0
    for j in range(n_presets):
        values = sweep_values(spec, group, steps, j)
        for attempt in range(int(r["max_attempts"])):
            # The base preset (random values, group's fixed values applied) must pass the RMS filter, as in
            # the paper; the sweep itself may reach quiet settings (e.g. the shortest decays).
            base = spec.to_plugin(sampler.sample_one(j, attempt)[None])[0]
            for k, v in fixed:
                base[k] = v
            if core.check(core.render(base)).ok:
                sweep = np.tile(base, (len(values), 1))
                sweep[:, col] = values
                audio = {core.primary: [core.render(v) for v in sweep]}
                if all(np.isfinite(a).all() for a in audio[core.primary]):
                    break
            rejected += 1
        else:
            raise StoreError(f"ranking group '{group.name}', preset {j}: no valid base preset in "
                             f"{r['max_attempts']} attempts; check the group's fixed values")
        for sr in core.sample_rates[1:]:
            audio[sr] = [core.render(v, sr) for v in sweep]
        embs = core.embed({sr: np.stack(a) for sr, a in audio.items()})
        for (label, red), emb in embs.items():
            rho_min, rho_max = spearman_scores(emb, settings.get("exclude_anchor", True))
            for anchor, rho in (("min", rho_min), ("max", rho_max)):
                rows.append({"synth": spec.name, "group": group.name, "param": group.param,
                             "category": group.category, "preset": j, "attempt": attempt,
                             "representation": label, "reduction": red, "dim": emb.shape[1],
                             "anchor": anchor, "spearman": rho})
    df = pd.DataFrame(rows)
    write_text_atomic(out_csv, df.to_csv(index=False))
    write_json_atomic(out_json, {"skipped": skipped, "rejected_base_presets": rejected, "evaluated": sorted(reps),
                                 "exclude_anchor": bool(settings.get("exclude_anchor", True))})
    return df


def ranking_group(cfg: dict[str, Any], synth: str, group: str, out_csv: Path, out_json: Path) -> pd.DataFrame:
    """The ``ranking-group`` step: one group of ``ranking.synths.<synth>`` with the config's settings."""
    if "ranking" not in cfg or synth not in cfg["ranking"]["synths"]:
        raise ConfigError(f"ranking.synths has no entry for '{synth}'")
    rk = cfg["ranking"]
    render = cfg["render"] | dict(cfg["synths"][synth].get("render", {}))
    settings = {"render": render, "seed": cfg["seed"] + rk["seed"], "presets_per_group": rk["presets_per_group"],
                "steps": rk["steps"], "representations": rk["representations"], "reductions": rk["reductions"],
                "exclude_anchor": rk["exclude_anchor"]}
    s = cfg["synths"][synth]
    return rank_group(load_spec(s["spec"]), s.get("plugin"), Path(rk["synths"][synth]), group, settings, out_csv,
                      out_json)
