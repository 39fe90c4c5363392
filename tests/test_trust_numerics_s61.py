"""Numerical-methods audit (s61): training options at and past their bounds,
divergence, data at the edges, determinism and resume. Each test pins a
defect found and fixed: it failed before its fix."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci

# a learning rate whose first Adam step (10 × lr) fits float32 but overflows a weight: the step is refused
STEP_TOO_LARGE = 3e37
SMALL_RECIPE = dict(epochs=2, encoder_hidden=(8,), embed_dim=8, hidden_dim=8, num_heads=1)


def _views(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(n, 6)), "b": rng.normal(size=(n, 4))}


@pytest.mark.parametrize("entry", ["train", "fit_views"])
def test_a_recipe_step_refused_for_its_learning_rate_names_the_settings_field(entry):
    # uci.train passed settings.learning_rate to fit as lr=, so the refused step named `lr`, an
    # argument of neither train nor fit_views nor a field of TrainingSettings
    settings = uci.TrainingSettings(learning_rate=STEP_TOO_LARGE, **SMALL_RECIPE)
    views = _views()
    with warnings.catch_warnings(), pytest.raises(gm.NonFiniteError) as err:
        warnings.simplefilter("ignore")
        if entry == "train":
            uci.train({"visual": views["a"], "auditory": views["b"]}, settings, standardize=True)
        else:
            uci.fit_views(views, settings=settings)
    assert err.value.arg in ("learning_rate", "settings.learning_rate")
    assert str(err.value).startswith(f"{err.value.arg}: ")


def test_a_recipe_trains_as_before_with_its_learning_rate_from_the_model():
    # the model is built with settings.learning_rate: fit's default lr is that rate, bit for bit
    settings = uci.TrainingSettings(learning_rate=0.003, **SMALL_RECIPE)
    views = _views()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = uci.fit_views(views, settings=settings).model
        reference = gm.LearnableMultiModal(input_dims={"visual": 6, "auditory": 4}, **settings.model_options())
        gm.stopping.fit_with_stopping(reference, {"visual": views["a"], "auditory": views["b"]},
                                      **settings.stopping_options(len(views)), epochs=settings.epochs,
                                      batch_size=settings.batch_size, objectives=settings.objectives, lr=0.003,
                                      modality_dropout=settings.modality_dropout, ema_decay=settings.ema_decay,
                                      standardize=True, progress=False)
    expected = reference.state_dict()
    assert all(np.array_equal(v, expected[k]) for k, v in model.state_dict().items())
