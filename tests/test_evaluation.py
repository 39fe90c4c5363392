"""The evaluation harness: exact CCA, the anchors, the model measurements
and the Nutrimouse protocol, checked on cases with known answers."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import datasets, evaluation, uci
from grapheme_multimodal.evaluation import ExactCCA

pytest.importorskip("sklearn")


def correlated_views(n=400, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = z @ rng.normal(size=(3, 7)) + 0.3 * rng.normal(size=(n, 7))
    y = z[:, :2] @ rng.normal(size=(2, 5)) + 0.3 * rng.normal(size=(n, 5))
    return x, y


# --- ExactCCA ----------------------------------------------------------------


def test_exact_cca_scores_are_canonical_variates():
    x, y = correlated_views()
    cca = ExactCCA(n_components=4).fit(x.astype(np.float32), y)
    a, b = cca.transform(x, y)
    assert a.dtype == np.float64 and a.shape == (400, 4)
    np.testing.assert_allclose(np.cov(a.T), np.eye(4), atol=1e-4)  # unit variance, uncorrelated
    np.testing.assert_allclose(np.cov(b.T), np.eye(4), atol=1e-4)
    np.testing.assert_allclose(np.diag(np.cov(a.T, b.T)[:4, 4:]), cca.correlations_, atol=1e-4)
    assert np.all(np.diff(cca.correlations_) <= 0)
    # Two latent factors are shared: two high correlations, then noise.
    assert cca.correlations_[1] > 0.9 > 0.3 > cca.correlations_[2]
    np.testing.assert_allclose(cca.transform(x), a)
    np.testing.assert_allclose(ExactCCA(4).fit_transform(x, y)[1], b, atol=1e-5)  # x was float32 above


def test_exact_cca_agrees_with_cca_zoo():
    linear = pytest.importorskip("cca_zoo.linear")
    x, y = correlated_views(seed=1)
    ours = ExactCCA(n_components=3, reg=1e-9).fit(x, y)
    theirs = linear.CCA(n_components=3).fit([x, y])
    ours_a, ours_b = ours.transform(x, y)
    zoo_a, zoo_b = theirs.transform([x, y])
    for k in range(3):  # the same directions, up to sign and scale
        assert abs(np.corrcoef(ours_a[:, k], zoo_a[:, k])[0, 1]) > 1 - 1e-8
        assert abs(np.corrcoef(ours_b[:, k], zoo_b[:, k])[0, 1]) > 1 - 1e-8
        np.testing.assert_allclose(
            abs(np.corrcoef(zoo_a[:, k], zoo_b[:, k])[0, 1]), ours.correlations_[k], rtol=1e-6
        )


@pytest.mark.parametrize("scale", [1e300, 1e200, 1e-300, 1e-310])
def test_exact_cca_does_not_depend_on_how_large_or_small_a_view_is(scale):
    # X^T X of 1e200 overflowed (LinAlgError), of 1e-300 underflowed (correlations near 1e-143).
    x, y = correlated_views()
    plain = ExactCCA(3).fit(x, y)
    scaled = ExactCCA(3).fit(x * scale, y)
    np.testing.assert_allclose(scaled.correlations_, plain.correlations_, rtol=1e-10)
    for got, want in zip(scaled.transform(x * scale, y), plain.transform(x, y)):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_exact_cca_of_views_near_float64_s_largest_is_the_cca_of_the_views():
    # Their column sums (and values minus the mean) overflowed: numpy's LinAlgError
    # "Eigenvalues did not converge", naming nothing, for finite views.
    x, y = correlated_views()
    plain = ExactCCA(3).fit(x, y)
    scale = 1.7e308 / np.abs(x).max()
    huge = ExactCCA(3).fit(x * scale, y)
    np.testing.assert_allclose(huge.correlations_, plain.correlations_, rtol=1e-10)
    np.testing.assert_allclose(huge.transform(x * scale), plain.transform(x), rtol=1e-8, atol=1e-10)
    many_rows = ExactCCA(3).fit(np.tile(x, (20, 1)) * 1e306, np.tile(y, (20, 1)))
    np.testing.assert_allclose(many_rows.correlations_, ExactCCA(3).fit(np.tile(x, (20, 1)), np.tile(y, (20, 1))).correlations_, rtol=1e-10)


def test_exact_cca_scores_that_overflow_are_refused_not_returned_as_nan():
    x, y = correlated_views()
    cca = ExactCCA(2).fit(x * 1e-300, y)
    with pytest.raises(gm.NonFiniteError, match="X: the canonical scores of row 0 overflow float64") as err:
        cca.transform(x * 1e300)
    assert err.value.arg == "X"
    with pytest.raises(gm.NonFiniteError, match="Y: the canonical scores") as err:
        ExactCCA(2).fit(x, y * 1e-300).transform(x, y * 1e300)
    assert err.value.arg == "Y"


def test_exact_cca_rejects_bad_input():
    x, y = correlated_views(n=20)
    with pytest.raises(gm.InvalidValueError, match=r"^n_components: expected an int in \[1, 5\]") as err:
        ExactCCA(6).fit(x, y)
    assert err.value.arg == "n_components"
    with pytest.raises(gm.ShapeError, match="same rows"):
        ExactCCA(2).fit(x, y[:10])
    with pytest.raises(gm.NonFiniteError, match="NaN"):
        ExactCCA(2).fit(np.where(np.eye(20, 7) > 0, np.nan, x), y)
    with pytest.raises(gm.InvalidValueError, match="reg"):
        ExactCCA(2, reg=0).fit(x, y)
    with pytest.raises(gm.NotFittedError, match="not fitted"):
        ExactCCA(2).transform(x)
    with pytest.raises(gm.ShapeError, match=r"shape \[n, 7\]") as err:
        ExactCCA(2).fit(x, y).transform(x[:, :3])
    assert err.value.arg == "X"


def test_exact_cca_before_fit_raises_what_scikit_learn_callers_catch():
    # was a RuntimeError: `except NotFittedError` (scikit-learn's) and `except ValueError` missed it
    from sklearn.exceptions import NotFittedError as ScikitLearnNotFittedError

    x, y = correlated_views(n=20)
    for call in (lambda: ExactCCA(2).transform(x), lambda: ExactCCA(2).transform(x, y)):
        with pytest.raises(ScikitLearnNotFittedError, match=r"ExactCCA: not fitted yet; call fit\(X, Y\)") as err:
            call()
        assert isinstance(err.value, gm.NotFittedError) and isinstance(err.value, ValueError)
        again = pickle.loads(pickle.dumps(err.value))  # from a worker process, as every error of ours
        assert type(again) is type(err.value) and str(again) == str(err.value)


def test_not_fitted_error_without_scikit_learn_is_still_ours(monkeypatch):
    # scikit-learn is optional: the error is then the library's own, with the same bases
    monkeypatch.delitem(sys.modules, "grapheme_multimodal._sklearn_errors", raising=False)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what an import then finds: "No module named sklearn"
    monkeypatch.setitem(sys.modules, "sklearn.exceptions", None)
    with pytest.raises(gm.NotFittedError) as err:
        ExactCCA(2).transform(np.zeros((3, 2)))
    assert type(err.value) is gm.NotFittedError
    assert isinstance(err.value, ValueError) and isinstance(err.value, AttributeError)


def test_an_exact_cca_refit_that_fails_leaves_the_fit_as_it_was(monkeypatch):
    # the means were set before the SVD: a refit failing there kept the old weights beside
    # the new means, and transform scored with a mix of the two fits
    x, y = correlated_views(n=50)
    cca = ExactCCA(2).fit(x, y)
    before = cca.transform(x, y)

    def no_convergence(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", no_convergence)
    with pytest.raises(np.linalg.LinAlgError):
        cca.fit(x + 100.0, y - 7.0)
    monkeypatch.undo()
    for got, want in zip(cca.transform(x, y), before):
        np.testing.assert_array_equal(got, want)


def test_exact_cca_is_cloned_as_scikit_learn_clones_estimators():
    # had no get_params: clone (and every grid search) raised "does not seem to be a scikit-learn estimator"
    from sklearn.base import clone

    x, y = correlated_views(n=50)
    fitted = ExactCCA(3, reg=1e-3).fit(x, y)
    copy = clone(fitted)
    assert copy.get_params() == {"n_components": 3, "reg": 1e-3} and not hasattr(copy, "x_weights_")
    np.testing.assert_array_equal(copy.fit(x, y).transform(x), fitted.transform(x))
    assert copy.set_params(n_components=2) is copy and copy.fit(x, y).correlations_.shape == (2,)
    with pytest.raises(gm.InvalidValueError, match=r"set_params: unknown parameters \['n_component'\]"):
        copy.set_params(n_component=1)
    assert repr(copy) == "ExactCCA(n_components=2, reg=0.001)"


def test_pairwise_cca_retrieval_names_the_view_whose_scores_are_zero():
    # was the metric's "gallery has 20 all-zero rows ...; use metric='euclidean'": an argument
    # the caller never passed, and a metric this function does not take
    rng = np.random.default_rng(0)
    labels = np.arange(20) % 2
    train = {"a": rng.normal(size=(50, 4)), "b": np.ones((50, 3))}
    test = {"a": rng.normal(size=(20, 4)), "b": np.ones((20, 3))}
    # a view constant in training is refused as such, naming it (its scores were 0, or noise of ~1e157)
    with pytest.raises(gm.InvalidValueError, match=r"^train_std\['b'\]: every column is constant") as err:
        evaluation.pairwise_cca_retrieval(train, test, labels, n_components=2)
    assert err.value.arg == "train_std['b']"
    train["b"] = rng.normal(size=(50, 3))
    test["b"] = rng.normal(size=(20, 3))
    test["a"][3] = train["a"].mean(axis=0)  # exactly at the training mean: no direction either
    with pytest.raises(gm.InvalidValueError, match=r"^test_std\['a'\]: .*\(first: row 3\)"):
        evaluation.pairwise_cca_retrieval(train, test, labels, n_components=2)
    test["a"][3] += 0.1
    assert set(evaluation.pairwise_cca_retrieval(train, test, labels, n_components=2)) == {"a->b", "b->a"}


# --- a model with known answers ----------------------------------------------


class Oracle:
    """Every view of an event embeds to the event's own code; the fused
    embedding is the code too."""

    def __init__(self, codes: dict):
        self.codes = codes

    def _rows(self, views):
        first = next(iter(views.values()))
        return self.codes[first[:, 0].tobytes()]

    def embed_views(self, views):
        return {v: self._rows({v: x}) for v, x in views.items()}

    def embed_fused(self, views):
        return self._rows(views)

    def bind(self, a, b):
        return -np.linalg.norm(a - b, axis=1)  # the highest for the same event


def oracle_split():
    """Three views of 10 classes; view 'a' column 0 identifies the rows."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)
    codes = np.eye(10)[labels] + 0.05 * rng.normal(size=(200, 10))
    views = {"a": np.column_stack([np.arange(200.0), rng.normal(size=(200, 3))]),
             "b": rng.normal(size=(200, 4)), "c": rng.normal(size=(200, 2))}
    data = datasets.MultipleFeatures(views=views, labels=labels)
    train, test = data.subset(np.arange(0, 200, 2)), data.subset(np.arange(1, 200, 2))
    lookup = {}
    for split, rows in ((train, np.arange(0, 200, 2)), (test, np.arange(1, 200, 2))):
        for name, x in split.views.items():
            lookup[x[:, 0].tobytes()] = codes[rows]
    return train, test, Oracle(lookup)


