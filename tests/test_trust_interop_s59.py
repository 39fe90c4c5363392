"""What users pass in from the numpy / pandas / PyTorch world, a hostile
review (s59): array-likes whose own conversion fails (a PyTorch tensor that
requires grad), pandas' nullable and pyarrow-backed frames of embeddings,
event ids that are not integers, numbers kept as Python objects, and one
view given as a list of its rows."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.buffer import ExperienceBuffer
from grapheme_multimodal.evaluation import ExactCCA, binder_auc
from grapheme_multimodal.exceptions import InvalidValueError, ShapeError
from grapheme_multimodal.sklearn import MultimodalEmbedder
from test_trust_sklearn_audit import _views  # two views of one latent, 40 rows

FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0)
GRAD = "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."


class TensorThatRequiresGrad:
    """What numpy meets in a PyTorch tensor that requires grad: a shape, and
    an ``__array__`` that raises torch's RuntimeError."""

    def __init__(self, shape: tuple) -> None:
        self.shape, self.ndim = shape, len(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError(GRAD)


@pytest.fixture(scope="module")
def fitted():
    Xs = _views()
    return MultimodalEmbedder(**FAST).fit(Xs), Xs


@pytest.mark.parametrize("call", ["fit", "transform", "fit one view", "transform one view"])
def test_a_tensor_that_requires_grad_is_named_by_its_view(call, fitted) -> None:
    """Before: the estimator let the tensor's RuntimeError ("Can't call
    numpy() on Tensor that requires grad ...") escape, naming no view, where
    every call of the model names its argument. Now: an InvalidValueError
    (a ValueError) naming the view, with torch's own words kept."""
    est, Xs = fitted
    one = MultimodalEmbedder(**FAST).fit(Xs[0])
    tensor = TensorThatRequiresGrad((40, 5))
    run = {
        "fit": (lambda: MultimodalEmbedder(**FAST).fit([tensor, Xs[1]]), "Xs[0]"),
        "transform": (lambda: est.transform([Xs[0], TensorThatRequiresGrad((40, 3))]), "Xs[1]"),
        "fit one view": (lambda: MultimodalEmbedder(**FAST).fit(tensor), "Xs"),
        "transform one view": (lambda: one.transform(tensor), "Xs"),
    }
    action, name = run[call]
    with pytest.raises(InvalidValueError, match=rf"^{re.escape(name)}: could not be read as a numeric array \(.*detach") as info:
        action()
    assert info.value.arg == name
    assert est.transform(Xs).shape == (40, 8)  # the fitted estimator is as it was


def test_binder_auc_reads_nullable_and_pyarrow_frames_as_the_model_does() -> None:
    """Before: a view of embeddings kept in a pandas Float64 or pyarrow-backed
    frame (``pd.read_parquet(..., dtype_backend="pyarrow")``) was refused as
    "b: expected a real-valued numeric array, got ... dtype object": binder_auc
    read it with np.asarray (objects) for its negative pairs and named the
    bind's own argument. Now: read as model.bind reads it, the same AUC as of
    the plain arrays."""
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 8)).astype(np.float32), rng.normal(size=(20, 8)).astype(np.float32)
    want = binder_auc(model.bind, {"a": a, "b": b})
    for frame in (pd.DataFrame(b).astype("Float64"), pd.DataFrame(b).astype("float32[pyarrow]")):
        assert binder_auc(model.bind, {"a": a, "b": frame}) == want
        assert binder_auc(model.bind, {"a": frame, "b": a}) == binder_auc(model.bind, {"a": b, "b": a})


@pytest.mark.parametrize("kind", ["masked", "one-dimensional", "requires grad", "strings", "missing"])
def test_binder_auc_names_the_view_it_cannot_read(kind) -> None:
    """Before: a view binder_auc could not score was refused by the bind as
    its own argument ("a: a masked array ...", "a: expected 2-D input"),
    an argument of no call the user made; a tensor that requires grad raised
    torch's bare RuntimeError. Now: named as ``view_embeddings['b']``."""
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    a = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    masked = np.ma.masked_array(a.copy(), mask=np.zeros(a.shape, bool))
    masked[3, 2] = np.ma.masked
    bad = {
        "masked": (masked, InvalidValueError, "a masked array with 1 masked entries"),
        "one-dimensional": (a[:, 0], ShapeError, r"expected an \[N, E\] array .* got shape \(20,\)"),
        "requires grad": (TensorThatRequiresGrad((20, 8)), InvalidValueError, "could not be read as a numeric array"),
        "strings": (a.astype(str), TypeError, "expected a real-valued numeric array"),
        "missing": (pd.DataFrame(a).astype("Float64").mask(np.eye(20, 8, dtype=bool)), gm.NonFiniteError, "row 0"),
    }
    value, error, words = bad[kind]
    with pytest.raises(error, match=r"^view_embeddings\['b'\]: .*" + words):
        binder_auc(model.bind, {"a": a, "b": value})


