"""polars data frames as inputs: the same results as their numpy values,
and columns of dates, times or durations refused (numpy reads a polars
frame as floats, a ``Date`` as days since 1970, without a word). Skipped
where polars is not installed (it is not a test dependency)."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.sklearn import MultimodalEmbedder

pl = pytest.importorskip("polars")

FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0)
N = 40


def _views():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(N, 3))
    return [z @ rng.normal(size=(3, 5)), z @ rng.normal(size=(3, 3))]


def _frame(x: np.ndarray, prefix: str):
    return pl.DataFrame(x, schema=[f"{prefix}{j}" for j in range(x.shape[1])])


def test_polars_frames_give_what_their_values_give():
    a, b = _views()
    expected = MultimodalEmbedder(**FAST).fit([a, b]).transform([a, b])
    got = MultimodalEmbedder(**FAST).fit([_frame(a, "a"), _frame(b, "b")]).transform([_frame(a, "a"), _frame(b, "b")])
    np.testing.assert_array_equal(got, expected)
    out = MultimodalEmbedder(**FAST).set_output(transform="polars").fit_transform([_frame(a, "a"), _frame(b, "b")])
    assert isinstance(out, pl.DataFrame) and out.shape == expected.shape
    np.testing.assert_array_equal(out.to_numpy(), expected)
    # a row null in every column is the view missing there, as an all-NaN row
    nulls = _frame(a, "a").with_columns(
        [pl.when(pl.int_range(N) == 3).then(None).otherwise(pl.col(c)).alias(c) for c in _frame(a, "a").columns])
    with_nan = a.copy()
    with_nan[3] = np.nan
    np.testing.assert_array_equal(
        MultimodalEmbedder(**FAST).fit([nulls, b]).transform([nulls, b]),
        MultimodalEmbedder(**FAST).fit([with_nan, b]).transform([with_nan, b]))
    x = np.random.default_rng(1).normal(size=(4, 18)).astype(np.float32)
    model = gm.LearnableMultiModal()
    np.testing.assert_array_equal(model.encode({"visual": pl.DataFrame(x)}), model.encode({"visual": x}))


@pytest.mark.parametrize("column", [
    pl.date_range(pl.date(2020, 1, 1), pl.date(2020, 2, 9), eager=True),
    pl.datetime_range(pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 1, 0, 0, N - 1), "1s", eager=True),
    pl.Series([i * 1_000_000 for i in range(N)], dtype=pl.Duration("us")),
])
def test_polars_columns_of_dates_times_or_durations_are_refused_naming_them(column):
    a, b = _views()
    dated = _frame(a, "a").with_columns(column.alias("when"))
    model = gm.LearnableMultiModal()
    features = _frame(np.zeros((N, 17), np.float32), "f").with_columns(column.alias("when"))
    calls = [
        (lambda: model.encode({"visual": features}), r"^inputs\['visual'\]: column 'when' has dtype"),
        (lambda: metrics.knn_accuracy(dated, np.arange(N) % 2, a, np.arange(N) % 2, k=3), r"^train_x: column 'when'"),
        (lambda: MultimodalEmbedder(**FAST).fit([dated, b]), r"^Xs\[0\]: column 'when' has dtype"),
        (lambda: MultimodalEmbedder(**FAST).fit(dated), r"^Xs: column 'when' has dtype"),
    ]
    for call, message in calls:
        with pytest.raises(TypeError, match=message) as err:
            call()
        assert "(dates, times or durations); expected numbers" in str(err.value)
    fitted = MultimodalEmbedder(**FAST).fit([a, b])
    before = fitted.transform([a, b])
    with pytest.raises(TypeError, match=r"^Xs\[0\]: column 'when'"):
        fitted.transform([dated.drop("a4"), b])
    np.testing.assert_array_equal(fitted.transform([a, b]), before)
