"""Judging sound matching by rendering the predictions on the real synth (paper 1 Sec. 8, Fig. 4 b-c).

:class:`Judge` renders predicted presets through the render core (the same engine, settings and fade-out as
every other stage) and compares them with the target audio using the paper's metrics (auraloss STFT,
multi-resolution STFT, mel; MFCCD; ``a_mean`` for model selection; :mod:`synthproxy.metrics.audio`). The
estimator's validation during training and the final test evaluation both use it, in-domain (targets: the
hand-crafted presets rendered the same way; parameter metrics too) and out-of-domain (targets: the sound set's
clips at the render rate and length).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthproxy.audio.features import MinMaxScaler
from synthproxy.data.atomic import write_json_atomic
from synthproxy.matching.datasets import MatchingPlan, load_split, out_of_domain_audio
from synthproxy.matching.estimator import load_estimator
from synthproxy.metrics.audio import a_mean, compute_audio_metrics
from synthproxy.render import RenderEmbedder

log = logging.getLogger("synthproxy.matching")
PAPER1_METRICS = ("stft", "mstft", "mel", "mfccd")


class Judge:
    """Render presets on the real synth and score them against target audio."""

    def __init__(self, plan: MatchingPlan, metrics: tuple[str, ...] = PAPER1_METRICS) -> None:
        self.plan = plan
        self.metrics = tuple(metrics)
        self.core: RenderEmbedder = plan.core()

    def render(self, presets: np.ndarray) -> np.ndarray:
        """``(N, P)`` preset vectors → ``(N, n_samples)`` float32 audio at the proxy's rate."""
        plugin = self.plan.spec.to_plugin(np.asarray(presets, dtype=np.float32))
        return np.stack([self.core.render(v) for v in plugin])

    def scores(self, target: np.ndarray, estimate: np.ndarray) -> dict[str, np.ndarray]:
        """Per-example metrics ``{name: (N,)}`` (and ``a_mean`` when the four paper-1 metrics are present)."""
        out = compute_audio_metrics(target, estimate, self.plan.sample_rate, list(self.metrics))
        if all(m in out for m in PAPER1_METRICS):
            out["a_mean"] = a_mean(out["stft"], out["mstft"], out["mel"], out["mfccd"])
        return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}

    def close(self) -> None:
        self.core.close()


def predict_logits(model: torch.nn.Module, features: np.ndarray, device: torch.device, batch: int = 64
                   ) -> torch.Tensor:
    """The estimator's logits for scaled features ``(N, bands, frames)`` (eval mode, no gradients), on CPU."""
    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(features), batch):
            x = torch.from_numpy(np.ascontiguousarray(features[s:s + batch]))[:, None].to(device)
            out.append(model(x).float().cpu())
    return torch.cat(out)


def _summary(values: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "n": int(np.isfinite(v).sum())}
            for k, v in values.items()}


def evaluate_estimator(estimator: Path, plan: MatchingPlan, matching_store: Path, ood_store: Path | None,
                       out_json: Path, examples_dir: Path | None, n_examples: int, ood_limit: int | None,
                       device: torch.device) -> dict[str, Any]:
    """Test an estimator in-domain (hand-crafted test split) and out-of-domain; write scores and examples."""
    est = load_estimator(estimator, plan, map_location=device)
    judge = Judge(plan, tuple(plan.m["evaluation"]["metrics"]))
    result: dict[str, Any] = {"synth": plan.synth, "model": est.meta["model_name"], "strategy": est.meta["strategy"],
                              "relaxation": est.meta["relaxation"], "checkpoint": str(estimator),
                              "epoch": est.meta.get("epoch"), "sample_rate": plan.sample_rate}
    examples: list[dict[str, Any]] = []
    test = load_split(matching_store, "test", est.scaler)
    logits = predict_logits(est.model, test.features, device)
    pred = est.head.decode_hard(logits).numpy()
    target_audio = judge.render(test.presets)
    pred_audio = judge.render(pred)
    scores = judge.scores(target_audio, pred_audio)
    result["in_domain"] = _summary(scores) | {
        k: {"mean": v, "n": len(pred)} for k, v in est.head.parameter_metrics(logits, torch.from_numpy(
            test.presets)).items()}
    examples += _examples("in_domain", target_audio, pred_audio, [f"preset {r}" for r in test.rows], n_examples)
    if ood_store is not None:
        audio, meta = out_of_domain_audio(ood_store, "test", plan.sample_rate, plan.n_samples, ood_limit)
        feats = est.scaler(plan.features(audio).numpy())
        ood_pred = est.head.decode_hard(predict_logits(est.model, feats, device)).numpy()
        ood_audio = judge.render(ood_pred)
        result["out_of_domain"] = _summary(judge.scores(audio, ood_audio))
        examples += _examples("out_of_domain", audio, ood_audio, [str(n) for n in meta["note_id"]], n_examples)
    judge.close()
    if examples_dir is not None:
        result["examples"] = write_examples(examples, examples_dir, plan.sample_rate)
    write_json_atomic(out_json, result)
    return result


def _examples(kind: str, target: np.ndarray, pred: np.ndarray, names: list[str], n: int) -> list[dict[str, Any]]:
    return [{"set": kind, "index": i, "name": names[i], "target": target[i], "match": pred[i]}
            for i in range(min(n, len(target)))]


def write_examples(examples: list[dict[str, Any]], folder: Path, sample_rate: int) -> list[dict[str, Any]]:
    """Each example's target and match as a 16-bit WAV in ``folder`` (the report draws their spectrograms)."""
    import soundfile as sf

    from synthproxy.data.atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for ex in examples:
        files = {}
        for role in ("target", "match"):
            name = f"{ex['set']}_{ex['index']}_{role}.wav"
            with atomic_path(folder / name) as tmp:
                sf.write(tmp, np.clip(ex[role], -1, 1), sample_rate, subtype="PCM_16", format="WAV")
            files[role] = name
        out.append({"set": ex["set"], "index": ex["index"], "name": ex["name"], "files": files})
    return out


__all__ = ["Judge", "MinMaxScaler", "evaluate_estimator", "predict_logits", "write_examples"]
