"""Tests of the estimator networks, the preset head and the relaxed (soft) path through the preset encoders.

Paper 1: Combes et al. (JAES 2025) Sec. 8 and pcmbs/synth-proxy ``src/ssm``; paper 2: Masuda & Saito (TASLP
2023) Sec. III-B / V-C and hyakuchiki/SSSSM-DDSP ``diffsynth/estimator.py``. Sizes are kept small except where
a paper-size parameter count is checked (building a model is cheap, running it at paper size is not).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from synthproxy.errors import ConfigError
from synthproxy.nn.estimators import (
    ESTIMATORS,
    REQUIRED,
    CNNEstimator,
    Conv2DEstimator,
    GRUEstimator,
    build_estimator,
    estimator_arguments,
)
from synthproxy.nn.factory import ARCHITECTURES, build_encoder, count_parameters
from synthproxy.nn.heads import PresetHead
from synthproxy.nn.tokenizers import OneHotEncoding, PresetTokenizer, soft_inputs_from_preset
from synthproxy.synths.layout import PresetLayout
from synthproxy.synths.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
DEXED = load_spec(ROOT / "config/synths/dexed.yaml").layout
AMSYNTH = load_spec(ROOT / "config/synths/amsynth.yaml").layout
# num, cat(3), bin, num, cat(4): logits [n0, c0 c1 c2, b0, n1, d0 d1 d2 d3]
TINY = PresetLayout(kinds=("num", "cat", "bin", "num", "cat"), cardinalities=(0, 3, 0, 0, 4))
SMALL_ENCODERS: dict[str, dict[str, int]] = {
    "mlp_oh": {"d_hidden": 32},
    "hn_oh": {"d_hidden": 32, "num_layers": 3},
    "hn_pt": {"d_token": 8, "d_hidden": 32, "num_layers": 3},
    "hn_ptgru": {"d_token": 16, "d_hidden": 32, "num_layers": 3},
    "tfm": {"d_token": 32, "num_layers": 2},
}
SMALL_CNN = {"channels": (4, 4, 8, 8), "mixer_channels": 16}
SMALL_GRU = {"n_mels": 32, "channels": 4, "hidden_size": 16}
SMALL_CONV2D = {"n_mels": 32, "n_frames": 20, "channels": (4, 8, 8), "kernel_sizes": [3, 3, 3], "strides": [2, 2, 2]}


def random_presets(layout: PresetLayout, batch: int, seed: int = 0) -> torch.Tensor:
    """Valid random presets: uniform num values, 0/1 bin values, valid category indices."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, len(layout), generator=g)
    for col, (kind, card) in enumerate(zip(layout.kinds, layout.cardinalities, strict=True)):
        if kind == "bin":
            x[:, col] = torch.randint(0, 2, (batch,), generator=g).float()
        elif kind == "cat":
            x[:, col] = torch.randint(0, card, (batch,), generator=g).float()
    return x


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------------------------------
# PresetHead: layout, split, decoding
# ----------------------------------------------------------------------------------------------------
def test_head_logit_layout_follows_column_order() -> None:
    head = PresetHead(TINY)
    assert head.n_logits == 1 + 3 + 1 + 1 + 4
    assert (head.n_num, head.n_bin, head.n_cat) == (2, 1, 2)
    assert head.cat_logit_slices == (slice(1, 4), slice(6, 10))
    logits = torch.arange(10.0).repeat(2, 1)
    num, binary, cats = head.split(logits)
    assert num.tolist() == [[0.0, 5.0]] * 2
    assert binary.tolist() == [[4.0]] * 2
    assert [c[0].tolist() for c in cats] == [[1.0, 2.0, 3.0], [6.0, 7.0, 8.0, 9.0]]
    assert PresetHead(DEXED).n_logits == 92 + 32 + 5 + 6 * 2
    assert all(PresetHead(lay).n_logits == lay.one_hot_dim for lay in (DEXED, AMSYNTH, TINY))
    assert PresetHead(AMSYNTH).n_logits == 27 + 2 + 3 + 3 + 5 + 5 + 3


def test_head_has_no_weights_and_adds_nothing_to_a_checkpoint() -> None:
    head = PresetHead(DEXED)
    assert count_parameters(head) == 0
    assert head.state_dict() == {}
    assert not any(k.startswith("head.") for k in CNNEstimator(DEXED, **SMALL_CNN).state_dict())


