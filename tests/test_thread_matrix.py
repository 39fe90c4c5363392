"""The thread-safety promise, pair by pair: every public operation that
changes a model (or its experience buffer, directly or through record_*)
run at the same moment as every other public operation, on small models,
with Python's switch interval lowered so that threads interleave inside the
calls. Deterministic in what it asserts; a pair runs ``TRIES`` times. CI's
other Pythons run a fifth of the model's pairs (``OTHER_PYTHONS_EVERY``).

- two changes at once: both results and the final state (weights, Adam
  state, gradients, standardisation, epochs, history, experience buffer)
  equal those of one of the two serial orders;
- a change and a reader: the reader reads again and again while the change
  runs; every read equals the read before the change or after it (never a
  mix), none "before" after one "after", and the change's result and final
  state are those it gives alone;
- failing calls are in the matrix (a fit that fails after an epoch on its
  validation metric, refused steps, loads and records): the same refusal as
  alone, and nothing changed;
- no deadlock: threads are joined with a timeout that fails the test.

``fit`` lets readers in between its steps (documented): what they read, and
what ``record_*`` stores and returns meanwhile, is of some step of it, so
only the final state of the model and whether the other call returned or
was refused (and with which error) are checked there.
The scikit-learn estimator's fit/transform/... pairs are at the end.
"""

from __future__ import annotations

import copy
import enum
import functools
import itertools
import math
import pickle
import sys
import threading
import uuid
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.sklearn import MultimodalEmbedder

#: Tries of each pair at once: the lowered switch interval makes each one interleave differently.
TRIES = 2
#: A pair still running after this many seconds is taken as a deadlock.
JOIN_TIMEOUT_S = 30.0


def synthetic(n: int, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {
        "visual": (z @ rng.normal(size=(3, 10)) + 0.1 * rng.normal(size=(n, 10))).astype(np.float32),
        "auditory": (z @ rng.normal(size=(3, 6)) + 0.1 * rng.normal(size=(n, 6))).astype(np.float32),
    }


DATA = synthetic(48, 0)
BATCH = synthetic(12, 1)
PROBE = synthetic(3, 2)
EVENT = gm.MultiModalEvent(7, [gm.ModalFeatures(np.linspace(-1, 1, 10), "visual"),
                               gm.ModalFeatures(np.linspace(1, 2, 6), "auditory")])
QUERY = np.linspace(-1, 1, 8).astype(np.float32)


def small_model(seed: int = 0) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=seed, buffer_size=6,
                                  encoder_hidden=(8,), input_dims={"visual": 10, "auditory": 6})


def _prepared() -> bytes:
    """A model with gradients, Adam moments, standardisation and experiences, pickled."""
    model = small_model()
    model.train_step(BATCH)
    model.backward(synthetic(12, 3))  # gradients held, not yet applied
    model.set_normalization("auditory", np.full(6, 0.1), np.full(6, 2.0))
    model.record_batch(PROBE, rewards=np.array([0.1, 0.2, 0.3]), event_ids=[1, 2, 3])
    return pickle.dumps(model)


PREPARED = _prepared()
OTHER = small_model(seed=5)
OTHER.train_step(BATCH)
OTHER_WEIGHTS, OTHER_OPTIMIZER = OTHER.state_dict(), OTHER.optimizer_state()
NEGATIVE_MOMENT = copy.deepcopy(OTHER_OPTIMIZER)
next(iter(NEGATIVE_MOMENT["exp_avg_sq"].values())).flat[-1] = -1.0
EMBEDDINGS = pickle.loads(PREPARED).encode(PROBE)
EXPERIENCE = pickle.loads(PREPARED).experience[0]


def fresh() -> gm.LearnableMultiModal:
    return pickle.loads(PREPARED)


