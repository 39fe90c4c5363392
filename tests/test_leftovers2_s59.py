"""Defects the s59 audits found and left (second pass): each test says what a
user saw before the fix and what they see now."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm


def _model(**dims: int) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims=dims or {"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8,
                                  num_heads=2, seed=0)


# ------------------------------------------------------------------ 1. a pandas row's labels
@pytest.fixture
def frame_model():
    """A model that learned its visual columns ('a', 'b', 'c') from a frame, and that frame."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=list("abc"))
    model = _model()
    model.fit_normalization({"visual": frame})
    assert model.input_columns("visual") == ("a", "b", "c")
    return model, frame


def _event_of(row, event_id: int = 7) -> gm.MultiModalEvent:
    return gm.MultiModalEvent(event_id, [gm.ModalFeatures(row, "visual"), gm.ModalFeatures([0.5, 0.5], "auditory")])


_REORDERED = r"^{}\.components\[0\]\.features: event 7's visual component was given as a pandas Series whose labels \['c', 'a', 'b'\]"


@pytest.mark.parametrize("call, name", [
    (lambda model, event: model.encode_event(event), "event"),
    (lambda model, event: model.fuse_event(event), "event"),
    (lambda model, event: model.record_fusion(event), "event"),
    (lambda model, event: model.fit([event], epochs=1), r"data\[0\]"),
    (lambda model, event: model.train_step(gm.Batch(events=[event])), r"events\[0\]"),
], ids=["encode_event", "fuse_event", "record_fusion", "fit", "train_step"])
def test_a_pandas_row_of_the_learned_columns_reordered_is_refused_on_every_event_path(frame_model, call, name) -> None:
    """Before: ``ModalFeatures(df[['c', 'a', 'b']].iloc[0], 'visual')`` was
    embedded (and trained on, and recorded) by position, each column read as
    another, without a word, while the frame reordered was refused. Now each
    event path refuses it, naming the event, the component and the order
    expected; the model is left as it was."""
    model, frame = frame_model
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=_REORDERED.format(name)) as err:
        call(model, _event_of(frame[["c", "a", "b"]].iloc[0]))
    assert "ModalFeatures(row[['a', 'b', 'c']], 'visual')" in str(err.value)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    assert len(model.experience) == 0


def test_a_pandas_row_in_the_learned_order_embeds_as_its_values(frame_model) -> None:
    """The row in the learned order (and of unrelated or unnamed labels) is
    embedded as its numpy values are; equality compares values, not labels;
    the labels survive a pickle and a copy, and go when the features are
    replaced by an array."""
    model, frame = frame_model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained modalities
        row = frame.iloc[3]
        expected = model.encode_event(_event_of(row.to_numpy()))
        for given in (row, row.rename(index={"a": "x", "b": "y", "c": "z"}), row.reset_index(drop=True)):
            got = model.encode_event(_event_of(given))
            assert all(np.array_equal(got[m], expected[m]) for m in expected)
    reordered = gm.ModalFeatures(frame[["c", "a", "b"]].iloc[0], "visual")
    assert reordered == gm.ModalFeatures(frame[["c", "a", "b"]].iloc[0].to_numpy(), "visual")
    assert "c" not in repr(reordered).replace("confidence", "")
    for kept in (pickle.loads(pickle.dumps(reordered)), copy.deepcopy(reordered)):
        with pytest.raises(gm.InvalidValueError, match="labels"):
            model.encode_event(gm.MultiModalEvent(7, [kept]))
    reordered.features = frame[["c", "a", "b"]].iloc[0].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.encode_event(gm.MultiModalEvent(7, [reordered]))  # an array: read by position, as documented


