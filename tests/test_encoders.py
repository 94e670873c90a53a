"""Tests of the preset encoders (Combes et al., JAES 2025, Sec. 4.2 and Table 2)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthproxy.errors import ConfigError, SpecError
from synthproxy.nn.factory import (
    ARCHITECTURES,
    PAPER_PARAMETER_COUNTS_M,
    build_encoder,
    count_parameters,
    default_batch_size,
    encoder_hyperparameters,
    parameter_count_table,
)
from synthproxy.nn.tokenizers import (
    OneHotEncoding,
    PresetTokenizer,
    SinusoidalPositionalEncoding,
    sinusoidal_positions,
)
from synthproxy.synths.layout import PresetLayout

OUT_DIM = 192


def dexed_layout() -> PresetLayout:
    """Dexed as used in the paper: 92 numerical + 8 categorical parameters (Table 1)."""
    cols: list[tuple[str, int]] = [("cat", 32)]  # algorithm
    cols += [("num", 0)] * 5  # feedback, lfo_speed, lfo_delay, lfo_pm_depth, lfo_am_depth
    cols += [("cat", 5)]  # lfo_wave
    cols += [("num", 0)] * 9  # p_mode_sens, pitch_eg_rate_1..4, pitch_eg_level_1..4
    for _ in range(6):  # operators
        cols += [("num", 0)] * 9  # eg_rate_1..4, eg_level_1..4, output_level
        cols += [("cat", 2)]  # mode
        cols += [("num", 0)] * 4  # f_coarse, f_fine, osc_detune, a_mod_sens
    return PresetLayout(kinds=tuple(k for k, _ in cols), cardinalities=tuple(c for _, c in cols))


DEXED = dexed_layout()
# Synthetic layouts with the paper's counts (Table 1); cardinalities chosen so that the one-hot widths
# (103 and 412) equal those implied by the reference implementation's parameter counts.
TALNM = PresetLayout.from_counts(48, 3, [8, 8, 8, 6, 6, 6, 5, 5])
DIVA = PresetLayout.from_counts(100, 22, [6] * 35 + [5] * 16)
# A small mixed layout with interleaved kinds, for fast shape/gradient tests.
SMALL = PresetLayout(
    kinds=("num", "cat", "bin", "num", "cat", "num", "bin"),
    cardinalities=(0, 3, 2, 0, 4, 0, 0),
)
SMALL_OVERRIDES: dict[str, dict[str, int]] = {
    "mlp_oh": {"d_hidden": 32},
    "hn_oh": {"d_hidden": 32, "num_layers": 3},
    "hn_pt": {"d_token": 8, "d_hidden": 32, "num_layers": 3},
    "hn_ptgru": {"d_token": 16, "d_hidden": 32, "num_layers": 3},
    "tfm": {"d_token": 32, "num_layers": 2},
}


def random_presets(layout: PresetLayout, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Valid random presets: uniform num values, 0/1 bin values, valid category indices."""
    x = torch.rand(batch, len(layout), generator=generator)
    for col, (kind, card) in enumerate(zip(layout.kinds, layout.cardinalities, strict=True)):
        if kind == "bin":
            x[:, col] = torch.randint(0, 2, (batch,), generator=generator).float()
        elif kind == "cat":
            x[:, col] = torch.randint(0, card, (batch,), generator=generator).float()
    return x


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# ----------------------------------------------------------------------------------------------------
# Layout
# ----------------------------------------------------------------------------------------------------


def test_dexed_layout_matches_table_1() -> None:
    assert len(DEXED) == 100
    assert DEXED.counts() == {"num": 92, "bin": 0, "cat": 8}
    assert TALNM.counts() == {"num": 48, "bin": 3, "cat": 8}
    assert DIVA.counts() == {"num": 100, "bin": 22, "cat": 51}


