"""When training stops without given validation data: a held-out slice, or
cross-validation of the epoch count on small data (grapheme_multimodal.stopping)."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError
from grapheme_multimodal.stopping import cv_folds_for, fit_with_stopping

OPTIONS = dict(batch_size=16, objectives={"contrastive": 1.0, "binding": 1.0}, progress=False)
STOP = dict(validation_fraction=0.1, patience=3, monitor="val_contrastive", seed=4)


def two_views(n, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    return {
        "visual": (z @ rng.normal(size=(4, 6)) + 0.3 * rng.normal(size=(n, 6))).astype(np.float32),
        "auditory": (z @ rng.normal(size=(4, 5)) + 0.3 * rng.normal(size=(n, 5))).astype(np.float32),
    }


def small_model(seed=0):
    return gm.LearnableMultiModal(input_dims={"visual": 6, "auditory": 5}, embed_dim=8, hidden_dim=8, num_heads=2,
                                  encoder_hidden=(16,), encoder_input_dropout=0.1, seed=seed)


@pytest.mark.parametrize("args, name, error", [
    ((10, 2.0, 32, 5), "validation_fraction", InvalidValueError), ((10, float("nan"), 32, 5), "validation_fraction", InvalidValueError),
    ((10, 0.5, 32, 5.5), "folds", TypeError), ((10.5, 0.5, 32, 5), "n_rows", TypeError),
    ((-10, 0.5, 32, 5), "n_rows", InvalidValueError), ((10, 0.5, None, 5), "min_validation_rows", TypeError)])
def test_cv_folds_for_refuses_what_it_cannot_count_with(args, name, error):
    # a fraction of 2.0 (20 of 10 rows held out) gave 5 folds; NaN raised numpy's unnamed error.
    # A wrong type (5.5 folds, None) is a TypeError, a value out of range an InvalidValueError.
    with pytest.raises(error, match=f"^{name}: expected") as err:
        cv_folds_for(*args)
    assert getattr(err.value, "arg", name) == name


def test_which_data_get_cross_validation():
    assert cv_folds_for(32, 0.1, 32, 5) == 5  # 3 held-out rows: too few
    assert cv_folds_for(320, 0.1, 32, 5) == 0  # 32 held-out rows: the slice
    assert cv_folds_for(6, 0.5, 32, 5) == 3  # no fold holds out fewer than 2 rows
    assert cv_folds_for(10, 0.1, 32, 5) == 0  # 1 row to hold out: nothing held out at all
    assert cv_folds_for(32, 0.1, 32, 1) == 0  # cross-validation off
    assert cv_folds_for(32, 0.1, 0, 5) == 0  # any slice is enough


def test_the_folds_run_side_by_side_exactly_as_one_long_fit_each():
    """One fit call per fold and epoch continues where the last one ended, so
    the mean curve is that of k ordinary fits; the epoch chosen is its first
    minimum, and the model trains on all rows for exactly that many epochs."""
    data, epochs = two_views(40), 6
    model = small_model()
    history = fit_with_stopping(model, data, **{**STOP, "patience": epochs}, epochs=epochs, **OPTIONS)

    held_out = np.array_split(np.random.default_rng(STOP["seed"]).permutation(40), 5)
    curves = []
    for held in held_out:
        held = np.sort(held)
        rows = np.setdiff1d(np.arange(40), held)
        fold = small_model()
        h = fold.fit({m: x[rows] for m, x in data.items()}, validation={m: x[held] for m, x in data.items()},
                     epochs=epochs, seed=STOP["seed"], **OPTIONS)
        curves.append(h["val_contrastive"])
    expected = np.mean(curves, axis=0)
    np.testing.assert_allclose(history.cv_curve, expected, rtol=1e-6)
    assert history.best_epoch == int(np.argmin(expected)) + 1 == len(history.epochs) == model.epochs_trained

    reference = small_model()
    reference.fit(data, epochs=history.best_epoch, seed=STOP["seed"], **OPTIONS)
    for name, w in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], w, err_msg=name)


def test_best_epoch_counts_the_epochs_a_model_had_already_trained():
    """best_epoch is an epoch number as the records (and fit without
    cross-validation) count them, not the count the folds chose: a model
    trained 3 epochs before marks epoch 3 + count, the count is where the
    chosen epoch sits in cv_curve."""
    data = two_views(40)
    model = small_model()
    model.fit(data, epochs=3, seed=1, **OPTIONS)
    history = fit_with_stopping(model, data, **{**STOP, "patience": 4}, epochs=4, **OPTIONS)
    count = len(history.epochs)
    assert history.cv_curve is not None and count == int(np.argmin(history.cv_curve)) + 1
    assert history.best_epoch == 3 + count == history.epochs[-1]["epoch"] == model.epochs_trained


def test_a_large_enough_slice_is_watched_as_before():
    data = two_views(400)
    model, reference = small_model(), small_model()
    history = fit_with_stopping(model, data, **STOP, min_validation_rows=32, epochs=4, **OPTIONS)
    fit_rows, val_rows = gm.training.holdout_rows(400, 0.1, STOP["seed"])
    expected = reference.fit({m: x[fit_rows] for m, x in data.items()}, validation={m: x[val_rows] for m, x in data.items()},
                             epochs=4, early_stopping=3, monitor="val_contrastive", seed=STOP["seed"], **OPTIONS)
    assert history.cv_curve is None and history["val_contrastive"] == expected["val_contrastive"]


@pytest.mark.parametrize("min_validation_rows", [0, 32])  # a held-out slice; cross-validation folds
def test_the_seed_defaults_to_the_models_as_fits_does(min_validation_rows):
    # it was required where fit, fit_views and TrainingSettings all have a default
    data = two_views(40)
    stop = {**{k: v for k, v in STOP.items() if k != "seed"}, "min_validation_rows": min_validation_rows}
    defaulted, seeded = small_model(seed=7), small_model(seed=7)
    got = fit_with_stopping(defaulted, data, **stop, epochs=3, **OPTIONS)
    want = fit_with_stopping(seeded, data, **stop, seed=7, epochs=3, **OPTIONS)
    assert (got.cv_curve is None) == (min_validation_rows == 0)
    assert got.epochs == [{**e, "seconds": g["seconds"]} for e, g in zip(want.epochs, got.epochs)]
    assert all(np.array_equal(v, seeded.state_dict()[k]) for k, v in defaulted.state_dict().items())
    other = small_model(seed=7)
    fit_with_stopping(other, data, **stop, seed=0, epochs=3, **OPTIONS)  # the seed draws the held-out rows too
    assert not all(np.array_equal(v, other.state_dict()[k]) for k, v in defaulted.state_dict().items())


def test_no_patience_or_no_rows_to_hold_out_trains_every_epoch_on_what_there_is():
    data = two_views(40)
    never = fit_with_stopping(small_model(), data, **{**STOP, "patience": 0}, epochs=3, **OPTIONS)
    assert never.cv_curve is None and len(never.epochs) == 3 and "val_contrastive" in never.epochs[0]
    nothing = fit_with_stopping(small_model(), data, **{**STOP, "validation_fraction": 0.0}, epochs=3, **OPTIONS)
    assert nothing.cv_curve is None and len(nothing.epochs) == 3 and "val_contrastive" not in nothing.epochs[0]


@pytest.mark.parametrize("name, value, error", [("cv_folds", -1, InvalidValueError), ("min_validation_rows", 2.5, TypeError),
                                               ("patience", -2, InvalidValueError), ("epochs", -1, InvalidValueError),
                                               ("epochs", "3", TypeError), ("patience", None, TypeError)])
def test_bad_settings_name_the_argument(name, value, error):
    settings = {**STOP, "cv_folds": 5, "min_validation_rows": 32, "epochs": 3, name: value}
    with pytest.raises(error, match=f"^{name}: expected an int >= "):
        fit_with_stopping(small_model(), two_views(40), **settings, **OPTIONS)


@pytest.mark.parametrize("rows, fraction", [(40, 0.1), (40, 0.0), (3, 0.1), (1, 0.5)])
def test_a_misspelt_monitor_is_refused_however_few_the_rows(rows, fraction):
    # was refused only when rows were held out: with none (too few rows, or fraction 0) it passed unseen
    model = small_model()
    with pytest.raises(InvalidValueError, match="monitor: 'val_contrastiv' is not recorded") as err:
        fit_with_stopping(model, two_views(rows), **{**STOP, "monitor": "val_contrastiv", "validation_fraction": fraction},
                          epochs=2, **OPTIONS)
    assert err.value.arg == "monitor" and model.epochs_trained == 0


@pytest.mark.parametrize("fraction, error", [(2.0, InvalidValueError), (float("nan"), InvalidValueError), ("0.1", TypeError)])
def test_a_bad_validation_fraction_is_refused_beside_validation_data_too(fraction, error):
    # unused when validation data are given, it passed unseen there and was refused without them
    model = small_model()
    with pytest.raises(error, match=r"^validation_fraction: expected a number in \[0, 1\)") as err:
        fit_with_stopping(model, two_views(40), validation=two_views(8, seed=1),
                          **{**STOP, "validation_fraction": fraction}, epochs=1, **OPTIONS)
    assert getattr(err.value, "arg", "validation_fraction") == "validation_fraction" and model.epochs_trained == 0


def test_a_failed_call_leaves_the_model_as_it_was():
    data = two_views(40)
    data["visual"][7, 2] = np.nan
    model = small_model()
    before = model.state_dict()
    with pytest.raises(NonFiniteError, match="row 7"):
        fit_with_stopping(model, data, **STOP, epochs=3, **OPTIONS)
    assert model.epochs_trained == 0 and not model.history
    for name, w in before.items():
        np.testing.assert_array_equal(model.state_dict()[name], w)


@pytest.mark.parametrize("mode, chosen", [(None, 6), ("max", 6), ("min", 1)])
def test_cross_validation_follows_the_monitors_mode_as_the_slice_does(mode, chosen):
    """A custom metric is maximised by default (fit's rule): the folds' mean
    curve was compared as a loss whatever the mode, so cross-validation chose
    the metric's worst epoch and stopped, where the held-out slice chose its best."""
    data = two_views(40)
    options = dict(OPTIONS, metrics={"epochs": lambda model: float(model.epochs_trained)})  # grows every epoch
    if mode is not None:
        options["mode"] = mode
    stop = {**STOP, "monitor": "val_epochs", "patience": 2}
    cv = fit_with_stopping(small_model(), data, **stop, min_validation_rows=32, epochs=6, **options)
    assert cv.cv_curve[:2] == [1.0, 2.0]
    assert len(cv.epochs) == chosen
    sliced = fit_with_stopping(small_model(), data, **stop, min_validation_rows=0, epochs=6, **options)
    assert sliced.cv_curve is None and sliced.best_epoch == chosen


def test_a_bad_mode_is_refused_before_any_fold_trains():
    model = small_model()
    before = model.state_dict()
    with pytest.raises(InvalidValueError, match="^mode: expected 'min' or 'max'") as err:
        fit_with_stopping(model, two_views(40), **STOP, min_validation_rows=32, epochs=3, mode="up", **OPTIONS)
    assert err.value.arg == "mode"
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("min_validation_rows", [0, 32])  # the held-out slice, and cross-validation
def test_graph_inputs_are_split_by_row_as_fit_takes_them(min_validation_rows):
    """fit takes a modality as a list of graphs; fit_with_stopping refused
    one when it split the rows ("expected a real-valued numeric array"). It
    now trains exactly as on those graphs' features."""
    rng = np.random.default_rng(0)
    graphs = [gm.Graph.from_text(f"word{i % 7} thing {i % 3}") for i in range(40)]
    visual = rng.normal(size=(40, 6)).astype(np.float32)
    featurizer = gm.GraphFeaturizer("wl", dim=5)

    def model():
        return gm.LearnableMultiModal(input_dims={"visual": 6}, graph_features={"auditory": featurizer},
                                      embed_dim=8, hidden_dim=8, num_heads=2, seed=0)

    stop = {**STOP, "min_validation_rows": min_validation_rows}
    on_graphs, on_features = model(), model()
    got = fit_with_stopping(on_graphs, {"visual": visual, "auditory": graphs}, **stop, epochs=3, **OPTIONS)
    want = fit_with_stopping(on_features, {"visual": visual, "auditory": featurizer(graphs)}, **stop, epochs=3, **OPTIONS)
    assert got.epochs == [{**e, "seconds": g["seconds"]} for e, g in zip(want.epochs, got.epochs)]
    assert all(np.array_equal(v, on_features.state_dict()[k]) for k, v in on_graphs.state_dict().items())


def _sparse_second_view(n, rows_with_both):
    """Two views; the second present only in ``rows_with_both`` (a mask)."""
    mask = np.zeros((n, 7), bool)
    mask[:, 0] = True
    mask[rows_with_both, 1] = True
    return two_views(n), mask


def test_a_monitor_the_validation_rows_make_0_every_epoch_is_refused():
    """contrastive and binding compare a row's pair of modalities with other
    rows' and cross_modal predicts one modality from the others of its row:
    on validation rows that never hold the same two modalities they are 0
    every epoch, and early stopping on them kept the first epoch, silently."""
    data, val = two_views(40), two_views(10, seed=1)
    one_each = np.zeros((10, 7), bool)
    one_each[:5, 0], one_each[5:, 1] = True, True  # both views, never in one row
    cases = [
        ("val_contrastive", {"validation": {"visual": val["visual"]}}, "no two rows hold the same pair of modalities"),
        ("val_binding", {"validation": val, "validation_mask": one_each}, "no two rows hold the same pair of modalities"),
        ("val_cross_modal", {"validation": val, "validation_mask": one_each}, "no row holds two modalities"),
    ]
    for monitor, validation, why in cases:
        model = small_model()
        before = model.state_dict()
        with pytest.raises(InvalidValueError, match=f"^validation: {why} \\(.* is 0 on them\\), so monitor '{monitor}' "
                                                    "would be 0 every epoch") as err:
            model.fit(data, epochs=5, early_stopping=2, monitor=monitor, objectives={"contrastive": 1, "binding": 1,
                      "cross_modal": 1}, progress=False, batch_size=16, **validation)
        assert err.value.arg == "validation" and model.epochs_trained == 0
        assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # what the rows do measure stays a monitor: fused_contrastive counts in the total
    two_rows = one_each.copy()
    two_rows[:2, 1] = True
    for monitor, mask in (("val_total", one_each), ("val_contrastive", two_rows)):
        history = small_model().fit(data, validation=val, validation_mask=mask, epochs=2, early_stopping=2,
                                    monitor=monitor, progress=False, batch_size=16)
        assert history.epochs[-1][monitor] > 0


@pytest.mark.parametrize("min_validation_rows, what", [(0, "the 8 rows held out to stop on"),
                                                       (32, "the rows each of the 5 cross-validation folds holds out")])
def test_held_out_rows_that_cannot_measure_the_monitor_are_named_by_validation_fraction(min_validation_rows, what):
    stop = {**STOP, "validation_fraction": 0.1, "min_validation_rows": min_validation_rows}
    # the second view in two rows, so that the data trains, but never in two rows held out together
    if min_validation_rows == 0:
        from grapheme_multimodal.training import holdout_rows

        held = holdout_rows(80, 0.1, STOP["seed"])[1]
        pair_rows = np.setdiff1d(np.arange(80), held)[:2]
    else:
        folds = np.array_split(np.random.default_rng(STOP["seed"]).permutation(80), 5)
        pair_rows = [folds[0][0], folds[1][0]]
    data, mask = _sparse_second_view(80, pair_rows)
    model = small_model()
    with pytest.raises(InvalidValueError, match=f"^validation_fraction: {what}: no two rows hold the same pair") as err:
        fit_with_stopping(model, data, mask=mask, **stop, epochs=4, **OPTIONS)
    assert err.value.arg == "validation_fraction" and model.epochs_trained == 0
    if min_validation_rows == 0:  # without stopping the slice is held out all the same, and trains the rest
        assert len(fit_with_stopping(small_model(), data, mask=mask, **{**stop, "patience": 0}, epochs=2, **OPTIONS).epochs) == 2
    _, most = _sparse_second_view(80, np.arange(60))  # the second view in most rows: measured, as before
    assert fit_with_stopping(small_model(), data, mask=most, **stop, epochs=2, **OPTIONS).epochs


def test_the_estimator_names_its_validation_fraction_for_a_view_the_held_out_rows_lack():
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    data = two_views(200)
    sparse = data["auditory"].copy()
    sparse[3:] = np.nan  # the second view in 3 rows only
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), epochs=3, min_validation_rows=0)
    with pytest.raises(InvalidValueError, match=r"^validation_fraction: the 20 rows held out to stop on: no two rows"):
        estimator.fit([data["visual"], sparse])
    assert not hasattr(estimator, "model_")


