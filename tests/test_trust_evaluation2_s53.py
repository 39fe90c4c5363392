"""An independent hostile check of the evaluation side (s53, second pass): what it found.

multiview_cca_retrieval (cca-zoo's MCCA / GCCA) failed where
pairwise_cca_retrieval refuses by the caller's names: a training view of one
row was scikit-learn's "Found array with 1 sample(s)", a training view whose
every column is constant numpy's "Matrix is not positive definite" (MCCA) or
"SVD did not converge" (GCCA), naming no view; a test row at the training
mean was the metric's "query has 1 all-zero rows ... use metric='euclidean'",
an argument and an option multiview_cca_retrieval does not have.
"""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_trust_bench_scripts import _usage_error

pytest.importorskip("sklearn")


def _views(rows, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(rows, 3)), "b": rng.normal(size=(rows, 4))}


@pytest.mark.parametrize("method", ["MCCA", "GCCA"])
def test_multiview_refuses_a_training_view_of_one_row_by_its_name(method):
    pytest.importorskip("cca_zoo")
    from grapheme_multimodal import evaluation

    with pytest.raises(gm.ShapeError, match=r"train_std\['a'\]: has 1 row; expected at least 2") as info:
        evaluation.multiview_cca_retrieval(method, _views(1), _views(20, 1), np.repeat([0, 1], 10), 2)
    assert info.value.arg == "train_std['a']"


@pytest.mark.parametrize("method", ["MCCA", "GCCA"])
def test_multiview_refuses_a_constant_training_view_by_its_name(method):
    pytest.importorskip("cca_zoo")
    from grapheme_multimodal import evaluation

    train = _views(30)
    train["b"][:] = 5.0
    with pytest.raises(gm.InvalidValueError, match=rf"train_std\['b'\]: every column is constant .*{method}") as info:
        evaluation.multiview_cca_retrieval(method, train, _views(20, 1), np.repeat([0, 1], 10), 2)
    assert info.value.arg == "train_std['b']"


@pytest.mark.parametrize("method", ["MCCA", "GCCA"])
def test_multiview_names_a_test_row_at_the_training_mean_by_the_test_view(method):
    pytest.importorskip("cca_zoo")
    from grapheme_multimodal import evaluation

    train, test = _views(30), _views(20, 1)
    test["a"][3] = train["a"].mean(axis=0)
    with pytest.raises(gm.InvalidValueError, match=rf"test_std\['a'\]: the {method} scores of 1 row\(s\) \(first: row 3\)") as info:
        evaluation.multiview_cca_retrieval(method, train, test, np.repeat([0, 1], 10), 2)
    assert info.value.arg == "test_std['a']"
    assert "euclidean" not in str(info.value)


# ------------------------------------------------------------------ nutrimouse_cv
def _mice(**extra_views):
    from grapheme_multimodal.datasets import Nutrimouse

    rng = np.random.default_rng(0)
    views = {"gene": rng.normal(size=(40, 6)), "lipid": rng.normal(size=(40, 4)), **extra_views}
    return Nutrimouse(views, np.arange(40) % 2, np.repeat(np.arange(5), 8), ("ppar", "wt"),
                      ("coc", "fish", "lin", "ref", "sun"), {})


class _Zeros:
    """An embedder whose embeddings are all zero: no direction to compare."""

    def embed_views(self, views):
        return {v: np.zeros((len(x), 3)) for v, x in views.items()}

    def embed_fused(self, views):
        return np.zeros((len(next(iter(views.values()))), 3))


def test_nutrimouse_cv_names_all_zero_embeddings_as_the_recipes():
    # was the metric's "query has 8 all-zero rows ... use metric='euclidean'": no query, no metric here
    from grapheme_multimodal import evaluation

    with pytest.raises(gm.InvalidValueError, match=r"embedder\.embed_views\(\.\.\.\)\['gene'\]: the embeddings of 8 row") as info:
        evaluation.nutrimouse_cv(lambda views, seed: _Zeros(), _mice(), n_repeats=1, anchors=False)
    assert "euclidean" not in str(info.value)


