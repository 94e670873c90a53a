"""The five preset encoders of Combes et al. (JAES 2025), Sec. 4.2.2 and Table 2.

Each encoder maps a preset batch ``x: (batch, N)`` (see :mod:`synthproxy.synths.layout`) to a vector in
the audio-embedding space, ``(batch, out_dim)``, and is differentiable w.r.t. the numerical columns of
``x``: this is what lets a trained encoder stand in for the (non-differentiable) synthesizer.

Every encoder is split into an input representation and the rest of the network (:class:`PresetEncoder`):
``forward(x) = trunk(represent(x))`` on an index preset, and ``forward_soft(noncat_values, cat_probs) =
trunk(represent_soft(noncat_values, cat_probs))`` on a *relaxed* preset (category probabilities instead of
indices, see :mod:`synthproxy.nn.tokenizers`). Both paths share ``trunk``, so they cannot drift apart, and
with one-hot probabilities ``forward_soft`` equals ``forward``. The relaxed path is our addition (not in the
paper or its code): through it, an audio loss on the proxy's output reaches the categorical (and binary)
parameters of an estimator's prediction.

======== ======================================= ======= ======== ======== =================
Encoder  Input representation                    d_token # layers d_hidden Dexed params (M)
======== ======================================= ======= ======== ======== =================
MLP-OH   OH(x)                                   --      2        2048     4.9
HN-OH    OH(x)                                   --      6        768      6.2
HN-PT    Flatten(PT(x))                          64      6        512      6.0
HN-PTGRU BiGRU(PE_sin(PT(x)))                    384     6        768      7.1
TFM      PE_sin(Concat(w_CLS, PT(x)))            256     6        256      4.8
======== ======================================= ======= ======== ======== =================

The layer count excludes the final linear projection to ``out_dim`` (192 in the paper). Layer details
that the paper leaves open were taken from the authors' reference implementation (pcmbs/synth-proxy) and
reproduce its Dexed parameter counts exactly (4,884,672 / 6,167,232 / 6,014,464 / 7,073,856 / 4,824,768
with ``out_dim=192``):

* Linear layers followed by BatchNorm have no bias (BatchNorm's shift makes it redundant).
* A highway layer is ``y = T(x) * H(x) + (1 - T(x)) * x`` with ``H = ReLU(BN(W x))`` and a sigmoid gate
  ``T = sigmoid(W_T x + b_T)``, ``b_T`` initialised to -1 so that layers start close to the identity
  (Srivastava et al., 2015). The first layer changes the width (input -> ``d_hidden``), so there is no
  identity to carry and it is a plain ``ReLU(BN(W x))`` layer; it counts as one of the six layers.
* HN-PTGRU: one bidirectional GRU layer with ``d_token // 2`` units per direction, so the concatenated
  final states have ``d_token`` features.
* TFM: pre-norm transformer layers (``norm_first=True``), 8 heads, feed-forward width ``4 * d_token``,
  ReLU, no dropout; with pre-norm the CLS output is normalised by the head's LayerNorm.
* No dropout anywhere by default (all reference configurations use 0).
"""

from __future__ import annotations

import torch
from torch import nn

from synthproxy.errors import ConfigError
from synthproxy.nn.stable import StableBatchNorm1d, StableLayerNorm, orthogonal_init
from synthproxy.nn.tokenizers import (
    OneHotEncoding,
    PresetTokenizer,
    SinusoidalPositionalEncoding,
    check_preset_batch,
    check_soft_batch,
)
from synthproxy.synths.layout import PresetLayout

__all__ = [
    "HNOHEncoder",
    "HNPTEncoder",
    "HNPTGRUEncoder",
    "HighwayLayer",
    "HighwayNetwork",
    "MLPOHEncoder",
    "PresetEncoder",
    "TFMEncoder",
]


def _require_positive(**values: int) -> None:
    """Raise ConfigError for non-positive architecture sizes (these come from user configs)."""
    for name, value in values.items():
        if int(value) < 1:
            raise ConfigError(f"encoder hyperparameter {name} must be a positive integer, got {value!r}")


def _require_dropout(p: float, name: str = "dropout") -> None:
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"encoder hyperparameter {name} must be in [0, 1), got {p!r}")


