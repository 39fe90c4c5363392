"""Hostile use from several threads, s60 audit: what the earlier thread
audits (test_threads, test_thread_matrix, test_trust_concurrency,
test_trust_threads_audit/_fourth/_fifth/_s58) left out. Threads meet at
events, never at sleeps; every wait is bounded, so a regression fails
instead of hanging CI.

``fit`` checks its data against the model before it takes the model's
lock (a refusal then costs no wait): what it read there must be read
again under the lock, where another thread may have changed it meanwhile."""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import training

#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 5.0


def _model(**dims: int) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=16, num_heads=2, seed=0, encoder_hidden=(8,), input_dims=dims)


def _joined(thread: threading.Thread) -> None:
    thread.join(JOIN_TIMEOUT_S)
    assert not thread.is_alive(), f"{thread.name}: still running after {JOIN_TIMEOUT_S} s (deadlock)"


def _fit_paused_after_its_checks(monkeypatch, model: gm.LearnableMultiModal, fit: Callable[[], Any],
                                 meanwhile: Callable[[], None]) -> Any:
    """``fit()`` in a thread, held after its check of rows all alike (the
    last check before it takes the model's lock) while ``meanwhile()`` runs
    here; fit's result or error."""
    checked, go = threading.Event(), threading.Event()
    check = training._refuse_standardising_to_zero

    def pause_once(*args: Any, **kwargs: Any) -> None:
        check(*args, **kwargs)
        if threading.current_thread().name == "fit" and not checked.is_set():
            checked.set()
            go.wait(JOIN_TIMEOUT_S)

    monkeypatch.setattr(training, "_refuse_standardising_to_zero", pause_once)
    return _run_paused("fit", fit, checked, go, meanwhile, "fit never reached its checks")


def _run_paused(name: str, call: Callable[[], Any], paused: threading.Event, go: threading.Event,
                meanwhile: Callable[[], None], never: str) -> Any:
    """``call()`` in a thread named ``name`` whose hook sets ``paused`` and
    waits for ``go``; ``meanwhile()`` runs here once it is paused (else
    fails, saying ``never``). The call's result or error."""
    outcome: List[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # compared by the caller
            outcome.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        assert paused.wait(JOIN_TIMEOUT_S), never
        meanwhile()
    finally:
        go.set()
        _joined(thread)
    return outcome[0]


# ------------------------------------------- a standardisation removed during fit's checks
def test_a_standardisation_removed_while_fit_checks_its_rows_gets_fits_refusal_of_rows_all_alike(monkeypatch) -> None:
    """Before: fit read the model's standardisations for its refusal of rows
    all alike (standardised, every input is 0) before it took the lock;
    another thread's ``set_normalization(m)`` that removed one meanwhile let
    such rows train: fit learned the standardisation from them and trained
    on zeros, a flat loss, which neither serial order gives (removed first:
    refused; fit first: trained on the standardisation set)."""
    constant = {"visual": np.tile(np.linspace(0, 1, 10, dtype=np.float32), (32, 1))}
    model = _model(visual=10)
    before = model.state_dict()  # its weights: no standardisation yet
    model.set_normalization("visual", np.zeros(10), np.ones(10))

    got = _fit_paused_after_its_checks(
        monkeypatch, model, lambda: model.fit(constant, epochs=1, batch_size=16, progress=False),
        lambda: model.set_normalization("visual"))

    assert isinstance(got, gm.InvalidValueError) and "all 32 rows hold the same visual values" in str(got), got
    assert model.normalization("visual") is None and model.epochs_trained == 0 and model.history == []
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


# ------------------------------------- column names learned during fit's checks of events
def test_column_names_learned_while_fit_checks_events_refuse_series_of_them_reordered(monkeypatch) -> None:
    """Before: fit checked its events' pandas Series labels against the
    column names the model knew before it took the lock; another thread's
    ``fit_normalization`` of a data frame that learned them meanwhile, in
    another order than the Series', let fit train on those events' values
    reordered, under the frame's standardisation: the serial order
    "fit_normalization, then fit" refuses them, naming the event."""
    pd = pytest.importorskip("pandas")
    names = ["c0", "c1", "c2", "c3"]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 4)), columns=names)
    events = [gm.MultiModalEvent(i, [gm.ModalFeatures(pd.Series(rng.normal(size=4), index=names[::-1]), "visual")])
              for i in range(20)]
    model = _model(visual=4)
    before = model.state_dict()

    got = _fit_paused_after_its_checks(
        monkeypatch, model,
        lambda: model.fit(events, epochs=1, batch_size=8, progress=False, objectives={"fused_contrastive": 1.0}),
        lambda: model.fit_normalization({"visual": frame}))

    assert isinstance(got, gm.InvalidValueError) and "data[0].components[0].features" in str(got), got
    assert "['c3', 'c2', 'c1', 'c0']" in str(got)
    assert model.input_columns("visual") == tuple(names) and model.epochs_trained == 0
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


