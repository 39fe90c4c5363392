"""Defects of the data-science surface left open by the earlier audits, found
by feeding it what users feed it: a view that is no [N, d] array given to
an ensemble of several members, hand-made Nutrimouse data (a subset of the
mice, no mice, a view of one column, more repeats than memory holds), a
masked float32 view given to the estimator, and integer views beyond 2**53
standardised for the anchors. Each test says what a user saw before the fix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import grapheme_multimodal as gm

pytest.importorskip("sklearn")

from grapheme_multimodal import datasets, evaluation, uci  # noqa: E402

_SETTINGS = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=16, num_heads=2, encoder_hidden=(16,),
                                 batch_size=32, validation_fraction=0.0)


# ------------------------------------------------ 1. fit_ensemble's views of no width
@pytest.mark.parametrize("view, error, message", [
    (np.arange(20.0), gm.ShapeError, r"^views\['a'\]: expected a 2-D array \[N, d\], got shape \(20,\)"),
    (np.float64(1.0), gm.ShapeError, r"^views\['a'\]: expected a 2-D array \[N, d\], got shape \(\)"),
    (None, TypeError, r"^views\['a'\]: expected a real-valued numeric array"),
    ("abc", TypeError, r"^views\['a'\]: expected a real-valued numeric array"),
    ([[1.0, 2.0], [3.0]], gm.InvalidValueError, r"^views\['a'\]: could not be read as a numeric array"),
    ({1.0, 2.0}, TypeError, r"^views\['a'\]: got a set; expected an array or a list"),
])
@pytest.mark.parametrize("members", [1, 2])
def test_fit_ensemble_names_a_view_of_no_width_as_one_member_does(view, error, message, members) -> None:
    # with members > 1 each was an IndexError "tuple index out of range" (the ragged list numpy's own
    # ValueError), naming no view: the widths were read as np.shape(x)[1] before any check; one member
    # (fit_views) named the view all along
    views = {"a": view, "b": np.random.default_rng(0).normal(size=(20, 3))}
    with pytest.raises(error, match=message) as err:
        uci.fit_ensemble(views, settings=_SETTINGS, members=members)
    if isinstance(err.value, gm.GraphemeError):
        assert err.value.arg == "views['a']"


def test_fit_ensemble_names_a_view_keyed_by_an_int() -> None:
    views = {0: np.random.default_rng(0).normal(size=(20, 3)), 1: np.arange(20.0)}
    with pytest.raises(gm.ShapeError, match=r"^views\[1\]: expected a 2-D array") as err:
        uci.fit_ensemble(views, settings=_SETTINGS, members=2)
    assert err.value.arg == "views[1]"


# ------------------------------------------------ 2. nutrimouse_cv of hand-made data
def _mice(data, rows: np.ndarray, **changes):
    return dataclasses.replace(data, views={v: x[rows] for v, x in data.views.items()}, genotype=data.genotype[rows],
                               diet=data.diet[rows], **changes)


def test_nutrimouse_cv_of_mice_without_one_diet_is_that_of_the_diets_they_have(nutrimouse) -> None:
    # every n_splits was refused: "n_splits: expected an int in [2, 0] (the fewest mice of one diet ...)", as
    # np.bincount counted the diet no mouse of the subset has as a diet of 0 mice
    rows = np.flatnonzero(nutrimouse.diet != 0)
    subset = _mice(nutrimouse, rows)
    # the same mice with the four diets they have coded 0..3: what worked before, the same folds
    recoded = dataclasses.replace(subset, diet=subset.diet - 1, diet_names=nutrimouse.diet_names[1:])
    got = evaluation.nutrimouse_cv(None, subset, n_repeats=1)
    expected = evaluation.nutrimouse_cv(None, recoded, n_repeats=1)
    assert got.keys() == expected.keys()
    for method in expected:
        for target in expected[method]:
            np.testing.assert_array_equal(got[method][target], expected[method][target])
    with pytest.raises(gm.InvalidValueError, match=r"^n_splits: expected an int in \[2, 8\]"):
        evaluation.nutrimouse_cv(None, subset, n_repeats=1, n_splits=9)


def test_nutrimouse_cv_of_no_mice_names_the_data(nutrimouse) -> None:
    # was numpy's "zero-size array to reduction operation minimum which has no identity"
    with pytest.raises(gm.ShapeError, match=r"^data\.views\['gene'\]: expected a non-empty 2-D array") as err:
        evaluation.nutrimouse_cv(None, _mice(nutrimouse, np.arange(0)), n_repeats=1)
    assert err.value.arg == "data.views['gene']"


def test_nutrimouse_cv_names_a_view_too_narrow_for_the_anchors(nutrimouse) -> None:
    # was scikit-learn's "`n_components` upper bound is 1. Got 2 instead. Reduce `n_components`.", naming no view
    narrow = dataclasses.replace(nutrimouse, views={**nutrimouse.views, "lipid": nutrimouse.views["lipid"][:, :1]})
    with pytest.raises(gm.InvalidValueError, match=r"^data\.views\['lipid'\]: has 1 column; the anchors fit 2 "
                                                   r"canonical components") as err:
        evaluation.nutrimouse_cv(None, narrow, n_repeats=1)
    assert err.value.arg == "data.views['lipid']"


# ------------------------------------------------ 3. the estimator's masked float32 views
def test_masked_float32_views_are_embedded_as_their_plain_float32_arrays() -> None:
    # a masked float32 view came back float64 (it was cast to float64 before check_array), where the same
    # plain float32 array, its masked rows NaN, gives float32: twice the memory, and not the dtype
    # MultimodalEmbedder's tags promise to preserve
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 3))
    a, b = (z @ rng.normal(size=(3, 5))).astype(np.float32), (z @ rng.normal(size=(3, 4))).astype(np.float32)
    hidden = np.repeat((np.arange(40) % 7 == 0)[:, None], 5, axis=1)
    masked = np.ma.masked_array(a, mask=hidden)
    plain = np.where(hidden, np.float32(np.nan), a)
    options = dict(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, encoder_hidden=(16,), shared_head=(16, 8),
                   batch_size=16, validation_fraction=0)
    estimator = MultimodalEmbedder(**options)
    got = estimator.fit_transform([masked, np.ma.masked_array(b)])
    expected = MultimodalEmbedder(**options).fit_transform([plain, b])
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    one_view = MultimodalEmbedder(**options).fit(a)
    assert one_view.transform(np.ma.masked_array(a)).dtype == one_view.transform(a).dtype == np.float32
    # what check_array gives the plain array, as before: float64 for float16, integers and big-endian float32
    for other in (a.astype(np.float16), a.astype(">f4"), (a * 100).astype(np.int32)):
        assert one_view.transform(np.ma.masked_array(other)).dtype == one_view.transform(other).dtype == np.float64


# ------------------------------------------------ 4. standardize of integers beyond 2**53
@pytest.mark.parametrize("offset, dtype", [(2**61, np.int64), (-(2**62), np.int64), (2**63 + 5, np.uint64)])
def test_standardize_of_integers_beyond_2_to_53_is_that_of_the_integers(offset, dtype) -> None:
    # nanosecond timestamps or ids: cast to float64 as they were, they rounded to float64's spacing there
    # (256 and more), and the z-scores of rows a few units apart were one value (off by up to 1.9 here); the
    # anchors standardise every view first, so exact CCA, the raw k-NN and the probe saw that too
    rng = np.random.default_rng(0)
    small = {"a": rng.integers(0, 1000, size=(60, 3)), "b": rng.integers(0, 1000, size=(60, 2))}
    test = {v: rng.integers(0, 1000, size=(20, x.shape[1])) for v, x in small.items()}
    shift = lambda views: {v: (x.astype(dtype) + dtype(offset)) if offset > 0 else x + offset  # noqa: E731
                           for v, x in views.items()}
    got = datasets.standardize(shift(small), shift(test))
    expected = datasets.standardize(small, test)
    for split in range(2):
        for v in small:
            np.testing.assert_array_equal(got[split][v], expected[split][v])
    labels = np.arange(60) % 3
    splits = [datasets.MultipleFeatures(views, y) for views, y in ((small, labels), (test, labels[:20]))]
    shifted = [datasets.MultipleFeatures(shift(s.views), s.labels) for s in splits]
    assert evaluation.compute_anchors(*shifted, cca_components=2, multiview=()) == \
        evaluation.compute_anchors(*splits, cca_components=2, multiview=())


def test_standardize_of_ordinary_views_is_as_before() -> None:
    # integers within 2**53 and floats take the old path, cast as they are
    rng = np.random.default_rng(1)
    for view in (rng.integers(-2**40, 2**40, size=(30, 4)), rng.normal(size=(30, 4))):
        x = view.astype(np.float64)
        expected = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
        np.testing.assert_array_equal(datasets.standardize({"v": view})[0]["v"], expected)


@pytest.mark.parametrize("n_repeats", [10**15, 2**63])
def test_nutrimouse_cv_refuses_more_repeats_than_memory_holds_by_name(nutrimouse, n_repeats) -> None:
    # were numpy's "Unable to allocate 7.1 PiB for an array with shape (1000000000000000,)" and, at 2**63,
    # "Maximum allowed dimension exceeded" (a ValueError), naming no argument
    with pytest.raises(gm.TooLargeError, match=rf"^n_repeats: the figures of {n_repeats:,} repeats take ") as err:
        evaluation.nutrimouse_cv(None, nutrimouse, n_repeats=n_repeats)
    assert err.value.arg == "n_repeats"


def test_transform_of_mixed_float32_and_float64_views_is_float64_whatever_their_order() -> None:
    # the output took the first view's dtype: the same views gave float32 or float64 by their order
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 4))
    est = MultimodalEmbedder(epochs=1, embed_dim=8, hidden_dim=16, num_heads=2, encoder_hidden=(16,),
                             batch_size=20, random_state=0).fit([a, b])
    both64 = est.transform([a, b])
    for views in ([a.astype(np.float32), b], [a, b.astype(np.float32)]):
        out = est.transform(views)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, both64)  # float32 views hold other numbers only past float32's precision
    assert est.transform([a.astype(np.float32), b.astype(np.float32)]).dtype == np.float32


def test_nutrimouse_cv_with_nothing_to_measure_is_refused(nutrimouse) -> None:
    """No recipe and no anchors returned {} after every fold's work, as if measured."""
    with pytest.raises(gm.InvalidValueError, match=r"^anchors: got False with recipe None") as info:
        evaluation.nutrimouse_cv(None, nutrimouse, anchors=False)
    assert info.value.arg == "anchors"
