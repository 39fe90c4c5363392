"""Hostile use of the measurements: evaluate_model, the anchors (both the
closed-form ones of ``evaluation`` and scikit-learn's of ``anchors``),
the UCI training entry points and the plots. Every mistake is refused by
the name the caller used (``test.views['b']``, ``embedder.embed_views``,
``settings``), never by a helper's argument the caller never passed
(``others[0]``, ``query``, ``train_x``) or by a library's own words."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import anchors, datasets, evaluation, uci

pytest.importorskip("sklearn")


def split_pair(n_train: int = 40, n_test: int = 20, seed: int = 0):
    """Three views (widths 4, 3, 2) of three classes, train and test."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = np.arange(n) % 3
        views = {v: rng.normal(size=(n, d)) + labels[:, None] for v, d in (("a", 4), ("b", 3), ("c", 2))}
        return datasets.MultipleFeatures(views=views, labels=labels)

    return make(n_train), make(n_test)


def with_view(split, name, values):
    """``split`` with view ``name`` replaced by ``values``."""
    return datasets.MultipleFeatures(views={**split.views, name: values}, labels=split.labels)


class FirstColumns:
    """An embedder whose view embedding is the view's first two columns
    (``view_output`` may change it) and whose fused embedding is the
    views' first columns side by side (``fused_output`` may change it)."""

    def __init__(self, view_output=None, fused_output=None):
        self.view_output = view_output or (lambda name, x: x[:, :2])
        self.fused_output = fused_output or (lambda views, out: out)

    def embed_views(self, views):
        return {v: self.view_output(v, np.asarray(x, np.float64)) for v, x in views.items()}

    def embed_fused(self, views):
        return self.fused_output(views, np.hstack([np.asarray(views[v])[:, :1] for v in sorted(views)]))


# ------------------------------------------------------------ evaluate_model


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_evaluate_model_names_the_view_an_embedder_embedded_as_nan_or_inf(bad):
    # was cross_view_retrieval's "query: row 2 holds NaN or inf": an argument evaluate_model has not
    train, test = split_pair()

    def spoilt(name, x):
        out = x[:, :2].copy()
        if name == "b" and len(x) == len(test.labels):
            out[2, 1] = bad
        return out

    with pytest.raises(gm.NonFiniteError, match=r"^embedder\.embed_views\(\.\.\.\)\['b'\]: row 2 holds NaN or inf") as err:
        evaluation.evaluate_model(FirstColumns(view_output=spoilt), train, test, two_views=False)
    assert err.value.arg == "embedder.embed_views(...)['b']"


def test_evaluate_model_names_the_fused_embedding_an_embedder_gave_as_nan():
    # was the k-NN's "train_x: row 0 holds NaN or inf"
    train, test = split_pair()

    def spoilt(views, out):
        out = out.copy()
        if len(out) == len(train.labels):
            out[7, 0] = np.nan
        return out

    with pytest.raises(gm.NonFiniteError, match=r"^embedder\.embed_fused: row 7 holds NaN or inf") as err:
        evaluation.evaluate_model(FirstColumns(fused_output=spoilt), train, test, two_views=False)
    assert err.value.arg == "embedder.embed_fused"


def test_evaluate_model_names_view_embeddings_of_different_widths():
    # was "gallery must have the same shape as query", of arguments evaluate_model has not
    train, test = split_pair()
    embedder = FirstColumns(view_output=lambda name, x: x)  # widths 4, 3 and 2
    with pytest.raises(gm.ShapeError, match=r"^embedder\.embed_views: returned embeddings of different widths "
                                            r"\{'a': 4, 'b': 3, 'c': 2\}; expected one width") as err:
        evaluation.evaluate_model(embedder, train, test, two_views=False)
    assert err.value.arg == "embedder.embed_views"


def test_evaluate_model_names_fused_embeddings_of_other_widths_for_train_and_test():
    # was "test_x has 3 columns but train_x has 2"
    train, test = split_pair()
    wider_for_test = lambda views, out: np.hstack([out, out[:, :1]]) if len(out) == len(test.labels) else out  # noqa: E731
    with pytest.raises(gm.ShapeError, match=r"^embedder\.embed_fused: returned 4 columns for test's views, 3 for "
                                            r"train's; expected one width"):
        evaluation.evaluate_model(FirstColumns(fused_output=wider_for_test), train, test, two_views=False)


