"""Sound matching with neural proxies: schedules, relaxations, preset files written and read back, the WAV tool.

The end-to-end path (features → finetuning → estimators → evaluation → tables) runs in the tiny workflow
(tests/test_workflow_e2e.py); here are its parts on small real inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from synthproxy.cli import main
from synthproxy.errors import ConfigError
from synthproxy.matching.losses import TERMS, ProxyEmbeddingLoss
from synthproxy.matching.schedules import strategies_from_config
from synthproxy.nn.factory import build_encoder
from synthproxy.nn.heads import PresetHead
from synthproxy.presets.formats import get_format
from synthproxy.presets.sampling import PresetSampler
from synthproxy.render import RenderConfig, RenderEmbedder
from synthproxy.synths.spec import load_spec


# ---- schedules ---------------------------------------------------------------------------------------
def _strategies():
    from synthproxy.config import load_schema

    default = load_schema()["properties"]["matching"]["properties"]["strategies"]["default"]
    return strategies_from_config(default, TERMS, "matching.strategies")


def test_paper_schedules_weights_at_given_steps():
    """Official loss scheduler: linear ramps between 1/3 and 2/3 of all steps, held outside."""
    s = _strategies()
    total = 900
    assert s["ploss"].weights_at(0, total) == {"param": 1.0, "audio": 0.0}
    assert s["ploss"].weights_at(899, total) == {"param": 1.0, "audio": 0.0}
    mix, switch = s["mix"], s["switch"]
    assert mix.weights_at(0, total) == pytest.approx({"param": 1.0, "audio": 0.0})
    assert mix.weights_at(299, total) == pytest.approx({"param": 1.0, "audio": 0.0})  # before 0.333
    mid = total * (0.333 + 0.667) / 2  # halfway through the ramp
    assert mix.weights_at(int(mid), total) == pytest.approx({"param": 0.75, "audio": 2.5}, abs=0.01)
    assert mix.weights_at(700, total) == pytest.approx({"param": 0.5, "audio": 5.0})  # after 0.667: held
    assert switch.weights_at(899, total) == pytest.approx({"param": 0.0, "audio": 10.0})
    assert switch.weights_at(int(mid), total) == pytest.approx({"param": 0.5, "audio": 5.0}, abs=0.01)
    assert {n for n, st in s.items() if "audio" in st.uses} == {"mix", "switch"}


def test_schedule_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"matching.strategies.bad.weights: unknown loss term 'spectral'"):
        strategies_from_config({"bad": {"weights": {"spectral": 1}}}, TERMS, "matching.strategies")
    with pytest.raises(ConfigError, match="fractions must be increasing"):
        strategies_from_config({"bad": {"weights": {"param": [[0.5, 1], [0.2, 0]]}}}, TERMS, "matching.strategies")
    with pytest.raises(ConfigError, match="sources"):
        strategies_from_config({"bad": {"weights": {"param": 1}, "data": [[0, "nowhere"]]}}, TERMS, "s")


def test_data_phases_for_paper_2_strategies():
    raw = {"real": {"weights": {"param": 1}, "data": [[0, "in_domain"], [0.5, "out_of_domain"]]}}
    real = strategies_from_config(raw, TERMS, "s")["real"]
    assert real.source_at(0, 100) == "in_domain" and real.source_at(49, 100) == "in_domain"
    assert real.source_at(50, 100) == "out_of_domain" and real.needs_out_of_domain


# ---- relaxations: the audio loss reaches categorical logits only in soft mode --------------------------
@pytest.mark.parametrize("arch", ["hn_oh", "tfm"])
def test_relaxation_gradients(arch):
    spec = load_spec("config/synths/amsynth.yaml")  # numerical, binary and categorical parameters
    torch.manual_seed(0)
    proxy = build_encoder(arch, spec.layout, 16, **({"d_token": 16, "num_layers": 1, "num_heads": 2}
                                                     if arch == "tfm" else {"d_hidden": 32, "num_layers": 2}))
    head = PresetHead(spec.layout)
    target = torch.randn(4, 16)
    grads = {}
    for relaxation in ("hard", "soft"):
        logits = torch.randn(4, head.n_logits, requires_grad=True)
        ProxyEmbeddingLoss(proxy, head, relaxation)(logits, target).backward()
        num, binary, cats = head.split(logits.grad)
        grads[relaxation] = (num.abs().sum(), binary.abs().sum(), sum(c.abs().sum() for c in cats))
    assert grads["hard"][0] > 0 and grads["hard"][1] == 0 and grads["hard"][2] == 0
    assert all(g > 0 for g in grads["soft"])
    assert all(not p.requires_grad for p in proxy.parameters())  # the proxy stays frozen


# ---- preset files: written, read back, rendered identically ----------------------------------------------
@pytest.mark.parametrize("synth", ["dexed", "amsynth"])
def test_written_preset_file_renders_like_the_predicted_vector(synth, tmp_path, amsynth_plugin):
    spec = load_spec(f"config/synths/{synth}.yaml")
    fmt = get_format(spec.preset_format)
    presets = PresetSampler(spec, 5, "files").sample(np.arange(3))
    presets[:, [i for i, p in enumerate(spec.used) if p.kind == "num"]] += 0.0031  # off the sampling grid
    presets = np.clip(presets, 0, 1)
    path = fmt.write(presets[:1], spec, tmp_path / f"one{fmt.suffix}", ["my sound"])
    if synth == "dexed":
        assert path.stat().st_size == 163 and path.read_bytes()[:6] == bytes([0xF0, 0x43, 0x00, 0x00, 0x01, 0x1B])
    else:
        assert path.read_text().startswith("amSynth\n<preset> <name> my sound\n") and path.read_text().endswith("EOF\n")
    core = RenderEmbedder(spec, RenderConfig(), plugin=amsynth_plugin, sample_rates=[22050])
    back, names = fmt.read(path, spec)
    assert len(back) == 1 and names[0].strip().lower().startswith("my sound")
    np.testing.assert_array_equal(core.render(back[0]), core.render(spec.to_plugin(presets[:1])[0]))
    if synth == "dexed":  # a 32-voice cartridge: the written voices first, then INIT voices
        bank = fmt.write_bank(presets, spec, tmp_path / "bank.syx", ["a", "b", "c"])
        assert bank.stat().st_size == 4104
        vecs, names = fmt.read(bank, spec)
        assert len(vecs) == 32 and names[:3] == ["a", "b", "c"]
        for i in range(3):
            np.testing.assert_array_equal(core.render(vecs[i]), core.render(spec.to_plugin(presets[i:i + 1])[0]))
    core.close()


def test_amsynth_plugin_itself_loads_the_written_bank_with_the_same_values(tmp_path, amsynth_plugin):
    """The written text reads back in amSynth's own loader as exactly the values the host would set."""
    from synthproxy.presets.formats import amsynth_bank as ab

    from . import amsynth_plugin as ap

    spec = load_spec("config/synths/amsynth.yaml")
    presets = PresetSampler(spec, 9, "bank").sample(np.arange(4))
    path = get_format("amsynth_bank").write(presets, spec, tmp_path / "four.bank")
    loaded = ab.parse_bank(path)
    assert len(loaded) == 4
    for pr, vec in zip(loaded, spec.to_plugin(presets), strict=True):
        host = {p.name: ab.from_normalised(p.name, float(np.float32(vec[p.index]))) for p in spec.params}
        assert {n: pr.values[n] for n in host} == host
        assert ap.plugin_load_preset(pr, "state").tolist() == ab.normalised_vector(pr.values).tolist()