def test_data_on_which_every_weighted_objective_is_0_is_refused():
    """One modality per row, or one view, with only objectives that need two
    modalities in a row (contrastive, binding, cross_modal): every step was
    Adam on zero gradients, silently, as every weight 0 (which is refused)."""
    data, mask = _sparse_second_view(40, [5])
    only_pairs = {"contrastive": 1.0, "binding": 1.0, "cross_modal": 1.0}
    model = small_model()
    with pytest.raises(InvalidValueError, match=r"^data: no row holds two modalities \(cross_modal is 0 on them\); no two "
                                                r"rows hold the same pair of modalities \(contrastive, binding are 0 on them\), "
                                                r"so nothing would train") as err:
        model.fit({"visual": data["visual"]}, epochs=1, objectives=only_pairs, progress=False)
    assert err.value.arg == "data" and model.epochs_trained == 0
    with pytest.raises(InvalidValueError, match=r"^inputs: no two rows hold the same pair of modalities \(contrastive is 0"):
        fit_with_stopping(model, data, mask=mask, **STOP, epochs=2, **{**OPTIONS, "objectives": {"contrastive": 1.0}})
    # an objective that learns from one modality's rows trains
    assert model.fit({"visual": data["visual"]}, epochs=1, objectives={**only_pairs, "neighborhood": 1.0}, progress=False).epochs


