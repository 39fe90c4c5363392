"""Training on extreme but legal data (session 56): what the recipe says
of the caller's data must hold of the caller's data, not of the part of
it that one of its internal fits (a held-out slice, a cross-validation
fold) happened to see."""

import subprocess
import sys
import warnings

import numpy as np

import grapheme_multimodal as gm
from grapheme_multimodal import stopping
from grapheme_multimodal.sklearn import MultimodalEmbedder

SMALL = dict(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8, batch_size=64)
SMALL_MODEL = dict(embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _caught(call):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = call()
    return result, [w for w in seen if issubclass(w.category, (gm.ConstantModalityWarning, gm.UntrainedModalityWarning))]


def test_a_column_constant_but_in_one_row_is_not_called_constant_because_a_fold_held_that_row_out() -> None:
    """40 rows, a view constant but in row 3: cross-validation's fold that
    held row 3 out warned "holds the same values in every row holding it"
    (and the command line printed it) of a view that varies, on which the
    final model trains; a view constant in every row is still warned of."""
    rng = np.random.default_rng(0)
    varying = rng.normal(size=(40, 4))
    almost = np.zeros((40, 2))
    almost[3] = 1.0
    _, seen = _caught(lambda: MultimodalEmbedder(epochs=2, patience=2, **SMALL).fit([varying, almost]))
    assert seen == [], [str(w.message) for w in seen]
    _, seen = _caught(lambda: MultimodalEmbedder(epochs=2, patience=2, **SMALL).fit([varying, np.zeros((40, 2))]))
    assert [str(w.message).split(";")[0] for w in seen] == ["Xs[1]: holds the same values in every row holding it"]


def test_a_view_in_one_row_is_not_said_untrained_by_a_validation_never_given() -> None:
    """60 rows (cross-validation), a view present in one row: the fold
    holding that row out warned "validation: modality 'auditory' is present
    in 1 of its rows but in no row of data ... this fit leaves it at its
    initial random weights", once per epoch, naming an argument the
    estimator has not, of a model that then trained that encoder on it."""
    rng = np.random.default_rng(0)
    n = 60
    sparse = np.full((n, 3), np.nan)
    sparse[3] = rng.normal(size=3)
    est, seen = _caught(lambda: MultimodalEmbedder(epochs=3, patience=2, **SMALL).fit(
        [rng.normal(size=(n, 5)), sparse, rng.normal(size=(n, 4))]))
    assert [str(w.message).split(";")[0] for w in seen] == ["Xs[1]: holds the same values in its one row"]
    assert est.models_[0].trained_modalities[gm.Modality.AUDITORY] > 0


def test_a_view_present_only_in_the_held_out_slice_is_named_as_the_caller_names_it() -> None:
    """400 rows (a slice held out), a view present only in rows of that
    slice: the warning named `validation` and "no row of data", neither the
    caller's; now it names the view (Xs[1], inputs['auditory']) and says
    where its rows went. And a view constant on the rows trained on, not on
    the slice, is said constant among the rows trained on only."""
    rng = np.random.default_rng(0)
    n = 400
    _, held = stopping.holdout_rows(n, 0.1, 0)
    sparse = np.full((n, 3), np.nan)
    sparse[held[:3]] = rng.normal(size=(3, 3))
    _, seen = _caught(lambda: MultimodalEmbedder(epochs=2, patience=2, **SMALL).fit(
        [rng.normal(size=(n, 5)), sparse, rng.normal(size=(n, 4))]))
    assert len(seen) == 1 and seen[0].filename == __file__, [str(w.message) for w in seen]
    assert str(seen[0].message).startswith(
        "Xs[1]: present in 3 rows, all of them among the 40 rows held out to stop on, none among the rows trained on: "
        "the model's encoder for it keeps its initial random weights and its inputs unstandardised")
    model = gm.LearnableMultiModal(input_dims={"visual": 5, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    almost = np.zeros((n, 2))
    almost[held[0]] = 1.0
    _, seen = _caught(lambda: stopping.fit_with_stopping(
        model, {"visual": rng.normal(size=(n, 5)), "auditory": almost}, validation_fraction=0.1, patience=2, epochs=1,
        monitor="val_total", progress=False))
    assert [str(w.message).split(";")[0] for w in seen] == [
        "inputs['auditory']: holds the same values in every row holding it among the rows trained on (those held out "
        "to stop on are not)"]


def test_the_command_line_does_not_call_a_column_constant_but_in_one_row_constant(tmp_path) -> None:
    """And its summary names what the cross-validation curve is of."""
    rng = np.random.default_rng(0)
    almost = np.zeros((40, 2))
    almost[3] = 1.0
    np.savetxt(tmp_path / "a.csv", rng.normal(size=(40, 3)), delimiter=",")
    np.savetxt(tmp_path / "b.csv", almost, delimiter=",")
    run = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={tmp_path / 'a.csv'}",
         "-m", f"auditory={tmp_path / 'b.csv'}", "--epochs", "2", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2",
         "--encoder-hidden", "8", "--encoder-output-dim", "8", "-o", str(tmp_path / "m.safetensors"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "warning" not in run.stderr, run.stderr
    # the folds' curve is of the recipe's monitor, the contrastive loss alone: said so beside the training total
    # (it read "loss 9.9747, ... (mean validation 2.1004)", as if a validation total a fifth of the training one)
    assert "chosen by 5-fold cross-validation (mean validation contrastive loss " in run.stdout, run.stdout


def test_ids_far_from_zero_that_float32_makes_one_value_are_warned_of_as_int64_or_float64() -> None:
    """Ids 10**15 + i (a spread of 1e-14 of their mean) become one float32
    value: the check took that spread for float64 roundoff and said nothing,
    for int64 (exact) and for the float64 a CSV file or scikit-learn's cast
    makes of them; float64 roundoff itself (0.1 + 0.2 beside 0.3, scaled)
    is still not reported."""
    rng = np.random.default_rng(0)
    n = 40
    ids = 10**15 + np.arange(n)
    other = rng.normal(size=(n, 2))
    for column in (ids.astype(np.int64), ids.astype(np.uint64), ids.astype(np.float64)):
        view = np.column_stack([column.astype(np.float64), other]) if column.dtype.kind == "f" else column[:, None]
        model = gm.LearnableMultiModal(input_dims={"visual": view.shape[1], "auditory": 2}, **SMALL_MODEL)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            model.fit({"visual": view, "auditory": other}, epochs=1, progress=False)
        lost = [str(w.message) for w in seen if issubclass(w.category, gm.PrecisionLossWarning)]
        assert len(lost) == 1 and lost[0].startswith("data['visual']: column 0 varies more finely than float32"), lost
        assert "in float32 the column is constant" in lost[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        MultimodalEmbedder(epochs=1, patience=0, **SMALL).fit([np.column_stack([ids, other]).astype(np.float64), other])
    assert [str(w.message)[:42] for w in seen if issubclass(w.category, gm.PrecisionLossWarning)] == [
        "Xs[0]: column 0 varies more finely than fl"]
    roundoff = np.where(np.arange(n) % 2, 0.1 + 0.2, 0.3) * 1e15
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL_MODEL)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit({"visual": np.column_stack([roundoff, other]), "auditory": other}, epochs=1, progress=False)
    assert not [w for w in seen if issubclass(w.category, gm.PrecisionLossWarning)]


def test_objective_weights_that_overflow_the_loss_are_named_as_each_caller_names_them(tmp_path) -> None:
    """The core names them `weights` (train_step's argument): fit, the
    estimator and grapheme-mm train said "weights: the weighted sum of the
    losses overflows", an argument none of them has."""
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    huge = {"contrastive": 3e38}
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL_MODEL)
    for call, arg in [
        (lambda: model.fit({"visual": a, "auditory": b}, epochs=1, objectives=huge, progress=False), "objectives"),
        (lambda: MultimodalEmbedder(epochs=1, patience=0, objectives=huge, **SMALL).fit([a, b]), "objectives"),
        (lambda: uci.fit_views({"a": a, "b": b}, settings=uci.TrainingSettings(epochs=1, patience=0, weights=huge)),
         "settings.weights"),
        (lambda: model.train_step({"visual": a, "auditory": b}, weights=huge), "weights"),
    ]:
        try:
            call()
        except gm.NonFiniteError as err:
            assert err.arg == arg and str(err) == f"{arg}: the weighted sum of the losses overflows; expected smaller " \
                "objective weights", str(err)
        else:
            raise AssertionError(f"{arg}: not refused")
    np.savetxt(tmp_path / "a.csv", a, delimiter=",")
    np.savetxt(tmp_path / "b.csv", b, delimiter=",")
    run = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={tmp_path / 'a.csv'}",
         "-m", f"auditory={tmp_path / 'b.csv'}", "--epochs", "1", "--early-stopping", "0", "--objectives",
         "contrastive=3e38", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--encoder-hidden", "8",
         "--encoder-output-dim", "8", "-o", str(tmp_path / "m.safetensors"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode != 0 and "error: --objectives: the weighted sum of the losses overflows" in run.stderr, run.stderr


def _one_row_holding_both(n: int, row: int):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    a[n // 2:] = np.nan
    b[: n // 2] = np.nan
    b[row] = rng.normal(size=2)  # the one row holding both views
    return a, b


def test_a_fold_holding_out_the_only_row_an_objective_learns_from_is_refused_as_the_fold_not_the_data() -> None:
    """40 rows, only row 0 holding both views: the fold that held row 0 out
    was refused as the caller's data ("Xs: no row holds two modalities",
    false: row 0 does), and with modality_dropout ("no row of data holds
    two modalities") even where another objective trains the fold."""
    a, b = _one_row_holding_both(40, 0)
    try:
        MultimodalEmbedder(epochs=2, patience=2, objectives={"cross_modal": 1.0}, **SMALL).fit([a, b])
    except gm.InvalidValueError as err:
        assert err.arg == "cv_folds" and "cross-validation folds holds out 8 rows that leave its 32 rows to train on " \
            "nothing to learn from: among them, no row holds two modalities" in str(err), str(err)
    else:
        raise AssertionError("not refused")
    est = MultimodalEmbedder(epochs=2, patience=2, modality_dropout=0.3,
                             objectives={"cross_modal": 1.0, "reconstruction": 1.0}, **SMALL).fit([a, b])
    assert np.isfinite(est.transform([a[:1], b[:1]])).all()
    # the slice held out to stop on: named so
    n = 400
    _, held = stopping.holdout_rows(n, 0.1, 0)
    a, b = _one_row_holding_both(n, 0)
    a[held[0]], b[held[0]] = 1.0, 1.0
    a[0] = np.nan  # row 0 holds b only: the one row holding both is in the slice
    mask = np.zeros((n, 7), bool)
    mask[:, 0], mask[:, 1] = ~np.isnan(a[:, 0]), ~np.isnan(b[:, 0])
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL_MODEL)
    try:
        stopping.fit_with_stopping(model, {"visual": np.nan_to_num(a), "auditory": np.nan_to_num(b)}, mask=mask,
                                   validation_fraction=0.1, patience=0, epochs=1, monitor="val_total",
                                   objectives={"cross_modal": 1.0}, progress=False)
    except gm.InvalidValueError as err:
        assert err.arg == "validation_fraction" and str(err).startswith(
            "validation_fraction: the 40 rows held out to stop on leave the 360 rows trained on nothing to learn from: "
            "among them, no row holds two modalities"), str(err)
    else:
        raise AssertionError("not refused")


def test_a_float32_column_of_subnormal_values_is_refused_as_its_float64_twin_is() -> None:
    """float32 values around 1e-40 (subnormal): their standard deviation,
    below the smallest normal float32, read as a constant column's (std 1),
    so the view standardised to 0 and every row embedded the same, without
    a word; the same values in float64 are refused at the cast. Now refused
    alike, the model left as it was; 1e-36 (normal) still trains."""
    rng = np.random.default_rng(0)
    n = 40
    other = rng.normal(size=(n, 2))
    for scale in (1e-40, 1e-44):
        tiny = (rng.normal(size=(n, 3)) * scale).astype(np.float32)
        model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL_MODEL)
        before = model.state_dict()
        for call, name in [(lambda: model.fit({"visual": tiny, "auditory": other}, epochs=1, progress=False),
                            "data['visual']"),
                           (lambda: model.fit_normalization({"visual": tiny}), "inputs['visual']"),
                           (lambda: MultimodalEmbedder(epochs=1, patience=0, **SMALL).fit([other, tiny]), "Xs[1]")]:
            try:
                call()
            except gm.InvalidValueError as err:
                assert err.arg == name and str(err).startswith(f"{name}: column 0's values are at most ") and \
                    "below float32's smallest normal number" in str(err), str(err)
            else:
                raise AssertionError(f"{name}: not refused")
        assert model.normalization("visual") is None and model.epochs_trained == 0
        assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # absent rows are not read: a subnormal there is no column of the view's
    mixed = (rng.normal(size=(n, 3))).astype(np.float32)
    mixed[:5] = 1e-40
    mask = np.ones((n, 7), bool)
    mask[:, 2:] = False
    mask[:5, 0] = False
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL_MODEL)
    model.fit({"visual": mixed, "auditory": other}, mask=mask, epochs=1, progress=False)
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, **SMALL_MODEL)
    small = (rng.normal(size=(n, 3)) * 1e-36).astype(np.float32)
    model.fit({"visual": small, "auditory": other}, epochs=1, progress=False)
    embedded = model.encode({"visual": small})[:, 0]
    assert np.isfinite(embedded).all() and len(np.unique(embedded.round(5), axis=0)) == n
