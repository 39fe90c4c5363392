"""Checkpoints, pickling, and the experience-recording API of the model."""

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.io import write_tagged_safetensors

from conftest import text_event
from test_fit import small_model, synthetic


def trained(tmp_path=None):
    model = small_model(binder_kind="bilinear")
    model.fit(synthetic(120), epochs=2, batch_size=40, progress=False)
    model.record_batch(synthetic(10, seed=4), rewards=0.5)
    return model


def assert_same_model(a, b):
    assert a.config == b.config
    for name, value in a.state_dict().items():
        assert value.tobytes() == b.state_dict()[name].tobytes(), name
    sa, sb = a.optimizer_state(), b.optimizer_state()
    assert (sa["step"], sa["rng_counter"]) == (sb["step"], sb["rng_counter"])
    for key in ("exp_avg", "exp_avg_sq"):
        for name in sa[key]:
            np.testing.assert_array_equal(sa[key][name], sb[key][name])
    for m in gm.Modality:
        na, nb = a.normalization(m), b.normalization(m)
        assert (na is None) == (nb is None)
        if na is not None:
            np.testing.assert_array_equal(na[0], nb[0])
            np.testing.assert_array_equal(na[1], nb[1])
    assert a.epochs_trained == b.epochs_trained and a.history == b.history
    assert len(a.experience) == len(b.experience)
    np.testing.assert_array_equal(a.experience.batch().fused, b.experience.batch().fused)


def test_save_load_round_trip(tmp_path):
    model = trained()
    path = tmp_path / "model.safetensors"
    model.save(path)
    back = gm.LearnableMultiModal.load(path)
    assert_same_model(model, back)
    data = synthetic(30, seed=5)
    np.testing.assert_array_equal(model.encode_and_fuse(data)[1], back.encode_and_fuse(data)[1])
    # Training on continues identically.
    model.train_step(data)
    back.train_step(data)
    assert_same_model(model, back)


def test_load_on_a_model_is_refused_not_a_silent_new_model(tmp_path):
    # model.load(path) returned the file's model and left `model` as it was:
    # a user who expected it loaded in place (as ExperienceBuffer.load does)
    # went on with the untrained one.
    saved = trained()
    path = tmp_path / "m.safetensors"
    saved.save(path)
    fresh = small_model(binder_kind="bilinear")
    before = {k: v.copy() for k, v in fresh.state_dict().items()}
    with pytest.raises(TypeError, match=r"load: called on a model.*LearnableMultiModal\.load\(path\)"):
        fresh.load(path)
    for name, value in fresh.state_dict().items():
        assert value.tobytes() == before[name].tobytes(), name

    class Sub(gm.LearnableMultiModal):
        pass

    assert_same_model(Sub.load(path), saved)  # on the class (a subclass too) it loads
    assert gm.LearnableMultiModal.load.__doc__.startswith("The model saved at")


def test_save_without_experience(tmp_path):
    model = trained()
    path = tmp_path / "m.safetensors"
    model.save(path, include_experience=False)
    assert len(gm.LearnableMultiModal.load(path).experience) == 0


@pytest.mark.parametrize("how", ["save", "pickle", "deepcopy"])
def test_an_empty_experience_buffer_keeps_its_generator_capacity_and_seed(tmp_path, how):
    """Only a buffer holding experiences was saved: an emptied one came back
    with its generator at the seed (the next samples differed from the
    original's), and a buffer the user had put in the model came back as
    the config's (another capacity and seed). Pickles and copies, made of
    the checkpoint's state, lost the same."""
    import copy

    def again(model):
        if how == "save":
            model.save(tmp_path / "m.safetensors")
            return gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
        return copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))

    model = small_model()
    rows = synthetic(12)
    model.record_batch(rows)
    model.experience.sample(5)
    model.clear_experience()
    back = again(model)
    model.record_batch(rows)
    back.record_batch(rows)
    np.testing.assert_array_equal(model.experience.sample(6).indices, back.experience.sample(6).indices)
    model.experience = gm.ExperienceBuffer(7, seed=5)
    back = again(model)
    assert (back.experience.capacity, back.experience.seed) == (7, 5)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_copy_keeps_the_accumulated_gradients_and_steps_as_the_original(how):
    """A pickle or copy dropped the gradients accumulated by backward (or
    kept by train_step): the copy's step() was a no-op where the
    original's took a step, and gradients() read zeros."""
    import copy

    model = small_model()
    model.backward(synthetic(16))
    twin = copy.deepcopy(model) if how == "deepcopy" else pickle.loads(pickle.dumps(model))
    assert twin.has_gradients()
    for name, grad in model.gradients().items():
        assert grad.tobytes() == twin.gradients()[name].tobytes(), name
    model.step()
    twin.step()
    assert_same_model(model, twin)
    model.zero_grad()
    assert not pickle.loads(pickle.dumps(model)).has_gradients()
    state = model.__getstate__()
    for forged in (np.zeros(3, np.float32), np.full(model.num_parameters(), np.nan, np.float32), "x"):
        with pytest.raises(gm.CheckpointError, match="gradients"):
            model.__setstate__({**state, "gradients": forged})


