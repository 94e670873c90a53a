"""Synthetic vs hand-crafted presets in the audio embedding space (paper Sec. 7, Fig. 3).

* UMAP projections of the audio embeddings of both sets, fitted on their union, one panel per synth.
* Wasserstein-1 distances between the two sets (POT's exact earth mover's distance, uniform weights)
  with the Euclidean ground metric, on the embedding space and on the 2-D projection; subsamples of
  equal size, mean ± std over repeats. As a reference for "no shift", the same distance between two
  disjoint subsamples of the synthetic set is reported alongside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthproxy.data.store import open_store, read_valid, require_embedding
from synthproxy.errors import StoreError


def _rng(seed: int, tag: str) -> np.random.Generator:
    return np.random.default_rng([seed, int.from_bytes(tag.encode()[:8].ljust(8, b"\0"), "little")])


def load_sets(synthetic_store: Path, handcrafted_store: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of a synthetic split and of the valid hand-crafted presets (all splits)."""
    syn = np.asarray(require_embedding(open_store(synthetic_store), key, synthetic_store)[:])
    _, hc = read_valid(handcrafted_store, key)
    if len(hc) < 2 or len(syn) < 2:
        raise StoreError(f"too few presets to compare ({len(syn)} synthetic, {len(hc)} hand-crafted)")
    return syn.astype(np.float64), hc.astype(np.float64)


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between two equal-weight point clouds with the Euclidean ground metric."""
    import ot

    m = ot.dist(a, b, metric="euclidean")
    return float(ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), m, numItermax=1_000_000))


def wasserstein_repeats(syn: np.ndarray, hc: np.ndarray, n: int, repeats: int, seed: int) -> dict[str, float]:
    """Mean ± std of W1(synthetic, hand-crafted) and of W1(synthetic, synthetic) over subsamples."""
    rng = _rng(seed, "wasserstein")
    n = min(n, len(hc), len(syn) // 2)
    cross, within = [], []
    for _ in range(repeats):
        s = rng.permutation(len(syn))
        h = rng.choice(len(hc), n, replace=False)
        cross.append(wasserstein(syn[s[:n]], hc[h]))
        within.append(wasserstein(syn[s[:n]], syn[s[n:2 * n]]))
    return {"n": n, "w_mean": float(np.mean(cross)), "w_std": float(np.std(cross)),
            "w_ref_mean": float(np.mean(within)), "w_ref_std": float(np.std(within))}


def compare(pairs: dict[str, tuple[Path, Path]], key: str, settings: dict[str, Any]
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """UMAP projections and Wasserstein distances for every synth in ``pairs`` (synth → (synthetic, hand-crafted)).

    Returns the table rows (one per synth and space) and the projected points (synth, set, umap_1, umap_2).
    """
    import umap

    seed = int(settings["seed"])
    rows, frames = [], []
    for synth, (syn_path, hc_path) in pairs.items():
        syn, hc = load_sets(syn_path, hc_path, key)
        rng = _rng(seed, f"umap/{synth}")
        ns, nh = min(settings["umap_samples"], len(syn)), min(settings["umap_samples"], len(hc))
        si, hi = rng.choice(len(syn), ns, replace=False), rng.choice(len(hc), nh, replace=False)
        both = np.concatenate([syn[si], hc[hi]])
        mu, sd = both.mean(0), both.std(0) + 1e-8  # standardise features: UMAP's metric then weighs them equally
        reducer = umap.UMAP(n_neighbors=settings["umap_neighbors"], min_dist=settings["umap_min_dist"],
                            random_state=seed, n_jobs=1)
        proj = reducer.fit_transform((both - mu) / sd)
        frames.append(pd.DataFrame({"synth": synth, "set": ["synthetic"] * ns + ["hand-crafted"] * nh,
                                    "umap_1": proj[:, 0], "umap_2": proj[:, 1]}))
        emb = wasserstein_repeats(syn, hc, settings["wasserstein_samples"], settings["repeats"], seed)
        # the projection of the UMAP sample: both sets' points as projected
        p2 = wasserstein_repeats(proj[:ns], proj[ns:], settings["wasserstein_samples"], settings["repeats"], seed)
        rows.append({"synth": synth, "space": f"embedding ({key}, {syn.shape[1]} dims)", "n per set": emb["n"],
                     "W1 synthetic vs hand-crafted": f"{emb['w_mean']:.3f} ± {emb['w_std']:.3f}",
                     "W1 synthetic vs synthetic (reference)": f"{emb['w_ref_mean']:.3f} ± {emb['w_ref_std']:.3f}",
                     "ratio": round(emb["w_mean"] / max(emb["w_ref_mean"], 1e-12), 2)})
        rows.append({"synth": synth, "space": "UMAP 2-D projection", "n per set": p2["n"],
                     "W1 synthetic vs hand-crafted": f"{p2['w_mean']:.3f} ± {p2['w_std']:.3f}",
                     "W1 synthetic vs synthetic (reference)": f"{p2['w_ref_mean']:.3f} ± {p2['w_ref_std']:.3f}",
                     "ratio": round(p2["w_mean"] / max(p2["w_ref_mean"], 1e-12), 2)})
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True)


def settings_from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    d = cfg["distribution"]
    return {"seed": int(cfg["seed"]), "umap_samples": d["umap_samples"], "umap_neighbors": d["umap_neighbors"],
            "umap_min_dist": d["umap_min_dist"], "wasserstein_samples": d["wasserstein_samples"],
            "repeats": d["repeats"]}

