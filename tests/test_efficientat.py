"""Tests of the from-scratch EfficientAT implementation against facts recorded from upstream.

The reference facts (state_dict layouts, parameter counts, output shapes, HEAR embedding sizes, front-end
outputs) live in the shared data directory, outside the repository; tests that need them skip when it is
absent. No official checkpoint is needed: loading is tested with random weights in the official layout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from synthproxy.audio import efficientat as eat
from synthproxy.audio.efficientat import (
    EfficientATModel,
    checkpoint_url,
    frame_audio,
    load_weights_into,
    reduce_time,
    resolve_weights,
)
from synthproxy.audio.efficientat_frontend import EfficientATMel
from synthproxy.audio.efficientat_net import build_mobilenet, make_divisible, width_from_name
from synthproxy.errors import AudioError, ConfigError, PluginNotFoundError, SpecError

MODEL_NAMES = ("mn04", "mn20")
FRONTEND_ATOL = 1e-5


def _shared_dir() -> Path:
    env = os.environ.get("SYNTHPROXY_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return base / "efficientat"


SHARED = _shared_dir()


def _load_json(file: str) -> dict[str, Any]:
    path = SHARED / file
    if not path.is_file():
        pytest.skip(f"shared EfficientAT reference data not found at {path} (set SYNTHPROXY_SHARED_DATA)")
    return json.loads(path.read_text())


@pytest.fixture(scope="module", params=MODEL_NAMES)
def manifest(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    name: str = request.param
    return name, _load_json(f"efficientat_{name}_as_state_dict.json")


@pytest.fixture(scope="module")
def frontend_ref() -> dict[str, Any]:
    return _load_json("efficientat_frontend.json")


@pytest.fixture(scope="module")
def mn04() -> EfficientATModel:
    return EfficientATModel("mn04", None)


def _random_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state_dict in the official layout with random values of plausible scale (stand-in checkpoint).

    Upstream's initialisation for the weights, plus random BatchNorm statistics and affine parameters so
    that the values differ from a freshly built network.
    """
    torch.manual_seed(seed)
    state = build_mobilenet(name).state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", ".bias")):
            value.uniform_(-0.1, 0.1)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 2.0)
        elif key.endswith("num_batches_tracked"):
            value.fill_(7)
        elif value.dim() == 1:  # BatchNorm scale
            value.uniform_(0.5, 1.5)
    return state


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


# ------------------------------------------------------------------------------------------------ network


def test_state_dict_layout_matches_upstream(manifest: tuple[str, dict[str, Any]]) -> None:
    name, ref = manifest
    state = build_mobilenet(name).state_dict()
    got = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    expected = [(e["name"], e["shape"], e["dtype"]) for e in ref["state_dict"]]
    assert [k for k, _, _ in got] == [k for k, _, _ in expected]  # names, in order
    assert got == expected  # and shapes, dtypes
    assert len(got) == ref["counts"]["num_state_dict_entries"]


def test_parameter_counts(manifest: tuple[str, dict[str, Any]]) -> None:
    name, ref = manifest
    net = build_mobilenet(name)
    assert sum(p.numel() for p in net.parameters()) == ref["counts"]["total_parameters"]
    assert len(list(net.parameters())) == ref["counts"]["num_parameter_tensors"]
    assert len(list(net.buffers())) == ref["counts"]["num_buffer_tensors"]


def test_output_shapes_5s(manifest: tuple[str, dict[str, Any]]) -> None:
    name, ref = manifest
    io = ref["io_5s_32khz"]
    net = build_mobilenet(name).eval()
    mel = EfficientATMel()(torch.zeros(io["waveform_shape"]))
    assert list(mel.shape) == io["mel_shape"]
    x = mel.unsqueeze(1)
    with torch.inference_mode():
        outs = net.block_outputs(x, list(range(17)))
        logits = net(x)
    expected = io["features_output_shapes_batch1"]
    assert [list(o.shape) for o in outs] == [expected[str(i)] for i in range(17)]
    assert list(logits.shape) == io["logits_shape"]


def test_width_names() -> None:
    assert width_from_name("mn04") == 0.4
    assert width_from_name("mn20_as") == 2.0
    assert make_divisible(16 * 0.4) == 8
    with pytest.raises(ConfigError, match="mn99"):
        width_from_name("mn99")
    with pytest.raises(ConfigError, match="unknown"):
        EfficientATModel("resnet", None)


# ------------------------------------------------------------------------------------------------ weights