def test_neighborhood_alone_on_recorded_embeddings_is_refused():
    """neighborhood finds a row's neighbours by its inputs: on an experience
    buffer of recorded embeddings (no inputs) it is 0, and a fit of it alone
    trained nothing, silently."""
    model = small_model()
    data = two_views(20)
    emb, fused = model.encode_and_fuse(data)
    mask = np.zeros((20, 7), bool)
    mask[:, :2] = True
    buffer = gm.ExperienceBuffer(20, embed_dim=8)
    buffer.extend(emb, mask, fused, model.pair_strengths(emb, mask), np.zeros(20))
    with pytest.raises(InvalidValueError, match=r"^data: recorded embeddings hold no inputs to find neighbours by "
                                                r"\(neighborhood is 0 on them\), so nothing would train"):
        model.fit(buffer, epochs=1, objectives={"neighborhood": 1.0}, progress=False)
    # beside another it is 0 every epoch, which fit says
    with pytest.warns(UserWarning, match=r"^data: recorded embeddings hold no inputs to find neighbours by .*only "
                                         r"fused_contrastive will train"):
        assert model.fit(buffer, epochs=1, objectives={"neighborhood": 1.0, "fused_contrastive": 1.0}, progress=False).epochs


@pytest.mark.parametrize("min_validation_rows", [2, 1000])  # the slice, and cross-validation
def test_a_modality_given_as_none_is_left_out_as_fit_leaves_it_out(min_validation_rows):
    # was "object of type 'NoneType' has no len()" when None came first, and as_real_array's
    # error for None where the rows were split
    views = two_views(40)
    with_none = {"tactile": None, **views}
    plain = fit_with_stopping(small_model(), views, min_validation_rows=min_validation_rows, epochs=2, **STOP, **OPTIONS)
    history = fit_with_stopping(small_model(), with_none, min_validation_rows=min_validation_rows, epochs=2, **STOP, **OPTIONS)
    assert history["loss"] == plain["loss"] and history.cv_curve == plain.cv_curve


def test_inputs_without_rows_are_named_by_this_functions_arguments():
    stop = {**STOP, "validation_fraction": 0.0}
    # each was a bare "object of type '...' has no len()", or named fit's `data`
    cases = [
        (dict(inputs={"visual": 5}), gm.ShapeError, r"^inputs\['visual'\]: expected one row per sample, got a scalar int"),
        (dict(inputs={"visual": np.zeros((4, 6))}, mask=True), gm.ShapeError, r"^mask: expected one row per sample"),
        (dict(inputs={}), InvalidValueError, r"^inputs: no modality was given"),
        (dict(inputs={"visual": np.zeros((4, 5))}), gm.ShapeError, r"^inputs\['visual'\]: expected shape \(any, 6\)"),
    ]
    for kwargs, error, words in cases:
        with pytest.raises(error, match=words) as err:
            fit_with_stopping(small_model(), epochs=1, **kwargs, **stop, **OPTIONS)
        assert err.value.arg == words[1:].split(":")[0].replace("\\", "")
