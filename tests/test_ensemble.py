"""An ensemble of recipe models measured as one (evaluation.EnsembleEmbedder,
uci.fit_ensemble): its embeddings are the members' side by side, so its
similarities are the mean of the members', and an ensemble of one is the
recipe's model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from grapheme_multimodal import evaluation, uci  # noqa: E402
from grapheme_multimodal.datasets import MultipleFeatures  # noqa: E402
from grapheme_multimodal.exceptions import InvalidValueError, ShapeError  # noqa: E402

SETTINGS = uci.TrainingSettings(epochs=2, batch_size=64)


def _views(n: int = 96, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    return {
        "a": (z @ rng.normal(size=(4, 9)) + 0.1 * rng.normal(size=(n, 9))).astype(np.float32),
        "b": (z @ rng.normal(size=(4, 6)) + 0.1 * rng.normal(size=(n, 6))).astype(np.float32),
        "c": (np.tanh(z @ rng.normal(size=(4, 5))) + 0.1 * rng.normal(size=(n, 5))).astype(np.float32),
    }


@pytest.fixture(scope="module")
def views() -> dict:
    return _views()


@pytest.fixture(scope="module")
def ensemble(views) -> evaluation.EnsembleEmbedder:
    return uci.fit_ensemble(views, 1, members=3, settings=SETTINGS)


def _weights(embedder: evaluation.ModelEmbedder) -> dict:
    return embedder.model.state_dict()


def test_members_train_from_their_own_seeds(views, ensemble):
    assert uci.member_seeds(1, 3) == (3, 4, 5)
    assert len(ensemble) == 3 and len(ensemble.models) == 3
    # member j is fit_views' model of seed 1 * 3 + j, bit for bit
    alone = uci.fit_views(views, 4, settings=SETTINGS)
    for name, value in _weights(alone).items():
        np.testing.assert_array_equal(_weights(ensemble.members[1])[name], value)
    # and the members differ from each other
    first, second = _weights(ensemble.members[0]), _weights(ensemble.members[1])
    assert any(not np.array_equal(first[k], second[k]) for k in first)


def test_an_ensemble_of_one_is_the_recipes_model(views):
    one = uci.fit_ensemble(views, 2, members=1, settings=SETTINGS)
    alone = uci.fit_views(views, 2, settings=SETTINGS)
    np.testing.assert_array_equal(one.embed_fused(views), alone.embed_fused(views))
    for v, emb in alone.embed_views(views).items():
        np.testing.assert_array_equal(one.embed_views(views)[v], emb)


def test_similarity_is_the_mean_of_the_members(views, ensemble):
    width = sum(m.model.config.embed_dim for m in ensemble.members)
    emb = ensemble.embed_views(views)
    per_member = [m.embed_views(views) for m in ensemble.members]
    for v in views:
        assert emb[v].shape == (96, width) and emb[v].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb[v], axis=1), 1.0, atol=1e-5)
    cosine = emb["a"] @ emb["b"].T
    mean = np.mean([p["a"] @ p["b"].T for p in per_member], axis=0)
    np.testing.assert_allclose(cosine, mean, atol=1e-5)
    fused = ensemble.embed_fused({"a": views["a"], "c": views["c"]})
    parts = [m.embed_fused({"a": views["a"], "c": views["c"]}) for m in ensemble.members]
    assert fused.shape == (96, width)
    np.testing.assert_allclose(fused @ fused.T, np.mean([p @ p.T for p in parts], axis=0), atol=1e-5)


def test_bind_is_the_mean_of_the_members_strengths(views, ensemble):
    emb = ensemble.embed_views(views)
    per_member = [m.embed_views(views) for m in ensemble.members]
    expected = np.mean([m.bind(p["a"], p["b"][::-1].copy()) for m, p in zip(ensemble.members, per_member)], axis=0)
    np.testing.assert_allclose(ensemble.bind(emb["a"], emb["b"][::-1]), expected, atol=1e-6)
    with pytest.raises(ShapeError, match=r"b: expected the ensemble's embeddings \[N, 384\]"):
        ensemble.bind(emb["a"], per_member[0]["b"])


def test_hidden_features_weigh_every_member_the_same(views, ensemble):
    hidden = ensemble.hidden_features(views)
    widths = [m.model.hidden_width() for m in ensemble.members]
    for v in views:
        assert hidden[v].shape == (96, sum(widths))
        for block in np.split(hidden[v], np.cumsum(widths)[:-1], axis=1):
            np.testing.assert_allclose(np.linalg.norm(block, axis=1), 1 / np.sqrt(3), atol=1e-5)


def test_evaluate_model_measures_an_ensemble(views, ensemble):
    labels = np.arange(96) % 4
    train = MultipleFeatures(views={v: x[:64] for v, x in views.items()}, labels=labels[:64])
    test = MultipleFeatures(views={v: x[64:] for v, x in views.items()}, labels=labels[64:])
    scores = evaluation.evaluate_model(ensemble, train, test, k=3)
    assert set(scores.retrieval) == {"a->b", "a->c", "b->a", "b->c", "c->a", "c->b"}
    assert scores.hidden_knn is not None and scores.binder_auc is not None
    assert 0.5 < scores.binder_auc <= 1.0  # the members' binder, averaged, still tells pairs apart


def test_members_without_hidden_layers_have_no_hidden_read_out(views):
    bare = uci.fit_ensemble(views, 0, members=2, settings=uci.TrainingSettings(epochs=1, encoder_hidden=()))
    assert not bare.has_hidden_features
    assert evaluation._embedders.optional_hidden_features(bare) is None
    with pytest.raises(InvalidValueError, match=r"hidden_features: members \[0, 1\] have no hidden layers"):
        bare.hidden_features(views)


@pytest.mark.parametrize(
    "members, error, message",
    [
        ([], InvalidValueError, "members: expected at least one ModelEmbedder, got none"),
        ("ab", TypeError, "members: expected a sequence of ModelEmbedder, got str"),
        ([object()], TypeError, r"members\[0\]: expected a ModelEmbedder"),
    ],
)
def test_ensemble_refuses_what_is_not_members(members, error, message):
    with pytest.raises(error, match=message):
        evaluation.EnsembleEmbedder(members)


def test_ensemble_refuses_members_of_other_views(views, ensemble):
    other = uci.fit_views({"a": views["a"], "b": views["b"]}, 0, settings=uci.TrainingSettings(epochs=1))
    with pytest.raises(InvalidValueError, match=r"members\[1\]: embeds views \['a', 'b'\]; expected the views of "
                                                r"members\[0\], \['a', 'b', 'c'\]"):
        evaluation.EnsembleEmbedder([ensemble.members[0], other])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"members": 0}, InvalidValueError, "members: expected a positive int, got 0"),
        ({"members": 2.0}, TypeError, r"members: expected a positive int, got 2\.0 \(float\)"),
        ({"members": True}, TypeError, r"members: expected a positive int, got True \(bool\)"),
        ({"seed": -1}, InvalidValueError, r"seed: expected an int in \[0, 2\*\*62\) \(member j trains with seed \* 3 \+ j\)"),
        ({"seed": 2**62}, InvalidValueError, r"seed: expected an int in \[0, 2\*\*62\)"),
        ({"settings": {"epochs": 1}}, TypeError, "settings: expected a TrainingSettings or None, got dict"),
    ],
)
def test_fit_ensemble_refuses_bad_arguments_before_training(views, kwargs, error, message):
    with pytest.raises(error, match=message):
        uci.fit_ensemble(views, **{"seed": 0, **kwargs})


def test_fit_ensemble_takes_its_seed_from_settings(views):
    by_settings = uci.fit_ensemble(views, members=2, settings=uci.TrainingSettings(epochs=1, seed=1))
    by_seed = uci.fit_ensemble(views, 1, members=2, settings=uci.TrainingSettings(epochs=1))
    np.testing.assert_array_equal(by_settings.embed_fused(views), by_seed.embed_fused(views))


def test_fit_ensemble_takes_numpy_integers(views):
    assert uci.member_seeds(np.int64(2), np.int64(2)) == (4, 5)
    ensemble = uci.fit_ensemble(views, np.uint8(1), members=np.int64(2), settings=uci.TrainingSettings(epochs=1))
    assert len(ensemble) == 2 and [m.model.config.seed for m in ensemble.members] == [2, 3]


# --- the scikit-learn estimator's n_members ---------------------------------------------

from sklearn.base import clone  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402

FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2, batch_size=32)


#: scikit-learn's checks fit the estimator some hundred times: narrow encoders (a hidden layer, a
#: skip and a shared head as the recipe's, 8 wide instead of 256 and 128), which the API contract they
#: check does not depend on, take about half the time.
CHECKED = dict(FAST, encoder_hidden=(8,), encoder_output_dim=8)


@parametrize_with_checks([MultimodalEmbedder(**CHECKED, n_members=2)])
def test_an_ensemble_estimator_passes_scikit_learns_checks(estimator, check):
    check(estimator)


def test_the_estimators_members_are_its_models_of_their_seeds(views):
    Xs = list(views.values())
    ensemble = MultimodalEmbedder(**FAST, n_members=3, random_state=1).fit(Xs)
    assert len(ensemble.models_) == 3 and len(ensemble.histories_) == 3 and ensemble.model_ is ensemble.models_[0]
    members = [MultimodalEmbedder(**FAST, random_state=seed).fit(Xs) for seed in uci.member_seeds(1, 3)]
    for member, model in zip(members, ensemble.models_):
        for name, value in member.model_.state_dict().items():
            np.testing.assert_array_equal(model.state_dict()[name], value)
    out = ensemble.transform(Xs)
    assert out.shape == (96, 24) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    parts = [m.transform(Xs) for m in members]
    np.testing.assert_allclose(out @ out.T, np.mean([p @ p.T for p in parts], axis=0), atol=1e-5)
    assert list(ensemble.get_feature_names_out()) == [f"multimodalembedder{j}" for j in range(24)]


def test_an_ensemble_of_one_is_the_estimator_as_before(views):
    Xs = list(views.values())
    one = MultimodalEmbedder(**FAST, n_members=1, random_state=2).fit(Xs)
    alone = MultimodalEmbedder(**FAST, random_state=2).fit(Xs)
    np.testing.assert_array_equal(one.transform(Xs), alone.transform(Xs))
    assert one.models_ == (one.model_,)


def test_an_ensemble_estimators_hidden_output_holds_every_members_features(views):
    Xs = list(views.values())
    est = MultimodalEmbedder(**FAST, encoder_hidden=(5,), n_members=2, output="hidden").fit(Xs)
    out = est.transform(Xs)
    assert out.shape == (96, 2 * 3 * 5)
    names = list(est.get_feature_names_out())
    assert names[:2] == ["multimodalembedder_member0_visual_hidden0", "multimodalembedder_member0_visual_hidden1"]
    assert names[15] == "multimodalembedder_member1_visual_hidden0" and len(names) == 30
    # each member's block as the member alone transforms it, / sqrt(2)
    alone = clone(est).set_params(n_members=1, random_state=1).fit(Xs).transform(Xs)
    np.testing.assert_allclose(out[:, 15:] * np.sqrt(2), alone, atol=1e-6)


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"n_members": 0}, InvalidValueError, "n_members: expected a positive int, got 0"),
        ({"n_members": 2.0}, TypeError, r"n_members: expected a positive int, got 2\.0 \(float\)"),
        ({"n_members": 3, "random_state": 2**62},
         InvalidValueError, r"random_state: expected an int in \[0, 2\*\*62\) \(member j trains with random_state \* 3 \+ j\)"),
    ],
)
def test_the_estimator_refuses_bad_members_before_training(views, params, error, message):
    est = MultimodalEmbedder(**{**FAST, **params})
    with pytest.raises(error, match=message):
        est.fit(list(views.values()))
    assert not hasattr(est, "models_") and not hasattr(est, "model_")


def test_an_estimator_pickled_before_n_members_existed_still_transforms(views):
    import pickle

    Xs = list(views.values())
    est = MultimodalEmbedder(**FAST).fit(Xs)
    expected = est.transform(Xs)
    state = est.__getstate__()
    for name in ("models_", "histories_", "n_members"):  # what an older version's pickle lacks
        state.pop(name)
    old = MultimodalEmbedder.__new__(MultimodalEmbedder)
    old.__setstate__(state)
    old = pickle.loads(pickle.dumps(old))
    np.testing.assert_array_equal(old.transform(Xs), expected)
    assert len(old.get_feature_names_out()) == 8