def test_strict_load_roundtrip(tmp_path: Path, mn04: EfficientATModel) -> None:
    state = _random_state("mn04")
    path = _save(state, tmp_path / "mn04_as_mAP_432.pt")
    model = EfficientATModel("mn04", path)
    assert model.pretrained
    loaded = model.net.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not model.net.training


def test_load_without_num_batches_tracked(tmp_path: Path) -> None:
    state = {k: v for k, v in _random_state("mn04").items() if not k.endswith("num_batches_tracked")}
    net = build_mobilenet("mn04")
    load_weights_into(net, _save(state, tmp_path / "w.pt"), "mn04")
    assert torch.equal(net.state_dict()["features.0.1.weight"], state["features.0.1.weight"])


def test_wrong_key_lists_missing_and_unexpected(tmp_path: Path, mn04: EfficientATModel) -> None:
    state = _random_state("mn04")
    state["features.1.block.0.0.weightx"] = state.pop("features.1.block.0.0.weight")
    path = _save(state, tmp_path / "bad_keys.pt")
    with pytest.raises(SpecError) as info:
        mn04.load_weights(path)
    msg = str(info.value)
    assert "bad_keys.pt" in msg
    assert "missing keys (1)" in msg and "features.1.block.0.0.weight [8, 1, 3, 3]" in msg
    assert "unexpected keys (1)" in msg and "features.1.block.0.0.weightx" in msg


def test_wrong_shape_is_listed(tmp_path: Path, mn04: EfficientATModel) -> None:
    state = _random_state("mn04")
    state["classifier.5.weight"] = torch.zeros(10, 512)
    state["classifier.5.bias"] = torch.zeros(10)
    path = _save(state, tmp_path / "bad_shape.pt")
    with pytest.raises(SpecError) as info:
        mn04.load_weights(path)
    msg = str(info.value)
    assert "shape mismatches (2)" in msg
    assert "classifier.5.weight: expected [527, 512], file has [10, 512]" in msg
    assert "classifier.5.bias: expected [527], file has [10]" in msg


def test_mn20_weights_into_mn04_fail(tmp_path: Path, mn04: EfficientATModel) -> None:
    path = _save(_random_state("mn20"), tmp_path / "mn20_as_mAP_478.pt")
    with pytest.raises(SpecError, match="shape mismatches"):
        mn04.load_weights(path)


