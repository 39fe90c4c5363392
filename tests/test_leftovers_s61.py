"""Defects earlier sessions noticed and left (s61). Each test says what a
user saw before the fix."""

import dataclasses
import json
import pickle
import re
import sys
import threading
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics, training
from grapheme_multimodal._parallel import resolve_n_jobs
from grapheme_multimodal.evaluation import ExactCCA
from grapheme_multimodal.uci import TrainingSettings
from conftest import model_state, recorded_buffer, two_view_data, two_view_model
from test_fit import small_model, synthetic

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(12, 3))
_Y = np.arange(12) % 2


def _set_threads(n):
    before = gm.get_num_threads()
    try:
        gm.set_num_threads(n)
        return gm.get_num_threads()
    finally:
        gm.set_num_threads(before)


def _sample(n):
    model = small_model()
    return recorded_buffer(model, {k: v[:6] for k, v in synthetic(6).items() if k != "linguistic"}).sample(n).indices.size


#: Entry points taking an int: (argument name as messages give it, a call with the value, a good value).
_INT_ARGUMENTS = {
    "ExperienceBuffer(capacity)": ("capacity", lambda v: gm.ExperienceBuffer(v).capacity, 3),
    "ExperienceBuffer(seed=)": ("seed", lambda v: gm.ExperienceBuffer(3, seed=v).seed, 3),
    "ExperienceBuffer.sample": ("batch_size", _sample, 2),
    "knn_accuracy(k=)": ("k", lambda v: metrics.knn_accuracy(_X, _Y, _X, _Y, k=v), 3),
    "cross_view_retrieval(chunk_size=)": ("chunk_size", lambda v: metrics.cross_view_retrieval(_X, _X, _Y, chunk_size=v), 5),
    "config(embed_dim=)": ("embed_dim", lambda v: gm.LearnableMultiModalConfig(embed_dim=v).embed_dim, 8),
    "config(fused_neighbors=)": ("fused_neighbors", lambda v: gm.LearnableMultiModalConfig(fused_neighbors=v).fused_neighbors, 3),
    "LearnableMultiModal(seed=)": ("seed", lambda v: gm.LearnableMultiModal(seed=v).config.seed, 1),
    "hidden_width(layer=)": ("layer", lambda v: small_model(encoder_hidden=(8, 4)).hidden_width(v), 1),
    "set_num_threads": ("n", _set_threads, 1),
    "Modality.parse": ("modality", lambda v: gm.Modality.parse(v), 1),
    "MultiModalEvent(id)": ("id", lambda v: gm.MultiModalEvent(v).id, 4),
    "ExactCCA(n_components)": ("n_components", lambda v: ExactCCA(v).fit(_X, _X[:, ::-1]).transform(_X, _X)[0].shape, 2),
    "resolve_n_jobs": ("n_jobs", lambda v: resolve_n_jobs(v, 8), 2),
}


@pytest.mark.parametrize("entry", sorted(_INT_ARGUMENTS))
def test_int_arguments_take_a_0_d_integer_array_as_the_int_it_holds(entry):
    """``ExperienceBuffer(np.array(3))``, ``buffer.sample(np.array(2))``,
    ``knn_accuracy(..., k=np.array(3))`` and the package's other int
    arguments were refused ("capacity: expected a positive int, got array
    of shape () and dtype int64") while float arguments took a 0-d array
    (``lr=np.array(1e-3)``): a reduction's result, a count read back from
    np.savez. They take it as the int it holds, and still refuse a 0-d
    float or bool array, an array of another shape, and a float."""
    name, call, good = _INT_ARGUMENTS[entry]
    expected = call(good)
    for given in (np.array(good), np.array(good, dtype=np.uint8)):
        got = call(given)
        assert got == expected and type(got) is type(expected), (given, got, expected)
    for wrong in (np.array(float(good)), np.array(True), np.array([good]), float(good), np.ma.array(good, mask=True)):
        with pytest.raises(TypeError, match=rf"^{name}: expected"):
            call(wrong)


