"""What every multi-view data set here offers besides its fields."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np


class MultiViewMixin:
    """Row-aligned ``views`` (name -> ``[n, d]``), seen by name or as a list."""

    views: Dict[str, np.ndarray]

    @property
    def view_names(self) -> Tuple[str, ...]:
        """The views' names, in order."""
        return tuple(self.views)

    @property
    def Xs(self) -> List[np.ndarray]:  # noqa: N802 - the mvlearn / cca-zoo name
        """The views as a list in :attr:`view_names` order (the mvlearn / cca-zoo convention)."""
        return list(self.views.values())
