"""Speed of the weight restores that ``fit`` makes (the fold and best-epoch
swaps, the weight average, its undo), undone without dropping a check. No
test times anything; each pins what made the code slow, or that the faster
code gives what the slower one gave:

1. the core checked and copied a tensor by walking a dynamic-rank view
   (~5 ns a value: a quarter of ``uci.fit_views`` on small data); a
   C-contiguous tensor is now checked and copied as a slice, and a strided
   one still in its logical order;
2. all the tensors of a load go into the core in one call
   (``_core.Model.set_params``), all or nothing: every name, shape and
   value is checked before the first is written, and a bad entry raises
   what ``set_param`` raises for it (a wrong dtype now names the entry);
3. ``state_dict`` reads every tensor in one call (``get_params``, flat,
   split into the tensors), where a call per tensor took twice the time;

and of ``cross_view_retrieval`` on small galleries (13-50 % slower than
before its exact-tie rule, lists of rows 10-20 % slower than before the
masked-item check), with both rules kept:

4. each block's best, its column and its runner-up come from one pass
   (``_core.best_two``), where numpy's argmax and a max with the best
   masked took two (the second slower than the first);
5. a list or tuple of rows of Python floats (or ints within int64) is read
   in one pass at C speed (``_core.plain_items``): numpy's reading took
   ~28 ns a value, and the masked-item check had nothing to find in it;
6. the rows' norms skip ``np.linalg.norm``'s checks and copy and, unless a
   norm is out of range, the pass that tells zero rows from tiny ones;
   the scores are counted, not averaged by ``np.mean``. Same values;
7. every block's scores go into one buffer: a block allocated anew each
   time was handed back to the system and its pages faulted in again (2.5
   times dc1fd19's time at 1,000 rows of 64 columns, since blocks of 4 MiB).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import two_view_data, two_view_model
from grapheme_multimodal import _core, metrics
from grapheme_multimodal._validation import as_real_array
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError, ShapeError


def _bits(core) -> dict:
    """Every tensor of ``core``, as the bits of its float32 values."""
    return {name: core.get_param(name).view(np.uint32).copy() for name, _ in core.param_specs()}


def _awkward_tensors(core) -> list:
    """``(name, values)`` for every tensor: random values with -0.0, the
    smallest subnormal and values near float32's largest among them, and
    every third tensor of two or more dimensions a strided view (transposed
    twice, or reversed), as the core may be handed."""
    rng = np.random.default_rng(7)
    out = []
    for i, (name, shape) in enumerate(core.param_specs()):
        values = rng.normal(size=shape).astype(np.float32)
        flat = values.reshape(-1)
        flat[0] = -0.0
        if flat.size > 2:
            flat[1], flat[2] = np.float32(1e-45), np.float32(-3.4e38)
        if i % 3 == 0 and values.ndim >= 2:
            values = np.asfortranarray(values) if i % 2 else values[::-1][::-1]
            if i % 2:
                assert not values.flags.c_contiguous
        out.append((name, values))
    return out


# ------------------------------------------------------------ 1. and 2. the batched write
def test_one_batched_write_equals_a_write_per_tensor_bit_for_bit() -> None:
    batched, single = two_view_model(), two_view_model()
    tensors = _awkward_tensors(batched._core)
    batched._core.set_params(tensors)
    for name, values in tensors:
        single._core.set_param(name, values)
    got, expected = _bits(batched._core), _bits(single._core)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
        np.testing.assert_array_equal(got[name], dict(tensors)[name].view(np.uint32).reshape(got[name].shape), err_msg=name)


def test_a_strided_tensor_is_read_in_its_logical_order_and_a_nan_in_it_named_there() -> None:
    model = two_view_model()
    core = model._core
    name, shape = next((n, s) for n, s in core.param_specs() if len(s) == 2 and s[0] != s[1])
    values = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    core.set_param(name, np.asfortranarray(values))
    np.testing.assert_array_equal(core.get_param(name), values)
    core.set_params([(name, (values.T + 1).T)])  # a transposed view of [s1, s0]
    np.testing.assert_array_equal(core.get_param(name), values + 1)
    bad = np.asfortranarray(values)
    bad[1, 0] = np.nan  # logical (C-order) flat index shape[1]; in memory the second value
    for write in (lambda: core.set_param(name, bad), lambda: core.set_params([(name, bad)])):
        with pytest.raises(NonFiniteError, match=f"flat index {shape[1]};"):
            write()
    np.testing.assert_array_equal(core.get_param(name), values + 1)


def _bad_entry(kind: str, name: str, values: np.ndarray):
    """``(name, values)`` made bad in the way ``kind`` says."""
    if kind == "unknown name":
        return "encoder.nowhere.weight", values
    if kind == "wrong shape":
        return name, values.reshape(-1)[:-1]
    if kind == "NaN":
        bad = values.copy()
        bad.reshape(-1)[-1] = np.nan
        return name, bad
    if kind == "inf":
        bad = values.copy()
        bad.reshape(-1)[0] = -np.inf
        return name, bad
    assert kind == "wrong dtype"
    return name, values.astype(np.float64)


@pytest.mark.parametrize("kind", ["unknown name", "wrong shape", "NaN", "inf", "wrong dtype"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_bad_entry_anywhere_refuses_the_whole_batch_as_set_param_refuses_it(kind, where) -> None:
    model = two_view_model()
    core = model._core
    before = _bits(core)
    tensors = _awkward_tensors(core)
    at = {"first": 0, "middle": len(tensors) // 2, "last": len(tensors) - 1}[where]
    tensors[at] = _bad_entry(kind, *tensors[at])
    with pytest.raises(Exception) as alone:
        core.set_param(*tensors[at])
    with pytest.raises(type(alone.value)) as batched:
        core.set_params(tensors)
    if kind == "wrong dtype":
        # set_param's TypeError said "'ndarray' object is not an instance of 'ndarray'"
        assert isinstance(batched.value, TypeError)
        message = str(batched.value)
        assert f"tensors[{at}]" in message and tensors[at][0] in message and "float32" in message and "float64" in message
    else:
        assert isinstance(batched.value, {"unknown name": InvalidValueError, "wrong shape": ShapeError}.get(kind, NonFiniteError))
        assert str(batched.value) == str(alone.value) and batched.value.arg == alone.value.arg
        assert tensors[at][0] in str(batched.value)
    after = _bits(core)
    assert all(np.array_equal(after[n], before[n]) for n in before), "a refused batch wrote nothing"


@pytest.mark.parametrize(
    "tensors, message",
    [
        ({"binder.bias": np.zeros(1, np.float32)}, "tensors: expected a list of (name, float32 array) pairs, got dict"),
        (None, "tensors: expected a list of (name, float32 array) pairs, got NoneType"),
        ([("binder.bias",)], "tensors[0]: expected a (name, float32 array) pair, got tuple"),
        (["binder.bias"], "tensors[0]: expected a (name, float32 array) pair, got str"),
        ([(1, np.zeros(1, np.float32))], "tensors[0]: expected a (name, float32 array) pair, got tuple"),
        ([("binder.bias", [0.0])], 'tensors[0] ("binder.bias"): expected a float32 numpy array, got list'),
    ],
)
def test_a_batch_of_another_form_is_a_type_error_naming_the_argument(tensors, message) -> None:
    model = two_view_model()
    before = _bits(model._core)
    with pytest.raises(TypeError) as err:
        model._core.set_params(tensors)
    assert str(err.value) == message
    after = _bits(model._core)
    assert all(np.array_equal(after[n], before[n]) for n in before)


class _CountingCore:
    """The model's core, counting the calls of each method."""

    def __init__(self, core) -> None:
        self._core, self.calls = core, {}

    def __getattr__(self, name: str):
        attr = getattr(self._core, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            return attr(*args, **kwargs)

        return counted


def test_a_load_writes_every_tensor_in_one_call_and_state_dict_reads_them_in_one() -> None:
    model, other = two_view_model(), two_view_model(seed=11)
    target = other.state_dict()
    model._core = spy = _CountingCore(model._core)
    try:
        model.load_state_dict(target)
        assert spy.calls.get("set_params") == 1 and "set_param" not in spy.calls
        spy.calls.clear()
        got = model.state_dict()
        assert spy.calls.get("get_params") == 1 and "get_param" not in spy.calls
    finally:
        model._core = spy._core
    assert list(got) == [name for name, _ in model._core.param_specs()]
    for name, values in got.items():
        assert values.dtype == np.float32 and values.shape == tuple(model.parameter_shapes()[name])
        np.testing.assert_array_equal(values.view(np.uint32), model._core.get_param(name).view(np.uint32))
        np.testing.assert_array_equal(values, target[name])


def test_state_dict_is_a_copy_each_time() -> None:
    """Its tensors are views of one flat read: writing into one changes
    neither the model, nor another tensor, nor a second state_dict."""
    model = two_view_model()
    first, second = model.state_dict(), model.state_dict()
    kept = {name: values.copy() for name, values in second.items()}
    for values in first.values():
        values[...] = 5.0
    for name, values in model.state_dict().items():
        np.testing.assert_array_equal(values, kept[name])
        np.testing.assert_array_equal(second[name], kept[name])
    assert all((values == 5.0).all() for values in first.values())


def test_a_fit_with_averaging_and_stopping_is_the_same_with_one_write_per_restore(monkeypatch) -> None:
    """Every restore of a cross-validated fit with averaging (the folds'
    swaps, the best epoch, the average and its undo) goes through the one
    write, and gives what a write per tensor gave: the weights, Adam's
    state, the average and the history, bit for bit."""
    from grapheme_multimodal.model import LearnableMultiModal
    from grapheme_multimodal.stopping import fit_with_stopping

    data = two_view_data(24)  # fewer than min_validation_rows: 3-fold cross-validation chooses the epochs
    kw = dict(validation_fraction=0.1, patience=2, monitor="val_contrastive", seed=4, cv_folds=3, epochs=6,
              batch_size=8, ema_decay=0.5, progress=False)
    writes = []
    real = LearnableMultiModal._set_params

    def counted(self, staged) -> None:
        writes.append(len(staged))
        real(self, staged)

    monkeypatch.setattr(LearnableMultiModal, "_set_params", counted)
    batched = two_view_model()
    fit_with_stopping(batched, data, **kw)
    assert len(writes) > 10  # the restores this pins

    def per_tensor(self, staged) -> None:
        for name, values in staged.items():
            self._core.set_param(name, values)

    monkeypatch.setattr(LearnableMultiModal, "_set_params", per_tensor)
    single = two_view_model()
    fit_with_stopping(single, data, **kw)
    for a, b in ((batched.state_dict(), single.state_dict()),
                 (batched.optimizer_state()["exp_avg"], single.optimizer_state()["exp_avg"]),
                 (batched.weight_average.mean, single.weight_average.mean),
                 (batched.weight_average.trained, single.weight_average.trained)):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(np.asarray(a[name]).view(np.uint8), np.asarray(b[name]).view(np.uint8))
    untimed = lambda history: [{k: v for k, v in record.items() if k != "seconds"} for record in history]  # noqa: E731
    assert untimed(batched.history) == untimed(single.history) and batched.epochs_trained == single.epochs_trained


# ------------------------------------------------------------ 4. one pass for the best and the runner-up
def _two_passes(scores: np.ndarray, largest: bool):
    """What the search computed before: the first best (argmax / argmin),
    its score, and the best of the rest (the best masked)."""
    found = np.argmax(scores, axis=1) if largest else np.argmin(scores, axis=1)
    rows = np.arange(len(scores))
    best = scores[rows, found]
    rest = scores.copy()
    rest[rows, found] = -np.inf if largest else np.inf
    return found, best, rest.max(axis=1) if largest else rest.min(axis=1)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("cols", [1, 2, 7, 8, 9, 31, 32, 33, 40, 64, 100, 257])
def test_best_two_is_argmax_and_the_best_of_the_rest_in_one_pass(largest, cols) -> None:
    rng = np.random.default_rng(cols)
    for scores in (rng.normal(size=(50, cols)),
                   rng.integers(-2, 3, size=(50, cols)).astype(float),  # ties everywhere: in a lane, across lanes, in the tail
                   np.repeat(rng.normal(size=(50, 1)), cols, axis=1),  # every column the best
                   np.where(rng.random((50, cols)) < 0.5, 0.0, -0.0)):  # signed zeros tie; the first is kept as it is
        found, best, runner_up = _core.best_two(scores, largest)
        want = _two_passes(scores, largest)
        assert found.dtype == np.int64 and best.dtype == runner_up.dtype == np.float64
        np.testing.assert_array_equal(found, want[0])
        assert best.tobytes() == want[1].tobytes()
        np.testing.assert_array_equal(runner_up, want[2])


def test_best_two_reads_any_layout_and_refuses_no_columns() -> None:
    scores = np.random.default_rng(0).normal(size=(40, 70))
    for view in (np.asfortranarray(scores), scores[::-1], scores[:, ::2]):
        got = _core.best_two(view, True)
        for a, b in zip(got, _two_passes(np.ascontiguousarray(view), True)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="scores: expected at least one column"):
        _core.best_two(np.zeros((3, 0)), True)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_the_search_takes_its_best_and_runner_up_from_one_pass(monkeypatch, metric) -> None:
    """One best_two per block (no argmax and max with the best masked), and
    the tie rule holds: duplicated gallery rows go to the first copy."""
    calls = []
    best_two = _core.best_two
    monkeypatch.setattr(_core, "best_two", lambda scores, largest: calls.append((scores.shape, largest)) or best_two(scores, largest))
    rng = np.random.default_rng(4)
    q = rng.normal(size=(300, 5))
    g = np.vstack([q[:150], q[:150]])  # every gallery row twice: each query ties, and finds the first copy
    labels = np.arange(300)
    got = metrics.cross_view_retrieval(q, g, labels, metric=metric, chunk_size=128)
    assert calls == [((128, 300), metric == "cosine"), ((128, 300), metric == "cosine"), ((44, 300), metric == "cosine")]
    assert got["instance_recall_at_1"] == 150 / 300  # the first 150 queries find themselves, the others their first copy


# ------------------------------------------------------------ 5. lists of rows at C speed
ROWS = [[0.5, -0.0, 5e-324], [float("inf"), -3.25, 1.7976931348623157e308], [0.0, float("nan"), -1.0]]


@pytest.mark.parametrize("outer", [list, tuple])
@pytest.mark.parametrize("inner", [list, tuple])
def test_a_list_of_rows_of_python_floats_is_read_in_one_pass_as_numpy_reads_it(outer, inner) -> None:
    items = outer(inner(row) for row in ROWS)
    read = _core.plain_items(items)
    want = np.asarray(items)
    assert read.dtype == want.dtype == np.float64 and read.shape == want.shape == (3, 3)
    assert read.tobytes() == want.tobytes()
    assert read.flags.owndata and read.flags.writeable and read.flags.c_contiguous
    got = as_real_array(items, "x")
    assert got.dtype == np.float64 and got.tobytes() == want.tobytes()
    ints = outer(inner(row) for row in [[1, -2], [2**63 - 1, -2**63]])
    read = _core.plain_items(ints)
    assert read.dtype == np.int64 and read.tobytes() == np.asarray(ints, dtype=np.int64).tobytes()


@pytest.mark.parametrize("items", [
    [[1.0, 2.0], [3.0]],  # ragged: numpy refuses it, named
    [[1.0, 2.0], 3.0], [[1.0], [2]], [[1], [2.0]], [[1.0, True]], [[1, True]], [[]], [[], []], [[[1.0]]],
    [[1.0], np.array([2.0])], [[np.float64(1.0)]], [[1, 2**63]], [(1.0,), "a"],
])
def test_rows_of_anything_else_take_the_checks_path_as_before(items) -> None:
    assert _core.plain_items(items) is None
    try:
        want = np.asarray(items)
    except ValueError:
        with pytest.raises(InvalidValueError, match="^x: could not be read as a numeric array"):
            as_real_array(items, "x")
        return
    if want.dtype.kind in "biuf":
        got = as_real_array(items, "x")
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    else:
        with pytest.raises((TypeError, ValueError)):
            as_real_array(items, "x")


def test_a_list_of_masked_rows_is_still_refused() -> None:
    rows = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]], mask=[[False, True], [False, False]])
    with pytest.raises(InvalidValueError, match=r"^query\[0\]: a masked array with 1 masked entries"):
        metrics.cross_view_retrieval(list(rows), [[1.0, 2.0], [3.0, 4.0]], [0, 1])


