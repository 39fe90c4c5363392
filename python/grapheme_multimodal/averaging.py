"""Weight averaging for :func:`~grapheme_multimodal.training.fit`: an
exponential moving average (EMA) of the weights, taken once per epoch.

``fit(..., ema_decay=d)`` trains the weights as usual (steps, validation,
``metrics`` and early stopping all see them) and, after each epoch ``t`` (counted from
0 over every ``fit`` with averaging), moves the average towards them::

    average = weights                                    (t = 0)
    average = d_t * average + (1 - d_t) * weights,  d_t = min(d, (1 + t) / (10 + t))

The warm-up ``d_t`` is TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``: early averages forget the untrained start quickly, which
matters when cross-validation stops after a handful of epochs on small data
(docs/objectives.md, "Adopted: a weight average"). The average is kept in float64.

When ``fit`` ends, the model's weights are the average (at the best epoch
with early stopping) and the trained weights are kept beside it, so the
next ``fit`` with averaging continues both exactly — also across
``save``/``load`` and pickling. A model saved or pickled while ``fit`` runs
(from a ``metrics`` function) is written as ``fit`` would leave it, stopped
after that epoch: the average in its weights, the trained ones beside. Anything that changes the weights in
between (``load_state_dict``, ``train_step``, ...) makes that next ``fit``
start a new average from the weights as they are.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Dict, Iterator, Mapping, Optional

import numpy as np

from ._equality import equal_fields
from ._portable import portable, restored
from ._readonly import ReadOnlyMapping
from ._validation import FLOAT32_MAX, FloatLike, as_finite_float, as_real_array, check_model, describe, sorted_names
from .exceptions import InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError
from .types import NORMALIZATION_NAMES

if TYPE_CHECKING:
    from .model import LearnableMultiModal

__all__ = ["WeightAverage", "check_decay", "model_weights", "resume"]


class _ModelWeights(Mapping):
    """A model's weights, read in one core call: ``flat`` (float32, a fresh
    copy in layout order) and ``specs`` (the layout), by name as views of it."""

    def __init__(self, model: "LearnableMultiModal") -> None:
        self.specs = model._core.param_specs()
        self.flat = model._core.get_params()
        self._views: Optional[Dict[str, np.ndarray]] = None

    def _by_name(self) -> Dict[str, np.ndarray]:
        if self._views is None:
            self._views = split_flat(self.flat, self.specs)
        return self._views

    def __getitem__(self, name: str) -> np.ndarray:
        return self._by_name()[name]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.specs)

    def __len__(self) -> int:
        return len(self.specs)


def model_weights(model: "LearnableMultiModal") -> Mapping[str, np.ndarray]:
    """``model``'s weights by name (a copy, read in one call) for
    :meth:`WeightAverage.updated`, which averages them as one flat array."""
    check_model(model)  # else "'str' object has no attribute '_core'"
    return _ModelWeights(model)


def split_flat(flat: np.ndarray, specs: Any) -> "OrderedDict[str, np.ndarray]":
    """``flat`` (layout order of ``specs``, a model's ``_core.param_specs()``)
    as ``{name: view of flat}`` in that order, each of its shape: the
    ``state_dict`` form of a flat read (``LearningMixin._unflatten``) and of
    the average's flat mean."""
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    offset = 0
    for name, shape in specs:
        size = math.prod(shape)  # np.prod took most of the time here (optimizer_state runs at every fit)
        out[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return out


def check_decay(decay: Any, name: str = "ema_decay") -> Optional[float]:
    """``decay`` as a float when it is ``None`` or a real number in [0, 1)."""
    if decay is None:
        return None
    # as_finite_float: a long double just below 1 passed as the decay 1.0
    return as_finite_float(decay, name, lambda d: 0 <= d < 1, "None (no averaging) or a number in [0, 1)")


@dataclass(frozen=True, eq=False)  # equal by value: __eq__ below
class WeightAverage:
    """The running average of a model's weights.

    ``mean``: the average (float64) of ``count`` epochs' weights, with
    ``decay``. ``trained``: ``None`` while ``fit`` trains (the model holds
    the trained weights); once the average is applied, the trained weights
    (float32), and the model holds ``mean`` as float32. Never changed in
    place: :meth:`updated` and :meth:`applied` return new objects, so a
    reference is a snapshot.
    """

    decay: float
    count: int
    mean: Mapping[str, np.ndarray]
    trained: Optional[Mapping[str, np.ndarray]] = None

    def __post_init__(self) -> None:
        # A snapshot: nobody edits it in place, arrays or their dicts (model.weight_average hands this
        # object out: a tensor replaced in its dict, by float32 or another shape, was saved into a
        # checkpoint that load refused, and one removed dropped the average from the model unsaid).
        object.__setattr__(self, "mean", _ReadOnlyTensors(self.mean))
        if self.trained is not None:
            object.__setattr__(self, "trained", _ReadOnlyTensors(self.trained))
        # ``mean`` as flat arrays in a model's layout order (see _flat_mean), made once: ``mean`` never
        # changes. fit compared the model's weights with the average a tensor at a time, a float32 copy
        # of each made for the comparison, at every fit's start (most of a small fit's own time).
        object.__setattr__(self, "_flat", None)

    def __repr__(self) -> str:
        # the dataclass's repr printed every tensor of the average and of the trained weights: 49 kB
        # (766 lines) for the default model, shown whole by a notebook for `model.weight_average`
        def tensors(t: Optional[Mapping[str, np.ndarray]]) -> str:
            if t is None:
                return "None"
            return f"<{len(t)} tensors, {sum(int(np.size(v)) for v in t.values()):,} values>"

        return (f"{type(self).__name__}(decay={self.decay!r}, count={self.count!r}, mean={tensors(self.mean)}, "
                f"trained={tensors(self.trained)})")

    def __eq__(self, other: object) -> Any:
        """Equal by value: decay, count and every tensor (the dataclass's
        ``==`` raised numpy's "truth value of an array ... is ambiguous")."""
        return equal_fields(self, other)

    __hash__ = None  # type: ignore[assignment]  # holds arrays; the dataclass's field hash named _ReadOnlyTensors

    def __getstate__(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_flat"}  # a cache: pickles and copies carry no copy of it

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "_flat", None)

    def _replace(self, **changes: Any) -> "WeightAverage":
        """:func:`dataclasses.replace` of the same ``mean``, which keeps its flat form."""
        new = replace(self, **changes)
        object.__setattr__(new, "_flat", self._flat)
        return new

    def _flat_mean(self, specs: Any) -> Optional["tuple[np.ndarray, np.ndarray]"]:
        """``(mean float64, mean as float32)``, each one flat array in the layout
        order of ``specs`` (a model's ``_core.param_specs()``); ``None`` when the
        average holds other tensors (names or shapes) than ``specs``."""
        layout = tuple((name, tuple(shape)) for name, shape in specs)
        if self._flat is not None and self._flat[0] == layout:
            return self._flat[1], self._flat[2]
        if len(layout) != len(self.mean) or any(
            name not in self.mean or self.mean[name].shape != shape for name, shape in layout
        ):
            return None
        flat = np.concatenate([self.mean[name].ravel() for name, _ in layout]) if layout else np.zeros(0)
        return self._cache_flat(layout, flat)

    def _cache_flat(self, layout: Any, flat: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
        flat32 = flat.astype(np.float32)  # what averaged_weights() casts, tensor by tensor
        flat.flags.writeable = flat32.flags.writeable = False
        object.__setattr__(self, "_flat", (layout, flat, flat32))
        return flat, flat32

    @classmethod
    def start(cls, decay: FloatLike) -> "WeightAverage":
        """A new average with ``decay`` (a number in [0, 1)), before its first update (no epochs averaged)."""
        # NaN (or 1) gave an average of NaN (or the first epoch's weights) from the second update on
        if decay is None:  # check_decay's "no averaging" is for fit's ema_decay: an average of no decay failed at
            # its second update, inside min(None, ...): "'<' not supported between instances of 'float' and 'NoneType'"
            raise InvalidTypeError("decay: expected a number in [0, 1), got None (for no averaging, start no "
                                   "WeightAverage: fit(..., ema_decay=None))", "decay")
        return cls(decay=check_decay(decay, "decay"), count=0, mean={})

    def step_decay(self) -> float:
        """The decay of the next update, ``t = count``: 0 for the first (the
        average starts at the weights), then ``min(decay, (1 + t) / (10 + t))``."""
        t = self.count
        return 0.0 if t == 0 else min(self.decay, (1 + t) / (10 + t))

    def updated(self, weights: Mapping[str, np.ndarray]) -> "WeightAverage":
        """The average after one more epoch ending at ``weights``, which may
        be a whole ``model.state_dict()``: its ``normalization.*`` entries
        (buffers, as :meth:`holds` says) are left out of the average."""
        if isinstance(weights, _ModelWeights):
            return self._updated_flat(weights)
        weights = _checked_weights(_weights_only(_weight_mapping(weights)))
        d = self.step_decay()
        if self.count:
            self._check_same_tensors(weights)
        if self.count == 0:
            mean = {k: _frozen(np.array(v, np.float64)) for k, v in weights.items()}
        else:
            mean = {k: _frozen(_moved(self.mean[k], np.array(v, np.float64), d)) for k, v in weights.items()}
        return replace(self, count=self.count + 1, mean=mean, trained=None)

    def _updated_flat(self, weights: _ModelWeights) -> "WeightAverage":
        """:meth:`updated` of a model's weights read in one call
        (:func:`model_weights`), averaged as one flat array: the same numbers,
        where ``updated(model.state_dict())`` took a dozen numpy calls a tensor
        (most of a small fit's epoch)."""
        if self.count == 0:
            flat = weights.flat.astype(np.float64)
        else:
            old = self._flat_mean(weights.specs)
            if old is None:  # another model's tensors: refused, naming them
                self._check_same_tensors(weights)
                raise AssertionError("an average of other tensors passed the check")  # pragma: no cover
            flat = _moved(old[0], weights.flat.astype(np.float64), self.step_decay())
        new = replace(self, count=self.count + 1, mean=split_flat(_frozen(flat), weights.specs), trained=None)
        new._cache_flat(tuple((name, tuple(shape)) for name, shape in weights.specs), flat)
        return new

    def _check_same_tensors(self, weights: Mapping[str, np.ndarray]) -> None:
        """Refuses ``weights`` of another model config than the average's:
        another shape was broadcast into the average without a word, another
        name was a bare KeyError."""
        if set(weights) != set(self.mean):
            extra, missing = sorted_names(set(weights) - set(self.mean)), sorted(set(self.mean) - set(weights))
            raise InvalidValueError(
                f"weights: holds tensors {extra} not in the average and lacks {missing}; expected the tensors of the "
                "model averaged so far (one model config)", "weights")
        for k, v in weights.items():
            if np.shape(v) != self.mean[k].shape:
                raise ShapeError(f"weights[{k!r}]: has shape {np.shape(v)}; expected {self.mean[k].shape}, as in the "
                                 "average (one model config)", f"weights[{k!r}]")

    def applied(self, model: "LearnableMultiModal") -> Optional["WeightAverage"]:
        """Puts the average into ``model`` (whose weights are the trained
        ones) and returns the applied state; ``None`` and ``model``
        unchanged when nothing has been averaged. Call under the write lock."""
        if self.count == 0:
            return None
        flat = self._flat_mean(model._core.param_specs())
        if flat is None:  # another model's tensors: the checked load's error, naming them
            model._load_state_dict(self.averaged_weights())
            raise AssertionError("an average of other tensors was loaded")  # pragma: no cover
        applied = self._replace(trained={k: _frozen(v) for k, v in _weights_only(model._parameters()).items()})  # fresh copies
        # The average's own tensors (of this model's names and shapes, made finite by updated or
        # checked by from_checkpoint), not a user's: not checked again in Python (the core's write
        # still checks every shape and value before it writes any).
        model._restore_weights(flat[1])
        return applied

    def applied_to(self, trained: Mapping[str, np.ndarray]) -> "WeightAverage":
        """The state :meth:`applied` returns for a model holding ``trained``,
        without a model: what a checkpoint of a running ``fit`` records."""
        return self._replace(trained=_weights_only(trained))

    def averaged_weights(self) -> Dict[str, np.ndarray]:
        """The average as the model's float32 weights."""
        return {k: v.astype(np.float32) for k, v in self.mean.items()}

    def holds(self, weights: Mapping[str, np.ndarray]) -> bool:
        """Whether ``weights`` are this applied average (nothing changed them
        since); compared a tensor at a time, so weights that left it (a step
        changes nearly every tensor) are told at the first that differs.
        ``weights`` may be a whole ``model.state_dict()``: its
        ``normalization.*`` entries are the inputs' standardisation (buffers,
        which no average holds), not weights, and are not compared."""
        # state_dict() holds the standardisation too since it carries it: a model holding this average
        # was said not to, as its state dict's keys were not the average's
        names = set(_weight_mapping(weights)) - NORMALIZATION_NAMES  # a list was "unhashable type: 'numpy.ndarray'"
        if self.trained is None or names != set(self.mean):
            return False
        return all(np.array_equal(np.asarray(weights[k]), v.astype(np.float32)) for k, v in self.mean.items())

    def held_by(self, model: "LearnableMultiModal") -> bool:
        """:meth:`holds` of the model's weights: read in one call and compared
        with the average's float32 form (made once) as one flat array."""
        if self.trained is None:
            return False
        flat = self._flat_mean(model._core.param_specs())
        return flat is not None and np.array_equal(model._core.get_params(), flat[1])

    # ------------------------------------------------------------ checkpoints
    def metadata(self) -> Dict[str, Any]:
        """``decay`` and ``count``: what a checkpoint's metadata records of
        the average (its tensors are saved beside the weights)."""
        return {"decay": self.decay, "count": self.count}

    @classmethod
    def from_checkpoint(
        cls, meta: Any, mean: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray]
    ) -> "WeightAverage":
        """The applied average a checkpoint holds, checked against the
        checkpoint's ``weights`` (``ValueError`` when anything is off)."""
        if not isinstance(meta, Mapping) or set(meta) != {"decay", "count"}:
            raise InvalidValueError(f"weight_average: expected {{'decay': float, 'count': int}}, got {meta!r:.80}", "weight_average")
        decay, count = meta["decay"], meta["count"]
        check_decay(decay, "weight_average['decay']")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidValueError(f"weight_average['count']: expected an int >= 1, got {count!r}", "weight_average")
        for name, tensors in (("mean", mean), ("trained", trained)):
            for key, value in tensors.items():
                _check_saved_tensor(value, f"weight_average {name} {key!r}", float32_weights=name == "mean")
        copy = lambda tensors: {k: _frozen(np.array(v)) for k, v in tensors.items()}  # noqa: E731 - owned, locked
        average = cls(decay=float(decay), count=count, mean=copy(mean), trained=copy(trained))
        if not average.holds(weights):
            raise InvalidValueError("weight_average: the weights are not the stored average", "weight_average")
        return average


class _ReadOnlyTensors(ReadOnlyMapping[str, np.ndarray]):
    """``{name: array}`` that cannot be changed: the mapping read-only, and
    each array. An array the average does not own is copied first: it may
    be the caller's (``WeightAverage(mean=...)``,
    :meth:`WeightAverage.applied_to`), whose writes would have changed the
    snapshot, read-only or not (a read-only view of a writable array shows
    the writes to its base; a read-only array of its own can be made
    writable again). The average's own fresh arrays are frozen
    (:func:`_frozen`) before they come here, so none is copied twice."""

    def __init__(self, tensors: Mapping[str, np.ndarray]) -> None:
        super().__init__({k: v if _owned(v) else _frozen(np.array(v)) for k, v in tensors.items()})

    def __reduce__(self) -> Any:
        # arrays as bytes, dtype and shape: a pickle of numpy 2 loads under numpy 1, and back (_portable.py)
        return (_read_only_tensors, (portable(dict(self._items)),))

    def __deepcopy__(self, memo: Dict[int, Any]) -> "_ReadOnlyTensors":
        # not through _read_only_tensors: a deep copy's arrays may be shared (memo) with the rest of
        # what is copied, so they are copied once more, as any caller's
        return _ReadOnlyTensors({k: copy.deepcopy(v, memo) for k, v in self._items.items()})


def _read_only_tensors(tensors: Dict[str, Any]) -> _ReadOnlyTensors:
    """A pickled :class:`_ReadOnlyTensors` (its arrays wrapped still when ``copy.copy`` passes them).
    An array the unpickling made of its own memory (``_portable._array``'s copy
    of read-only bytes) is frozen as it is: copied again, a large average was
    held once more until the load ended. One over a buffer (protocol 5's,
    perhaps a caller's, out of band) is copied as before."""
    arrays = restored(tensors)
    return _ReadOnlyTensors({k: _frozen(v) if _fresh(v) else v for k, v in arrays.items()})


def _fresh(value: Any) -> bool:
    """Whether ``value`` is an unpickled array that owns its memory (no one else holds it)."""
    return type(value) is np.ndarray and value.flags.owndata and value.flags.writeable  # (an average's own is read-only)


#: The arrays averages made and froze (:func:`_frozen`), by id: an entry goes with its array.
_OWNED: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


def _owned(value: Any) -> bool:
    """Whether ``value`` is an array an average froze, or a read-only view of
    one (``split_flat``'s of a frozen flat array), which no caller can write."""
    while isinstance(value, np.ndarray) and not value.flags.writeable:
        if _OWNED.get(id(value)) is value:
            return True
        value = value.base
    return False


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` (one only the average holds) made read-only, in place, and
    known as the average's own (:func:`_owned`)."""
    array.flags.writeable = False
    _OWNED[id(array)] = array
    return array


def _check_saved_tensor(value: np.ndarray, what: str, float32_weights: bool, arg: str = "weight_average") -> None:
    """Refuses a saved average tensor holding NaN or inf, or (``float32_weights``:
    the float64 mean, which becomes the model's float32 weights) a value
    beyond float32's range, naming the value and where it is: it was
    "contains NaN or inf", or numpy's "overflow encountered in cast" and
    "the weights are not the stored average"."""
    bad = ~np.isfinite(value)
    if bad.any():
        at = np.unravel_index(int(np.argmax(bad)), value.shape)
        raise InvalidValueError(
            f"{what}: contains NaN or inf ({value[at]} at {_position(at)}); expected finite numbers", arg)
    if float32_weights:
        with np.errstate(over="ignore"):  # what the cast to the weights makes inf (a float64 rounding past the largest does not)
            beyond = np.isinf(value.astype(np.float32))
        if beyond.any():
            at = np.unravel_index(int(np.argmax(beyond)), value.shape)
            raise InvalidValueError(
                f"{what}: holds {value[at]:.4g} at {_position(at)}, beyond float32's largest magnitude "
                f"{FLOAT32_MAX:.4g} (the model's weights, which hold the average, are float32)", arg,
            )


def _weight_mapping(weights: Any) -> Mapping[str, Any]:
    """``weights`` when a mapping, else a TypeError naming it (it was
    "'list' object has no attribute 'items'")."""
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights: expected a mapping tensor name -> array (as model.state_dict()), got {describe(weights)}")
    return weights


def _checked_weights(weights: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """A caller's ``weights`` as float64 arrays, each refused by name unless
    it holds real numbers within float32's range (the model's weights, which
    hold the average): NaN or inf made the average NaN or inf for every
    later update, without a word (and the model refused it only once it was
    applied, after fit); a string was numpy's "could not convert string to
    float", complex numbers lost their imaginary part, masked entries were
    averaged as the values under the mask."""
    out = {}
    for key, value in weights.items():
        name = f"weights[{key!r}]"
        arr = np.array(as_real_array(value, name, "fill them first, e.g. x.filled(0)"), dtype=np.float64)
        bad = ~np.isfinite(arr)
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), arr.shape)
            raise NonFiniteError(f"{name}: holds {arr[at]} at {_position(at)}; expected finite weights (the average of "
                                 "NaN or inf is NaN or inf from then on)", name)
        _check_saved_tensor(arr, name, float32_weights=True, arg=name)
        out[key] = arr
    return out


def _weights_only(weights: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """``weights`` less a state dict's ``normalization.*`` buffers: averaged as weights, an average of
    ``model.state_dict()`` held them, which no model's weights do (:meth:`WeightAverage.holds` of the
    same state dict was False, and :meth:`WeightAverage.applied` refused them as unexpected keys)."""
    return {k: v for k, v in weights.items() if k not in NORMALIZATION_NAMES}


def _moved(mean: np.ndarray, weights: np.ndarray, d: float) -> np.ndarray:
    """``d * mean + (1 - d) * weights`` (float64; ``weights`` a fresh copy, used
    up), the same operations in place: no temporaries."""
    out = np.multiply(mean, d)
    weights *= 1 - d
    out += weights
    return out


def _position(at: tuple) -> str:
    """An index into a tensor as the user would write it: ``(0, 3)``, ``(5,)``."""
    return str(tuple(int(i) for i in at))


def resume(model: "LearnableMultiModal", decay: Optional[FloatLike]) -> Optional[WeightAverage]:
    """At the start of ``fit``: the running average to continue (``None``
    without averaging), the model holding the weights training goes on from.

    With averaging, an applied average the model still holds is continued:
    the trained weights go back into the model. Otherwise a new average
    starts from the weights as they are. Either way the model's applied
    average is dropped (``fit`` applies the new one when it ends).
    Without averaging it is kept: it counts only while the weights are
    still that average (:meth:`WeightAverage.holds`), so a ``fit`` that
    trains leaves it inert, and one of no epochs leaves the model as it
    was. Call under the write lock."""
    check_model(model)  # else "'str' object has no attribute '_weight_average'"
    decay = check_decay(decay, "decay")  # before the applied average is dropped: a refusal changes nothing
    if decay is None:  # dropped here, fit(epochs=0) lost the average its checkpoints and next averaged fit need
        return None
    previous = model._weight_average
    model._weight_average = None
    if previous is not None and previous.held_by(model):  # held: applied, and unchanged since
        # trained: the model's own weights (state_dict() in applied) or a checkpoint's, checked by
        # from_checkpoint and its load against this model's shapes: not checked again in Python
        model._restore_weights(previous.trained)
        return previous._replace(decay=decay, trained=None)
    return WeightAverage.start(decay)

