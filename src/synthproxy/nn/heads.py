"""The output head of a sound-matching estimator: one logit vector laid out from a synth's preset layout.

Combes et al. (JAES 2025) Sec. 8 and the official code (pcmbs/synth-proxy ``src/ssm``): the estimator outputs
ONE vector of logits, in spec (column) order, with

* one logit per numerical parameter (value ``sigmoid(logit)`` in [0, 1]),
* one logit per binary parameter (probability of 1 ``sigmoid(logit)``),
* ``C`` logits per categorical parameter with ``C`` categories (softmax over them).

E.g. a layout ``(num, cat with 3, bin)`` gives the logit vector ``[l_num, l_c0, l_c1, l_c2, l_bin]``.

:class:`PresetHead` knows this layout and turns logits into

* a *hard* preset (:meth:`PresetHead.decode_hard`, official ``decode_presets``): sigmoid / round(sigmoid) /
  argmax. This is what the real synth renders and what a preset file stores; fed to a proxy, the audio loss
  reaches only the numerical logits (round and argmax pass no gradient);
* a *relaxed* preset (:meth:`PresetHead.decode_soft`, our addition): sigmoid / sigmoid probability /
  softmax, the input of the encoders' ``forward_soft`` (:mod:`synthproxy.nn.encoders`), through which an
  audio loss also reaches the binary and categorical logits.

It also computes paper 1's parameter losses and parameter metrics (:meth:`PresetHead.parameter_losses`,
:meth:`PresetHead.parameter_metrics`). The head has no trainable weights, only non-persistent index buffers,
so it adds nothing to a checkpoint and follows ``.to(device)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from synthproxy.nn.stable import stable_l1
from synthproxy.nn.tokenizers import category_indices, check_preset_batch
from synthproxy.synths.layout import PresetLayout

__all__ = ["CatAverage", "PresetHead"]

CatAverage = Literal["macro", "micro"]


class PresetHead(nn.Module):
    """Logit layout of an estimator's output for ``layout``, with decoding, losses and metrics.

    Attributes:
        layout: the synth's preset layout.
        n_logits: length of the logit vector, ``n_num + n_bin + total_categories``.
        n_num, n_bin, n_cat: number of numerical, binary and categorical parameters.
        cat_logit_slices: per categorical parameter (order of ``layout.cat_indices``), its slice of the logits.
        cat_prob_slices: per categorical parameter, its slice of ``cat_probs`` (width ``total_categories``).

    Shapes: ``B`` batch, ``P = len(layout)`` preset columns, ``n_noncat = n_num + n_bin``.
    """

    def __init__(self, layout: PresetLayout) -> None:
        super().__init__()
        self.layout = layout
        self.n_num = len(layout.num_indices)
        self.n_bin = len(layout.bin_indices)
        self.n_cat = len(layout.cat_indices)

        logit_of_col: dict[int, int] = {}  # first logit of each column
        pos = 0
        for col, kind in enumerate(layout.kinds):
            logit_of_col[col] = pos
            pos += layout.cardinalities[col] if kind == "cat" else 1
        self.n_logits: int = pos

        self.cat_logit_slices: tuple[slice, ...] = tuple(
            slice(logit_of_col[c], logit_of_col[c] + layout.cardinalities[c]) for c in layout.cat_indices
        )
        prob_slices, start = [], 0
        for card in layout.cat_cardinalities:
            prob_slices.append(slice(start, start + card))
            start += card
        self.cat_prob_slices: tuple[slice, ...] = tuple(prob_slices)

        # decode_hard builds cat([num values, bin values, cat indices]); this permutation restores column order.
        order = [0] * len(layout)
        for j, col in enumerate((*layout.num_indices, *layout.bin_indices, *layout.cat_indices)):
            order[col] = j
        cat_logits = [i for s in self.cat_logit_slices for i in range(s.start, s.stop)]
        buffers = {
            "num_logit_idx": [logit_of_col[c] for c in layout.num_indices],
            "bin_logit_idx": [logit_of_col[c] for c in layout.bin_indices],
            "noncat_logit_idx": [logit_of_col[c] for c in layout.noncat_indices],
            "cat_logit_idx": cat_logits,
            "num_cols": list(layout.num_indices),
            "bin_cols": list(layout.bin_indices),
            "cat_cols": list(layout.cat_indices),
            "hard_order": order,
        }
        for name, values in buffers.items():
            self.register_buffer(name, torch.tensor(values, dtype=torch.long), persistent=False)
        self.register_buffer("cat_cards", torch.tensor(layout.cat_cardinalities, dtype=torch.float32), persistent=False)
        is_bin = [k == "bin" for k in layout.kinds if k != "cat"]  # aligned with layout.noncat_indices
        self.register_buffer("noncat_is_bin", torch.tensor(is_bin, dtype=torch.bool), persistent=False)

    # ------------------------------------------------------------------------------------------------
    # Layout
    # ------------------------------------------------------------------------------------------------
    def _check_logits(self, logits: torch.Tensor) -> None:
        if logits.ndim != 2 or logits.shape[1] != self.n_logits:
            raise ValueError(
                f"expected logits of shape (batch, {self.n_logits}) for this layout "
                f"({self.n_num} num + {self.n_bin} bin + {self.layout.total_categories} category logits), "
                f"got shape {tuple(logits.shape)}"
            )

    def split(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(B, n_logits)`` -> ``(num (B, n_num), bin (B, n_bin), [cat_i (B, C_i)])``.

        Each part keeps the order of its columns in the preset (``layout.num_indices``, ``bin_indices``,
        ``cat_indices``); missing kinds give ``(B, 0)`` tensors / an empty list.
        """
        self._check_logits(logits)
        num = logits.index_select(1, self.num_logit_idx)
        binary = logits.index_select(1, self.bin_logit_idx)
        return num, binary, [logits[:, s] for s in self.cat_logit_slices]

    # ------------------------------------------------------------------------------------------------
    # Decoding
    # ------------------------------------------------------------------------------------------------
    def decode_hard(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> preset ``(B, P)``: num ``sigmoid``, bin ``round(sigmoid)``, cat ``argmax`` (as float index).

        The official ``decode_presets``: the preset the real synth renders. Gradients reach only the numerical
        logits (``round`` has zero gradient, ``argmax`` none). A logit of exactly 0 gives binary 0 (``round``
        rounds half to even, as in the official code).
        """
        num, binary, cats = self.split(logits)
        parts = [torch.sigmoid(num), torch.sigmoid(binary).round()]
        if cats:
            parts.append(torch.stack([c.argmax(dim=1) for c in cats], dim=1).to(logits.dtype))
        return torch.cat(parts, dim=1).index_select(1, self.hard_order)

    def decode_soft(self, logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits -> relaxed preset ``(noncat_values (B, n_noncat), cat_probs (B, total_categories))``.

        ``noncat_values`` follow ``layout.noncat_indices`` (num: ``sigmoid(l)``; bin: the probability of 1,
        ``sigmoid(l / temperature)``); ``cat_probs`` holds ``softmax(l_i / temperature)`` for each
        categorical parameter, blocks in the order of ``layout.cat_indices``. The temperature acts on the
        discrete kinds only (a numerical value is not a distribution). Feed the pair to an encoder's
        ``forward_soft``; everything is differentiable.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self._check_logits(logits)
        noncat = logits.index_select(1, self.noncat_logit_idx)
        if self.n_bin and temperature != 1.0:
            noncat = torch.where(self.noncat_is_bin, noncat / temperature, noncat)
        noncat = torch.sigmoid(noncat)
        probs = [torch.softmax(logits[:, s] / temperature, dim=1) for s in self.cat_logit_slices]
        cat_probs = torch.cat(probs, dim=1) if probs else logits.new_zeros(logits.shape[0], 0)
        return noncat, cat_probs

    def preset_to_logits(self, preset: torch.Tensor, confidence: float = 10.0, eps: float = 1e-6) -> torch.Tensor:
        """A logit vector that decodes back to ``preset`` ``(B, P)``: the inverse of :meth:`decode_hard`.

        num: ``logit(clamp(x, eps, 1 - eps))`` (so ``sigmoid`` returns ``x`` up to ``eps``); bin: ``±confidence``;
        cat: ``confidence`` on the chosen category, 0 elsewhere. Handy for tests and oracle baselines.
        """
        check_preset_batch(preset, self.layout)
        logits = preset.new_zeros(preset.shape[0], self.n_logits)
        num = preset.index_select(1, self.num_cols).clamp(eps, 1.0 - eps)
        logits[:, self.num_logit_idx] = torch.log(num) - torch.log1p(-num)
        logits[:, self.bin_logit_idx] = (2.0 * preset.index_select(1, self.bin_cols).round() - 1.0) * confidence
        if self.n_cat:
            idx = category_indices(preset, self.cat_cols, self.cat_cards, self.layout)
            starts = torch.tensor([s.start for s in self.cat_logit_slices], device=preset.device)
            logits.scatter_(1, idx + starts, confidence)
        return logits

    # ------------------------------------------------------------------------------------------------
    # Losses and metrics (paper 1, official ``parameter_loss_fn`` and ``_compute_p_metrics``)
    # ------------------------------------------------------------------------------------------------
    def parameter_losses(
        self, logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """Paper 1's parameter losses of ``logits (B, n_logits)`` against an index preset ``target (B, P)``.

        Returns scalar tensors:

        * ``num``: ``L1(sigmoid(num logits), target num)``, mean over batch and parameters;
        * ``bin``: ``BCEWithLogits(bin logits, target bin)``, mean over batch and parameters;
        * ``cat``: the SUM over categorical parameters of ``CrossEntropy(cat logits_i, target_i,
          label_smoothing)`` (each a batch mean). The official config uses label smoothing 0.02 for Dexed,
          0.01 for Diva, and weights this sum by 0.01 in the total (the caller's business).

        A kind the layout does not have (e.g. no binary parameter for Dexed) gives a zero loss (a constant
        tensor without gradient), as in the official code.
        """
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        check_preset_batch(target, self.layout)
        num, binary, cats = self.split(logits)
        target = target.to(logits.dtype)
        zero = logits.new_zeros(())
        losses = {"num": zero, "bin": zero, "cat": zero}
        if self.n_num:
            losses["num"] = stable_l1(torch.sigmoid(num), target.index_select(1, self.num_cols))
        if self.n_bin:
            losses["bin"] = F.binary_cross_entropy_with_logits(binary, target.index_select(1, self.bin_cols))
        if self.n_cat:
            idx = category_indices(target, self.cat_cols, self.cat_cards, self.layout)
            terms = [F.cross_entropy(c, idx[:, j], label_smoothing=label_smoothing) for j, c in enumerate(cats)]
            losses["cat"] = torch.stack(terms).sum()
        return losses

    @torch.no_grad()
    def parameter_metrics(
        self, logits: torch.Tensor, target: torch.Tensor, cat_average: CatAverage = "macro"
    ) -> dict[str, float]:
        """Paper 1's parameter metrics of the decoded prediction against an index preset ``target (B, P)``.

        * ``num_l1``: mean absolute error of ``sigmoid(num logits)`` (the decoded values);
        * ``bin_acc``: fraction of binary parameters (over batch and parameters) with
          ``round(sigmoid(l)) == target`` (threshold 0.5, official ``BinaryAccuracy``);
        * ``cat_acc``: categorical accuracy of the argmax. ``cat_average="macro"`` reproduces the official
          ``MulticlassAccuracy(num_classes=max C)`` (default macro average) applied to the ``(B, n_cat)``
          matrices of predicted and target indices: the labels of ALL categorical parameters are pooled, class
          *label* ``k`` (``0 .. max C - 1``, the same label for every parameter) gets the recall
          ``tp_k / (tp_k + fn_k)`` (0 when it never occurs in the target), and the recalls are averaged over
          the labels that occur in the target or the prediction. ``"micro"`` is the plain fraction of correct
          categorical predictions.

        A kind the layout does not have gives no key (the official code logs nothing for it either). The
        official code computes these per batch; average over batches as it does if you need an epoch value.
        """
        if cat_average not in ("macro", "micro"):
            raise ValueError(f"cat_average must be 'macro' or 'micro', got {cat_average!r}")
        check_preset_batch(target, self.layout)
        pred = self.decode_hard(logits)
        target = target.to(pred.dtype)
        out: dict[str, float] = {}
        if self.n_num:
            diff = pred.index_select(1, self.num_cols) - target.index_select(1, self.num_cols)
            out["num_l1"] = diff.abs().mean().item()
        if self.n_bin:
            hits = pred.index_select(1, self.bin_cols) == target.index_select(1, self.bin_cols)
            out["bin_acc"] = hits.to(torch.float64).mean().item()
        if self.n_cat:
            p_idx = pred.index_select(1, self.cat_cols).long().flatten()
            t_idx = category_indices(target, self.cat_cols, self.cat_cards, self.layout).flatten()
            if cat_average == "micro":
                out["cat_acc"] = (p_idx == t_idx).to(torch.float64).mean().item()
            else:  # macro, official
                n_classes = max(self.layout.cat_cardinalities)
                tp = torch.bincount(t_idx[p_idx == t_idx], minlength=n_classes).to(torch.float64)
                support = torch.bincount(t_idx, minlength=n_classes).to(torch.float64)  # tp + fn
                predicted = torch.bincount(p_idx, minlength=n_classes).to(torch.float64)  # tp + fp
                recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
                present = (support + predicted) > 0  # tp + fp + fn > 0
                out["cat_acc"] = (recall[present].sum() / present.sum()).item()
        return out
