"""Encoder internals checked by value: the highway gate, the BiGRU readout and the TFM forward pass.

Shapes and gradients are tested in ``test_encoders.py``; here each computation is redone by hand (or with a
separately built ``nn.GRU``) and compared number by number with the module's output.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from synthproxy.nn.encoders import HighwayLayer, HighwayNetwork, HNPTGRUEncoder, TFMEncoder
from synthproxy.synths.layout import PresetLayout

LAYOUT = PresetLayout(kinds=("num", "cat", "bin", "num", "cat", "num"), cardinalities=(0, 3, 2, 0, 4, 0))
BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default


def _presets(batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, len(LAYOUT), generator=g)
    x[:, 1] = torch.randint(0, 3, (batch,), generator=g).float()
    x[:, 2] = torch.randint(0, 2, (batch,), generator=g).float()
    x[:, 4] = torch.randint(0, 4, (batch,), generator=g).float()
    return x


def _pe(length: int, d: int) -> torch.Tensor:
    """Sinusoidal positions written out: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    pe = torch.zeros(length, d, dtype=torch.float64)
    for p in range(length):
        for i in range(0, d, 2):
            angle = p / 10000 ** (i / d)
            pe[p, i] = math.sin(angle)
            if i + 1 < d:
                pe[p, i + 1] = math.cos(angle)
    return pe.float()


# ----------------------------------------------------------------------------------------------------
# Highway layer
# ----------------------------------------------------------------------------------------------------
def test_gate_bias_starts_at_minus_one_and_the_first_layer_has_no_gate() -> None:
    torch.manual_seed(0)
    net = HighwayNetwork(d_in=5, d_hidden=4, num_layers=3)
    assert net[0].gate is None  # 5 -> 4: no identity to carry
    for layer in list(net)[1:]:
        assert layer.gate is not None
        assert torch.equal(layer.gate.bias, torch.full((4,), -1.0))
        assert layer.gate.weight.abs().sum() > 0  # weights are drawn, only the bias is constant


def test_highway_layer_output_computed_by_hand() -> None:
    """y = T h + (1 - T) x with h = ReLU(BN(W_H x)), T = sigmoid(W_T x + b_T), every number written out."""
    layer = HighwayLayer(2, 2)
    layer.eval()  # BatchNorm uses its running statistics: h is a fixed function of x
    lin, bn = layer.transform[0], layer.transform[1]
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))
        bn.running_mean.copy_(torch.tensor([0.5, -1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
        bn.weight.copy_(torch.tensor([2.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2]))
        layer.gate.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, -0.25]]))
        # the bias keeps its initial -1
    x = torch.tensor([[1.0, -2.0], [0.0, 3.0]])

    expected = []
    for x1, x2 in x.tolist():
        z = [1 * x1 + 2 * x2, 3 * x1 - 1 * x2]  # W_H x
        bn_out = [(z[0] - 0.5) / math.sqrt(4.0 + BN_EPS) * 2.0 + 0.1, (z[1] + 1.0) / math.sqrt(0.25 + BN_EPS) - 0.2]
        h = [max(v, 0.0) for v in bn_out]
        t = [1 / (1 + math.exp(-(0.5 * x1 - 1.0))), 1 / (1 + math.exp(-(-0.25 * x2 - 1.0)))]
        expected.append([t[0] * h[0] + (1 - t[0]) * x1, t[1] * h[1] + (1 - t[1]) * x2])
    with torch.no_grad():
        got = layer(x)
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    # first row, first unit: z = -3, BN = -3.5/2*2 + 0.1 < 0 -> h = 0, so y = (1 - sigmoid(-0.5)) * 1
    assert float(got[0, 0]) == pytest.approx(1 - 1 / (1 + math.exp(0.5)), abs=1e-6)


