"""Sound-matching tables (paper 1 Tables 5-6 analogs), the proxy-finetuning table and the listening page.

The listening page puts, for a fixed set of test sounds per synth and set, the target and every model's match
side by side: plain ``<audio>`` elements and mel-spectrogram images. Two copies are written: one with relative
links to the WAV/PNG files next to it (for a browser opening ``results/tables``) and one self-contained (files
embedded as ``data:`` URIs) for the Snakemake report, whose pages cannot resolve relative links. The report shows
a page as one ``data:`` URL in an iframe, and Chromium drops URLs over 2 MiB, so the self-contained copy carries
compact media (22.05 kHz MP3, small spectrograms) and as many sounds per section as fit ``REPORT_PAGE_BYTES``;
it names the full page for the rest.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synthproxy.data.atomic import atomic_dir, write_text_atomic
from synthproxy.report.figures import pyplot, save_figure
from synthproxy.report.tables import write_table

AUDIO = ("stft", "mstft", "mel", "mfccd")
PARAMS = ("num_l1", "bin_acc", "cat_acc")
LOWER_IS_BETTER = {"stft", "mstft", "mel", "mfccd", "num_l1", "a_mean"}
# The report base64-encodes the page again (x 4/3) into a data: URL that must stay under Chromium's 2 MiB.
REPORT_PAGE_BYTES = 1_300_000
REPORT_AUDIO_RATE = 22050


def _load(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(Path(p).read_text()) for p in paths]


def _table(results: list[dict[str, Any]], section: str, metrics: tuple[str, ...], out_prefix: Path,
           caption: str) -> pd.DataFrame:
    rows = []
    for r in results:
        if section not in r:
            continue
        row = {"synth": r["synth"], "schedule": r["strategy"], "relaxation": r["relaxation"] or "-"}
        for m in metrics:
            if m in r[section]:
                row[m] = r[section][m]["mean"]
                row[f"{m}_std"] = r[section][m].get("std", float("nan"))
        rows.append(row)
    long = pd.DataFrame(rows)
    cols = [m for m in metrics if m in long.columns]
    shown = long[["synth", "schedule", "relaxation"]].copy()
    bold: dict[str, set[int]] = {}
    for m in cols:
        shown[m] = [f"{v:.4f}" if np.isfinite(v) else "" for v in long[m]]
        bold[m] = set()
        for _, idx in long.groupby("synth").groups.items():
            vals = long.loc[idx, m]
            if vals.notna().any():
                best = vals.idxmin() if m in LOWER_IS_BETTER else vals.idxmax()
                bold[m].add(int(best))
    write_table(shown, out_prefix, caption, bold=bold, csv=long)
    return shown


def matching_tables(results: list[Path], out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``matching_in_domain.*`` (Table 5 analog) and ``matching_out_of_domain.*`` (Table 6 analog)."""
    res = _load(results)
    n_in = {r["synth"]: r["in_domain"].get("stft", {}).get("n") for r in res}
    n_out = {r["synth"]: r.get("out_of_domain", {}).get("stft", {}).get("n") for r in res}
    common = ("Predictions rendered by the real synth and compared with the target: auraloss STFT, multi-"
              "resolution STFT and mel distances, MFCCD (lower is better); best per synth in bold. Schedules: PLoss "
              "(parameter loss only), Mix and Switch (audio-embedding loss through the frozen proxy, ramped in "
              "between 1/3 and 2/3 of training). Relaxation: how predictions reach the proxy, hard (official: "
              "sigmoid/round/argmax) or soft (probabilities; ours).")
    in_dom = _table(res, "in_domain", AUDIO + PARAMS, out_dir / "matching_in_domain",
                    f"Sound matching on in-domain sounds (hand-crafted test presets: "
                    f"{', '.join(f'{k} {v}' for k, v in n_in.items())}). {common} num_l1: mean absolute error of "
                    "numerical parameters; bin_acc, cat_acc: accuracy of binary and categorical parameters.")
    out_dom = _table(res, "out_of_domain", AUDIO, out_dir / "matching_out_of_domain",
                     f"Sound matching on out-of-domain sounds (NSynth-style test notes: "
                     f"{', '.join(f'{k} {v}' for k, v in n_out.items())}). {common}")
    return in_dom, out_dom