class _Tagged(gm.LearnableMultiModal):
    """A subclass with an attribute of its own."""

    def __init__(self, tag: str, **kw) -> None:
        super().__init__(**kw)
        self.tag = tag


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_a_copy_keeps_a_subclass_s_attributes_and_the_user_s(how):
    """A pickle or copy held only the checkpoint's state: a subclass's
    attributes and those a user set were dropped without a word, and the
    copy failed later with AttributeError."""
    import copy

    model = _Tagged("run 7", embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    model.notes = {"dataset": "mfeat"}
    twin = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda m: pickle.loads(pickle.dumps(m))}[how](model)
    assert type(twin) is _Tagged and twin.tag == "run 7" and twin.notes == {"dataset": "mfeat"}
    assert_same_model(model, twin)
    if how != "copy":  # a shallow copy shares what the attributes hold, as any object's does
        twin.notes["dataset"] = "nutrimouse"
        assert model.notes == {"dataset": "mfeat"}
    state = model.__getstate__()
    for forged in ({"_core": None}, {1: "x"}, ["tag"]):
        with pytest.raises(gm.CheckpointError, match="attributes"):
            twin.__setstate__({**state, "attributes": forged})


def test_every_attribute_a_model_sets_itself_is_rebuilt_by_unpickling():
    """A model's own attributes are rebuilt from the checkpoint's state, the
    others pickled as they are: one added to the model but not to
    _REBUILT_ATTRIBUTES would be pickled twice (or fail, as a lock does)."""
    from grapheme_multimodal.model import _REBUILT_ATTRIBUTES

    model = trained()
    model.fit(synthetic(40), epochs=1, batch_size=20, ema_decay=0.5, progress=False)
    model.fuse_event(text_event(1, linguistic="abc"))
    model.save_path = None  # a user's
    assert set(model.__dict__) - _REBUILT_ATTRIBUTES == {"save_path"}
    assert set(model.__getstate__()["attributes"]) == {"save_path"}