def test_head_rejects_wrong_logit_width() -> None:
    with pytest.raises(ValueError, match=r"\(batch, 10\)"):
        PresetHead(TINY).split(torch.zeros(2, 9))


def test_decode_hard_hand_written_example() -> None:
    head = PresetHead(TINY)
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0, 3.0, _logit(0.25), 0.0, 0.0, 0.0, 9.0]])
    preset = head.decode_hard(logits)
    assert preset.shape == (1, 5)
    expected = torch.tensor([[0.5, 1.0, 1.0, 0.25, 3.0]])  # sigmoid, argmax, round(sigmoid), sigmoid, argmax
    torch.testing.assert_close(preset, expected)
    # a binary logit of exactly 0 is sigmoid 0.5, which rounds (half to even) to 0, as in the official code
    assert head.decode_hard(torch.zeros(1, 10))[0, 2].item() == 0.0


@pytest.mark.parametrize("layout", [DEXED, AMSYNTH, TINY], ids=["dexed", "amsynth", "tiny"])
def test_decode_hard_inverts_preset_to_logits(layout: PresetLayout) -> None:
    head = PresetHead(layout)
    preset = random_presets(layout, 16, seed=3)
    decoded = head.decode_hard(head.preset_to_logits(preset))
    discrete = [c for c, k in enumerate(layout.kinds) if k != "num"]
    assert torch.equal(decoded[:, discrete], preset[:, discrete])
    torch.testing.assert_close(decoded, preset, atol=2e-6, rtol=0)


def test_decode_soft_shapes_and_values() -> None:
    head = PresetHead(TINY)
    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0, 3.0, _logit(0.25), 0.0, 0.0, 0.0, 9.0]])
    noncat, probs = head.decode_soft(logits)
    # noncat follows layout.noncat_indices = (0, 2, 3): num, bin, num
    torch.testing.assert_close(noncat, torch.tensor([[0.5, 1 / (1 + math.exp(-3.0)), 0.25]]))
    first = torch.softmax(torch.tensor([1.0, 5.0, 2.0]), 0)
    second = torch.softmax(torch.tensor([0.0, 0.0, 0.0, 9.0]), 0)
    torch.testing.assert_close(probs, torch.cat([first, second])[None])
    # the temperature acts on the binary and categorical parameters only
    noncat_t, probs_t = head.decode_soft(logits, temperature=2.0)
    torch.testing.assert_close(noncat_t, torch.tensor([[0.5, 1 / (1 + math.exp(-1.5)), 0.25]]))
    torch.testing.assert_close(probs_t[0, :3], torch.softmax(torch.tensor([0.5, 2.5, 1.0]), 0))
    with pytest.raises(ValueError, match="temperature"):
        head.decode_soft(logits, temperature=0.0)


def test_decode_soft_of_confident_logits_is_the_one_hot_preset() -> None:
    head = PresetHead(AMSYNTH)
    preset = random_presets(AMSYNTH, 8, seed=5)
    noncat, probs = head.decode_soft(head.preset_to_logits(preset, confidence=60.0))
    ref_noncat, ref_probs = soft_inputs_from_preset(preset, AMSYNTH)
    torch.testing.assert_close(noncat, ref_noncat, atol=2e-6, rtol=0)
    torch.testing.assert_close(probs, ref_probs, atol=1e-6, rtol=0)
    for s in head.cat_prob_slices:
        torch.testing.assert_close(probs[:, s].sum(1), torch.ones(8))