def _record(**given) -> ExperienceBuffer:
    n = 7
    buffer = ExperienceBuffer(capacity=16)
    buffer.extend(np.zeros((n, 7, 4), np.float32), np.ones((n, 7), bool), np.zeros((n, 4)), np.zeros((n, 7, 7)),
                  np.ones(n), **given)
    return buffer


def test_an_event_id_that_is_no_integer_is_named_by_its_row() -> None:
    """Before: "event_ids: expected integers, got [0. 1. 2. 3. 4.] (float64)",
    the first five ids, all integers, where the seventh was 6.5. Now: the
    row and the value that is no integer."""
    with pytest.raises(InvalidValueError, match=r"^event_ids: expected integers, got 6\.5 at row 6 \(float64\)$"):
        _record(event_ids=[0, 1, 2, 3, 4, 5, 6.5])
    assert _record(event_ids=[0, 1, 2, 3, 4, 5, 6.0]).batch().event_ids.tolist() == list(range(7))


def test_a_missing_event_id_from_a_nullable_column_says_so() -> None:
    """Before: an ``Int64`` column of ids with pd.NA was refused as
    "expected integers, got [ 0. nan  2.  3.  4.] (float64)": a float64 NaN
    the user never gave, no row named. Now: the row, that it is a missing
    id, and the id an experience without one takes (-1)."""
    ids = pd.Series([0, None, 2, 3, 4, 5, 6], dtype="Int64")
    with pytest.raises(InvalidValueError, match=r"^event_ids: row 1 holds NaN \(a missing id.*fill missing ones with -1"):
        _record(event_ids=ids)
    assert _record(event_ids=ids.fillna(-1)).batch().event_ids.tolist() == [0, -1, 2, 3, 4, 5, 6]


def test_integers_kept_as_python_objects_are_told_to_become_int64_not_float() -> None:
    """Before: event ids in an object array (a pandas object column's
    ``.to_numpy()``) were refused with "pass np.asarray(event_ids,
    dtype=float)", a cast that rounds ids past 2**53 into one another. Now:
    integers as objects are told ``dtype=np.int64``; other numbers as
    objects keep ``dtype=float``."""
    ids = np.array([2**60 + i for i in range(7)], dtype=object)
    with pytest.raises(TypeError, match=r"^event_ids: .* of integers stored as Python objects: "
                                        r"pass np\.asarray\(event_ids, dtype=np\.int64\)$"):
        _record(event_ids=ids)
    assert _record(event_ids=np.asarray(ids, dtype=np.int64)).batch().event_ids.tolist() == [2**60 + i for i in range(7)]
    with pytest.raises(TypeError, match=r"dtype=float\)$"):
        _record(event_ids=np.arange(7.0).astype(object))


@pytest.mark.parametrize("fitted_first", [False, True])
def test_a_view_given_as_a_list_of_its_rows_says_both_readings(fitted_first, fitted) -> None:
    """Before: ``fit(list(X))`` (a view as a list of its 1-D rows) was read
    as 40 views and refused as "Xs[0]: Expected 2D array, got 1D array
    instead ... array.reshape(1, -1) if it contains a single sample", which
    makes each row a view. Now: one ShapeError naming Xs, saying how one
    view given as rows and views of one feature each go in."""
    est, Xs = fitted
    call = est.transform if fitted_first else MultimodalEmbedder(**FAST).fit
    with pytest.raises(ShapeError, match=r"^Xs: a list of 40 1-D arrays; .* np\.asarray\(Xs\), views of one feature "
                                         r"each as \[x\.reshape\(-1, 1\) for x in Xs\]$"):
        call(list(Xs[0]))
    with pytest.raises(ShapeError, match=r"^Xs: a tuple of 2 1-D arrays"):
        call((Xs[0][:, 0], Xs[1][:, 0]))
    one = MultimodalEmbedder(**FAST)
    assert np.array_equal(one.fit_transform(np.asarray(list(Xs[0]))), MultimodalEmbedder(**FAST).fit_transform(Xs[0]))