def test_truncated_file(tmp_path: Path, mn04: EfficientATModel) -> None:
    path = _save(_random_state("mn04"), tmp_path / "truncated.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SpecError, match=r"truncated\.pt"):
        mn04.load_weights(path)


def test_non_state_dict_file(tmp_path: Path, mn04: EfficientATModel) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(SpecError, match="state_dict"):
        mn04.load_weights(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "mn04_as_mAP_432.pt"
    with pytest.raises(PluginNotFoundError) as info:
        EfficientATModel("mn04", path)
    msg = str(info.value)
    assert str(path) in msg
    assert "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt" in msg


def test_resolve_local_path_and_checksum(tmp_path: Path) -> None:
    path = _save(_random_state("mn04"), tmp_path / "local.pt")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert resolve_weights("mn04", path, tmp_path / "cache", sha256=digest) == path
    wrong = "0" * 64
    with pytest.raises(SpecError) as info:
        resolve_weights("mn04", path, tmp_path / "cache", sha256=wrong)
    msg = str(info.value)
    assert wrong in msg and digest in msg and "local.pt" in msg
    with pytest.raises(PluginNotFoundError, match=r"mn04_as_mAP_432\.pt"):
        resolve_weights("mn04", tmp_path / "absent.pt", tmp_path / "cache")
    with pytest.raises(ConfigError, match="64 hex"):
        resolve_weights("mn04", path, tmp_path / "cache", sha256="abc")


def test_resolve_uses_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = _save(_random_state("mn04"), cache / "mn04_as_mAP_432.pt")
    monkeypatch.setattr(eat, "RELEASE_URL", "file:///definitely/not/there/")
    assert resolve_weights("mn04_as", None, cache) == cached


def test_resolve_downloads_once_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "release"
    release.mkdir()
    source = _save(_random_state("mn04"), release / "mn04_as_mAP_432.pt")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setattr(eat, "RELEASE_URL", release.as_uri() + "/")
    cache = tmp_path / "cache"
    got = resolve_weights("mn04", None, cache, sha256=digest)
    assert got == cache / "mn04_as_mAP_432.pt"
    assert got.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["mn04_as_mAP_432.pt"]  # no temp file left
    source.unlink()  # second call must not download again
    assert resolve_weights("mn04", None, cache, sha256=digest) == got
    EfficientATModel("mn04", got)


def test_download_checksum_mismatch_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "release"
    release.mkdir()
    source = _save(_random_state("mn04"), release / "mn04_as_mAP_432.pt")
    actual = hashlib.sha256(source.read_bytes()).hexdigest()
    monkeypatch.setattr(eat, "RELEASE_URL", release.as_uri() + "/")
    cache = tmp_path / "cache"
    expected = "f" * 64
    with pytest.raises(SpecError) as info:
        resolve_weights("mn04", None, cache, sha256=expected)
    assert expected in str(info.value) and actual in str(info.value)
    assert list(cache.iterdir()) == []


def test_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eat, "RELEASE_URL", (tmp_path / "offline").as_uri() + "/")
    cache = tmp_path / "cache"
    with pytest.raises(PluginNotFoundError) as info:
        resolve_weights("mn20", None, cache)
    msg = str(info.value)
    assert "mn20_as_mAP_478.pt" in msg and str(cache / "mn20_as_mAP_478.pt") in msg
    assert list(cache.iterdir()) == []
    with pytest.raises(PluginNotFoundError) as info:
        resolve_weights("mn20", None, cache, allow_download=False)
    msg = str(info.value)
    assert "downloading is disabled" in msg and str(cache) in msg
    assert checkpoint_url("mn20") in msg


def test_no_official_checkpoint_for_width() -> None:
    with pytest.raises(ConfigError, match="mn06"):
        checkpoint_url("mn06")


# ------------------------------------------------------------------------------------------------ front-end


def test_frontend_mel_basis(frontend_ref: dict[str, Any]) -> None:
    ref = frontend_ref["mel_basis_eval"]
    basis = EfficientATMel().mel_basis
    assert list(basis.shape) == ref["shape"]
    assert hashlib.sha256(basis.numpy().astype("<f4").tobytes()).hexdigest() == ref["sha256_float32_le"]
    assert basis.sum().item() == pytest.approx(ref["sum"], abs=1e-4)
    assert basis.max().item() == pytest.approx(ref["max"], abs=1e-7)
    nonzero = [basis[i].nonzero().flatten() for i in (0, 1, 2, -1)]
    assert [int(n[0]) for n in nonzero] == ref["first_nonzero_bin_of_filters_0_1_2_last"]
    assert [int(n[-1]) for n in nonzero] == ref["last_nonzero_bin_of_filters_0_1_2_last"]


def test_frontend_settings(frontend_ref: dict[str, Any]) -> None:
    fe = EfficientATMel()
    defaults = frontend_ref["constructor_defaults"]
    assert (fe.n_mels, fe.sample_rate, fe.win_length, fe.hop_length, fe.n_fft) == (
        defaults["n_mels"],
        defaults["sr"],
        defaults["win_length"],
        defaults["hopsize"],
        defaults["n_fft"],
    )
    assert fe.fmax == frontend_ref["effective_fmax_when_None"]
    assert fe.fmin == defaults["fmin"]
    assert fe.state_dict() == {}  # no persistent state, as upstream


def test_frontend_silence(frontend_ref: dict[str, Any]) -> None:
    ref = frontend_ref["reference_outputs_eval"]["zeros_1s"]
    out = EfficientATMel()(torch.zeros(1, 32000))
    assert list(out.shape) == ref["shape"]
    torch.testing.assert_close(out, torch.full_like(out, ref["value"]), atol=FRONTEND_ATOL, rtol=0)


def test_frontend_sine(frontend_ref: dict[str, Any]) -> None:
    ref = frontend_ref["reference_outputs_eval"]["sine_1kHz_amp0.5_1s"]
    t = torch.arange(32000, dtype=torch.float32) / 32000
    out = EfficientATMel()(0.5 * torch.sin(2 * math.pi * 1000 * t)[None])
    assert list(out.shape) == ref["shape"]
    assert out.mean().item() == pytest.approx(ref["mean"], abs=FRONTEND_ATOL)
    assert out.std().item() == pytest.approx(ref["std"], abs=FRONTEND_ATOL)
    assert out.min().item() == pytest.approx(ref["min"], abs=FRONTEND_ATOL)
    assert out.max().item() == pytest.approx(ref["max"], abs=FRONTEND_ATOL)
    assert int(out[0, :, 50].argmax()) == ref["argmax_mel_bin_at_frame_50"]
    assert out[0, :, 50].max().item() == pytest.approx(ref["value_at_argmax_frame_50"], abs=FRONTEND_ATOL)


def test_frontend_shapes_and_minimum(frontend_ref: dict[str, Any]) -> None:
    fe = EfficientATMel()
    for key, shape in frontend_ref["output_shapes_for_num_samples"].items():
        n = int(key.removesuffix("_samples"))
        if isinstance(shape, list):
            assert list(fe(torch.zeros(1, n)).shape) == shape
            assert fe.num_frames(n) == shape[-1]
        else:
            with pytest.raises(AudioError, match=f"{fe.min_samples} samples"):
                fe(torch.zeros(1, n))
    assert fe.min_samples == 514


# ------------------------------------------------------------------------------------------------ embeddings


def _embedding_sizes(name: str) -> tuple[int, int]:
    hear = _load_json(f"efficientat_{name}_as_state_dict.json")["hear_embedding"]
    return (
        hear["default_mode_with_mel_avgs"]["scene_embedding_shape_5s"][1],
        hear["without_mel_avgs"]["scene_embedding_shape_5s"][1],
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_embedding_sizes(name: str) -> None:
    with_mel, without = _embedding_sizes(name)
    audio = torch.rand(1, 5 * 32000) - 0.5
    model = EfficientATModel(name, None, with_mel=False)
    plain = model.embed(audio)
    assert plain.shape == (1, 101, without) and model.embedding_dim == without
    assert reduce_time(plain, "avg").shape == (1, without)
    assert reduce_time(plain, "nop").shape == (1, 101 * without)
    model.with_mel = True
    mel = model.embed(audio)
    assert mel.shape == (1, 101, with_mel) and model.embedding_dim == with_mel
    # the mel part comes first, the network part is the same
    torch.testing.assert_close(mel[..., 128:], plain)


def test_timestamp_frames_1s(mn04: EfficientATModel) -> None:
    hear = _load_json("efficientat_mn04_as_state_dict.json")["hear_embedding"]
    expected = hear["without_mel_avgs"]["timestamp_embedding_shape_1s"]
    out = mn04.embed(torch.rand(1, 32000) - 0.5)
    assert list(out.shape) == expected
    assert mn04.num_frames(32000) == expected[1]


def test_batched_equals_per_window(mn04: EfficientATModel) -> None:
    torch.manual_seed(1)
    audio = torch.rand(2, 12000) - 0.5
    model = EfficientATModel("mn04", None, with_mel=True, max_windows_per_pass=3)
    model.net.load_state_dict(_random_state("mn04", seed=3))
    frames = frame_audio(audio)
    with torch.inference_mode():
        ref = torch.stack(
            [
                eat.hear_window_features(model.frontend, model.net, frames[:, i], True)
                for i in range(frames.shape[1])
            ],
            dim=1,
        )
    torch.testing.assert_close(model.embed(audio), ref, atol=1e-5, rtol=1e-5)
    # each item of the batch is independent of the others
    torch.testing.assert_close(model.embed(audio[1:]), ref[1:], atol=1e-5, rtol=1e-5)


def test_silence_gives_finite_embeddings(tmp_path: Path) -> None:
    model = EfficientATModel("mn04", _save(_random_state("mn04"), tmp_path / "w.pt"), with_mel=True)
    out = model.embed(torch.zeros(2, 16000))
    assert out.shape == (2, 11, 320)
    assert torch.isfinite(out).all()
    assert torch.isfinite(reduce_time(out, "avg")).all()


def test_too_short_audio(mn04: EfficientATModel) -> None:
    assert mn04.min_samples == 2561
    out = mn04.embed(torch.zeros(1, mn04.min_samples))
    assert out.shape[1] == 2
    with pytest.raises(AudioError, match="2560 samples, need at least 2561 samples"):
        mn04.embed(torch.zeros(1, 2560))


def test_bad_audio(mn04: EfficientATModel) -> None:
    audio = torch.zeros(3, 8000)
    audio[1, 5] = float("nan")
    with pytest.raises(AudioError, match=r"NaN or inf samples in batch items \[1\]"):
        mn04.embed(audio)
    with pytest.raises(AudioError, match="shape"):
        mn04.embed(torch.zeros(8000))
    with pytest.raises(AudioError, match="dtype"):
        mn04.embed(torch.zeros(1, 8000, dtype=torch.int16))


def test_reduce_time_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="max"):
        reduce_time(torch.zeros(1, 2, 3), "max")  # type: ignore[arg-type]
