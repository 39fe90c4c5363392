"""View pairs and their keys in the measurements' dicts and JSON."""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Iterable, List, Tuple

__all__ = ["ordered_pairs", "unordered_pairs", "pair_key", "two_view_key"]


def ordered_pairs(names: Iterable[str]) -> List[Tuple[str, str]]:
    """Every (query, gallery) pair of distinct views, in view order: 30 for six views."""
    return list(permutations(list(names), 2))


def unordered_pairs(names: Iterable[str]) -> List[Tuple[str, str]]:
    """Every pair of distinct views once, in view order: 15 for six views."""
    return list(combinations(list(names), 2))


def pair_key(query: str, gallery: str) -> str:
    """``"fou->pix"``: retrieval from ``query``'s embeddings among ``gallery``'s."""
    return f"{query}->{gallery}"


def two_view_key(a: str, b: str) -> str:
    """``"fou+zer"``: only these two views present."""
    return f"{a}+{b}"
