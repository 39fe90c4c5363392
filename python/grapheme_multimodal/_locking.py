"""Sharing one model between threads.

A model's methods read its state (``encode``, ``state_dict``, ``save``...),
write it (``train_step``, ``load_state_dict``, ``set_normalization``...), or
run a multi-step update (``fit``). :class:`ModelLock` serialises them:

- readers share: any number of threads read at once (the Rust core computes
  with the GIL released, so they run in parallel);
- a writer waits until the readers in progress finish and keeps new readers
  out until it is done (writers go first, so a stream of readers cannot starve
  training);
- an update (``fit``) excludes other writers and updates for its whole
  duration but lets readers in between its steps, so a monitoring thread can
  call ``encode`` during ``fit`` and sees the model as it is after some step.

All modes are re-entrant within a thread (a writer may read; an update may
write). A thread that holds only a read lock may not start to write (that
would deadlock against another reader doing the same): it gets a
``RuntimeError`` instead. So does a ``metrics`` function that ``fit``
calls and that trains or changes that same model (``train_step``,
``backward``, ``step``, ``fit``, ``load_state_dict``, ``__setstate__``...
— every ``@writes`` method): the thread is ``fit``'s own, so the lock
lets it in, and it would change the model in the middle of ``fit``
(:func:`refuse_in_metric`); ``fit`` looks after each metric for an
assignment to ``epochs_trained`` or ``history`` too, which no lock sees.
Refused there too: the models of the fits around it (a metric that fits
another model, whose metric trains the first), and the model whose copies
``fit_with_stopping``'s cross-validation folds train, from a fold's
metric. Other code that runs in ``fit``'s thread during ``fit`` (a
signal handler, a ``__del__`` or weakref callback, a tracing hook) is let
in by the lock as ``fit``'s own: a ``fit`` of the same model from there is
refused (:func:`refuse_in_fit`), its other writes are not (fit's own calls
of the same methods could not be told apart from them without a mark on
each), and land between two of fit's steps (see ``training.fit``).
Another thread's writes still wait for ``fit``
as before — so a metric that starts a thread which writes to the model,
and waits for it (``join``), waits for ever: that thread waits for ``fit``,
and ``fit`` for the metric. Reads from such a thread are fine. Two fits in
two threads whose metrics train each other's model (or, through more fits'
metrics, a model the first holds) would wait for each other for ever too:
the second to wait is refused (:class:`waiting_from_metric`), its fit fails
and puts its model back, and the first goes on.

A process forked while other threads hold a model's lock has only the
forking thread: the others' holds are dropped in the child, so it does not
wait for threads that will never release them. An update (``fit``) between
its steps leaves the model whole; a read leaves it whole too, but the
model's own lock in Rust may still count the reader, so the child may read
the model and changing it raises a ``RuntimeError``; a model another
thread was writing may be half-written, and using it at all raises a
``RuntimeError`` that says so (as does an :class:`ExperienceBuffer`
another thread was changing).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import weakref
from threading import get_ident
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

from . import _core

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")

_MAIN_THREAD = threading.main_thread().ident
_holding_back = False  # whether the main thread is in an `uninterrupted` block (they nest)
#: The program's handlers that block's stand-ins replace, from before the swap to the end of their put-back:
#: what _after_fork_in_child puts back in a child forked from another thread meanwhile.
_held: Dict[int, Any] = {}


#: Every signal a program may handle (SIGKILL and SIGSTOP cannot be), as plain ints: scanned on each
#: `uninterrupted` block (a few µs), since a handler may be set at any time.
_CATCHABLE = tuple(int(s) for s in sorted(signal.valid_signals()) if s not in (signal.SIGKILL, signal.SIGSTOP))

try:
    # signal.getsignal's and signal.signal's own C functions: the same handler objects, without the wrappers'
    # conversion of each signal and answer to an enum, which made the scan of every signal about 25 µs of
    # each block (a tenth of a load_state_dict)
    from _signal import getsignal as _getsignal, signal as _setsignal
except ImportError:  # an interpreter without CPython's _signal module
    _getsignal, _setsignal = signal.getsignal, signal.signal


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """``with uninterrupted():`` holds Ctrl-C back until the block ends,
    then raises it: for a change of the model made of several calls
    (loading each weight tensor, restoring weights then Adam state), which
    an interrupt between two calls would leave half made. The program's
    own Python signal handlers (a SIGTERM handler that saves the model,
    say) are held back too, and run, in the order their signals came, when
    the block ends: run in the middle, in this same thread, they would see
    (and save) the model half changed. Only in the main thread (the one
    Python runs signal handlers in; in a child forked from another thread,
    that thread: the child gets the program's handlers back though the
    parent's main thread was in a block at the fork); re-entrant. It swaps the handlers
    (some tens of microseconds): not for per-event calls. Enter it after
    any wait for a lock, which must stay interruptible."""
    global _holding_back, _held
    if _holding_back or get_ident() != _MAIN_THREAD:
        yield
        return
    came: List[Tuple[int, Any]] = []  # the signals of the program's own handlers, with their frames
    # Python's own SIGINT handler raises KeyboardInterrupt when the block ends; a Python handler of any
    # signal (the program's own SIGINT handler too) is called then; the C-level ones (ignored: a background
    # job's SIGINT; the default: SIGTERM ends the process) are left as they are
    held = {signum: handler for signum, handler in zip(_CATCHABLE, map(_getsignal, _CATCHABLE)) if callable(handler)}
    try:
        _held, _holding_back = held, True
        # in the try: a handler not yet swapped that raises as its signal comes (a SIGTERM handler's sys.exit)
        # left those swapped before it in place for good, and their signals (Ctrl-C) were swallowed from then on
        for signum in held:
            _setsignal(signum, lambda signum, frame: came.append((signum, frame)))
        yield
    finally:
        _holding_back = False
        raised = _put_back(held)
        _held = {}
        ctrl_c = False
        for signum, frame in came:
            if held[signum] is signal.default_int_handler:
                ctrl_c = True  # raised after the program's own handlers have run
            else:
                held[signum](signum, frame)
        if raised is not None:
            raise raised
        if ctrl_c:
            raise KeyboardInterrupt


def _put_back(held: Dict[int, Any]) -> Optional[BaseException]:
    """Sets each of ``held``'s handlers back, every one of them: a handler
    already put back may run meanwhile (its signal comes; ``signal.signal``
    runs pending handlers before it sets one) and raise (Ctrl-C's
    KeyboardInterrupt), which stopped the loop and left the later signals'
    stand-ins in place for good (the program's SIGTERM handler never ran
    again). Such an exception is returned, for the caller to raise once all
    are back; setting a handler twice is harmless."""
    raised = None
    for signum, handler in held.items():
        while True:
            try:
                _setsignal(signum, handler)
                break
            except BaseException as exc:  # a handler put back ran and raised: set this one again
                if raised is None:
                    raised = exc
    return raised


class ModelLock:
    """Readers share, a writer excludes everyone, an update excludes writers.

    ``reading()``, ``writing()`` and ``updating()`` return context managers
    (reusable objects: the per-event methods take the lock on every call, so
    it has to cost little). Their bookkeeping is in Rust (``_core.Gate``):
    Python may raise a pending Ctrl-C on entering any Python function, so a
    lock written in Python could be left held, or its counts wrong, by an
    interrupt at the wrong moment, and every other thread would then wait
    forever. A guard's ``__enter__`` and ``__exit__`` are single calls into
    Rust: leaving always completes, and a wait interrupted by Ctrl-C undoes
    its place in the queue before raising."""

    def __init__(self) -> None:
        self._gate = _core.Gate()
        self._reading, self._writing, self._updating = _core.GateGuard.sides(self._gate)
        _LIVE_LOCKS.add(self)

    def reading(self) -> "_core.GateGuard":
        """Shared access: waits while a writer holds or waits for the lock."""
        return self._reading

    def writing(self) -> "_core.GateGuard":
        """Exclusive access: waits for the readers and writers in progress."""
        return self._writing

    def updating(self) -> "_core.GateGuard":
        """Excludes other updates and writers (not readers)."""
        return self._updating

    @property
    def _writers_waiting(self) -> int:
        return self._gate.writers_waiting


class _InMetric(threading.local):
    """The models whose ``fit`` is calling one of their ``metrics`` in this
    thread, each with that metric's name, outermost first (empty: none)."""

    calls: Tuple[Tuple[Any, str], ...] = ()


_IN_METRIC = _InMetric()


def call_metric(model: Any, name: str, metric: Callable[[Any], _T], argument: Any) -> _T:
    """``metric(argument)``, ``fit``'s call of ``metrics[name]``, with
    training or changing ``model`` from this thread refused while it runs.
    A metric may fit another model, whose metrics are then called, and
    refused the models of the fits around them too: each of those is in
    the middle of its own ``fit``. (A model trained by copies of it,
    ``fit_with_stopping``'s cross-validation folds, is marked around each
    call of a fold's metric too.)

    A function, not a context manager: Python may raise a pending Ctrl-C
    as it enters any Python function, and contextlib's ``__enter__`` and
    ``__exit__`` are two more, after the mark was set and before it was
    taken off. A Ctrl-C landing there left the model marked, and fit's own
    undo of the interrupted epoch was refused as a change from a metric.
    Here the mark is set inside the ``try`` whose ``finally`` takes it off."""
    outer = _IN_METRIC.calls
    try:
        _IN_METRIC.calls = outer + ((model, name),)
        return metric(argument)
    finally:
        _IN_METRIC.calls = outer


def refuse_in_metric(model: Any, what: str) -> None:
    """``RuntimeError`` when ``model``'s ``fit`` is calling one of its
    ``metrics`` in this thread: ``what`` (a method that trains or changes
    the model) would change it in the middle of ``fit``."""
    # Not None: outside every metric the record holds None, and a None "model" is
    # a caller's mistake for its own check to name, not a metric running.
    if model is not None and _IN_METRIC.calls:
        _refuse_if_calling(model, what)


def _refuse_if_calling(model: Any, what: str) -> None:
    for calling, name in reversed(_IN_METRIC.calls):  # by identity: a model's __eq__ is not asked
        if calling is model:
            raise RuntimeError(_in_metric_message(what, name))


class _Fitting(threading.local):
    """The models whose ``fit`` (or ``fit_with_stopping``'s folds) is
    training them in this thread, outermost first (empty: none)."""

    models: Tuple[Any, ...] = ()


_FITTING = _Fitting()


def call_fitting(model: Any, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``function(*args, **kwargs)``, ``fit``'s training of ``model`` (its
    update lock held), with a ``fit`` of ``model`` from this thread refused
    while it runs (:func:`refuse_in_fit`). A function for the reason
    :func:`call_metric` is: a Ctrl-C as a context manager's ``__enter__``
    returned or its ``__exit__`` began left the model marked, and a fit in
    the handler of that interrupt was refused as a fit from the middle of
    a fit."""
    outer, key, me = _FITTING.models, id(model), get_ident()
    owner = _FIT_THREADS.get(key)
    try:
        _FITTING.models = outer + (model,)
        _FIT_THREADS[key] = me
        return function(*args, **kwargs)
    finally:
        _FITTING.models = outer
        if owner is None:
            _FIT_THREADS.pop(key, None)
        else:
            _FIT_THREADS[key] = owner


#: ``id(model) -> ident`` of the thread whose ``fit`` is training ``model``
#: (:func:`call_fitting`), and ``ident -> model`` the model a ``metrics``
#: function running in that thread waits to write to or fit
#: (:class:`waiting_from_metric`): the graph in which two fits whose metrics
#: wait for each other's model are found. Changed under :data:`_WAITS_LOCK`
#: (the waits; the fits by one assignment each).
_FIT_THREADS: Dict[int, int] = {}
_METRIC_WAITS: Dict[int, Any] = {}
_WAITS_LOCK = threading.Lock()


class waiting_from_metric:
    """``with waiting_from_metric(model, what), <model's write or update lock>:``
    notes, when a ``metrics`` function of a ``fit`` runs in this thread,
    that it waits for ``model`` (``what``, a write or a fit of it), and
    raises ``RuntimeError`` instead when that would wait for ever: ``model``
    is being trained by another thread's ``fit``, whose metric waits (so
    on, around) for a model this thread's ``fit`` holds. Each fit's lock
    keeps the other's writers out for its whole run, so neither would ever
    return: the second to wait is refused (its metric raises, its fit fails
    and puts its model back), and the first goes on. Nothing outside a
    metric (one check of a thread-local)."""

    __slots__ = ("model", "what", "noted", "outer")

    def __init__(self, model: Any, what: str) -> None:
        self.model, self.what, self.noted, self.outer = model, what, False, None

    def __enter__(self) -> None:
        if not _IN_METRIC.calls:
            return
        me = get_ident()
        with _WAITS_LOCK:  # the look and the note in one step: of two threads at once, the second sees the first
            if _waits_around_to(self.model, me):
                raise RuntimeError(
                    f"{self.what}: this model is being trained by another thread's fit, whose metrics function waits "
                    "(itself, or through other fits' metrics) for a model this thread's fit holds, and this call "
                    "comes from a metrics function of that fit: the two fits would wait for each other for ever. "
                    "Train a copy (copy.deepcopy(model)) in a metric, or train the model after its fit returns"
                )
            # this wait in place of an outer one of this thread's (a metric fitting a model whose metric
            # writes another), which it is past: that model is this thread's now
            self.outer, self.noted = _METRIC_WAITS.get(me), True
            _METRIC_WAITS[me] = self.model

    def __exit__(self, *exc: object) -> None:
        if self.noted:
            with _WAITS_LOCK:
                if self.outer is None:
                    _METRIC_WAITS.pop(get_ident(), None)
                else:
                    _METRIC_WAITS[get_ident()] = self.outer


def _waits_around_to(model: Any, me: int) -> bool:
    """Whether the fits and metric waits from ``model``'s fit lead back to
    thread ``me`` (under :data:`_WAITS_LOCK`). A fit of ``model`` in ``me``
    itself is no wait: its lock lets its own thread in."""
    owner, seen = _FIT_THREADS.get(id(model)), {me}
    while owner is not None and owner not in seen:
        seen.add(owner)
        waited = _METRIC_WAITS.get(owner)
        owner = None if waited is None else _FIT_THREADS.get(id(waited))
        if owner == me:
            return True
    return False


def refuse_in_fit(model: Any, what: str) -> None:
    """:func:`refuse_in_metric`, and a ``RuntimeError`` too when ``model``'s
    ``fit`` is training it in this thread: ``what`` (a fit) was called from
    code that thread runs in the middle of that fit outside its metrics (a
    signal handler, a ``__del__`` or weakref callback, a tracing hook),
    which the lock lets in as the fit's own. Run there, it trained the
    model between two of the outer fit's steps, and the outer fit went on
    under its own epoch's shuffle, recording its epochs after the inner
    one's (or undid it, failing)."""
    refuse_in_metric(model, what)
    if model is not None and _FITTING.models and any(m is model for m in _FITTING.models):
        raise RuntimeError(
            f"{what}: this model's fit is running in this thread, which called this {what} from code of its own (a "
            "signal handler, a __del__ or weakref callback, a tracing hook) in the middle of that fit, which the "
            "model's lock lets in; it would train the model between two of that fit's steps. Fit it after that fit "
            "returns, or fit a copy (copy.deepcopy(model))"
        )


