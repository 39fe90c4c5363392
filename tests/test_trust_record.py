"""The record of trained modalities (model.trained_modalities) tells the
truth on every path that changes the weights, and a failed call leaves it
(and the model) as it was:

- public load_state_dict of other encoder weights: not known (None), no
  warning; the package's own restores keep their record;
- apply_gradients: one row (a lower bound) per encoder its gradients reach;
- a model trained only on recorded embeddings warns: no encoder trained;
- the accumulated gradients' rows survive a failed fit and copies.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.checkpoint import FILE_FORMAT
from grapheme_multimodal.io import read_tagged_safetensors, write_tagged_safetensors

from record_fixtures import DIMS, N, make, views

V, A, L = gm.Modality.VISUAL, gm.Modality.AUDITORY, gm.Modality.LINGUISTIC


def linguistic(n: int = 4) -> dict:
    return {"linguistic": np.random.default_rng(9).normal(size=(n, DIMS["linguistic"])).astype(np.float32)}


def assert_silent(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.UntrainedModalityWarning)
        call()


@pytest.fixture
def trained() -> gm.LearnableMultiModal:
    model = make()
    model.fit(views(), epochs=2, batch_size=8, progress=False)
    return model


# ------------------------------------------------------------ load_state_dict
def test_loading_other_encoder_weights_makes_the_record_unknown(trained):
    fresh = make()
    fresh.load_state_dict(trained.state_dict())  # someone else's trained encoders
    assert fresh.trained_modalities is None
    assert_silent(lambda: fresh.encode({**views(4), **linguistic()}))  # no false warning
    fresh.train_step(views(6))
    assert fresh.trained_modalities is None  # stays unknown as it trains on

    # other (random) weights into a trained model (strict=False: their model standardised nothing)
    trained.load_state_dict(make(seed=11).state_dict(), strict=False)
    assert trained.trained_modalities is None
    assert_silent(lambda: trained.encode(linguistic()))


def test_a_load_that_leaves_the_encoders_as_they_were_keeps_the_record(trained):
    record = trained.trained_modalities
    trained.load_state_dict(trained.state_dict())  # the same values
    assert trained.trained_modalities == record
    other = make(seed=11).state_dict()
    trained.load_state_dict({k: v for k, v in other.items() if not k.startswith("encoder.")}, strict=False)
    assert trained.trained_modalities == record  # fusion, binder, attention from elsewhere: the encoders' record holds
    with pytest.warns(gm.UntrainedModalityWarning, match="'linguistic'"):
        trained.encode(linguistic())
    # one encoder tensor changed is enough
    trained.load_state_dict({"encoder.linguistic.0.weight": other["encoder.linguistic.0.weight"]}, strict=False)
    assert trained.trained_modalities is None


def test_a_refused_load_leaves_the_record_and_weights_as_they_were(trained):
    record, weights = trained.trained_modalities, trained.state_dict()
    bad = {**make(seed=11).state_dict(), "fusion.0.bias": np.full(8, np.nan, np.float32)}
    with pytest.raises(gm.NonFiniteError):
        trained.load_state_dict(bad)
    assert trained.trained_modalities == record
    assert all(np.array_equal(v, trained.state_dict()[k]) for k, v in weights.items())


def test_the_packages_own_restores_keep_the_record():
    # best epoch (early stopping) and the weight average load weights back through
    # the internal path: the record keeps counting, rolled-back epochs included
    model = make()
    history = model.fit(views(), validation=views(12, seed=1), epochs=4, batch_size=8, early_stopping=1,
                        ema_decay=0.5, progress=False)
    assert model.weight_average is not None
    assert model.trained_modalities == {V: N * model.epochs_trained, A: N * model.epochs_trained}
    assert len(history.epochs) == model.epochs_trained
    # a second averaged fit puts the trained weights back in first (averaging.resume)
    model.fit(views(), epochs=1, batch_size=8, ema_decay=0.5, progress=False)
    assert model.trained_modalities == {V: N * model.epochs_trained, A: N * model.epochs_trained}


# ------------------------------------------------------------ apply_gradients
def _grads(model, **values) -> dict:
    """Zero gradients but ``values`` (tensor name -> one value, at its first entry)."""
    grads = {k: np.zeros_like(v) for k, v in model.state_dict().items()}
    for name, value in values.items():
        grads[name.replace("__", ".")].flat[0] = value
    return grads


def test_apply_gradients_counts_a_row_for_each_encoder_it_reaches():
    model = make()
    model.apply_gradients(_grads(model, fusion__0__weight=0.5))  # reaches no encoder: a step all the same
    assert model.trained_modalities == {}
    with pytest.warns(gm.UntrainedModalityWarning, match="no training step of this model reached an encoder"):
        model.encode(views(4))
    model.apply_gradients(_grads(model, encoder__visual__1__bias=1e-30, encoder__linguistic__0__weight=-2.0))
    model.apply_gradients(_grads(model, encoder__visual__0__weight=1.0))
    assert model.trained_modalities == {V: 2, L: 1}  # lower bounds: the batches are not seen
    with pytest.warns(gm.UntrainedModalityWarning, match="'auditory' was never present"):
        model.encode(views(4))


def test_apply_gradients_of_a_batch_trains_what_the_batch_held():
    source, model = make(), make()
    source.backward(views(6))
    model.apply_gradients(source.gradients())
    assert set(model.trained_modalities) == {V, A}
    assert_silent(lambda: model.encode(views(4)))


def test_a_refused_apply_gradients_records_nothing():
    model = make()
    model.train_step(views(6))
    record, weights = model.trained_modalities, model.state_dict()
    grads = _grads(model, encoder__linguistic__0__weight=1.0)
    with pytest.raises(gm.NonFiniteError):
        model.apply_gradients({**grads, "fusion.0.bias": np.full(8, np.inf, np.float32)})
    with pytest.raises(gm.InvalidValueError):
        model.apply_gradients(grads, lr=-1.0)
    assert model.trained_modalities == record
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in weights.items())


def test_the_distributed_driver_update_notes_its_rows_in_the_same_call():
    from grapheme_multimodal.distributed import _apply_flat

    model = make()
    flat = np.zeros(model.num_parameters(), np.float32)
    mask = np.zeros((5, 7), bool)
    mask[:, 0] = True
    mask[:3, 2] = True
    weights = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    _apply_flat(model, flat, None, mask, weights)
    assert model.trained_modalities == {V: 5, L: 3}  # the batch's rows, not one per encoder reached
    flat[0] = np.nan
    with pytest.raises(gm.NonFiniteError):
        _apply_flat(model, flat, None, mask, weights)
    assert model.trained_modalities == {V: 5, L: 3}  # refused: nothing noted
    _apply_flat(model, np.zeros_like(flat), None, np.zeros((0, 7), bool), weights)  # recorded embeddings
    assert model.trained_modalities == {V: 5, L: 3}


# ------------------------------------------------------------ recorded embeddings only
def _embeddings_only() -> gm.LearnableMultiModal:
    model = make()
    emb = make(seed=5).encode(views(8))
    model.train_step(gm.Batch(embeddings=emb))
    return model


def test_a_model_trained_only_on_recorded_embeddings_warns():
    model = _embeddings_only()
    assert model.trained_modalities == {}  # no encoder trained
    with pytest.warns(gm.UntrainedModalityWarning) as caught:
        model.encode(views(4))
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and all("no training step of this model reached an encoder" in m for m in messages)
    assert "'auditory'" in messages[0] and "'visual'" in messages[1]
    assert caught[0].filename == __file__


def test_fit_on_recorded_embeddings_and_kept_objectives_warn_too():
    model = make()
    model.experience = gm.ExperienceBuffer(100, embed_dim=8, seed=0)  # no input_dims: it keeps embeddings only
    model.record_batch(views(12))
    model.fit(model.experience, epochs=1, batch_size=6, progress=False)
    assert model.trained_modalities == {} and model.epochs_trained == 1
    with pytest.warns(gm.UntrainedModalityWarning, match="'visual': no training step"):
        model.encode(views(4, names=("visual",)))
    kept = make(encoder_objectives=("fused_contrastive",))
    kept.train_step(views(6), weights={"contrastive": 1.0, "binding": 1.0})  # the binder trains, no encoder
    assert kept.trained_modalities == {}
    with pytest.warns(gm.UntrainedModalityWarning, match="'visual': no training step"):
        kept.encode(views(4, names=("visual",)))


def test_backward_alone_and_a_refused_step_are_no_training():
    model = make()
    emb = make(seed=5).encode(views(8))
    model.backward(gm.Batch(embeddings=emb))
    assert_silent(lambda: model.encode(views(4)))
    model.zero_grad()
    with pytest.raises(gm.InvalidValueError):
        model.train_step(gm.Batch(embeddings=emb), lr=-1.0)
    assert_silent(lambda: model.encode(views(4)))


def test_the_embeddings_only_record_survives_save_load_pickle_copies_and_resume(tmp_path):
    model = _embeddings_only()
    path = tmp_path / "m.safetensors"
    model.save(path)
    meta = read_tagged_safetensors(path, FILE_FORMAT)[1]
    assert meta["trained_rows"] == {str(m): 0 for m in gm.Modality} and meta["trained_without_encoders"] is True
    for other in (gm.LearnableMultiModal.load(path), pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert other.trained_modalities == {}
        with pytest.warns(gm.UntrainedModalityWarning, match="no training step"):
            other.encode(views(4))
    # a model with encoder rows writes no such key (files as before)
    trained = make()
    trained.train_step(views(6))
    trained.save(path)
    assert "trained_without_encoders" not in read_tagged_safetensors(path, FILE_FORMAT)[1]


def test_a_step_taken_is_not_read_off_the_optimizer_state(tmp_path):
    # Why the record keeps its own "a step was taken" (trained_without_encoders in files)
    # rather than deriving it from Adam's step, rng_counter and epochs_trained: after
    # reset_optimizer() and load_optimizer_state() of a fresh model those are all 0, as a
    # fresh model's, while the fusion this model trained on recorded embeddings stays trained
    # and its encoders untrained; and backward() alone advances rng_counter, training nothing.
    model = _embeddings_only()
    model.reset_optimizer()
    model.load_optimizer_state(make().optimizer_state())
    assert (model.optimizer_state()["step"], model.optimizer_state()["rng_counter"], model.epochs_trained) == (0, 0, 0)
    path = tmp_path / "m.safetensors"
    model.save(path)
    for other in (model, gm.LearnableMultiModal.load(path)):
        with pytest.warns(gm.UntrainedModalityWarning, match="no training step"):
            other.encode(views(4))
    backward_only = make()
    backward_only.backward(gm.Batch(embeddings=make(seed=5).encode(views(8))))
    assert backward_only.optimizer_state()["rng_counter"] == 1
    assert_silent(lambda: backward_only.encode(views(4)))


def test_an_embeddings_only_file_without_the_key_loads_as_before(tmp_path):
    path = tmp_path / "m.safetensors"
    _embeddings_only().save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    del meta["trained_without_encoders"]  # as this version's predecessor wrote it
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    old = gm.LearnableMultiModal.load(path)
    assert old.trained_modalities == {}
    assert_silent(lambda: old.encode(views(4)))


@pytest.mark.parametrize("forged, rows", [(False, None), (1, None), ("true", None), (True, {"visual": 3})])
def test_a_forged_trained_without_encoders_is_refused(tmp_path, forged, rows):
    path = tmp_path / "m.safetensors"
    _embeddings_only().save(path)
    tensors, meta = read_tagged_safetensors(path, FILE_FORMAT)
    meta["trained_without_encoders"] = forged
    if rows is not None:
        meta["trained_rows"] = {**meta["trained_rows"], **rows}
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match="trained_without_encoders"):
        gm.LearnableMultiModal.load(path)
    del meta["trained_rows"]
    meta["trained_without_encoders"] = True
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match="trained_without_encoders: given without trained_rows"):
        gm.LearnableMultiModal.load(path)


def test_cli_info_says_no_encoder_trained(tmp_path, capsys):
    from grapheme_multimodal.cli import main

    path = tmp_path / "m.safetensors"
    _embeddings_only().save(path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("never trained") == 7


# ------------------------------------------------------------ failed calls
def test_a_failed_fit_keeps_the_rows_of_the_accumulated_gradients():
    reference, model = make(), make()
    for m in (reference, model):
        m.backward(views(6))

    def failing(_model):
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        model.fit({**views(), **linguistic(N)}, epochs=1, batch_size=8, metrics={"bad": failing}, progress=False)
    reference.step()
    model.step()
    assert model.trained_modalities == reference.trained_modalities == {V: 6, A: 6}


def test_a_copy_records_its_originals_pending_rows():
    original = make()
    original.backward(views(6))
    copies = [pickle.loads(pickle.dumps(original)), copy.deepcopy(original)]
    original.step()
    for other in copies:
        other.step()
        assert other.trained_modalities == original.trained_modalities == {V: 6, A: 6}


def test_a_forged_pending_rows_state_is_refused():
    original = make()
    original.backward(views(6))
    state = original.__getstate__()
    assert state["pending_rows"] == [6, 6, 0, 0, 0, 0, 0]
    for bad in ([1, 2], [-1] * 7, ["3"] * 7, [True] * 7):
        with pytest.raises(gm.CheckpointError, match="pending_rows"):
            make().__setstate__({**state, "pending_rows": bad})
    with pytest.raises(gm.CheckpointError, match="pending_rows: given without gradients"):
        make().__setstate__({k: v for k, v in state.items() if k != "gradients"})
