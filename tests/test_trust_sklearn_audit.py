"""A hostile audit of the scikit-learn estimator inside the scikit-learn
ecosystem: what a data scientist's data frames and containers hold (dates,
views kept in an object array or a Series)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from grapheme_multimodal.sklearn import MultimodalEmbedder

FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0)


def _views(n: int = 40):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 3))
    return [z @ rng.normal(size=(3, 5)), z @ rng.normal(size=(3, 3))]


@pytest.fixture(scope="module")
def fitted():
    Xs = _views()
    est = MultimodalEmbedder(**FAST).fit(Xs)
    return est, Xs


def _dated(view: np.ndarray, tz=None) -> pd.DataFrame:
    frame = pd.DataFrame(view, columns=[f"c{j}" for j in range(view.shape[1])])
    frame["c0"] = pd.date_range("2020-01-01", periods=len(view), tz=tz)
    return frame


def test_views_of_dates_or_durations_are_refused_naming_the_view_and_column(fitted):
    """check_array made dates numbers of their storage unit (days for M8[D],
    microseconds for pandas 3's dates) without a word, which the model's own
    calls refuse; beside other columns it raised numpy's DTypePromotionError
    naming no view."""
    est, Xs = fitted
    n = len(Xs[0])
    model, before = est.model_, est.transform(Xs)
    days = np.arange(n * 5).reshape(n, 5).astype("M8[D]")
    cases = [
        ([_dated(Xs[0]), Xs[1]], r"^Xs\[0\]: column 'c0' has dtype datetime64"),  # beside numbers: numpy's error
        ([_dated(Xs[0], tz="UTC"), Xs[1]], r"^Xs\[0\]: column 'c0' has dtype datetime64\[.*UTC\]"),
        ([Xs[0], pd.DataFrame({"t": pd.to_timedelta(np.arange(n), unit="s"), "a": 1.0, "b": 2.0})],
         r"^Xs\[1\]: column 't' has dtype timedelta64"),
        ([days, Xs[1]], r"^Xs\[0\]: got array of shape \(40, 5\) and dtype datetime64\[D\]"),  # was silently days
        ([pd.DataFrame({f"t{j}": pd.date_range("2020", periods=n) for j in range(5)}), Xs[1]],
         r"^Xs\[0\]: column 't0' has dtype datetime64"),  # dates alone: silently microseconds
        ([pd.DataFrame({f"t{j}": pd.Categorical(pd.date_range("2020", periods=n)) for j in range(5)}), Xs[1]],
         r"^Xs\[0\]: column 't0' has dtype category"),  # categories of dates alone: silently numbers too
        ([pd.DataFrame({"kind": 1.0, "a": 2.0, "b": 3.0, "c": 4.0, "t": pd.date_range("2020", periods=n)}), Xs[1]],
         r"^Xs\[0\]: column 't' has dtype datetime64"),  # a column named "kind" is an attribute of the dtypes
        ([np.ma.masked_array(days), Xs[1]], r"^Xs\[0\]: got array .* datetime64\[D\]"),  # the masked fill cast them too
    ]
    for views, message in cases:
        for call in (est.transform, est.fit):
            with pytest.raises(TypeError, match=message) as err:
                call(views)
            assert "(dates or durations); expected numbers" in str(err.value)
    assert est.model_ is model  # a refused fit leaves the estimator as it was
    np.testing.assert_array_equal(est.transform(Xs), before)
    # one view given bare is named as the argument itself, in fit as in transform
    for view, message in ((days, r"^Xs: got array .* datetime64\[D\]"), (_dated(Xs[0]), r"^Xs: column 'c0'")):
        with pytest.raises(TypeError, match=message):
            MultimodalEmbedder(**FAST).fit(view)
    # numbers of a unit chosen by the caller, as the message suggests, are taken
    est.transform([(days - days.min()) / np.timedelta64(1, "D"), Xs[1]])


def test_lists_of_numpy_dates_or_durations_are_refused_naming_the_view(fitted):
    """Nested lists of np.datetime64 / np.timedelta64 items (alone, or beside
    numbers, which make them objects), and object arrays holding them, went
    through check_array's conversion as numbers of their unit (days),
    without a word, where the arrays of them are refused."""
    est, Xs = fitted
    n = len(Xs[0])
    model, before = est.model_, est.transform(Xs)
    day = np.datetime64("2020-01-01")
    dates = [[day + np.timedelta64(i + j, "D") for j in range(5)] for i in range(n)]
    durations = [[np.timedelta64(i + j, "s") for j in range(5)] for i in range(n)]
    mixed = [[1.0, 2.0, day + np.timedelta64(i, "D"), 3.0, 4.0] for i in range(n)]  # read as objects
    cases = [
        ([dates, Xs[1]], r"^Xs\[0\]: got a list read as array of shape \(40, 5\) and dtype datetime64\[D\]"),
        ([Xs[0], tuple(durations)], r"^Xs\[1\]: got a tuple read as array .* dtype timedelta64\[s\]"),
        ([mixed, Xs[1]], r"^Xs\[0\]: got a list read as array of shape \(40, 5\) and dtype object"),
        ([np.array(mixed, dtype=object), Xs[1]], r"^Xs\[0\]: got array of shape \(40, 5\) and dtype object"),
    ]
    for views, message in cases:
        for call in (est.transform, est.fit):
            with pytest.raises(TypeError, match=message) as err:
                call(views)
            assert "(dates or durations); expected numbers" in str(err.value)
    assert est.model_ is model
    np.testing.assert_array_equal(est.transform(Xs), before)
    with pytest.raises(TypeError, match=r"^Xs: got a list read as array .* datetime64"):  # one view, bare
        MultimodalEmbedder(**FAST).fit(dates)
    # lists of numbers (also nested lists beside arrays) are taken as before
    np.testing.assert_array_equal(est.transform([Xs[0].tolist(), Xs[1]]), before)


def test_fit_transform_refuses_a_row_missing_in_every_view_before_training(monkeypatch):
    """fit_transform trained the whole model, then transform refused the row
    missing in every view (and the fit was undone): minutes of training for
    a refusal the views said up front. Now nothing trains; results of valid
    views are those of fit(Xs).transform(Xs)."""
    import grapheme_multimodal.sklearn as sk

    Xs = _views()
    expected = MultimodalEmbedder(**FAST).fit(Xs).transform(Xs)
    np.testing.assert_array_equal(MultimodalEmbedder(**FAST).fit_transform(Xs), expected)
    holed = [x.copy() for x in Xs]
    for x in holed:
        x[5] = np.nan
    trained = []
    real = sk.fit_with_stopping
    monkeypatch.setattr(sk, "fit_with_stopping", lambda *a, **k: trained.append(1) or real(*a, **k))
    with pytest.raises(ValueError, match=r"^Xs: row 5 is NaN in every view"):
        MultimodalEmbedder(**FAST).fit_transform(holed)
    assert trained == []
    MultimodalEmbedder(**FAST).fit(holed)  # fit alone takes the row, as ever
    assert trained == [1]
    with pytest.raises(TypeError, match=r"^fit_transform: got \['sample_weight'\]; expected no fit parameters"):
        MultimodalEmbedder(**FAST).fit_transform(Xs, sample_weight=np.ones(len(Xs[0])))


def _object_array(views: list) -> np.ndarray:
    """A 1-D object array holding the views (as np.array(views, dtype=object) does for ragged views)."""
    held = np.empty(len(views), dtype=object)
    for i, view in enumerate(views):
        held[i] = view
    return held


@pytest.mark.parametrize("container", [_object_array, pd.Series], ids=["object-array", "series"])
def test_views_in_an_object_array_or_series_are_refused_saying_what_to_pass(fitted, container):
    """Read as one view: numpy's "setting an array element with a sequence",
    naming nothing."""
    est, Xs = fitted
    held = container(list(Xs))
    for call in (est.transform, est.fit, MultimodalEmbedder(**FAST).fit):
        with pytest.raises(TypeError, match=r"^Xs: expected a list of \[n, d\] arrays .*got a 1-D \w+ of 2 arrays; "
                                            r"pass list\(Xs\)$"):
            call(held)
    np.testing.assert_array_equal(est.transform(list(held)), est.transform(Xs))


def test_a_fit_transform_whose_transform_fails_leaves_the_estimator_as_it_was(fitted):
    """fit takes a row missing in every view, transform refuses it: the call
    raised, yet the estimator held the new fit (a fitted one its new model,
    an unfitted one was fitted), where a failed fit leaves it as it was."""
    est, Xs = fitted
    model, before = est.model_, est.transform(Xs)
    holed = [x.copy() for x in Xs]
    for x in holed:
        x[3] = np.nan
    fresh = MultimodalEmbedder(**FAST)
    for target in (est, fresh):
        with pytest.raises(ValueError, match=r"^Xs: row 3 is NaN in every view"):
            target.fit_transform(holed)
    assert est.model_ is model
    np.testing.assert_array_equal(est.transform(Xs), before)
    assert not hasattr(fresh, "model_") and not hasattr(fresh, "n_views_")
    fresh.fit_transform(Xs)  # and fits afterwards as ever
