"""Column layout of a preset vector, as seen by the preset encoders.

A preset reaches an encoder as a float tensor ``(batch, N)`` in spec order (Sec. 3.1 of Combes et al.):
numerical columns hold a value in [0, 1], binary columns hold 0 or 1 and categorical columns hold a
0-based category *index* stored as a float. The encoders only need to know, per column, which of the
three kinds it is and, for categorical columns, how many categories it has; :class:`PresetLayout` is
exactly that and nothing more, so that it can be built by the synth-spec code without the encoders
depending on it (and vice versa).

This module deliberately does not import torch: a layout is cheap, hashable metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from synthproxy.errors import SpecError

ParamKind = Literal["num", "bin", "cat"]
VALID_KINDS: tuple[str, ...] = ("num", "bin", "cat")


@dataclass(frozen=True)
class PresetLayout:
    """Per-column kind and cardinality of a synthesizer preset.

    Attributes:
        kinds: per column, ``"num"`` (value in [0, 1]), ``"bin"`` (0 or 1) or ``"cat"`` (category index).
        cardinalities: per column, the number of categories for ``"cat"`` columns. For ``"num"`` and
            ``"bin"`` columns the value is ignored by the encoders (0 is conventional, 2 for binary
            columns is accepted too), because both are represented by their raw value.

    Lists are accepted and stored as tuples, so that a layout stays immutable and hashable.

    Raises:
        SpecError: if the two sequences differ in length, a kind is unknown, the layout is empty or a
            categorical column has fewer than one category.
    """

    kinds: tuple[str, ...]
    cardinalities: tuple[int, ...]

    def __post_init__(self) -> None:
        # Normalise to tuples (a frozen dataclass needs object.__setattr__) so equality/hash are stable.
        object.__setattr__(self, "kinds", tuple(str(k) for k in self.kinds))
        object.__setattr__(self, "cardinalities", tuple(int(c) for c in self.cardinalities))
        if len(self.kinds) != len(self.cardinalities):
            raise SpecError(
                f"PresetLayout: {len(self.kinds)} kinds but {len(self.cardinalities)} cardinalities; "
                "both must have one entry per preset column"
            )
        if not self.kinds:
            raise SpecError("PresetLayout: a preset must have at least one column")
        for i, (kind, card) in enumerate(zip(self.kinds, self.cardinalities, strict=True)):
            if kind not in VALID_KINDS:
                raise SpecError(
                    f"PresetLayout: column {i} has unknown kind {kind!r}; "
                    f"valid kinds: {', '.join(VALID_KINDS)}"
                )
            if kind == "cat" and card < 1:
                raise SpecError(
                    f"PresetLayout: categorical column {i} has cardinality {card}; "
                    "it needs at least 1 category"
                )
            if card < 0:
                raise SpecError(f"PresetLayout: column {i} has negative cardinality {card}")

    @classmethod
    def from_counts(cls, n_num: int, n_bin: int = 0, cat_cardinalities: Iterable[int] = ()) -> PresetLayout:
        """Build a layout with ``n_num`` numerical, then ``n_bin`` binary, then the categorical columns.

        Handy for synthetic layouts (tests, parameter-count tables) where only the counts matter.
        """
        cards = tuple(int(c) for c in cat_cardinalities)
        kinds = ("num",) * n_num + ("bin",) * n_bin + ("cat",) * len(cards)
        return cls(kinds=kinds, cardinalities=(0,) * (n_num + n_bin) + cards)

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def noncat_indices(self) -> tuple[int, ...]:
        """Columns represented by their raw value (numerical and binary), in spec order."""
        return tuple(i for i, k in enumerate(self.kinds) if k != "cat")

    @property
    def cat_indices(self) -> tuple[int, ...]:
        """Categorical columns, in spec order."""
        return tuple(i for i, k in enumerate(self.kinds) if k == "cat")

    @property
    def num_indices(self) -> tuple[int, ...]:
        """Numerical columns (the ones a proxy must be differentiable with respect to)."""
        return tuple(i for i, k in enumerate(self.kinds) if k == "num")

    @property
    def bin_indices(self) -> tuple[int, ...]:
        """Binary columns."""
        return tuple(i for i, k in enumerate(self.kinds) if k == "bin")

    @property
    def cat_cardinalities(self) -> tuple[int, ...]:
        """Cardinality of each categorical column, aligned with :attr:`cat_indices`."""
        return tuple(self.cardinalities[i] for i in self.cat_indices)

    @property
    def total_categories(self) -> int:
        """Sum of the categorical cardinalities (rows of the stacked categorical lookup tables)."""
        return sum(self.cat_cardinalities)

    @property
    def one_hot_dim(self) -> int:
        """Width of the OH representation: one slot per num/bin column plus one per category."""
        return len(self.noncat_indices) + self.total_categories

    def counts(self) -> dict[str, int]:
        """Number of columns of each kind, e.g. ``{"num": 92, "bin": 0, "cat": 8}`` for Dexed."""
        return {k: sum(1 for kind in self.kinds if kind == k) for k in VALID_KINDS}