def _in_metric_message(what: str, name: str) -> str:
    return (
        f"{what}: this model is being trained by fit, which is calling metrics[{name!r}] in this thread; "
        "training or changing it there would change the model in the middle of fit. Metrics are for evaluation "
        "(encode, losses, state_dict, save are fine): train a copy (copy.deepcopy(model)) in the metric, "
        "or train the model after fit returns"
    )


def reads(method: F) -> F:
    """Runs ``method`` holding the model's lock for reading."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock.reading():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def writes(method: F) -> F:
    """Runs ``method`` holding the model's lock for writing; cached results
    computed before it are stale from its start (even when it fails halfway
    or is interrupted). Refused (``RuntimeError``, the model unchanged) from
    a ``metrics`` function the same model's ``fit`` is calling in this
    thread (:func:`refuse_in_metric`)."""
    return _writes(method, weights=True)


def writes_leaving_weights(method: F) -> F:
    """:func:`writes`, for a method that never changes the weights (only the
    gradients, Adam's state, the standardisation or the training record):
    the model's applied weight average is not compared with them after it,
    a read of every tensor and a comparison (about 0.15 ms on the recipe's model) that
    such a call would pay each time while the model holds the average."""
    return _writes(method, weights=False)


def _writes(method: F, weights: bool) -> F:
    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        waiting = None
        try:
            if _IN_METRIC.calls:  # a metric running in this thread, whose fit the lock would let in (one check, no more)
                _refuse_if_calling(self, method.__name__)
                # refused where another thread's fit waits, in its metric, for this thread's: else both waited for ever
                waiting = waiting_from_metric(self, method.__name__)
                waiting.__enter__()
            with self._lock.writing():
                # Stale before anything changes, not only after: a Ctrl-C at the entry of
                # _parameters_changed (any Python call may raise it there) would otherwise
                # leave results cached before the change looking current.
                self._version += 1
                try:
                    return method(self, *args, **kwargs)
                finally:
                    self._parameters_changed(weights)
        finally:
            if waiting is not None:
                waiting.__exit__()

    return locked  # type: ignore[return-value]


#: The model locks of this process, for :func:`_after_fork_in_child`.
_LIVE_LOCKS: "weakref.WeakSet[ModelLock]" = weakref.WeakSet()

#: What using an object another thread was changing at a fork says.
FORKED_MID_CHANGE = (
    "this process was forked while another thread was changing the {what}, so its state here may be "
    "half-written; load it again (from a checkpoint) in this process, or fork before training starts "
    "(multiprocessing: the 'spawn' or 'forkserver' start method)"
)


class ForkedMidChange:
    """Stands in for the lock of an object another thread was changing when
    the process forked: entering raises ``RuntimeError`` (the object may be
    half-written), instead of waiting forever for a thread the child does
    not have."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        raise RuntimeError(FORKED_MID_CHANGE.format(what=self.what))

    def __exit__(self, *exc: object) -> None:
        return None


def _after_fork_in_child() -> None:
    for lock in list(_LIVE_LOCKS):
        lock._gate.after_fork_in_child()
    global _MAIN_THREAD, _holding_back, _held, _WAITS_LOCK
    # the wait-for graph of this thread alone (the others are not in the child), and a lock no other thread holds
    me = get_ident()
    _WAITS_LOCK = threading.Lock()
    for model in [m for m, thread in _FIT_THREADS.items() if thread != me]:
        del _FIT_THREADS[model]
    for thread in [t for t in _METRIC_WAITS if t != me]:
        del _METRIC_WAITS[thread]
    if get_ident() != _MAIN_THREAD:
        # Forked from another thread: it is the child's main thread (the one Python runs signal handlers
        # in), where `uninterrupted` held nothing back. And the parent's main thread, in an `uninterrupted`
        # block at the fork, is not in the child to end it: its stand-ins stayed the child's handlers for
        # good (a Ctrl-C swallowed, the program's SIGTERM handler never run). The program's are put back.
        _MAIN_THREAD = get_ident()
        _holding_back = False
        if _held:  # the block's swap, or its put-back, under way at the fork
            _put_back(_held)  # a handler it puts back that raises: nothing in the child to raise it to
            _held = {}


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