# ----------------------------------------------------------------------------------------------------
# Parameter losses and metrics
# ----------------------------------------------------------------------------------------------------
def test_parameter_losses_hand_computed() -> None:
    """Two presets of TINY; every loss term written out with math."""
    head = PresetHead(TINY)
    logits = torch.tensor(
        [
            [0.0, 1.0, 2.0, 0.0, 1.0, _logit(0.8), 0.0, 0.0, 1.0, 0.0],
            [_logit(0.3), 0.0, 0.0, 3.0, -2.0, 0.0, 2.0, 1.0, 0.0, 0.0],
        ]
    )
    target = torch.tensor([[0.25, 1.0, 1.0, 0.5, 2.0], [0.5, 2.0, 0.0, 0.75, 0.0]])
    eps = 0.1
    losses = head.parameter_losses(logits, target, label_smoothing=eps)

    l1 = (abs(0.5 - 0.25) + abs(0.8 - 0.5) + abs(0.3 - 0.5) + abs(0.5 - 0.75)) / 4

    def bce(x: float, y: float) -> float:
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    def ce(z: list[float], y: int) -> float:  # cross-entropy with label smoothing eps over C classes
        log_p = [v - math.log(sum(math.exp(u) for u in z)) for v in z]
        return -(1 - eps) * log_p[y] - eps / len(z) * sum(log_p)

    cat = (ce([1, 2, 0], 1) + ce([0, 0, 3], 2)) / 2 + (ce([0, 0, 1, 0], 2) + ce([2, 1, 0, 0], 0)) / 2
    assert losses["num"].item() == pytest.approx(l1, rel=1e-6)
    assert losses["bin"].item() == pytest.approx((bce(1.0, 1.0) + bce(-2.0, 0.0)) / 2, rel=1e-6)
    assert losses["cat"].item() == pytest.approx(cat, rel=1e-6)
    no_smoothing = head.parameter_losses(logits, target)["cat"].item()
    assert no_smoothing != pytest.approx(cat)


def test_parameter_losses_zero_for_missing_kinds_and_differentiable() -> None:
    head = PresetHead(DEXED)  # no binary parameter
    logits = torch.randn(4, head.n_logits, requires_grad=True)
    losses = head.parameter_losses(logits, random_presets(DEXED, 4), label_smoothing=0.02)
    assert losses["bin"].item() == 0.0 and not losses["bin"].requires_grad
    (losses["num"] + losses["bin"] + 0.01 * losses["cat"]).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="category index"):
        bad = random_presets(DEXED, 4)
        bad[0, DEXED.cat_indices[0]] = 32  # algorithm has 32 categories: 0..31
        head.parameter_losses(logits, bad)


def test_parameter_metrics_hand_computed() -> None:
    head = PresetHead(TINY)
    # predictions: num (0.5, 0.25), (0.75, 0.5); bin 1, 0; cat A 1, 0; cat B 3, 0
    logits = torch.tensor(
        [
            [0.0, 0.0, 4.0, 0.0, 2.0, _logit(0.25), 0.0, 0.0, 0.0, 4.0],
            [_logit(0.75), 4.0, 0.0, 0.0, -2.0, 0.0, 4.0, 0.0, 0.0, 0.0],
        ]
    )
    target = torch.tensor([[0.25, 1.0, 1.0, 0.25, 3.0], [0.5, 2.0, 1.0, 0.75, 2.0]])
    metrics = head.parameter_metrics(logits, target)
    assert metrics["num_l1"] == pytest.approx((0.25 + 0.0 + 0.25 + 0.25) / 4, rel=1e-6)
    assert metrics["bin_acc"] == pytest.approx(0.5)
    # categorical (pred, target) pairs pooled over both parameters: (1,1) (0,2) (3,3) (0,2)
    # label 0: predicted twice, never a target -> recall 0 (counted); 1: 1/1; 2: 0/2; 3: 1/1
    assert metrics["cat_acc"] == pytest.approx((0 + 1 + 0 + 1) / 4)
    assert head.parameter_metrics(logits, target, cat_average="micro")["cat_acc"] == pytest.approx(2 / 4)


