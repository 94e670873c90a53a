"""Input representations of the preset encoders (Sec. 4.2.1 of Combes et al., JAES 2025).

* :class:`OneHotEncoding` (OH): numerical and binary columns keep their raw value, categorical columns
  are one-hot encoded. Used by MLP-OH and HN-OH.
* :class:`PresetTokenizer` (PT): each numerical/binary column ``i`` owns a learned vector ``v_i`` and its
  token is ``x_i * v_i`` (so a binary column yields either the zero vector or ``v_i``); each categorical
  column owns a learned lookup table ``W_i`` with one row per category. Used by HN-PT, HN-PTGRU, TFM.
* :class:`SinusoidalPositionalEncoding`: the fixed sine/cosine encoding of Vaswani et al., added to the
  token sequence by HN-PTGRU and TFM (``PE_sin`` in Table 2) so that the order-agnostic BiGRU input and
  the permutation-equivariant transformer can tell the parameters apart by position.

Every representation is differentiable with respect to the numerical (and binary) columns of the input,
which is what makes a trained encoder usable as a differentiable synthesizer proxy. Categorical columns
are looked up by index and therefore receive no gradient.

Relaxed input (``soft``): both representations also accept a *relaxed* preset, given as two tensors,

* ``noncat_values: (batch, n_noncat)``: the num/bin columns in the order of ``layout.noncat_indices``
  (a binary column may hold a probability in [0, 1] instead of 0/1);
* ``cat_probs: (batch, total_categories)``: per categorical column (in the order of ``layout.cat_indices``)
  a block of ``C_i`` category probabilities, blocks concatenated,

and replace each one-hot slot by its probability (OH) or each category embedding by the probability-weighted
sum of the column's embeddings (PT). With one-hot probabilities this gives exactly the index path (the official
code has no relaxed path: its estimator feeds argmax/rounded presets to the proxy, so the audio loss cannot reach
the discrete parameters; see ``synthproxy.nn.heads``). :func:`soft_inputs_from_preset` turns an index preset into
this pair.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synthproxy.synths.layout import PresetLayout

# Category indices arrive as floats; anything further than this from an integer is rejected, because it
# almost always means the column holds a normalised value in [0, 1] instead of an index.
_INDEX_TOLERANCE = 1e-3


def check_preset_batch(x: torch.Tensor, layout: PresetLayout) -> None:
    """Raise ``ValueError`` unless ``x`` is a ``(batch, N)`` tensor matching ``layout``."""
    if x.ndim != 2:
        raise ValueError(
            f"expected a preset batch of shape (batch, {len(layout)}), got shape {tuple(x.shape)}"
        )
    if x.shape[1] != len(layout):
        raise ValueError(
            f"preset batch has {x.shape[1]} columns but the layout describes {len(layout)} parameters"
        )


def check_soft_batch(noncat_values: torch.Tensor, cat_probs: torch.Tensor, layout: PresetLayout) -> None:
    """Raise ``ValueError`` unless ``(noncat_values, cat_probs)`` is a relaxed batch matching ``layout``.

    Only shapes are checked: the values are not (probabilities that do not sum to one are the caller's
    business, e.g. a temperature-scaled softmax always sums to one).
    """
    n_noncat, n_cat = len(layout.noncat_indices), layout.total_categories
    if noncat_values.ndim != 2 or noncat_values.shape[1] != n_noncat:
        raise ValueError(
            f"expected num/bin values of shape (batch, {n_noncat}), got shape {tuple(noncat_values.shape)}"
        )
    if cat_probs.ndim != 2 or cat_probs.shape[1] != n_cat:
        raise ValueError(f"expected category probabilities of shape (batch, {n_cat}), got {tuple(cat_probs.shape)}")
    if noncat_values.shape[0] != cat_probs.shape[0]:
        raise ValueError(
            f"num/bin values and category probabilities have different batch sizes "
            f"({noncat_values.shape[0]} and {cat_probs.shape[0]})"
        )


def soft_inputs_from_preset(x: torch.Tensor, layout: PresetLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """Split an index preset ``x: (batch, N)`` into the relaxed pair ``(noncat_values, cat_probs)``.

    ``noncat_values: (batch, n_noncat)`` are the num/bin columns (spec order), ``cat_probs:
    (batch, total_categories)`` the one-hot encoded categories; ``forward_soft`` of an encoder on this pair
    equals its ``forward`` on ``x``. Category indices are validated as in :func:`category_indices`.
    """
    check_preset_batch(x, layout)
    noncat = x[:, list(layout.noncat_indices)]
    probs = x.new_zeros(x.shape[0], layout.total_categories)
    if layout.cat_indices:
        cat_idx = torch.tensor(layout.cat_indices, dtype=torch.long, device=x.device)
        cards = torch.tensor(layout.cat_cardinalities, dtype=torch.float32, device=x.device)
        offsets = torch.tensor(_category_offsets(layout), dtype=torch.long, device=x.device)
        probs.scatter_(1, category_indices(x, cat_idx, cards, layout) + offsets, 1.0)
    return noncat, probs


def _category_offsets(layout: PresetLayout) -> list[int]:
    """Row offset of each categorical column's block in the stacked tables / one-hot slots."""
    offsets, total = [], 0
    for card in layout.cat_cardinalities:
        offsets.append(total)
        total += card
    return offsets