def test_evaluate_model_on_an_oracle_gives_perfect_scores():
    train, test, oracle = oracle_split()
    scores = evaluation.evaluate_model(oracle, train, test)
    assert set(scores.retrieval) == {"a->b", "a->c", "b->a", "b->c", "c->a", "c->b"}
    for r in scores.retrieval.values():
        assert r == {"class_precision_at_1": 1.0, "instance_recall_at_1": 1.0}
    assert scores.fused_knn == 1.0 and scores.fused_probe == 1.0
    assert scores.two_view_knn == {"a+b": 1.0, "a+c": 1.0, "b+c": 1.0}
    assert scores.binder_auc == 1.0
    assert scores.mean_retrieval("instance_recall_at_1") == 1.0
    assert scores.hidden_knn is None and scores.hidden_probe is None  # the oracle has no hidden_features


def test_evaluate_model_names_the_view_an_embedder_embedded_as_zeros():
    # was cross_view_retrieval's "query has 1 all-zero rows ...; use metric='euclidean'",
    # an argument and a metric evaluate_model does not have
    train, test, oracle = oracle_split()

    class ZeroRow:
        embed_fused = oracle.embed_fused

        def embed_views(self, views):
            out = dict(oracle.embed_views(views))
            if "b" in out and len(out["b"]) == len(test.labels):
                out["b"] = out["b"].copy()
                out["b"][4] = 0.0
            return out

    with pytest.raises(gm.InvalidValueError, match=r"^embedder\.embed_views\(\.\.\.\)\['b'\]: the embeddings of 1 "
                                                   r"row\(s\) \(first: row 4\) are all zero") as err:
        evaluation.evaluate_model(ZeroRow(), train, test, two_views=False)
    assert err.value.arg == "embedder.embed_views(...)['b']"


