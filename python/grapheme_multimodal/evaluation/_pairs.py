"""View pairs and their keys in the measurements' dicts and JSON."""

from __future__ import annotations

from itertools import combinations, permutations
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from .._validation import describe, is_iterable
from ..exceptions import InvalidValueError

__all__ = ["ordered_pairs", "unordered_pairs", "pair_key", "two_view_key"]


def ordered_pairs(names: Iterable[str]) -> List[Tuple[str, str]]:
    """Every (query, gallery) pair of distinct views, in view order: 30 for six views."""
    return list(permutations(view_name_list(names), 2))


def unordered_pairs(names: Iterable[str]) -> List[Tuple[str, str]]:
    """Every pair of distinct views once, in view order: 15 for six views."""
    return list(combinations(view_name_list(names), 2))


def view_name_list(names: Iterable[str], arg: str = "names") -> List[str]:
    """``names`` as a list; one string is refused (a TypeError naming
    ``arg``): "fou" was three views, 'f', 'o' and 'u'. A name given twice
    is refused too: the pairs "of distinct views" held the view with itself
    (``('a', 'a')``) and each pair of the repeated view twice."""
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{arg}: expected view names, got a {type(names).__name__} ({names!r}); pass [{names!r}] for one view")
    if not is_iterable(names):  # else "'NoneType' object is not iterable"
        raise TypeError(f"{arg}: expected view names (a sequence), got {describe(names)}")
    out = list(names)
    seen: set = set()
    for name in out:
        try:
            repeated = name in seen
        except TypeError:  # unhashable: no view name; the caller's own checks name it
            continue
        if repeated:
            raise InvalidValueError(f"{arg}: {name!r} is given twice; expected distinct view names", arg)
        seen.add(name)
    return out


def pair_key(query: str, gallery: str) -> str:
    """``"fou->pix"``: retrieval from ``query``'s embeddings among ``gallery``'s."""
    return f"{query}->{gallery}"


def two_view_key(a: str, b: str) -> str:
    """``"fou+zer"``: only these two views present."""
    return f"{a}+{b}"


def check_result_keys(
    names: Iterable[Any], arg: str, *, pair_keys: bool = True, two_view_keys: bool = False,
    reserved: Optional[Mapping[str, str]] = None,
) -> None:
    """InvalidValueError naming ``arg`` (where the caller's views are) when
    the view ``names`` would give two results one key, and the later
    silently overwrote the earlier: a view named as a ``reserved`` key
    (``{"concat": "entry of all views side by side"}``); two names alike as
    text (``1`` and ``"1"``), which :func:`pair_key` (and, with
    ``two_view_keys``, :func:`two_view_key`) spell alike; or names holding
    a key's separator that spell another pair's key (``"a"`` and ``"b->c"``
    beside ``"a->b"`` and ``"c"``). Checked before any figure is computed."""
    names = list(names)
    for key, what in (reserved or {}).items():
        clash = next((v for v in names if v == key), None)
        if clash is not None:
            raise InvalidValueError(
                f"{arg}: a view is named {clash!r}, the key of the results' {what}, and one would overwrite the "
                "other; expected another name for that view", arg)
    if not (pair_keys or two_view_keys):
        return
    as_text: Dict[str, Any] = {}
    for name in names:
        first = as_text.setdefault(str(name), name)
        if first is not name:  # names are a mapping's keys: another name of the same text
            key = pair_key(first, name) if pair_keys else two_view_key(first, name)
            raise InvalidValueError(
                f"{arg}: the view names {first!r} and {name!r} are both {str(name)!r} as text, and the results are "
                f"keyed by the names as text ({key!r}), so one view's figures would overwrite the other's; expected "
                "view names that differ as strings", arg)
    spellings: List[Tuple[Callable[[Any, Any], str], List[Tuple[Any, Any]], str]] = []
    if pair_keys:
        spellings.append((pair_key, ordered_pairs(names), "->"))
    if two_view_keys:
        spellings.append((two_view_key, unordered_pairs(names), "+"))
    for key_of, pairs, separator in spellings:
        seen: Dict[str, Tuple[Any, Any]] = {}
        for pair in pairs:
            key = key_of(*pair)
            if key in seen:
                raise InvalidValueError(
                    f"{arg}: the view pairs {seen[key]!r} and {pair!r} are both keyed {key!r} in the results, so one "
                    f"pair's figures would overwrite the other's; expected view names that keep the keys apart (a name "
                    f"holding {separator!r} spells another pair's key here)", arg)
            seen[key] = pair