def test_an_int_argument_out_of_range_as_a_0_d_array_shows_the_number():
    """Out of range, the message shows the number given, as for a plain int."""
    with pytest.raises(gm.InvalidValueError, match=r"^capacity: expected a positive int, got 0$"):
        gm.ExperienceBuffer(np.array(0))
    with pytest.raises(gm.InvalidValueError, match=r"^k: expected an int in \[1, 12\] \(the number of train rows\), got 13$"):
        metrics.knn_accuracy(_X, _Y, _X, _Y, k=np.array(13))


def test_fit_takes_0_d_integer_arrays_and_trains_as_with_the_ints():
    """``fit(epochs=np.array(2), batch_size=np.array(32), seed=np.array(1))``
    trains exactly as with the ints; the model records Python ints."""
    data = {k: v[:64] for k, v in synthetic(64).items() if k != "linguistic"}
    a, b = small_model(), small_model()
    a.fit(data, epochs=2, batch_size=32, seed=1, progress=False)
    b.fit(data, epochs=np.array(2), batch_size=np.array(32), seed=np.array(1), early_stopping=None, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert type(b.epochs_trained) is int and b.epochs_trained == 2
    assert all(type(record["epoch"]) is int for record in b.history)


def test_a_0_d_epochs_trained_is_saved_as_the_int_it_holds(tmp_path):
    """``model.epochs_trained = np.array(2)`` (a count read back from an
    .npz) made ``save`` refuse it ("epochs_trained: expected an int >= 0,
    got array of shape ()"): it is saved, and loads, as 2."""
    model = small_model()
    model.epochs_trained = np.array(2)
    model.save(tmp_path / "m.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    assert type(loaded.epochs_trained) is int and loaded.epochs_trained == 2


@pytest.mark.parametrize("integer", [np.array, np.int64], ids=["0-d array", "np.int64"])
def test_training_settings_hold_plain_ints(integer):
    """``TrainingSettings(epochs=np.array(5))`` was refused only when
    training ran, and settings of numpy integers (np.int64 too) held them as
    given: unhashable (the 0-d array) and not JSON-serialisable (either).
    They hold the Python ints, equal and hash-equal to settings of ints."""
    given = TrainingSettings(epochs=integer(5), seed=integer(3), cv_folds=integer(4), encoder_hidden=[integer(16)])
    plain = TrainingSettings(epochs=5, seed=3, cv_folds=4, encoder_hidden=[16])
    assert given == plain and hash(given) == hash(plain)
    assert type(given.epochs) is int and type(given.seed) is int and type(given.encoder_hidden[0]) is int
    assert json.loads(json.dumps(dataclasses.asdict(given))) == json.loads(json.dumps(dataclasses.asdict(plain)))
    assert pickle.loads(pickle.dumps(given)) == plain
    with pytest.raises(TypeError, match=r"^epochs: expected an int >= 0"):  # still refused when training runs, by name
        gm.uci.train({"visual": _X, "auditory": _X}, TrainingSettings(epochs=np.array(5.0)))



@pytest.mark.parametrize("number", [np.array, np.float32, np.float64], ids=["0-d array", "np.float32", "np.float64"])
def test_training_settings_hold_plain_floats(number):
    """``TrainingSettings(learning_rate=np.array(0.002))`` would not hash,
    and settings of np.float32 (a config read back) would not json.dump:
    the float fields hold Python floats, the values given exactly."""
    value = number(0.25)  # exact in float32 too
    given = TrainingSettings(learning_rate=value, ema_decay=value, validation_fraction=value)
    plain = TrainingSettings(learning_rate=0.25, ema_decay=0.25, validation_fraction=0.25)
    assert given == plain and hash(given) == hash(plain)
    assert all(type(getattr(given, name)) is float for name in ("learning_rate", "ema_decay", "validation_fraction"))
    assert json.dumps(dataclasses.asdict(given)) == json.dumps(dataclasses.asdict(plain))
    with pytest.raises(TypeError, match=r"^learning_rate: expected"):  # a wrong type is still refused by name
        gm.uci.train({"visual": _X, "auditory": _X}, TrainingSettings(learning_rate=np.array([0.25])))


def _split_data(n=40):
    from grapheme_multimodal import datasets

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), n // 4)
    return datasets.MultipleFeatures(views={"a": rng.normal(size=(n, 2)), "b": rng.normal(size=(n, 3))}, labels=labels)


@pytest.mark.parametrize("test_size", [10, np.int64(10), np.array(10)], ids=["int", "np.int64", "0-d array"])
def test_train_test_split_takes_a_number_of_test_rows_as_scikit_learn_does(test_size):
    """``train_test_split(d, test_size=400)`` was refused ("test_size:
    expected a fraction in (0, 1), got 400") where scikit-learn's takes an
    int as the number of test rows: it is taken so, stratified, the rows
    scikit-learn's split gives."""
    from sklearn.model_selection import train_test_split as sk_split

    from grapheme_multimodal import datasets

    data = _split_data()
    train, test = datasets.train_test_split(data, test_size=test_size, seed=3)
    sk_train, sk_test = sk_split(np.arange(40), test_size=10, stratify=data.labels, random_state=3)
    assert len(test.labels) == 10 and len(train.labels) == 30
    np.testing.assert_array_equal(test.labels, data.labels[sk_test])
    np.testing.assert_array_equal(train.views["b"], data.views["b"][sk_train])
    assert set(np.bincount(test.labels, minlength=4).tolist()) <= {2, 3}  # stratified: 10 rows over 4 classes of 10


@pytest.mark.parametrize("test_size, error, message", [
    (0, gm.InvalidValueError, r"got 0$"),
    (40, gm.InvalidValueError, r"got 40$"),
    (-3, gm.InvalidValueError, r"got -3$"),
    (True, TypeError, r"got True \(bool\)$"),
    (40.0, gm.InvalidValueError, r"got 40\.0$"),
    (np.array([10]), TypeError, r"got array of shape \(1,\)"),
])
def test_train_test_split_refuses_a_test_size_out_of_range_by_name(test_size, error, message):
    """Out of [1, n - 1] (no train or no test rows), a bool, a float of 1 or
    more, an array: refused naming test_size and both of its forms."""
    from grapheme_multimodal import datasets

    expected = r"^test_size: expected a fraction in \(0, 1\) or a number of test rows in \[1, 39\] \(an int below the 40 rows\), "
    with pytest.raises(error, match=expected + message):
        datasets.train_test_split(_split_data(), test_size=test_size)


#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 5.0


def _fit_paused_at_epoch(monkeypatch, model, epoch, meanwhile):
    """``model.fit`` of 3 epochs in a thread, held as it draws epoch
    ``epoch``'s shuffle (``epoch_rng``, its first read of the epoch count)
    while ``meanwhile()`` runs here; fit's result or error."""
    paused, go = threading.Event(), threading.Event()
    draw = training.epoch_rng

    def pause(seed, at):
        if threading.current_thread().name == "fit" and at == epoch and not paused.is_set():
            paused.set()
            go.wait(JOIN_TIMEOUT_S)
        return draw(seed, at)

    monkeypatch.setattr(training, "epoch_rng", pause)
    return _fit_in_a_thread(model, 3, paused, go, meanwhile)


def _fit_in_a_thread(model, epochs, reached, go, meanwhile):
    """``model.fit`` of ``epochs`` in a thread named ``fit``; once it sets
    ``reached`` (a patched step of its own), ``meanwhile()`` runs here, then
    ``go`` lets it on; fit's result or error."""
    outcome = []

    def run():
        try:
            outcome.append(model.fit(two_view_data(), epochs=epochs, batch_size=10, progress=False))
        except Exception as exc:  # compared by the caller
            outcome.append(exc)

    thread = threading.Thread(target=run, name="fit", daemon=True)
    thread.start()
    try:
        assert reached.wait(JOIN_TIMEOUT_S), "fit never reached the point"
        meanwhile()
    finally:
        go.set()
        thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), "fit still running (deadlock)"
    return outcome[0]


