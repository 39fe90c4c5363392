"""View pairs and their keys in the measurements' dicts and JSON."""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Iterable, List, Tuple

from .._validation import describe

__all__ = ["ordered_pairs", "unordered_pairs", "pair_key", "two_view_key"]


def ordered_pairs(names: Iterable[str]) -> List[Tuple[str, str]]:
    """Every (query, gallery) pair of distinct views, in view order: 30 for six views."""
    return list(permutations(view_name_list(names), 2))


def unordered_pairs(names: Iterable[str]) -> List[Tuple[str, str]]:
    """Every pair of distinct views once, in view order: 15 for six views."""
    return list(combinations(view_name_list(names), 2))


def view_name_list(names: Iterable[str], arg: str = "names") -> List[str]:
    """``names`` as a list; one string is refused (a TypeError naming
    ``arg``): "fou" was three views, 'f', 'o' and 'u'."""
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{arg}: expected view names, got a {type(names).__name__} ({names!r}); pass [{names!r}] for one view")
    if not isinstance(names, Iterable):  # else "'NoneType' object is not iterable"
        raise TypeError(f"{arg}: expected view names (a sequence), got {describe(names)}")
    return list(names)


def pair_key(query: str, gallery: str) -> str:
    """``"fou->pix"``: retrieval from ``query``'s embeddings among ``gallery``'s."""
    return f"{query}->{gallery}"


def two_view_key(a: str, b: str) -> str:
    """``"fou+zer"``: only these two views present."""
    return f"{a}+{b}"
