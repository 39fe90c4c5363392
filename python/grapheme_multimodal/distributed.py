"""Scale-out on Ray: embed data sets with an actor pool and train
data-parallel, with the results of one process.

- :func:`embed_dataset` adds fused embeddings (and optionally modality
  embeddings and binding strengths) to a ``ray.data.Dataset``: a pool of
  actors, each loading the checkpoint once and calling
  :meth:`~grapheme_multimodal.LearnableMultiModal.encode_and_fuse` on numpy
  batches.
- :func:`fit` trains a model with ``num_workers`` Ray actors, each holding a
  replica: every step the global batch is split into one share per worker,
  each computes its share's gradients, the driver averages them (weighted by
  rows) and every replica — the driver's model included — applies the same
  average. It runs :func:`grapheme_multimodal.training.fit`'s own loop, so
  batches, dropout, standardisation, validation, early stopping, history
  and progress bar are those of ``model.fit``.

What a global batch means with N workers, and how it scales: ``docs/distributed.md``.
Needs Ray: ``pip install "grapheme-multimodal[ray]"``. Ray is imported here only.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

try:
    import ray
    import ray.data
    from ray.exceptions import RayActorError, RayTaskError
    from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without Ray
    raise ModuleNotFoundError(
        'grapheme_multimodal.distributed needs Ray: pip install "grapheme-multimodal[ray]"', name=exc.name
    ) from None

from ._core import NUM_MODALITIES
from ._locking import refuse_in_fit, uninterrupted, writes
from ._ray_address import CONNECT_TIMEOUT_S, RAY_ACCELERATOR_TIP, _check_ray_address
from ._validation import (
    FLOAT32_MAX, IntLike, as_real_array, is_int, call_in_precision_scope, refuse_beyond_budget, renamed,
)
from ._caller_warnings import holding_warnings, ignoring_warning, warn_at_caller
from .graph import featurized
from .exceptions import CheckpointError, GraphemeError, InvalidValueError, NonFiniteError, ShapeError, UntrainedModalityWarning
from .model import LearnableMultiModal
from .objectives import OBJECTIVES, resolve_weights
from .training import _ROW_FAULT, MAX_STEPS, History, Steps, _check_int, _Dataset, _batch_layout
from .training import fit as _fit
from .types import Modality

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["embed_dataset", "fit", "ReplicaDriftError", "OUTPUTS", "MAX_RESTARTS_PER_STEP", "CONNECT_TIMEOUT_S"]

#: What :func:`embed_dataset` can add, each as a column of that name:
#: ``fused [E]``, ``embeddings [7, E]``, ``bindings [7, 7]`` and
#: ``hidden_features [7, H]`` per row.
OUTPUTS = ("fused", "embeddings", "bindings", "hidden_features")

#: How often one step may lose a worker before :func:`fit` gives up, and
#: how often in a row an :func:`embed_dataset` actor that dies is restarted
#: (without completing a task between) before its run fails.
MAX_RESTARTS_PER_STEP = 3

#: ``{modality or its name: column}``; a Mapping per key type, as Mapping is invariant
#: in its key (a Dict[str, str] is no Mapping[Union[Modality, str], str]).
Columns = Union[Mapping[str, str], Mapping[Modality, str], Mapping[Union[Modality, str], str]]


class ReplicaDriftError(RuntimeError):
    """The model replicas of a distributed :func:`fit` no longer hold the
    same weights and optimizer state (checked after every epoch)."""


# ------------------------------------------------------------------ embedding
def embed_dataset(
    ds: "ray.data.Dataset",
    checkpoint: Any,
    columns: Columns,
    *,
    batch_size: IntLike = 1024,
    num_actors: Optional[int] = None,
    outputs: Union[str, Sequence[str]] = ("fused",),
    cpus_per_actor: int = 1,
) -> "ray.data.Dataset":
    """``ds`` with the model's outputs added as columns (lazily, as Ray Data is).

    Args:
        ds: a ``ray.data.Dataset``.
        checkpoint: a path to a model saved with :meth:`LearnableMultiModal.save`
            (each actor loads it once; on a multi-node cluster it must be on
            a path every node can read; a model saved over it before the
            dataset runs is refused, a :class:`CheckpointError`), or a model
            (shipped to each actor as it is at this call: its weights,
            standardisation and config, not its experience or history).
        columns: modality → column, e.g. ``{"visual": "image_features"}``. A
            column holds vectors of the modality's input length, or text
            where the modality featurises graphs (its
            ``config.graph_featurizer``); a null value means the row lacks
            that modality. A row null in every column has nothing to embed
            and is refused where the dataset runs (an
            :class:`InvalidValueError` naming ``ds``).
        batch_size: rows per ``encode_and_fuse`` call.
        num_actors: size of the actor pool; ``None`` lets Ray Data scale it
            between 1 and the cluster's CPUs (divided by ``cpus_per_actor``).
            The actors it starts with must leave a CPU for the steps of
            ``ds`` that run as tasks of their own (a read, a ``map_batches``
            Ray Data does not fuse into the actors), or those steps could
            never run: refused, an :class:`InvalidValueError` naming
            ``num_actors`` or ``cpus_per_actor`` (``ds.materialize()`` first
            runs them before any actor starts). Called from a metric of a
            distributed :func:`fit`, the CPUs its workers hold until it
            returns are not the pool's to take: refused likewise.
        outputs: which of :data:`OUTPUTS` to add: ``"fused"`` (``[E]``
            float32 per row), ``"embeddings"`` (``[7, E]``, zeros where
            absent), ``"bindings"`` (``[7, 7]`` pair strengths, as
            :meth:`~LearnableMultiModal.pair_strengths`) and
            ``"hidden_features"`` (``[7, H]``, the encoders' last hidden
            layer, as :meth:`~LearnableMultiModal.hidden_features`; needs a
            model with ``encoder_hidden``), each at most once.
        cpus_per_actor: CPUs each actor reserves; it computes with that many
            threads (``gm.set_num_threads``).

    Returns:
        A dataset with every column of ``ds`` and the ``outputs`` columns.
        The values are those of ``model.encode_and_fuse`` on the same rows
        (it is the same call). Row order follows Ray Data's rules (set
        ``DataContext.get_current().execution_options.preserve_order = True``
        to keep the input order).

    Raises:
        ShapeError, InvalidValueError, TypeError: at once, for a column whose
            type the model cannot take (numbers where it takes vectors,
            vectors of another length, of vectors or of decimals, text for a
            numeric modality, bytes, records, a dictionary-encoded column of
            any of those, Arrow's view layouts such as ``list_view``), and for
            two columns of one name, and for blocks holding a column in types
            Ray Data cannot unify, when ``ds`` knows its schema without
            running (the types, else where it runs); for blocks Ray Data
            could not batch together (a tensor column in one, all null in
            another; a block lacking a column the model reads), naming
            ``ds`` and the column, where ``ds`` holds blocks already made
            (``from_arrow``, ``materialize()``, ...); and for a bad argument
            (an output given twice, ...), naming it.
        CheckpointError, FileNotFoundError: at once, for a ``checkpoint``
            that cannot be loaded (naming ``checkpoint``); where the dataset
            runs, for one removed or spoilt since.
        The error an actor meets (NaN in a row, a null inside a vector, a
        row of another length, a row null in every column, ...)
        is raised where the returned dataset runs, as Ray raises it: a
        ``RayTaskError`` that is also an instance of the package's error
        (``except gm.NonFiniteError`` catches it; ``err.cause`` is the
        original, with its ``arg`` and message). A run that fails kills
        its actors at once (they held their CPUs until Python's garbage
        collector ran), as does one that ends well (so did Ray Data 2.51's).
        An actor whose process dies (killed for memory, a crash) is started
        again and its batch retried, as Ray Data does, up to
        :data:`MAX_RESTARTS_PER_STEP` times in a row: its next start before
        it completes a task (the block of rows Ray retries whole) fails the
        run with a ``RuntimeError`` (Ray's ``RayTaskError`` that is one).
        (With Ray Data 2.51, up to that many times in the actor's life.)
    """
    if not isinstance(ds, ray.data.Dataset):
        raise TypeError(f"ds: expected a ray.data.Dataset, got {type(ds).__name__}")
    model = checkpoint if isinstance(checkpoint, LearnableMultiModal) else _load_checkpoint(checkpoint)
    plan = _ColumnPlan(model, columns)
    wanted = _check_outputs(outputs)
    if "hidden_features" in wanted:
        model.hidden_width(arg="outputs")
    batch_size = _check_int(batch_size, "batch_size", 1)  # a 0-d array too: the int it holds, for Ray
    # As a Python int: Ray refuses numpy's int64 as num_cpus ("The type of keyword 'num_cpus' must be ..."), no argument of ours
    cpus_per_actor = _check_int(cpus_per_actor, "cpus_per_actor", 1)
    if num_actors is not None:
        num_actors = _check_int(num_actors, "num_actors", 1)
    with _blocks_of_one_type("ds", "each column"):
        # where the blocks' types are known: named by the column, before any actor starts
        _check_blocks_unify(ds, "ds", None, set(plan.columns.values()))
        schema = ds.schema(fetch_if_missing=False)
    if schema is not None:
        plan.check_unique_names(list(schema.names), "ds", passed_through=True)
        plan.check_schema(list(schema.names), wanted)
        plan.check_types(list(schema.names), list(schema.types))
    # A fixed pool waits for all its actors before it starts: more than the
    # cluster holds would wait forever. A scaling pool starts with one.
    if num_actors is None:
        _check_fits_cluster(1, cpus_per_actor, "actor", None, "cpus_per_actor")
        cpus = int(sum(_node_cpus()[0]))  # less what a fit calling this (from its metric) holds until it returns
        pool = _actor_pool(min_size=1, max_size=max(1, cpus // cpus_per_actor))
    else:
        _check_fits_cluster(int(num_actors), cpus_per_actor, "actor", "num_actors", "cpus_per_actor")
        pool = _actor_pool(size=int(num_actors))
    # Actors do not share the driver's working directory: send an absolute path. A model is
    # put in the object store now: shipped when the lazy dataset runs, it was the model as it
    # was then (trained on meanwhile), and each actor's as it was when that actor started.
    # Of a model, its state (weights, standardisation, config): the pickled object carried its
    # experience buffer, its history (checked as a save checks it: a note refused the call) and
    # attributes a user set (a lock: not picklable), none of which embedding reads. A subclass
    # goes as it is: its own methods may embed.
    if type(checkpoint) is LearnableMultiModal:
        source = ray.put(_replica_state(checkpoint))
    elif isinstance(checkpoint, LearnableMultiModal):
        try:
            source = ray.put(checkpoint)
        except TypeError as err:  # Ray's "Could not serialize the put value", its report in many lines, named no argument
            raise TypeError(
                f"checkpoint: a {type(checkpoint).__name__} (a subclass of LearnableMultiModal) goes to the actors as it "
                f"is, pickled, and this one cannot be ({_why_not_pickled(err)}); expected a model whose attributes "
                "pickle, or a path it was saved to (model.save)"
            ) from None
    else:
        source = os.path.abspath(os.fspath(checkpoint))
    # The file is loaded again by each actor when the dataset runs, maybe after
    # another model was saved there: the actors check they load the one checked here.
    identity = None if isinstance(checkpoint, LearnableMultiModal) else _model_identity(model)
    out = ds.map_batches(
        _Embedder,
        fn_constructor_kwargs={"source": source, "columns": plan.columns, "outputs": wanted, "identity": identity},
        batch_size=int(batch_size),
        batch_format="pyarrow",  # the other columns pass through as they are (_Embedder.__call__)
        zero_copy_batch=True,  # read-only views of the block: the model only reads its inputs
        compute=pool,
        num_cpus=cpus_per_actor,
    )
    _check_room_for_steps_before(out, 1 if num_actors is None else int(num_actors), cpus_per_actor)
    # Said here, once, at the caller's line: the actors embed without it (each would say it per batch).
    # After every check: a call refused for its batch_size or outputs had warned of untrained modalities.
    given = np.zeros((1, NUM_MODALITIES), dtype=bool)
    given[0, [Modality.parse(m).index for m in plan.columns]] = True
    model._warn_untrained(given)
    # Ray Data wraps a map function's error in a UserCodeException, which is
    # neither the package's error nor catchable as it; raised as it is, it
    # reaches the caller as RayTaskError(NonFiniteError), an instance of
    # both. Set on a copy of the context: ``ds`` shares its context with
    # every dataset made from it, and those keep Ray's setting.
    own = _with_own_context(out)
    if own is None:  # a Ray without this (private) copy: its wrapped errors, but a working call
        return out
    own.context.raise_original_map_exception = True
    _add_stop_actors_at_end(own.context)  # a run that ends, failed or not, frees its actors at once
    return own


def _actor_pool(**sizes: int) -> "ray.data.ActorPoolStrategy":
    """Ray Data's actor pool of ``sizes``, whose actors call
    :class:`_Embedder` in the thread that runs their task, where Ray says
    which task that is (:meth:`_Embedder._note_completed_task`). One call at
    a time per actor either way (no ``max_concurrent_calls_per_actor``):
    Ray Data 2.60 otherwise hands each call to a thread of its own, where
    Ray names no task. 2.51 always does: there, an actor's restarts are
    counted over its life."""
    try:
        return ray.data.ActorPoolStrategy(**sizes, enable_true_multi_threading=True)
    except TypeError:  # Ray Data 2.51: no such choice
        return ray.data.ActorPoolStrategy(**sizes)


def _add_stop_actors_at_end(context: Any) -> None:
    """Adds :class:`_StopActorsAtEnd` to ``context``'s execution
    callbacks, once (``ds`` may be one of ours), as this Ray Data takes
    them: classes in ``custom_execution_callback_classes`` (2.60), else
    instances in its ``execution_callbacks`` config (2.51, which has no such
    field: its failed runs' actors were kept until the garbage collector
    ran). Neither (another Ray): nothing added."""
    if _StopActorsAtEnd is None:  # pragma: no cover - another Ray
        return
    classes = getattr(context, "custom_execution_callback_classes", None)
    if isinstance(classes, list):
        if _StopActorsAtEnd not in classes:
            context.custom_execution_callback_classes = [*classes, _StopActorsAtEnd]
        return
    try:
        from ray.data._internal.execution.execution_callback import (
            EXECUTION_CALLBACKS_CONFIG_KEY,
            get_execution_callbacks,
        )
    except ImportError:  # pragma: no cover - another Ray
        return
    # Ray's own (its issue detector, those of RAY_DATA_EXECUTION_CALLBACKS) kept: the config's
    # default, which Ray's add_execution_callback would have replaced by ours alone
    callbacks = list(get_execution_callbacks(context))
    if not any(isinstance(c, _StopActorsAtEnd) for c in callbacks):
        context.set_config(EXECUTION_CALLBACKS_CONFIG_KEY, [*callbacks, _StopActorsAtEnd()])


try:  # private API of Ray Data (2.5x); without it, a failed run frees its actors when collected, as before
    from ray.data._internal.execution.execution_callback import ExecutionCallback as _ExecutionCallback
except ImportError:  # pragma: no cover - another Ray
    _ExecutionCallback = None  # type: ignore[assignment,misc]


if _ExecutionCallback is not None:

    class _StopActorsAtEnd(_ExecutionCallback):  # type: ignore[misc,valid-type]
        """An execution callback of :func:`embed_dataset`'s datasets: a run
        that fails (an actor's error, Ctrl-C while iterating) kills the
        actors of its pools once Ray Data has shut it down, and so does a
        run that ends well (Ray Data 2.51 kept those too until the garbage
        collector ran; 2.60 frees them itself). Ray Data's own
        shutdown after a failure only drops its handles to them, and the
        failed run's traceback holds others in reference cycles: the actors
        kept their CPUs until the garbage collector ran (a next
        ``embed_dataset`` of a fixed pool, or a distributed ``fit``, waited
        for them), and for good with it off. Only the actors: Ray Data's
        forced shutdown would force-cancel the other steps' tasks too, a
        cancel Ray's core has been seen to abort the driver on (see
        ``docs/distributed.md``)."""

        def before_execution_starts(self, executor: Any) -> None:
            # Its class, not an attribute: a wrapper held by the executor made a cycle that kept an
            # executor left unfinished (ds.take(3)) and its actors until the garbage collector ran,
            # and one holding a weak reference lost it before the collector called __del__.
            try:
                executor.__class__ = _killing_actors_at_end(type(executor))
            except TypeError:  # pragma: no cover - an executor of another Ray's layout
                pass

        def on_execution_step(self, executor: Any) -> None:
            # The pools' actors as the run goes: Ray Data 2.51 releases a finished pool's
            # actors (drops its handles, its reference cycles keeping them and their CPUs until
            # the garbage collector runs) before the executor shuts down, which then finds none.
            # Held weakly: a handle held here kept a released actor alive, with its CPUs, and the
            # steps after the pool (count()'s, a map_batches of a function) waited for them forever.
            seen = executor.__dict__.setdefault("_gm_pool_actors", weakref.WeakSet())
            actors = _pool_actors(executor)
            seen.update(actors)
            # and their ids, whose restart records (_record_task_completed) the shutdown drops, released or not
            executor.__dict__.setdefault("_gm_pool_actor_ids", set()).update(_actor_id(a) for a in actors)
            if "_gm_job" not in executor.__dict__:  # once: setdefault asked Ray for the job at every step
                executor.__dict__["_gm_job"] = _ray_job()

    _KILLING_CLASSES: Dict[type, type] = {}

    def _killing_actors_at_end(cls: type) -> type:
        """``cls`` (Ray Data's executor) whose shutdown kills the actors of
        its pools (after a failure, and on Ray Data 2.51 after any run),
        under ``cls``'s own name."""
        if issubclass(cls, tuple(_KILLING_CLASSES.values())):
            return cls
        if cls not in _KILLING_CLASSES:

            def shutdown(self: Any, force: bool, exception: Optional[BaseException] = None) -> None:
                # After a run that succeeded too: Ray Data 2.51 kept those actors (and their CPUs) until the
                # garbage collector ran, a completed take_all() as much as a failed run; 2.60 frees them itself
                actors = {*self.__dict__.get("_gm_pool_actors", ()), *_pool_actors(self)}
                actor_ids = {*self.__dict__.get("_gm_pool_actor_ids", ()), *map(_actor_id, actors)}
                cls.shutdown(self, force=force, exception=exception)  # type: ignore[attr-defined]
                # Not once Ray has shut down, or for another Ray session's actors: an executor left in reference
                # cycles is shut down when collected, maybe at exit, and ray.kill then started a new Ray (the
                # CLI hung at exit) or aborted the process on actors its Ray no longer knew
                if not (actors or actor_ids) or self.__dict__.get("_gm_job", _ray_job()) != _ray_job() or _ray_job() is None:
                    return
                for actor in actors:
                    try:
                        ray.kill(actor, no_restart=True)
                    except Exception:  # gone already  # noqa: BLE001
                        pass
                for actor_id in actor_ids:  # those Ray Data released too: no handle left to kill, a record left
                    _forget_completed_tasks(actor_id)

            _KILLING_CLASSES[cls] = type(cls.__name__, (cls,), {
                "shutdown": shutdown, "__module__": cls.__module__, "__qualname__": cls.__qualname__})
        return _KILLING_CLASSES[cls]

    def _ray_job() -> Optional[str]:
        """This process's Ray job, ``None`` where Ray is not running (asked without starting it)."""
        if not ray.is_initialized():
            return None
        try:
            return str(ray.get_runtime_context().get_job_id())
        except Exception:  # noqa: BLE001 - shutting down
            return None

    def _pool_actors(executor: Any) -> List[Any]:
        """The actors of the actor pools of ``executor``'s operators, started
        or starting (Ray Data's private state; none where it differs)."""
        found: List[Any] = []
        try:
            for op in list(executor._topology):
                pool = getattr(op, "_actor_pool", None)
                if pool is not None:
                    found += [*pool._running_actors, *pool._pending_actors.values()]
        except Exception:  # another Ray's internals  # noqa: BLE001
            return []
        return found

else:  # pragma: no cover - another Ray
    _StopActorsAtEnd = None  # type: ignore[assignment,misc]


def _why_not_pickled(err: TypeError) -> str:
    """Pickle's own reason ("cannot pickle '_thread.lock' object") behind
    Ray's error, else the first line of Ray's (its report runs to many lines)."""
    cause = err.__cause__ or err.__context__
    return str(cause) if cause is not None and str(cause) else str(err).splitlines()[0]


def _with_own_context(ds: "ray.data.Dataset") -> "Optional[ray.data.Dataset]":
    """``ds`` with a copy of its ``DataContext``, to set without changing the
    caller's: a dataset shares its context with every dataset made from it.
    ``None`` with a Ray that lacks this (private) copy."""
    try:
        return ray.data.Dataset.copy(ds, _deep_copy=True)
    except (AttributeError, TypeError):
        return None


class _Embedder:
    """The callable class of :func:`embed_dataset`'s ``map_batches``: one
    model per actor, loaded in the constructor."""

    def __init__(self, source: Any, columns: Dict[str, str], outputs: Tuple[str, ...], identity: Optional[str] = None) -> None:
        if isinstance(source, ray.ObjectRef):  # the model as embed_dataset was given it
            source = ray.get(source)
        if isinstance(source, tuple):  # its state (embed_dataset)
            from .checkpoint import model_from_state

            source = model_from_state(*source)
        self.refusal: Optional[Exception] = None
        # Counted since this actor last completed a task (the rows Ray retries whole): Ray's count is of its
        # whole life, and an actor lost now and then (a preemptible node) failed a long run at its 4th loss
        self.restarts = _restarts_of_this_actor()
        self.restarts_at_last_task = _restarts_at_last_task() if self.restarts else 0
        self.first_task: Optional[str] = None
        restarts = self.restarts - self.restarts_at_last_task
        if restarts > MAX_RESTARTS_PER_STEP:
            # Ray Data restarts an actor whose process died and retries its batch without end: a batch
            # that killed its actor every time (memory, a crash) ran the dataset forever. Raised from
            # __call__, as the package's other refusals (the retried batch is refused, and the run fails).
            self.refusal = RuntimeError(
                f"embed_dataset: an embedding actor's process died {restarts} times (killed for using too much "
                f"memory? a crash? Ray's logs of the dead workers say), and Ray restarted it each time to retry its "
                f"batch; giving up after {MAX_RESTARTS_PER_STEP} restarts, as distributed.fit gives up on a worker "
                "that dies that often (smaller batch_size if memory ran out)"
            )
            return
        try:
            self.model = source if isinstance(source, LearnableMultiModal) else LearnableMultiModal.load(source)
        except (GraphemeError, OSError) as err:
            # Removed or spoilt since embed_dataset read it. Raised from __call__, as the
            # package's error: from here it reached the caller as Ray's ActorDiedError.
            self.refusal = CheckpointError(
                f"checkpoint: {source!r} could not be loaded when the dataset ran, though embed_dataset read it "
                f"(removed or overwritten since?): {err}",
                "checkpoint",
            )
            return
        if identity is not None and _model_identity(self.model) != identity:
            # Raised from __call__, as the package's error (an actor's constructor error reaches the caller as Ray's)
            self.refusal = CheckpointError(
                f"checkpoint: {source!r} changed since embed_dataset read it (another model was saved there); its "
                "rows would be embedded by a model other than the one checked, or by both: call embed_dataset again",
                "checkpoint",
            )
            return
        self.plan = _ColumnPlan(self.model, columns)
        self.outputs = outputs
        _use_assigned_cpus()

    def __call__(self, batch: "pa.Table") -> "pa.Table":
        from ray.data.block import BlockAccessor

        if self.refusal is not None:
            raise self.refusal
        self._note_completed_task()
        self.plan.check_schema(batch.column_names, self.outputs)
        # As embed_dataset checks them, for a dataset whose schema was not known without running it
        self.plan.check_types(batch.column_names, batch.schema.types)
        # Only the model's columns become numpy (as a numpy batch holds them);
        # the others stay Arrow. Through numpy, a list column with nulls is
        # objects in some batches and a tensor in others, which Ray cannot
        # put back in one block.
        read = batch.select(sorted(set(self.plan.columns.values())))
        inputs, mask = self.plan.inputs(BlockAccessor.for_block(read).to_batch_format("numpy"))
        self.plan.check_finite(inputs, mask, batch)
        self.plan.check_rows_present(mask, batch)
        try:
            with holding_warnings(dropped=(UntrainedModalityWarning,), hold=False):  # embed_dataset said it once
                emb, fused = self.model.encode_and_fuse(inputs, mask)
                hidden = self.model.hidden_features(inputs, mask) if "hidden_features" in self.outputs else None
        except GraphemeError as err:
            raise self.plan.named_by_column(self.plan.row_in_batch(err, batch)) from None
        out: Dict[str, np.ndarray] = {}
        if "fused" in self.outputs:
            out["fused"] = fused
        if "embeddings" in self.outputs:
            out["embeddings"] = emb
        if "bindings" in self.outputs:
            out["bindings"] = self.model.pair_strengths(emb, mask)
        if hidden is not None:
            out["hidden_features"] = hidden
        added = BlockAccessor.batch_to_block(out)  # as Ray Data stores a numpy batch's columns
        for name in added.column_names:
            batch = batch.append_column(name, added.column(name))
        return batch

    def _note_completed_task(self) -> None:
        """Where this call belongs to another task than this process's first
        (an actor runs its tasks one at a time), that one completed: noted
        for the actor's next start, once per restart (a run without deaths
        never writes). A task is what Ray retries when the actor dies: all
        the batches of its rows, from the first."""
        if self.restarts == self.restarts_at_last_task:
            return
        task = _current_task()
        if self.first_task is None:
            self.first_task = task
        elif task is not None and task != self.first_task:
            _record_task_completed(self.restarts)
            self.restarts_at_last_task = self.restarts


#: Ray's key-value store (in its GCS, outlives an actor's process): per embedding actor,
#: its restart count when it last completed a task.
_COMPLETED_TASK_NAMESPACE = "grapheme_multimodal.embed_dataset.restarts_at_last_task"


def _current_task() -> Optional[str]:
    """The task this actor runs now (``None`` where this Ray does not say)."""
    try:
        task = ray.get_runtime_context().get_task_id()
    except Exception:  # noqa: BLE001 - another Ray
        return None
    return None if task is None else str(task)


def _restarts_at_last_task() -> int:
    """This actor's restart count when it (an earlier process of it) last
    completed a task: 0 where it never did, or this Ray does not say."""
    try:
        from ray.experimental.internal_kv import _internal_kv_get

        value = _internal_kv_get(ray.get_runtime_context().get_actor_id(), namespace=_COMPLETED_TASK_NAMESPACE)
        return 0 if value is None else int(value)
    except Exception:  # noqa: BLE001 - another Ray's internals
        return 0


def _record_task_completed(restarts: int) -> None:
    """Notes that this actor, restarted ``restarts`` times, completed a
    task (for its next start, in another process)."""
    try:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(ray.get_runtime_context().get_actor_id(), str(restarts).encode(), overwrite=True,
                         namespace=_COMPLETED_TASK_NAMESPACE)
    except Exception:  # noqa: BLE001 - another Ray's internals: counted over the actor's life, as before
        pass


def _actor_id(actor: Any) -> Optional[str]:
    """``actor``'s id (hex), as its process reads its own; ``None`` where
    this Ray's handle does not say."""
    try:
        return actor._actor_id.hex()
    except Exception:  # noqa: BLE001 - another Ray's internals
        return None


def _forget_completed_tasks(actor_id: Optional[str]) -> None:
    """Drops what :func:`_record_task_completed` noted of the actor of
    ``actor_id`` (its run ended)."""
    if actor_id is None:
        return
    try:
        from ray.experimental.internal_kv import _internal_kv_del

        _internal_kv_del(actor_id, namespace=_COMPLETED_TASK_NAMESPACE)
    except Exception:  # noqa: BLE001 - another Ray's internals, or Ray shut down
        pass


def _restarts_of_this_actor() -> int:
    """How often Ray has restarted this actor after its process died (0 at
    its first start, and where this Ray does not say: private API)."""
    try:
        from ray._private.state import actors

        return int(actors(actor_id=ray.get_runtime_context().get_actor_id())["NumRestarts"])
    except Exception:  # noqa: BLE001 - another Ray's state, or not an actor
        return 0


class _ColumnPlan:
    """Which column feeds which modality, and how a column's values become
    the model's inputs: vectors, or texts featurised as the model does."""

    def __init__(self, model: LearnableMultiModal, columns: Columns) -> None:
        if not isinstance(columns, Mapping) or not columns:
            raise TypeError(f"columns: expected a non-empty mapping modality -> column name, got {columns!r}")
        self.config = model.config
        self.columns: Dict[str, str] = {}
        for key, column in columns.items():
            m = Modality.parse(key, "columns")
            if not isinstance(column, str):
                raise TypeError(f"columns[{str(key)!r}]: expected a column name (str), got {type(column).__name__}")
            if str(m) in self.columns:
                raise InvalidValueError(f"columns: modality {m} is given twice", "columns")
            self.columns[str(m)] = column

    def named_by_column(self, err: GraphemeError) -> Exception:
        """``err`` of the model about its ``inputs['visual']`` named by the
        dataset's column, as the plan's own checks name it: a float64 column
        of values below float32's range (passed on as float64) was refused
        as ``inputs['visual']``, no argument of ``embed_dataset``."""
        return _named_by_columns(
            err, {f"inputs[{modality!r}]": (f"column {column!r} ({modality})", column) for modality, column in self.columns.items()})

    def row_in_batch(self, err: GraphemeError, batch: "pa.Table") -> GraphemeError:
        """``err`` of the model naming a row of ``batch`` (``"inputs['visual']:
        row 9 overflows float32 in the encoder ..."``) remade to say it is the
        row's place in its batch, identified by its other columns, as
        :meth:`check_finite` says it: Ray Data does not number the dataset's
        rows, and row 9 pointed the user at another row. Else ``err``."""
        found = _ROW_FAULT.match(str(err))
        if found is None or found[1] != "inputs" or not isinstance(err, NonFiniteError):
            return err
        row = int(found[3])
        others = _other_columns(batch, row, set(self.columns.values()))
        return NonFiniteError(
            f"inputs[{found[2]}]: a row of a batch of {batch.num_rows} (its row {row}; Ray Data does not number the "
            f"dataset's rows){others}{',' if others else ''}{found[4]}", err.arg)

    def check_schema(self, names: List[str], outputs: Sequence[str], dataset: str = "the dataset") -> None:
        """Refuses a column of ``columns`` that the dataset (``dataset``, as
        the message names it: fit's ``data`` or ``validation``) lacks, and an
        output whose name one of its columns has."""
        missing = sorted(c for c in self.columns.values() if c not in names)
        if missing:
            raise InvalidValueError(f"columns: {dataset} has no column {missing}; its columns are {names}", "columns")
        clash = [o for o in outputs if o in names]
        if clash:
            raise InvalidValueError(
                f"outputs: the dataset already has a column named {clash}; rename it (ds.rename_columns) first", "outputs"
            )

    def check_unique_names(self, names: List[str], arg: str, passed_through: bool) -> None:
        """Refuses a dataset (the argument ``arg``) with two columns of one
        name, as a Parquet file may have: any such column where every column
        is ``passed_through`` to the output (embed_dataset: Ray Data cannot
        make a block of them, a KeyError or ArrowInvalid where the dataset
        ran), else one the model reads (fit: which one holds the vectors is
        ambiguous; Ray's read failed with ArrowInvalid)."""
        read = set(self.columns.values())
        twice = [c for c in dict.fromkeys(names) if names.count(c) > 1 and (passed_through or c in read)]
        if not twice:
            return
        column = twice[0]
        why = ("embed_dataset passes every column through, and Ray Data cannot make a block with two columns of one name"
               if passed_through else
               f"columns reads {column!r} for {', '.join(m for m, c in self.columns.items() if c == column)}, and which of "
               "them holds the vectors is ambiguous")
        raise InvalidValueError(
            f"{arg}: the dataset has {names.count(column)} columns named {column!r} (its columns are {names}); {why}; "
            "expected each column name once (rename one where the dataset is made)",
            arg,
        )

    def check_types(self, names: List[str], types: List[Any]) -> None:
        """Refuses a column whose Arrow type the model cannot take whatever
        its rows hold; what only the rows show is checked per batch."""
        for modality, column in self.columns.items():
            self._check_type(modality, column, types[names.index(column)])

    def _check_type(self, modality: str, column: str, kind: Any) -> None:
        """:meth:`check_types` of one column, of Arrow type ``kind``."""
        import pyarrow as pa

        if not isinstance(kind, pa.DataType):  # a pandas/numpy schema: checked per batch
            return
        dim = self.config.input_dim(modality)
        name = f"column {column!r} ({modality})"
        if isinstance(kind, pa.DictionaryType):
            # Its rows are its dictionary's values (numpy decodes them): checked as those, here. Left to
            # the rows, embed_dataset refused a dictionary of numbers or bytes only once its dataset ran,
            # and fit only after reading every row.
            self._check_type(modality, column, kind.value_type)
            return
        plain = _plain_layout(kind)
        if plain is not None:
            self._check_type(modality, column, plain)  # values it could not take in any layout: said as such
            # It was "expected vectors of 20 numbers (or texts) per row, got list_view<item: float> values":
            # vectors of numbers they were, only in a layout Ray's serialisation of Arrow tables lacks.
            raise TypeError(
                f"{name}: holds Arrow {kind} values, and Arrow's view layouts are not supported (nor by Ray's "
                f"serialisation of Arrow tables); expected the same values as {plain} (cast the column to it where "
                "the dataset is made)"
            )
        shape = getattr(kind, "shape", None)  # Ray Data's tensor columns
        if pa.types.is_fixed_size_list(kind):
            # Of vectors: refused below as vectors of vectors; its outer length alone was
            # called "a tensor column of shape (4,) per row" (4 vectors of 5: 20 numbers).
            _check_vector_items(kind.value_type, name, dim, column)
            shape = (kind.list_size,)
        if shape is not None:
            if len(shape) != 1 or shape[0] not in (None, dim):
                raise ShapeError(f"{name}: expected vectors of {dim} numbers (the model's {modality} input length), "
                                 f"got a tensor column of shape {tuple(shape)} per row", column)
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            _check_vector_items(kind.value_type, name, dim, column)
        elif shape is not None or pa.types.is_null(kind):  # a tensor column; a column with no value at all
            pass
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            self._check_takes_text(modality, column)
        elif _is_number_type(kind):
            raise ShapeError(f"{name}: expected vectors of {dim} numbers (or texts) per row, got one {kind} per row", column)
        elif not isinstance(kind, pa.ExtensionType):  # by its rows, per batch
            # Bytes, structs, maps, dates...: the actors refused them per batch as
            # vectors "of shape ()", once the returned dataset ran.
            raise TypeError(f"{name}: expected vectors of {dim} numbers (or texts) per row, got {kind} values")

    def _check_takes_text(self, modality: str, column: str) -> None:
        dim = self.config.input_dim(modality)
        if self.config.graph_featurizer(modality).dim != dim:
            raise InvalidValueError(
                f"column {column!r} ({modality}): holds text, but the model's {modality} encoder takes {dim} numeric features, not graphs",
                column,
            )

    def inputs(self, batch: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        """``({modality: [B, d] float32}, mask [B, 7])`` of a numpy batch."""
        size = len(next(iter(batch.values())))
        mask = np.zeros((size, NUM_MODALITIES), bool)
        inputs = {}
        for modality, column in self.columns.items():
            x, present = self._column(modality, column, batch[column])
            if present.any():
                inputs[modality] = x
                mask[:, Modality.parse(modality).index] = present
        return inputs, mask

    def check_finite(self, inputs: Mapping[str, np.ndarray], mask: np.ndarray, batch: "pa.Table") -> None:
        """Refuses a present row holding NaN or inf, naming its column and
        identifying it by the row's other columns: the model named
        ``inputs['visual']`` and the row's place in its batch (row 9 for the
        dataset's row 57 in batches of 16), which Ray Data does not number in
        the dataset, and so pointed the user at another row. A null item of
        a vector (NaN once in numpy) is refused as a null."""
        for modality, x in inputs.items():
            bad = _unusable_rows(x, mask[:, Modality.parse(modality).index])
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                column = self.columns[modality]
                error, holds, expected = _what_row_holds(x[row], _null_item(batch, None, column, row))
                raise error(
                    f"column {column!r} ({modality}) {holds} in a row of a batch of {len(x)} (its row {row}; "
                    f"Ray Data does not number the dataset's rows){_other_columns(batch, row, set(self.columns.values()))}; "
                    f"{expected}",
                    column,
                )

    def check_rows_present(self, mask: np.ndarray, batch: "pa.Table") -> None:
        """Refuses a row null in every column the model reads, identified as
        :meth:`check_finite` identifies a row: it was embedded as the fusion
        of nothing, one constant vector for every such row, where
        ``MultimodalEmbedder.transform`` refuses a row with no view."""
        empty = ~mask.any(axis=1)
        if empty.any():
            row = int(np.argmax(empty))
            read = list(self.columns.values())
            others = _other_columns(batch, row, set(read))
            raise InvalidValueError(
                f"ds: a row of a batch of {len(mask)} (its row {row}; Ray Data does not number the dataset's rows)"
                f"{others}{',' if others else ''} is null in every column of columns {read} (no modality present); "
                "expected at least one of them non-null per row to embed (drop such rows first, e.g. ds.filter)",
                "ds",
            )

    def _column(self, modality: str, column: str, values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        dim = self.config.input_dim(modality)
        name = f"column {column!r} ({modality})"
        if values.dtype != object and values.ndim == 2:  # a tensor column: every row present
            if values.shape[1] != dim:
                raise ShapeError(
                    f"{name}: expected vectors of {dim} numbers (the model's {modality} input length), got {values.shape[1]} per row",
                    column,
                )
            return as_real_array(values, name), np.ones(len(values), bool)
        if values.ndim == 1 and values.dtype.kind == "f" and len(values) and np.isnan(values).all():
            # A column of Arrow type null (every value null, as from_items
            # infers for None throughout) comes to numpy as NaN floats: no
            # row has the modality.
            return np.zeros((len(values), dim), np.float32), np.zeros(len(values), bool)
        if values.dtype.kind in "US":
            values = values.astype(object)
        if values.ndim != 1 or values.dtype != object:
            raise ShapeError(f"{name}: expected vectors of {dim} numbers (or texts) per row, got {values.dtype} {values.shape}", column)
        present = np.array([v is not None for v in values], bool)
        rows = np.flatnonzero(present)
        if not len(rows):
            return np.zeros((len(values), dim), np.float32), present
        given = values[rows]
        if all(isinstance(v, str) for v in given):
            self._check_takes_text(modality, column)
            # the rows and the texts' features, before either is allocated: numpy's MemoryError named nothing,
            # and featurize's own check its "items"
            refuse_beyond_budget(4 * dim * (len(values) + len(rows)), name, "the features of its {rows:,} rows × {dim:,} "
                                 "take {bytes} bytes", remedy="a smaller batch_size", rows=len(values), dim=dim)
            x = np.zeros((len(values), dim), np.float32)
            x[rows] = featurized(self.config.graph_featurizer(modality), list(given), name,
                                 lambda j: f"{name}, row {rows[j]} of a batch of {len(values)}")
            return x, present
        odd = sorted({type(v).__name__ for v in given if not isinstance(v, (np.ndarray, list, tuple))})
        if odd:  # bytes, records, a text among vectors: were "got shapes [()]"
            # a NaN among vectors is pandas' usual "missing", which Arrow keeps as a number, not a null
            nan = any(isinstance(v, float) and v != v for v in given)
            hint = "; a row without the vector takes None (null), not NaN" if nan else ""
            raise TypeError(f"{name}: expected vectors of {dim} numbers (or texts) per row, got values of type {', '.join(odd)}{hint}")
        lengths = {np.shape(v) for v in given}
        if lengths != {(dim,)}:
            raise ShapeError(
                f"{name}: expected vectors of {dim} numbers (the model's {modality} input length) or null, got shapes {sorted(lengths)}",
                column,
            )
        vectors = _real_vectors(np.stack(given), name)
        if vectors.dtype.kind == "f" and vectors.dtype.itemsize > 4:
            # Kept as given, as a tensor column's are, for the model to cast (the same float32 bits) and
            # check as model.fit checks arrays: cast here, a value too large for float32 became inf (the
            # error said the column "holds NaN or inf", which it did not), a column of values below
            # float32's range became constant zeros unrefused, and a cast that lost a column's
            # variation gave no PrecisionLossWarning.
            if len(rows) == len(values):  # every row present: the stacked rows themselves, no second copy
                return vectors, present
            x = np.zeros((len(values), dim), vectors.dtype)
        elif len(rows) == len(values):  # every row present: np.stack's fresh rows, cast as x[rows] = vectors casts
            return vectors.astype(np.float32, copy=False), present
        else:
            x = np.zeros((len(values), dim), np.float32)
        x[rows] = vectors
        return x, present


def _other_columns(batch: "pa.Table", row: int, skip: set, limit: int = 200) -> str:
    """``", whose other columns are {'id': 57}"`` for ``batch``'s ``row``:
    the columns the model does not read, as a user finds the row by (an id, a
    path); ``""`` when there are none. Cut at ``limit`` characters."""
    values = {name: _readable_value(batch.column(name), row) for name in batch.column_names if name not in skip}
    if not values:
        return ""
    text = repr(values)
    return f", whose other columns are {text if len(text) <= limit else text[: limit - 3] + '...'}"


def _readable_value(column: Any, row: int) -> Any:
    """``column[row]`` as Python, for :func:`_other_columns`; where Python
    cannot hold it (a timestamp or date beyond ``datetime``'s years, as
    Arrow stores them), Arrow's own text of it: its ``OverflowError``
    replaced the actor's refusal of the row (NaN, null everywhere) with
    "Python int too large to convert to C int", naming nothing."""
    import pyarrow as pa

    try:
        return column[row].as_py()
    except (OverflowError, ValueError, pa.ArrowException):
        try:
            return column.slice(row, 1).cast(pa.string())[0].as_py()
        except (pa.ArrowException, TypeError, ValueError):  # no text cast for its type either
            return f"<a {column.type} value>"


def _is_number_type(kind: "pa.DataType") -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)


def _plain_layout(kind: "pa.DataType") -> "Optional[pa.DataType]":
    """The ordinary Arrow type of a view layout's values (``string`` for
    ``string_view``, ``list<item: float>`` for ``list_view<item: float>``);
    ``None`` for any other type (and on a pyarrow without view layouts)."""
    import pyarrow as pa

    views = (("is_string_view", lambda k: pa.string()), ("is_binary_view", lambda k: pa.binary()),
             ("is_list_view", lambda k: pa.list_(k.value_field)), ("is_large_list_view", lambda k: pa.large_list(k.value_field)))
    for test, plain in views:
        if getattr(pa.types, test, lambda _: False)(kind):
            return plain(kind)
    return None


def _check_vector_items(item: "pa.DataType", name: str, dim: int, column: str) -> None:
    """Refuses a list column whose items are no numbers: vectors of vectors
    (a ShapeError), of text, bytes or records (a TypeError). The actors found
    them only once the returned dataset ran (nested lists as vectors "of
    shape (1,)"). Decimals too: they reach numpy as Python ``Decimal``
    objects, which ``model.fit`` refuses as numbers stored as Python objects
    (they were cast to float32 here without a word)."""
    import pyarrow as pa

    if pa.types.is_decimal(item):
        raise TypeError(
            f"{name}: expected vectors of {dim} floats or integers per row, got vectors of {item} items (decimals reach "
            "numpy as Python Decimal objects, which model.fit refuses as numbers stored as Python objects); cast the "
            "column to a list of float64 (or float32) where the dataset is made"
        )
    if _is_number_type(item) or pa.types.is_null(item):
        return
    nested = _plain_layout(item) or item
    if pa.types.is_list(nested) or pa.types.is_large_list(nested) or pa.types.is_fixed_size_list(nested):
        raise ShapeError(f"{name}: expected vectors of {dim} numbers per row, got vectors of vectors (items of type {item})", column)
    raise TypeError(f"{name}: expected vectors of {dim} real numbers per row, got vectors of {item} items")


#: The entries of an object array of vectors (a pandas block's lists) taken as real numbers.
_REAL_ENTRY = (bool, int, float, np.bool_, np.integer, np.floating)


def _real_vectors(vectors: np.ndarray, name: str) -> np.ndarray:
    """A column's stacked vectors, refused as ``model.fit`` refuses them when
    they are not real numbers: assigned into float32 as they were, complex
    vectors lost their imaginary parts without a word and text (``"1.5"``)
    was parsed as numbers, and ``Decimal`` objects (a pandas block's) were
    cast to float32, where ``model.fit`` refuses numbers stored as Python
    objects."""
    if vectors.dtype == object:  # Python objects per entry (None in a vector: NaN, refused downstream)
        odd = sorted({type(v).__name__ for v in vectors.flat if v is not None and not isinstance(v, _REAL_ENTRY)})
        if odd:
            hint = ("; Decimal objects are refused as model.fit refuses numbers stored as Python objects: cast the column "
                    "to float64 (or float32) where the dataset is made") if "Decimal" in odd else ""
            raise TypeError(f"{name}: expected vectors of real numbers, got entries of type {', '.join(odd)}{hint}")
        return vectors
    return as_real_array(vectors, name)


def _check_outputs(outputs: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """``outputs`` as a tuple of :data:`OUTPUTS` names, in the order given;
    a name given twice is refused (it was dropped without a word, where a
    twice-given name is more likely a slip for another output, and
    ``columns`` refuses a modality given twice)."""
    try:
        chosen = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    except TypeError:  # None, a number: "'NoneType' object is not iterable" named no argument
        chosen = ()
    unknown = [o for o in chosen if not isinstance(o, str) or o not in OUTPUTS]
    if not chosen or unknown:
        raise InvalidValueError(f"outputs: expected some of {list(OUTPUTS)}, got {outputs!r}", "outputs")
    twice = [o for o in dict.fromkeys(chosen) if chosen.count(o) > 1]
    if twice:
        raise InvalidValueError(
            f"outputs: {', '.join(map(repr, twice))} given more than once in {outputs!r}; expected each of "
            f"{list(OUTPUTS)} at most once", "outputs",
        )
    return chosen


def _dataset_arrays(
    model: LearnableMultiModal, ds: "ray.data.Dataset", columns: Optional[Columns], name: str
) -> Tuple[Dict[str, np.ndarray], np.ndarray, Dict[str, str]]:
    """A ``ray.data.Dataset``'s modality columns as ``fit`` input: per-modality
    arrays, the mask (null = absent) and the columns read (modality ->
    column). Default columns: those named after modalities. An error of the
    dataset's own steps (a ``map_batches`` of the caller's that raises while
    the rows are read) is raised as that error, as :func:`embed_dataset`'s
    actors raise theirs: it was Ray's ``UserCodeException`` ("UDF failed to
    process a data block"), which ``except`` of the caller's error missed."""
    own = _with_own_context(ds)  # the caller's dataset keeps Ray's setting
    if own is not None:
        own.context.raise_original_map_exception = True
        ds = own
    # The columns the model will read (those of columns=, else any named after a modality), as
    # the blocks hold them: named by the column; Ray's schema merges every column's types for the names
    read = ({c for c in columns.values() if isinstance(c, str)} if isinstance(columns, Mapping)
            else {str(m) for m in Modality})
    with _blocks_of_one_type(name):
        _check_blocks_unify(ds, name, read, read)
    with _blocks_of_one_type(name, "each column"):
        names = ds.columns()
    if names is None:  # no block, so no schema: from_items([]) and the like
        raise InvalidValueError(f"{name}: the dataset has no rows", name)
    names = list(names)
    if columns is None:
        columns = {str(m): str(m) for m in Modality if str(m) in names}
        if not columns:
            raise InvalidValueError(
                f"{name}: no column is named after a modality ({', '.join(str(m) for m in Modality)}); "
                f"its columns are {names}; pass columns={{modality: column}}",
                name,
            )
    # columns= itself, and a column it names that the dataset lacks, are refused as columns='s,
    # the dataset named in the text: under the prefix below they read "data: columns: ...".
    plan = _ColumnPlan(model, columns)
    plan.check_schema(names, (), dataset=name)
    plan.check_unique_names(names, name, passed_through=False)
    try:
        with _blocks_of_one_type(name):
            return (*_read_dataset(model, ds, plan, name), plan.columns)
    except (GraphemeError, TypeError) as err:
        if isinstance(err, RayTaskError) or str(err).startswith(f"{name}:"):  # a map step's own error; named already
            raise
        # data and validation share columns=: "column 'img' (visual): ..." did not say which
        # dataset holds the wrong vectors
        text = f"{name}: {err}"
        raise (type(err)(text, err.arg) if isinstance(err, GraphemeError) else type(err)(text)) from None


@contextlib.contextmanager
def _blocks_of_one_type(name: str, columns: str = "each column the model reads") -> Iterator[None]:
    """Ray Data's refusal of a dataset whose blocks hold one column in types
    it cannot unify (float32 vectors in one block, float64 in another; a
    tensor column beside a block where every row is null, so of Arrow's
    ``null`` type) as the package's error naming the dataset ``name``: it
    was Ray's own ``ValueError`` or ``ArrowTypeError`` naming no argument.
    ``columns``: which columns must be of one type (embed_dataset passes
    every column through)."""
    import pyarrow as pa

    try:
        yield
    except (pa.ArrowTypeError, pa.ArrowInvalid, ValueError, _BlocksDiffer) as err:
        # "Unable to merge": a column's types in two blocks that Arrow cannot merge (int64 ids in one,
        # text in another), Ray's schema of the dataset an ArrowTypeError naming no argument
        known = isinstance(err, _BlocksDiffer) or any(said in str(err) for said in ("unify", "Unable to merge"))
        if isinstance(err, GraphemeError) or not known:
            raise
        # Of a task's error (a Parquet read that met the blocks), the error itself: the first line of
        # Ray's was its task's header ("ray::ReadFilesParquetV2() (pid=..., ip=...)"), in colour codes
        cause = getattr(err, "cause", None) if isinstance(err, RayTaskError) else None
        said = (str(cause) if isinstance(cause, BaseException) and str(cause) else str(err)).splitlines()[0]
        raise InvalidValueError(
            f"{name}: its blocks hold a column in types Ray Data cannot unify ({said}); expected "
            f"{columns} in one type in every block (cast them where the dataset is made, e.g. every "
            "block's vectors to float32; a block whose rows all lack the modality as nulls of that type)",
            name,
        ) from None


def _concat_options(concat: Any) -> Dict[str, bool]:
    """The options of Ray Data's block builder for ``concat`` (its private
    function), those this Ray's takes: Ray 2.51's has no ``preserve_order``,
    and a call with it raised a TypeError, read as blocks that differ (a
    dataset of float32 vectors in one block and float64 in another was
    refused)."""
    wanted = {"promote_types": True, "preserve_order": True}
    try:
        taken = inspect.signature(concat).parameters
    except (TypeError, ValueError):  # pragma: no cover - no signature: the options every Ray's takes
        return {"promote_types": True}
    return {k: v for k, v in wanted.items() if k in taken}


class _BlocksDiffer(Exception):
    """:func:`_check_blocks_unify`'s finding, said by :func:`_blocks_of_one_type`."""


def _check_blocks_unify(ds: "ray.data.Dataset", name: str, checked: Optional[set], read: set) -> None:
    """Where ``ds`` holds blocks already made (``from_arrow``, ``from_items``,
    ``materialize()``, ...), whose types Ray Data knows without running it:
    each column (of ``checked``, else every column) combined as Ray Data's
    block builder combines blocks into a batch, on no rows; and each column of ``read``
    (those the model reads) in every block. A tensor column beside a block
    where every row of it is null (Arrow's ``null`` type) passes Ray's
    schema, which merges the two, and failed only where the rows were
    batched (``embed_dataset``'s actors: a ``RayTaskError(ValueError)``
    naming neither ``ds`` nor the column, when the returned dataset ran); a
    block lacking a column the model reads failed there too (Ray's
    ``TypeError: buffer is too small for requested array``; in ``fit``, its
    ``select_columns``: ``KeyError: Field "v" does not exist``). Raises
    :class:`_BlocksDiffer` (the types, said by :func:`_blocks_of_one_type`)
    or :class:`InvalidValueError` naming ``name``. Other datasets: left to
    Ray (private API; without it, nothing checked)."""
    import pyarrow as pa

    try:
        from ray.data._internal.arrow_ops.transform_pyarrow import concat
        from ray.data._internal.logical.operators.from_operators import AbstractFrom
        from ray.data._internal.logical.operators.input_data_operator import InputData

        dag = ds._logical_plan.dag
        if not isinstance(dag, (AbstractFrom, InputData)):
            return
        schemas = [bundle.schema for bundle in dag.input_data]
    except Exception:  # another Ray's internals  # noqa: BLE001
        return
    # Each schema once, with how many blocks have it: blocks of one schema (the usual dataset) cost one pass
    counts: Dict[Any, int] = {}
    for schema in schemas:
        if isinstance(schema, pa.Schema):
            counts[schema] = counts.get(schema, 0) + 1
    if len(counts) < 2:
        return
    schemas = list(counts)
    names = list(dict.fromkeys(column for schema in schemas for column in schema.names))
    for column in names:
        lacking = sum(count for schema, count in counts.items() if column not in schema.names)
        if column in read and lacking:
            raise InvalidValueError(
                f"{name}: {lacking} of its {sum(counts.values())} blocks lack column {column!r}, which the model reads (Ray Data "
                "cannot read the blocks' rows of a column that only some blocks have); expected the column in every "
                "block, null where a row lacks the modality",
                name,
            )
        if checked is not None and column not in checked:
            continue
        fields = [schema.field(column) for schema in schemas if schema.names.count(column) == 1]
        kinds = list(dict.fromkeys(repr(f.type) if isinstance(f.type, pa.ExtensionType) else str(f.type) for f in fields))
        if len(kinds) < 2:
            continue
        try:
            # as Ray Data's block builder combines a batch's blocks (permissive promotion of native types:
            # lists of float32 in one block and float64 in another are batched together)
            concat([pa.schema([f]).empty_table() for f in fields], **_concat_options(concat))
        except Exception as err:  # noqa: BLE001 - whatever Ray cannot combine, its own words said
            said = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise _BlocksDiffer(f"column {column!r} is {', '.join(kinds[:-1])} in some blocks and {kinds[-1]} in "
                                f"others: {said}") from None


def _read_dataset(
    model: LearnableMultiModal, ds: "ray.data.Dataset", plan: "_ColumnPlan", name: str
) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """:func:`_dataset_arrays` once its columns are known and found."""
    schema = ds.schema()
    if schema is not None:  # as embed_dataset: a column of the wrong type, before reading every row
        plan.check_types(list(schema.names), list(schema.types))
    selected = ds.select_columns(sorted(set(plan.columns.values())))
    # Read in the dataset's order: Ray Data's default yields a block as soon as it is
    # ready, so behind a map step (a preprocessing map_batches) the rows came shuffled
    # differently on every call, and the row a NaN error named was another one.
    ordered = _with_own_context(selected)
    if ordered is not None:
        ordered.context.execution_options.preserve_order = True
        selected = ordered
    from ray.data.block import BlockAccessor

    # Each column's first unusable row (NaN, inf, too large for float32), found in the batch
    # as read: a null item of a vector is NaN once in numpy, told apart only there.
    parts, unusable, start = [], {}, 0
    for native in selected.iter_batches(batch_format=None, batch_size=65536):
        batch = BlockAccessor.for_block(native).to_batch_format("numpy")  # as iter_batches(batch_format="numpy") does
        inputs, mask = plan.inputs(batch)
        for modality, x in inputs.items():
            bad = _unusable_rows(x, mask[:, Modality.parse(modality).index])
            if modality not in unusable and bad.any():
                row = int(np.flatnonzero(bad)[0])
                unusable[modality] = (start + row, x[row].copy(), _null_item(native, batch, plan.columns[modality], row))
        parts.append((inputs, mask))
        start += len(mask)
    if not parts:
        raise InvalidValueError(f"{name}: the dataset has no rows", name)
    for modality in plan.columns:  # left to model.fit, it named data['visual'] and a mask the caller never gave
        if modality in unusable:
            row, values, null_at = unusable[modality]
            error, holds, expected = _what_row_holds(values, null_at)
            raise error(f"{name}: column {plan.columns[modality]!r} ({modality}) {holds} in row {row}; {expected}", name)
    mask = np.concatenate([p[1] for p in parts])
    inputs = {}
    for modality in plan.columns:
        dim = model.config.input_dims[Modality.parse(modality).index]
        inputs[modality] = np.concatenate([p[0].get(modality, np.zeros((len(p[1]), dim), np.float32)) for p in parts])
    return inputs, mask


def _null_item(native: Any, batch: Optional[Mapping[str, np.ndarray]], column: str, row: int) -> Optional[int]:
    """Where the vector at ``row`` of ``column`` holds its first null item,
    ``None`` if it holds none: in ``native``, a batch as Ray Data read it (an
    Arrow table, whose nulls became NaN in numpy), or in ``batch``, its numpy
    form (pandas' lists keep their None)."""
    import pyarrow as pa

    if isinstance(native, pa.Table):
        items = getattr(native.column(column)[row], "values", None)  # a list's items; None for a null row, no list
        if isinstance(items, pa.Array) and items.null_count:
            return int(np.flatnonzero(items.is_null().to_numpy(zero_copy_only=False))[0])
        return None
    value = None if batch is None else batch[column][row]
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        return next((i for i, item in enumerate(value) if item is None), None)
    return None


def _unusable_rows(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``[B]`` bool: the ``present`` rows of ``x [B, d]`` holding NaN, inf or
    a finite number too large for float32 (the model's precision: it becomes inf).
    Of float16 (a tensor column of half floats), whose finite numbers all fit
    float32, NaN and inf alone: compared with float32's largest, cast to
    float16 as numpy casts it (to inf), an inf passed (``inf <= inf``), and
    numpy warned of an overflow on every batch."""
    if x.dtype.kind == "f" and x.dtype.itemsize < 4:
        return present & ~np.isfinite(x).all(axis=1)
    with np.errstate(invalid="ignore"):
        return present & ~(np.abs(x) <= FLOAT32_MAX).all(axis=1)


def _what_row_holds(values: np.ndarray, null_at: Optional[int] = None) -> Tuple[type, str, str]:
    """``(NonFiniteError, "holds NaN or inf", "expected finite numbers ...")``
    for a row of :func:`_unusable_rows`; when what it holds is a finite
    number too large for float32, that number (a float64 1e300 was reported
    as "NaN or inf", which the user's data did not hold); when its vector
    holds a null item at ``null_at``, that null, an InvalidValueError (it was
    reported as "NaN or inf" too, Arrow's null having become NaN in numpy)."""
    if null_at is not None:
        return (InvalidValueError, f"holds a null (a missing value) at position {null_at} of its vector",
                "expected a number at every position (the whole vector null where a row lacks the modality)")
    if np.isfinite(values).all():
        big = values[np.argmax(np.abs(values))]
        return (NonFiniteError, f"holds {float(big)!r}, too large for float32 (largest {FLOAT32_MAX:.3g})",
                "expected finite float32 numbers (null where a row lacks the modality)")
    return NonFiniteError, "holds NaN or inf", "expected finite numbers (null where a row lacks the modality)"


#: Rows per block of the datasets the library makes of arrays (:func:`_arrays_dataset`, ``grapheme-mm embed --ray``).
ROWS_PER_BLOCK = 65536


def _arrays_dataset(
    columns: Mapping[str, np.ndarray], rows_per_block: int = ROWS_PER_BLOCK, present: Optional[Mapping[str, np.ndarray]] = None,
) -> "ray.data.Dataset":
    """A ``ray.data.Dataset`` of equal-length arrays (one column each; 2-D
    arrays become tensor columns), in blocks of ``rows_per_block`` rows.
    ``present``: column → bool per row; a column named there holds
    fixed-size lists, null where the row is not present (a modality the
    row lacks, as :func:`embed_dataset` reads it), in every block alike."""
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorArray

    n = len(next(iter(columns.values())))
    present = present or {}

    def column(name: str, rows: slice) -> Any:
        x = columns[name][rows]
        if name in present:  # a tensor column has no nulls
            values = pa.array(np.ascontiguousarray(x).reshape(-1))
            return pa.FixedSizeListArray.from_arrays(values, x.shape[1], mask=pa.array(~present[name][rows]))
        return ArrowTensorArray.from_numpy(np.ascontiguousarray(x)) if x.ndim > 1 else pa.array(x)

    tables = [
        pa.table({name: column(name, slice(i, i + rows_per_block)) for name in columns})
        for i in range(0, max(n, 1), rows_per_block)
    ]
    return ray.data.from_arrow(tables)


# ------------------------------------------------------------------- training
def fit(
    model: LearnableMultiModal,
    data: Any,
    *,
    num_workers: int,
    cpus_per_worker: int = 1,
    columns: Optional[Columns] = None,
    **fit_options: Any,
) -> History:
    """Trains ``model`` data-parallel on ``num_workers`` Ray actors; as
    ``model.fit(data, **fit_options)`` in every other respect.

    Args:
        model: trained in place: it ends with the trained weights, optimizer
            state, input standardisation and history, as after ``model.fit``.
        data: what :meth:`LearnableMultiModal.fit` takes, or a
            ``ray.data.Dataset`` whose columns hold modality vectors (null =
            absent), by default the columns named after modalities. A row
            null in every column read holds no modality: trained on as
            ``model.fit`` trains on a row whose ``mask`` is False throughout
            (every objective passes over it), though :func:`embed_dataset`
            refuses it, having nothing to embed (as ``MultimodalEmbedder``
            fits on a row NaN in every view but refuses to transform it).
            Column types are checked before any row is read, as
            :func:`embed_dataset` checks them; a column the model reads
            that the dataset has twice is refused (an
            :class:`InvalidValueError` naming ``data``), as are blocks
            holding a column in types Ray Data cannot unify (float32
            vectors in one block, float64 or an all-null column in another)
            and blocks lacking a column the model reads.
        num_workers: model replicas, one Ray actor each. Each step's batch
            (``batch_size`` rows, drawn as ``model.fit`` draws them) is split
            into one contiguous share per worker (at least 2 rows each: a
            smaller batch uses fewer workers). Each share is a batch of its
            own for the objectives — its in-batch negatives, neighbours and
            random draws (share ``k`` uses the draws of ``rng_counter + k``),
            as one process accumulating the shares' gradients would — and
            the gradients are averaged weighted by rows. ``num_workers=1``
            is ``model.fit``, bit for bit.
        cpus_per_worker: CPUs each actor reserves and computes with.
        columns: with a ``ray.data.Dataset``: ``{modality: column}``.
        fit_options: the options of :func:`grapheme_multimodal.training.fit`
            (``epochs``, ``batch_size``, ``objectives``, ``lr``,
            ``validation`` — arrays, events or a ``ray.data.Dataset`` —,
            ``early_stopping``, ``modality_dropout``, ``seed``, ``progress``, ...).

    The data set is put in Ray's object store once; workers on one node
    share it without copies, and each step sends a worker only the row
    indices of its share. A worker that dies is started again from the
    driver's model and the step retried, so the result is the same. After
    every epoch the replicas' weights and optimizer state are compared with
    the driver's: :class:`ReplicaDriftError` if they differ. Workers that
    cannot be stopped once training is done are said in a ``RuntimeWarning``
    (the model keeps its training); after a failed fit, the fit's error is
    raised and the failure to stop them warned of beside it. The workers
    hold their CPUs until ``fit`` returns: an :func:`embed_dataset` or a
    distributed ``fit`` (of a copy) called from its metrics that needs more
    CPUs than they leave is refused, an :class:`InvalidValueError`.
    """
    if not isinstance(model, LearnableMultiModal):
        raise TypeError(f"model: expected a LearnableMultiModal, got {type(model).__name__}")
    refuse_in_fit(model, "fit")  # from a metric of this model's fit (or its signal handler): before Ray reads anything
    num_workers = _check_int(num_workers, "num_workers", 1)  # a 0-d array too: the int it holds
    cpus_per_worker = _check_int(cpus_per_worker, "cpus_per_worker", 1)
    _warn_of_shares_neighborhood_cannot_learn_from(fit_options, int(num_workers))
    datasets = isinstance(data, ray.data.Dataset) or isinstance(fit_options.get("validation"), ray.data.Dataset)
    if columns is not None and not datasets:
        raise InvalidValueError("columns: only used with a ray.data.Dataset (as data or validation)", "columns")
    if datasets:  # Ray is up (the data is on it): refuse before reading it; else _RaySteps checks, after fit's checks
        _check_fits_cluster(num_workers, cpus_per_worker, "worker", "num_workers", "cpus_per_worker")
    # model.fit's name for a dataset's column ("data['visual']") -> the column: the model's refusals of its values
    named: Dict[str, str] = {}
    for key, mask_key in (("data", "mask"), ("validation", "validation_mask")):
        value = data if key == "data" else fit_options.get("validation")
        if isinstance(value, ray.data.Dataset):
            if fit_options.get(mask_key) is not None:
                raise InvalidValueError(f"{mask_key}: not used with a ray.data.Dataset (null values mark absent modalities)", mask_key)
            arrays, mask, read = _dataset_arrays(model, value, columns, key)
            named.update({f"{key}[{modality!r}]": column for modality, column in read.items()})
            if key == "data":
                data = arrays
            else:
                fit_options["validation"] = arrays
            fit_options[mask_key] = mask
    defaults = inspect.signature(_fit).parameters
    steps = functools.partial(
        _RaySteps, num_workers=int(num_workers), cpus_per_worker=int(cpus_per_worker),
        epochs=fit_options.get("epochs", defaults["epochs"].default),
        batch_size=fit_options.get("batch_size", defaults["batch_size"].default),
    )
    names = {inner: (_column_name(inner, column), column) for inner, column in named.items()}
    try:
        # a PrecisionLossWarning names the column too
        return call_in_precision_scope({inner: shown for inner, (shown, _) in names.items()}, _fit, model, data,
                                       _steps=steps, **fit_options)
    except (GraphemeError, TypeError) as err:
        renaming = _named_by_columns(err, names)
        if renaming is err:
            raise
        raise renaming from None


def _named_by_columns(err: Exception, names: Mapping[str, Tuple[str, str]]) -> Exception:
    """``err`` whose message begins with a name of the model's
    (``"inputs['visual']"``, ``"data['visual']"``) that ``names`` maps to
    ``(shown, column)``, remade to begin with ``shown`` and, one of ours,
    with the dataset's ``column`` as its ``arg``, as embed_dataset's and
    fit's own checks of a column name it; else ``err`` itself. One for both:
    the model's refusals of a column's values named an argument the caller
    never passed."""
    renaming = renamed(err, {inner: shown for inner, (shown, _) in names.items()})
    if renaming is not err and isinstance(renaming, GraphemeError):
        renaming.arg = names[str(err).partition(":")[0]][1]
    return renaming


def _column_name(inner: str, column: str) -> str:
    """``"data: column 'img' (visual)"`` for model.fit's ``"data['visual']"``
    read from ``column``: the model named an argument the caller never
    passed. The dataset leads, as in the other errors of :func:`fit` about
    its columns: ``data`` and ``validation`` share ``columns=``."""
    key, _, modality = inner.partition("[")
    return f"{key}: column {column!r} ({modality[1:-2]})"


class _Replica:
    """A worker of the distributed :func:`fit`: a model replica and the
    training data (shared through the object store)."""

    def __init__(self, state: Tuple[Dict[str, np.ndarray], Dict[str, Any]], train: _Dataset, objectives: Any, lr: Optional[float]) -> None:
        from .checkpoint import model_from_state

        _use_assigned_cpus()
        self.model = model_from_state(*state)
        self.train, self.objectives, self.lr = train, objectives, lr

    def ready(self) -> bool:
        return True

    def step(self, grads: Optional[np.ndarray], rows: Optional[np.ndarray], keep: Optional[np.ndarray], counter: int) -> Optional[Tuple[np.ndarray, Dict[str, float]]]:
        """Applies the previous step's average ``grads`` (if any), then
        computes the gradients of ``rows`` with the random draws of
        ``counter``: ``(flat gradients, losses)``."""
        if grads is not None:
            _apply_flat(self.model, grads, self.lr)
        if rows is None:
            return None
        _set_rng_counter(self.model, counter)
        self.model.zero_grad()
        try:
            losses = self.model._fit_backward(self.train.batch(rows, keep), self.objectives)  # a share of one row too
        except NonFiniteError as err:  # the core names a row of this share: named here as the data's row
            raise self.train.in_user_rows(err, rows) from None
        return self.model._core.get_flat_grad(), losses

    def sync(self, grads: Optional[np.ndarray], counter: int) -> str:
        """Applies the last average and returns the fingerprint of the state."""
        if grads is not None:
            _apply_flat(self.model, grads, self.lr)
        _set_rng_counter(self.model, counter)
        return _fingerprint(self.model)


class _RaySteps(Steps):
    """:func:`grapheme_multimodal.training.fit`'s steps on Ray workers.

    Each step is one call per worker: apply the previous step's average (a
    single object in the store, read by all), then compute the gradients of
    its share. The driver's model applies each average as soon as it is
    known, so it always holds the state every worker will have: a worker
    that died is started again from it.
    """

    def __init__(
        self,
        model: LearnableMultiModal,
        train: _Dataset,
        objectives: Optional[Mapping[str, float]],
        lr: Optional[float],
        *,
        num_workers: int,
        cpus_per_worker: int,
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
    ) -> None:
        self.model, self.lr = model, model._learning_rate(lr)
        # Mistakes a worker would raise at its first step (objectives, data),
        # raised here before any actor starts: the losses of two rows.
        model._fit_losses(train.batch(np.arange(min(2, len(train))), None), objectives)
        if epochs is not None and batch_size is not None:  # fit's, checked by it (fit passes them)
            _check_draw_count(model, int(epochs), int(batch_size), len(train), num_workers)
        # Only now, every input checked, may Ray start (ray.init on first use);
        # every step needs every worker.
        _check_fits_cluster(num_workers, cpus_per_worker, "worker", "num_workers", "cpus_per_worker")
        self.counter = int(model._core.optimizer_state()[3])
        # What each step trains the encoders on, noted in the driver's model (its record of
        # trained modalities, as the local steps keep it): rows per modality, by these weights.
        self.dataset = train if train.has_inputs else None
        self.weights = resolve_weights(objectives, train.has_fused, "objectives")
        self.pending: Optional["ray.ObjectRef"] = None  # the last average, not yet applied by the workers
        self.replica = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(_Replica)
        self.train = ray.put(train)
        self.objectives = objectives
        self.workers: List[Any] = []
        self.group: Optional[Any] = None
        try:
            # Every worker's CPUs reserved at once, or none: started one by one, two fits
            # (threads, drivers) that each got some of their workers waited for each
            # other's CPUs forever. A fit now waits for the whole of another one instead.
            self.group = placement_group([{"CPU": cpus_per_worker}] * num_workers, strategy="PACK")
            ray.get(self.group.ready())
            _groups_held_here().append(self.group)  # its metrics' embed_dataset and fit: refused what can never start
            state = ray.put(_replica_state(model))
            for k in range(num_workers):  # one by one: close() kills those started before an interrupt
                self.workers.append(self._start(state, k))
            ray.get([w.ready.remote() for w in self.workers])
        except BaseException:
            self.close()
            raise

    def step(self, rows: np.ndarray, keep: Optional[np.ndarray]) -> Dict[str, float]:
        bounds = _share_bounds(len(rows), len(self.workers))

        def call(k: int, worker: Any, fresh: bool) -> "ray.ObjectRef":
            grads = None if fresh else self.pending
            if k + 1 >= len(bounds):
                return worker.step.remote(grads, None, None, 0)
            a, b = bounds[k], bounds[k + 1]
            return worker.step.remote(grads, rows[a:b], None if keep is None else keep[a:b], self.counter + k)

        results = self._on_all(call)[: len(bounds) - 1]
        grads, losses = _weighted_mean(results, np.diff(bounds))
        # The record of trained modalities notes the step's rows, as the local train_step
        # does, in the same write as the update; recorded embeddings (no dataset of
        # inputs) train no encoder, but the step is an update all the same.
        if self.dataset is None:
            mask = np.zeros((0, NUM_MODALITIES), bool)
        else:
            mask = self.dataset.mask_of(rows)
            mask = mask if keep is None else mask & keep
        _apply_flat(self.model, grads, self.lr, mask, self.weights)
        self.pending = ray.put(grads)
        self.counter += len(results)
        return losses

    def end_epoch(self) -> None:
        prints = self._on_all(lambda k, w, fresh: w.sync.remote(None if fresh else self.pending, self.counter))
        self.pending = None
        _set_rng_counter(self.model, self.counter)
        mine = _fingerprint(self.model)
        drifted = [k for k, p in enumerate(prints) if p != mine]
        if drifted:
            raise ReplicaDriftError(
                f"workers {drifted} of {len(prints)} hold weights or optimizer state that differ from the driver's "
                f"after epoch {self.model.epochs_trained + 1}; the replicas must stay identical"
            )

    def close(self) -> None:
        # The driver's rng_counter is left as it is: end_epoch sets it, and whatever
        # fit does after (restoring the best epoch, or the last completed one when
        # interrupted) restores it with the rest of the optimizer state. Set here, it
        # was the last step's counter beside an earlier epoch's weights and Adam step.
        # A Ctrl-C is raised once all is stopped: cut short, the placement group kept
        # the workers' CPUs reserved, and the next fit waited for them forever.
        # Each part tried whatever the others did (a worker that cannot be killed still
        # has the CPUs of the others freed); the first failure raised once all were tried.
        failures: List[Exception] = []
        with uninterrupted():
            for worker in self.workers:
                try:
                    ray.kill(worker)
                except Exception as err:
                    failures.append(err)
            self.workers = []
            if self.group is not None:
                groups = _groups_held_here()
                groups[:] = [g for g in groups if g is not self.group]
                try:
                    remove_placement_group(self.group)
                except Exception as err:
                    failures.append(err)
                self.group = None
            self.pending = self.train = self.dataset = None
        if failures:
            raise failures[0]

    def _start(self, state: "ray.ObjectRef", k: int) -> Any:
        """Worker ``k``, in its reserved share of the CPUs (``k``'s bundle of the group)."""
        where = PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=k)
        return self.replica.options(scheduling_strategy=where).remote(state, self.train, self.objectives, self.lr)

    def _on_all(self, call: Any) -> List[Any]:
        """``call(k, worker, fresh)`` on every worker; the results in order.
        A worker that died is replaced by a fresh replica of the driver's
        model (``fresh=True``: it has every average applied) and called again."""
        refs = [call(k, w, False) for k, w in enumerate(self.workers)]
        results: List[Any] = [None] * len(refs)
        waiting = list(range(len(refs)))
        for attempt in range(MAX_RESTARTS_PER_STEP + 1):
            dead, last = [], None
            for k in waiting:
                try:
                    results[k] = ray.get(refs[k])
                except RayActorError as err:
                    dead.append(k)
                    last = err
                except RayTaskError as err:  # the worker's own error, as model.fit would raise it
                    raise (err.cause if isinstance(err.cause, Exception) else err) from None
            if not dead:
                return results
            if attempt < MAX_RESTARTS_PER_STEP:
                state = ray.put(_replica_state(self.model))
                for k in dead:
                    ray.kill(self.workers[k])
                    self.workers[k] = self._start(state, k)
                    refs[k] = call(k, self.workers[k], True)
            waiting = dead
        raise RuntimeError(f"workers {waiting} died {MAX_RESTARTS_PER_STEP + 1} times in one step; giving up. Last error: {last}")


# -------------------------------------------------------------------- helpers
def _warn_of_shares_neighborhood_cannot_learn_from(fit_options: Mapping[str, Any], workers: int) -> None:
    """Warns when ``neighborhood`` is weighted and the workers split each
    batch into shares of two rows: it ranks a row's neighbours among the
    other rows of its share holding its modality, a softmax that is 1 over
    a single one, so it was 0 on every share without a word (``fit`` warns
    of ``batch_size=2`` in one process). Bad options are left to ``fit``."""
    batch_size = fit_options.get("batch_size", 64)
    try:
        weights = dict(zip(OBJECTIVES, resolve_weights(fit_options.get("objectives"), False, "objectives")))
    except (GraphemeError, TypeError):
        return
    if weights["neighborhood"] <= 0 or not is_int(batch_size):
        return
    # Counted, not listed: the bounds of a huge batch_size among huge num_workers were a
    # list of that many shares, a MemoryError before the cluster check refused the workers.
    shares = _share_count(int(batch_size), workers)
    smallest = int(batch_size) // shares  # the sizes differ by at most one
    if shares > 1 and smallest < 3:
        warn_at_caller(  # held, as fit's own warnings, where the command line says them as one line each
            f"num_workers: {workers} workers split each batch of batch_size={int(batch_size)} rows into shares of "
            f"{smallest} rows; neighborhood ranks each row's neighbours among the other rows of its share "
            "holding its modality, a softmax that is 1 over a single one, so it is 0 on shares of two rows; expected "
            f"batch_size >= {3 * workers} (3 rows a share) for it to train",
            UserWarning,
        )


def _check_draw_count(model: LearnableMultiModal, epochs: int, batch_size: int, rows: int, workers: int) -> None:
    """Refuses ``epochs`` whose shares would take the random-draw counter
    (``rng_counter``, one per share) past what it counts: ``fit`` counts the
    steps, one draw each in one process, so a fit near the end passed its
    check and failed mid-epoch, naming the optimizer state, not ``epochs``."""
    def shares(size: int) -> int:
        return _share_count(size, workers)

    full, last = _batch_layout(rows, batch_size)
    steps, per_epoch = full + (last > 0), full * shares(batch_size) + (shares(last) if last else 0)
    taken = int(model._core.optimizer_state()[3])
    if epochs * per_epoch > MAX_STEPS - taken:
        raise InvalidValueError(
            f"epochs: {epochs} epochs of {steps} steps, split among {workers} workers, draw {epochs * per_epoch} "
            f"times (one per share of a step); expected at most {(MAX_STEPS - taken) // per_epoch} epochs, as the "
            f"random-draw counter rng_counter counts at most 2**63 - 1 draws ({taken} taken)",
            "epochs",
        )


def _share_count(rows: int, workers: int) -> int:
    """How many shares :func:`_share_bounds` splits ``rows`` into."""
    return max(1, min(workers, rows // 2))


def _share_bounds(rows: int, workers: int) -> np.ndarray:
    """Bounds of a batch's contiguous shares, one per worker but at least 2
    rows each (the contrastive objectives need 2); their sizes differ by at
    most one, the larger first (as ``np.array_split``)."""
    shares = _share_count(rows, workers)
    size, extra = divmod(rows, shares)
    return np.concatenate(([0], np.cumsum([size + 1] * extra + [size] * (shares - extra))))


def _weighted_mean(results: List[Tuple[np.ndarray, Dict[str, float]]], rows: np.ndarray) -> Tuple[np.ndarray, Dict[str, float]]:
    """The shares' gradients and losses averaged, weighted by rows (float64
    sums in worker order: the same bits on every run). One share: as is."""
    if len(results) == 1:
        return results[0]
    weights = rows / rows.sum()
    grads = np.zeros(len(results[0][0]), np.float64)
    for w, (g, _) in zip(weights, results):
        grads += w * g
    losses = {key: float(sum(w * r[1][key] for w, r in zip(weights, results))) for key in results[0][1]}
    return grads.astype(np.float32), losses


def _replica_state(model: LearnableMultiModal) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """What a worker's replica (or an embedding actor's model) is built from:
    the model's checkpoint state without its experience and history, which
    neither reads (the history is checked as a save checks it: a record a
    user annotated with text, which ``model.fit`` trains on, refused every
    distributed fit)."""
    from .checkpoint import checkpoint_state

    return checkpoint_state(model, include_experience=False, include_history=False)


@writes
def _apply_flat(
    model: LearnableMultiModal, grads: np.ndarray, lr: Optional[float],
    mask: Optional[np.ndarray] = None, weights: Optional[List[float]] = None,
) -> None:
    """``model.apply_gradients`` of flat gradients (layout order), holding
    the model's write lock like every method that changes it. With the
    presence ``mask [B, 7]`` of the step's rows (and the objectives'
    ``weights``), the model's record of trained modalities notes those rows,
    as its own ``train_step`` does (in the same call: a refused update
    notes nothing)."""
    if mask is None:
        model._core.apply_gradients(grads, lr)
    else:
        model._core.apply_gradients(grads, lr, np.ascontiguousarray(mask, dtype=bool), weights)


@writes
def _set_rng_counter(model: LearnableMultiModal, counter: int) -> None:
    """Sets the counter that fixes the objectives' random draws."""
    m, v, step, _ = model._core.optimizer_state()
    model._core.set_optimizer_state(m, v, step, int(counter))


def _fingerprint(model: LearnableMultiModal) -> str:
    """A hash of everything a replica must share: weights, standardisation,
    Adam's moments and step, the random-draw counter (read in one state)."""
    h = hashlib.blake2b(digest_size=16)
    with model._lock.reading():
        for arr in model._parameters().values():
            h.update(arr.tobytes())
        for m in range(NUM_MODALITIES):
            stats = model.normalization(m)
            for arr in stats or ():
                h.update(np.ascontiguousarray(arr).tobytes())
        moments, second, step, counter = model._core.optimizer_state()
    h.update(moments.tobytes())
    h.update(second.tobytes())
    h.update(np.array([step, counter], np.uint64).tobytes())
    return h.hexdigest()


def _model_identity(model: LearnableMultiModal) -> str:
    """What makes two loaded checkpoints the same model: its config and
    :func:`_fingerprint` (weights, standardisation, optimizer state)."""
    config = json.dumps(model.config.to_dict(), sort_keys=True)
    return hashlib.blake2b(f"{config}\0{_fingerprint(model)}".encode(), digest_size=16).hexdigest()


def _use_assigned_cpus() -> None:
    """Computes with as many threads as Ray gave this actor CPUs."""
    from .threads import set_num_threads

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    set_num_threads(max(1, int(round(cpus))))


def _check_fits_cluster(count: int, cpus_each: int, what: str, count_arg: Optional[str], cpus_arg: str) -> None:
    """Refuses ``count`` actors of ``cpus_each`` CPUs that the cluster's
    nodes cannot hold at once: Ray would wait for them forever."""
    _ensure_ray()
    nodes, held = _node_cpus()
    room = sum(int(cpus // cpus_each) for cpus in nodes)
    if room < count and held:
        _refuse_cpus_held_by_the_fit_here(count, cpus_each, what, count_arg if room and count_arg else cpus_arg, nodes, held)
    if room < count:
        arg = cpus_arg if room == 0 or count_arg is None else count_arg
        unit = "CPU" if cpus_each == 1 else "CPUs"
        # with no room at all the fault is the CPUs each (the arg named): "expected at most 0" (actors)
        # was no bound on it. A whole number of them, and none where no node has one (an autoscaling
        # cluster's head of 0 CPUs, its workers not started): "at most 0" was no bound either
        most = int(max(nodes, default=0.0))
        expected = ("a node with at least 1 CPU, which none of its nodes has" if room == 0 and most < 1
                    else f"{cpus_arg} at most {most} (the most CPUs a node has)" if room == 0
                    else f"at most {room}")
        raise InvalidValueError(
            f"{arg}: {count} {what}{'s' if count > 1 else ''} of {cpus_each} {unit} each do not fit on this Ray cluster: "
            f"its nodes ({', '.join(f'{c:g}' for c in nodes) or 'none'} CPUs) hold {room} at once, and Ray would wait "
            f"for the rest forever; expected {expected} (on an autoscaling cluster, start its nodes first)",
            arg,
        )


#: The placement groups of the distributed fits running in this thread: their workers hold
#: their CPUs until the fit returns, and the fit's metrics run in this thread.
_FITS_OF_THIS_THREAD = threading.local()


def _groups_held_here() -> List[Any]:
    """The placement groups of :data:`_FITS_OF_THIS_THREAD` (a list to add to)."""
    if not hasattr(_FITS_OF_THIS_THREAD, "groups"):
        _FITS_OF_THIS_THREAD.groups = []
    return _FITS_OF_THIS_THREAD.groups


def _node_cpus() -> Tuple[List[float], float]:
    """The CPUs of each live node, less those the workers of the distributed
    fits running in this thread hold (they free them only once that fit
    returns, so a call from its metric can never have them), and how many
    those hold."""
    alive = [node for node in ray.nodes() if node.get("Alive")]
    free = [node["Resources"].get("CPU", 0.0) for node in alive]
    where = {node.get("NodeID"): i for i, node in enumerate(alive) if node.get("NodeID") is not None}
    held = 0.0
    for group in _groups_held_here():
        try:
            table = placement_group_table(group)
            bundles = [(node, table["bundles"][index].get("CPU", 0.0)) for index, node in table["bundles_to_node_id"].items()]
        except Exception:  # noqa: BLE001 - another Ray's table: counted as before, not held
            continue
        for node, cpus in bundles:
            if node in where:
                free[where[node]] -= cpus
                held += cpus
    return free, held


def _less_the_fit_here(held: float) -> str:
    """What a count of the cluster's CPUs leaves out: those the workers of
    the distributed fit running in this thread hold (``held``), if any."""
    if not held:
        return ""
    return f", less the {held:g} that the workers of the distributed fit running in this thread hold until it returns"


def _refuse_cpus_held_by_the_fit_here(count: int, cpus_each: int, what: str, arg: str, free: List[float], held: float) -> None:
    """Refuses ``count`` actors of ``cpus_each`` CPUs called for by code a
    distributed fit runs in this thread (one of its metrics) that only the
    CPUs its workers hold would make room for: the fit waits for that code,
    and Ray waited for those CPUs forever."""
    unit = "CPU" if cpus_each == 1 else "CPUs"
    room = sum(int(cpus // cpus_each) for cpus in free)
    left = sum(free)
    raise InvalidValueError(
        f"{arg}: {count} {what}{'s' if count > 1 else ''} of {cpus_each} {unit} each {'do' if count > 1 else 'does'} not "
        f"fit beside the distributed fit running in this thread (this is called from one of its metrics), whose "
        f"workers hold {held:g} of the cluster's CPUs until it returns: {left:g} CPU{'' if left == 1 else 's'} left "
        f"({', '.join(f'{c:g}' for c in free) or 'none'} per node), and Ray would wait for the rest forever; expected at "
        f"most {room} {what}{'' if room == 1 else 's'} of {cpus_each} {unit} (that fit leaves more with fewer num_workers), "
        "or this call after that fit returns",
        arg,
    )


#: Physical operators of Ray Data that run no task of their own (a limit slices with num_cpus=0).
_TASKLESS_OPERATORS = ("InputDataBuffer", "LimitOperator", "UnionOperator")


def _needs_of_steps_before(out: "ray.data.Dataset", planned: bool) -> Optional[Tuple[float, float, List[str]]]:
    """What the steps of ``out`` before its last operator (the embedding
    actor pool) take from the cluster while the pool runs: ``(CPUs their
    actor pools hold, most CPUs one of their tasks takes, their names)``.
    Not ``planned``: a bound read off the steps as written, cheap (every step
    a task of its own, as if Ray Data fused none into the actors). ``planned``:
    as Ray Data will run them, its optimised physical plan (a
    ``rename_columns`` fused into the pool's actors is no step of its own);
    that planning may read a datasource's metadata. ``None`` where this Ray
    does not plan as expected (private API)."""
    try:
        if not planned:
            from ray.data._internal.logical.operators.from_operators import AbstractFrom
            from ray.data._internal.logical.operators.input_data_operator import InputData

            dag, sources = out._logical_plan.dag, (AbstractFrom, InputData)
        else:
            from ray.data._internal.logical.optimizers import LogicalOptimizer, PhysicalOptimizer
            from ray.data._internal.planner import create_planner

            # As Dataset.explain() plans, which leaves the dataset as it was
            physical = create_planner().plan(LogicalOptimizer().optimize(out._logical_plan))
            dag, sources = PhysicalOptimizer().optimize(physical[0] if isinstance(physical, tuple) else physical).dag, ()
        held, task, names = 0.0, 0.0, []
        seen, todo = set(), list(dag.input_dependencies)
        while todo:
            op = todo.pop()
            if id(op) in seen:
                continue
            seen.add(id(op))
            todo.extend(op.input_dependencies)
            if isinstance(op, sources) or type(op).__name__ in _TASKLESS_OPERATORS:  # blocks already made; no task
                continue
            if planned:
                least = float(op.min_max_resource_requirements()[0].cpu or 0)
                actors = type(op).__name__ == "ActorPoolMapOperator"
                mapping = hasattr(op, "get_map_transformer")  # a map's own accounting; a shuffle's counts no CPU
            else:
                compute = getattr(op, "compute", None)
                actors = isinstance(compute, ray.data.ActorPoolStrategy)
                cpus = float(getattr(op, "ray_remote_args", None) and op.ray_remote_args.get("num_cpus", 1) or 1)
                least = cpus * (getattr(compute, "min_size", None) or 1) if actors else cpus
                mapping = True
            if actors:  # its smallest pool, held while the dataset runs
                held += least
            else:  # one task at a time makes progress; Ray gives a task 1 CPU unless told otherwise
                task = max(task, least if mapping else max(least, 1.0))
            if least > 0 or not mapping:
                names.append(op.name)
        return held, task, names[::-1]
    except Exception:  # another Ray's internals: left unchecked, as before  # noqa: BLE001
        return None


def _check_room_for_steps_before(out: "ray.data.Dataset", actors: int, cpus_each: int) -> None:
    """Refuses an embedding pool whose ``actors`` (those it starts with) of
    ``cpus_each`` CPUs leave none for the dataset's steps before it (a read,
    a ``map_batches``, a ``rename_columns`` Ray Data does not fuse into the
    actors): the pool starts first and holds its CPUs until its input comes,
    which those steps could then never make, and the dataset waited forever
    (``cpus_per_actor=2`` on a cluster of 2 CPUs behind a ``rename_columns``).
    Ray Data's plan is made only where the steps as written might not fit."""
    nodes, taken = _node_cpus()

    def fits(count: int, each: int, held: float, task: float) -> bool:
        # The actors on the smallest nodes that hold them, then the steps' pools anywhere
        # and one task of theirs on one node.
        free, left = sorted(nodes), count
        for i, cpus in enumerate(free):
            placed = min(left, int(cpus // each))
            free[i], left = cpus - placed * each, left - placed
        return left == 0 and sum(free) >= held + task and max(free, default=0.0) >= task

    needs = None
    for planned in (False, True):
        needs = _needs_of_steps_before(out, planned)
        if needs is None or fits(actors, cpus_each, *needs[:2]):
            return
    held, task, names = needs

    def most(fitting: Any, upto: int) -> int:
        """The largest n in 1..upto with fitting(n), else 0 (fitting holds for every n below one that fits)."""
        low, high = 0, upto
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if fitting(mid) else (low, mid - 1)
        return low

    fewer = most(lambda k: fits(k, cpus_each, held, task), actors - 1)
    smaller = most(lambda c: fits(actors, c, held, task), cpus_each - 1)
    arg = "num_actors" if fewer else "cpus_per_actor"
    expected = (f"num_actors at most {fewer}, or " if fewer else f"cpus_per_actor at most {smaller}, or " if smaller
                else "")
    unit = "CPU" if cpus_each == 1 else "CPUs"
    what = " and ".join(part for part in (f"{held:g} CPUs for their actors" if held else "",
                                          f"{task:g} CPU{'s' if task != 1 else ''} for a task" if task else "") if part)
    raise InvalidValueError(
        f"{arg}: {f'{actors} actors of {cpus_each} {unit} each leave' if actors > 1 else f'1 actor of {cpus_each} {unit} leaves'} "
        f"no room on this Ray cluster (its nodes: {', '.join(f'{c:g}' for c in nodes) or 'none'} CPUs"
        f"{_less_the_fit_here(taken)}) for the steps "
        f"of ds before embedding ({', '.join(names)}), which need {what}: the actors start first, and would wait "
        f"forever for rows those steps could not make; expected {expected}ds.materialize() first to run those steps "
        "before embedding",
        arg,
    )


#: Held while checking whether Ray runs and starting it: two threads that both
#: found it not running both called ray.init, and the second failed inside Ray
#: ("AssertionError: Perhaps you called ray.init twice by accident?").
_RAY_START = threading.Lock()


def _ensure_ray() -> None:
    """Starts Ray as Ray itself does on first use (a local cluster, or the
    one ``RAY_ADDRESS`` names, checked first), once however many threads ask.
    Ray 2.51's FutureWarning at its first ``ray.init`` ("Tip: In future
    versions of Ray, Ray will no longer override accelerator visible devices
    env var ...") is kept from the user, as the command line keeps it: a tip
    to Ray's users about GPUs, which the library never asks for. Every other
    warning passes. Not by ``warnings.catch_warnings()``: it puts back the
    whole process's filter list as it found it, so a filter another thread
    set while Ray started (seconds) was undone; only this one is taken out."""
    with _RAY_START:
        if not ray.is_initialized():
            _check_ray_address(None, "address")
            with ignoring_warning(RAY_ACCELERATOR_TIP, FutureWarning):
                ray.init()


def _load_checkpoint(checkpoint: Any) -> LearnableMultiModal:
    """The model at ``checkpoint``, its errors naming ``checkpoint`` (the
    argument the caller gave) rather than ``load``'s own ``path``."""
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint: expected a path to a saved model or a LearnableMultiModal, got {type(checkpoint).__name__}")
    try:
        return LearnableMultiModal.load(checkpoint)
    except (GraphemeError, FileNotFoundError) as err:
        raise renamed(err, {"path": "checkpoint"}) from None