@pytest.mark.parametrize(
    "edit, error, words",
    [
        (lambda m, h: h.epochs[-1].__setitem__("phase", "warm-up"), gm.InvalidValueError, r"model\.history\[1\]: .*got 'warm-up' \(str\) under 'phase'"),
        (lambda m, h: h.epochs[0].__setitem__("stable", True), gm.InvalidValueError, r"model\.history\[0\]: .*got True \(bool\) under 'stable'"),
        (lambda m, h: m.history.append(["loss", 0.1]), gm.InvalidValueError, r"model\.history\[2\]: expected a record"),
        # a wrong type: a TypeError, as the package's other int arguments
        (lambda m, h: setattr(m, "epochs_trained", 2.0), TypeError, r"model\.epochs_trained: expected an int >= 0, got 2\.0 \(float\)"),
    ],
    ids=["a string", "a bool", "not a record", "a float epoch count"],
)
def test_a_save_load_would_refuse_is_refused_and_keeps_the_previous_file(tmp_path, edit, error, words):
    """epochs_trained and history are public, and the History fit returns
    holds the model's own records: a string or a bool put in one was saved,
    over the previous checkpoint, into a file that load refused."""
    model = small_model()
    path = tmp_path / "model.safetensors"
    model.save(path)
    before = path.read_bytes()
    edit(model, model.fit(synthetic(40), epochs=2, batch_size=20, progress=False))
    with pytest.raises(error, match=words):
        model.save(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    with pytest.raises(error, match=words):
        pickle.dumps(model)


def test_a_numpy_epoch_count_is_saved_as_an_int(tmp_path):
    model = small_model()
    model.epochs_trained = np.int64(3)  # json could not write it, nor the "epoch" of the records fit made from it
    model.save(tmp_path / "m.safetensors")
    assert gm.LearnableMultiModal.load(tmp_path / "m.safetensors").epochs_trained == 3
    model.fit(synthetic(40), epochs=1, batch_size=20, progress=False)
    model.save(tmp_path / "m.safetensors")
    back = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    assert back.epochs_trained == 4 and back.history[-1]["epoch"] == 4


def _step_train_and_sample(model: gm.LearnableMultiModal) -> tuple:
    """What a worker does with a model it was sent: a step from its
    gradients, an epoch, a sample of its buffer; the result as bytes."""
    model.step()
    model.fit(synthetic(60, seed=7), epochs=1, batch_size=20, ema_decay=0.5, progress=False)
    fused = model.encode_and_fuse(synthetic(8, seed=8))[1]
    return [v.tobytes() for v in model.state_dict().values()], fused.tobytes(), model.experience.sample(4).indices.tolist()


def test_a_model_sent_to_a_spawned_process_goes_on_there_as_here():
    """Pickled to a process started fresh (multiprocessing's spawn, the
    default on macOS and Windows): the same step, epoch, outputs and buffer
    samples there as in this process."""
    import multiprocessing

    model = trained()
    model.fit(synthetic(60, seed=6), epochs=1, batch_size=20, ema_decay=0.5, progress=False)
    model.backward(synthetic(20, seed=9))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        there = pool.apply(_step_train_and_sample, (model,))
    assert there == _step_train_and_sample(model)


def test_a_model_saved_where_its_buffer_fit_loads_where_it_would_not(tmp_path, monkeypatch):
    """The buffer's capacity (buffer_size) was checked against this
    machine's memory when a model was rebuilt: a checkpoint or pickle from
    a machine with more memory, or a Ray replica on a smaller worker, was
    refused whatever the buffer held. It loads; recording beyond this
    machine's memory is refused then, naming capacity."""
    import grapheme_multimodal.buffer as buffer_module

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, buffer_size=100_000)
    model.record_batch({"visual": np.ones((3, 18))})
    model.save(tmp_path / "with.safetensors")
    model.save(tmp_path / "without.safetensors", include_experience=False)
    pickled = pickle.dumps(model)
    row = buffer_module.buffer_row_bytes(8, model.config.input_dims)
    monkeypatch.setattr(buffer_module, "memory_budget", lambda: 1536 * row)  # far less than 100,000 rows
    with pytest.raises(gm.TooLargeError, match="buffer_size"):
        gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, buffer_size=100_000)  # a new one: refused up front
    for back in (gm.LearnableMultiModal.load(tmp_path / "with.safetensors"), pickle.loads(pickled)):
        assert_same_model(model, back)
    bare = gm.LearnableMultiModal.load(tmp_path / "without.safetensors")
    assert bare.config.buffer_size == 100_000 and len(bare.experience) == 0
    with pytest.raises(gm.TooLargeError, match="capacity"):
        bare.record_batch({"visual": np.ones((1100, 18))})
    assert len(bare.experience) == 0


def test_models_pickle_with_their_training_state():
    model = trained()
    assert_same_model(model, pickle.loads(pickle.dumps(model)))


def test_bad_checkpoint_files(tmp_path):
    model = trained()
    good = tmp_path / "good.safetensors"
    model.save(good)
    raw = good.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(raw[: len(raw) // 3])
    (tmp_path / "junk.safetensors").write_bytes(b"\xffnot a checkpoint at all" * 10)  # not text: that is named as such
    write_tagged_safetensors(tmp_path / "buffer.safetensors", {}, "grapheme-multimodal/experience-buffer/v1", {})
    for name, words in [
        ("truncated.safetensors", "truncated or corrupt"),
        ("junk.safetensors", "truncated or corrupt"),
        ("buffer.safetensors", "not a grapheme-multimodal/checkpoint/v1 file"),
    ]:
        with pytest.raises(ValueError, match=words):
            gm.LearnableMultiModal.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        gm.LearnableMultiModal.load(tmp_path / "missing.safetensors")


def test_mismatched_checkpoint(tmp_path):
    from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state

    model = trained()
    tensors, meta = checkpoint_state(model)
    meta["config"]["embed_dim"] = 32  # the tensors are for embed_dim 16
    meta["config"]["input_dims"] = dict(meta["config"]["input_dims"])
    path = tmp_path / "mismatch.safetensors"
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match=r"not a valid .*checkpoint.*encoder.visual.weight.*expected float32 of shape \(32, 20\), got float32 of shape \(16, 20\)"):
        gm.LearnableMultiModal.load(path)
    tensors, meta = checkpoint_state(model)
    del tensors["adam/exp_avg/fusion.0.bias"]
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match="missing tensors.*fusion.0.bias"):
        gm.LearnableMultiModal.load(path)