@pytest.mark.parametrize("output, error, words", [
    (lambda views: [1, 2], TypeError, r"^embedder\.hidden_features: returned list; expected a mapping view name"),
    (lambda views: {"a": views["a"]}, gm.InvalidValueError, r"^embedder\.hidden_features: returned no features for "
                                                             r"the views \['b', 'c'\]"),
    (lambda views: {v: np.asarray(x)[:5] for v, x in views.items()}, gm.ShapeError,
     r"^embedder\.hidden_features\(\.\.\.\)\['a'\]: returned shape \(5, \d\); expected \(40, d\)"),
    (lambda views: {v: np.full(np.shape(x), np.nan) for v, x in views.items()}, gm.NonFiniteError,
     r"^embedder\.hidden_features\(\.\.\.\)\['a'\]: row 0 holds NaN or inf"),
])
def test_evaluate_model_names_what_hidden_features_returned(output, error, words):
    # were unit_side_by_side's "names: ['b', 'c'] not in views", "views: expected a mapping" and
    # the probe's "train_y must have shape (5,) to match train_x rows"
    train, test = split_pair()
    embedder = FirstColumns()
    embedder.hidden_features = output
    with pytest.raises(error, match=words):
        evaluation.evaluate_model(embedder, train, test, two_views=False)


def test_evaluate_model_refuses_splits_of_one_view_or_one_test_row_by_their_names():
    # one view: binder_auc's "view_embeddings: expected at least 2 views", or for an embedder
    # without a binder no retrieval pairs at all and a mean retrieval of NaN; one test row:
    # binder_auc's "view_embeddings: ... at least 2 rows"
    train, test = split_pair()
    only = lambda split: datasets.MultipleFeatures(views={"a": split.views["a"]}, labels=split.labels)  # noqa: E731
    with pytest.raises(gm.InvalidValueError, match=r"^test: has 1 view \['a'\]; expected at least 2") as err:
        evaluation.evaluate_model(FirstColumns(), only(train), only(test))
    assert err.value.arg == "test"
    with pytest.raises(gm.ShapeError, match=r"^test: has 1 row; expected at least 2") as err:
        evaluation.evaluate_model(FirstColumns(), train, test.subset(np.array([0])))
    assert err.value.arg == "test"
    assert evaluation.evaluate_model(FirstColumns(), train, test.subset(np.array([0, 1])), two_views=False).retrieval


