"""``MultimodalEmbedder(view_sizes=[a, b])``: one array whose columns are
the views side by side, so scikit-learn's splitters, searches and
pipelines, which hand the estimator one X indexed by rows, take it as it
is (the README had users split X with a ``FunctionTransformer`` first)."""

import copy
import inspect
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from grapheme_multimodal.exceptions import InvalidTypeError, InvalidValueError, NonFiniteError  # noqa: E402
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402

SMALL = dict(epochs=2, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8,
             batch_size=32)


def _views(n: int = 60, widths=(6, 4), seed: int = 0):
    """Views of one latent (two classes), and the labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    z = rng.normal(size=(n, 3)) + 2.0 * y[:, None]
    return [z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d)) for d in widths], y


def _same_model(a: MultimodalEmbedder, b: MultimodalEmbedder) -> bool:
    state_a, state_b = a.model_.state_dict(), b.model_.state_dict()
    return state_a.keys() == state_b.keys() and all(np.array_equal(state_a[k], state_b[k]) for k in state_a)


def test_the_views_side_by_side_train_the_model_of_the_list_of_views_bit_for_bit():
    (A, B), _ = _views()
    A[3], B[5] = np.nan, np.nan  # a missing view of a row: all-NaN in its block, as in its own array
    listed = MultimodalEmbedder(**SMALL, random_state=3).fit([A, B])
    sided = MultimodalEmbedder(**SMALL, random_state=3, view_sizes=[6, 4]).fit(np.hstack([A, B]))
    assert _same_model(listed, sided)
    assert np.array_equal(sided.transform(np.hstack([A, B])), listed.transform([A, B]))
    assert sided.n_features_in_ == 10 and sided.n_views_ == 2 and sided.view_dims_ == [6, 4]
    untimed = [[{k: v for k, v in epoch.items() if k != "seconds"} for epoch in est.history_.epochs]
               for est in (listed, sided)]
    assert untimed[0] == untimed[1]
    in_one_call = MultimodalEmbedder(**SMALL, random_state=3, view_sizes=(6, 4)).fit_transform(np.hstack([A, B]))
    assert np.array_equal(in_one_call, listed.transform([A, B]))
    assert list(sided.get_feature_names_out()) == list(listed.get_feature_names_out())


def test_numpy_ints_and_arrays_are_sizes():
    (A, B), _ = _views()
    X = np.hstack([A, B])
    plain = MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit_transform(X)
    for sizes in ([np.int64(6), np.int32(4)], np.array([6, 4]), [np.array(6), 4]):
        assert np.array_equal(MultimodalEmbedder(**SMALL, view_sizes=sizes).fit_transform(X), plain)


def test_view_sizes_none_is_today_s_estimator():
    (A, B), _ = _views()
    est = MultimodalEmbedder(**SMALL)
    assert est.view_sizes is None
    listed = est.fit_transform([A, B])
    assert np.array_equal(MultimodalEmbedder(**SMALL).fit([A, B]).transform([A, B]), listed)
    one = MultimodalEmbedder(**SMALL).fit(np.hstack([A, B]))  # one 2-D array is one view, as ever
    assert one.n_views_ == 1 and one.view_dims_ == [10]


def test_a_masked_row_of_one_block_is_that_view_missing():
    (A, B), _ = _views()
    X = np.ma.masked_array(np.hstack([A, B]), mask=np.zeros((60, 10), bool))
    X.mask[2, 6:] = True
    nan = np.hstack([A, B])
    nan[2, 6:] = np.nan
    est = MultimodalEmbedder(**SMALL, view_sizes=[6, 4])
    assert np.array_equal(est.fit_transform(X), MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit_transform(nan))
    X.mask[4, 7] = True  # part of a view's columns of a row: no missing view
    with pytest.raises(NonFiniteError, match=r"^Xs\[:, 6:10\]: row 4 is masked in 1 of its 4 columns"):
        est.transform(X)
    with pytest.raises(InvalidValueError, match=r"^view_sizes: \[6, 5\] add up to 11 columns; expected the 10"):
        MultimodalEmbedder(**SMALL, view_sizes=[6, 5]).fit(X)  # the widths first: the blocks are not the views


def test_a_row_nan_in_part_of_a_block_is_refused_naming_the_block():
    (A, B), _ = _views()
    est = MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit(np.hstack([A, B]))
    X = np.hstack([A, B])
    X[7, 8] = np.nan
    with pytest.raises(NonFiniteError, match=r"^Xs\[:, 6:10\]: row 7 holds NaN inside a row \(in 1 of its 4 columns\)"):
        est.transform(X)
    X[:, :6] = np.nan
    X[7, 8] = 0.0
    with pytest.raises(InvalidValueError, match=r"^Xs\[:, 0:6\]: every row is NaN"):
        MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit(X)


def test_a_data_frame_keeps_its_names_as_one_view_s_and_each_view_s():
    pd = pytest.importorskip("pandas")
    (A, B), _ = _views()
    names = [f"a{j}" for j in range(6)] + [f"b{j}" for j in range(4)]
    frame = pd.DataFrame(np.hstack([A, B]), columns=names, index=np.arange(100, 160))
    est = MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit(frame)
    assert list(est.feature_names_in_) == names and est.n_features_in_ == 10
    plain = MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit_transform(np.hstack([A, B]))
    assert np.array_equal(est.transform(frame), plain)
    assert len(est.get_feature_names_out(names)) == 8
    with pytest.raises(ValueError, match="input_features"):
        est.get_feature_names_out(names[::-1])
    with pytest.raises(ValueError, match="feature names"):
        est.transform(frame[names[::-1]])
    # the models keep each view's names: model_ used alone refuses one view's columns reordered
    assert est.model_.input_columns("visual") == tuple(names[:6])
    assert est.model_.input_columns("auditory") == tuple(names[6:])
    out = est.set_output(transform="pandas").transform(frame)
    assert list(out.index) == list(frame.index)


def test_a_missing_value_of_a_frame_is_named_by_its_column():
    pd = pytest.importorskip("pandas")
    (A, B), _ = _views()
    frame = pd.DataFrame(np.hstack([A, B]), columns=[f"c{j}" for j in range(10)]).astype("Float64")
    frame.iloc[4, 7] = pd.NA
    with pytest.raises(NonFiniteError, match=r"^Xs\[:, 6:10\]: row 4 holds <NA> \(a missing value\) in column 'c7'"):
        MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit(frame)


@pytest.mark.parametrize("bad, error, said", [
    (10, InvalidTypeError, r"got 10 \(int\)"),
    ("64", InvalidTypeError, r"got '64' \(str\)"),
    ([], InvalidValueError, r"got an empty list"),
    ([6.0, 4], InvalidTypeError, r"item 0 is 6\.0 \(float\)"),
    ([True, 9], InvalidTypeError, r"item 0 is True \(bool\)"),
    ([6, "4"], InvalidTypeError, r"item 1 is '4' \(str\)"),
    ([0, 10], InvalidValueError, r"item 0 is 0;"),
    ([12, -2], InvalidValueError, r"item 1 is -2;"),
    ({6, 4}, InvalidTypeError, r"got \{4, 6\} \(set\)"),
    (iter([6, 4]), InvalidTypeError, r"\(list_iterator\)"),
    ([1] * 8 + [2], InvalidValueError, r"got 9 views; expected at most 7"),
    ([6, 5], InvalidValueError, r"\[6, 5\] add up to 11 columns; expected the 10 columns of Xs"),
    ([2**64 - 1, 1], InvalidValueError, r"add up to 18446744073709551616 columns; expected the 10 columns"),
])
def test_bad_view_sizes_are_refused_at_fit_naming_them(bad, error, said):
    (A, B), _ = _views()
    est = MultimodalEmbedder(**SMALL, view_sizes=bad)
    assert est.view_sizes is bad  # stored as given, as scikit-learn requires
    with pytest.raises(error, match=r"^view_sizes: .*" + said) as err:
        est.fit(np.hstack([A, B]))
    assert err.value.arg == "view_sizes" and not hasattr(est, "model_")


def test_a_list_of_views_beside_view_sizes_is_refused_and_leaves_the_model():
    (A, B), _ = _views()
    est = MultimodalEmbedder(**SMALL, view_sizes=[6, 4])
    with pytest.raises(InvalidValueError, match=r"^Xs: got a list of 2 views, view_sizes=\[6, 4\]; expected one 2-D "
                                                r"array of 10 columns.*give one array .* or drop view_sizes$"):
        est.fit([A, B])
    with pytest.raises(InvalidValueError, match=r"^Xs: got a 3-D array of 2 views"):
        est.fit(np.stack([A[:, :4], B]))
    est.fit(np.hstack([A, B]))
    model, out = est.model_, est.transform(np.hstack([A, B]))
    with pytest.raises(InvalidValueError, match=r"fitted with view_sizes=\[6, 4\].*drop view_sizes and fit again"):
        est.transform([A, B])
    with pytest.raises(ValueError, match=r"^Xs: X has 6 features, but MultimodalEmbedder is expecting 10"):
        est.transform(A)
    with pytest.raises(InvalidValueError, match="add up to 10 columns; expected the 6"):
        est.fit(A)
    assert est.model_ is model and np.array_equal(est.transform(np.hstack([A, B])), out)


def test_transform_reads_the_sizes_of_the_fit():
    (A, B), _ = _views()
    est = MultimodalEmbedder(**SMALL, view_sizes=[6, 4]).fit(np.hstack([A, B]))
    out = est.transform(np.hstack([A, B]))
    est.set_params(view_sizes=[5, 5])  # the next fit's; this model's views are those it learned
    assert np.array_equal(est.transform(np.hstack([A, B])), out)


def test_cross_val_score_and_grid_search_take_one_array():
    (A, B), y = _views()
    X = np.hstack([A, B])
    pipe = make_pipeline(MultimodalEmbedder(**SMALL, view_sizes=[6, 4]), LogisticRegression())
    scores = cross_val_score(pipe, X, y, cv=3, error_score="raise")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    search = GridSearchCV(MultimodalEmbedder(**SMALL, view_sizes=[6, 4]), param_grid={"embed_dim": [8, 16]}, cv=2,
                          scoring=lambda est, X, y=None: -float(np.abs(est.transform(X)).mean()), error_score="raise")
    search.fit(X)
    assert search.best_estimator_.view_sizes == [6, 4] and search.best_estimator_.n_views_ == 2


def test_clone_params_repr_pickle_and_deepcopy_keep_view_sizes():
    (A, B), _ = _views()
    X = np.hstack([A, B])
    est = MultimodalEmbedder(**SMALL, view_sizes=[6, 4])
    assert est.get_params()["view_sizes"] == [6, 4] and clone(est).view_sizes == [6, 4]
    assert "view_sizes=[6, 4]" in repr(est)
    assert est.set_params(view_sizes=(3, 7)).view_sizes == (3, 7)
    est.set_params(view_sizes=[6, 4]).fit(X)
    out = est.transform(X)
    for twin in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert twin.view_sizes == [6, 4] and np.array_equal(twin.transform(X), out)
        with pytest.raises(InvalidValueError, match="fitted with view_sizes"):
            twin.transform([A, B])
    # last: a positional call of the parameters before it means what it meant
    assert list(inspect.signature(MultimodalEmbedder).parameters)[-2:] == ["weight_decay", "view_sizes"]


def test_an_estimator_pickled_before_view_sizes_loads_as_one_that_takes_a_list():
    (A, B), _ = _views()
    est = MultimodalEmbedder(**SMALL).fit([A, B])
    state = est.__getstate__()
    del state["view_sizes"], state["_fitted_view_sizes"]  # what a pickle from before the option holds
    old = MultimodalEmbedder.__new__(MultimodalEmbedder)
    old.__setstate__(state)
    assert old.get_params()["view_sizes"] is None and clone(old).view_sizes is None
    assert np.array_equal(pickle.loads(pickle.dumps(old)).transform([A, B]), est.transform([A, B]))

