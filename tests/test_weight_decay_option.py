"""The model's decoupled weight decay through the recipe's three entry points:
``uci.TrainingSettings(weight_decay=...)``, ``MultimodalEmbedder(weight_decay=...)``
and ``grapheme-mm train --weight-decay``. Each reaches the model's config,
decays the weights, is refused by its own name when bad, and is kept by the
checkpoint, from which training resumes exactly; the recipe's 0 changes nothing."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from sklearn.base import clone

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.cli import main
from grapheme_multimodal.sklearn import MultimodalEmbedder
from test_trust_resume import full_state  # everything a checkpoint holds, comparable (times left out)

DIMS = {"visual": 5, "auditory": 4}

#: A small, fast version of the recipe: no held-out slice, no stopping, no
#: weight average, so the trained weights are those every step left.
SMALL = dict(epochs=3, batch_size=16, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,),
             validation_fraction=0.0, patience=0, ema_decay=None)
SMALL_ESTIMATOR = dict(SMALL)  # the estimator takes the same names

#: Values each entry point must refuse, by their own names.
BAD_VALUES = [-1.0, -1e-3, float("nan"), float("inf"), "0.1", True, None, 1000.0]  # 1000: lr * weight_decay >= 1


def views(n: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, d)) + 0.1 * rng.normal(size=(n, d))).astype(np.float32) for m, d in DIMS.items()}


def weights_norm(model: gm.LearnableMultiModal) -> float:
    return float(np.sqrt(sum((v.astype(np.float64) ** 2).sum() for v in model.state_dict().values())))


# ------------------------------------------------------------------ uci.TrainingSettings
def test_settings_take_it_last_and_the_recipe_stays_bit_for_bit_the_same():
    fields = [f.name for f in dataclasses.fields(uci.TrainingSettings)]
    assert fields[-1] == "weight_decay" and fields[-2] == "seed"  # positional construction of the others unchanged
    recipe = uci.TrainingSettings()
    positional = uci.TrainingSettings(*[getattr(recipe, f) for f in fields[:-1]])
    assert positional == recipe and recipe.weight_decay == 0.0
    options = recipe.model_options()
    assert options["weight_decay"] == 0.0
    without = {k: v for k, v in options.items() if k != "weight_decay"}  # the model the recipe made before the option
    assert full_state(gm.LearnableMultiModal(input_dims=DIMS, **options)) == \
        full_state(gm.LearnableMultiModal(input_dims=DIMS, **without))


def test_settings_pass_it_to_the_model_and_it_decays_the_weights():
    x = views()
    plain = uci.train(x, uci.TrainingSettings(**SMALL), standardize=True)
    decayed = uci.train(x, uci.TrainingSettings(weight_decay=10.0, **SMALL), standardize=True)
    slight = uci.train(x, uci.TrainingSettings(weight_decay=0.01, **SMALL), standardize=True)
    assert plain.config.weight_decay == 0.0 and decayed.config.weight_decay == 10.0 and slight.config.weight_decay == 0.01
    assert weights_norm(decayed) < 0.95 * weights_norm(plain)  # 9 steps of × (1 − 0.002 · 10)
    assert weights_norm(slight) < weights_norm(plain)
    assert full_state(slight) != full_state(plain)
    embedder = uci.fit_views({"a": x["visual"], "b": x["auditory"]}, settings=uci.TrainingSettings(weight_decay=0.01, **SMALL))
    assert embedder.model.config.weight_decay == 0.01


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_settings_refuse_a_bad_value_naming_weight_decay(bad):
    if bad == 1000.0:  # lr * weight_decay >= 1: a pair the model's core checks when train builds the model
        settings = uci.TrainingSettings(weight_decay=bad, **SMALL)
    else:
        with pytest.raises((gm.GraphemeError, TypeError), match=r"^weight_decay: "):  # checked when made (s64)
            uci.TrainingSettings(weight_decay=bad, **SMALL)
        # and again when train runs, as every field is: settings altered past their check are refused there too
        settings = uci.TrainingSettings(**SMALL)
        object.__setattr__(settings, "weight_decay", bad)
    with pytest.raises((gm.GraphemeError, TypeError), match=r"^weight_decay: "):
        uci.train(views(), settings, standardize=True)
    with pytest.raises((gm.GraphemeError, TypeError), match=r"weight_decay"):
        uci.fit_views({"a": views()["visual"]}, settings=settings)


def test_a_model_of_the_settings_saves_loads_and_resumes_exactly(tmp_path):
    x = views()
    settings = uci.TrainingSettings(weight_decay=0.01, **SMALL)
    trained = uci.train(x, settings, standardize=True)
    trained.save(tmp_path / "m.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    assert loaded.config.weight_decay == 0.01
    fit = dict(epochs=2, batch_size=16, objectives=settings.objectives, ema_decay=0.9, progress=False)
    loaded.fit(x, **fit)
    trained.fit(x, **fit)
    assert full_state(loaded) == full_state(trained)
    # and fit(n) = fit(k), save, load, fit(n - k), with the settings' model
    straight = gm.LearnableMultiModal(input_dims=DIMS, **settings.model_options())
    straight.fit(x, **{**fit, "epochs": 4}, standardize=True)
    first = gm.LearnableMultiModal(input_dims=DIMS, **settings.model_options())
    first.fit(x, **fit, standardize=True)
    first.save(tmp_path / "first.safetensors")
    resumed = gm.LearnableMultiModal.load(tmp_path / "first.safetensors")
    resumed.fit(x, **fit, standardize=True)
    assert full_state(resumed) == full_state(straight)


# ------------------------------------------------------------------ MultimodalEmbedder
def test_estimator_default_is_the_recipe_and_it_reaches_the_model():
    est = MultimodalEmbedder()
    assert est.weight_decay == uci.TrainingSettings().weight_decay == 0.0
    Xs = list(views().values())
    plain = MultimodalEmbedder(**SMALL_ESTIMATOR).fit(Xs)
    decayed = MultimodalEmbedder(weight_decay=10.0, **SMALL_ESTIMATOR).fit(Xs)
    assert plain.model_.config.weight_decay == 0.0 and decayed.model_.config.weight_decay == 10.0
    assert weights_norm(decayed.model_) < 0.95 * weights_norm(plain.model_)
    assert not np.array_equal(decayed.transform(Xs), plain.transform(Xs))


def test_estimator_get_params_clone_and_set_params_round_trip():
    est = MultimodalEmbedder(weight_decay=0.05)
    assert est.get_params()["weight_decay"] == 0.05
    copy = clone(est)
    assert copy.weight_decay == 0.05 and copy.get_params() == est.get_params()
    assert est.set_params(weight_decay=0.2).weight_decay == 0.2
    bad = MultimodalEmbedder(weight_decay="0.1")
    assert bad.weight_decay == "0.1"  # stored as given (scikit-learn's convention), refused at fit


def test_an_estimator_pickled_before_the_option_loads_without_decay():
    est = MultimodalEmbedder(**SMALL_ESTIMATOR).fit(list(views().values()))
    state = est.__getstate__()
    del state["weight_decay"]  # what a pickle from before the option holds
    old = MultimodalEmbedder.__new__(MultimodalEmbedder)
    old.__setstate__(state)
    assert old.get_params()["weight_decay"] == 0.0 and clone(old).weight_decay == 0.0
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(old)).transform(list(views().values())),
                                  est.transform(list(views().values())))


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_estimator_refuses_a_bad_value_at_fit_and_keeps_its_model(bad):
    Xs = list(views().values())
    est = MultimodalEmbedder(**SMALL_ESTIMATOR).fit(Xs)
    model, before = est.model_, est.transform(Xs)
    est.set_params(weight_decay=bad)
    with pytest.raises((gm.GraphemeError, TypeError), match=r"^weight_decay: "):
        est.fit(Xs)
    assert est.model_ is model and est.weight_decay is bad
    np.testing.assert_array_equal(est.transform(Xs), before)


def test_an_estimators_model_saves_loads_and_resumes_exactly(tmp_path):
    Xs = list(views().values())
    est = MultimodalEmbedder(weight_decay=0.01, **SMALL_ESTIMATOR).fit(Xs)
    est.model_.save(tmp_path / "m.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    assert loaded.config.weight_decay == 0.01
    inputs = {m: x for m, x in zip(est.modalities_, Xs)}
    fit = dict(epochs=2, batch_size=16, progress=False)
    loaded.fit(inputs, **fit)
    est.model_.fit(inputs, **fit)
    assert full_state(loaded) == full_state(est.model_)


# ------------------------------------------------------------------ grapheme-mm train --weight-decay
@pytest.fixture
def files(tmp_path):
    for m, x in views(60).items():
        np.save(tmp_path / f"{m}.npy", x)
    return tmp_path


def train_argv(files, *flags) -> list:
    return ["train", *[a for m in DIMS for a in ("-m", f"{m}={files / (m + '.npy')}")], "--epochs", "2", "--batch-size", "16",
            "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--encoder-hidden", "8", "--validation-split", "0",
            "--no-progress", *flags]


def test_cli_flag_reaches_the_checkpoint_and_info_shows_it(files, capsys):
    assert main(train_argv(files, "--weight-decay", "0.01", "-o", str(files / "wd.safetensors"))) == 0
    assert main(train_argv(files, "-o", str(files / "plain.safetensors"))) == 0
    decayed = gm.LearnableMultiModal.load(files / "wd.safetensors")
    plain = gm.LearnableMultiModal.load(files / "plain.safetensors")
    assert decayed.config.weight_decay == 0.01 and plain.config.weight_decay == 0.0
    assert full_state(decayed)[0] != full_state(plain)[0]
    capsys.readouterr()
    assert main(["info", str(files / "wd.safetensors")]) == 0
    assert " weight_decay=0.01" in capsys.readouterr().out
    assert main(["info", str(files / "plain.safetensors")]) == 0
    assert "weight_decay" not in capsys.readouterr().out  # a model trained without it: info's lines as before


def test_cli_default_and_help(capsys):
    from grapheme_multimodal.cli import _parser, train_flags

    train = _parser()._subparsers._group_actions[0].choices["train"]
    assert train.parse_args(["-m", "visual=x.npy"]).weight_decay == 0.0
    assert train.parse_args(["-m", "visual=x.npy", "--weight-decay", "0.3"]).weight_decay == 0.3
    assert train_flags()["weight_decay"] == "--weight-decay"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--weight-decay L" in text and "decoupled (AdamW-style)" in text and "(default 0: off)" in text


@pytest.mark.parametrize("value, words", [
    ("-1", "expected a finite number >= 0, got -1.0"),
    ("-1e-3", "got -0.001"),
    ("nan", "got nan"),
    ("inf", "got inf"),
    ("1000", "with --lr 0.002"),
])
def test_cli_refuses_a_bad_value_naming_the_flag(files, capsys, value, words):
    out = files / "m.safetensors"
    assert main(train_argv(files, "--weight-decay", value, "-o", str(out))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("grapheme-mm: error: --weight-decay: ") and words in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("value", ["x", "1e400", ""])
def test_cli_refuses_a_value_that_is_no_number_naming_the_flag(files, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(train_argv(files, "--weight-decay", value))
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("grapheme-mm: error: --weight-decay: "), err