# ------------------------------------------------------------------ digests
def digest(value: Any) -> Any:
    """A comparable, bit-exact form of a result or state (NaN equals NaN)."""
    if isinstance(value, BaseException):
        return ("raised", type(value).__name__, str(value))
    if isinstance(value, np.ndarray) and value.dtype == object:  # names: their bytes would be pointers
        return ("objects", value.shape, tuple(digest(v) for v in value.flat))
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, np.ascontiguousarray(value).tobytes())
    if isinstance(value, (float, np.floating)):
        return ("float", float(value).hex() if not math.isnan(value) else "nan")
    if isinstance(value, enum.Enum):
        return ("enum", type(value).__name__, value.name)
    if isinstance(value, (bool, int, str, bytes, type(None), np.integer, np.bool_)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, dict):  # less a history record's timing
        return ("dict", tuple((repr(k), digest(v)) for k, v in value.items() if k != "seconds"))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(digest(v) for v in value))
    if is_dataclass(value):
        return (type(value).__name__, tuple(digest(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, gm.LearnableMultiModal):
        return model_state(value)
    if hasattr(value, "__dict__"):  # CrossModalBinding and other small records
        return (type(value).__name__, digest(vars(value)))
    raise TypeError(f"no digest for {type(value).__name__}")


def model_state(model: gm.LearnableMultiModal, with_buffer: bool = True) -> Any:
    """Everything a call may change: weights, Adam state, gradients,
    standardisation, progress, history, experiences."""
    state = [
        model.state_dict(),
        model.optimizer_state(),
        model.gradients() if model.has_gradients() else None,
        [model.normalization(m) for m in range(7)],
        model.epochs_trained,
        model.history,
    ]
    if with_buffer:
        state.append(model.experience.state())
    return digest(state)


# --------------------------------------------------------------- operations
@dataclass(frozen=True)
class Op:
    call: Callable[[gm.LearnableMultiModal, Any], Any]
    writes: bool  # changes the model or its buffer
    reads_model: bool = True  # sees the model's weights (False: the buffer alone)
    between_steps: bool = False  # fit: readers get in between its steps


def _failing_metric(model: gm.LearnableMultiModal) -> float:
    raise ValueError("validation metric failed")  # after an epoch's steps: the fit is undone


def _save_and_load(model: gm.LearnableMultiModal, tmp: Any) -> Any:
    path = tmp / f"{uuid.uuid4().hex}.gm"
    model.save(path)
    return gm.LearnableMultiModal.load(path)


def _buffer_saved(model: gm.LearnableMultiModal, tmp: Any) -> Any:
    path = tmp / f"{uuid.uuid4().hex}.buf"
    model.experience.save(path)
    return gm.ExperienceBuffer.from_file(path).state()


WRITERS: Dict[str, Op] = {
    "train_step": Op(lambda m, t: m.train_step(BATCH), True),
    "train_step_refused": Op(lambda m, t: m.train_step(BATCH, lr=float("nan")), True),
    "backward": Op(lambda m, t: m.backward(BATCH), True),
    "step": Op(lambda m, t: m.step(), True),
    "zero_grad": Op(lambda m, t: m.zero_grad(), True),
    "apply_gradients": Op(lambda m, t: m.apply_gradients(OTHER_WEIGHTS), True),
    "load_state_dict": Op(lambda m, t: m.load_state_dict(OTHER_WEIGHTS), True),
    "load_state_dict_refused": Op(
        lambda m, t: m.load_state_dict({**OTHER_WEIGHTS, "fusion.0.bias": np.full(8, np.nan, np.float32)}), True),
    "set_normalization": Op(lambda m, t: m.set_normalization("visual", np.full(10, 0.5), np.full(10, 3.0)), True),
    "fit_normalization": Op(lambda m, t: m.fit_normalization(DATA), True),
    "load_optimizer_state": Op(lambda m, t: m.load_optimizer_state(OTHER_OPTIMIZER), True),
    "load_optimizer_state_refused": Op(lambda m, t: m.load_optimizer_state(NEGATIVE_MOMENT), True),
    "set_normalization_refused": Op(lambda m, t: m.set_normalization("visual", np.zeros(10), np.full(10, -1.0)), True),
    "reset_optimizer": Op(lambda m, t: m.reset_optimizer(), True),
    "fit": Op(lambda m, t: m.fit(DATA, epochs=1, batch_size=16, progress=False), True, between_steps=True),
    "fit_failing_midway": Op(
        lambda m, t: m.fit(DATA, epochs=2, batch_size=16, progress=False, validation=PROBE,
                           metrics={"boom": _failing_metric}), True, between_steps=True),
    "record_batch": Op(lambda m, t: m.record_batch(PROBE, rewards=0.5, event_ids=[4, 5, 6]), True),
    "record_batch_refused": Op(lambda m, t: m.record_batch(PROBE, rewards=np.zeros(2)), True),
    "record_fusion": Op(lambda m, t: m.record_fusion(EVENT, 0.25), True),
    "record_fusion_refused": Op(lambda m, t: m.record_fusion(EVENT, float("inf")), True),
    "clear_experience": Op(lambda m, t: m.clear_experience(), True, reads_model=False),
    "buffer.append": Op(lambda m, t: m.experience.append(EXPERIENCE), True, reads_model=False),
    "buffer.extend": Op(lambda m, t: m.experience.extend(
        embeddings=EMBEDDINGS, mask=np.ones((3, 7), bool), fused=EMBEDDINGS[:, 0],
        pair_strengths=np.zeros((3, 7, 7), np.float32), rewards=np.ones(3)), True, reads_model=False),
    "buffer.sample": Op(lambda m, t: m.experience.sample(2), True, reads_model=False),  # advances its generator
    "buffer.update_priorities": Op(lambda m, t: m.experience.update_priorities([0, 1], [2.0, 3.0]), True,
                                   reads_model=False),
    "buffer.update_priorities_refused": Op(lambda m, t: m.experience.update_priorities([0, 99], [2.0, 3.0]), True,
                                           reads_model=False),
}

READERS: Dict[str, Op] = {
    "encode": Op(lambda m, t: m.encode(PROBE), False),
    "encode_and_fuse": Op(lambda m, t: m.encode_and_fuse(PROBE), False),
    "hidden_features": Op(lambda m, t: m.hidden_features(PROBE), False),
    "fuse": Op(lambda m, t: m.fuse(EMBEDDINGS), False),
    "bind": Op(lambda m, t: m.bind(EMBEDDINGS[:, 0], EMBEDDINGS[:, 1]), False),
    "pair_strengths": Op(lambda m, t: m.pair_strengths(EMBEDDINGS), False),
    "attention_weights": Op(lambda m, t: m.attention_weights(EMBEDDINGS[:, 0], EMBEDDINGS, per_head=True), False),
    "attend": Op(lambda m, t: m.attend(EMBEDDINGS[:, 0], EMBEDDINGS), False),
    "encode_event": Op(lambda m, t: m.encode_event(EVENT), False),
    "fuse_event": Op(lambda m, t: m.fuse_event(EVENT), False),
    "compute_bindings": Op(lambda m, t: m.compute_bindings(EVENT), False),
    "get_modality_attention": Op(lambda m, t: m.get_modality_attention(QUERY, EVENT), False),
    "attend_to_event": Op(lambda m, t: m.attend_to_event(QUERY, EVENT), False),
    "losses": Op(lambda m, t: m.losses(BATCH), False),
    "compute_loss": Op(lambda m, t: m.compute_loss(), False),
    "state_dict": Op(lambda m, t: m.state_dict(), False),
    "optimizer_state": Op(lambda m, t: m.optimizer_state(), False),
    # one call each: two calls are two reads, and a writer may land between them
    "gradients": Op(lambda m, t: m.gradients(), False),
    "has_gradients": Op(lambda m, t: m.has_gradients(), False),
    "normalization": Op(lambda m, t: m.normalization("visual"), False),
    "save+load": Op(_save_and_load, False),
    "pickle": Op(lambda m, t: pickle.loads(pickle.dumps(m)), False),
    "deepcopy": Op(lambda m, t: copy.deepcopy(m), False),
    "encoder.encode": Op(lambda m, t: m.encoder.encode("visual", PROBE["visual"]), False),
    "fusion.fuse": Op(lambda m, t: m.fusion.fuse(EMBEDDINGS), False),
    "binder.strength": Op(lambda m, t: m.binder.strength(EMBEDDINGS[:, 0], EMBEDDINGS[:, 2]), False),
    "attention.weights": Op(lambda m, t: m.attention.weights(EMBEDDINGS[:, 0], EMBEDDINGS), False),
    "encoder.parameters": Op(lambda m, t: m.encoder.parameters(), False),
    "num_experiences": Op(lambda m, t: m.num_experiences(), False, reads_model=False),
    "buffer.state": Op(lambda m, t: m.experience.state(), False, reads_model=False),
    "buffer.batch": Op(lambda m, t: m.experience.batch(), False, reads_model=False),
    "buffer.save+load": Op(_buffer_saved, False, reads_model=False),
}



# ------------------------------------------------------------------- running
def _call(op: Op, model: gm.LearnableMultiModal, tmp: Any) -> Any:
    try:
        result = op.call(model, tmp)
    except Exception as exc:  # a refusal: compared with what the same call raises alone
        return digest(exc)
    return digest(result)


def _serial(first: str, second: str, tmp: Any, with_buffer: bool) -> Tuple[Any, Any, Any]:
    model = fresh()
    a = _call(WRITERS[first], model, tmp)
    b = _call(WRITERS[second], model, tmp)
    return a, b, model_state(model, with_buffer)


def run_together(*calls: Callable[[], Any], what: str) -> List[Any]:
    """Runs the calls in threads released together by a barrier; a thread
    still running after ``JOIN_TIMEOUT_S`` fails the test (a deadlock)."""
    results: List[Any] = [None] * len(calls)
    errors: List[BaseException] = []
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        try:
            start.wait(JOIN_TIMEOUT_S)
            results[i] = calls[i]()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT_S)
        if t.is_alive():
            pytest.fail(f"{what}: a thread was still running after {JOIN_TIMEOUT_S} s (deadlock)")
    if errors:
        raise errors[0]
    return results


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder for every pair's saves (a file per save): a tmp_path per test costs more than most pairs."""
    return tmp_path_factory.mktemp("matrix")


@pytest.fixture
def interleaving():
    """Python switches threads every microsecond (not every 5 ms): the two
    calls interleave inside their Python parts, not only at lock waits."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


CHANGE_PAIRS = list(itertools.combinations_with_replacement(WRITERS, 2))
READ_PAIRS = list(itertools.product(WRITERS, READERS))

#: CI runs one pair in this many on the other Pythons (3.9 and 3.13, which
#: leave ``main_only`` out: .ci/python-versions.sh) and every pair on the main
#: one: the pairs differ in which calls meet, and the locks those calls take
#: are the same code on every Python, while how threads switch and interleave
#: is the interpreter's, which the slice still puts every operation through.
OTHER_PYTHONS_EVERY = 5


def _cases(pairs: List[Tuple[str, str]], firsts: Dict[str, Any], seconds: Dict[str, Any]) -> List[Any]:
    """``pairs`` as parametrize cases, each named ``first|second``. Those
    whose two operations' positions in their tables add up to a multiple of
    :data:`OTHER_PYTHONS_EVERY` run on every Python (a diagonal of the grid:
    each operation in at least five pairs of it, with partners all over the
    other table); the others are ``main_only``. Deterministic: the tables'
    order alone decides."""
    first_at, second_at = {name: i for i, name in enumerate(firsts)}, {name: i for i, name in enumerate(seconds)}
    return [pytest.param(a, b, id=f"{a}|{b}",
                         marks=() if (first_at[a] + second_at[b]) % OTHER_PYTHONS_EVERY == 0 else pytest.mark.main_only)
            for a, b in pairs]


def _differs(got: Tuple[Any, ...], orders: List[Tuple[Any, ...]]) -> str:
    """Which parts of ``got`` match no serial order (for the failure message)."""
    parts = ("first result", "second result", "final state")
    return ", ".join(p for i, p in enumerate(parts) if not any(got[i] == o[i] for o in orders))


@pytest.mark.parametrize("first, second", _cases(CHANGE_PAIRS, WRITERS, WRITERS))
def test_two_changes_at_once_equal_one_of_their_serial_orders(first: str, second: str, scratch, interleaving) -> None:
    one, two = WRITERS[first], WRITERS[second]
    # fit lets readers in between its steps: record_* stores the embeddings of some step of it
    loose = (one.between_steps and two.reads_model) or (two.between_steps and one.reads_model)
    ab = _serial(first, second, scratch, with_buffer=not loose)
    ba_second, ba_first, ba_state = _serial(second, first, scratch, with_buffer=not loose)
    orders = [ab, (ba_first, ba_second, ba_state)]
    for _ in range(TRIES):
        model = fresh()
        got_one, got_two = run_together(lambda: _call(one, model, scratch), lambda: _call(two, model, scratch),
                                         what=f"{first} | {second}")
        got = (got_one, got_two, model_state(model, with_buffer=not loose))
        if loose:  # the model's final state, and how the call that is not fit ended
            # (record_fusion returns the fused embedding of whichever step of fit it ran after)
            ended = lambda r: r if isinstance(r, tuple) and r[:1] == ("raised",) else "returned"  # noqa: E731
            other = [i for i, op in enumerate((one, two)) if not op.between_steps]
            assert any(got[2] == o[2] and all(ended(got[i]) == ended(o[i]) for i in other) for o in orders), (
                f"{first} | {second}: neither serial order gives the {_differs(got, orders)}")
            continue
        assert got in orders, f"{first} | {second}: neither serial order gives the {_differs(got, orders)}"


@functools.lru_cache(maxsize=None)
def _changed_alone(writer: str, tmp: Any) -> Tuple[Any, bytes, Any]:
    """``writer``'s result alone, the model it leaves (pickled) and its state."""
    model = fresh()
    result = _call(WRITERS[writer], model, tmp)
    return result, pickle.dumps(model), model_state(model)


@functools.lru_cache(maxsize=None)
def _read_alone(reader: str, after: Optional[str], tmp: Any) -> Any:
    """``reader``'s result on the model as it is at the start, or after the writer ``after``."""
    model = fresh() if after is None else pickle.loads(_changed_alone(after, tmp)[1])
    return _call(READERS[reader], model, tmp)


#: The reader reads until the writer is done (at most this many times): each read sees the state before or after it.
MAX_READS = 50


@pytest.mark.parametrize("writer, reader", _cases(READ_PAIRS, WRITERS, READERS))
def test_reads_during_a_change_see_the_state_before_or_after_it(writer: str, reader: str, scratch,
                                                                  interleaving) -> None:
    change, read = WRITERS[writer], READERS[reader]
    change_alone, _, state_after = _changed_alone(writer, scratch)
    read_before, read_after = _read_alone(reader, None, scratch), _read_alone(reader, writer, scratch)
    for _ in range(TRIES):
        model = fresh()
        changed = threading.Event()

        def change_once() -> Any:
            try:
                return _call(change, model, scratch)
            finally:
                changed.set()

        def read_while_changing() -> List[Any]:
            reads = [_call(read, model, scratch)]
            while not changed.is_set() and len(reads) < MAX_READS:
                reads.append(_call(read, model, scratch))
            return reads + [_call(read, model, scratch)]  # and once after

        got_change, reads = run_together(change_once, read_while_changing, what=f"{writer} | {reader}")
        assert got_change == change_alone, f"{writer} | {reader}: the writer's result is not its result alone"
        assert model_state(model) == state_after, f"{writer} | {reader}: the final state is not the writer's alone"
        if change.between_steps:  # readers see the model between fit's steps: some step of it
            continue
        # before and after may be equal (zero_grad before encode): a read then counts as before
        seen = [0 if r == read_before else 1 if r == read_after else None for r in reads]
        assert None not in seen, f"{writer} | {reader}: a read saw neither the state before nor after (None): {seen}"
        assert seen == sorted(seen), f"{writer} | {reader}: a read saw the state before (0) after one saw it after (1): {seen}"


# ----------------------------------------------------- the scikit-learn estimator
VIEWS = [DATA["visual"].astype(np.float64), DATA["auditory"].astype(np.float64)]
OTHER_VIEWS = [v[::-1] * 2.0 for v in VIEWS]
#: Finite in float64, beyond float32: refused after fit has built its new model.
OVERFLOWING = [VIEWS[0] * 1e39, VIEWS[1]]


def small_embedder() -> MultimodalEmbedder:
    return MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=1, encoder_hidden=(8,), shared_head=(), encoder_output_dim=None,
                              epochs=1, batch_size=16, random_state=0, validation_fraction=0.0, patience=0)