@pytest.mark.parametrize(
    ("kinds", "cards", "match"),
    [
        (("num", "cat"), (0,), "2 kinds but 1 cardinalities"),
        (("num", "real"), (0, 0), "unknown kind 'real'"),
        (("cat",), (0,), "categorical column 0"),
        ((), (), "at least one column"),
    ],
)
def test_invalid_layout_raises_spec_error(kinds: tuple, cards: tuple, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        PresetLayout(kinds=kinds, cardinalities=cards)


def test_layout_accepts_lists_and_is_hashable() -> None:
    layout = PresetLayout(kinds=["num", "bin"], cardinalities=[0, 2])  # type: ignore[arg-type]
    assert layout == PresetLayout(kinds=("num", "bin"), cardinalities=(0, 2))
    assert hash(layout) == hash(PresetLayout(kinds=("num", "bin"), cardinalities=(0, 2)))


# ----------------------------------------------------------------------------------------------------
# Input representations
# ----------------------------------------------------------------------------------------------------


def test_one_hot_encoding_hand_written_example() -> None:
    layout = PresetLayout(kinds=("num", "cat", "bin", "cat"), cardinalities=(0, 3, 0, 2))
    oh = OneHotEncoding(layout)
    x = torch.tensor([[0.25, 2.0, 1.0, 0.0], [0.75, 0.0, 0.0, 1.0]])
    expected = torch.tensor(
        [
            [0.25, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0],
            [0.75, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        ]
    )
    assert oh.out_dim == 7
    assert torch.equal(oh(x), expected)
    assert oh.column_slices == (slice(0, 1), slice(1, 4), slice(4, 5), slice(5, 7))


def test_one_hot_dims_of_the_three_synths() -> None:
    assert OneHotEncoding(DEXED).out_dim == 92 + 32 + 5 + 6 * 2
    assert OneHotEncoding(TALNM).out_dim == 103
    assert OneHotEncoding(DIVA).out_dim == 412


def test_one_hot_rounds_float_indices_and_rejects_invalid_ones() -> None:
    layout = PresetLayout(kinds=("cat", "num"), cardinalities=(4, 0))
    oh = OneHotEncoding(layout)
    assert torch.equal(oh(torch.tensor([[2.9999997, 0.5]])), torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.5]]))
    with pytest.raises(ValueError, match="column 0"):
        oh(torch.tensor([[4.0, 0.5]]))  # out of range
    with pytest.raises(ValueError, match="column 0"):
        oh(torch.tensor([[0.33, 0.5]]))  # a normalised value, not an index
    with pytest.raises(ValueError, match="columns"):
        oh(torch.zeros(1, 3))


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    column=st.sampled_from(SMALL.num_indices + SMALL.bin_indices),
    value=st.floats(0.0, 1.0, allow_nan=False, width=32),
)
def test_tokenizer_num_token_is_value_times_learned_vector(seed: int, column: int, value: float) -> None:
    torch.manual_seed(seed)
    tok = PresetTokenizer(SMALL, d_token=16)
    x = random_presets(SMALL, 3, torch.Generator().manual_seed(seed))
    if SMALL.kinds[column] == "bin":
        value = float(value >= 0.5)
    x[1, column] = value
    tokens = tok(x)
    assert tokens.shape == (3, len(SMALL), 16)
    expected = torch.tensor(value, dtype=torch.float32) * tok.value_vector(column)
    assert torch.equal(tokens[1, column], expected)


def test_tokenizer_binary_and_categorical_tokens() -> None:
    torch.manual_seed(0)
    tok = PresetTokenizer(SMALL, d_token=8)
    x = torch.tensor([[0.5, 2.0, 0.0, 0.1, 3.0, 0.9, 1.0]])
    tokens = tok(x)[0]
    assert torch.equal(tokens[2], torch.zeros(8))  # binary 0 -> zero vector
    assert torch.equal(tokens[6], tok.value_vector(6))  # binary 1 -> the learned vector itself
    assert torch.equal(tokens[1], tok.category_table(1)[2])
    assert torch.equal(tokens[4], tok.category_table(4)[3])
    assert tok.category_table(1).shape == (3, 8)
    assert count_parameters(tok) == (5 + 3 + 4) * 8