def untrained_embedder(widths):
    """A ModelEmbedder over a new small model of views ``widths`` (name -> columns)."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0,
                                   input_dims={m: widths[v] for v, m in evaluation.view_modalities(widths).items()})
    return evaluation.ModelEmbedder(model, evaluation.view_modalities(widths))


def test_evaluate_model_names_the_split_a_model_of_other_views_cannot_embed():
    # were the embedder's "views: unknown view names ..." and "views['a']: expected shape (any, 3)": which split?
    train, test = split_pair()
    with pytest.raises(gm.InvalidValueError, match=r"^test\.views: unknown view names \['a', 'b', 'c'\]; this model "
                                                   r"knows \['x', 'y'\]") as err:
        evaluation.evaluate_model(untrained_embedder({"x": 4, "y": 3}), train, test)
    assert err.value.arg == "test.views"
    with pytest.raises(gm.ShapeError, match=r"^test\.views\['a'\]: expected shape \(any, 3\), got \(20, 4\)") as err:
        evaluation.evaluate_model(untrained_embedder({"a": 3, "b": 3, "c": 2}), train, test)
    assert err.value.arg == "test.views['a']"
    scores = evaluation.evaluate_model(untrained_embedder({"a": 4, "b": 3, "c": 2}), train, test, two_views=False)
    assert set(scores.retrieval) == {"a->b", "a->c", "b->a", "b->c", "c->a", "c->b"}


# ------------------------------------------------------------ compute_anchors


def test_compute_anchors_names_the_split_view_holding_nan_not_standardize_s_others():
    # was "others[0]['b']: row 3 holds NaN or inf", an argument of standardize
    train, test = split_pair()
    spoilt = test.views["b"].copy()
    spoilt[3, 1] = np.nan
    with pytest.raises(gm.NonFiniteError, match=r"^test\.views\['b'\]: row 3 holds NaN or inf") as err:
        evaluation.compute_anchors(train, with_view(test, "b", spoilt), multiview=[])
    assert err.value.arg == "test.views['b']"
    spoilt = train.views["c"].copy()
    spoilt[5, 0] = np.inf
    with pytest.raises(gm.NonFiniteError, match=r"^train\.views\['c'\]: row 5 holds NaN or inf"):
        evaluation.compute_anchors(with_view(train, "c", spoilt), test, multiview=[])


def test_compute_anchors_names_the_constant_training_view():
    # was "test_std['b']: ...", pairwise_cca_retrieval's argument; then the test view whose scores it zeroed
    train, test = split_pair()
    with pytest.raises(gm.InvalidValueError, match=r"^train\.views\['b'\]: every column is constant") as err:
        evaluation.compute_anchors(with_view(train, "b", np.ones((40, 3))), with_view(test, "b", np.ones((20, 3))),
                                   multiview=[])
    assert err.value.arg == "train.views['b']"


@pytest.mark.parametrize("measure", [
    lambda train, test: evaluation.compute_anchors(train, test, multiview=[]),
    lambda train, test: anchors.knn_anchors(train, test),
    lambda train, test: evaluation.evaluate_model(FirstColumns(), train, test),
])
def test_splits_without_views_are_refused_by_name(measure):
    # was numpy's "need at least one array to concatenate" (or the embedder's own error)
    empty = datasets.MultipleFeatures(views={}, labels=np.arange(6) % 2)
    with pytest.raises(gm.InvalidValueError, match=r"^train: has no views; expected at least one"):
        measure(empty, empty)


def relabelled(split, labels):
    return datasets.MultipleFeatures(views=split.views, labels=labels)


def with_nan_label(split, row=3):
    labels = split.labels.astype(float)
    labels[row] = np.nan
    return relabelled(split, labels)


@pytest.mark.parametrize("measure", [
    lambda train, test: evaluation.evaluate_model(FirstColumns(), train, test, two_views=False),
    lambda train, test: evaluation.compute_anchors(train, test, multiview=[]),
    lambda train, test: anchors.knn_anchors(train, test),
    lambda train, test: anchors.cca_anchor(train, test, "a", "b", 2),
])
def test_measurements_name_the_split_whose_labels_hold_nan(measure):
    # were the metrics' "labels holds nan at row 3" and "test_y holds nan ...", arguments the caller never passed
    train, test = split_pair()
    with pytest.raises(gm.NonFiniteError, match=r"^test\.labels holds nan at row 3") as err:
        measure(train, with_nan_label(test))
    assert err.value.arg == "test.labels"


@pytest.mark.parametrize("measure", [
    lambda train, test: evaluation.evaluate_model(FirstColumns(), train, test, two_views=False),
    lambda train, test: evaluation.compute_anchors(train, test, multiview=[]),
    lambda train, test: anchors.knn_anchors(train, test),
])
def test_measurements_name_the_split_whose_labels_are_no_class_labels(measure):
    # were "train_y: expected class labels ...", "test_y: labels are strings but train_y's are numbers"
    train, test = split_pair()
    with pytest.raises(gm.InvalidValueError, match=r"^train\.labels: expected class labels .* got continuous values") as err:
        measure(relabelled(train, train.labels + 0.5), test)
    assert err.value.arg == "train.labels"
    with pytest.raises(gm.InvalidValueError, match=r"^test\.labels: expected class labels .*numbers mixed with strings"):
        measure(train, relabelled(test, np.array([1, "x"] * 10, dtype=object)))
    with pytest.raises(gm.InvalidValueError, match=r"^test\.labels: labels are strings but train\.labels' are numbers"):
        measure(train, relabelled(test, test.labels.astype(str)))


@pytest.mark.parametrize("measure", [
    lambda train, test: evaluation.evaluate_model(FirstColumns(), train, test, two_views=False),
    lambda train, test: evaluation.compute_anchors(train, test, multiview=[]),
])
def test_a_linear_probe_on_one_training_class_names_train_labels(measure):
    # was "train_y: expected at least 2 classes, got only [0]"
    train, test = split_pair()
    with pytest.raises(gm.InvalidValueError, match=r"^train\.labels: expected at least 2 classes \(the linear probe "
                                                   r"tells them apart\), got only \[0\]"):
        measure(relabelled(train, np.zeros(40, int)), test)


@pytest.mark.skipif(not evaluation.cca_zoo_available(), reason="needs cca-zoo")
@pytest.mark.parametrize("method", evaluation.MULTIVIEW_METHODS)
def test_multiview_anchors_of_views_narrower_than_their_components_get_fewer_as_exact_cca_does(method):
    # the defaults failed on a view of fewer than 6 columns with cca-zoo's "n_components=6 must be at most 2",
    # an argument compute_anchors has not; exact CCA took fewer components there, as documented
    train, test = split_pair()
    narrowest = evaluation.compute_anchors(train, test, multiview=[method], multiview_components=2)
    for asked in (6, 100):
        anchors_ = evaluation.compute_anchors(train, test, multiview=[method], multiview_components=asked)
        assert anchors_.multiview == narrowest.multiview and anchors_.multiview_components == asked
    one = lambda split: datasets.MultipleFeatures(views={"a": split.views["a"]}, labels=split.labels)  # noqa: E731
    # one view: no pair to retrieve (was cca-zoo's "At least 2 views are required, got 1")
    assert evaluation.compute_anchors(one(train), one(test), multiview=[method]).multiview == {method: {}}


# ------------------------------------------------- the scikit-learn anchors


@pytest.mark.parametrize("measure", [
    lambda train, test: anchors.knn_anchors(train, test),
    lambda train, test: anchors.cca_anchor(train, test, "a", "b", 2),
])
def test_sklearn_anchors_name_a_test_view_of_another_width(measure):
    # was "others[0]['a'] must have shape [n, 4], got (20, 2)", an argument of standardize
    train, test = split_pair()
    with pytest.raises(gm.ShapeError, match=r"^test\.views\['a'\]: has 2 columns; expected 4, as in train") as err:
        measure(train, with_view(test, "a", test.views["a"][:, :2]))
    assert err.value.arg == "test.views['a']"


@pytest.mark.parametrize("measure", [
    lambda train, test: anchors.knn_anchors(train, test),
    lambda train, test: anchors.cca_anchor(train, test, "a", "b", 2),
])
def test_sklearn_anchors_name_the_split_view_holding_nan(measure):
    train, test = split_pair()
    spoilt = test.views["a"].copy()
    spoilt[4, 0] = np.nan
    with pytest.raises(gm.NonFiniteError, match=r"^test\.views\['a'\]: row 4 holds NaN or inf"):
        measure(train, with_view(test, "a", spoilt))
    spoilt = train.views["b"].copy()
    spoilt[6, 2] = -np.inf
    with pytest.raises(gm.NonFiniteError, match=r"^train\.views\['b'\]: row 6 holds NaN or inf"):
        measure(with_view(train, "b", spoilt), test)


@pytest.mark.parametrize("view", ["a", "b"])
def test_cca_anchor_refuses_a_view_constant_in_the_training_split(view):
    # was scikit-learn's "A has a NaN entry" (after "invalid value encountered in divide")
    train, test = split_pair()
    width = train.views[view].shape[1]
    constant = with_view(train, view, np.full((40, width), 2.5))
    with pytest.raises(gm.InvalidValueError, match=rf"^train\.views\['{view}'\]: every column is constant in the training "
                                                   r"split") as err:
        anchors.cca_anchor(constant, test, "a", "b", 2)
    assert err.value.arg == f"train.views['{view}']"
    one_constant_column = train.views[view].copy()
    one_constant_column[:, 0] = 2.5  # the other columns vary: CCA has something to fit
    anchors.cca_anchor(with_view(train, view, one_constant_column), test, "a", "b", 2)


def test_cca_anchor_names_a_view_name_that_is_no_name():
    # was "unhashable type: 'list'"
    train, test = split_pair()
    with pytest.raises(ValueError, match=r"^query_view: expected one of train's views \['a', 'b', 'c'\], got \['a'\]$"):
        anchors.cca_anchor(train, test, ["a"], "b", 2)


# ------------------------------------------------------------ nutrimouse


def test_a_nutrimouse_of_views_and_labels_that_disagree_is_refused_when_made(nutrimouse):
    # was found only by nutrimouse_cv: IndexError "index 30 is out of bounds", scikit-learn's "Found input
    # variables with inconsistent numbers of samples: [40, 30]", numpy's "Cannot cast ... to int64"
    import dataclasses

    with pytest.raises(gm.ShapeError, match=r"^views\['lipid'\]: has 30 rows; expected 40, one per mouse of genotype") as err:
        dataclasses.replace(nutrimouse, views={**nutrimouse.views, "lipid": nutrimouse.views["lipid"][:30]})
    assert err.value.arg == "views['lipid']"
    with pytest.raises(gm.ShapeError, match=r"^diet: expected shape \(40,\), one code per mouse, got \(30,\)"):
        dataclasses.replace(nutrimouse, diet=nutrimouse.diet[:30])
    with pytest.raises(TypeError, match=r"^diet: expected integer codes into diet_names, got .*float64"):
        dataclasses.replace(nutrimouse, diet=nutrimouse.diet + 0.5)
    with pytest.raises(gm.InvalidValueError, match=r"^genotype: expected codes in \[0, 2\), one per name in "
                                                   r"genotype_names, got codes from 0 to 2"):
        dataclasses.replace(nutrimouse, genotype=np.where(np.arange(40) == 7, 2, nutrimouse.genotype))
    with pytest.raises(TypeError, match=r"^views: expected a mapping view name -> \[n, d\] array, got list"):
        dataclasses.replace(nutrimouse, views=list(nutrimouse.views.values()))


def test_nutrimouse_cv_names_the_data_s_views(nutrimouse):
    # were a bare KeyError 'lipid', standardize's "train_views['gene']: row 4 holds NaN" and the metric's
    # "query has 8 all-zero rows ...; use metric='euclidean'"
    import dataclasses

    with pytest.raises(gm.InvalidValueError, match=r"^data: has views \['gene'\]; expected 'gene' and 'lipid'") as err:
        evaluation.nutrimouse_cv(None, dataclasses.replace(nutrimouse, views={"gene": nutrimouse.views["gene"]}), n_repeats=1)
    assert err.value.arg == "data"
    gene = nutrimouse.views["gene"].copy()
    gene[5, 3] = np.nan
    with pytest.raises(gm.NonFiniteError, match=r"^data\.views\['gene'\]: row 5 holds NaN or inf") as err:
        evaluation.nutrimouse_cv(None, dataclasses.replace(nutrimouse, views={**nutrimouse.views, "gene": gene}), n_repeats=1)
    assert err.value.arg == "data.views['gene']"
    constant = dataclasses.replace(nutrimouse, views={**nutrimouse.views, "lipid": np.ones((40, 21), np.float32)})
    with pytest.raises(gm.InvalidValueError, match=r"^data\.views\['lipid'\]: every column is constant"):
        evaluation.nutrimouse_cv(None, constant, n_repeats=1)


# ------------------------------------------------------------------- uci


def test_train_refuses_settings_that_are_no_training_settings():
    # was "'dict' object has no attribute 'model_options'"
    views = {"visual": np.zeros((8, 3), np.float32)}
    with pytest.raises(TypeError, match=r"^settings: expected a TrainingSettings, got dict"):
        uci.train(views, settings={"epochs": 1})


@pytest.mark.parametrize("inputs, words", [
    ({"visual": np.zeros((8, 3)), gm.Modality.VISUAL: np.zeros((8, 3))},
     r"^inputs: keys \['visual', <Modality\.VISUAL: 0>\] name the same modality"),
    ({"vision": np.zeros((8, 3))}, r"^inputs: unknown modality 'vision'"),
    ({}, r"^inputs: expected at least one modality -> \[N, d\] array, got an empty mapping$"),
])
def test_train_names_its_inputs_not_the_models_input_dims(inputs, words):
    # were the model's "input_dims: ...", an argument train has not, and fit's "... when mask is None"
    with pytest.raises(gm.InvalidValueError, match=words) as err:
        uci.train(inputs, uci.TrainingSettings(epochs=1))
    assert err.value.arg == "inputs"


@pytest.mark.parametrize("names", [None, 5])
def test_view_modalities_refuses_what_holds_no_view_names(names):
    # was "'NoneType' object is not iterable"
    with pytest.raises(TypeError, match=rf"^views: expected view names \(a sequence\), got {type(names).__name__}"):
        evaluation.view_modalities(names)


def test_model_embedder_refuses_what_is_no_model_or_no_mapping_when_made():
    # were AttributeErrors at the first embedding ("'NoneType' object has no attribute 'encode'") or at once
    # ("'list' object has no attribute 'items'")
    with pytest.raises(TypeError, match=r"^model: expected a LearnableMultiModal, got NoneType"):
        evaluation.ModelEmbedder(None, {"a": "visual"})
    model = untrained_embedder({"a": 3, "b": 2}).model
    with pytest.raises(TypeError, match=r"^modalities: expected a mapping view name -> modality, got list"):
        evaluation.ModelEmbedder(model, ["visual", "auditory"])


def test_training_settings_keep_the_weights_and_widths_they_were_made_with():
    # the settings held the caller's dict and lists: changing them afterwards changed these "frozen" settings
    # (two settings made from one dict trained alike), past the check made when they were made (the mistake
    # was then named as fit's "objectives", an argument the settings have not)
    weights, hidden, head = {"contrastive": 1.0, "binding": 1.0}, [16], [32, 8]
    settings = uci.TrainingSettings(weights=weights, encoder_hidden=hidden, shared_head=head, embed_dim=8,
                                    encoder_objectives=["contrastive"])
    weights["bogus"] = 1.0
    hidden.append(4)
    head.clear()
    assert settings.objectives == {"contrastive": 1.0, "binding": 1.0}
    assert settings.encoder_hidden == (16,) and settings.head() == (32, 8)
    assert settings.encoder_objectives == ("contrastive",)
    assert settings == uci.TrainingSettings(weights={"contrastive": 1.0, "binding": 1.0}, encoder_hidden=(16,),
                                            shared_head=(32, 8), embed_dim=8, encoder_objectives=("contrastive",))


# -------------------------------------------------------------- plotting


def test_plots_without_matplotlib_say_how_to_install_it(monkeypatch, tmp_path):
    from grapheme_multimodal import plotting
    from grapheme_multimodal.training import History

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ModuleNotFoundError
    history = History(epochs=[{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}])
    for draw in (lambda: history.plot(tmp_path / "curves.png"),
                 lambda: plotting.plot_attention(np.ones((2, 7)), ["x", "y"], tmp_path / "attention.png")):
        with pytest.raises(ModuleNotFoundError, match=r"pip install 'grapheme-multimodal\[plot\]'") as err:
            draw()
        assert err.value.name == "matplotlib"
    assert list(tmp_path.iterdir()) == []


def test_plot_attention_refuses_weights_it_would_draw_wrongly(tmp_path):
    # no rows drew an empty figure (matplotlib's "identical low and high ylims" warning only); a negative
    # weight was drawn in the colour of 0 (vmin=0), as if the modality were not attended to
    pytest.importorskip("matplotlib")
    from grapheme_multimodal import plotting

    with pytest.raises(gm.ShapeError, match=r"^weights: expected at least one row to plot, got shape \(0, 7\)"):
        plotting.plot_attention(np.zeros((0, 7)), [], tmp_path / "none.png")
    weights = np.full((2, 7), 0.1)
    weights[1, 3] = -0.2
    with pytest.raises(gm.InvalidValueError, match=r"^weights: row 1 holds -0\.2; expected attention weights >= 0") as err:
        plotting.plot_attention(weights, ["x", "y"], tmp_path / "negative.png")
    assert err.value.arg == "weights"
    assert list(tmp_path.iterdir()) == []
    weights[1, 3] = 0.0
    plotting.plot_attention(weights, ["x", "y"], tmp_path / "drawn.png")
    assert (tmp_path / "drawn.png").stat().st_size > 0