@pytest.mark.parametrize("change, what", [
    (lambda m: setattr(m, "epochs_trained", 7), r"model\.epochs_trained \(from 1, to 7\)"),
    (lambda m: setattr(m, "history", []), r"model\.history \(replaced it\)"),
    (lambda m: m.history.clear(), r"model\.history \(in place\)"),
    (lambda m: delattr(m, "epochs_trained"), r"model\.epochs_trained \(from 1, deleted\)"),
], ids=["epochs_trained", "history replaced", "history cleared", "epochs_trained deleted"])
def test_a_training_record_another_thread_changes_mid_fit_is_refused(monkeypatch, change, what):
    """Another thread's ``model.epochs_trained = 7`` (or a new or cleared
    ``model.history``) in the middle of ``fit`` went unseen: fit counted on
    from the new number (epochs 9 and 10 recorded after 1, their shuffles
    another fit's) or recorded its epochs into a list the caller had
    replaced, without a word; the metric path already refused such a change
    made by a metric. Fit now finds it at the epoch's end and fails, leaving
    the model as it was before the call."""
    model = two_view_model()
    before = model_state(model)
    outcome = _fit_paused_at_epoch(monkeypatch, model, 1, lambda: change(model))
    assert isinstance(outcome, RuntimeError), outcome
    assert re.match(rf"^fit: changed {what} in the middle of fit, from another thread", str(outcome)), outcome
    assert model_state(model) == before and model.history == []