# ------------------------------- an ensemble member learning column names while it is saved
def test_an_ensemble_member_that_learns_reordered_columns_while_it_is_saved_is_refused(tmp_path, monkeypatch) -> None:
    """Before: ``save_ensemble`` checked that its members' column names
    agree before it read their states; a member whose ``fit_normalization``
    of a data frame in another thread learned them in another order
    meanwhile was saved beside the others, a file whose members read one
    data frame by position in two orders: the serial order
    "fit_normalization, then save_ensemble" refuses it, naming the member,
    and keeps the file that was there."""
    pd = pytest.importorskip("pandas")
    from grapheme_multimodal import ensemble

    names = ["c0", "c1", "c2", "c3"]
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 4)), columns=names)
    first, second = _model(visual=4), _model(visual=4)
    first.fit_normalization({"visual": frame})
    path = tmp_path / "ensemble.safetensors"
    gm.save_ensemble([first], path)
    kept = path.read_bytes()
    checked, go = threading.Event(), threading.Event()
    check_target = ensemble.check_write_target

    def pause_after_the_checks(target: Any) -> None:  # called once the members' columns are checked
        check_target(target)
        if threading.current_thread().name == "save":
            checked.set()
            go.wait(JOIN_TIMEOUT_S)

    monkeypatch.setattr(ensemble, "check_write_target", pause_after_the_checks)
    outcome: List[Any] = []

    def save() -> None:
        try:
            outcome.append(gm.save_ensemble([first, second], path))
        except Exception as exc:  # compared below
            outcome.append(exc)

    thread = threading.Thread(target=save, name="save", daemon=True)
    thread.start()
    try:
        assert checked.wait(JOIN_TIMEOUT_S), "save_ensemble never reached its write"
        second.fit_normalization({"visual": frame[names[::-1]]})
    finally:
        go.set()
        _joined(thread)

    got = outcome[0]
    assert isinstance(got, gm.InvalidValueError) and str(got).startswith("models[1]: was fitted on the visual columns"), got
    assert path.read_bytes() == kept


# ---------------------------- column names learned between an encoding's check and its lock
def _read_paused_before_its_lock(model: gm.LearnableMultiModal, read: Callable[[], Any],
                                 meanwhile: Callable[[], None]) -> Any:
    """``read()`` in a thread, held as it first asks for the model's read
    lock (its checks before it done) while ``meanwhile()`` runs here;
    the read's result or error."""
    asking, go = threading.Event(), threading.Event()
    reading = model._lock.reading

    def pause_once() -> Any:
        if threading.current_thread().name == "read" and not asking.is_set():
            asking.set()
            go.wait(JOIN_TIMEOUT_S)
        return reading()

    model._lock.reading = pause_once  # this model's lock only
    try:
        return _run_paused("read", read, asking, go, meanwhile, "the read never asked for the lock")
    finally:
        del model._lock.reading


def _frame_and_series(pd: Any) -> Any:
    names = ["c0", "c1", "c2", "c3"]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 4)) * 5 + 3, columns=names)
    return frame, pd.Series(rng.normal(size=4), index=names[::-1])


def test_column_names_learned_while_an_event_is_checked_refuse_its_series_reordered() -> None:
    """Before: an event's pandas Series labels were checked against the
    model's column names before the read lock; another thread's
    ``fit_normalization`` of a data frame that learned them meanwhile let
    ``fuse_event`` (and ``encode_event``, ``record_fusion``...) encode the
    Series' values reordered under the frame's standardisation, which no
    serial order gives (before: encoded raw; after: refused)."""
    pd = pytest.importorskip("pandas")
    frame, series = _frame_and_series(pd)
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(series, "visual")])
    model = _model(visual=4)

    got = _read_paused_before_its_lock(model, lambda: model.fuse_event(event),
                                       lambda: model.fit_normalization({"visual": frame}))

    assert isinstance(got, gm.InvalidValueError), got
    assert str(got).startswith("event.components[0].features: event 1's visual component was given as a pandas Series")