def test_gate_bias_of_minus_one_carries_73_percent_of_the_input_at_zero_gate_weights() -> None:
    layer = HighwayLayer(3, 3).eval()
    with torch.no_grad():
        layer.gate.weight.zero_()
    x = torch.tensor([[0.3, -1.2, 2.0]])
    with torch.no_grad():
        h = layer.transform(x)
        y = layer(x)
    t = 1 / (1 + math.e)  # sigmoid(-1) = 0.2689...
    torch.testing.assert_close(y, t * h + (1 - t) * x, rtol=1e-6, atol=1e-7)
    assert 1 - t == pytest.approx(0.7310585786, abs=1e-9)


# ----------------------------------------------------------------------------------------------------
# HN-PTGRU: concatenated final forward and backward states
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gru_layers", [1, 2])
def test_hn_ptgru_reads_the_final_forward_and_backward_states(gru_layers: int) -> None:
    torch.manual_seed(3)
    enc = HNPTGRUEncoder(LAYOUT, out_dim=5, d_token=8, d_hidden=6, num_layers=2, gru_layers=gru_layers,
                         token_init_std=1.0).eval()
    x = _presets(4)
    hidden = enc.gru.hidden_size
    assert hidden == 4  # d_token // 2 units per direction

    # our own GRU with the encoder's weights, fed the position-encoded tokens
    gru = nn.GRU(8, hidden, num_layers=gru_layers, batch_first=True, bidirectional=True)
    gru.load_state_dict(enc.gru.state_dict())
    with torch.no_grad():
        tokens = enc.tokenizer(x) + _pe(len(LAYOUT), 8)
        out, _ = gru(tokens)  # (batch, N, 2 * hidden), top layer
        # forward direction: its state after the last token; backward direction: after reading back to token 0
        state = torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=-1)
        expected = enc.head(enc.backbone(state))
        got = enc(x)
        # a readout of both directions at the last step (the backward one has seen a single token) differs
        wrong = enc.head(enc.backbone(out[:, -1, :]))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (got - wrong).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------------
# TFM: manual forward pass
# ----------------------------------------------------------------------------------------------------
def _attention(x: torch.Tensor, mha: nn.MultiheadAttention) -> torch.Tensor:
    """Multi-head self-attention from its weights: softmax(Q K^T / sqrt(d_head)) V per head, then out_proj."""
    b, n, d = x.shape
    h = mha.num_heads
    q, k, v = (x @ w.T + bias for w, bias in zip(mha.in_proj_weight.chunk(3), mha.in_proj_bias.chunk(3), strict=True))
    q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
    heads = (weights @ v).transpose(1, 2).reshape(b, n, d)
    return heads @ mha.out_proj.weight.T + mha.out_proj.bias


def _layer_norm(x: torch.Tensor, ln: nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def test_tfm_matches_a_manual_pre_norm_forward_pass_read_at_the_cls_position() -> None:
    torch.manual_seed(5)
    d = 16
    enc = TFMEncoder(LAYOUT, out_dim=7, d_token=d, num_layers=2, num_heads=4, token_init_std=1.0).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters and biases, so that each one matters
        for name, p in enc.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    x = _presets(3, seed=1)
    with torch.no_grad():
        tokens = enc.tokenizer(x)
        seq = torch.cat([enc.cls_token.expand(3, 1, d), tokens], dim=1) + _pe(len(LAYOUT) + 1, d)  # CLS at 0
        for layer in enc.encoder.layers:  # pre-norm: x + SA(LN1(x)), then x + FF(LN2(x))
            seq = seq + _attention(_layer_norm(seq, layer.norm1), layer.self_attn)
            ff_in = _layer_norm(seq, layer.norm2)
            seq = seq + layer.linear2(torch.relu(layer.linear1(ff_in)))
        cls = seq[:, 0]
        expected = enc.head(torch.relu(_layer_norm(cls, enc.head_norm)))
        got = enc(x)
        at_position_1 = enc.head(torch.relu(_layer_norm(seq[:, 1], enc.head_norm)))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got - at_position_1).abs().max() > 1e-2  # the readout position matters
    assert enc.encoder.norm is None  # no final encoder norm: the head's LayerNorm normalises the CLS output
