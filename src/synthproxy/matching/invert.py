"""WAV → preset file: the musician's tool (``python -m synthproxy match IN.wav --synth dexed --out voice.syx``).

The sound (WAV/FLAC/OGG of any common rate, bit depth and channel count) is mixed to mono, resampled to the
estimator's rate and padded/trimmed to the render length (:func:`synthproxy.audio.io.load_audio`; bad files
get a one-line error), turned into the estimator's features, and the trained estimator predicts a preset,
decoded hard (what the synth can load). The preset is written in the synth's own file format (Dexed: a
163-byte DX7 single-voice dump, or a 32-voice cartridge with ``bank``; amSynth: a one-preset bank), then read
back from that file and rendered by the real engine to ``OUT.preview.wav``, whose spectral distances to the
input are reported.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthproxy.audio.io import load_audio
from synthproxy.errors import ConfigError
from synthproxy.matching.datasets import MatchingPlan, matching_models
from synthproxy.matching.estimator import load_estimator
from synthproxy.matching.evaluate import Judge, predict_logits
from synthproxy.pipeline.listen import write_audio
from synthproxy.presets.formats import get_format

log = logging.getLogger("synthproxy.matching")


def estimator_path(results: Path, synth: str, model: str) -> Path:
    return Path(results) / "matching" / synth / model / "best.pt"


def choose_model(cfg: dict[str, Any], strategy: str, relaxation: str | None) -> str:
    """The estimator name for ``strategy`` (and ``relaxation``), checked against the config's strategies."""
    models = matching_models(cfg["matching"])
    for name, (strat, relax) in models.items():
        if strat == strategy and (relax is None or relaxation is None or relax == relaxation):
            return name
    strategies = sorted({s for s, _ in models.values()})
    raise ConfigError(f"--strategy {strategy!r}{f' --relaxation {relaxation!r}' if relaxation else ''}: not trained "
                      f"by this config; strategies: {strategies}, relaxations: {cfg['matching']['relaxations']}")


def match_file(wav: Path, synth: str, out: Path, cfg: dict[str, Any], results: Path = Path("results"),
               strategy: str = "mix", relaxation: str | None = None, bank: bool = False) -> dict[str, Any]:
    """Predict a preset for ``wav``, write it to ``out`` and its preview render; returns a report."""
    t0 = time.perf_counter()
    plan = MatchingPlan(cfg, synth)
    fmt = get_format(plan.spec.preset_format or "")
    out = Path(out)
    if out.suffix.lower() != fmt.suffix:
        raise ConfigError(f"--out {out}: {synth} presets are {fmt.name} files; use a '{fmt.suffix}' file name")
    if bank and fmt.name != "dx7_sysex":
        raise ConfigError("--bank writes a 32-voice DX7 cartridge: only for Dexed")
    model = choose_model(cfg, strategy, relaxation)
    ckpt = estimator_path(results, synth, model)
    if not ckpt.is_file():
        target = ckpt.with_name("summary.json")
        raise ConfigError(f"no trained estimator at {ckpt}; build it with: snakemake --cores all {target}")
    device = torch.device("cpu")
    est = load_estimator(ckpt, plan, map_location=device)
    audio = load_audio(Path(wav), plan.sample_rate, plan.n_samples, min_seconds=0.1)
    feats = est.scaler(plan.features(audio[None]).numpy())
    preset = est.head.decode_hard(predict_logits(est.model, feats, device)).numpy()
    name = out.stem[:10] if fmt.name == "dx7_sysex" else out.stem
    if bank:
        fmt.write_bank(preset, plan.spec, out, [name])  # type: ignore[attr-defined]
    else:
        fmt.write(preset, plan.spec, out, [name])
    # the preview renders what the written file holds, read back by the format's own reader
    plugin, _ = fmt.read(out, plan.spec)
    judge = Judge(plan)
    preview = judge.core.render(plugin[0])
    scores = {k: float(v[0]) for k, v in judge.scores(audio[None], preview[None]).items()}
    judge.close()
    preview_path = out.with_name(out.stem + ".preview.wav")
    write_audio(preview_path, preview, plan.sample_rate)
    return {"input": str(wav), "synth": synth, "model": model, "estimator": str(ckpt), "preset_file": str(out),
            "format": fmt.name, "preview": str(preview_path), "distances": scores,
            "seconds": round(time.perf_counter() - t0, 3), "preset": np.asarray(preset[0]).tolist()}