def test_format_read_errors_name_the_file(tmp_path):
    spec = load_spec("config/synths/dexed.yaml")
    bad = tmp_path / "broken.syx"
    bad.write_bytes(b"\xf0\x43\x00\x00\x01\x1b" + bytes(20))
    with pytest.raises(Exception, match=r"broken\.syx"):
        get_format("dx7_sysex").read(bad, spec)
    with pytest.raises(ConfigError, match="unknown preset format 'nope'"):
        get_format("nope")


# ---- the match tool's errors ------------------------------------------------------------------------------
def test_match_names_the_missing_model_and_bad_wavs(tmp_path, capsys):
    wav = tmp_path / "in.wav"
    sf.write(wav, 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000), 16000)
    args = ["match", str(wav), "--synth", "dexed", "--out", str(tmp_path / "v.syx"), "--config", "config/tiny.yaml",
            "--results", str(tmp_path / "results")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no trained estimator" in err and "snakemake --cores all" in err and "mix_hard/summary.json" in err
    assert "Traceback" not in err
    assert main([*args[:5], str(tmp_path / "v.wav"), *args[6:]]) == 2
    assert "dx7_sysex files; use a '.syx' file name" in capsys.readouterr().err
    for content, needle in ((b"", "empty"), (b"not audio at all" * 10, "not an audio file")):
        bad = tmp_path / "bad.wav"
        bad.write_bytes(content)
        _fake_estimator(tmp_path)
        assert main([args[0], str(bad), *args[2:]]) == 2
        err = capsys.readouterr().err
        assert needle in err.lower() and "bad.wav" in err and "Traceback" not in err


def _fake_estimator(tmp_path):
    """An untrained estimator checkpoint where the tool looks for one (to reach the audio checks)."""
    from synthproxy.config import load_config
    from synthproxy.matching.datasets import MatchingPlan
    from synthproxy.matching.estimator import CHECKPOINT_FORMAT, EstimatorSettings, make_estimator

    cfg = load_config("config/tiny.yaml")
    plan = MatchingPlan(cfg, "dexed")
    settings = EstimatorSettings.from_dict(plan.estimator_settings())
    model = make_estimator(settings, plan)
    path = tmp_path / "results" / "matching" / "dexed" / "mix_hard" / "best.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "spec_hash": plan.spec.hash, "spec_name": plan.spec.name,
                "hyperparameters": settings.to_dict(), "model": model.state_dict(),
                "scaler": {"low": -100.0, "high": 20.0}, "model_name": "mix_hard", "strategy": "mix",
                "relaxation": "hard"}, path)