def test_hidden_features_are_scored_side_by_side_with_each_view_unit():
    train, test, oracle = oracle_split()

    class WithHidden:
        embed_views = oracle.embed_views
        embed_fused = oracle.embed_fused

        def hidden_features(self, views):  # the oracle's codes, each view scaled differently: the scale must not matter
            return {v: (i + 1) * 10.0 * x for i, (v, x) in enumerate(oracle.embed_views(views).items())}

    scores = evaluation.evaluate_model(WithHidden(), train, test, two_views=False)
    assert scores.hidden_knn == 1.0 and scores.hidden_probe == 1.0
    summary = evaluation.compare([scores, scores], evaluation.compute_anchors(train, test, cca_components=2, multiview=()))
    assert summary["hidden_knn"] == {"mean": 1.0, "std": 0.0} and summary["hidden_probe"]["mean"] == 1.0
    views = {"a": np.array([[3.0, 4.0], [0.0, 0.0]]), "b": np.array([[0.0, 2.0], [1.0, 0.0]])}
    np.testing.assert_array_equal(evaluation.unit_side_by_side(views, ["b", "a"]),
                                  [[0.0, 1.0, 0.6, 0.8], [1.0, 0.0, 0.0, 0.0]])  # a zero row stays zero


def test_a_model_without_a_binder_gets_no_auc_and_compare_counts_pairs():
    train, test, oracle = oracle_split()

    class NoBinder:
        embed_views = oracle.embed_views
        embed_fused = oracle.embed_fused

    assert isinstance(NoBinder(), evaluation.ViewEmbedder)
    scores = evaluation.evaluate_model(NoBinder(), train, test)
    assert scores.binder_auc is None
    anchors = evaluation.compute_anchors(train, test, cca_components=2, multiview=())
    # Random views share nothing: CCA is near chance, the oracle is perfect.
    assert np.mean([r["instance_recall_at_1"] for r in anchors.cca.values()]) < 0.1
    summary = evaluation.compare([scores, scores], anchors)
    assert summary["pairs_within_tolerance_of_cca"] == {"class_precision_at_1": 6, "instance_recall_at_1": 6}
    assert summary["two_view_pairs_at_least_raw"] == 3 and summary["binder_auc"] is None
    assert summary["fused_knn"] == {"mean": 1.0, "std": 0.0}
    worse = evaluation.ModelScores(
        retrieval={p: {"class_precision_at_1": anchors.cca[p]["class_precision_at_1"] - 0.03,
                       # a figure is a fraction: not below 0, where an anchor is at 0 (compare refuses one)
                       "instance_recall_at_1": max(0.0, anchors.cca[p]["instance_recall_at_1"] - 0.01)}
                   for p in anchors.cca},
        fused_knn=0.5, fused_probe=0.5, two_view_knn={p: 0.0 for p in anchors.raw_two_view_knn}, binder_auc=None)
    counts = evaluation.compare([worse], anchors)
    assert counts["pairs_within_tolerance_of_cca"] == {"class_precision_at_1": 0, "instance_recall_at_1": 6}
    assert counts["two_view_pairs_at_least_raw"] == 0
    for tolerance in (float("nan"), -0.01, float("inf")):  # NaN counted no pair within it, without a word
        with pytest.raises(gm.InvalidValueError, match="tolerance: expected a finite number >= 0"):
            evaluation.compare([worse], anchors, tolerance=tolerance)