def test_retrieval_from_lists_of_rows_is_retrieval_from_their_arrays() -> None:
    rng = np.random.default_rng(5)
    q, g = rng.normal(size=(2, 200, 6))
    g[50] = g[10]  # a tie
    labels = np.arange(200) % 7
    for metric in ("cosine", "euclidean"):
        want = metrics.cross_view_retrieval(q, g, labels, metric=metric)
        assert metrics.cross_view_retrieval(q.tolist(), tuple(map(tuple, g.tolist())), labels.tolist(), metric=metric) == want


# ------------------------------------------------------------ 6. the rows' norms, the counts
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unit_rows_are_those_of_np_linalg_norm(dtype) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 9)).astype(dtype)
    x[3] = 0  # a zero row stays zero
    x[7] *= np.finfo(dtype).tiny  # tiny: scaled first
    x[11] *= np.finfo(dtype).max / 4  # its squares overflow: scaled first
    unit, zero = metrics._unit_or_zero(x)
    assert list(np.flatnonzero(zero)) == [3]
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
    plain = [i for i in range(60) if i not in (3, 7, 11)]
    assert unit.dtype == dtype and unit[plain].tobytes() == (x[plain] / norms[plain]).tobytes()
    assert not unit[3].any()
    for i in (7, 11):
        scaled = x[i].astype(np.float64) / np.abs(x[i]).max()
        np.testing.assert_allclose(unit[i], scaled / np.linalg.norm(scaled), rtol=1e-6)