FITTED_EMBEDDER = pickle.dumps(small_embedder().fit(VIEWS))


def embedder_state(estimator: MultimodalEmbedder) -> Any:
    fitted = {k: v for k, v in vars(estimator).items() if k.endswith("_") and k != "model_"}
    model = getattr(estimator, "model_", None)
    return digest([estimator.get_params(), fitted, None if model is None else model_state(model)])


EMBEDDER_WRITERS: Dict[str, Callable[[MultimodalEmbedder], Any]] = {
    "fit": lambda e: e.fit(OTHER_VIEWS) and None,
    "fit_failing": lambda e: e.fit(OVERFLOWING),
    "fit_transform": lambda e: e.fit_transform(OTHER_VIEWS),
    "set_params": lambda e: e.set_params(epochs=2) and None,
}
EMBEDDER_READERS: Dict[str, Callable[[MultimodalEmbedder], Any]] = {
    "transform": lambda e: e.transform(VIEWS),
    "get_feature_names_out": lambda e: e.get_feature_names_out(),
    "pickle": lambda e: embedder_state(pickle.loads(pickle.dumps(e))),
    "deepcopy": lambda e: embedder_state(copy.deepcopy(e)),
}
EMBEDDER_OPS = {**EMBEDDER_WRITERS, **EMBEDDER_READERS}
EMBEDDER_PAIRS = [*itertools.combinations_with_replacement(EMBEDDER_WRITERS, 2),
                  *itertools.product(EMBEDDER_WRITERS, EMBEDDER_READERS)]