# --- our model through the adapter -----------------------------------------


def test_model_embedder_reads_the_models_slots():
    rng = np.random.default_rng(0)
    views = {"fou": rng.normal(size=(5, 4)), "fac": rng.normal(size=(5, 3)), "mor": rng.normal(size=(5, 2))}
    modalities = evaluation.view_modalities(views)
    assert [m.name for m in modalities.values()] == ["VISUAL", "AUDITORY", "LINGUISTIC"]
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0,
                                   input_dims={m: views[v].shape[1] for v, m in modalities.items()})
    embedder = evaluation.ModelEmbedder(model, modalities)
    emb, fused = model.encode_and_fuse({modalities[v]: x for v, x in views.items()})
    got = embedder.embed_views(views)
    for v, m in modalities.items():
        np.testing.assert_array_equal(got[v], emb[:, m.index])
    np.testing.assert_array_equal(embedder.embed_fused(views), fused)
    _, only_two = model.encode_and_fuse({modalities["fou"]: views["fou"], modalities["mor"]: views["mor"]})
    np.testing.assert_array_equal(embedder.embed_fused({"fou": views["fou"], "mor": views["mor"]}), only_two)
    np.testing.assert_array_equal(embedder.bind(got["fou"], got["fac"]), model.bind(got["fou"], got["fac"]))
    with pytest.raises(ValueError, match="unknown view names"):
        embedder.embed_views({"zzz": views["fou"]})