def test_nutrimouse_cv_anchors_read_only_the_gene_and_lipid_views():
    # a third view (one only a recipe reads) was standardised for the anchors too: one of objects was refused as
    # "train_views['extra']", no argument of nutrimouse_cv, though no anchor reads it
    from grapheme_multimodal import evaluation

    plain = evaluation.nutrimouse_cv(None, _mice(), n_repeats=1)
    extra = evaluation.nutrimouse_cv(None, _mice(extra=np.zeros((40, 1), dtype=object)), n_repeats=1)
    assert list(extra) == list(plain)
    for method in plain:
        for target in plain[method]:
            np.testing.assert_array_equal(extra[method][target], plain[method][target])


# ------------------------------------------------------------------ uci.fit_views / fit_ensemble: validation
@pytest.mark.parametrize("members", [1, 2])
def test_fit_ensemble_refuses_a_validation_view_of_none_by_its_name(members):
    # was fit's "no modality was given; expected at least one array when validation_mask is None": no such argument
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    views = {"a": rng.normal(size=(40, 3)), "b": rng.normal(size=(40, 4))}
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), encoder_output_dim=8,
                                    num_heads=2)
    with pytest.raises(TypeError, match=r"validation\['a'\]: got None; expected a real-valued \[N, d\] array") as info:
        uci.fit_ensemble(views, 0, members=members, settings=settings, validation={"a": None})
    assert "validation_mask" not in str(info.value)


# ------------------------------------------------------------------ benchmarks' --set
class _WouldRun(Exception):
    """The run would start here (the flags are past their checks)."""


@pytest.fixture
def harness_scripts(monkeypatch):
    from conftest import REPO, load_script

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # the scripts import their siblings
    h = load_script("benchmarks/uci_multifeature.py")
    digits = load_script("benchmarks/digits_views.py")
    monkeypatch.setattr(digits, "harness", h)
    runs = []

    def record(*args, **kwargs):  # what would run, and with which recipe; stops before any training
        runs.append(h.RECIPE.__qualname__)
        raise _WouldRun

    monkeypatch.setattr(h, "run_split", record)
    return h, digits, runs


def test_uci_multifeature_keeps_every_set_flag(harness_scripts):
    # a second --set replaced the first's changes without a word: the run measured the recipe with only the last
    h, _, runs = harness_scripts
    with pytest.raises(_WouldRun):
        h.main(["--splits", "0", "--seeds", "0", "--no-nutrimouse", "--set", "epochs=1", "--set", "encoder_skip=false"])
    assert runs == ["fit_views with epochs=1, encoder_skip=False"]


def test_uci_multifeature_refuses_a_set_key_given_twice(harness_scripts, capsys):
    # the later value replaced the earlier without a word
    h, _, _ = harness_scripts
    line = _usage_error(h.main, ["--splits", "0", "--seeds", "0", "--set", "epochs=1", "epochs=5"], capsys)
    assert line.endswith(": error: --set: epochs given more than once ('epochs=1' and 'epochs=5'); expected each field once")
    line = _usage_error(h.main, ["--splits", "0", "--seeds", "0", "--set", "epochs=1", "--set", "epochs=5"], capsys)
    assert "--set: epochs given more than once" in line


def test_digits_views_keeps_every_set_flag(harness_scripts):
    _, digits, runs = harness_scripts
    with pytest.raises(_WouldRun):
        digits.main(["--layouts", "halves", "--splits", "0", "--seeds", "0", "--set", "epochs=1", "--set", "patience=3"])
    assert runs == ["fit_views with epochs=1, patience=3"]


