"""fit(ema_decay=...): the model ends holding an exponential moving average
of its per-epoch weights (warmed up), training itself is unchanged, and
training resumes exactly — across calls, checkpoints, pickles and
interrupts; bad values and forged checkpoints are refused."""

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.checkpoint import FILE_FORMAT
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors
from grapheme_multimodal.stopping import fit_with_stopping

from test_fit import small_model, synthetic

OPTIONS = dict(batch_size=64, progress=False, modality_dropout=0.2)


def weights(model):  # the parameters: the state dict without the inputs' standardisation (normalization.*)
    return {k: v.tobytes() for k, v in model.state_dict().items() if not k.startswith("normalization.")}


def adam(model):
    state = model.optimizer_state()
    return (state["step"], state["rng_counter"],
            {k: v.tobytes() for part in ("exp_avg", "exp_avg_sq") for k, v in state[part].items()})


def trained(data, epochs, **options):
    """A new small model after ``fit(data, epochs, ...)``."""
    model = small_model()
    model.fit(data, epochs=epochs, **OPTIONS, **options)
    return model


def same_training(a, b):
    """Same weights and Adam state, bit for bit."""
    return weights(a) == weights(b) and adam(a) == adam(b)


def manual_average(data, epochs, decay, **options):
    """The average by its definition: plain fits of one epoch, averaged in
    float64 after each with decay min(decay, (1 + t) / (10 + t))."""
    model = small_model()
    mean = None
    for t in range(epochs):
        model.fit(data, epochs=1, **OPTIONS, **options)
        w = {k: v.astype(np.float64) for k, v in model.state_dict().items() if not k.startswith("normalization.")}
        d = min(decay, (1 + t) / (10 + t))
        mean = w if mean is None else {k: d * mean[k] + (1 - d) * w[k] for k in w}
    return model, {k: v.astype(np.float32).tobytes() for k, v in mean.items()}


def test_the_model_ends_with_the_average_and_training_is_unchanged():
    data = synthetic(300)
    model = small_model()
    model.fit(data, epochs=5, ema_decay=0.9, **OPTIONS)
    plain, expected = manual_average(data, 5, 0.9)
    assert weights(model) == expected
    assert weights(model) != weights(plain)
    assert adam(model) == adam(plain), "Adam continues from the trained weights, not the average"
    assert [r["loss"] for r in model.history] == [r["loss"] for r in plain.history]


def test_decay_zero_is_no_averaging_bit_for_bit():
    data = synthetic(300)
    assert same_training(trained(data, 4), trained(data, 4, ema_decay=0.0))


def test_training_resumes_exactly_across_calls_checkpoints_and_pickles(tmp_path):
    data = synthetic(300)
    halves = trained(data, 2, ema_decay=0.8)
    halves.save(tmp_path / "half.safetensors")
    resumed = pickle.loads(pickle.dumps(gm.LearnableMultiModal.load(tmp_path / "half.safetensors")))
    resumed.fit(data, epochs=1, ema_decay=0.8, **OPTIONS)
    resumed.fit(data, epochs=2, ema_decay=0.8, **OPTIONS)
    assert same_training(resumed, trained(data, 5, ema_decay=0.8))
    nothing_averaged = trained(data, 0, ema_decay=0.8)
    assert weights(nothing_averaged) == weights(small_model())


def test_early_stopping_keeps_the_average_of_the_best_epoch():
    data, val = synthetic(300), synthetic(100, seed=1)
    calls = []

    def peaks_at_epoch_3(model):
        calls.append(model.epochs_trained)
        return -abs(model.epochs_trained - 3)

    model = small_model()
    history = model.fit(data, epochs=8, ema_decay=0.9, validation=val, metrics={"peak": peaks_at_epoch_3},
                        monitor="val_peak", early_stopping=2, **OPTIONS)
    assert history.best_epoch == 3 and history.stopped_early and calls == [1, 2, 3, 4, 5]
    plain, expected = manual_average(data, 3, 0.9)
    assert weights(model) == expected
    assert adam(model) == adam(plain)