def test_six_views_skip_the_output_modality():
    names = ["v0", "v1", "v2", "v3", "v4", "v5"]
    assert gm.Modality.ACTION not in evaluation.view_modalities(names).values()
    with pytest.raises(ValueError, match="at most 6"):
        evaluation.view_modalities(names + ["v6"])


def test_views_named_as_modalities_take_those_slots():
    """In order alone, {"linguistic": text, "visual": image} put the text in
    the visual slot, and the model's own calls by modality read the wrong view."""
    M = gm.Modality
    assert evaluation.view_modalities(["linguistic", "visual"]) == {"linguistic": M.LINGUISTIC, "visual": M.VISUAL}
    assert evaluation.view_modalities([M.ABSTRACT, "a", "Visual", "b"]) == {
        M.ABSTRACT: M.ABSTRACT, "a": M.AUDITORY, "Visual": M.VISUAL, "b": M.LINGUISTIC}
    # other names keep the order; "action" names no input slot, so it is a name like another
    assert evaluation.view_modalities(["action", "x"]) == {"action": M.VISUAL, "x": M.AUDITORY}
    with pytest.raises(ValueError, match="'visual' and 'VISUAL' both name the visual slot"):
        evaluation.view_modalities(["visual", "VISUAL"])
    with pytest.raises(ValueError, match="output modality"):
        evaluation.view_modalities([M.ACTION])
    rng = np.random.default_rng(0)
    views = {"linguistic": rng.normal(size=(40, 3)), "visual": rng.normal(size=(40, 5))}
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,),
                                    encoder_output_dim=8, batch_size=20, min_validation_rows=1)
    model = uci.fit_views(views, settings=settings).model
    assert model.config.input_dims[M.LINGUISTIC.index] == 3 and model.config.input_dims[M.VISUAL.index] == 5


# --- real data ----------------------------------------------------------------


def test_exact_cca_anchors_on_uci_split_0(splits):
    """The figures issue 13 reports for exact CCA, 10 components (float64)."""
    train_std, test_std = datasets.standardize(splits[0].views, splits[1].views)
    with evaluation._anchors.one_thread():
        cca = evaluation.pairwise_cca_retrieval(train_std, test_std, splits[1].labels)
    assert len(cca) == 30
    assert np.mean([r["class_precision_at_1"] for r in cca.values()]) == pytest.approx(0.790, abs=5e-4)
    assert np.mean([r["instance_recall_at_1"] for r in cca.values()]) == pytest.approx(0.377, abs=5e-4)
    assert cca["fac->kar"]["instance_recall_at_1"] == pytest.approx(0.943, abs=1e-3)


