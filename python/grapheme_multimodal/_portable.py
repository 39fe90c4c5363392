"""Pickles that load under every numpy this package supports (1.23 to 2.x).

numpy pickles an array by naming its own internals: numpy 2 writes
``numpy._core.multiarray._reconstruct``, a module numpy 1 lacks, and a
``Generator`` by its BitGenerator class, which numpy 1 takes only by name.
A model or buffer pickled under numpy 2 did not unpickle under numpy 1. The
package's objects pickle their arrays as raw bytes, dtype string and shape,
and a generator as its state (plain Python values), through the wrappers
here, which any numpy rebuilds.

:func:`portable` wraps them in a state as it is pickled (only the wrapper's
own ``__reduce_ex__`` runs at pickling: nothing is copied before);
unpickling gives plain arrays and generators back. ``copy.copy`` hands the
state over as it is: :func:`restored_state` unwraps it. A class pickles so
by inheriting :class:`PortablePickle` (last among its bases) and naming the
entries of its state in ``_PORTABLE_KEYS``.
"""

from __future__ import annotations

import copy
import copyreg
import math
import pickle
from typing import Any, ClassVar, Dict, FrozenSet, Optional, Sequence, Tuple

import numpy as np

from .exceptions import CheckpointError

#: dtypes whose values are their bytes (bool, ints, floats, complex, times, fixed-width text).
_RAW_KINDS = frozenset("biufcmMSU")


class _PortableArray:
    """An ndarray as pickled: its bytes, dtype string and shape, and "F" for a
    Fortran-ordered array (as numpy's own pickle, which keeps the order: it
    came back C-ordered, its columns no longer contiguous)."""

    __slots__ = ("array", "writable")

    def __init__(self, array: np.ndarray, writable: bool = True) -> None:
        self.array = array
        self.writable = writable

    def __reduce_ex__(self, protocol: int) -> Tuple[Any, ...]:
        array = self.array
        fortran = array.flags.f_contiguous and not array.flags.c_contiguous
        order = ("F",) if fortran else ()  # named only then: other arrays pickle as older versions read them
        if array.dtype.kind == "O":  # names of columns: the items, pickled as themselves
            return _object_array, (array.ravel(order="F" if fortran else "C").tolist(), array.shape) + order
        if not (array.flags.c_contiguous or fortran):  # (np.ascontiguousarray made a 0-d array 1-d)
            array = array.copy(order="C")
        # protocol 5: the array's memory as is (no copy; out of band where the pickler takes buffers, as Ray's),
        # as bytes (a datetime array exports no buffer of its own); a Fortran-ordered array's transpose is C-ordered
        flat = (array.T if fortran else array).reshape(-1)
        data = pickle.PickleBuffer(flat.view(np.uint8)) if protocol >= 5 else flat.tobytes()
        return (_array if self.writable else _array_over), (data, array.dtype.str, array.shape) + order

    def __deepcopy__(self, memo: Dict[int, Any]) -> np.ndarray:
        return copy.deepcopy(self.array, memo)


class _PortableGenerator:
    """A ``numpy.random.Generator`` as pickled: its BitGenerator's state dict."""

    __slots__ = ("generator",)

    def __init__(self, generator: np.random.Generator) -> None:
        self.generator = generator

    def __reduce_ex__(self, protocol: int) -> Tuple[Any, ...]:
        return _generator, (portable(self.generator.bit_generator.state),)

    def __deepcopy__(self, memo: Dict[int, Any]) -> np.random.Generator:
        return copy.deepcopy(self.generator, memo)


def _array(data: Any, dtype: str, shape: Sequence[int], order: str = "C") -> np.ndarray:
    """The array of :class:`_PortableArray` (writable, as numpy's own pickles give it), in its ``order``."""
    array = _array_over(data, dtype, shape, order)
    return array if array.flags.writeable else array.copy(order="K")