def test_cat_acc_macro_ignores_labels_absent_from_prediction_and_target() -> None:
    head = PresetHead(PresetLayout(kinds=("cat", "cat"), cardinalities=(2, 5)))
    target = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    logits = head.preset_to_logits(torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    # pairs (0,0) (0,1) (1,1) (1,1): label 0 recall 1/1, label 1 recall 2/3; labels 2..4 never occur -> ignored
    assert head.parameter_metrics(logits, target)["cat_acc"] == pytest.approx((1 + 2 / 3) / 2)


def test_metrics_omit_missing_kinds() -> None:
    head = PresetHead(DEXED)
    metrics = head.parameter_metrics(torch.randn(3, head.n_logits), random_presets(DEXED, 3))
    assert set(metrics) == {"num_l1", "cat_acc"}
    with pytest.raises(ValueError, match="cat_average"):
        head.parameter_metrics(torch.randn(3, head.n_logits), random_presets(DEXED, 3), cat_average="weighted")


# ----------------------------------------------------------------------------------------------------
# Estimators
# ----------------------------------------------------------------------------------------------------
def _official_cnn_count(n_out: int) -> int:
    """Parameters of the official EstimatorNet, from its layer list (weights + biases, BN weight + bias)."""
    chans = [1, 8, 16, 32, 64, 128, 256, 512]
    total = 0
    for i in range(7):
        k = 5 if i == 0 else 4
        total += chans[i] * chans[i + 1] * k * k + chans[i + 1]
        total += 0 if i == 0 else 2 * chans[i + 1]
    total += 512 * 2048 + 2048  # 1x1 mixer
    return total + 2048 * n_out + n_out + 2 * n_out  # linear + BatchNorm1d


def test_cnn_paper_size_parameter_count_matches_the_official_layer_list() -> None:
    model = build_estimator("cnn", layout=DEXED)
    assert model.out_dim == 141
    assert count_parameters(model) == _official_cnn_count(141) == 4_138_567
    assert count_parameters(build_estimator("cnn", layout=AMSYNTH)) == _official_cnn_count(48)


def test_cnn_layer_order_is_the_official_one() -> None:
    model = CNNEstimator(DEXED)
    kinds = [type(m).__name__.removeprefix("Stable") for m in model.features]
    expected = ["Conv2d", "LeakyReLU"] + ["Conv2d", "LeakyReLU", "BatchNorm2d"] * 6  # BN after the activation
    assert kinds == expected
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 128, 256, 512]
    assert (convs[0].kernel_size, convs[0].stride, convs[0].padding) == ((5, 5), (2, 2), (2, 2))
    assert all((c.kernel_size, c.stride, c.padding) == ((4, 4), (2, 2), (2, 2)) for c in convs[1:])
    assert [type(m).__name__.removeprefix("Stable") for m in model.output] == ["Dropout", "Linear", "BatchNorm1d"]
    assert model.output[0].p == 0.3 and model.features[1].negative_slope == 0.1


@pytest.mark.parametrize("layout", [DEXED, AMSYNTH], ids=["dexed", "amsynth"])
def test_cnn_output_shape(layout: PresetLayout) -> None:
    torch.manual_seed(0)
    model = CNNEstimator(layout, **SMALL_CNN)
    mel = torch.rand(3, 1, 32, 24) * 2 - 1
    logits = model(mel)
    assert logits.shape == (3, PresetHead(layout).n_logits)
    assert torch.equal(model.eval()(mel), model(mel[:, 0]))  # (B, n_mels, frames) accepted too
    assert model.head.decode_hard(logits).shape == (3, len(layout))


def test_gru_paper_size_parameter_count() -> None:
    n_out = 25
    conv = (1 * 64 * 7 + 64) + 2 * (64 * 64 * 7 + 64) + 3 * 2 * 64  # 3 convs + their BatchNorms
    gru = 3 * (1024 * 1024 + 1024 * 1024 + 2 * 1024)  # 3 gates: W_ih (1024 in), W_hh, two biases
    model = build_estimator("gru", n_static=n_out)
    assert model.frame_features == 64 * 16 == 1024
    assert count_parameters(model) == conv + gru + 1024 * n_out + n_out == 6_381_593


@pytest.mark.parametrize(("n_static", "n_dynamic"), [(5, 3), (21, 0)])
def test_gru_outputs_static_from_last_frame_and_dynamic_per_frame(n_static: int, n_dynamic: int) -> None:
    torch.manual_seed(0)
    model = GRUEstimator(n_static, n_dynamic, **SMALL_GRU).eval()
    mel = torch.log(torch.rand(2, 32, 17) + 1e-3)
    out = model(mel)
    assert out.static.shape == (2, n_static) and out.dynamic.shape == (2, 17, n_dynamic)
    assert out.static.min() >= 0 and out.static.max() <= 1
    # frame t's output depends on frames 0..t only (per-frame convs, unidirectional GRU, eval-mode norms)
    shorter = model(mel[:, :, :10])
    assert shorter.dynamic.shape == (2, 10, n_dynamic)
    if n_dynamic:
        torch.testing.assert_close(shorter.dynamic, out.dynamic[:, :10])
    with pytest.raises(ValueError, match="32 mel bands"):
        model(torch.zeros(2, 16, 17))