def finetune_table(summaries: list[Path], out_prefix: Path) -> pd.DataFrame:
    """The proxies' hand-crafted test scores before and after finetuning on the hand-crafted train split."""
    rows, long = [], []
    for s in _load(summaries):
        entry = {"synth": s["synth"], "proxy": s["arch"]}
        for when in ("before", "after"):
            b = s[when]
            entry[f"L1 {when}"] = f"{b['l1_mean']:.4f} ± {b['l1_std']:.4f}"
            entry[f"MRR a→p {when}"] = f"{b['mrr_audio_to_preset_mean']:.4f} ± {b['mrr_audio_to_preset_std']:.4f}"
            long.append({"synth": s["synth"], "proxy": s["arch"], "when": when, "n_test": s["n_test"],
                         **{k: b[k] for k in ("l1_mean", "l1_std", "mrr_audio_to_preset_mean",
                                              "mrr_audio_to_preset_std", "mrr_preset_to_audio_mean",
                                              "mrr_preset_to_audio_std", "k")}})
        rows.append(entry)
    table = pd.DataFrame(rows)
    k = long[0]["k"] if long else 0
    write_table(table, out_prefix, "Proxies on hand-crafted test presets before and after finetuning on the "
                f"hand-crafted training split (paper 1 Sec. 8): mean L1 and MRR (audio → preset, K = {k}), "
                "mean ± std over runs.", csv=pd.DataFrame(long))
    return table


def _mel_png(audio: np.ndarray, sample_rate: int, path: Path, dpi: int = 80) -> None:
    from synthproxy.audio.features import LogMel

    mel = LogMel(sample_rate=sample_rate, n_fft=2048, hop=512, n_mels=128, pre_emphasis=0.0)(audio[None])[0].numpy()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(3.2, 1.6))
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", vmin=mel.max() - 80, vmax=mel.max())
    ax.set_axis_off()
    fig.subplots_adjust(0, 0, 1, 1)
    save_figure(fig, path, dpi=dpi)


def _compact_media(wav: Path, scratch: Path) -> dict[str, str]:
    """``data:`` URIs of a small MP3 (22.05 kHz, ~24 kbit/s) and a 128 x 64 spectrogram of ``wav``."""
    import librosa
    import soundfile as sf

    audio, sr = sf.read(wav, dtype="float32")
    _mel_png(audio, sr, scratch / "mel.png", dpi=40)
    small = librosa.resample(audio, orig_sr=sr, target_sr=REPORT_AUDIO_RATE) if sr != REPORT_AUDIO_RATE else audio
    buf = io.BytesIO()
    sf.write(buf, np.clip(small, -1.0, 1.0), REPORT_AUDIO_RATE, format="MP3", subtype="MPEG_LAYER_III",
             compression_level=0.9, bitrate_mode="CONSTANT")
    return {"png": "data:image/png;base64," + base64.b64encode((scratch / "mel.png").read_bytes()).decode(),
            "mp3": "data:audio/mpeg;base64," + base64.b64encode(buf.getvalue()).decode()}


