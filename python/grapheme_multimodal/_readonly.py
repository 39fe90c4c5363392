"""A mapping nobody can change, that still pickles and copies.

``types.MappingProxyType`` refuses edits too, but cannot be pickled or deep
copied: anything holding one (``MultimodalEmbedder(objectives=...)`` cloned
by scikit-learn's ``clone``, a pickled estimator) failed with "cannot pickle
'mappingproxy' object".
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ReadOnlyMapping(Mapping[K, V]):
    """A read-only copy of a mapping: no item assignment or removal (a
    ``TypeError``/``AttributeError``, as for ``MappingProxyType``), equal to
    a dict of the same items; ``dict(m)`` or ``{**m}`` gives an editable copy.
    Pickles, copies and deep-copies as any object."""

    def __init__(self, items: Mapping[K, V]) -> None:
        self._items: Dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def __reduce__(self) -> Any:  # rebuilt from its items: no __dict__ state to restore past __init__
        return (type(self), (self._items,))


class FrozenDict(Dict[K, V]):
    """A ``dict`` nobody can change, and so hashable: a frozen dataclass's
    field (``uci.TrainingSettings.weights``), where a plain dict could be
    edited in place past the checks made when the settings were (and made
    the settings unhashable). Still a ``dict`` for everything that reads
    one: ``json.dumps``, ``dataclasses.asdict``, ``isinstance(x, dict)``,
    its repr. An edit raises ``TypeError``; ``dict(d)`` gives an editable
    copy, and so does ``d.copy()``. Pickles and (deep-)copies."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be changed; dict(...) gives an editable copy")

    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def copy(self) -> Dict[K, V]:  # type: ignore[override]
        return dict(self)

    def __reduce__(self) -> Any:  # rebuilt from its items: pickle's default refilled it item by item
        return (type(self), (dict(self),))
