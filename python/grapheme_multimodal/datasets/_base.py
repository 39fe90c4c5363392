"""What every multi-view data set here offers besides its fields."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from .._equality import equal_fields
from ..buffer import _short_repr


class MultiViewMixin:
    """Row-aligned ``views`` (name -> ``[n, d]``), seen by name or as a list.
    Data sets compare by value (their views in order, labels and names) and,
    holding arrays, are not hashable; their repr shows arrays by shape and
    dtype. Their dataclasses take ``eq=False, repr=False`` so that this
    ``==`` and repr are theirs."""

    views: Dict[str, np.ndarray]

    def __eq__(self, other: object) -> Any:
        # the dataclass's own == raised numpy's "truth value of an array ... is ambiguous"
        equal = equal_fields(self, other)
        if equal is NotImplemented or not equal:
            return equal
        return self.view_names == other.view_names  # type: ignore[attr-defined]  # the order of Xs too

    __hash__ = None  # type: ignore[assignment]  # a frozen dataclass's field hash failed on its dict of views

    def __repr__(self) -> str:
        # the dataclass's printed the values: 9 kB for Nutrimouse (its lipid view whole, 141 feature names)
        return _short_repr(self)

    @property
    def view_names(self) -> Tuple[str, ...]:
        """The views' names, in order."""
        return tuple(self.views)

    @property
    def Xs(self) -> List[np.ndarray]:  # noqa: N802 - the mvlearn / cca-zoo name
        """The views as a list in :attr:`view_names` order (the mvlearn / cca-zoo convention)."""
        return list(self.views.values())