def _dense_bn_relu(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    """``Dropout(ReLU(BatchNorm(W x)))``, the basic layer of the MLP/HN encoders."""
    linear = nn.Linear(d_in, d_out, bias=False)
    nn.init.kaiming_normal_(linear.weight, mode="fan_in", nonlinearity="relu")
    return nn.Sequential(linear, StableBatchNorm1d(d_out), nn.ReLU(), nn.Dropout(dropout))


def _projection_head(d_in: int, out_dim: int) -> nn.Linear:
    """Final linear projection onto the audio-embedding space (not counted as a layer in Table 2)."""
    head = nn.Linear(d_in, out_dim)
    nn.init.kaiming_normal_(head.weight, mode="fan_in", nonlinearity="linear")
    nn.init.zeros_(head.bias)
    return head


class PresetEncoder(nn.Module):
    """Common base: remembers the layout and output size, prepares the input and runs the two paths.

    Subclasses implement three steps; ``forward`` and ``forward_soft`` are defined here from them:

    * ``represent(x: (batch, N)) -> rep``: the input representation of an index preset (OH or PT);
    * ``represent_soft(noncat_values: (batch, n_noncat), cat_probs: (batch, total_categories)) -> rep``: the
      same representation of a relaxed preset;
    * ``trunk(rep) -> (batch, out_dim)``: everything after the input representation.

    Attributes:
        layout: the preset layout the encoder was built for.
        out_dim: size of the output embedding.
    """

    def __init__(self, layout: PresetLayout, out_dim: int) -> None:
        super().__init__()
        _require_positive(out_dim=out_dim)
        self.layout = layout
        self.out_dim = int(out_dim)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check the batch shape and cast to the parameters' dtype (presets are often stored as float64)."""
        check_preset_batch(x, self.layout)
        param = next(self.parameters(), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        return x.to(dtype) if x.dtype != dtype else x

    def _prepare_soft(
        self, noncat_values: torch.Tensor, cat_probs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check a relaxed batch's shapes and cast both parts to the parameters' dtype."""
        check_soft_batch(noncat_values, cat_probs, self.layout)
        param = next(self.parameters(), None)
        dtype = param.dtype if param is not None else torch.get_default_dtype()
        return noncat_values.to(dtype), cat_probs.to(dtype)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """Input representation of a prepared ``(batch, N)`` index preset."""
        raise NotImplementedError

    def represent_soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Input representation of a prepared relaxed preset (same shape as :meth:`represent`'s)."""
        raise NotImplementedError

    def trunk(self, rep: torch.Tensor) -> torch.Tensor:
        """The network after the input representation: ``rep -> (batch, out_dim)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, N)`` preset batch (categorical columns as indices) -> ``(batch, out_dim)`` embedding."""
        return self.trunk(self.represent(self._prepare(x)))

    def forward_soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Relaxed preset -> ``(batch, out_dim)`` embedding, differentiable w.r.t. both inputs.

        Args:
            noncat_values: ``(batch, n_noncat)`` num/bin values in the order of ``layout.noncat_indices``
                (binary columns may hold probabilities).
            cat_probs: ``(batch, total_categories)`` category probabilities, one block of ``C_i`` per
                categorical column in the order of ``layout.cat_indices`` (e.g. from
                :meth:`synthproxy.nn.heads.PresetHead.decode_soft`).
        """
        return self.trunk(self.represent_soft(*self._prepare_soft(noncat_values, cat_probs)))


class HighwayLayer(nn.Module):
    """One highway layer: ``T(x) * H(x) + (1 - T(x)) * x``, or just ``H(x)`` when widths differ.

    ``H(x) = Dropout(ReLU(BatchNorm(W_H x)))`` and ``T(x) = sigmoid(W_T x + b_T)``. The gated carry lets
    a deep stack of layers train as easily as a shallow one (the motivation for HN over MLP in the
    paper). ``b_T`` starts at -1 to bias early training towards carrying the input through.
    """

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.transform = _dense_bn_relu(d_in, d_out, dropout)
        self.gate: nn.Linear | None = None
        if d_in == d_out:
            self.gate = nn.Linear(d_in, d_out)
            nn.init.xavier_normal_(self.gate.weight)
            nn.init.constant_(self.gate.bias, -1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.transform(x)
        if self.gate is None:
            return h
        t = torch.sigmoid(self.gate(x))
        return t * h + (1.0 - t) * x


class HighwayNetwork(nn.Sequential):
    """``num_layers`` highway layers, the first mapping ``d_in`` to ``d_hidden`` (hence ungated)."""

    def __init__(self, d_in: int, d_hidden: int, num_layers: int, dropout: float = 0.0) -> None:
        _require_positive(d_in=d_in, d_hidden=d_hidden, num_layers=num_layers)
        super().__init__(
            *(HighwayLayer(d_in if i == 0 else d_hidden, d_hidden, dropout) for i in range(num_layers))
        )



class _OneHotEncoder(PresetEncoder):
    """An encoder on the one-hot representation ``OH(x)``: ``self.encoding``, ``self.backbone``, ``self.head``."""

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """``OH(x)``: ``(batch, one_hot_dim)``."""
        return self.encoding(x)

    def represent_soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Relaxed ``OH``: probabilities in the one-hot slots, ``(batch, one_hot_dim)``."""
        return self.encoding.soft(noncat_values, cat_probs)

    def trunk(self, rep: torch.Tensor) -> torch.Tensor:
        """``(batch, one_hot_dim)`` -> ``(batch, out_dim)``."""
        return self.head(self.backbone(rep))


class MLPOHEncoder(_OneHotEncoder):
    """MLP-OH: the baseline, a wide and shallow MLP on the one-hot representation.

    Table 2 lists 2 layers of width 2048 (plus the projection head), and the 4.9M parameters for Dexed
    require the 2048x2048 second layer; the prose of Sec. 4.2.2 calls it "a single hidden layer". We
    follow Table 2 (and the reference code): ``num_layers`` counts the Linear-BN-ReLU layers.
    """

    def __init__(
        self,
        layout: PresetLayout,
        out_dim: int,
        *,
        d_hidden: int = 2048,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(layout, out_dim)
        _require_positive(d_hidden=d_hidden, num_layers=num_layers)
        _require_dropout(dropout)
        self.encoding = OneHotEncoding(layout)
        dims = [self.encoding.out_dim] + [d_hidden] * num_layers
        self.backbone = nn.Sequential(
            *(_dense_bn_relu(dims[i], dims[i + 1], dropout) for i in range(num_layers))
        )
        self.head = _projection_head(d_hidden, out_dim)


class HNOHEncoder(_OneHotEncoder):
    """HN-OH: a deeper, narrower highway network on the one-hot representation (6 x 768)."""

    def __init__(
        self,
        layout: PresetLayout,
        out_dim: int,
        *,
        d_hidden: int = 768,
        num_layers: int = 6,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(layout, out_dim)
        _require_dropout(dropout)
        self.encoding = OneHotEncoding(layout)
        self.backbone = HighwayNetwork(self.encoding.out_dim, d_hidden, num_layers, dropout)
        self.head = _projection_head(d_hidden, out_dim)


class HNPTEncoder(PresetEncoder):
    """HN-PT: highway network on the flattened preset tokens, input width ``N * d_token``.

    Learned per-parameter vectors replace the fixed one-hot/raw values so that each parameter can carry
    its own meaning. No positional encoding is used (Table 2): flattening already fixes each token's
    position in the input vector.
    """

    def __init__(
        self,
        layout: PresetLayout,
        out_dim: int,
        *,
        d_token: int = 64,
        d_hidden: int = 512,
        num_layers: int = 6,
        dropout: float = 0.0,
        token_init_std: float = 0.02,
    ) -> None:
        super().__init__(layout, out_dim)
        _require_positive(d_token=d_token)
        _require_dropout(dropout)
        self.tokenizer = PresetTokenizer(layout, d_token, token_init_std)
        self.backbone = HighwayNetwork(len(layout) * d_token, d_hidden, num_layers, dropout)
        self.head = _projection_head(d_hidden, out_dim)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """``PT(x)``: ``(batch, N, d_token)``."""
        return self.tokenizer(x)

    def represent_soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Relaxed ``PT``: ``(batch, N, d_token)``."""
        return self.tokenizer.soft(noncat_values, cat_probs)

    def trunk(self, rep: torch.Tensor) -> torch.Tensor:
        """Flatten the ``(batch, N, d_token)`` tokens -> highway network -> ``(batch, out_dim)``."""
        return self.head(self.backbone(rep.flatten(1)))


class HNPTGRUEncoder(PresetEncoder):
    """HN-PTGRU: BiGRU over position-encoded tokens, then a highway network.

    The BiGRU compresses the ``N`` tokens into the concatenation of its final forward and backward
    hidden states, so the highway input width (``2 * gru_hidden``) no longer grows with the number of
    synthesizer parameters, unlike HN-PT. Sinusoidal positions are added because the GRU input tokens
    are otherwise only distinguishable by their learned content.

    Args:
        gru_hidden: units per GRU direction; defaults to ``d_token // 2`` (reference code), so the
            concatenated state has ``d_token`` features.
        gru_layers: stacked BiGRU layers (1 in the paper).
    """

    def __init__(
        self,
        layout: PresetLayout,
        out_dim: int,
        *,
        d_token: int = 384,
        d_hidden: int = 768,
        num_layers: int = 6,
        gru_hidden: int | None = None,
        gru_layers: int = 1,
        dropout: float = 0.0,
        token_init_std: float = 0.02,
        gru_dropout: float = 0.0,
    ) -> None:
        super().__init__(layout, out_dim)
        gru_hidden = d_token // 2 if gru_hidden is None else gru_hidden
        _require_positive(d_token=d_token, gru_hidden=gru_hidden, gru_layers=gru_layers)
        _require_dropout(dropout)
        _require_dropout(gru_dropout, "gru_dropout")
        self.tokenizer = PresetTokenizer(layout, d_token, token_init_std)
        self.positions = SinusoidalPositionalEncoding(d_token, max_len=len(layout))
        self.gru = nn.GRU(
            input_size=d_token,
            hidden_size=gru_hidden,
            num_layers=gru_layers,
            batch_first=True,
            bidirectional=True,
            dropout=gru_dropout if gru_layers > 1 else 0.0,
        )
        for name, param in self.gru.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_normal_(param)
            elif name.startswith("weight_hh"):
                orthogonal_init(param)  # keeps the recurrence well-conditioned over 100+ steps
            else:
                nn.init.zeros_(param)
        self.backbone = HighwayNetwork(2 * gru_hidden, d_hidden, num_layers, dropout)
        self.head = _projection_head(d_hidden, out_dim)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """``PT(x)``: ``(batch, N, d_token)``."""
        return self.tokenizer(x)

    def represent_soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Relaxed ``PT``: ``(batch, N, d_token)``."""
        return self.tokenizer.soft(noncat_values, cat_probs)

    def trunk(self, rep: torch.Tensor) -> torch.Tensor:
        """``(batch, N, d_token)`` tokens -> positions -> BiGRU final states -> highway -> ``(batch, out_dim)``."""
        tokens = self.positions(rep)
        _, h_n = self.gru(tokens)  # (num_layers * 2, batch, gru_hidden); last two = top layer fwd, bwd
        state = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return self.head(self.backbone(state))


class TFMEncoder(PresetEncoder):
    """TFM: transformer encoder over ``[CLS, PT(x)]`` with sinusoidal positions, read out at CLS.

    Attention lets every parameter token attend to every other one, which is meant to capture parameter
    interdependencies (e.g. Dexed's algorithm changing the role of the operator parameters). The CLS
    output goes through LayerNorm and ReLU before the linear projection (Sec. 4.2.2). Layer
    normalisation is used instead of batch normalisation throughout, as in the paper.

    Table 2 gives ``d_token = d_hidden = 256``: the token size is the model width, so this class has a
    single ``d_token`` argument. ``d_ff`` defaults to ``4 * d_token`` (reference code, ``mlp_factor=4``).
    """

    def __init__(
        self,
        layout: PresetLayout,
        out_dim: int,
        *,
        d_token: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        d_ff: int | None = None,
        dropout: float = 0.0,
        token_init_std: float = 0.02,
    ) -> None:
        super().__init__(layout, out_dim)
        d_ff = 4 * d_token if d_ff is None else d_ff
        _require_positive(d_token=d_token, num_layers=num_layers, num_heads=num_heads, d_ff=d_ff)
        _require_dropout(dropout)
        if d_token % num_heads:
            raise ConfigError(f"TFM d_token ({d_token}) must be divisible by num_heads ({num_heads})")
        self.tokenizer = PresetTokenizer(layout, d_token, token_init_std)
        self.cls_token = nn.Parameter(torch.empty(1, 1, d_token))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        # The CLS token takes position 0, the parameters positions 1..N (PE applied after the concat).
        self.positions = SinusoidalPositionalEncoding(d_token, max_len=len(layout) + 1)
        layer = nn.TransformerEncoderLayer(
            d_model=d_token,
            nhead=num_heads,
            dim_feedforward=d_ff,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        for block in self.encoder.layers:  # same parameters; a thread-count-independent backward on CPU
            block.norm1 = StableLayerNorm(d_token, eps=block.norm1.eps)
            block.norm2 = StableLayerNorm(d_token, eps=block.norm2.eps)
        self._init_transformer()
        self.head_norm = StableLayerNorm(d_token)
        self.head = nn.Linear(d_token, out_dim)
        nn.init.kaiming_normal_(self.head.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.head.bias)

    def _init_transformer(self) -> None:
        # nn.TransformerEncoder deep-copies one layer, so every layer would start with identical weights;
        # re-draw them per layer (truncated normal, std 0.02, zero biases, unit LayerNorm).
        for name, param in self.encoder.layers.named_parameters():
            if "norm" in name and name.endswith("weight"):
                nn.init.ones_(param)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
            else:
                nn.init.trunc_normal_(param, std=0.02)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """``PT(x)``: ``(batch, N, d_token)``."""
        return self.tokenizer(x)

    def represent_soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Relaxed ``PT``: ``(batch, N, d_token)``."""
        return self.tokenizer.soft(noncat_values, cat_probs)

    def trunk(self, rep: torch.Tensor) -> torch.Tensor:
        """``(batch, N, d_token)`` tokens -> ``[CLS, tokens]`` + positions -> transformer -> ``(batch, out_dim)``."""
        tokens = rep
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        seq = self.positions(torch.cat([cls, tokens], dim=1))
        out = self.encoder(seq)[:, 0]
        return self.head(torch.relu(self.head_norm(out)))