@pytest.mark.parametrize("revive", [lambda e: pickle.loads(pickle.dumps(e)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_an_unpickled_or_deep_copied_event_of_features_encodes_and_trains(revive) -> None:
    """Before: an event of ``ModalFeatures`` unpickled was refused by
    ``encode_event`` and ``fit`` as "is a float32 array (retyped in place);
    expected float32" (its dtype an equal float32 object of its own; a deep
    copy, which passed, is pinned beside it). Now it encodes as the
    original does."""
    model = _model()
    event = gm.MultiModalEvent(3, [gm.ModalFeatures([1.0, 2.0, 3.0], "visual"), gm.ModalFeatures([0.5, 0.5], "auditory")])
    revived = revive(event)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = model.encode_event(event)
        got = model.encode_event(revived)
    assert all(np.array_equal(got[m], expected[m]) for m in expected)
    other = gm.MultiModalEvent(4, [gm.ModalFeatures([3.0, 1.0, 2.0], "visual"), gm.ModalFeatures([0.1, 0.9], "auditory")])
    model.fit([revived, revive(other)], epochs=1)
    assert model.epochs_trained == 1


# ------------------------------------------------------------------ 2. pair strengths beyond [0, 1]
def _experience(strengths, mask=None) -> gm.Experience:
    mask = np.ones(7, bool) if mask is None else mask
    return gm.Experience(np.zeros((7, 4)), mask, np.zeros(4), strengths, 0.0, 1)


@pytest.mark.parametrize("value", [5.0, -0.25, 1.0 + 1e-6])
def test_append_and_extend_refuse_pair_strengths_outside_zero_to_one(value) -> None:
    """Before: ``append`` and ``extend`` stored ``np.full((7, 7), 5.0)`` as
    given, strengths the model's binder (sigmoid outputs in [0, 1]) never
    gives. Now each is an InvalidValueError naming the argument, the row and
    the pair, and nothing is recorded."""
    buffer = gm.ExperienceBuffer(10, seed=0)
    strengths = np.full((7, 7), 0.5)
    strengths[2, 3] = value
    with pytest.raises(gm.InvalidValueError, match=rf"^experience\.pair_strengths\[2, 3\] \(linguistic, tactile\) is {value!r}; "
                       r"expected a strength in \[0, 1\]"):
        buffer.append(_experience(strengths))
    rows = np.stack([np.full((7, 7), 0.5), strengths])
    with pytest.raises(gm.InvalidValueError, match=rf"^pair_strengths: row 1, pair \(2, 3\) \(linguistic, tactile\) is {value!r}"):
        buffer.extend(np.zeros((2, 7, 4)), np.ones((2, 7), bool), np.zeros((2, 4)), rows, np.zeros(2))
    assert len(buffer) == 0


def test_pair_strengths_at_the_bounds_and_of_absent_modalities_are_recorded() -> None:
    """0 and 1 (a saturated sigmoid) are strengths; a pair with an absent
    modality still takes anything, recorded as 0; a model's own recording
    passes."""
    buffer = gm.ExperienceBuffer(10, seed=0)
    strengths = np.full((7, 7), 5.0)
    strengths[:2, :2] = [[0.0, 1.0], [1.0, 0.0]]
    mask = np.zeros(7, bool)
    mask[:2] = True
    buffer.append(_experience(strengths, mask))
    assert np.array_equal(buffer.batch().pair_strengths[0], np.where(mask[:, None] & mask, strengths, 0))
    model = _model()
    model.record_fusion(_event_of(np.ones(3)))
    assert len(model.experience) == 1


# ------------------------------------------------------------------ 3. ModelEmbedder's model
def test_a_model_embedders_model_and_modalities_are_checked_when_reassigned() -> None:
    """Before: ``embedder.model = None`` (or any object) was kept after the
    constructor had checked the model, and the next ``embed_views`` failed
    with "'NoneType' object has no attribute 'encode'";
    ``embedder.modalities = {'a': 'tactile', 'b': 'tactile'}`` kept two views
    on one slot unparsed. Now each is refused as the constructor refuses it,
    naming the attribute, and the embedder is left as it was; a model or
    modalities that pass are taken (parsed, read-only); pickles and copies
    (and a pickle of an embedder made before) keep working."""
    import copyreg

    from grapheme_multimodal.evaluation import ModelEmbedder

    model = _model()
    embedder = ModelEmbedder(model, {"a": "visual"})
    with pytest.raises(TypeError, match=r"^model: expected a LearnableMultiModal, got None"):
        embedder.model = None
    with pytest.raises(gm.InvalidValueError, match=r"^modalities: views \['a', 'b'\] share a modality"):
        embedder.modalities = {"a": "tactile", "b": "tactile"}
    with pytest.raises(TypeError, match=r"^modalities: expected a mapping"):
        embedder.modalities = ["visual"]
    assert embedder.model is model and dict(embedder.modalities) == {"a": gm.Modality.VISUAL}
    views = {"a": np.ones((2, 3))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = embedder.embed_views(views)["a"]

        class _OldPickle:  # what pickling an embedder wrote before: its state by the public names
            def __reduce_ex__(self, protocol):
                return copyreg._reconstructor, (ModelEmbedder, object, None), {"model": model, "modalities": embedder.modalities}

        for other in (pickle.loads(pickle.dumps(embedder)), copy.copy(embedder), copy.deepcopy(embedder),
                      pickle.loads(pickle.dumps(_OldPickle()))):
            assert np.array_equal(other.embed_views(views)["a"], expected)
            assert dict(other.modalities) == {"a": gm.Modality.VISUAL}
        embedder.modalities = {"a": 0}
        embedder.model = _model()
    assert embedder.modalities["a"] is gm.Modality.VISUAL and embedder.model is not model


# ------------------------------------------------------------------ 6. a weight average's tensors
def test_a_weight_average_copies_a_callers_read_only_array_it_does_not_own() -> None:
    """Before: ``WeightAverage(mean={'w': view})``, ``view`` a read-only
    view of the caller's writable array (or the caller's own read-only
    array, made writable again), was kept as it was: the caller's later
    writes changed the snapshot the average promises. Now such arrays are
    copied; the average's own arrays are not copied again."""
    base = np.ones(3)
    view = base.view()
    view.flags.writeable = False
    own = np.ones(3)
    own.flags.writeable = False
    from grapheme_multimodal.averaging import WeightAverage

    average = WeightAverage(decay=0.5, count=1, mean={"view": view, "own": own})
    base[0] = 99.0
    own.flags.writeable = True
    own[1] = 7.0
    assert average.mean["view"].tolist() == [1.0, 1.0, 1.0] and average.mean["own"].tolist() == [1.0, 1.0, 1.0]
    again = average._replace(count=2)
    assert all(again.mean[k] is average.mean[k] for k in average.mean)  # its own: kept as they are


# ------------------------------------------------------------------ 4. a save that fails as it writes
@pytest.mark.parametrize("where, code", [("fsync", 28), ("fsync", 5), ("write", 27)], ids=["ENOSPC", "EIO", "EFBIG"])
def test_a_save_failing_as_it_writes_says_path_and_keeps_its_errno(tmp_path, monkeypatch, where, code) -> None:
    """Before: a save that failed while writing (a full disk, EIO, a file
    past RLIMIT_FSIZE) raised the OS's ``[Errno 28] No space left on
    device: '.../m.st'``, where the package's other file errors read
    ``path: '.../m.st' cannot be saved: ...``. Now it reads so too, still
    an OSError of that errno; the file saved before is as it was."""
    import os

    from grapheme_multimodal import io as gio

    target = tmp_path / "m.st"
    model = _model()
    model.save(target)
    before = target.read_bytes()

    def failing(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    with pytest.raises(OSError) as err:
        if where == "write":  # the writer's own write, as a file past RLIMIT_FSIZE fails
            gio.atomic_write(target, failing)
        else:
            monkeypatch.setattr(gio.os, "fsync", failing)
            model.save(target)
    monkeypatch.undo()
    assert err.value.errno == code and type(err.value) is OSError
    assert str(err.value) == f"path: {str(target)!r} cannot be saved: {os.strerror(code)}; nothing was written there"
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.st"]


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "new-file"])
def test_the_command_line_names_a_failed_write_by_its_flag(tmp_path, capsys, monkeypatch, overwrite) -> None:
    """The command line printed such an error as ``f.npy: No space left on
    device``; now it is one line naming the flag, as its other errors do
    (never ``path``, which it has no argument of), with or without
    ``--overwrite``, and the earlier output is kept."""
    import os

    from grapheme_multimodal import io as gio
    from grapheme_multimodal.cli import main

    model, vectors, out = tmp_path / "m.st", tmp_path / "v.npy", tmp_path / "f.npy"
    _model().save(model)
    np.save(vectors, np.ones((2, 3), np.float32))
    if overwrite:
        out.write_bytes(b"previous")

    def disk_full(fd):
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(gio.os, "fsync", disk_full)
    code = main(["embed", str(model), "-m", f"visual={vectors}", "-o", str(out)] + (["--overwrite"] if overwrite else []))
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"grapheme-mm: error: --output: {str(out)!r} cannot be saved: No space left on device; "
                                 "nothing was written there"), err
    assert (out.read_bytes() == b"previous") if overwrite else not out.exists()