def test_a_fit_whose_record_no_thread_changes_trains_as_before(monkeypatch):
    """The check finds no change where there is none: the same fit paused
    and resumed trains as an unpaused one."""
    paused_model, plain = two_view_model(), two_view_model()
    history = _fit_paused_at_epoch(monkeypatch, paused_model, 1, lambda: None)
    plain.fit(two_view_data(), epochs=3, batch_size=10, progress=False)
    assert paused_model.epochs_trained == 3 and len(history.epochs) == 3 and len(paused_model.history) == 3
    assert model_state(paused_model) == model_state(plain)


def test_a_training_record_another_thread_breaks_before_fit_takes_the_lock_is_refused_by_name(monkeypatch):
    """fit checks ``epochs_trained`` and ``history`` first, before it takes
    the model's lock: another thread's ``model.epochs_trained = 2.5`` made
    after that check failed the fit with numpy's bare "seed must be
    integer" from the first shuffle. They are checked again under the lock:
    refused by name, nothing trained."""
    model = two_view_model()
    weights = model_state(model)
    checked, go = threading.Event(), threading.Event()
    check = training._refuse_standardising_to_zero  # fit's last check before its lock

    def pause(*args, **kwargs):
        check(*args, **kwargs)
        if threading.current_thread().name == "fit" and not checked.is_set():
            checked.set()
            go.wait(JOIN_TIMEOUT_S)

    monkeypatch.setattr(training, "_refuse_standardising_to_zero", pause)
    outcome = _fit_in_a_thread(model, 2, checked, go, lambda: setattr(model, "epochs_trained", 2.5))
    assert isinstance(outcome, TypeError), outcome
    assert str(outcome) == "model.epochs_trained: expected an int >= 0, got 2.5 (float)"
    model.epochs_trained = 0
    assert model_state(model) == weights and model.history == []