def _embedder_call(name: str, estimator: MultimodalEmbedder) -> Any:
    try:
        result = EMBEDDER_OPS[name](estimator)
    except Exception as exc:
        return digest(exc)
    return digest(result)


def _embedder_serial(first: str, second: str) -> Tuple[Any, Any, Any]:
    estimator = pickle.loads(FITTED_EMBEDDER)
    a = _embedder_call(first, estimator)
    b = _embedder_call(second, estimator)
    return a, b, embedder_state(estimator)


@pytest.mark.parametrize("first, second", EMBEDDER_PAIRS, ids=[f"{a}|{b}" for a, b in EMBEDDER_PAIRS])
def test_two_estimator_calls_at_once_equal_one_of_their_serial_orders(first: str, second: str, interleaving) -> None:
    """A transform during a refit saw the new, untrained model_ (fit sets its
    attributes one by one), and a fit that failed while another succeeded
    put back the attributes of before both."""
    ab = _embedder_serial(first, second)
    ba_second, ba_first, ba_state = _embedder_serial(second, first)
    serial_orders = [ab, (ba_first, ba_second, ba_state)]
    for _ in range(TRIES):
        estimator = pickle.loads(FITTED_EMBEDDER)
        got_one, got_two = run_together(lambda: _embedder_call(first, estimator),
                                         lambda: _embedder_call(second, estimator), what=f"{first} | {second}")
        got = (got_one, got_two, embedder_state(estimator))
        assert got in serial_orders, (
            f"{first} | {second}: results or final state equal neither serial order "
            f"(first result {'ok' if any(got[0] == o[0] for o in serial_orders) else 'differs'}, "
            f"second {'ok' if any(got[1] == o[1] for o in serial_orders) else 'differs'}, "
            f"state {'ok' if any(got[2] == o[2] for o in serial_orders) else 'differs'})"
        )