def test_multiview_cca_anchors_on_uci_split_0(splits):
    pytest.importorskip("cca_zoo")
    train_std, test_std = datasets.standardize(splits[0].views, splits[1].views)
    expected = {"MCCA": (0.709, 0.194), "GCCA": (0.710, 0.196)}
    for method, (precision, recall) in expected.items():
        with evaluation._anchors.one_thread():
            scores = evaluation.multiview_cca_retrieval(method, train_std, test_std, splits[1].labels)
        assert np.mean([r["class_precision_at_1"] for r in scores.values()]) == pytest.approx(precision, abs=1e-3)
        assert np.mean([r["instance_recall_at_1"] for r in scores.values()]) == pytest.approx(recall, abs=1e-3)
    with pytest.raises(ValueError, match="method"):
        evaluation.multiview_cca_retrieval("PCA", train_std, test_std, splits[1].labels)


class CCARecipe:
    """A recipe whose model is exact CCA(2) on standardised views: the
    protocol must score it exactly as its exact-CCA anchor."""

    calls = 0

    def __call__(self, views, seed):
        CCARecipe.calls += 1
        train_std, = datasets.standardize(views)
        mean = {v: x.mean(axis=0) for v, x in views.items()}
        std = {v: np.where(x.std(axis=0) > 0, x.std(axis=0), 1) for v, x in views.items()}
        cca = ExactCCA(2).fit(train_std["gene"], train_std["lipid"])
        scale = lambda vs: {v: (np.asarray(x, np.float64) - mean[v]) / std[v] for v, x in vs.items()}  # noqa: E731

        class Embedder:
            def embed_views(self, test):
                s = scale(test)
                gene, lipid = cca.transform(s["gene"], s["lipid"])
                return {"gene": gene, "lipid": lipid}

            def embed_fused(self, test):
                raise AssertionError("the protocol does not fuse")

        return Embedder()


def test_nutrimouse_protocol_scores_a_model_like_its_anchor():
    try:
        data = datasets.load_nutrimouse()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        pytest.skip(str(err))
    results = evaluation.nutrimouse_cv(CCARecipe(), data, seeds=(0, 1), n_repeats=2)
    assert CCARecipe.calls == 2 * 5 * 2
    assert set(results) == {"ours", *evaluation.NUTRIMOUSE_ANCHORS}
    for target in ("genotype", "diet"):
        assert results["ours"][target].shape == (2, 2)
        np.testing.assert_allclose(results["ours"][target][0], results["exact CCA(2)"][target], atol=1e-3)
        for values in results.values():
            assert np.all((values[target] >= 0) & (values[target] <= 1))
    # Genotype is far easier than diet (2 classes vs 5), for every method.
    for values in results.values():
        assert values["genotype"].mean() > values["diet"].mean()


def test_a_masked_entry_in_an_embedders_view_is_refused_without_the_models_mask_remedy():
    """The model's refusal said "leave the rows out with mask=", an argument
    the embedder does not take: every view it is given is present in every row."""
    rng = np.random.default_rng(0)
    views = {"a": rng.normal(size=(6, 3)), "b": rng.normal(size=(6, 4))}
    modalities = evaluation.view_modalities(views)
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0,
                                   input_dims={m: views[v].shape[1] for v, m in modalities.items()})
    embedder = evaluation.ModelEmbedder(model, modalities)
    masked = np.ma.masked_array(views["a"], mask=np.zeros((6, 3), bool))
    masked.mask[2, 1] = True
    for call in (embedder.embed_views, embedder.embed_fused):
        with pytest.raises(ValueError, match=r"views\['a'\]: a masked array with 1 masked entries") as err:
            call({"a": masked, "b": views["b"]})
        assert "mask=" not in str(err.value)
    masked.mask[2, 1] = False  # nothing masked: the same as the plain array
    np.testing.assert_array_equal(embedder.embed_fused({"a": masked, "b": views["b"]}), embedder.embed_fused(views))