def test_a_checkpoint_another_version_wrote_says_which_when_refused(tmp_path):
    """A config field or metadata key a newer version added was refused as
    just "unknown", leaving the user to guess that the file is newer than
    the library; the refusal now names both versions."""
    from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state

    tensors, meta = checkpoint_state(trained())
    meta["library_version"] = "9.0.0"
    meta["config"]["from_a_newer_version"] = 1
    path = tmp_path / "newer.safetensors"
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    note = rf"\(the file was written by grapheme-multimodal 9\.0\.0; this is {gm.__version__}\)$"
    with pytest.raises(gm.CheckpointError, match=r"config: unknown fields \['from_a_newer_version'\].*" + note):
        gm.LearnableMultiModal.load(path)
    del meta["config"]["from_a_newer_version"]
    meta["optimizer"]["momentum"] = 0.9  # refused once the tensors are read
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match=r"optimizer: expected .*" + note):
        gm.LearnableMultiModal.load(path)
    meta["library_version"] = gm.__version__  # this version's own file: nothing to add
    write_tagged_safetensors(path, tensors, FILE_FORMAT, meta)
    with pytest.raises(gm.CheckpointError, match=r"optimizer: expected [^(]*'momentum': 0\.9}$"):
        gm.LearnableMultiModal.load(path)


def test_save_writes_atomically(tmp_path, monkeypatch):
    model = trained()
    path = tmp_path / "model.safetensors"
    model.save(path)
    before = path.read_bytes()
    import grapheme_multimodal.io as io_mod

    monkeypatch.setattr(io_mod.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("interrupted")))
    with pytest.raises(OSError):
        small_model().save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_record_fusion_and_compute_loss():
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, buffer_size=3, seed=2)
    assert model.compute_loss() == 0.0
    events = [text_event(i, linguistic="abc" * (i + 1), visual="xy" * (i + 2)) for i in range(4)]
    for i, ev in enumerate(events):
        exp = model.record_fusion(ev, reward=0.25 * i)
        np.testing.assert_array_equal(exp.fused, model.fuse_event(ev))
    assert model.num_experiences() == 3, "capacity is buffer_size"
    assert [x.event_id for x in model.experience] == [1, 2, 3]
    assert model.experience[0].inputs is not None, "single-component events keep their raw inputs"
    assert model.compute_loss() == pytest.approx(0.0, abs=1e-12), "nothing changed since recording"
    sd = model.state_dict()
    sd["fusion.2.bias"] += 0.3
    model.load_state_dict(sd)
    loss = model.compute_loss()
    expected = np.mean(
        [
            np.mean((model.fuse(x.embeddings[None], x.mask[None])[0] - x.fused) ** 2) * (1 - x.reward)
            for x in model.experience
        ]
    )
    assert loss == pytest.approx(expected, rel=1e-4) and loss > 0
    model.clear_experience()
    assert model.num_experiences() == 0 and model.compute_loss() == 0.0
    pooled = text_event(9, linguistic="abc", visual="xy")
    pooled.add_component(gm.ModalGraph(gm.Graph.from_text("zz"), "visual"))
    exp = model.record_fusion(pooled)
    assert exp.inputs is None, "two visual components are pooled: no single raw input to keep"
    np.testing.assert_array_equal(exp.fused, model.fuse_event(pooled))
    with pytest.raises(ValueError, match="no components"):
        model.record_fusion(gm.MultiModalEvent(5))


def test_record_experience_and_batch():
    model = small_model()
    data = synthetic(6)
    mask = np.ones((6, 7), bool)
    mask[:, 3:] = False
    mask[2, 1] = False
    model.record_batch(data, mask[:, :], rewards=[0, 1, 0, 1, 0, 1], event_ids=np.arange(10, 16))
    exp = model.experience[2]
    assert exp.event_id == 12 and exp.reward == 0.0 and not exp.mask[1]
    assert exp.inputs[1] is None and exp.inputs[0].shape == (20,)
    model.record_experience(exp)
    assert model.num_experiences() == 7 and model.experience[-1].event_id == 12