def _register_index_buffers(module: nn.Module, layout: PresetLayout, offsets: list[int]) -> None:
    """Register the column-index buffers shared by the OH and PT representations.

    They are non-persistent: they are derived from the layout, so they follow ``.to(device)`` without
    cluttering checkpoints.
    """
    buffers = {
        "noncat_idx": torch.tensor(layout.noncat_indices, dtype=torch.long),
        "cat_idx": torch.tensor(layout.cat_indices, dtype=torch.long),
        "cat_offsets": torch.tensor(offsets, dtype=torch.long),
        "cat_cards": torch.tensor(layout.cat_cardinalities, dtype=torch.float32),
    }
    for name, value in buffers.items():
        module.register_buffer(name, value, persistent=False)


def category_indices(
    x: torch.Tensor, cat_idx: torch.Tensor, cardinalities: torch.Tensor, layout: PresetLayout
) -> torch.Tensor:
    """Return the categorical columns of ``x`` as validated ``long`` indices, shape ``(batch, n_cat)``.

    Indices are rounded (not truncated) so that values such as ``2.9999997`` produced by float round
    trips still select category 3. Out-of-range or non-integral values raise ``ValueError`` naming the
    offending column: silently clamping them would make the encoder read another parameter's one-hot
    slot or embedding row.
    """
    raw = x.index_select(1, cat_idx).detach()
    idx = torch.round(raw)
    bad = (idx < 0) | (idx >= cardinalities) | ((raw - idx).abs() > _INDEX_TOLERANCE) | ~torch.isfinite(raw)
    if bool(bad.any()):
        row, j = (int(v) for v in bad.nonzero()[0])
        col = layout.cat_indices[j]
        card = layout.cardinalities[col]
        raise ValueError(
            f"invalid category index {raw[row, j].item()!r} in column {col} (row {row}): "
            f"expected an integer in [0, {card - 1}] since the column has {card} categories"
        )
    return idx.long()


