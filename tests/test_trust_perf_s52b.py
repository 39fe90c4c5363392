"""Speed of ``fit``'s own bookkeeping on small data (``uci.fit_views`` runs a
one-epoch ``fit`` per fold and epoch), with every result bit and every check
of a user's input kept. No test times anything; each pins what made the code
slow, or that the faster code gives what the slower one gave:

1. the weight average is compared with the model's weights (at every
   averaged ``fit``'s start) in one read and one flat comparison with its
   float32 form, made once; it read and compared a tensor at a time, a
   float32 copy of each average tensor made for each comparison;
2. the average takes in an epoch as one flat float64 array, with the same
   operations in place (no temporaries); it was a dozen numpy calls a tensor;
3. weights and Adam state that ``fit`` itself read from the model (its undo
   copy, the best epoch's, the average's trained weights) go back without
   being split into tensors by name and checked again in Python (the core
   still checks every tensor before it writes any); a user's tensors, or a
   file's, are checked as before;
4. a one-epoch ``fit`` copies Adam's moments once (its undo copy, whose
   counts the step-count check reads, and which is the first epoch's undo
   too), where it copied them three times;

and of ``cross_view_retrieval`` with ``metric="euclidean"``, 2.6 times
dc1fd19's time at 300 rows of 64 columns once the heap's top went back to
the system after each call (every temporary's pages faulted in again):

5. the search makes no temporary of the data's size besides the product's
   operands and its scores: the rows were copied to float64 when they were
   float64 already, their magnitudes taken into a copy to find the largest,
   and the block's query rows copied back out of the product's left operand
   for the few rows with near ties. Same rows found.
"""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.averaging import WeightAverage, model_weights
from test_fit import small_model, synthetic
from test_trust_perf_s52 import _CountingCore

OPTIONS = dict(batch_size=64, progress=False)


def _counting(model) -> _CountingCore:
    model._core = _CountingCore(model._core)
    return model._core


def _uncounted(model) -> None:
    model._core = model._core._core


def _weights(model) -> dict:
    """The state dict's parameters (the average's tensors), without the inputs' standardisation."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("normalization.")}


def _state(model) -> tuple:
    """Weights, Adam state, average and record, as bytes."""
    opt = model.optimizer_state()
    average = model._weight_average
    return (
        {k: v.tobytes() for k, v in model.state_dict().items()},
        opt["step"], opt["rng_counter"],
        {f"{p}/{k}": v.tobytes() for p in ("exp_avg", "exp_avg_sq") for k, v in opt[p].items()},
        None if average is None else (average.decay, average.count,
                                      {k: v.tobytes() for k, v in average.mean.items()},
                                      None if average.trained is None else {k: v.tobytes() for k, v in average.trained.items()}),
        model.epochs_trained, [{k: v for k, v in r.items() if k != "seconds"} for r in model.history],
    )


def test_an_averaged_fit_reads_the_weights_whole_and_copies_adams_state_once() -> None:
    """The fit that continues an average reads no tensor by name (it read
    every one to compare it with the average), and a one-epoch fit copies
    Adam's state once (it copied it for the step-count check, for the undo,
    and for the first epoch's undo)."""
    data = synthetic(120)
    model = small_model()
    model.fit(data, epochs=2, ema_decay=0.5, **OPTIONS)
    assert model.weight_average is not None
    core = _counting(model)
    model.fit(data, epochs=1, ema_decay=0.5, **OPTIONS)
    _uncounted(model)
    assert core.calls.get("get_param", 0) == 0, core.calls
    assert core.calls.get("optimizer_state", 0) == 1, core.calls
    assert model.weight_average.count == 3


def test_the_flat_average_is_the_per_tensor_average_bit_for_bit() -> None:
    """``updated`` of a model's weights read whole gives the bits of
    ``updated`` of its ``state_dict()`` (and of the definition), over
    several epochs, across a pickle (which drops the flat form) and for an
    average whose tensors came in another order."""
    data = synthetic(120)
    model = small_model()
    flat = per_tensor = WeightAverage.start(0.9)
    by_definition = None
    for t in range(4):
        model.fit(data, epochs=1, **OPTIONS)
        flat = flat.updated(model_weights(model))
        per_tensor = per_tensor.updated(dict(reversed(list(_weights(model).items()))))
        w = {k: v.astype(np.float64) for k, v in _weights(model).items()}
        d = 0.0 if t == 0 else min(0.9, (1 + t) / (10 + t))
        by_definition = w if by_definition is None else {k: d * by_definition[k] + (1 - d) * w[k] for k in w}
        if t == 1:
            flat = pickle.loads(pickle.dumps(flat))
        for k, v in by_definition.items():
            assert flat.mean[k].tobytes() == per_tensor.mean[k].tobytes() == v.tobytes(), (t, k)
    assert flat.count == per_tensor.count == 4