# ------------------------------------------- the command line's warnings beside another thread's filters
def _in_thread_paused(call, pause_owner, pause_name, meanwhile):
    """``call()`` in a thread named "cli", held in ``pause_owner.pause_name``
    (wrapped: it runs, then waits) while ``meanwhile()`` runs here; its result or error."""
    paused, go, outcome = threading.Event(), threading.Event(), []
    original = getattr(pause_owner, pause_name)

    def pause(*args, **kwargs):
        result = original(*args, **kwargs)
        if threading.current_thread().name == "cli" and not paused.is_set():
            paused.set()
            go.wait(JOIN_TIMEOUT_S)
        return result

    def run():
        try:
            outcome.append(call())
        except BaseException as exc:  # compared by the caller (SystemExit too)
            outcome.append(exc)

    setattr(pause_owner, pause_name, pause)
    thread = threading.Thread(target=run, name="cli", daemon=True)
    try:
        thread.start()
        assert paused.wait(JOIN_TIMEOUT_S), f"{pause_name} never ran"
        meanwhile()
    finally:
        go.set()
        thread.join(JOIN_TIMEOUT_S)
        setattr(pause_owner, pause_name, original)
    assert not thread.is_alive(), "the command still runs (deadlock)"
    return outcome[0]


def _set_meanwhile():
    warnings.filterwarnings("error", message="s61 set meanwhile", category=UserWarning)


def _filter_kept():
    with pytest.raises(UserWarning, match="s61 set meanwhile"):
        warnings.warn("s61 set meanwhile", UserWarning)
    return True


def _views(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(40, 6)).astype(np.float32))
    np.save(tmp_path / "a.npy", rng.normal(size=(40, 4)).astype(np.float32))
    return [f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}"]


def test_cli_train_in_a_thread_keeps_the_warning_filters_another_thread_sets(tmp_path, capsys):
    """``cli.main(["train", ...])`` in a thread held the library's warnings
    by ``warnings.catch_warnings(record=True)``, which swaps the whole
    process's filters and showwarning: a filter the main thread set while it
    trained was undone when it ended. It still says fit's warnings as one
    line each, by the flag's name."""
    from grapheme_multimodal import cli

    argv = ["train", "-m", *_views(tmp_path), "--epochs", "2", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2",
            "--encoder-hidden", "8", "--encoder-output-dim", "8", "--batch-size", "1", "--no-progress",
            "-o", str(tmp_path / "m.safetensors")]
    with warnings.catch_warnings():  # the test's own filters back as they were
        code = _in_thread_paused(lambda: cli.main(argv), training, "epoch_rng", _set_meanwhile)
        assert code == 0, capsys.readouterr().err
        assert _filter_kept()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and err.startswith("grapheme-mm: warning: --batch-size: 1; contrastive"), err


def test_cli_embed_in_a_thread_keeps_the_warning_filters_another_thread_sets(tmp_path, capsys):
    """``embed`` kept its UntrainedModalityWarning from being said twice by
    ``warnings.catch_warnings()`` + a filter: the main thread's filter set
    meanwhile was undone. The warning is still said once, as one line."""
    from grapheme_multimodal import cli

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, input_dims={"visual": 6, "auditory": 4})
    model.fit({"visual": np.load(_views(tmp_path)[0].split("=")[1])}, epochs=1, progress=False)  # auditory untrained
    model.save(tmp_path / "m.safetensors")
    argv = ["embed", str(tmp_path / "m.safetensors"), "-m", *_views(tmp_path), "-o", str(tmp_path / "out.npy")]
    with warnings.catch_warnings():
        code = _in_thread_paused(lambda: cli.main(argv), cli, "_embed_in_process", _set_meanwhile)
        assert code == 0, capsys.readouterr().err
        assert _filter_kept()
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "auditory" in err, err