def test_column_names_learned_while_record_batch_checks_its_frame_refuse_it_reordered() -> None:
    """Before: ``record_batch`` checked its data frames' column names before
    it took the read lock to encode them; another thread's
    ``fit_normalization`` that learned them in another order meanwhile had
    the frame recorded reordered under that standardisation, where the
    serial order "fit_normalization, then record_batch" refuses it and
    records nothing."""
    pd = pytest.importorskip("pandas")
    frame, _ = _frame_and_series(pd)
    model = _model(visual=4)

    got = _read_paused_before_its_lock(model, lambda: model.record_batch({"visual": frame[frame.columns[::-1]]}),
                                       lambda: model.fit_normalization({"visual": frame}))

    assert isinstance(got, gm.InvalidValueError) and str(got).startswith("inputs['visual']: its columns"), got
    assert len(model.experience) == 0


# ------------------------------------- a view embedder's modalities set while it embeds
@pytest.mark.parametrize("call", ["embed_views", "hidden_features"])
def test_a_view_embedder_whose_modalities_another_thread_sets_embeds_by_one_mapping(call: str) -> None:
    """Before: ``ModelEmbedder.embed_views`` (and ``hidden_features``) read
    ``modalities`` once to build the model's inputs and again to cut each
    view's rows out of the model's output; another thread's
    ``embedder.modalities = ...`` in between (``EnsembleEmbedder`` reads its
    members once per call for this reason) returned the rows of a slot
    nothing was given in: zeros, neither mapping's embedding."""
    from grapheme_multimodal.evaluation import ModelEmbedder

    model = _model(visual=6, auditory=6)
    model.fit(_views6(40, 0), epochs=1, batch_size=20, progress=False)
    views = {"a": _views6(5, 1)["visual"]}
    embedder = ModelEmbedder(model, {"a": "visual"})
    embed = lambda e: getattr(e, call)(views)  # noqa: E731
    serial = [embed(ModelEmbedder(model, {"a": m}))["a"] for m in ("visual", "auditory")]

    got = _read_paused_before_its_lock(model, lambda: embed(embedder),
                                       lambda: setattr(embedder, "modalities", {"a": "auditory"}))

    assert not isinstance(got, Exception), got
    assert any(np.array_equal(got["a"], s) for s in serial), "the rows of neither mapping"