# ------------------------------------------------------------------ uci_targets.py
def test_uci_targets_scores_a_results_file_of_a_model_without_a_binder(monkeypatch, tmp_path, capsys):
    # a recipe whose model has no binder (RECIPE is the one place a new recipe is plugged in; bind is optional):
    # uci_multifeature.py writes binder_auc null, and uci_targets.py refused that very file as "not the figures
    # benchmarks/uci_multifeature.py writes (TypeError: 'NoneType' object is not subscriptable)"
    import json

    from conftest import REPO, load_script

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    targets = load_script("benchmarks/uci_targets.py")
    results = json.loads((REPO / "benchmarks" / "results" / "uci-multifeature.json").read_text())
    for split in results["uci_multiple_features"]:
        for run in split["runs"]:
            run["binder_auc"] = None
    path = tmp_path / "no-binder.json"
    path.write_text(json.dumps(results))
    assert targets.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "AUC - (no binder)" in out
    n = len(results["uci_multiple_features"])
    assert out.count("binder AUC") == n  # missed on every split: there is no binder to reach 0.97


@pytest.mark.parametrize("members", [1, 2])
def test_fit_views_names_views_whose_rows_are_all_alike_in_its_own_words(members):
    # was "data: all 32 rows hold the same visual, auditory values; ... expected rows that differ, or
    # standardize=False": fit's argument and option (fit_views has neither) and the views by their modality slots
    from grapheme_multimodal import uci

    views = {"fou": np.ones((40, 2)), "pix": np.full((40, 3), 7.0)}
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), encoder_output_dim=8,
                                    num_heads=2)
    with pytest.raises(gm.InvalidValueError, match=r"^views: of the rows training fits .*, all \d+ rows hold the same "
                                                   r"'fou', 'pix' values; .*expected rows that differ$") as info:
        uci.fit_ensemble(views, 0, members=members, settings=settings, n_jobs=members)
    assert info.value.arg == "views"
    assert "standardize" not in str(info.value) and "visual" not in str(info.value)


class _SquaresInPlace:
    """A careless embedder: squares the views it is given in place."""

    def embed_views(self, views):
        for x in views.values():
            np.square(x, out=x)
        return {v: x[:, :3] + 1.0 for v, x in views.items()}

    def embed_fused(self, views):
        return next(iter(views.values()))


def test_nutrimouse_cv_gives_the_recipe_views_it_cannot_change_for_the_others():
    # the fold's views were handed to the recipe and the embedder as they are: one that worked in place changed the
    # next seed's training views and the anchors' (their figures changed without a word)
    from grapheme_multimodal import evaluation

    seen = []

    def recipe(views, seed):
        seen.append(views["gene"].copy())
        for x in views.values():
            np.square(x, out=x)
        return _SquaresInPlace()

    anchors_alone = evaluation.nutrimouse_cv(None, _mice(), n_repeats=1)
    both = evaluation.nutrimouse_cv(recipe, _mice(), seeds=[0, 1], n_repeats=1)
    np.testing.assert_array_equal(seen[0], seen[1])  # the two seeds of the first fold trained on the same views
    ours = both.pop("ours")
    for target in ours:
        assert ours[target][0] == ours[target][1]
    for method in anchors_alone:
        for target in anchors_alone[method]:
            np.testing.assert_array_equal(both[method][target], anchors_alone[method][target])


def test_evaluate_model_leaves_the_splits_as_they_were_for_an_embedder_that_works_in_place():
    # the splits' views were handed to the embedder as they are: one that worked on them in place changed the
    # caller's data, and every later figure (the fused embedding after the views', the next run) was of other values
    from grapheme_multimodal import evaluation
    from grapheme_multimodal.datasets import MultipleFeatures

    rng = np.random.default_rng(0)

    def split(n):
        return MultipleFeatures(views={"a": rng.normal(size=(n, 4)), "b": rng.normal(size=(n, 5))},
                                labels=np.arange(n) % 3)

    train, test = split(30), split(12)
    before = {v: x.copy() for v, x in test.views.items()}
    first = evaluation.evaluate_model(_SquaresInPlace(), train, test)
    for v, x in test.views.items():
        np.testing.assert_array_equal(x, before[v])
    assert evaluation.evaluate_model(_SquaresInPlace(), train, test) == first