@pytest.mark.parametrize("several", [False, True])
def test_a_frame_of_sparse_columns_is_told_the_remedy_a_frame_has(several) -> None:
    """Before: a view given as a pandas frame of sparse columns
    (``pd.get_dummies(..., sparse=True)``) was refused with scikit-learn's
    "Use '.toarray()' to convert to a dense numpy array", and
    ``frame.toarray()`` raises AttributeError. Now: the view named and
    ``.sparse.to_dense()``, the remedy that works (the model's own calls
    take such a frame as its dense values)."""
    x = np.maximum(_views()[0], 0)
    frame = pd.DataFrame(x, columns=list("abcde")).astype(pd.SparseDtype(float, 0))
    name = "Xs[0]" if several else "Xs"
    with pytest.raises(TypeError, match=rf"^{re.escape(name)}: a pandas data frame of sparse columns.*"
                                        rf"pass {re.escape(name)}\.sparse\.to_dense\(\)$"):
        MultimodalEmbedder(**FAST).fit([frame, _views()[1]] if several else frame)
    dense = frame.sparse.to_dense()
    assert np.array_equal(MultimodalEmbedder(**FAST).fit_transform(dense), MultimodalEmbedder(**FAST).fit_transform(x))


def _records(x: np.ndarray) -> np.ndarray:
    """``x``'s rows as records, one field per column, as ``np.genfromtxt(..., names=True)`` reads a CSV file."""
    return np.rec.fromarrays(x.T, names=[f"c{j}" for j in range(x.shape[1])])


REMEDY = r"expected an array of numbers, one column per feature: pass numpy\.lib\.recfunctions\.structured_to_unstructured"


@pytest.mark.parametrize("call", ["encode", "knn_accuracy", "estimator", "estimator, several views"])
def test_a_structured_array_is_told_how_it_becomes_columns(call, fitted) -> None:
    """Before: a structured (record) array, as np.genfromtxt(names=True)
    reads a CSV file, was refused as "expected a real-valued numeric array,
    got array of shape (40,) and dtype [('c0', '<f8'), ...]", and by the
    estimator as check_array's "Cannot cast array data from dtype(...) to
    dtype('float64') according to the rule 'unsafe'": no word of what was
    expected. Now: the argument, its fields, and the numpy call that makes
    them columns (whose result gives what the plain array gives)."""
    from numpy.lib import recfunctions

    est, Xs = fitted
    records = _records(Xs[0])
    model = gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    labels = np.arange(40) % 2
    run = {
        "encode": (lambda x: model.encode({"visual": x}), r"inputs\['visual'\]"),
        "knn_accuracy": (lambda x: metrics.knn_accuracy(x, labels, Xs[0], labels), "train_x"),
        "estimator": (lambda x: MultimodalEmbedder(**FAST).fit_transform(x), "Xs"),
        "estimator, several views": (lambda x: est.transform([x, Xs[1]]), r"Xs\[0\]"),
    }
    action, name = run[call]
    with pytest.raises(TypeError, match=rf"^{name}: got a structured array of shape \(40,\) \(fields 'c0', 'c1', 'c2', "
                                        rf"'c3', 'c4'\); {REMEDY}\({name}\)$"):
        action(records)
    assert np.array_equal(action(recfunctions.structured_to_unstructured(records)), action(Xs[0]))


@pytest.mark.parametrize("kind", ["pyarrow decimal128", "Decimal objects"])
def test_a_frame_of_decimals_is_read_as_its_floats_not_told_to_drop_them(kind) -> None:
    """Before: a data frame of decimals (a parquet file's, read with
    ``dtype_backend="pyarrow"``, or a column of Python Decimal objects) was
    refused with "pass its numeric columns only, e.g.
    inputs['visual'].select_dtypes('number')", which leaves the decimal
    columns out: no column at all here. Then (s59) told to cast them. Now
    (s63) read as pandas' ``to_numpy(dtype=float)`` reads them, as the
    scikit-learn estimator reads them: the frame's floats."""
    import decimal

    import pyarrow as pa

    values = np.arange(12.0).reshape(4, 3) / 4
    frame = pd.DataFrame(values, columns=list("abc"))
    frame = (frame.astype(pd.ArrowDtype(pa.decimal128(12, 3))) if kind == "pyarrow decimal128"
             else frame.assign(a=[decimal.Decimal(str(v)) for v in values[:, 0]]))
    assert frame.select_dtypes("number").shape[1] < 3  # the old advice dropped the decimal columns
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    assert np.array_equal(model.encode({"visual": frame}), model.encode({"visual": values}))


