"""Array-likes from a hostile pass over what the public API takes (labels of
mixed kinds, pyarrow tables, duplicate column names, array-likes that read
otherwise each time, broadcast views, single objects): the same results as
the plain array, or a refusal naming the argument.

Each test failed before its fix."""

from __future__ import annotations

import decimal
import re

import numpy as np
import pandas as pd
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import InvalidValueError, TooLargeError, metrics
from grapheme_multimodal.stopping import fit_with_stopping

pa = pytest.importorskip("pyarrow")

N, D = 40, 4
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, D))
A = RNG.normal(size=(N, D))
Y = np.arange(N) % 3
FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0)


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, input_dims={"visual": D, "auditory": D})


# ------------------------------------------------ labels of mixed kinds
@pytest.mark.parametrize("labels", [
    [1 if i % 2 else "1" for i in range(N)],  # numpy reads the list as strings: '1' and '1', one class
    np.array([1 if i % 2 else "1" for i in range(N)], dtype=object),  # as objects, two classes
    [int(v) if i % 2 else f"c{v}" for i, v in enumerate(Y)],
    [b"a" if i % 2 else "a" for i in range(N)],
])
def test_labels_mixing_strings_with_numbers_are_refused_not_read_as_one_kind(labels) -> None:
    # The list's retrieval scored class precision 1.0 (1 and "1" one class), the same labels as objects
    # 0.5; k-NN and the linear probe took the list as strings, and refused the objects with numpy's
    # "'<' not supported between instances of 'int' and 'str'", naming no argument.
    calls = {
        "labels": lambda y: metrics.cross_view_retrieval(X, A, y),
        "train_y": lambda y: metrics.knn_accuracy(X, y, A, y, k=3),
        "train_y ": lambda y: metrics.linear_probe_accuracy(X, y, A, y),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidValueError, match=rf"^{name.strip()}: expected class labels of one kind, got ") as err:
            call(labels)
        assert err.value.arg == name.strip()
        assert "at row 0" in str(err.value) and "at row 1" in str(err.value)
    from grapheme_multimodal.datasets import train_test_indices

    with pytest.raises(InvalidValueError, match=r"^labels: expected class labels of one kind"):
        train_test_indices(labels)