class OneHotEncoding(nn.Module):
    """OH representation: raw num/bin values, one-hot categorical columns, in spec order.

    The output keeps the column order of the preset: a num/bin column occupies one slot, a categorical
    column with ``C`` categories occupies ``C`` consecutive slots. (The reference implementation puts all
    num/bin columns first; the order is irrelevant to the models but in-place expansion makes the
    encoding easy to read and to invert.) The module has no parameters.

    Attributes:
        out_dim: width of the encoding, ``n_num + n_bin + sum of categorical cardinalities``.
        column_slices: per preset column, the slice of the output it occupies.
    """

    def __init__(self, layout: PresetLayout) -> None:
        super().__init__()
        self.layout = layout
        self.out_dim: int = layout.one_hot_dim
        n_noncat = len(layout.noncat_indices)
        offsets = _category_offsets(layout)

        # Output position -> position in cat([noncat values, one-hot block]).
        source: list[int] = []
        slices: list[slice] = []
        noncat_pos = {col: j for j, col in enumerate(layout.noncat_indices)}
        cat_pos = {col: j for j, col in enumerate(layout.cat_indices)}
        for col, kind in enumerate(layout.kinds):
            start = len(source)
            if kind == "cat":
                j = cat_pos[col]
                base = n_noncat + offsets[j]
                source.extend(range(base, base + layout.cardinalities[col]))
            else:
                source.append(noncat_pos[col])
            slices.append(slice(start, len(source)))
        self.column_slices: tuple[slice, ...] = tuple(slices)

        _register_index_buffers(self, layout, offsets)
        self.register_buffer("order", torch.tensor(source, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x: (batch, N)`` into ``(batch, out_dim)``, differentiable w.r.t. num/bin columns."""
        check_preset_batch(x, self.layout)
        noncat = x.index_select(1, self.noncat_idx)
        one_hot = x.new_zeros(x.shape[0], self.layout.total_categories)
        if self.cat_idx.numel():
            idx = category_indices(x, self.cat_idx, self.cat_cards, self.layout)
            one_hot.scatter_(1, idx + self.cat_offsets, 1.0)
        return torch.cat([noncat, one_hot], dim=1).index_select(1, self.order)

    def soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Encode a relaxed preset into ``(batch, out_dim)``: the probabilities take the one-hot slots.

        Args:
            noncat_values: ``(batch, n_noncat)`` num/bin values in the order of ``layout.noncat_indices``.
            cat_probs: ``(batch, total_categories)`` per-column category probabilities, blocks in the order of
                ``layout.cat_indices``.

        Differentiable w.r.t. both inputs; equals :meth:`forward` when ``cat_probs`` is one-hot.
        """
        check_soft_batch(noncat_values, cat_probs, self.layout)
        cat_probs = cat_probs.to(noncat_values.dtype)
        return torch.cat([noncat_values, cat_probs], dim=1).index_select(1, self.order)


class PresetTokenizer(nn.Module):
    """PT representation: one ``d_token``-dimensional token per preset column, shape ``(batch, N, d_token)``.

    * num/bin column ``i``: ``x_i * v_i`` with a learned vector ``v_i`` (binary columns are treated like
      numerical ones, as in the paper, which halves their weights compared with a 2-row lookup table);
    * categorical column ``i`` with value ``c``: row ``c`` of a learned table ``W_i``.

    The per-column tables ``W_i`` are stored stacked in a single :class:`torch.nn.Embedding` (with
    per-column row offsets) so that all categorical columns are looked up in one call; this is the same
    set of weights as separate tables. Use :meth:`value_vector` and :meth:`category_table` to read the
    weights of one column.

    Initialisation follows the reference code by default: truncated normal with std 0.02 (small tokens keep
    the first normalisation / attention layers in their linear regime at the start of training).
    ``init_std`` changes it: with few training steps (small configs) a TFM whose tokens are much smaller
    than the sinusoidal positions they are added to starts as a near-constant function of the preset
    and needs hundreds of steps to leave that plateau; std 1 puts tokens on the positions' scale.
    """

    def __init__(self, layout: PresetLayout, d_token: int, init_std: float = 0.02) -> None:
        super().__init__()
        if d_token < 1:
            raise ValueError(f"d_token must be positive, got {d_token}")
        if not init_std > 0:
            raise ValueError(f"token init std must be positive, got {init_std}")
        self.init_std = float(init_std)
        self.layout = layout
        self.d_token = d_token
        n_noncat = len(layout.noncat_indices)
        # Parameters are allocated only when the layout has columns of that kind, so the parameter count
        # is exactly sum(|I_num|+|I_bin|) * d + sum(|C_i|) * d.
        self.value_vectors = nn.Parameter(torch.empty(n_noncat, d_token)) if n_noncat else None
        self.category_embedding = (
            nn.Embedding(layout.total_categories, d_token) if layout.cat_indices else None
        )
        offsets = _category_offsets(layout)
        self._offsets = tuple(offsets)
        _register_index_buffers(self, layout, offsets)
        # Tokens are computed as cat([noncat tokens, cat tokens]); this permutation restores spec order.
        source = [0] * len(layout)
        for j, col in enumerate(layout.noncat_indices):
            source[col] = j
        for j, col in enumerate(layout.cat_indices):
            source[col] = n_noncat + j
        self.register_buffer("order", torch.tensor(source, dtype=torch.long), persistent=False)
        # Relaxed path: (n_cat, total_categories) 0/1 matrix, row j selects the rows of column j's table.
        assign = torch.zeros(len(layout.cat_indices), layout.total_categories)
        for j, (start, card) in enumerate(zip(offsets, layout.cat_cardinalities, strict=True)):
            assign[j, start : start + card] = 1.0
        self.register_buffer("cat_assign", assign, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the token weights (normal with std ``init_std``, truncated to [-2, 2])."""
        std = self.init_std
        if self.value_vectors is not None:
            nn.init.trunc_normal_(self.value_vectors, std=std)
        if self.category_embedding is not None:
            nn.init.trunc_normal_(self.category_embedding.weight, std=std)

    def value_vector(self, column: int) -> torch.Tensor:
        """The learned vector ``v_i`` of a numerical/binary column (a view into the parameter)."""
        if self.layout.kinds[column] == "cat":
            raise ValueError(f"column {column} is categorical; use category_table()")
        assert self.value_vectors is not None
        return self.value_vectors[self.layout.noncat_indices.index(column)]

    def category_table(self, column: int) -> torch.Tensor:
        """The learned lookup table ``W_i`` of a categorical column, shape ``(cardinality, d_token)``."""
        if self.layout.kinds[column] != "cat":
            raise ValueError(f"column {column} is not categorical; use value_vector()")
        assert self.category_embedding is not None
        j = self.layout.cat_indices.index(column)
        start = self._offsets[j]
        return self.category_embedding.weight[start : start + self.layout.cardinalities[column]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokenize ``x: (batch, N)`` into ``(batch, N, d_token)`` in spec order."""
        check_preset_batch(x, self.layout)
        parts: list[torch.Tensor] = []
        if self.value_vectors is not None:
            values = x.index_select(1, self.noncat_idx).to(self.value_vectors.dtype)
            parts.append(values.unsqueeze(-1) * self.value_vectors)
        if self.category_embedding is not None:
            idx = category_indices(x, self.cat_idx, self.cat_cards, self.layout)
            parts.append(self.category_embedding(idx + self.cat_offsets))
        return torch.cat(parts, dim=1).index_select(1, self.order)

    def soft(self, noncat_values: torch.Tensor, cat_probs: torch.Tensor) -> torch.Tensor:
        """Tokenize a relaxed preset into ``(batch, N, d_token)`` in spec order.

        num/bin token ``x_i * v_i`` as in :meth:`forward` (a binary probability scales ``v_i``); categorical
        token ``sum_c p_c W_i[c]``, the expectation of the embedding under the column's category
        distribution (inputs as in :meth:`OneHotEncoding.soft`). Differentiable w.r.t. both inputs; equals
        :meth:`forward` when ``cat_probs`` is one-hot.
        """
        check_soft_batch(noncat_values, cat_probs, self.layout)
        parts: list[torch.Tensor] = []
        if self.value_vectors is not None:
            values = noncat_values.to(self.value_vectors.dtype)
            parts.append(values.unsqueeze(-1) * self.value_vectors)
        if self.category_embedding is not None:
            weight = self.category_embedding.weight
            # (batch, n_cat, total) @ (total, d): each row mixes only its own column's table.
            mix = cat_probs.to(weight.dtype).unsqueeze(1) * self.cat_assign.to(weight.dtype)
            parts.append(mix @ weight)
        return torch.cat(parts, dim=1).index_select(1, self.order)


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """Fixed sinusoidal positional encoding of shape ``(length, d_model)``.

    ``PE[p, 2k] = sin(p / 10000^(2k/d))`` and ``PE[p, 2k+1] = cos(p / 10000^(2k/d))`` (Vaswani et al.,
    2017). Odd ``d_model`` is supported (the last cosine column is dropped).
    """
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
    angles = position * inv_freq
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)[:, : d_model // 2]
    return pe.to(torch.float32)


class SinusoidalPositionalEncoding(nn.Module):
    """Add the fixed sinusoidal encoding to a ``(batch, length, d_model)`` sequence (position 0 first).

    The table is a non-persistent buffer: it is not learned and is rebuilt from ``(max_len, d_model)``,
    so checkpoints do not carry it and it cannot drift from the formula.
    """

    def __init__(self, d_model: int, max_len: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence of length {length} exceeds the positional table size {self.max_len}")
        return self.dropout(tokens + self.pe[:length].to(tokens.dtype))