def test_token_init_std_sets_the_token_scale_and_lets_a_tfm_depend_on_its_input(gen: torch.Generator) -> None:
    """Std 0.02 (paper) tokens drown in the positions: a fresh TFM is near-constant; std 1 is not."""
    torch.manual_seed(0)
    assert PresetTokenizer(SMALL, d_token=64).value_vectors.std().item() == pytest.approx(0.02, rel=0.2)
    assert PresetTokenizer(SMALL, d_token=64, init_std=1.0).value_vectors.std().item() == pytest.approx(
        0.88, rel=0.2)  # N(0, 1) truncated to [-2, 2]
    with pytest.raises(ValueError, match="init std"):
        PresetTokenizer(SMALL, d_token=8, init_std=0.0)
    layout = dexed_layout()
    x = random_presets(layout, 64, gen)
    spread = {}
    for std in (0.02, 1.0):
        torch.manual_seed(0)
        model = build_encoder("tfm", layout, OUT_DIM, d_token=64, num_layers=2, token_init_std=std).eval()
        with torch.no_grad():
            spread[std] = model(x).std(dim=0).mean().item()
    assert spread[1.0] > 10 * spread[0.02]


def test_sinusoidal_positions() -> None:
    pe = sinusoidal_positions(10, 6)
    assert pe.shape == (10, 6)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]))
    assert torch.allclose(pe[3, 0], torch.sin(torch.tensor(3.0)))
    assert torch.allclose(pe[3, 3], torch.cos(torch.tensor(3.0 / 10000 ** (2 / 6))))
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths supported
    module = SinusoidalPositionalEncoding(6, max_len=10)
    assert torch.equal(module(torch.zeros(2, 4, 6)), pe[:4].expand(2, 4, 6))
    assert count_parameters(module) == 0


# ----------------------------------------------------------------------------------------------------
# Encoders
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_output_shape_small_layout(arch: str, gen: torch.Generator) -> None:
    model = build_encoder(arch, SMALL, 24, **SMALL_OVERRIDES[arch])
    out = model(random_presets(SMALL, 5, gen))
    assert out.shape == (5, 24)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_output_shape_dexed_default_hyperparameters(arch: str, gen: torch.Generator) -> None:
    model = build_encoder(arch, DEXED, OUT_DIM)
    x = random_presets(DEXED, 4, gen).double()  # presets stored as float64 are accepted
    out = model(x)
    assert out.shape == (4, OUT_DIM)
    assert out.dtype == torch.float32
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, OUT_DIM)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_gradients_flow_to_numerical_columns(arch: str, gen: torch.Generator) -> None:
    torch.manual_seed(0)
    model = build_encoder(arch, SMALL, 16, **SMALL_OVERRIDES[arch])
    x = random_presets(SMALL, 6, gen).requires_grad_(True)
    model(x).pow(2).sum().backward()
    assert x.grad is not None
    num_grad = x.grad[:, list(SMALL.num_indices)]
    assert torch.isfinite(num_grad).all()
    assert (num_grad.abs().sum(dim=0) > 0).all(), "every numerical column must receive a gradient"
    assert torch.equal(x.grad[:, list(SMALL.cat_indices)], torch.zeros(6, 2))  # looked up by index


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_deterministic_given_seed(arch: str, gen: torch.Generator) -> None:
    x = random_presets(SMALL, 4, gen)
    outputs = []
    for _ in range(2):
        torch.manual_seed(42)
        model = build_encoder(arch, SMALL, 16, **SMALL_OVERRIDES[arch])
        outputs.append(model(x))
    assert torch.equal(outputs[0], outputs[1])
    torch.manual_seed(43)
    other = build_encoder(arch, SMALL, 16, **SMALL_OVERRIDES[arch])
    assert not torch.equal(outputs[0], other(x))


