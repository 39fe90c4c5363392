"""Speed regressions of the s50 trust checks, undone without dropping a
check. No test times anything; each pins what made the code slow, or that
the faster code gives what the slower one gave:

1. ``cross_view_retrieval`` searches blocks of a few MiB (the product, the
   argmax and the runner-up pass of the near-tie settling read a block in
   cache), and its Euclidean scores come from one matrix product
   (``[-2 q, 1] @ [g, ||g||^2].T``) where a product and two passes over each
   block gave them; the rows found are the same;
2. a list or tuple of Python floats (or of ints within int64) is read in
   one pass at C speed (``_core.plain_items``), where numpy's reading and
   the Python pass over the items' types that finds masked arrays among
   them doubled its time;
3. a data frame of pandas' nullable integer columns is read without
   ``DataFrame.isna()`` (a frame of flags, +50 us a call): pandas refuses a
   missing value as an integer, and such frames are read as floats then.

The tests of block sizes, of the list reader and of the frame read without
isna() failed before; the others pin that the rows found and the arrays
read are those of before."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from grapheme_multimodal import _core, metrics
from grapheme_multimodal._validation import as_real_array
from grapheme_multimodal.exceptions import InvalidValueError


# ------------------------------------------------ 1. retrieval blocks and one product
def _blocks(monkeypatch, metric: str, n: int, d: int, **kwargs) -> list:
    """The shapes of the score blocks the search of ``n`` rows settles."""
    shapes = []
    settle = metrics._settle_near_ties

    def spy(metric_, scores, *rest, **kwargs):
        shapes.append(scores.shape)
        return settle(metric_, scores, *rest, **kwargs)

    monkeypatch.setattr(metrics, "_settle_near_ties", spy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    metrics.cross_view_retrieval(x, x + 0.1, np.arange(n) % 3, metric=metric, **kwargs)
    return shapes


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_the_search_of_2000_rows_reads_blocks_of_a_few_mib(monkeypatch, metric) -> None:
    # 1,048 rows (16 MiB) a block were read three times each from beyond a core's cache
    shapes = _blocks(monkeypatch, metric, 2000, 4)
    assert max(rows for rows, _ in shapes) * 2000 * 8 <= 4 << 20
    assert sum(rows for rows, _ in shapes) == 2000 and all(cols == 2000 for _, cols in shapes)
    # a small gallery is one block, as before; chunk_size still bounds the rows
    assert _blocks(monkeypatch, metric, 300, 4) == [(300, 300)]
    assert {rows for rows, _ in _blocks(monkeypatch, metric, 300, 4, chunk_size=7)} == {7, 300 % 7}


def test_euclidean_scores_are_one_product_of_the_rows_with_their_squared_norms(monkeypatch) -> None:
    """The block settled holds ||g||^2 - 2 q.g (within rounding), computed
    by one product: no pass of *= -2 and += ||g||^2 over it after."""
    got = []
    settle = metrics._settle_near_ties

    def spy(metric_, scores, tolerance, block, g, **kwargs):
        got.append((scores.copy(), block.copy(), np.asarray(g).copy()))
        return settle(metric_, scores, tolerance, block, g, **kwargs)

    monkeypatch.setattr(metrics, "_settle_near_ties", spy)
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(2, 50, 6))
    metrics.cross_view_retrieval(q, g, np.arange(50) % 2, metric="euclidean")
    (scores, block, gallery), = got
    # the product's left operand [-2 q, 1], whose query rows come back exactly (halved) for a near tie
    np.testing.assert_array_equal(block[:, :-1] * -0.5, q)
    np.testing.assert_array_equal(block[:, -1], 1.0)
    np.testing.assert_array_equal(gallery, g)
    want = (g * g).sum(axis=1)[None, :] - 2 * q @ g.T
    np.testing.assert_allclose(scores, want, rtol=0, atol=1e-12)


DATA = {
    "duplicates": lambda rng: (lambda g: (np.repeat(g[3:4], 40, axis=0), g))(np.vstack([rng.normal(size=(20, 5))] * 2)),
    "small ints": lambda rng: tuple(rng.integers(-2, 3, size=(2, 300, 3)).astype(float)),
    "offset": lambda rng: (lambda g: (1e6 + 0.01 * g[::-1], 1e6 + 0.01 * g))(rng.normal(size=(60, 4))),
    "huge": lambda rng: (lambda g: (1e200 * g[::-1], 1e200 * g))(rng.integers(-2, 3, size=(60, 4)).astype(float)),
    "int64 past 2**53": lambda rng: (lambda g: (g[::-1].copy(), g))(2**60 + rng.integers(0, 9, size=(60, 3))),
}


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("chunk_size", [1, 7, 2048])
def test_euclidean_rows_found_are_the_exact_nearest_lowest_index_first(data, chunk_size) -> None:
    """The one product rounds otherwise than the product scaled and shifted:
    the rows found are still each query's exact nearest (in Python ints or
    exact float sums), ties to the lowest gallery index."""
    q, g = DATA[data](np.random.default_rng(2))
    n = len(q)
    labels = np.arange(n)  # each row its own class: precision is the share of rows that find their own index
    # exact: whole numbers (1e200 times small ints included) as Python ints, others as fractions
    number = int if all(float(v).is_integer() for v in np.concatenate([q, g]).ravel()) else Fraction
    qs, gs = ([[number(v) for v in row] for row in a.tolist()] for a in (q, g))
    exact = [[sum((a - b) ** 2 for a, b in zip(qr, gr)) for gr in gs] for qr in qs]
    nearest = np.array([min(range(n), key=lambda j, row=row: (row[j], j)) for row in exact])
    got = metrics.cross_view_retrieval(q, g, labels, metric="euclidean", chunk_size=chunk_size)
    assert got["instance_recall_at_1"] == float(np.mean(nearest == np.arange(n)))
    classes = np.arange(n) % 4
    got = metrics.cross_view_retrieval(q, g, classes, metric="euclidean", chunk_size=chunk_size)
    assert got["class_precision_at_1"] == float(np.mean(classes[nearest] == classes))


# ------------------------------------------------ 2. lists of floats at C speed
VALUES = [0.5, -0.0, 0.0, float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308, -3.25]


@pytest.mark.parametrize("container", [list, tuple])
def test_a_list_of_python_floats_is_read_in_one_pass_as_numpy_reads_it(container) -> None:
    items = container(VALUES + [float("nan")])
    read = _core.plain_items(items)
    want = np.asarray(items)
    assert read.dtype == want.dtype and read.shape == want.shape and read.tobytes() == want.tobytes()
    assert read.flags.owndata and read.flags.writeable and read.flags.c_contiguous  # a copy numpy owns, as asarray's
    got = as_real_array(items, "x")
    assert got.dtype == np.float64 and got.tobytes() == want.tobytes()
    empty = as_real_array(container(), "x")
    assert empty.dtype == np.asarray(container()).dtype and empty.shape == (0,)


@pytest.mark.parametrize("container", [list, tuple])
def test_a_list_of_python_ints_within_int64_is_read_as_numpy_reads_it(container) -> None:
    items = container([0, 1, -7, 2**63 - 1, -2**63, 2**40])
    read = _core.plain_items(items)
    want = np.asarray(items)
    assert read.dtype == np.int64 and read.tobytes() == np.asarray(items, dtype=np.int64).tobytes()
    assert read.flags.owndata and read.flags.writeable
    got = as_real_array(items, "x")
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


class _Float(float):
    pass


class _Int(int):
    pass


@pytest.mark.parametrize("items", [
    [1.0, 2], [1.0, True], [np.float64(1.0), 2.0], [_Float(1.5), 2.0], [[1.0, 2]], [(1.0, 2.0), [3.0, 4]], [1.0, "2"], [1.0, None], "12",
    np.ones(3), [1.0, np.ma.masked], [1, 2.0], [1, True], [True, False], [1, 2**63], [1, -2**63 - 1], [_Int(3), 1],
    [1, np.int64(2)], (2**64 - 1, 1),
])
def test_anything_but_python_floats_takes_the_checks_path_as_before(items) -> None:
    """plain_items answers None at the first item that is no exact float
    (rows of them: tests/test_trust_perf_s52.py); numpy and the checks then
    read the value as they did."""
    assert _core.plain_items(items) is None
    if isinstance(items, str) or (isinstance(items, list) and any(type(v) in (str, type(None)) for v in items)):
        with pytest.raises((TypeError, ValueError)):
            as_real_array(items, "x")
    elif any(type(v) is int and not -2**63 <= v < 2**64 for v in items):
        with pytest.raises(InvalidValueError, match=r"^x: holds .*an int beyond 64 bits"):
            as_real_array(items, "x")
    elif isinstance(items, list) and any(v is np.ma.masked for v in items):
        with pytest.raises(InvalidValueError, match=r"^x\[1\]: a masked array with 1 masked entries"):
            as_real_array(items, "x")
    else:
        got, want = as_real_array(items, "x"), np.asarray(items)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_a_long_list_of_floats_is_read_whole() -> None:
    values = np.random.default_rng(3).normal(size=100_003)
    got = as_real_array(values.tolist(), "x")
    assert got.dtype == np.float64 and got.tobytes() == values.tobytes()


# ------------------------------------------------ 3. nullable integer frames without isna()
pd = pytest.importorskip("pandas")


@pytest.mark.parametrize("dtype", ["Int64", "UInt8", "Int32"])
def test_a_frame_of_nullable_integers_is_read_without_a_frame_of_flags(monkeypatch, dtype) -> None:
    frame = pd.DataFrame({"a": pd.array([1, 2, 3], dtype=dtype), "b": pd.array([4, 5, 6], dtype=dtype)})
    want = frame.to_numpy(dtype=np.dtype(frame.dtypes.iloc[0].numpy_dtype))

    def refused(*args, **kwargs):
        raise AssertionError("DataFrame.isna() built a frame of flags for each read")

    monkeypatch.setattr(pd.DataFrame, "isna", refused)
    monkeypatch.setattr(pd.Series, "isna", refused)
    got = as_real_array(frame, "x")
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", ["Int64", "UInt8", "int64[pyarrow]", "uint64[pyarrow]"])
def test_a_missing_value_in_a_nullable_integer_frame_is_nan_among_floats(dtype) -> None:
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"a": pd.array([1, None, 3], dtype=dtype), "b": pd.array([4, 5, 6], dtype=dtype)})
    got = as_real_array(frame, "x")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [[1.0, 4.0], [np.nan, 5.0], [3.0, 6.0]])
    whole = pd.DataFrame({"a": pd.array([1, 2, 3], dtype=dtype), "b": pd.array([4, 5, 6], dtype=dtype)})
    assert as_real_array(whole, "x").dtype.kind in "iu"
