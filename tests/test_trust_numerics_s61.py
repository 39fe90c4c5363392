"""Numerical-methods audit (s61): training options at and past their bounds,
divergence, data at the edges, determinism and resume. Each test pins a
defect found and fixed: it failed before its fix."""

import warnings
from pathlib import Path

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


def _stopping_run(model, data, held, epochs, **options):
    return model.fit(data, epochs=epochs, batch_size=16, validation=held, early_stopping=2, monitor="val_total",
                     lr=0.05, ema_decay=0.9, progress=False, **options)


def test_early_stopping_is_each_fit_calls_own_as_the_docs_now_say(tmp_path):
    # fit's docstring said an interrupted fit "can resume exactly" and the README that fit(epochs=2) twice equals
    # fit(epochs=4), a checkpoint saved at an epoch's end resuming bit for bit: with early_stopping the resumed call
    # forgets the earlier best epoch (kept nowhere), so it stops and ends elsewhere. The docs now say so.
    rng = np.random.default_rng(5)
    z = rng.normal(size=(60, 3))
    views = {m: z @ rng.normal(size=(3, d)) + 0.3 * rng.normal(size=(60, d)) for m, d in (("visual", 6), ("auditory", 4))}
    data, held = {m: x[:20] for m, x in views.items()}, {m: x[20:] for m, x in views.items()}

    def model():
        return gm.LearnableMultiModal(input_dims={"visual": 6, "auditory": 4}, embed_dim=8, hidden_dim=8, num_heads=1,
                                      weight_decay=0.1, learnable_temperature=True, seed=0)

    def save_each_epoch(m):
        m.save(tmp_path / f"epoch{m.epochs_trained}.gmm")
        return 0.0

    whole = _stopping_run(model(), data, held, 30, metrics={"saved": save_each_epoch})
    assert whole.stopped_early and whole.best_epoch < len(whole.epochs) - 1
    resume_at = whole.best_epoch + 1  # saved after the best epoch, before the run stopped
    resumed = gm.LearnableMultiModal.load(tmp_path / f"epoch{resume_at}.gmm")
    again = _stopping_run(resumed, data, held, 30 - resume_at)
    assert again.best_epoch > resume_at  # the earlier best epoch is no candidate: it cannot be restored
    doc = gm.training.fit.__doc__
    assert "can restore only an epoch it" in doc and "but for ``early_stopping``'s record" in doc
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "(without early stopping, whose record is each call's)" in readme


def _model_standardising_tiny_values():
    # a std of about 1e-30: a value of 1e10 standardises to about 1e40, past float32
    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(input_dims={"visual": 4, "linguistic": 5}, embed_dim=8, hidden_dim=8, num_heads=1, seed=0)
    model.fit({"visual": 1e-30 * rng.normal(size=(16, 4)), "linguistic": rng.normal(size=(16, 5))}, epochs=1,
              batch_size=16, progress=False)
    return model


def _event(event_id, visual):
    event = gm.MultiModalEvent(event_id)
    event.add_component(gm.ModalFeatures(np.linspace(-1, 1, 5), "linguistic"))
    event.add_component(gm.ModalFeatures(visual, "visual"))
    return event


@pytest.mark.parametrize("method", ["encode_event", "fuse_event", "compute_bindings", "record_fusion"])
def test_an_event_whose_input_overflows_once_standardised_is_named_as_the_event(method):
    # the per-event methods named the core's batch of one, "inputs['visual']: row 0", an argument they do not take
    model = _model_standardising_tiny_values()
    event = _event(7, np.array([0.0, 0.0, 1e10, 0.0]))
    call = getattr(model, method)
    with pytest.raises(gm.NonFiniteError, match=r"^event: event 7's visual input overflows float32 in the encoder") as err:
        call(event, 1.0) if method == "record_fusion" else call(event)
    assert err.value.arg == "event"


@pytest.mark.parametrize("method", ["train_step", "losses", "backward"])
def test_a_batch_of_events_names_the_event_whose_input_overflows(method):
    # Batch.from_events: the core's "inputs['visual']: row 1", where the batch holds events, named neither
    model = _model_standardising_tiny_values()
    before = model.state_dict()
    events = [_event(3, np.zeros(4)), _event(9, np.array([0.0, 1e10, 0.0, 0.0]))]
    with pytest.raises(gm.NonFiniteError, match=r"^events\[1\]: event 9's visual input overflows float32") as err:
        getattr(model, method)(gm.Batch.from_events(events))
    assert err.value.arg == "events"
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