def test_tfm_layers_are_not_identical_copies() -> None:
    torch.manual_seed(0)
    model = build_encoder("tfm", SMALL, 16, **SMALL_OVERRIDES["tfm"])
    layers = model.encoder.layers  # type: ignore[union-attr]
    assert not torch.equal(layers[0].linear1.weight, layers[1].linear1.weight)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_dexed_parameter_counts_match_table_2(arch: str) -> None:
    params = count_parameters(build_encoder(arch, DEXED, OUT_DIM))
    paper = PAPER_PARAMETER_COUNTS_M["dexed"][arch] * 1e6
    assert abs(params - paper) <= 0.10 * paper, f"{arch}: {params} vs {paper:.0f}"


def test_parameter_count_table_all_synths_within_10_percent() -> None:
    rng_state = torch.get_rng_state()
    rows = parameter_count_table({"dexed": DEXED, "talnm": TALNM, "diva": DIVA})
    assert torch.equal(rng_state, torch.get_rng_state()), "the table must not consume the global RNG"
    assert len(rows) == 15
    assert {tuple(r) for r in rows} == {("synth", "arch", "params")}
    for row in rows:
        paper = PAPER_PARAMETER_COUNTS_M[row["synth"]][row["arch"]] * 1e6
        assert abs(row["params"] - paper) <= 0.10 * paper, row
    # Exact counts of the reference implementation for Dexed (out_dim=192).
    dexed = {r["arch"]: r["params"] for r in rows if r["synth"] == "dexed"}
    assert dexed == {
        "mlp_oh": 4_884_672,
        "hn_oh": 6_167_232,
        "hn_pt": 6_014_464,
        "hn_ptgru": 7_073_856,
        "tfm": 4_824_768,
    }


# ----------------------------------------------------------------------------------------------------
# Factory
# ----------------------------------------------------------------------------------------------------


def test_unknown_architecture_error_names_value_and_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_encoder("resnet_oh", DEXED, OUT_DIM)
    message = str(excinfo.value)
    assert "'resnet_oh'" in message
    for arch in ("mlp_oh", "hn_oh", "hn_pt", "hn_ptgru", "tfm"):
        assert arch in message
    with pytest.raises(ConfigError, match="resnet_oh"):
        default_batch_size("resnet_oh")


def test_unknown_or_invalid_override_raises_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'d_hiden'.*valid: d_hidden, num_layers, dropout"):
        build_encoder("hn_oh", DEXED, OUT_DIM, d_hiden=10)
    with pytest.raises(ConfigError, match="divisible"):
        build_encoder("tfm", DEXED, OUT_DIM, d_token=100, num_heads=8)
    with pytest.raises(ConfigError, match="num_layers"):
        build_encoder("hn_pt", DEXED, OUT_DIM, num_layers=0)


def test_architecture_keys_and_table_2_defaults() -> None:
    assert list(ARCHITECTURES) == ["mlp_oh", "hn_oh", "hn_pt", "hn_ptgru", "tfm"]
    assert encoder_hyperparameters("mlp_oh")["d_hidden"] == 2048
    assert encoder_hyperparameters("mlp_oh")["num_layers"] == 2
    assert encoder_hyperparameters("hn_oh") == {"d_hidden": 768, "num_layers": 6, "dropout": 0.0}
    assert encoder_hyperparameters("hn_pt")["d_token"] == 64
    assert encoder_hyperparameters("hn_pt")["d_hidden"] == 512
    assert encoder_hyperparameters("hn_ptgru")["d_token"] == 384
    assert encoder_hyperparameters("hn_ptgru")["d_hidden"] == 768
    assert encoder_hyperparameters("tfm")["d_token"] == 256
    assert encoder_hyperparameters("tfm")["num_heads"] == 8


def test_default_batch_sizes() -> None:
    assert default_batch_size("tfm") == 256
    for arch in ("mlp_oh", "hn_oh", "hn_pt", "hn_ptgru"):
        assert default_batch_size(arch) == 512