def test_the_cli_ray_start_in_a_thread_keeps_the_warning_filters_another_thread_sets(monkeypatch):
    """The command line's ``ray.init`` ran in ``warnings.catch_warnings()``
    to ignore Ray's accelerator tip: a filter another thread set while Ray
    started (seconds) was undone. Only its own filter is taken out now, and
    the tip is still ignored (here under an "error" filter for FutureWarning)."""
    from types import SimpleNamespace

    from grapheme_multimodal import cli

    started, tip = [], "Tip: In future versions of Ray, Ray will no longer override accelerator"

    def init(**kwargs):
        warnings.warn(tip + " visible devices env var if num_gpus=0 or num_gpus=None (default).", FutureWarning)
        started.append(True)

    fake = SimpleNamespace(is_initialized=lambda: bool(started), init=init, shutdown=lambda: None)
    monkeypatch.setitem(sys.modules, "ray", fake)  # Ray's own threads keep the real module
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def start_ray():
        with cli._ray_cluster(None):
            return "started"

    holder = SimpleNamespace(init=fake.init)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        fake.init = lambda **kwargs: holder.init(**kwargs)
        assert _in_thread_paused(start_ray, holder, "init", _set_meanwhile) == "started"
        assert _filter_kept()
        assert not any(f[0] == "ignore" and f[1] is not None and f[1].pattern.startswith("Tip: In future")
                       for f in warnings.filters), "the command line's own filter was left in place"


# ------------------------------------------- embed of a checkpoint that never trained
def _embed(tmp_path, model, capsys):
    from grapheme_multimodal import cli

    model.save(tmp_path / "m.safetensors")
    out = tmp_path / "out.npy"
    code = cli.main(["embed", str(tmp_path / "m.safetensors"), "-m", *_views(tmp_path), "-o", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert np.load(out).shape == (40, model.config.embed_dim)  # written all the same
    return err


def _two_views(**changes):
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, input_dims={"visual": 6, "auditory": 4},
                                  **changes)


def test_embed_of_a_checkpoint_that_never_trained_says_so(tmp_path, capsys):
    """``grapheme-mm embed`` of a model saved right after it was made wrote
    embeddings of its random initial weights without a word (the model's
    UntrainedModalityWarning is for a model trained on other modalities).
    It says so in one warning line, and still writes them."""
    err = _embed(tmp_path, _two_views(), capsys)
    assert err == ("grapheme-mm: warning: the checkpoint was never trained (it records no training step: saved as made, or "
                   "by train --epochs 0); its encoders have their initial random weights, so the embeddings written are "
                   "of random weights\n")


def test_embed_of_a_trained_checkpoint_or_of_weights_loaded_into_one_says_nothing_of_it(tmp_path, capsys):
    """A model that trained, or whose record is not known (weights set by
    load_state_dict: they may be trained ones), gets no such line."""
    trained = _two_views()
    trained.fit({k: np.load(v.split("=")[1]) for k, v in zip(("visual", "auditory"), _views(tmp_path)[::2])},
                epochs=1, progress=False)
    assert _embed(tmp_path, trained, capsys) == ""
    loaded = _two_views()
    loaded.load_state_dict(trained.state_dict())
    assert _embed(tmp_path, loaded, capsys) == ""


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_cli_in_a_thread_leaves_the_stream_another_thread_sets_meanwhile(tmp_path, monkeypatch, stream):
    """``cli.main`` wraps ``sys.stdout`` and ``sys.stderr`` while it runs and
    put back the streams it found: run in a thread, it undid a
    ``contextlib.redirect_stdout`` (or any stream) another thread set
    meanwhile, for good. It puts its own back only while they are still its own."""
    import io

    from grapheme_multimodal import cli

    _two_views().save(tmp_path / "m.safetensors")
    mine = io.StringIO()
    monkeypatch.setattr(sys, stream, getattr(sys, stream))  # put back after the test, whatever the command leaves
    code = _in_thread_paused(lambda: cli.main(["info", str(tmp_path / "m.safetensors")]), cli, "_model_lines",
                             lambda: setattr(sys, stream, mine))
    assert code == 0
    assert getattr(sys, stream) is mine