def _views6(n: int, seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return {m: (z @ rng.normal(size=(3, 6))).astype(np.float32) for m in ("visual", "auditory")}


# ------------------------------------------- the estimator's output set while it transforms
def test_an_estimators_output_set_by_another_thread_during_transform_gives_one_outputs_columns() -> None:
    """Before: ``MultimodalEmbedder.transform`` read ``output`` once to check
    it and again for each member's block; another thread's
    ``estimator.output = "hidden"`` (scikit-learn parameters are plain
    attributes) between two members' blocks gave rows of member 0's fused
    embedding beside member 1's hidden features: columns neither output
    has. ``set_params`` waits for the transform; an attribute set cannot."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    data = _views6(40, 0)
    views = [data["visual"].astype(np.float64), data["auditory"].astype(np.float64)]
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=1, encoder_hidden=(8,), shared_head=(),
                                   encoder_output_dim=None, epochs=1, batch_size=20, random_state=0,
                                   validation_fraction=0.0, patience=0, n_members=2).fit(views)
    serial = {output: estimator.set_params(output=output).transform(views) for output in ("hidden", "fused")}

    got = _read_paused_before_its_lock(estimator.models_[0], lambda: estimator.transform(views),
                                       lambda: setattr(estimator, "output", "hidden"))

    assert not isinstance(got, Exception), got
    assert any(got.shape == s.shape and np.array_equal(got, s) for s in serial.values()), (
        f"columns of neither output: {got.shape}, expected {[s.shape for s in serial.values()]}")


# --------------------------------------------- the model's buffer replaced during compute_loss
class _PausingLock:
    """A buffer's lock that, in the thread named ``read``, signals once it is
    taken and waits to go on (the lock held)."""

    def __init__(self, lock: Any) -> None:
        self.lock, self.taken, self.go = lock, threading.Event(), threading.Event()

    def __enter__(self) -> Any:
        held = self.lock.__enter__()
        if threading.current_thread().name == "read" and not self.taken.is_set():
            self.taken.set()
            self.go.wait(JOIN_TIMEOUT_S)
        return held

    def __exit__(self, *exc: Any) -> Any:
        return self.lock.__exit__(*exc)


def test_compute_loss_reads_the_buffer_whose_lock_it_holds_when_another_thread_replaces_it() -> None:
    """Before: ``compute_loss`` took the model's buffer's lock, then read
    ``model.experience`` again for its size and its experiences: a buffer
    another thread assigned in between was read without its lock, and one
    emptied between its size and its experiences (by a third thread, not
    held back by the lock compute_loss held) failed the loss on a batch of
    no rows, an answer no serial order gives (each gives a loss, 0.0 for
    an empty buffer)."""
    model = _model(visual=6, auditory=6)
    probe = _views6(4, 2)
    model.record_batch(probe, rewards=0.5)
    model.train_step(probe)  # the recorded fusions are no longer the model's: a loss above 0
    expected = model.compute_loss()
    assert expected > 0
    other = gm.ExperienceBuffer(8, embed_dim=8, input_dims=model.config.input_dims)
    other.extend(**{k: v for k, v in vars(model.experience.batch()).items()
                    if k in ("embeddings", "mask", "fused", "pair_strengths", "rewards", "event_ids")})

    def batch_emptied_first(*args: Any) -> Any:  # the third thread's clear, landing just then
        other.clear()
        return gm.ExperienceBuffer.batch(other, *args)

    other.batch = batch_emptied_first
    lock = model.experience._lock = _PausingLock(model.experience._lock)
    outcome: List[Any] = []

    def run() -> None:
        try:
            outcome.append(model.compute_loss())
        except Exception as exc:  # compared below
            outcome.append(exc)

    thread = threading.Thread(target=run, name="read", daemon=True)
    thread.start()
    try:
        assert lock.taken.wait(JOIN_TIMEOUT_S), "compute_loss never took the buffer's lock"
        model.experience = other
    finally:
        lock.go.set()
        _joined(thread)

    assert outcome == [expected], outcome


# ---------------------------------------------- an ensemble member's model set while it embeds
def test_an_ensemble_member_whose_model_another_thread_sets_during_an_embedding_is_embedded_as_checked() -> None:
    """Before: ``EnsembleEmbedder`` checked its members (views, widths, column
    order) and then read each member's ``model`` again to embed: a model of
    other widths set on a member by another thread in between was refused
    as the caller's views' fault ("views['a']: ... columns"), where either
    serial order gives the ensemble's embedding or its refusal of that
    member ("members[1]: takes views of ...")."""
    from grapheme_multimodal.evaluation import EnsembleEmbedder, ModelEmbedder

    first, second = _model(visual=6), _model(visual=6)
    members = [ModelEmbedder(first, {"a": "visual"}), ModelEmbedder(second, {"a": "visual"})]
    ensemble = EnsembleEmbedder(members)
    views = {"a": _views6(5, 1)["visual"]}
    expected = ensemble.embed_views(views)["a"]

    got = _read_paused_before_its_lock(first, lambda: ensemble.embed_views(views),
                                       lambda: setattr(members[1], "model", _model(visual=4)))

    assert not isinstance(got, Exception), got
    assert np.array_equal(got["a"], expected)
    with pytest.raises(gm.InvalidValueError, match=r"^members\[1\]: takes views of"):
        ensemble.embed_views(views)  # the serial order "set, then embed"


# ------------------------------------------- (found on the way) validation events named as data
def test_validation_events_whose_series_are_reordered_are_named_as_validation() -> None:
    """Before: fit's check of events' pandas Series labels named a
    ``validation`` event ``data[0]``, an event of the other argument."""
    pd = pytest.importorskip("pandas")
    frame, series = _frame_and_series(pd)
    model = _model(visual=4)
    model.fit_normalization({"visual": frame})
    in_order = [gm.MultiModalEvent(i, [gm.ModalFeatures(pd.Series(row, index=frame.columns), "visual")])
                for i, row in enumerate(frame.to_numpy())]

    with pytest.raises(gm.InvalidValueError, match=r"^validation\[0\]\.components\[0\]\.features: event 7's") as raised:
        model.fit(in_order, validation=[gm.MultiModalEvent(7, [gm.ModalFeatures(series, "visual")])], epochs=1,
                  batch_size=10, progress=False, objectives={"fused_contrastive": 1.0})
    assert raised.value.arg.startswith("validation[0]") and model.epochs_trained == 0


# ---------------------------------------- the library's own ray.init beside another thread
def test_warning_filters_another_thread_sets_while_the_library_starts_ray_are_kept(monkeypatch) -> None:
    """Before: the library's own ``ray.init`` (a distributed fit's, on first
    use) ran inside ``warnings.catch_warnings()`` to keep Ray 2.51's
    accelerator tip from the user; that restores the whole process's filter
    list as it was, so a filter another thread set while Ray started (for
    seconds) was lost: ``warnings.simplefilter("error", ...)`` undone
    without a word. Now only the library's own filter is taken out."""
    import warnings
    from types import SimpleNamespace

    distributed = pytest.importorskip("grapheme_multimodal.distributed")
    starting, go, started = threading.Event(), threading.Event(), []

    def init(*args: Any, **kwargs: Any) -> None:
        warnings.warn("Tip: In future versions of Ray, Ray will no longer override accelerator visible devices env "
                      "var if num_gpus=0 or num_gpus=None (default).", FutureWarning)
        starting.set()
        go.wait(JOIN_TIMEOUT_S)
        started.append(True)

    # distributed's own name for Ray only: Ray's threads keep the real functions
    monkeypatch.setattr(distributed, "ray", SimpleNamespace(is_initialized=lambda: bool(started), init=init))
    monkeypatch.setattr(distributed, "_check_ray_address", lambda address, arg: None)
    with warnings.catch_warnings():  # the test's own filters back as they were, whatever the library leaves
        thread = threading.Thread(target=distributed._ensure_ray, name="start-ray", daemon=True)
        thread.start()
        try:
            assert starting.wait(JOIN_TIMEOUT_S), "ray.init never ran"
            warnings.filterwarnings("error", message="set while Ray started", category=UserWarning)
        finally:
            go.set()
            _joined(thread)
        assert started == [True]
        with pytest.raises(UserWarning, match="set while Ray started"):
            warnings.warn("set while Ray started", UserWarning)
        assert not any(f[0] == "ignore" and f[1] is not None and f[1].pattern.startswith("Tip: In future")
                       for f in warnings.filters), "the library's own filter was left in place"