def listening_page(results: list[Path], examples_dirs: list[Path], page: Path, report_page: Path) -> None:
    """The listening page (relative links, with its files in ``<page stem>/``) and a self-contained copy."""
    import soundfile as sf

    res = _load(results)
    folder = page.with_suffix("")
    sections: dict[tuple[str, str], dict[str, Any]] = {}
    with atomic_dir(folder) as tmp:
        for r, ex_dir in zip(res, examples_dirs, strict=True):
            for ex in r.get("examples", []):
                key = (r["synth"], ex["set"])
                sec = sections.setdefault(key, {"examples": {}, "models": []})
                if r["model"] not in sec["models"]:
                    sec["models"].append(r["model"])
                item = sec["examples"].setdefault(ex["index"], {"name": ex["name"], "cells": {}})
                for role in ("target", "match"):
                    src = Path(ex_dir) / ex["files"][role]
                    if role == "target" and "target" in item["cells"]:
                        continue
                    stem = f"{r['synth']}_{ex['set']}_{ex['index']}_{'target' if role == 'target' else r['model']}"
                    shutil.copy2(src, tmp / f"{stem}.wav")
                    audio, sr = sf.read(tmp / f"{stem}.wav", dtype="float32")
                    _mel_png(audio, sr, tmp / f"{stem}.png")
                    item["cells"]["target" if role == "target" else r["model"]] = stem
    body_rel = _page_body(sections, lambda stem, ext: f"{folder.name}/{stem}.{ext}")
    write_text_atomic(page, _html(body_rel))
    write_text_atomic(report_page, _html(_report_body(sections, folder, page.name)))


def _report_body(sections: dict[tuple[str, str], dict[str, Any]], folder: Path, page_name: str) -> str:
    """The self-contained body: sounds taken round-robin over sections while the page fits REPORT_PAGE_BYTES."""
    media: dict[str, dict[str, str]] = {}
    kept: dict[tuple[str, str], dict[str, Any]] = {
        key: {"models": sec["models"], "examples": {}} for key, sec in sections.items()}
    queues = {key: sorted(sec["examples"].items()) for key, sec in sections.items()}
    size, total, depth = 0, sum(len(q) for q in queues.values()), 0
    full = False
    with tempfile.TemporaryDirectory() as scratch:
        while not full and any(depth < len(q) for q in queues.values()):
            for key in sorted(queues):
                if depth >= len(queues[key]):
                    continue
                index, item = queues[key][depth]
                new = {stem: _compact_media(folder / f"{stem}.wav", Path(scratch))
                       for stem in item["cells"].values() if stem not in media}
                cost = sum(len(m["png"]) + len(m["mp3"]) for m in new.values()) + 2000
                if size + cost > REPORT_PAGE_BYTES:
                    full = True
                    break
                media.update(new)
                size += cost
                kept[key]["examples"][index] = item
            depth += 1
    shown = sum(len(sec["examples"]) for sec in kept.values())
    note = (f"<p>All {total} sounds are shown.</p>" if shown == total else
            f"<p>{shown} of {total} sounds are shown here, as compact MP3s; every sound, as WAV, is on "
            f"<code>results/analysis/{html.escape(page_name)}</code>.</p>")
    return note + _page_body(kept, lambda stem, ext: media[stem]["mp3" if ext == "wav" else "png"])


def _page_body(sections: dict[tuple[str, str], dict[str, Any]], src) -> str:
    parts = []
    for (synth, kind), sec in sorted(sections.items()):
        models = sec["models"]
        parts.append(f"<h2>{html.escape(synth)}: {'in-domain' if kind == 'in_domain' else 'out-of-domain'} sounds</h2>")
        parts.append("<table><tr><th>sound</th><th>target</th>" + "".join(
            f"<th>{html.escape(m)}</th>" for m in models) + "</tr>")
        for _, item in sorted(sec["examples"].items()):
            cells = [f"<td>{html.escape(item['name'])}</td>"]
            for col in ["target", *models]:
                stem = item["cells"].get(col)
                cells.append("<td></td>" if stem is None else (
                    f'<td><img src="{src(stem, "png")}" alt="mel spectrogram {html.escape(col)}"><br>'
                    f'<audio controls preload="metadata" src="{src(stem, "wav")}"></audio></td>'))
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</table>")
    return "\n".join(parts)


def _html(body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sound matching examples</title>"
            "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px;text-align:center;font-size:12px}img{width:240px;height:120px}audio{width:240px}</style>"
            "</head><body><h1>Sound matching: targets and matches</h1><p>Each match is the estimator's preset "
            "rendered by the real synth. Mel spectrograms: 128 bands, 80 dB range.</p>\n" + body + "\n</body></html>\n")