# ---- listening page ----------------------------------------------------------------------------------
def test_report_listening_page_fits_a_data_url_and_plays(tmp_path, monkeypatch):
    """The self-contained copy stays under its byte budget (the report's iframe shows it as one data: URL,
    which Chromium drops past 2 MiB), takes sounds round-robin over sections, says what it left out, and its
    MP3s decode to the sounds' length; the full page links every WAV."""
    import base64
    import io
    import json
    import re

    from synthproxy.report import matching as page_mod

    monkeypatch.setattr(page_mod, "REPORT_PAGE_BYTES", 150_000)
    rate, seconds = 44100, 1.0
    t = np.arange(int(rate * seconds)) / rate
    results, dirs = [], []
    for synth in ("dexed", "amsynth"):
        for model in ("ploss", "mix_soft"):
            ex_dir = tmp_path / f"{synth}_{model}"
            ex_dir.mkdir()
            examples = []
            for i in range(4):
                for role, f0 in (("target", 220.0 * (i + 1)), ("match", 230.0 * (i + 1))):
                    sf.write(ex_dir / f"{i}_{role}.wav", 0.3 * np.sin(2 * np.pi * f0 * t), rate, subtype="PCM_16")
                examples.append({"set": "in_domain", "index": i, "name": f"preset {i}",
                                 "files": {"target": f"{i}_target.wav", "match": f"{i}_match.wav"}})
            out = tmp_path / f"{synth}_{model}.json"
            out.write_text(json.dumps({"synth": synth, "model": model, "examples": examples}))
            results.append(out)
            dirs.append(ex_dir)
    page, report_page = tmp_path / "out" / "examples.html", tmp_path / "out" / "examples_report.html"
    page.parent.mkdir()
    page_mod.listening_page(results, dirs, page, report_page)

    full = page.read_text()
    assert full.count("<audio") == 2 * 4 * 3
    assert (tmp_path / "out" / "examples" / "dexed_in_domain_3_mix_soft.wav").is_file()
    small = report_page.read_text()
    assert len(small.encode()) <= 150_000 + 10_000
    shown = re.search(r"(\d+) of 8 sounds are shown", small)
    assert shown and 2 <= int(shown.group(1)) < 8, small[:2000]
    # round-robin: both synths keep their first sound
    for synth in ("dexed", "amsynth"):
        assert f"<h2>{synth}: in-domain sounds</h2>" in small
    clips = re.findall(r'src="data:audio/mpeg;base64,([^"]+)"', small)
    assert len(clips) == 3 * int(shown.group(1))
    audio, sr = sf.read(io.BytesIO(base64.b64decode(clips[0])))
    assert sr == page_mod.REPORT_AUDIO_RATE and abs(len(audio) / sr - seconds) < 0.1