# ------------------------------------ two fits whose metrics wait for each other's model
def _two_fits_whose_metrics_meet(first_metric: Callable[[], Any], second_metric: Callable[[], Any],
                                 first: gm.LearnableMultiModal, second: gm.LearnableMultiModal) -> Dict[str, Any]:
    """``first.fit`` and ``second.fit`` in two threads, each of whose metric
    waits at a barrier for the other to be in its metric too, then calls
    its ``*_metric()``; each fit's History or error."""
    data = _views6(32, 0)
    meet = threading.Barrier(2)
    outcome: Dict[str, Any] = {}

    def metric(then: Callable[[], Any]) -> Callable[[Any], float]:
        def measured(model: Any) -> float:
            meet.wait(JOIN_TIMEOUT_S)  # both fits are in their metrics, holding their models
            then()
            return 0.0
        return measured

    def fit(name: str, model: gm.LearnableMultiModal, then: Callable[[], Any]) -> None:
        try:
            outcome[name] = model.fit(data, epochs=1, batch_size=16, progress=False, metrics={"m": metric(then)})
        except Exception as exc:  # compared by the caller
            outcome[name] = exc

    threads = [threading.Thread(target=fit, args=("first", first, first_metric), name="first", daemon=True),
               threading.Thread(target=fit, args=("second", second, second_metric), name="second", daemon=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        _joined(thread)
    return outcome


@pytest.mark.parametrize("first_writes", ["train_step", "fit"])
def test_two_fits_whose_metrics_train_each_others_model_refuse_one_instead_of_waiting_for_ever(first_writes: str) -> None:
    """Before: a fit whose metric trains another model (allowed: a metric may
    fit another model) and that model's fit in another thread, whose metric
    trains the first, waited for each other for ever: each fit keeps other
    threads' writers out until it returns. Now the second to wait is
    refused (``RuntimeError``): its fit fails and puts its model back, and
    the first goes on and completes."""
    first, second = _model(visual=6, auditory=6), _model(visual=6, auditory=6)
    step = _views6(16, 3)
    writes = {"train_step": lambda model: model.train_step(step),
              "fit": lambda model: model.fit(step, epochs=1, batch_size=16, progress=False)}

    outcome = _two_fits_whose_metrics_meet(lambda: writes[first_writes](second), lambda: first.train_step(step),
                                           first, second)

    refused = {name: got for name, got in outcome.items() if isinstance(got, Exception)}
    assert len(refused) == 1 and len(outcome) == 2, outcome
    (name, error), = refused.items()
    assert isinstance(error, RuntimeError) and "the two fits would wait for each other for ever" in str(error), error
    failed, completed = (first, second) if name == "first" else (second, first)
    # the failed fit put its model back; then the completed fit's metric trained it (a fit of it: one epoch)
    assert completed.epochs_trained == 1
    assert failed.epochs_trained == (1 if first_writes == "fit" and name == "second" else 0)