def test_an_interrupt_keeps_the_average_of_the_completed_epochs_and_resumes_exactly():
    data = synthetic(300)
    seen = []

    def interrupt_in_epoch_3(model):
        seen.append(model.epochs_trained)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return 0.0

    model = small_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(data, epochs=5, ema_decay=0.9, metrics={"x": interrupt_in_epoch_3}, **OPTIONS)
    assert model.epochs_trained == 2 and weights(model) == manual_average(data, 2, 0.9)[1]
    model.fit(data, epochs=2, ema_decay=0.9, **OPTIONS)
    assert same_training(model, trained(data, 4, ema_decay=0.9))


def test_a_failed_fit_leaves_the_average_as_it_was(tmp_path):
    data = synthetic(300)
    model = trained(data, 2, ema_decay=0.9)
    before, average = weights(model), model.weight_average

    def boom(m):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        model.fit(data, epochs=2, ema_decay=0.9, metrics={"b": boom}, **OPTIONS)
    assert weights(model) == before and model.weight_average is average
    model.fit(data, epochs=1, ema_decay=0.9, **OPTIONS)
    assert same_training(model, trained(data, 3, ema_decay=0.9))


def test_changed_weights_start_a_new_average_and_plain_fit_trains_on_from_the_average(tmp_path):
    data = synthetic(300)
    model = trained(data, 2, ema_decay=0.9)
    averaged = model.state_dict()
    other = small_model()
    other.load_state_dict(averaged)
    other.load_optimizer_state(model.optimizer_state())
    other.epochs_trained = model.epochs_trained
    model.fit(data, epochs=2, **OPTIONS)  # no averaging: on from the average it holds
    other.fit(data, epochs=2, **OPTIONS)
    assert weights(model) == weights(other)
    model.save(tmp_path / "plain.safetensors")
    assert "weight_average" not in read_tagged_safetensors(tmp_path / "plain.safetensors", FILE_FORMAT)[1]

    fresh = trained(data, 2, ema_decay=0.9)
    # other weights: the stored average no longer applies (strict=False: a fresh model's dict holds no
    # standardisation, and fresh keeps the one fit learned)
    fresh.load_state_dict(small_model().state_dict(), strict=False)
    fresh.save(tmp_path / "changed.safetensors")
    assert "weight_average" not in read_tagged_safetensors(tmp_path / "changed.safetensors", FILE_FORMAT)[1]
    reloaded = gm.LearnableMultiModal.load(tmp_path / "changed.safetensors")
    start = weights(fresh)
    fresh.fit(data, epochs=1, ema_decay=0.9, **OPTIONS)  # a new average: of one epoch, the weights themselves
    reloaded.fit(data, epochs=1, **OPTIONS)
    assert weights(fresh) == weights(reloaded) != start


def test_the_average_is_readable_and_read_only():
    data = synthetic(300)
    model = trained(data, 3, ema_decay=0.9)
    average = model.weight_average
    assert (average.decay, average.count) == (0.9, 3)
    assert weights(model) == {k: v.astype(np.float32).tobytes() for k, v in average.mean.items()}
    assert weights(model) != {k: v.tobytes() for k, v in average.trained.items()}
    name = next(iter(average.mean))
    with pytest.raises(ValueError, match="read-only"):
        average.mean[name][...] = 0
    with pytest.raises(ValueError, match="read-only"):
        average.trained[name][...] = 0
    assert trained(data, 3).weight_average is None
    model.train_step(data)  # the weights are no longer the average
    assert model.weight_average is None


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), float("inf"), True, "0.9", [0.9]])
def test_bad_decays_are_refused_before_anything_changes(bad):
    model = small_model()
    model.fit(synthetic(200), epochs=1, ema_decay=0.5, **OPTIONS)
    before, average = weights(model), model.weight_average
    error = gm.InvalidValueError if type(bad) is float else TypeError  # a bool, a str, a list: a wrong type
    with pytest.raises(error, match=r"ema_decay: expected None \(no averaging\) or a number in \[0, 1\), got"):
        model.fit(synthetic(200), epochs=1, ema_decay=bad, **OPTIONS)
    assert weights(model) == before and model.weight_average is average and model.epochs_trained == 1