def test_conv2d_output_shape_and_paper_size_count() -> None:
    model = build_estimator("conv2d", n_static=25)
    assert model.feature_shape == (128, 4, 3)
    convs = [(1, 32, 3, 3), (32, 71, 3, 3), (71, 128, 3, 4), (128, 128, 3, 3), (128, 128, 3, 3), (128, 128, 3, 3)]
    expected = sum(i * o * kh * kw + o + 2 * o for i, o, kh, kw in convs) + 1536 * 25 + 25
    assert count_parameters(model) == expected
    torch.manual_seed(0)
    small = Conv2DEstimator(7, **SMALL_CONV2D)
    y = small(torch.randn(3, 32, 20))
    assert y.shape == (3, 7) and y.min() >= 0 and y.max() <= 1
    with pytest.raises(ValueError, match="32 x 20"):
        small(torch.randn(3, 32, 21))


@pytest.mark.parametrize(
    ("name", "kwargs", "shape"),
    [
        ("cnn", {"layout": AMSYNTH, **SMALL_CNN}, (2, 48, 12)),
        ("gru", {"n_static": 4, "n_dynamic": 2, **SMALL_GRU}, (2, 32, 12)),
        ("conv2d", {"n_static": 4, **SMALL_CONV2D}, (2, 32, 20)),
    ],
)
def test_estimators_are_deterministic_given_seed(name: str, kwargs: dict, shape: tuple) -> None:
    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return build_estimator(name, **kwargs)

    a, b, c = build(0).state_dict(), build(0).state_dict(), build(1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    mel = torch.randn(shape)
    out_a, out_b = build(0).eval()(mel), build(0).eval()(mel)
    leaves_a = tuple(out_a) if isinstance(out_a, tuple) else (out_a,)
    leaves_b = tuple(out_b) if isinstance(out_b, tuple) else (out_b,)
    assert all(torch.equal(x, y) for x, y in zip(leaves_a, leaves_b, strict=True))


def test_cnn_init_is_kaiming_normal_with_leaky_relu_gain() -> None:
    torch.manual_seed(0)
    model = CNNEstimator(DEXED)
    conv = model.features[-3]  # last conv, 256 * 4 * 4 fan-in
    gain = math.sqrt(2.0 / (1 + 0.1**2))
    assert conv.weight.std().item() == pytest.approx(gain / math.sqrt(256 * 16), rel=0.02)


def test_registry_errors_name_the_problem() -> None:
    assert set(ESTIMATORS) >= {"cnn", "gru", "conv2d"}
    with pytest.raises(ConfigError, match=r"unknown estimator 'resnet'.*cnn, gru, conv2d"):
        build_estimator("resnet")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) 'hiden_size' for estimator 'gru'"):
        build_estimator("gru", n_static=3, hiden_size=8)
    with pytest.raises(ConfigError, match="needs argument"):
        build_estimator("cnn")
    with pytest.raises(ConfigError, match="channels"):
        build_estimator("gru", n_static=3, channels=0)
    with pytest.raises(ConfigError, match="dropout"):
        build_estimator("cnn", layout=DEXED, dropout=1.5)
    with pytest.raises(ConfigError, match="kernel_sizes"):
        build_estimator("conv2d", n_static=3, kernel_sizes=[3, 3])
    with pytest.raises(ConfigError, match="at least one"):
        build_estimator("gru", n_static=0)
    args = estimator_arguments("gru")
    assert args["n_static"] is REQUIRED and args["n_dynamic"] == 0 and args["hidden_size"] == 1024


# ----------------------------------------------------------------------------------------------------
# Relaxed input path through the preset encoders
# ----------------------------------------------------------------------------------------------------
def test_one_hot_soft_puts_probabilities_in_the_one_hot_slots() -> None:
    oh = OneHotEncoding(TINY)
    noncat = torch.tensor([[0.1, 0.7, 0.4]])  # columns 0 (num), 2 (bin probability), 3 (num)
    probs = torch.tensor([[0.2, 0.3, 0.5, 0.1, 0.2, 0.3, 0.4]])
    out = oh.soft(noncat, probs)
    assert out[0].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.5, 0.7, 0.4, 0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match="category probabilities"):
        oh.soft(noncat, probs[:, :6])


