"""A hostile user's audit of the scikit-learn estimator
(:class:`~grapheme_multimodal.sklearn.MultimodalEmbedder`) as a
scikit-learn user pushes it, and five smaller items noticed by earlier
audits: what it turned up, each test failing before its fix, and what held
(last tests). scikit-learn's own estimator checks run in test_sklearn.py."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.config import MAX_DROPOUT
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import save_with_config_fields, two_view_data, two_view_model


#: A small, fast estimator.
FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2, batch_size=32)


def estimator_views(n: int = 80, widths=(6, 4), seed: int = 0) -> list:
    """Views ``[n, d]`` of one 3-d latent."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return [z @ rng.normal(size=(3, d)) for d in widths]


# ------------------------------------------------------------- what broke
@pytest.mark.parametrize("name", ["encoder_input_dropout", "encoder_hidden_dropout"])
@pytest.mark.parametrize("rate", [1 - 1e-7, 0.999, float(np.nextafter(1.0, 0.0))])
def test_a_dropout_whose_keep_probability_the_draws_cannot_resolve_is_refused_by_name(name, rate):
    """A rate just below 1 passed the check for [0, 1): its entries are kept
    when a 32-bit draw clears round(p * 2**32), so a keep probability of
    1e-7 was realised only to about 0.1 % and one of 1e-16 as 2**-32, while
    each kept entry was scaled by 1 / (1 - p), up to 9e15: the expected
    multiplier was no longer 1. Refused in the core's config (every entry
    point) and by the Python config, naming the field."""
    options = dict(encoder_hidden=(8,), **{name: rate})
    with pytest.raises(InvalidValueError, match=rf"^{name}: expected a probability in \[0, 0\.998046875\]") as err:
        gm.LearnableMultiModalConfig(**options)
    assert err.value.arg == name
    with pytest.raises(InvalidValueError, match=rf"^{name}: ") as err:
        gm.LearnableMultiModal(**options)
    assert err.value.arg == name
    at_bound = two_view_model(encoder_hidden=(8,), **{name: MAX_DROPOUT})  # the bound itself trains
    at_bound.fit(two_view_data(), epochs=1, batch_size=10, progress=False)
    assert np.isfinite(at_bound.history[-1]["loss"])


def test_the_core_refuses_a_dropout_beyond_the_bound_by_name_too():
    """The Rust config's own check, which the model runs past the Python
    config (a config changed behind its back here)."""
    assert MAX_DROPOUT == 1 - 2**-9
    config = gm.LearnableMultiModalConfig(encoder_hidden=(8,))
    object.__setattr__(config, "encoder_hidden_dropout", 0.999)  # frozen: as a buggy caller could
    with pytest.raises(InvalidValueError, match=r"^encoder_hidden_dropout: got 0\.999; expected a probability in \[0, 0\.998046875\]") as err:
        gm.LearnableMultiModal(config)
    assert err.value.arg == "encoder_hidden_dropout"


def test_a_file_saved_with_a_dropout_beyond_the_bound_still_loads(tmp_path):
    """A model saved by an earlier version with such a rate (it trained, if
    to no purpose) is the user's: it loads, its rate read as the bound, and
    says so."""
    model = two_view_model(encoder_hidden=(8,), encoder_hidden_dropout=0.5)
    path = tmp_path / "m.safetensors"
    save_with_config_fields(model, path, encoder_hidden_dropout=0.9999)
    with pytest.warns(UserWarning, match=r"encoder_hidden_dropout: .* 0\.9999 .* read as 0\.998046875"):
        loaded = gm.LearnableMultiModal.load(path)
    assert loaded.config.encoder_hidden_dropout == MAX_DROPOUT
    np.testing.assert_array_equal(loaded.encode_and_fuse(two_view_data())[1], model.encode_and_fuse(two_view_data())[1])