def test_cross_validated_stopping_ends_with_the_average_of_all_rows():
    data = synthetic(60)
    model = small_model()
    history = fit_with_stopping(model, data, validation_fraction=0.1, patience=3, monitor="val_total", seed=0,
                                epochs=12, ema_decay=0.9, **OPTIONS)
    assert history.cv_curve is not None and model.weight_average.count == history.best_epoch == model.epochs_trained
    plain, expected = manual_average(data, history.best_epoch, 0.9, seed=0)
    assert weights(model) == expected


# ----------------------------------------------------------------- checkpoints
def _forged(tmp_path, change):
    """A checkpoint of a model trained with averaging, rewritten by
    ``change(tensors, meta)`` (the checksums stay valid: a forger's file)."""
    model = small_model()
    model.fit(synthetic(200), epochs=2, ema_decay=0.9, **OPTIONS)
    path = tmp_path / "forged.safetensors"
    model.save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    change(tensors, meta)
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    return path


def _set(key, value):
    def change(tensors, meta):
        meta["weight_average"][key] = value
    return change


def _nan_in_mean(tensors, meta):
    name = next(k for k in tensors if k.startswith("weight_average/mean/"))
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nan


def _shifted_mean(tensors, meta):
    name = next(k for k in tensors if k.startswith("weight_average/mean/"))
    tensors[name] = tensors[name] + 1.0


def _float32_mean(tensors, meta):
    name = next(k for k in tensors if k.startswith("weight_average/mean/"))
    tensors[name] = tensors[name].astype(np.float32)


def _missing_trained(tensors, meta):
    del tensors[next(k for k in tensors if k.startswith("weight_average/trained/"))]


@pytest.mark.parametrize("change, message", [
    (_set("decay", 1.5), r"weight_average\['decay'\]: expected None \(no averaging\) or a number in \[0, 1\)"),
    (_set("count", 0), r"weight_average\['count'\]: expected an int >= 1, got 0"),
    (_set("extra", 1), r"weight_average: expected \{'decay': float, 'count': int\}"),
    (_nan_in_mean, "contains NaN or inf"),
    (_shifted_mean, "the weights are not the stored average"),
    (_float32_mean, "float64"),
    (_missing_trained, "weight_average/trained/"),
])
def test_forged_averages_are_refused(tmp_path, change, message):
    path = _forged(tmp_path, change)
    with pytest.raises(gm.CheckpointError, match=message):
        gm.LearnableMultiModal.load(path)


def test_checkpoints_without_an_average_load_as_before(tmp_path):
    def drop(tensors, meta):
        del meta["weight_average"]
        for k in [k for k in tensors if k.startswith("weight_average/")]:
            del tensors[k]

    path = _forged(tmp_path, drop)
    model = gm.LearnableMultiModal.load(path)
    assert model.weight_average is None
    start = weights(model)
    model.fit(synthetic(200), epochs=1, ema_decay=0.9, **OPTIONS)  # a new average starts from the weights
    assert weights(model) != start and model.weight_average.count == 1


# ------------------------------------------------------------ CLI, estimator
def test_the_cli_and_the_estimator_pass_the_decay_on(tmp_path, capsys):
    from sklearn.base import clone

    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder
    from conftest import cli_train_args

    data = synthetic(60)
    ckpt = tmp_path / "m.safetensors"
    base = cli_train_args(tmp_path, data, ckpt) + ["--epochs", "3"]
    assert main(base + ["--ema-decay", "0.9"]) == 0, capsys.readouterr().err
    meta = read_tagged_safetensors(ckpt, FILE_FORMAT)[1]
    assert meta["weight_average"]["decay"] == 0.9 and meta["weight_average"]["count"] >= 1
    assert main(base + ["--ema-decay", "0"]) == 0, capsys.readouterr().err
    assert "weight_average" not in read_tagged_safetensors(ckpt, FILE_FORMAT)[1]
    capsys.readouterr()
    assert main(base + ["--ema-decay", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "grapheme-mm: error: --ema-decay: expected a decay in [0, 1) (0: off), got 1.0"

    Xs = [v.astype(np.float64) for v in list(data.values())[:2]]
    est = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=3, ema_decay=0.5)
    assert clone(est).get_params()["ema_decay"] == 0.5
    est.fit(Xs)
    assert est.model_.weight_average.decay == 0.5
    with pytest.raises(gm.InvalidValueError, match="ema_decay"):
        MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, ema_decay=2).fit(Xs)