def test_tokenizer_soft_categorical_token_is_the_expected_embedding() -> None:
    torch.manual_seed(0)
    tok = PresetTokenizer(TINY, d_token=6)
    noncat = torch.tensor([[0.1, 0.7, 0.4]])
    probs = torch.tensor([[0.2, 0.3, 0.5, 0.1, 0.2, 0.3, 0.4]])
    tokens = tok.soft(noncat, probs)
    assert tokens.shape == (1, 5, 6)
    torch.testing.assert_close(tokens[0, 2], 0.7 * tok.value_vector(2))
    torch.testing.assert_close(tokens[0, 1], torch.tensor([0.2, 0.3, 0.5]) @ tok.category_table(1))
    torch.testing.assert_close(tokens[0, 4], torch.tensor([0.1, 0.2, 0.3, 0.4]) @ tok.category_table(4))


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("layout", [AMSYNTH, DEXED], ids=["amsynth", "dexed"])
def test_forward_soft_equals_forward_on_one_hot_inputs(arch: str, layout: PresetLayout) -> None:
    torch.manual_seed(0)
    enc = build_encoder(arch, layout, 16, **SMALL_ENCODERS[arch]).eval()
    x = random_presets(layout, 6, seed=1)
    noncat, probs = soft_inputs_from_preset(x, layout)
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_soft(noncat, probs), enc(x), atol=1e-6, rtol=0)
        # forward is the composition of the two shared steps
        assert torch.equal(enc(x), enc.trunk(enc.represent(x)))


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_relaxation_gradients_reach_discrete_logits_only_in_soft(arch: str) -> None:
    """Estimator logits -> decode -> frozen proxy: hard path grads only num logits; soft path all kinds."""
    torch.manual_seed(0)
    proxy = build_encoder(arch, AMSYNTH, 16, **SMALL_ENCODERS[arch]).eval().requires_grad_(False)
    head = PresetHead(AMSYNTH)
    num_pos, bin_pos = head.num_logit_idx, head.bin_logit_idx
    cat_pos = head.cat_logit_idx

    logits = torch.randn(4, head.n_logits, requires_grad=True)
    proxy(head.decode_hard(logits)).square().sum().backward()
    hard = logits.grad
    assert hard is not None
    assert (hard[:, num_pos] != 0).any()
    assert torch.equal(hard[:, bin_pos], torch.zeros_like(hard[:, bin_pos]))  # round: zero gradient
    assert torch.equal(hard[:, cat_pos], torch.zeros_like(hard[:, cat_pos]))  # argmax: no gradient

    logits.grad = None
    proxy.forward_soft(*head.decode_soft(logits)).square().sum().backward()
    soft = logits.grad
    assert soft is not None
    for pos in (num_pos, bin_pos, cat_pos):
        assert (soft[:, pos].abs().sum(0) > 0).all()  # every logit of every kind gets a gradient


def test_audio_loss_through_soft_proxy_trains_the_estimator() -> None:
    """End to end: CNN estimator -> decode_soft -> frozen TFM proxy; the loss reaches the estimator's convs."""
    torch.manual_seed(0)
    est = CNNEstimator(AMSYNTH, **SMALL_CNN)
    proxy = build_encoder("tfm", AMSYNTH, 16, **SMALL_ENCODERS["tfm"]).eval().requires_grad_(False)
    logits = est(torch.rand(3, 1, 32, 16))
    loss = (proxy.forward_soft(*est.head.decode_soft(logits)) - torch.zeros(3, 16)).abs().mean()
    loss.backward()
    first_conv = est.features[0]
    assert first_conv.weight.grad is not None and first_conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in proxy.parameters())


@pytest.mark.parametrize("which", ["cnn", "gru"])
def test_estimator_gradients_do_not_depend_on_the_thread_count(which) -> None:
    """A training step of either estimator gives bit-identical gradients with 1 and 2 CPU threads (the GRU at the
    default config's width: torch's GRU backward is thread-count dependent below ~256 units, see the README)."""
    torch.manual_seed(0)
    if which == "cnn":
        model = CNNEstimator(DEXED, channels=(4, 8, 8, 16, 16, 32, 32), mixer_channels=64)
        x = torch.randn(6, 1, 128, 64)
    else:
        model, x = GRUEstimator(n_static=19, n_dynamic=2, hidden_size=256, channels=64), torch.randn(4, 128, 64)
    grads = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.manual_seed(1)  # the same dropout masks
            model.zero_grad()
            out = model(x)
            sum(o.square().sum() for o in (out if isinstance(out, tuple) else (out,)) if o is not None).backward()
            grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
    finally:
        torch.set_num_threads(threads)
    assert grads[0].keys() == grads[1].keys() and all(torch.equal(grads[0][k], grads[1][k]) for k in grads[0])