def _array_over(data: Any, dtype: str, shape: Sequence[int], order: str = "C") -> np.ndarray:
    """The array of a :class:`_PortableArray` its owner only reads from (a
    model's tensors, which its core copies): over the pickled bytes, read-only
    as they are. Copied as :func:`_array` makes them writable, they took a
    third more time to unpickle than numpy's own pickles of the same model."""
    kind = np.dtype(dtype)
    _check_shape(shape, f"dtype {kind.str!r}")
    held, wanted = memoryview(data).nbytes, kind.itemsize * math.prod(shape)
    if held != wanted or any(n < 0 for n in shape):
        # else numpy's "cannot reshape array of size 6 into shape (9, 3)" or "buffer size must be a multiple of
        # element size", naming nothing; or a -1 in the shape taken for whatever the bytes made
        expected = "sizes >= 0" if any(n < 0 for n in shape) else f"{wanted:,} bytes, that shape's"
        raise CheckpointError(
            f"pickle: holds {held:,} bytes for an array of dtype {kind.str!r} and shape {tuple(shape)}; expected "
            f"{expected} (the pickle is damaged or was edited)", "pickle")
    return np.frombuffer(data, dtype=kind).reshape(shape, order=order)


def _check_shape(shape: Any, what: str) -> None:
    """CheckpointError for a pickled array's ``shape`` (of ``what``) that is
    not a sequence of ints: a float or str in an edited pickle's raised a
    bare TypeError from ``math.prod`` or numpy's reshape, naming nothing."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) for n in shape):
        raise CheckpointError(f"pickle: holds an array of {what} and shape {shape!r}; expected a shape of ints "
                              "(the pickle is damaged or was edited)", "pickle")


def _object_array(items: list, shape: Sequence[int], order: str = "C") -> np.ndarray:
    _check_shape(shape, "dtype object")
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # item by item: a sequence item is kept, not broadcast
        array[i] = item
    return array.reshape(shape, order=order)


def _generator(state: Dict[str, Any]) -> np.random.Generator:
    """The generator of :class:`_PortableGenerator`: its BitGenerator by name, at ``state``."""
    kind = getattr(np.random, str(state["bit_generator"]), None)
    if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
        raise ValueError(f"state: {state['bit_generator']!r} is not a numpy BitGenerator")
    bit_generator = kind()
    bit_generator.state = restored(state)
    return np.random.Generator(bit_generator)


def _is_plain_array(value: Any) -> bool:
    # an ndarray itself (a subclass, a masked array, pickles as numpy makes it) of values that are its bytes,
    # or of Python objects (itemsize 0 has no bytes to read back)
    return type(value) is np.ndarray and (
        (value.dtype.kind in _RAW_KINDS and value.dtype.itemsize > 0) or value.dtype == object
    )


def portable(value: Any, wrapped: Optional[Dict[int, Any]] = None, writable: bool = True) -> Any:
    """``value`` with its arrays and generators wrapped to pickle under any
    numpy; dicts, lists and tuples (exactly those: the package's own state,
    not a user's containers) are walked, anything else kept as it is. One
    array met twice gets one wrapper (``wrapped``: by id), so that it is
    one array again when unpickled (a component's labels follow its array).
    ``writable=False``: its arrays come back read-only, over the pickled
    bytes (for state its owner copies as it reads it)."""
    wrapped = {} if wrapped is None else wrapped
    if _is_plain_array(value):
        return wrapped.setdefault(id(value), _PortableArray(value, writable))
    if type(value) is np.random.Generator:
        return wrapped.setdefault(id(value), _PortableGenerator(value))
    if type(value) is dict:
        return {k: portable(v, wrapped, writable) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(portable(v, wrapped, writable) for v in value)
    return value


def restored(value: Any) -> Any:
    """Inverse of :func:`portable` (a ``copy.copy`` passes its state unpickled)."""
    if isinstance(value, _PortableArray):
        return value.array
    if isinstance(value, _PortableGenerator):
        return value.generator
    if type(value) is dict:
        return {k: restored(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(restored(v) for v in value)
    return value


def portable_reduction(reduction: Any, keys: Sequence[str], read_only: Sequence[str] = ()) -> Any:
    """``object.__reduce_ex__``'s ``reduction`` with the state's entries
    ``keys`` made :func:`portable` (the others, a user's, as they are);
    those also in ``read_only`` unpickle read-only (see :func:`portable`)."""
    if not (isinstance(reduction, tuple) and len(reduction) > 2):
        return reduction
    attributes, slots = split_state(reduction[2])
    if attributes is None:
        return reduction
    wrapped: Dict[int, Any] = {}
    state = {k: portable(v, wrapped, k not in read_only) if k in keys else v for k, v in attributes.items()}
    return reduction[:2] + (state if slots is None else (state, slots),) + reduction[3:]


def split_state(state: Any) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """``(attributes, slots)`` of an ``object.__reduce_ex__`` state: a dict
    of attributes, or the ``(dict or None, slots)`` pair of an instance of a
    subclass with ``__slots__`` of its own; ``(None, None)`` for anything else."""
    if type(state) is dict:
        return state, None
    if type(state) is tuple and len(state) == 2 and type(state[1]) is dict and (state[0] is None or type(state[0]) is dict):
        return state[0], state[1]
    return None, None


def restored_state(state: Any, keys: Sequence[str]) -> Any:
    """Inverse of :func:`portable_reduction` on its state: what a
    ``__setstate__`` called by ``copy.copy`` is given."""
    attributes, slots = split_state(state)
    if attributes is None or not any(k in attributes for k in keys):
        return state
    attributes = {k: restored(v) if k in keys else v for k, v in attributes.items()}
    return attributes if slots is None else (attributes, slots)


def slot_names(cls: type) -> FrozenSet[str]:
    """The ``__slots__`` of ``cls`` and its bases (a user's subclass's), as
    pickle names them (private names mangled; no ``__dict__``, ``__weakref__``)."""
    return frozenset(copyreg._slotnames(cls))  # what object.__reduce_ex__ reads them by


def slot_values(instance: Any) -> Dict[str, Any]:
    """The slots of ``instance`` that are set, by name: what a class whose
    own ``__getstate__`` pickles its ``__dict__`` adds, else a user's
    subclass lost them in every pickle and copy, without a word."""
    values = {}
    for name in slot_names(type(instance)):
        try:
            values[name] = getattr(instance, name)
        except AttributeError:  # not set
            continue
    return values


def set_attributes(instance: Any, attributes: Dict[str, Any], replace: bool = False) -> None:
    """``attributes`` into ``instance``: into its ``__dict__``, those named by
    its slots set by name (in ``__dict__`` the slot would hide them). With
    ``replace``, its other set slots are deleted, as its state is replaced."""
    slots = slot_names(type(instance))
    instance.__dict__.update({k: v for k, v in attributes.items() if k not in slots})
    for name in slots:
        if name in attributes:
            setattr(instance, name, attributes[name])
        elif replace and hasattr(instance, name):
            delattr(instance, name)


def set_state(instance: Any, state: Any) -> None:
    """What ``object``'s unpickling does with ``state`` (no ``__setstate__``):
    its attributes into ``__dict__``, a subclass's slots set by name (a
    ``__setstate__`` that took the state for a dict refused an instance of a
    user's subclass with ``__slots__``, which pickled and copied before)."""
    attributes, slots = split_state(state)
    if attributes is None and slots is None:
        raise TypeError(f"state: expected a dict of attributes (and one of slots), got {type(state).__name__}")
    instance.__dict__.update(attributes or {})
    for name, value in (slots or {}).items():
        setattr(instance, name, value)


class PortablePickle:
    """Mixin: the instance pickles the entries ``_PORTABLE_KEYS`` of its state
    (``__getstate__``) through :func:`portable`, so that a pickle of numpy 2
    loads under numpy 1, and back; the rest of the state (a user's
    attributes) is pickled as it is.

    Put it last among the bases, so that ``__reduce_ex__`` reaches
    ``object``'s and other bases' ``__setstate__`` (scikit-learn's
    ``BaseEstimator``) run before :meth:`__setstate__` here. A class with a
    ``__setstate__`` of its own calls :meth:`_portable_state` first."""

    __slots__ = ()  # no storage of its own (and BaseEstimator refuses a non-empty __slots__)

    #: The entries of the pickled state that hold arrays or generators.
    _PORTABLE_KEYS: ClassVar[Tuple[str, ...]] = ()
    #: Those of them whose arrays the unpickling only reads (copies into memory of its own): read-only, no copy.
    _PORTABLE_READ_ONLY: ClassVar[Tuple[str, ...]] = ()

    def __reduce_ex__(self, protocol: int) -> Any:
        return portable_reduction(super().__reduce_ex__(protocol), self._PORTABLE_KEYS, self._PORTABLE_READ_ONLY)

    def __setstate__(self, state: Any) -> None:
        set_state(self, self._portable_state(state))

    def _portable_state(self, state: Any) -> Any:
        """``state`` with its portable entries unwrapped (``copy.copy`` passes them wrapped)."""
        return restored_state(state, self._PORTABLE_KEYS)