# ------------------------------------------------------------------- threads
def test_threads_fitting_and_saving_one_model_see_consistent_states(tmp_path):
    from conftest import run_concurrently

    data = synthetic(300)
    shared = small_model()
    saved, done = [], []

    def fit_twice():
        try:
            shared.fit(data, epochs=2, ema_decay=0.9, **OPTIONS)
            shared.fit(data, epochs=2, ema_decay=0.9, **OPTIONS)
        finally:
            done.append(True)

    def save_repeatedly():
        while not saved or not done:
            saved.append(tmp_path / f"during{len(saved)}.safetensors")
            shared.save(saved[-1])

    run_concurrently(lambda: shared.fit(data, epochs=2, ema_decay=0.9, **OPTIONS), fit_twice, save_repeatedly)
    assert same_training(shared, trained(data, 6, ema_decay=0.9)), "three fits of 2 epochs in some order = one of 6"
    assert saved
    # Mid-fit: the trained weights, no average (fit holds its running average only while metrics run, and
    # these fits have none); between fits: the average and the trained weights. Loading checks that the
    # weights are that average.
    for path in saved:
        back = gm.LearnableMultiModal.load(path)
        assert back.weight_average is None or back.weight_average.count in (2, 4, 6)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
@pytest.mark.parametrize("how", ["save", "pickle"])
def test_a_model_saved_by_a_metric_during_fit_is_the_model_of_that_many_epochs(tmp_path, ema_decay, how):
    # A checkpoint per epoch from a metrics function: it held epochs_trained = k but only
    # k - 1 history records and, with averaging, the trained weights without their average,
    # so it neither embedded nor trained on as the model fit(epochs=k) leaves.
    data, held = synthetic(200, seed=1), synthetic(40, seed=2)
    options = dict(validation=held, ema_decay=ema_decay)
    copies = {}

    def keep_a_copy(model):
        k = model.epochs_trained
        if how == "save":
            model.save(tmp_path / f"epoch{k}.gmm")
            copies[k] = lambda: gm.LearnableMultiModal.load(tmp_path / f"epoch{k}.gmm")
        else:
            blob = pickle.dumps(model)
            copies[k] = lambda: pickle.loads(blob)
        return 0.0

    full = trained(data, 3, metrics={"copy": keep_a_copy}, **options)
    plain = trained(data, 3, **options)  # the records are as before, the metric's value beside the losses
    assert [key for key in full.history[-1] if key != "val_copy"] == list(plain.history[-1])
    for k in (1, 2):
        copy, expected = copies[k](), trained(data, k, **options)
        assert same_training(copy, expected) and copy.epochs_trained == k
        assert [r["epoch"] for r in copy.history] == list(range(1, k + 1))
        assert copy.history[-1]["loss"] == expected.history[-1]["loss"]
        assert copy.history[-1]["val_total"] == expected.history[-1]["val_total"]
        assert (copy.weight_average is None) == (ema_decay is None)
        copy.fit(data, epochs=3 - k, **OPTIONS, **options)  # resumes as if never stopped
        assert same_training(copy, full)
    assert full.weight_average is None if ema_decay is None else full.weight_average.count == 3


@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
@pytest.mark.parametrize("name", ["ema_decay", "modality_dropout", "validation_fraction"])
def test_a_long_double_just_below_one_is_refused_as_the_one_it_becomes(name):
    # 1 - 2**-60 passed the check for [0, 1) and was used as 1.0: a decay, dropout or held-out fraction of 1
    below_one = np.longdouble(1) - np.longdouble(2) ** -60
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match=rf"^{name}: expected .*\[0, 1\), got .*, which is 1\.0 as a float") as err:
        if name == "validation_fraction":
            fit_with_stopping(model, synthetic(40), validation_fraction=below_one, patience=2, monitor="val_total",
                              seed=0, epochs=1, **OPTIONS)
        else:
            model.fit(synthetic(40), epochs=1, **OPTIONS | {name: below_one})
    assert err.value.arg == name and model.epochs_trained == 0