def test_the_scores_are_shares_of_the_rows_as_before() -> None:
    rng = np.random.default_rng(8)
    q = rng.normal(size=(7, 3))
    got = metrics.cross_view_retrieval(q, q + 0.5 * rng.normal(size=(7, 3)), [0, 1, 0, 1, 0, 1, 2])
    assert all(type(v) is float for v in got.values())
    assert got["instance_recall_at_1"] * 7 == round(got["instance_recall_at_1"] * 7)


# ------------------------------------------------------------ 7. one buffer for the blocks' scores
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_every_block_s_scores_are_written_into_one_buffer(monkeypatch, metric) -> None:
    blocks = []
    settle = metrics._settle_near_ties

    def spy(metric_, scores, *rest, **kwargs):
        blocks.append(scores)
        return settle(metric_, scores, *rest, **kwargs)

    monkeypatch.setattr(metrics, "_settle_near_ties", spy)
    rng = np.random.default_rng(9)
    q = rng.normal(size=(100, 4))
    got = metrics.cross_view_retrieval(q, q + 0.01, np.arange(100), metric=metric, chunk_size=30)
    assert [b.shape for b in blocks] == [(30, 100)] * 3 + [(10, 100)]
    assert all(np.shares_memory(blocks[0], b) for b in blocks[1:])
    assert got == metrics.cross_view_retrieval(q, q + 0.01, np.arange(100), metric=metric)  # whatever the blocks
