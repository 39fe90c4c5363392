"""fit(): losses fall, runs are reproducible and resumable, early stopping
restores the best epoch, standardisation and modality dropout behave."""

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.stopping import fit_with_stopping
from grapheme_multimodal.training import _dropout_mask

from conftest import text_event


def synthetic(n=400, seed=0):
    """Three noisy views of a shared 5-d latent."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 5))
    views = {
        "visual": z @ rng.normal(size=(5, 20)) * 3 + 10 + 0.3 * rng.normal(size=(n, 20)),
        "auditory": z @ rng.normal(size=(5, 12)) + 0.3 * rng.normal(size=(n, 12)),
        "linguistic": z @ rng.normal(size=(5, 18)) + 0.3 * rng.normal(size=(n, 18)),
    }
    return {k: v.astype(np.float32) for k, v in views.items()}


def small_model(**kw):
    return gm.LearnableMultiModal(
        embed_dim=16, hidden_dim=32, num_heads=2, seed=0, input_dims={"visual": 20, "auditory": 12}, **kw
    )


def test_fit_lowers_the_loss():
    data = synthetic()
    model = small_model()
    before = model.losses(data)["total"]
    history = model.fit(data, epochs=16, batch_size=64, progress=False)
    after = model.losses(data)["total"]
    assert after < 0.6 * before, (before, after)  # measured 0.51 with the default mix (5 objectives)
    assert len(history.epochs) == 16 and model.epochs_trained == 16
    assert history["loss"][-1] < history["loss"][0]
    assert set(history.epochs[0]) >= {"epoch", "loss", "contrastive", "binding", "cross_modal", "seconds"}


def test_fit_is_reproducible_and_resumable(tmp_path):
    data = synthetic(200)
    straight = small_model()
    straight.fit(data, epochs=4, batch_size=32, modality_dropout=0.3, progress=False)
    halves = small_model()
    halves.fit(data, epochs=2, batch_size=32, modality_dropout=0.3, progress=False)
    path = tmp_path / "half.safetensors"
    halves.save(path)
    resumed = gm.LearnableMultiModal.load(path)
    resumed.fit(data, epochs=2, batch_size=32, modality_dropout=0.3, progress=False)
    for name, value in straight.state_dict().items():
        assert value.tobytes() == resumed.state_dict()[name].tobytes(), name
    a, b = straight.optimizer_state(), resumed.optimizer_state()
    assert (a["step"], a["rng_counter"]) == (b["step"], b["rng_counter"])
    assert [e["loss"] for e in straight.history] == [e["loss"] for e in resumed.history]
    other_seed = small_model()
    other_seed.fit(data, epochs=4, batch_size=32, modality_dropout=0.3, progress=False, seed=7)
    assert not np.array_equal(other_seed.state_dict()["fusion.0.weight"], straight.state_dict()["fusion.0.weight"])


def test_validation_and_early_stopping_restore_the_best_epoch():
    data = synthetic(200)
    model = small_model()
    scripted = iter([0.2, 0.9, 0.5, 0.4, 0.3, 0.1])
    snapshots = {}

    def score(m):
        snapshots[m.epochs_trained] = m.state_dict()
        return next(scripted)

    history = model.fit(
        data,
        epochs=6,
        batch_size=50,
        validation=synthetic(60, seed=1),
        metrics={"score": score},
        monitor="val_score",
        early_stopping=2,
        progress=False,
    )
    assert history.stopped_early and history.best_epoch == 2
    assert len(history.epochs) == 4, "stops after 2 epochs without improvement"
    assert "val_total" in history.epochs[0] and "val_contrastive" in history.epochs[0]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, snapshots[2][name], err_msg=name)


def test_early_stopping_on_validation_loss_defaults():
    model = small_model()
    history = model.fit(synthetic(200), epochs=3, validation=synthetic(50, seed=2), early_stopping=5, progress=False)
    assert history.monitor == "val_total" and not history.stopped_early
    assert history.best_epoch == int(np.argmin(history["val_total"])) + 1


def test_standardisation_is_learned_once_and_applied():
    data = synthetic(300)
    model = small_model()
    model.fit(data, epochs=1, progress=False)
    mean, std = model.normalization("visual")
    np.testing.assert_allclose(mean, data["visual"].mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std, data["visual"].std(0), rtol=1e-4)
    assert model.normalization("tactile") is None
    # Applied at encode time: same as encoding standardised inputs without it.
    plain = small_model()  # the weights alone (the state dict's normalization.* entries carry the standardisation)
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("normalization.")})
    z = {k: (v - v.mean(0)) / v.std(0) for k, v in data.items()}
    np.testing.assert_allclose(model.encode(data), plain.encode(z), atol=2e-5)
    model.fit({k: v * 100 for k, v in data.items()}, epochs=1, progress=False)
    np.testing.assert_array_equal(model.normalization("visual")[0], mean), "kept on later fits"
    raw = small_model()
    raw.fit(data, epochs=1, standardize=False, progress=False)
    assert raw.normalization("visual") is None


def test_modality_dropout_keeps_one_per_row():
    rng = np.random.default_rng(0)
    mask = rng.random((2000, 7)) < 0.6
    mask[0] = False
    keep = _dropout_mask(mask, 0.5, rng)
    assert not (keep & ~mask).any(), "only present modalities are kept"
    has = mask.any(axis=1)
    assert keep[has].any(axis=1).all(), "every row keeps at least one"
    assert not keep[0].any()
    kept_rate = keep[mask].mean()
    assert 0.5 < kept_rate < 0.62, kept_rate  # 0.5 plus the rescued rows
    assert _dropout_mask(mask, 0.0, rng) is None


def test_fit_on_events_with_several_components():
    events = []
    for i in range(40):
        ev = text_event(i, linguistic="word " * (i % 7 + 1), visual="x" * (i % 5 + 1))
        if i % 3 == 0:
            ev.add_component(gm.ModalGraph(gm.Graph.from_text("extra" * (i % 4 + 1)), "visual", confidence=0.3))
        events.append(ev)
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, seed=1)
    before = model.losses(gm.Batch.from_events(events))["total"]
    history = model.fit(events, epochs=6, batch_size=16, progress=False, standardize=False)
    after = model.losses(gm.Batch.from_events(events))["total"]
    assert after < before and len(history.epochs) == 6
    model2 = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, seed=1)
    model2.fit(events, epochs=1, batch_size=16, progress=False)
    assert model2.normalization("linguistic") is not None


def test_fit_from_the_experience_buffer():
    data = synthetic(120)
    model = small_model()
    model.record_batch(data, rewards=np.linspace(0, 1, 120), event_ids=np.arange(120))
    assert model.num_experiences() == 120
    history = model.fit(model.experience, epochs=3, batch_size=40, progress=False)
    assert "seed_consistency" in history.epochs[0], "recorded fused embeddings train seed_consistency"
    assert model.normalization("visual") is not None, "inputs were recorded, so standardised"
    embeddings_only = gm.buffer.ExperienceBuffer(50, embed_dim=16)
    embeddings_only.extend(
        model.experience.batch().embeddings[:50],
        model.experience.batch().mask[:50],
        model.experience.batch().fused[:50],
        model.experience.batch().pair_strengths[:50],
        np.zeros(50),
    )
    model.fit(embeddings_only, epochs=1, batch_size=25, progress=False)


def test_fit_rejects_bad_arguments():
    model = small_model()
    data = synthetic(20)
    for kwargs, words in [
        ({"epochs": -1}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"modality_dropout": 1.0}, "modality_dropout"),
        ({"early_stopping": 0}, "early_stopping"),
        ({"mode": "up"}, "mode"),
        ({"monitor": "val_nothing", "epochs": 1}, "monitor"),
        ({"objectives": {"nope": 1.0}}, "unknown objectives"),
    ]:
        with pytest.raises(ValueError, match=words):
            model.fit(data, progress=False, **kwargs)
    with pytest.raises(TypeError, match="data"):
        model.fit(42, progress=False)
    with pytest.raises(ValueError, match="empty"):
        model.fit(gm.buffer.ExperienceBuffer(3), progress=False)


def test_progress_bar_shows_the_running_loss(capsys):
    small_model().fit(synthetic(64), epochs=1, batch_size=32, progress=True)
    err = capsys.readouterr().err
    assert "fit" in err and "loss=" in err


def test_history_plot(tmp_path):
    model = small_model()
    history = model.fit(synthetic(100), epochs=2, validation=synthetic(30, seed=3), progress=False)
    path = tmp_path / "curves.png"
    history.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from grapheme_multimodal.plotting import plot_attention

    heat = tmp_path / "attention.png"
    plot_attention(np.random.default_rng(0).dirichlet(np.ones(7), size=3), ["a", "b", "c"], heat)
    assert heat.stat().st_size > 1000
    with pytest.raises(ValueError, match="shape"):
        plot_attention(np.ones((2, 7)), ["a"], heat)


def test_plots_refuse_values_that_would_draw_a_wrong_figure(tmp_path):
    """NaN or complex attention weights and a best epoch that is no epoch
    number are refused naming the argument, before any file is written."""
    pytest.importorskip("matplotlib")
    from grapheme_multimodal.plotting import plot_attention, plot_history

    heat = tmp_path / "attention.png"
    weights = np.random.default_rng(0).dirichlet(np.ones(7), size=3)
    weights[1, 2] = np.nan
    with pytest.raises(gm.NonFiniteError, match="weights: row 1"):
        plot_attention(weights, ["a", "b", "c"], heat)
    with pytest.raises(TypeError, match="weights"):
        plot_attention(weights.astype(complex), ["a", "b", "c"], heat)
    epochs = [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]
    for bad in (True, 1.5, float("nan"), "2"):
        with pytest.raises(TypeError, match="best_epoch"):
            plot_history(epochs, tmp_path / "curves.png", best_epoch=bad)
    with pytest.raises(ValueError, match="epochs"):
        plot_history([], tmp_path / "curves.png")
    huge = [{"epoch": 1, "loss": 1.0, "val_score": 1e308}, {"epoch": 2, "loss": 0.5, "val_score": -1e308}]
    with pytest.raises(gm.InvalidValueError, match=r"^epochs: the values of 'val_score' run from -1e\+308 to 1e\+308"):
        plot_history(huge, tmp_path / "curves.png")  # a metric's values: matplotlib's "arange: cannot compute length"
    with pytest.raises(TypeError, match=r"^epochs\[1\]\['val_score'\]: expected a real number"):
        plot_history([{"epoch": 1, "loss": 1.0, "val_score": 1.0}, {"epoch": 2, "loss": 0.5, "val_score": "high"}],
                     tmp_path / "curves.png")
    assert not heat.exists() and not (tmp_path / "curves.png").exists()
    plot_history([{**huge[0], "val_score": 1e307}, {**huge[1], "val_score": -1e307}], tmp_path / "wide.png")  # still drawn
    plot_history(epochs, tmp_path / "curves.png", best_epoch=np.int64(2))
    assert (tmp_path / "curves.png").exists()


def test_plots_name_an_argument_of_the_wrong_kind(tmp_path):
    """What fit returns (a History) failed inside plot_history with "list
    indices must be integers or slices, not str", a record without an epoch
    with KeyError: 'epoch', column labels as a list with AttributeError; a
    column label keyed by name was left out without a word."""
    pytest.importorskip("matplotlib")
    from grapheme_multimodal.plotting import plot_attention, plot_history

    curves, heat = tmp_path / "curves.png", tmp_path / "attention.png"
    history = gm.training.History(epochs=[{"epoch": 1, "loss": 1.0}], best_epoch=1)
    with pytest.raises(TypeError, match=r"^epochs: expected a list of epoch records .* got History: call its \.plot\(path\)"):
        plot_history(history, curves)
    with pytest.raises(TypeError, match=r"^epochs: .* got dict$"):
        plot_history({"epoch": 1, "loss": 1.0}, curves)
    for records, words in (([{"loss": 1.0}], r"epochs\[0\]: expected a record with an 'epoch' number"),
                           ([{"epoch": 1, "loss": 1.0}, 2], r"epochs\[1\]: expected a record"),
                           ([{"epoch": 1, "seconds": 0.1}], r"epochs: the records hold no values to plot")):
        with pytest.raises(gm.InvalidValueError, match=words):
            plot_history(records, curves)
    weights = np.full((2, 7), 1 / 7)
    with pytest.raises(TypeError, match="^row_labels: expected one label per row"):
        plot_attention(weights, None, heat)
    with pytest.raises(TypeError, match="^column_labels: expected None or a mapping"):
        plot_attention(weights, ["a", "b"], heat, column_labels=["x"])
    with pytest.raises(gm.InvalidValueError, match="^column_labels: unknown modality 'smell'"):
        plot_attention(weights, ["a", "b"], heat, column_labels={"smell": "x"})
    assert not curves.exists() and not heat.exists()
    plot_attention(weights, np.array(["a", "b"]), heat, column_labels={"visual": "pixels", gm.Modality.AUDITORY: "sound"})
    assert heat.exists()


def test_one_row_with_only_row_comparing_objectives_is_refused_and_leaves_the_model():
    """On a single row contrastive, binding and fused_contrastive are 0:
    with nothing else weighted every step would be Adam on zero gradients
    (as with every weight 0, which fit refuses)."""
    one = {k: v[:1] for k, v in synthetic(8).items() if k != "linguistic"}
    model = small_model()
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=r"data: 1 row; contrastive, binding .* at least 2 rows"):
        model.fit(one, epochs=2, objectives={"contrastive": 1.0, "binding": 1.0}, progress=False)
    assert model.epochs_trained == 0 and not model.history
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_objectives_that_cannot_train_are_named_in_a_warning():
    data = {k: v for k, v in synthetic(8).items() if k != "linguistic"}
    with pytest.warns(UserWarning, match=r"data: 1 row; contrastive, binding, fused_contrastive .* only cross_modal will train"):
        # standardize=False: standardised, one row is 0 in every input and nothing trains (refused)
        small_model().fit({k: v[:1] for k, v in data.items()}, epochs=1, standardize=False, progress=False)
    with pytest.warns(UserWarning, match=r"batch_size: 1; contrastive, binding, fused_contrastive .* expected batch_size >= 2"):
        small_model().fit(data, epochs=1, batch_size=1, progress=False)
    with warnings.catch_warnings():  # two rows or more per batch: nothing to say
        warnings.simplefilter("error")
        small_model().fit(data, epochs=1, batch_size=2, progress=False)
        small_model().fit({k: v[:1] for k, v in data.items()}, epochs=1, objectives={"cross_modal": 1.0}, standardize=False,
                          progress=False)


def _train_step(m, d):
    m.train_step({k: v[:32] for k, v in d.items()})


def _backward(m, d):
    m.backward({k: v[:32] for k, v in d.items()})


@pytest.mark.parametrize("what, train", [
    ("train_step", _train_step),
    ("backward", _backward),
    ("step", lambda m, d: m.step()),
    ("fit", lambda m, d: m.fit(d, epochs=1, batch_size=32, progress=False)),
    ("fit", lambda m, d: fit_with_stopping(m, d, validation_fraction=0.2, patience=1, monitor="val_total", epochs=1, seed=0,
                                               progress=False)),
    ("load_state_dict", lambda m, d: m.load_state_dict(small_model().state_dict())),
])
def test_a_metric_that_trains_its_own_model_is_refused_and_fit_leaves_the_model_as_it_was(what, train):
    """A metric calling train_step (or fit, backward, step...) on the model
    whose fit calls it ran in fit's own thread, which the lock lets in: the
    model changed in the middle of fit. Refused, naming the call; fit fails
    and leaves the model as it was."""
    data = synthetic(64)
    model = small_model()
    model.fit(data, epochs=1, batch_size=32, progress=False)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    optimizer, epochs, history = model.optimizer_state(), model.epochs_trained, list(model.history)

    def score(m):
        train(m, data)
        return 0.0

    with pytest.raises(RuntimeError, match=rf"^{what}: this model is being trained by fit, which is calling "
                                           r"metrics\['score'\] in this thread; .*train a copy"):
        model.fit(data, epochs=2, batch_size=32, progress=False, metrics={"score": score})
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert model.optimizer_state()["step"] == optimizer["step"]
    assert model.epochs_trained == epochs and list(model.history) == history
    model.train_step({k: v[:32] for k, v in data.items()})  # after fit: trains again


def test_a_metric_may_read_its_model_and_train_a_copy(tmp_path):
    import copy
    import pickle

    data = synthetic(64)
    model = small_model()
    seen = []

    def score(m):
        m.encode(data)
        losses = m.losses(data)
        m.state_dict()
        m.save(tmp_path / "epoch.safetensors")
        pickle.dumps(m)
        twin = copy.deepcopy(m)  # another model: it trains
        twin.train_step({k: v[:32] for k, v in data.items()})
        twin.fit(data, epochs=1, batch_size=32, progress=False)
        seen.append(m.epochs_trained)
        return -losses["total"]

    history = model.fit(data, epochs=2, batch_size=32, progress=False, metrics={"score": score})
    assert seen == [1, 2] and len(history["val_score"]) == 2
    model.train_step({k: v[:32] for k, v in data.items()})  # the refusal ended with fit


def test_another_thread_trains_during_a_metric_after_fit_as_before():
    """Only fit's own thread is refused: another thread's train_step
    waits for fit, as it always did, and then trains."""
    import threading

    data = synthetic(64)
    model = small_model()
    done = []
    started = threading.Event()

    def other():
        started.wait()
        model.train_step({k: v[:32] for k, v in data.items()})
        done.append(model.epochs_trained)

    thread = threading.Thread(target=other)
    thread.start()

    def score(m):
        started.set()
        return 0.0

    model.fit(data, epochs=1, batch_size=32, progress=False, metrics={"score": score})
    thread.join(30)
    assert done == [1]