def test_the_average_held_is_told_exactly() -> None:
    """``held_by`` (one flat comparison) agrees with ``holds`` of the
    ``state_dict()`` (a tensor at a time): for the average as applied, after
    one value of one tensor changed by one float32 step, with -0.0 for 0.0
    (equal, as ``np.array_equal`` has it), and for a checkpoint's average,
    whose tensors the file holds in its own order."""
    data = synthetic(120)
    model = small_model()
    model.fit(data, epochs=2, ema_decay=0.5, **OPTIONS)
    average = model._weight_average
    assert average.held_by(model) and average.holds(_weights(model))
    state = _weights(model)
    name = list(state)[len(state) // 2]
    nudged = {k: v.copy() for k, v in state.items()}
    nudged[name].reshape(-1)[0] = np.nextafter(nudged[name].reshape(-1)[0], np.float32(np.inf))
    other = pickle.loads(pickle.dumps(model))
    other.load_state_dict(nudged, strict=False)  # the weights alone: the standardisation stays
    assert not average.held_by(other) and not average.holds(_weights(other))
    assert other.weight_average is None  # dropped by the load, as before
    zero_mean = {k: np.zeros_like(v) for k, v in average.mean.items()}
    signed = WeightAverage(decay=0.5, count=1, mean=zero_mean, trained=dict(state))
    zeros = pickle.loads(pickle.dumps(model))
    zeros.load_state_dict({k: np.full_like(v, -0.0) for k, v in state.items()}, strict=False)
    assert signed.held_by(zeros) and signed.holds(_weights(zeros))
    reordered = WeightAverage(decay=0.5, count=2, mean=dict(reversed(list(average.mean.items()))),
                              trained=dict(average.trained))
    assert reordered.held_by(model)


def test_a_pickled_average_carries_no_flat_copy_and_resumes_exactly(tmp_path) -> None:
    """The flat form is a cache: a pickle of the average holds its tensors
    once, and a model pickled or saved after an averaged fit resumes as the
    model itself does."""
    data = synthetic(120)
    model = small_model()
    model.fit(data, epochs=2, ema_decay=0.5, **OPTIONS)
    average = model._weight_average
    average.held_by(model)  # makes the flat form
    assert average._flat is not None
    assert "_flat" not in average.__getstate__()
    assert len(pickle.dumps(average)) < 1.25 * sum(v.nbytes for v in (*average.mean.values(), *average.trained.values()))
    model.save(tmp_path / "m.gmm")
    copies = [pickle.loads(pickle.dumps(model)), gm.LearnableMultiModal.load(tmp_path / "m.gmm")]
    model.fit(data, epochs=2, ema_decay=0.5, **OPTIONS)
    for copy in copies:
        copy.fit(data, epochs=2, ema_decay=0.5, **OPTIONS)
        assert _state(copy)[:5] == _state(model)[:5]


@pytest.mark.parametrize("fail_at_epoch", [1, 2])
def test_a_failed_fit_is_undone_bit_for_bit(fail_at_epoch) -> None:
    """A fit that fails (a metric raising, in its first epoch or a later
    one) leaves weights, Adam state, average and record as they were,
    from its undo copy put back as read."""
    data = synthetic(120)
    model = small_model()
    model.fit(data, epochs=2, ema_decay=0.5, standardize=True, **OPTIONS)
    before = _state(model)

    def failing(m):
        if m.epochs_trained == before[5] + fail_at_epoch:
            raise RuntimeError("metric failed")
        return 0.0

    with pytest.raises(RuntimeError, match="metric failed"):
        model.fit(data, epochs=3, ema_decay=0.5, metrics={"x": failing}, **OPTIONS)
    assert _state(model) == before
    assert model.weight_average is not None and model.weight_average.count == 2


def test_the_best_epoch_comes_back_bit_for_bit() -> None:
    """Early stopping rolls back to the best epoch's weights and Adam state
    (kept as the core gave them): the same as a fit that stopped there."""
    data, held = synthetic(120), synthetic(40, seed=1)
    opts = dict(validation=held, ema_decay=0.5, **OPTIONS)
    model = small_model()
    history = model.fit(data, epochs=12, early_stopping=2, lr=0.05, **opts)
    assert history.stopped_early and history.best_epoch < model.epochs_trained  # rolled back
    reference = small_model()
    reference.fit(data, epochs=history.best_epoch, lr=0.05, **opts)
    assert _state(model)[:5] == _state(reference)[:5]


def test_a_users_tensors_are_still_checked() -> None:
    """The unchecked way back is fit's own: ``load_state_dict`` and
    ``load_optimizer_state`` still refuse NaN, negative second moments and
    wrong shapes, naming the entry, and change nothing."""
    model = small_model()
    model.fit(synthetic(120), epochs=1, **OPTIONS)
    before = _state(model)
    state = model.state_dict()
    name = next(iter(state))
    bad = {k: v.copy() for k, v in state.items()}
    bad[name].reshape(-1)[0] = np.nan
    with pytest.raises(gm.NonFiniteError, match=rf"state_dict\['{name}'\]: contains NaN"):
        model.load_state_dict(bad)
    with pytest.raises(gm.ShapeError, match=rf"state_dict\['{name}'\]"):
        model.load_state_dict({**state, name: state[name][:1]})
    opt = model.optimizer_state()
    negative = {k: v.copy() for k, v in opt["exp_avg_sq"].items()}
    negative[name].reshape(-1)[0] = -1.0
    with pytest.raises(gm.InvalidValueError, match=rf"state\['exp_avg_sq'\]\['{name}'\]: is negative"):
        model.load_optimizer_state({**opt, "exp_avg_sq": negative})
    assert _state(model) == before


def test_a_euclidean_search_makes_no_temporary_of_the_datas_size() -> None:
    """At its peak the search holds the product's operands ``[-2 q, 1]`` and
    ``[g, |g|^2]`` and the block's scores, and next to nothing else (a copy
    of the block's query rows was half as much again)."""
    n, d = 300, 64
    rng = np.random.default_rng(0)
    q = rng.normal(size=(n, d))
    g, y = q + 0.3 * rng.normal(size=(n, d)), np.arange(n) % 10
    expected = metrics.cross_view_retrieval(q, g, y, metric="euclidean")
    tracemalloc.start()
    try:
        held = tracemalloc.get_traced_memory()[0]
        assert metrics.cross_view_retrieval(q, g, y, metric="euclidean") == expected
        peak = tracemalloc.get_traced_memory()[1] - held
    finally:
        tracemalloc.stop()
    operands_and_scores = (2 * n * (d + 1) + n * n) * 8
    assert peak < operands_and_scores + 0.5 * n * d * 8, (peak, operands_and_scores)


@pytest.mark.parametrize("kind", ["plain", "near ties", "shared offset", "beyond 2**500", "integers beyond 2**53"])
def test_a_euclidean_search_only_reads_the_rows_it_no_longer_copies(kind) -> None:
    """float64 rows in range are no longer copied: read-only ones are
    searched as writable ones are (nothing is written into them, on every
    path: near ties, centring, scaling, exact integer columns), unchanged,
    with the rows found of a writable copy."""
    rng = np.random.default_rng(3)
    q = rng.normal(size=(60, 5))
    g = q + 0.3 * rng.normal(size=(60, 5))
    if kind == "near ties":
        q, g = np.round(q), np.repeat(np.round(g[:20]), 3, axis=0)
    elif kind == "shared offset":
        q, g = q + 1e7, g + 1e7
    elif kind == "beyond 2**500":
        q, g = q * 1e300, g * 1e300
    elif kind == "integers beyond 2**53":
        q, g = (q * 1e3).astype(np.int64) + 2**60, (g * 1e3).astype(np.int64) + 2**60
    y = np.arange(60) % 4
    expected = metrics.cross_view_retrieval(q.copy(), g.copy(), y, metric="euclidean", chunk_size=7)
    frozen_q, frozen_g = q.copy(), g.copy()
    frozen_q.flags.writeable = frozen_g.flags.writeable = False
    assert metrics.cross_view_retrieval(frozen_q, frozen_g, y, metric="euclidean", chunk_size=7) == expected
    assert frozen_q.tobytes() == q.tobytes() and frozen_g.tobytes() == g.tobytes()