def test_labels_of_one_kind_score_as_before() -> None:
    strings = [f"c{v}" for v in Y]
    assert metrics.cross_view_retrieval(X, A, strings) == metrics.cross_view_retrieval(X, A, Y)
    assert metrics.knn_accuracy(X, np.array(strings, dtype=object), A, strings, k=3) == metrics.knn_accuracy(X, Y, A, Y, k=3)
    # no strings (a whole float: a fractional one is no class, for any measure)
    assert metrics.cross_view_retrieval(X, A, np.array([1, 2.0, True] * (N // 3) + [1], dtype=object))


def test_class_labels_that_do_not_order_are_refused_by_name() -> None:
    # was numpy's "'<' not supported between instances of 'tuple' and 'int'" from np.unique
    odd = np.empty(N, dtype=object)
    odd[:] = [1, (2, 3)] * (N // 2)
    for call in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        with pytest.raises(InvalidValueError, match=r"^train_y: labels that cannot be ordered") as err:
            call(X, odd, A, odd)
        assert err.value.arg == "train_y"


class _Unreadable:
    """An array-like whose ``__array__`` fails."""

    def __len__(self) -> int:
        return N

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        raise RuntimeError("the source went away")


@pytest.mark.parametrize("labels, said", [
    ([[1, 2], [3]] * (N // 2), "inhomogeneous shape"),
    (_Unreadable(), "the source went away"),
])
def test_labels_numpy_cannot_read_are_named(labels, said) -> None:
    # were numpy's "setting an array element with a sequence ..." (or the object's own error), naming
    # no argument, where features that numpy cannot read are refused by name
    from grapheme_multimodal.datasets import train_test_indices

    calls = {
        "labels": lambda y: metrics.cross_view_retrieval(X, A, y),
        "train_y": lambda y: metrics.knn_accuracy(X, y, A, Y, k=3),
        "test_y": lambda y: metrics.linear_probe_accuracy(X, Y, A, y),
        "labels ": train_test_indices,
    }
    for name, call in calls.items():
        with pytest.raises(InvalidValueError, match=rf"^{name.strip()}: could not be read as an array of labels \(.*{said}"):
            call(labels)


# ------------------------------------------------ pyarrow tables of dates
def _table(column) -> "pa.Table":
    return pa.table({**{f"f{j}": X[:, j] for j in range(D - 1)}, "when": column})


@pytest.mark.parametrize("column, dtype", [
    (pa.array(np.arange(N).astype("M8[D]").astype(object)), "date32[day]"),
    (pa.array(np.arange(N).astype("M8[s]")), "timestamp[s]"),
    (pa.array(np.arange(N).astype("m8[s]")), "duration[s]"),
    (pa.array(np.arange(N).astype("M8[D]").astype(object)).dictionary_encode(), "dictionary<"),
])
def test_pyarrow_columns_of_dates_or_durations_are_refused_naming_the_column(column, dtype) -> None:
    # scikit-learn's check_array made them days since 1970 or counts of seconds, and the estimator
    # trained on those numbers without a word; the model's calls refused numpy's datetime64, naming no column.
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    table = _table(column)
    words = rf"column 'when' has dtype {re.escape(dtype)}.* \(dates, times or durations\); expected numbers"
    with pytest.raises(TypeError, match=rf"^Xs: {words}"):
        MultimodalEmbedder(**FAST).fit(table)
    with pytest.raises(TypeError, match=rf"^Xs\[0\]: {words}"):
        MultimodalEmbedder(**FAST).fit([table, A])
    with pytest.raises(TypeError, match=rf"^inputs\['visual'\]: {words}"):
        small_model().encode({"visual": table})
    fitted = MultimodalEmbedder(**FAST).fit([X, A])
    before = fitted.transform([X, A])
    with pytest.raises(TypeError, match=rf"^Xs\[0\]: {words}"):
        fitted.transform([table, A])
    np.testing.assert_array_equal(fitted.transform([X, A]), before)


def test_pyarrow_tables_of_numbers_give_what_their_values_give() -> None:
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    table = pa.table({f"f{j}": X[:, j] for j in range(D)})
    np.testing.assert_array_equal(MultimodalEmbedder(**FAST).fit([table, A]).transform([table, A]),
                                  MultimodalEmbedder(**FAST).fit([X, A]).transform([X, A]))
    np.testing.assert_array_equal(small_model().encode({"visual": table}), small_model().encode({"visual": X}))


# ------------------------------------------------ duplicate column names
@pytest.mark.parametrize("make", [
    lambda: pd.DataFrame(X, columns=["a", "a", "b", "b"]),
    lambda: pa.Table.from_arrays([pa.array(X[:, j]) for j in range(D)], names=["a", "b", "c", "a"]),
])
def test_the_estimator_names_a_view_with_duplicate_column_names(make) -> None:
    # was narwhals' "DuplicateError: Expected unique column names", from scikit-learn's check_array, naming no view
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    frame = make()
    with pytest.raises(InvalidValueError, match=r"^Xs: column names \['a'.*\] appear more than once") as err:
        MultimodalEmbedder(**FAST).fit(frame)
    assert err.value.arg == "Xs"
    with pytest.raises(InvalidValueError, match=r"^Xs\[1\]: column names \['a'.*\] appear more than once") as err:
        MultimodalEmbedder(**FAST).fit([A, frame])
    assert err.value.arg == "Xs[1]"
    # the model refuses a pandas frame's too (it learns its names: ('a', 'a', ...) could not catch its a columns
    # swapped); a pyarrow table's names it does not learn: positions, read as such
    if not isinstance(frame, pd.DataFrame):
        np.testing.assert_array_equal(small_model().encode({"visual": frame}),
                                      small_model().encode({"visual": np.column_stack([np.asarray(c) for c in frame.columns])}))
        return
    with pytest.raises(InvalidValueError, match=r"^inputs\['visual'\]: column names \['a'.*\] appear more than once") as err:
        small_model().encode({"visual": frame})
    assert err.value.arg == "inputs['visual']"


# ------------------------------------------------ fit_with_stopping of frames and lists
def test_fit_with_stopping_of_frames_and_lists_is_that_of_their_arrays() -> None:
    def trained(visual, mask) -> list:
        model = small_model()
        fit_with_stopping(model, {"visual": visual, "auditory": A}, mask=mask, validation_fraction=0.25, patience=1,
                          monitor="loss", epochs=2, batch_size=16, progress=False)
        return [v.tobytes() for v in model.state_dict().values()]

    mask = np.zeros((N, 7), bool)
    mask[:, :2] = True
    mask[3, 0] = False
    want = trained(X, mask)
    assert trained(pd.DataFrame(X), pd.DataFrame(mask.astype(int))) == want
    assert trained(X.tolist(), mask.tolist()) == want


# ------------------------------------------------ broadcast labels, generators
def test_train_test_indices_names_a_generator_and_a_split_larger_than_memory() -> None:
    from grapheme_multimodal.datasets import train_test_indices

    # was "labels: expected a 1-D array, got shape ()"
    with pytest.raises(TypeError, match=r"^labels: got a generator; expected an array or a list"):
        train_test_indices(v for v in Y)
    # a broadcast view of 10**12 rows takes no memory; scikit-learn's split of it raised numpy's MemoryError
    with pytest.raises(TooLargeError, match=r"^labels: splitting its 1,000,000,000,000 rows stratified takes about") as err:
        train_test_indices(np.broadcast_to(np.int64(0), (10**12,)))
    assert err.value.arg == "labels"
    assert len(train_test_indices(np.broadcast_to(np.arange(2), (10, 2)).ravel())[1]) == 4  # 20 rows


# ------------------------------------------------ one object where numbers are expected
@pytest.mark.parametrize("reward, shown", [
    (decimal.Decimal("0.5"), r"one Decimal: Decimal\('0.5'\)"),
    (None, "one NoneType: None"),
])
def test_a_single_object_where_numbers_are_expected_is_named(reward, shown) -> None:
    # was "rewards: expected a real-valued numeric array, got array of shape () and dtype object", naming no Decimal
    model = small_model()
    with pytest.raises(TypeError, match=rf"^rewards: expected a real-valued numeric array, got .*\({shown}\)$"):
        model.record_batch({"visual": X}, rewards=reward)
    assert len(model.experience) == 0


# ------------------------------------------------ frames beside the inputs, paired by index
def _mask() -> np.ndarray:
    mask = np.zeros((N, 7), bool)
    mask[:, :2] = True
    mask[3, 1] = False
    return mask


def test_a_mask_frame_in_another_order_than_the_inputs_is_refused() -> None:
    # The mask's row r was the inputs' row r whatever the frames' indexes said: the same rows in
    # another order marked other rows present, without a word (the inputs' frames among themselves
    # were already checked so).
    frames = {"visual": pd.DataFrame(X), "auditory": pd.DataFrame(A)}
    reversed_mask = pd.DataFrame(_mask(), index=np.arange(N)[::-1])
    words = r"its index is not that of {}\['visual'\], and rows are paired by position"
    model = small_model()
    before = [v.tobytes() for v in model.state_dict().values()]
    for call, arg in [
        (lambda: model.encode(frames, mask=reversed_mask), "inputs"),
        (lambda: model.fit(frames, mask=reversed_mask, epochs=1, progress=False), "data"),
        (lambda: model.fit({"visual": X, "auditory": A}, validation=frames, validation_mask=reversed_mask, epochs=1,
                           progress=False), "validation"),
        (lambda: model.record_batch(frames, mask=reversed_mask), "inputs"),
        (lambda: fit_with_stopping(model, frames, mask=reversed_mask, validation_fraction=0.25, patience=1,
                                   monitor="loss", epochs=1, progress=False), "inputs"),
    ]:
        with pytest.raises(InvalidValueError, match=r"^(validation_)?mask: " + words.format(arg)) as err:
            call()
        assert err.value.arg in ("mask", "validation_mask")
    assert [v.tobytes() for v in model.state_dict().values()] == before and len(model.experience) == 0
    # a mask frame of the inputs' index is its values
    same = pd.DataFrame(_mask())
    np.testing.assert_array_equal(model.encode(frames, mask=same), model.encode({"visual": X, "auditory": A}, mask=_mask()))


def test_rewards_and_event_ids_in_another_order_than_the_inputs_are_refused() -> None:
    # recorded against the rows of the same position, whatever the Series' index said
    frame = pd.DataFrame(X, index=np.arange(100, 100 + N))
    model = small_model()
    for kwargs in (dict(rewards=pd.Series(np.linspace(0, 1, N))), dict(event_ids=pd.Series(np.arange(N)))):
        name = next(iter(kwargs))
        with pytest.raises(InvalidValueError, match=rf"^{name}: its index is not that of inputs\['visual'\]") as err:
            model.record_batch({"visual": frame}, **kwargs)
        assert err.value.arg == name
    assert len(model.experience) == 0
    rewards = pd.Series(np.linspace(0, 1, N), index=frame.index)
    model.record_batch({"visual": frame}, rewards=rewards, event_ids=pd.Series(np.arange(N), index=frame.index))
    np.testing.assert_array_equal(model.experience.batch().rewards, rewards.to_numpy(np.float32))


def test_bind_and_binder_auc_refuse_frames_in_another_order() -> None:
    from grapheme_multimodal.evaluation import binder_auc

    model = small_model()
    emb = model.encode({"visual": X, "auditory": A}).astype(np.float64)
    a, b = pd.DataFrame(emb[:, 0]), pd.DataFrame(emb[:, 1], index=np.arange(N)[::-1])
    with pytest.raises(InvalidValueError, match=r"^b: its index is not that of a, and rows are paired by position"):
        model.bind(a, b)
    with pytest.raises(InvalidValueError, match=r"^view_embeddings\['w'\]: its index is not that of view_embeddings\['v'\]"):
        binder_auc(model.bind, {"v": a, "w": b})
    np.testing.assert_array_equal(model.bind(a, b.reset_index(drop=True)), model.bind(emb[:, 0], emb[:, 1]))
    plain = binder_auc(model.bind, {"v": emb[:, 0], "w": emb[:, 1]})
    assert binder_auc(model.bind, {"v": a, "w": b.reset_index(drop=True)}) == plain


# ------------------------------------------------ pandas' nullable integers beyond 2**53
@pytest.mark.parametrize("dtype", ["Int64", "UInt64", "int64[pyarrow]"])
def test_nullable_integer_columns_beyond_2_53_give_what_the_int64_array_gives(dtype) -> None:
    # They were read through float64, where integers near 2**60 round to 256 apart: standardize's
    # z-scores differed by up to 1.3 and ExactCCA's correlations in the second digit from those of
    # the same numbers as a plain int64 array (which both keep exact).
    from grapheme_multimodal.datasets import standardize
    from grapheme_multimodal.evaluation import ExactCCA

    big = (2**60 + RNG.integers(0, 1000, size=(N, D))).astype(np.int64)
    frame = pd.DataFrame(big).astype(dtype)
    np.testing.assert_array_equal(standardize({"a": frame})[0]["a"], standardize({"a": big})[0]["a"])
    np.testing.assert_array_equal(ExactCCA(2).fit(frame, A).correlations_, ExactCCA(2).fit(big, A).correlations_)
    np.testing.assert_array_equal(small_model().encode({"visual": frame}), small_model().encode({"visual": big}))
    assert metrics.roc_auc(frame[0], frame[1]) == metrics.roc_auc(big[:, 0], big[:, 1])
    # a missing value is NaN, refused by row as before
    with pytest.raises(gm.NonFiniteError, match=r"^train_views\['a'\]: row 2 holds NaN"):
        standardize({"a": frame.mask(pd.DataFrame(np.arange(N * D).reshape(N, D) == 2 * D))})


# ------------------------------------------------ MultipleFeatures' labels
def test_multiple_features_keeps_what_its_labels_say() -> None:
    # np.asarray made a list of 1 and "1" strings, one class, before any check where the labels are
    # used could see it; a masked array its values under the mask, read as labels; a ragged list
    # raised numpy's ValueError naming nothing.
    from grapheme_multimodal import datasets

    views = {"a": X.astype(np.float32)}
    with pytest.raises(InvalidValueError, match=r"^labels: expected class labels of one kind, got numbers mixed with strings"):
        datasets.MultipleFeatures(views=views, labels=[1 if i % 2 else "1" for i in range(N)])
    with pytest.raises(InvalidValueError, match=r"^labels: a masked array with 1 masked entries; expected labels") as err:
        datasets.MultipleFeatures(views=views, labels=np.ma.masked_array(Y, mask=np.arange(N) == 5))
    assert err.value.arg == "labels"
    with pytest.raises(InvalidValueError, match=r"^labels: could not be read as an array of labels"):
        datasets.MultipleFeatures(views=views, labels=[[1, 2], [3]] * (N // 2))
    np.testing.assert_array_equal(datasets.MultipleFeatures(views=views, labels=np.ma.masked_array(Y, mask=False)).labels, Y)
    assert datasets.MultipleFeatures(views=views, labels=[str(v) for v in Y]).labels.dtype.kind == "U"


# ------------------------------------------------ lists of masked rows
def test_a_list_of_masked_rows_is_refused_as_the_masked_array_is() -> None:
    # list(masked) is its rows, each a masked array: numpy read the list as the values under the
    # masks, encoded and scored as data, where the masked array itself is refused
    from grapheme_multimodal.evaluation import ExactCCA

    masked = np.ma.masked_array(X, mask=X > 1.5)
    row = int(np.flatnonzero((X > 1.5).any(axis=1))[0])
    model = small_model()
    calls = {
        "inputs['visual']": lambda v: model.encode({"visual": v}),
        "train_x": lambda v: metrics.knn_accuracy(v, Y, A, Y, k=3),
        "X": lambda v: ExactCCA(2).fit(v, A),
    }
    for name, call in calls.items():
        words = rf"^{re.escape(name)}\[{row}\]: a masked array with \d+ masked entries"
        with pytest.raises(InvalidValueError, match=words) as err:
            call(list(masked))
        assert err.value.arg == name
    with pytest.raises(InvalidValueError, match=r"^rewards\[2\]: a masked array with 1 masked entries"):
        rewards = [np.ma.masked_array(v, mask=i == 2) for i, v in enumerate([1.0, 2.0, 3.0, 4.0])]
        model.record_batch({"visual": X[:4]}, rewards=rewards)
    assert len(model.experience) == 0
    # rows with nothing masked are their values
    np.testing.assert_array_equal(model.encode({"visual": list(np.ma.masked_array(X, mask=False))}), model.encode({"visual": X}))


@pytest.mark.parametrize("value", [0.5, -0.0, float("inf"), float("nan"), 0, 7, -2**63, 2**63 - 1, 2**63, 2**64 - 1])
def test_a_python_number_is_read_as_numpy_reads_it(value) -> None:
    """Python's floats and ints skip the checks (none refuses them): read
    exactly as numpy reads them, uint64 past int64 included."""
    from grapheme_multimodal._validation import as_real_array

    got, want = as_real_array(value, "x"), np.asarray(value)
    assert got.dtype == want.dtype and got.shape == () and got.tobytes() == want.tobytes()


@pytest.mark.parametrize("value", [2**64, -2**63 - 1])
def test_a_python_int_beyond_64_bits_is_still_refused_by_name(value) -> None:
    from grapheme_multimodal._validation import as_real_array

    with pytest.raises(InvalidValueError, match=r"^rewards: holds .*an int beyond 64 bits"):
        as_real_array(value, "rewards")


@pytest.mark.parametrize("items", [
    [1.0, np.ma.masked, 3.0],  # list(masked) of a 1-D masked array
    [np.float32(1.0), np.ma.masked_array([5.0], mask=[True])[0], 2],
    list(np.ma.masked_array(np.ones((3, 2)), mask=[[0, 0], [0, 1], [0, 0]])),  # its rows
])
def test_a_list_holding_a_masked_item_is_refused_beside_plain_items(items) -> None:
    """The items' types are told apart first against the common plain ones;
    a masked item beside them is still found, by its position."""
    from grapheme_multimodal._validation import as_real_array

    with pytest.raises(InvalidValueError, match=r"^x\[1\]: a masked array with 1 masked entries"):
        as_real_array(items, "x")