def test_a_mask_frame_numbered_by_slot_in_another_order_is_refused() -> None:
    """Before: a mask frame made by ``pd.DataFrame(mask)`` (columns 0..6,
    the slots' numbers) with its columns reordered (``mask[[1, 0, 2, ...]]``)
    was read by position: the visual slot taken as present where column 1
    (auditory) said so, a silent wrong embedding, where the same frame
    named by modality is refused. Now refused the same way, saying the
    order expected; in order (or ``sort_index(axis=1)``) it is read as the array."""
    model = gm.LearnableMultiModal(input_dims={"visual": 2, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    x = {"visual": np.ones((3, 2)), "auditory": np.arange(6.0).reshape(3, 2)}
    flags = np.zeros((3, 7), bool)
    flags[:, 0], flags[:, 1] = True, [True, False, True]
    mask = pd.DataFrame(flags)
    reordered = mask[[1, 0, 2, 3, 4, 5, 6]]
    with pytest.raises(InvalidValueError, match=r"^mask: its column 0 is labelled 1, the auditory slot's number, .* "
                                                r"e\.g\. mask\[\[0, 1, 2, 3, 4, 5, 6\]\]$") as info:
        model.encode(x, reordered)
    assert info.value.arg == "mask"
    assert np.array_equal(model.encode(x, reordered.sort_index(axis=1)), model.encode(x, flags))
    other = mask.set_axis([10, 11, 12, 13, 14, 15, 16], axis=1)  # not the slots' numbers: read by position
    assert np.array_equal(model.encode(x, other), model.encode(x, flags))


def test_statistics_of_a_frame_in_another_column_order_are_refused_by_set_normalization() -> None:
    """Before: ``set_normalization("visual", other.mean(), other.std())``
    with ``other`` holding the columns the model learned in another order
    (a second CSV file, a join) standardised each column by another
    column's statistics, without a word: a Series' values are read by
    position. Now refused, naming the Series and the order expected;
    Series in that order, and arrays, are taken as before."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(30, 3)) * [1, 10, 100], columns=["a", "b", "c"])
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    model.fit_normalization({"visual": frame})
    learned = model.normalization("visual")
    other = frame[["c", "a", "b"]]
    with pytest.raises(InvalidValueError, match=r"^normalization\['visual'\]\.mean: its labels \['c', 'a', 'b'\] are the "
                                                r"columns .* expected them in that order: mean\[\['a', 'b', 'c'\]\]$"):
        model.set_normalization("visual", other.mean(), other.std(ddof=0))
    assert all(np.array_equal(a, b) for a, b in zip(model.normalization("visual"), learned))  # left as it was
    model.set_normalization("visual", other.mean()[["a", "b", "c"]], other.std(ddof=0)[["a", "b", "c"]])
    np.testing.assert_allclose(model.normalization("visual")[0], learned[0], rtol=1e-6)
    model.set_normalization("visual", other.mean().to_numpy(), np.ones(3))  # an array: read by position, as ever


def test_a_mask_of_python_objects_says_what_to_cast_or_which_item_is_no_flag() -> None:
    """Before: a mask of True/False kept as Python objects (a pandas object
    column's ``.to_numpy()``), or one holding None, was refused as "expected
    booleans or 0/1 numbers, got array of shape (3, 7) and dtype object",
    saying neither the cast that takes it nor where the item that is no
    flag stands. Now: the cast for bools, the index and item otherwise."""
    model = gm.LearnableMultiModal(input_dims={"visual": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    x = {"visual": np.ones((3, 2))}
    flags = np.zeros((3, 7), bool)
    flags[:, 0] = True
    with pytest.raises(TypeError, match=r"^mask: .* dtype object of booleans stored as Python objects: "
                                        r"pass np\.asarray\(mask, dtype=bool\)$"):
        model.encode(x, flags.astype(object))
    holed = flags.astype(object)
    holed[1, 3] = None
    with pytest.raises(TypeError, match=r"^mask: .* dtype object \(at index \(1, 3\): NoneType None\)$"):
        model.encode(x, holed)
    assert np.array_equal(model.encode(x, np.asarray(flags.astype(object), dtype=bool)), model.encode(x, flags))


def test_exact_cca_transform_refuses_frames_of_two_indexes_as_fit_does() -> None:
    """Before: ``ExactCCA.transform(X, Y)`` of two frames whose indexes hold
    the samples in other orders returned score pairs of different samples,
    row by row, without a word, where ``fit(X, Y)`` refuses the same frames.
    Now refused the same way, naming ``Y``; aligned, they score as arrays."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 2))
    x, y = z @ rng.normal(size=(2, 4)), z @ rng.normal(size=(2, 3)) + 0.1 * rng.normal(size=(30, 3))
    cca = ExactCCA(2).fit(x, y)
    frame_x, frame_y = pd.DataFrame(x), pd.DataFrame(y).iloc[::-1]
    with pytest.raises(InvalidValueError, match=r"^Y: its index is not that of X, and rows are paired by position") as info:
        cca.transform(frame_x, frame_y)
    assert info.value.arg == "Y"
    aligned = cca.transform(frame_x, frame_y.loc[frame_x.index])
    assert all(np.array_equal(a, b) for a, b in zip(aligned, cca.transform(x, y)))


def _embeddings_frame() -> pd.DataFrame:
    """Two views kept as columns of vectors, one per row, as embeddings are stored in a frame (or a parquet list column)."""
    a, b = _views()
    return pd.DataFrame({"text": list(a), "image": [list(row) for row in b]}, index=[f"r{i}" for i in range(40)])


@pytest.mark.parametrize("given", ["column", "two columns", "frame of one column", "one column of several views",
                                   "numpy column", "pyarrow list column"])
def test_a_column_of_vectors_is_told_to_be_stacked_by_the_estimator(given) -> None:
    """Before: a view kept as a pandas column of vectors was refused with
    check_array's "setting an array element with a sequence" (a frame of
    such columns too), or, given alone, as "a 1-D Series of 40 arrays; pass
    list(Xs)", whose list of rows is no list of views either. Now: the
    view (and the column) named as holding one vector per row, and the
    np.stack that makes the view, which is then taken as the array."""
    import pyarrow as pa

    frame = _embeddings_frame()
    Xs, name = {
        "column": (frame["text"], "Xs"),
        "two columns": ([frame["text"], frame["image"]], r"Xs\[0\]"),
        "frame of one column": (frame[["text"]], "Xs"),
        "one column of several views": ([_views()[0], frame["image"]], r"Xs\[1\]"),
        "numpy column": (frame["text"].to_numpy(), "Xs"),
        "pyarrow list column": (frame["text"].astype(pd.ArrowDtype(pa.list_(pa.float64()))), "Xs"),
    }[given]
    stack = rf"np\.stack\({name}\['text'\]\)" if given == "frame of one column" else rf"np\.stack\({name}\)"
    with pytest.raises(TypeError, match=rf"^{name}: .*holds one vector per row .*pass {stack}"):
        MultimodalEmbedder(**FAST).fit(Xs)
    stacked = [np.stack(x) for x in Xs] if isinstance(Xs, list) else np.stack(frame["text"])
    want = MultimodalEmbedder(**FAST).fit_transform(_views() if isinstance(Xs, list) else _views()[0])
    assert np.array_equal(MultimodalEmbedder(**FAST).fit_transform(stacked), want)


@pytest.mark.parametrize("columns", [["text"], ["text", "image"]])
def test_a_frame_with_a_column_of_vectors_is_told_to_stack_it_not_to_drop_it(columns) -> None:
    """Before: the model refused a frame holding a column of vectors with
    "pass its numeric columns only, e.g. select_dtypes('number')", which
    drops that column, or (two such columns) "rows of different lengths".
    Now: the column named as holding vectors, and how to stack them."""
    model = gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    frame = _embeddings_frame()[columns]
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: its column 'text' holds one vector per row \(the first of "
                                        r"5 values\); .* np\.stack\(inputs\['visual'\]\['text'\]\)"):
        model.encode({"visual": frame})
    assert np.array_equal(model.encode({"visual": np.stack(frame["text"])}), model.encode({"visual": _views()[0]}))


def test_update_priorities_refuses_series_of_two_indexes() -> None:
    """Before: ``update_priorities(positions, priorities)`` given two pandas
    Series whose indexes hold the pairs in other orders set each position
    to another one's priority, without a word, where every other call that
    takes rows side by side refuses such frames. Now refused the same way,
    naming ``priorities``, the buffer left as it was."""
    buffer = _record()
    positions = pd.Series([0, 1, 2, 3], index=[3, 2, 1, 0])
    priorities = pd.Series([1.0, 2.0, 3.0, 4.0])
    before = buffer.sample(4, prioritized=True)
    buffer = _record()
    with pytest.raises(InvalidValueError, match=r"^priorities: its index is not that of positions") as info:
        buffer.update_priorities(positions, priorities)
    assert info.value.arg == "priorities"
    assert buffer.sample(4, prioritized=True) == before  # the priorities (and the draws) as they were
    buffer.update_priorities(positions, priorities.set_axis(positions.index))