def test_views_as_one_3d_array_in_mvlearns_convention_are_the_views():
    """The estimator follows mvlearn's convention, in which Xs is a list of
    [n, d] arrays or one [n_views, n, d] array; the latter was refused with
    scikit-learn's "Found array with dim 3, while dim <= 2 is required"."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = estimator_views(widths=(5, 5, 5))
    stacked = np.stack(Xs)
    est = MultimodalEmbedder(**FAST).fit(stacked)
    assert est.n_views_ == 3 and est.view_dims_ == [5, 5, 5]
    expected = MultimodalEmbedder(**FAST).fit(Xs)
    np.testing.assert_array_equal(est.transform(stacked), expected.transform(Xs))
    np.testing.assert_array_equal(est.transform(Xs), expected.transform(stacked))
    with pytest.raises(InvalidValueError, match=r"^Xs: expected at least one view .* got a 3-d array of 0 views"):
        MultimodalEmbedder(**FAST).fit(np.zeros((0, 10, 5)))


def _skipped_warnings(record) -> list:
    return [w for w in record if issubclass(w.category, gm.EarlyStoppingSkippedWarning)]


@pytest.mark.parametrize("n, fraction, held", [(12, 0.1, 1), (3, 0.5, 2)])  # 1 row held out; 2 held leave 1 to train on
def test_early_stopping_skipped_for_too_few_held_out_rows_says_so_once(n, fraction, held):
    """fit_with_stopping with patience but a slice of fewer than 2 rows (or
    one that leaves fewer than 2 to train on) ran every epoch on all rows,
    as documented, but without a word: the caller asked to stop early."""
    import warnings

    from grapheme_multimodal.stopping import fit_with_stopping

    assert issubclass(gm.EarlyStoppingSkippedWarning, UserWarning)
    for _ in range(2):  # once per fit, every fit (not once per place in the code)
        model = two_view_model()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            history = fit_with_stopping(model, two_view_data(n), validation_fraction=fraction, patience=2,
                                        monitor="val_total", seed=0, epochs=3, batch_size=10, progress=False)
        skipped = _skipped_warnings(record)
        assert len(skipped) == 1, [str(w.message) for w in record]
        message = str(skipped[0].message)
        assert message.startswith(f"validation_fraction: {fraction:g} of {n} rows holds out {held}, leaving {n - held}")
        assert "early stopping (patience 2) is skipped: all 3 epochs run on all rows" in message
        assert len(history.epochs) == 3 and "val_total" not in history.epochs[-1]


@pytest.mark.parametrize("options", [
    dict(validation_fraction=0.0, patience=2),  # no slice asked for
    dict(validation_fraction=0.1, patience=0),  # no early stopping asked for
    dict(validation_fraction=0.1, patience=2, epochs=0),  # nothing trains
])
def test_no_early_stopping_warning_where_none_was_asked_for_or_rows_suffice(options):
    import warnings

    from grapheme_multimodal.stopping import fit_with_stopping

    for n in (12, 40):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            fit_with_stopping(two_view_model(), two_view_data(n), **{"epochs": 2, **options}, monitor="val_total",
                              seed=0, batch_size=10, progress=False)
        assert not _skipped_warnings(record)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit_with_stopping(two_view_model(), two_view_data(40), validation_fraction=0.1, patience=2, monitor="val_total",
                          min_validation_rows=0, seed=0, epochs=2, batch_size=10, progress=False)
    assert not _skipped_warnings(record)  # 4 rows held out
    with warnings.catch_warnings(record=True) as record:  # a fit that fails ran no epoch: nothing to say of them
        warnings.simplefilter("always")
        with pytest.raises(InvalidValueError):
            fit_with_stopping(two_view_model(), two_view_data(12), mask=np.zeros((12, 7), bool), validation_fraction=0.1,
                              patience=2, monitor="val_total", seed=0, epochs=2, batch_size=10, progress=False)
    assert not _skipped_warnings(record)


def test_the_estimator_and_the_cli_say_once_that_early_stopping_was_skipped(tmp_path, capsys):
    import warnings

    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        MultimodalEmbedder(**FAST).fit(estimator_views(12))  # the recipe's patience, 10 % of 12 rows: 1
    assert len(_skipped_warnings(record)) == 1
    assert str(_skipped_warnings(record)[0].message).startswith("validation_fraction: 0.1 of 12 rows holds out 1")

    from conftest import cli_train_args

    checkpoint = tmp_path / "m.safetensors"
    args = cli_train_args(tmp_path, two_view_data(12), checkpoint)
    assert main(args) == 0
    err = capsys.readouterr().err
    # once, as one line by the flags' names (the recipe's patience: --early-stopping not given)
    assert err.count("warning") == 1, err
    assert "grapheme-mm: warning: --validation-split: 0.1 of 12 rows holds out 1, leaving 11" in err
    assert main(cli_train_args(tmp_path, two_view_data(40), checkpoint)) == 0  # normal data: nothing to say
    assert "warning" not in capsys.readouterr().err


def test_reconstruction_subsets_can_be_set_from_the_estimator():
    """A training option of the recipe (TrainingSettings.reconstruction_subsets,
    shaping its reconstruction objective) that MultimodalEmbedder did not
    take, while its siblings (neighborhood_temperature, ...) it did."""
    from grapheme_multimodal import uci
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    assert MultimodalEmbedder().get_params()["reconstruction_subsets"] is uci.TrainingSettings().reconstruction_subsets
    est = MultimodalEmbedder(**FAST, reconstruction_subsets=True).fit(estimator_views())
    assert est.model_.config.reconstruction_subsets is True and "reconstruction" in est.history_.epochs[-1]
    assert MultimodalEmbedder(**FAST).fit(estimator_views()).model_.config.reconstruction_subsets is False
    # objectives without reconstruction leave it nothing to shape: refused by the estimator's names
    with pytest.raises(InvalidValueError, match=r"^reconstruction_subsets: got True, but .*no reconstruction weight") as err:
        MultimodalEmbedder(**FAST, reconstruction_subsets=True, objectives={"contrastive": 1.0}).fit(estimator_views())
    assert err.value.arg == "reconstruction_subsets"
    with pytest.raises(TypeError, match=r"^reconstruction_subsets: expected a bool"):
        MultimodalEmbedder(**FAST, reconstruction_subsets="yes").fit(estimator_views())
    with pytest.raises(InvalidValueError, match=r"^reconstruction_subsets: got True, but reconstruction_decoders is False"):
        uci.TrainingSettings(reconstruction_subsets=True, reconstruction_decoders=False, weights={"contrastive": 1.0})


def test_reconstruction_subsets_can_be_set_from_the_cli(tmp_path, capsys):
    from grapheme_multimodal.cli import main

    from conftest import cli_train_args

    checkpoint = tmp_path / "m.safetensors"
    args = cli_train_args(tmp_path, two_view_data(40), checkpoint)
    assert main([*args, "--reconstruction-subsets"]) == 0
    assert gm.LearnableMultiModal.load(checkpoint).config.reconstruction_subsets is True
    assert main(args) == 0
    assert gm.LearnableMultiModal.load(checkpoint).config.reconstruction_subsets is False  # the recipe's
    assert main([*args, "--reconstruction-subsets", "--objectives", "contrastive=1"]) == 2
    assert "grapheme-mm: error: --reconstruction-subsets: got True, but" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--reconstruction-subsets" in capsys.readouterr().out


def _average_checkpoint_with(tmp_path, which: str, value: float):
    """A checkpoint of an averaged fit whose weight_average ``which``
    ('mean', float64, or 'trained', float32) holds ``value`` at [0, 3]."""
    from grapheme_multimodal.checkpoint import FILE_FORMAT
    from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors

    model = two_view_model()
    model.fit(two_view_data(40), epochs=2, batch_size=20, ema_decay=0.9, progress=False)
    path = tmp_path / "averaged.safetensors"
    model.save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    key = next(k for k in sorted(tensors) if k.startswith(f"weight_average/{which}/") and tensors[k].ndim == 2)
    tensors[key] = tensors[key].copy()
    tensors[key][0, 3] = value
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    return path, key[len(f"weight_average/{which}/"):]


@pytest.mark.parametrize("value", [1e39, 1e300, -4e38])
def test_a_saved_average_beyond_float32_names_the_tensor_the_value_and_the_limit(tmp_path, value):
    """The average is kept in float64 and becomes the model's float32
    weights: a forged mean beyond float32 gave numpy's "overflow encountered
    in cast" (with warnings as errors, the only error) and then "the weights
    are not the stored average", which named neither the value nor why."""
    import re
    import warnings

    path, key = _average_checkpoint_with(tmp_path, "mean", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(gm.CheckpointError) as err:
            gm.LearnableMultiModal.load(path)
    expected = (f"weight_average mean {key!r}: holds {value:.4g} at (0, 3), beyond float32's largest magnitude 3.403e+38 "
                "(the model's weights, which hold the average, are float32)")
    assert expected in str(err.value)


@pytest.mark.parametrize("which", ["mean", "trained"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_saved_average_holding_nan_or_inf_names_the_value_and_where(tmp_path, which, value):
    """Was "contains NaN or inf": which, and where, was not said."""
    path, key = _average_checkpoint_with(tmp_path, which, value)
    with pytest.raises(gm.CheckpointError) as err:
        gm.LearnableMultiModal.load(path)
    assert f"weight_average {which} {key!r}: contains NaN or inf ({value} at (0, 3)); expected finite numbers" in str(err.value)


# ------------------------------------------------------------- what held
def test_a_history_holding_nan_that_training_recorded_saves_and_loads(tmp_path):
    """A checkpoint's history with NaN is not refused as forged: training
    itself records one where a metrics function returns NaN (a metric
    undefined on some epoch; only the watched monitor must be a number), and
    a file the package wrote must load. Loading keeps the NaN as saved."""
    model = two_view_model()
    history = model.fit(two_view_data(40), epochs=2, batch_size=20, progress=False,
                        metrics={"undefined": lambda m: float("nan")})
    assert np.isnan(history.epochs[-1]["val_undefined"])
    path = tmp_path / "nan-history.safetensors"
    model.save(path)
    loaded = gm.LearnableMultiModal.load(path)
    assert [sorted(r) for r in loaded.history] == [sorted(r) for r in model.history]
    assert all(np.isnan(r["val_undefined"]) for r in loaded.history)
    assert [r["loss"] for r in loaded.history] == [r["loss"] for r in model.history]


def test_a_view_given_as_none_is_refused_by_its_name_saying_how_to_mark_a_missing_view():
    """None in the list of views (a view missing, as a user might mark it)
    was "Xs[1]: Expected 2D array, got scalar array instead: array=nan",
    a NaN the user never gave."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = estimator_views()
    message = r"^Xs\[1\]: got None; expected an \[n, d\] array \(a view missing from a row is all-NaN in that row"
    with pytest.raises(TypeError, match=message):
        MultimodalEmbedder(**FAST).fit([Xs[0], None])
    est = MultimodalEmbedder(**FAST).fit(Xs)
    with pytest.raises(TypeError, match=message):
        est.transform([Xs[0], None])
    assert np.isfinite(est.transform([Xs[0], np.full_like(Xs[1], np.nan)])).all()  # the way the message gives


def test_modality_names_from_a_numpy_array_are_quoted_as_the_user_wrote_them():
    """modalities=np.array([...]) (a column of names read from a file) named
    an unknown one as "np.str_('text')", numpy's repr, not the name."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with pytest.raises(InvalidValueError, match=r"^modalities\[0\]: unknown modality 'text'; expected one of visual"):
        MultimodalEmbedder(**FAST, modalities=np.array(["text", "visual"])).fit(estimator_views())
    est = MultimodalEmbedder(**FAST, modalities=np.array(["abstract", "visual"])).fit(estimator_views())
    assert [str(m) for m in est.modalities_] == ["abstract", "visual"]
