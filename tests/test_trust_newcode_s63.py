"""Hostile review of the code added in session 62 (portable pickles, folder
locks and anchored paths, warning filters, the training record, the CLI's
stand-ins, per-call fast paths). Each test says what a user saw before the fix."""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import pickle
import sys
import threading

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import Experience, ExperienceBatch
from grapheme_multimodal.evaluation import ExactCCA


# ------------------------------------------------------------ 1. a user's subclass with __slots__ pickles and copies
class _SlottedExperience(Experience):
    __slots__ = ("note",)


class _SlottedFeatures(gm.ModalFeatures):
    __slots__ = ("note",)


class _SlottedCCA(ExactCCA):
    __slots__ = ("note",)


def _slotted_experience() -> _SlottedExperience:
    e = _SlottedExperience(np.ones((7, 4), np.float32), np.ones(7, bool), np.ones(4, np.float32),
                           np.eye(7, dtype=np.float32), 0.5)
    e.note = "kept"
    return e


def _slotted_features() -> _SlottedFeatures:
    f = _SlottedFeatures(np.arange(3.0), "visual")
    f.note = "kept"
    return f


def _slotted_cca() -> _SlottedCCA:
    rng = np.random.default_rng(0)
    cca = _SlottedCCA(n_components=1).fit(rng.normal(size=(20, 3)), rng.normal(size=(20, 2)))
    cca.note = "kept"
    return cca


_COPIES = {
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
    **{f"pickle protocol {p}": (lambda p: lambda o: pickle.loads(pickle.dumps(o, protocol=p)))(p) for p in (2, 3, 4, 5)},
}


@pytest.mark.parametrize("how", sorted(_COPIES))
@pytest.mark.parametrize("make", [_slotted_experience, _slotted_features, _slotted_cca])
def test_a_users_subclass_with_slots_of_its_own_pickles_and_copies(make, how) -> None:
    # Before: the mixin's __setstate__ took the (attributes, slots) state of such a subclass for a dict:
    # "ValueError: dictionary update sequence element #0 has length 7; 2 is required" from copy.copy,
    # copy.deepcopy and pickle.loads (an Experience and an ExactCCA subclass pickled and copied at bb0e385).
    original = make()
    twin = _COPIES[how](original)
    assert type(twin) is type(original) and twin.note == "kept"
    if isinstance(original, ExactCCA):
        np.testing.assert_array_equal(twin.x_weights_, original.x_weights_)
    else:
        assert twin == original


class _SlottedModel(gm.LearnableMultiModal):
    __slots__ = ("note",)


class _SlottedBuffer(gm.ExperienceBuffer):
    __slots__ = ("note",)


class _SlottedBatch(ExperienceBatch):
    __slots__ = ("note",)


def _slotted_batch() -> _SlottedBatch:
    buffer = gm.ExperienceBuffer(4, embed_dim=8)
    unit = np.eye(8, dtype=np.float32)[0]
    buffer.extend(np.tile(unit, (2, 7, 1)), np.ones((2, 7), bool), np.tile(unit, (2, 1)), np.zeros((2, 7, 7), np.float32),
                  np.ones(2))
    sampled = buffer.sample(2)
    batch = _SlottedBatch(**{f.name: getattr(sampled, f.name) for f in dataclasses.fields(sampled)})
    batch.note = "kept"
    return batch


def _slotted_model() -> _SlottedModel:
    model = _SlottedModel(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3})
    model.note = "kept"
    return model


def _slotted_buffer() -> _SlottedBuffer:
    buffer = _SlottedBuffer(4)
    buffer.note = "kept"
    return buffer


@pytest.mark.parametrize("how", sorted(_COPIES))
@pytest.mark.parametrize("make", [_slotted_model, _slotted_buffer, _slotted_batch])
def test_a_model_or_buffer_subclass_keeps_its_slots_in_pickles_and_copies(make, how) -> None:
    # Before: their __getstate__ (an ExperienceBatch's too) pickled __dict__ alone: the subclass's slots were gone from every
    # pickle, copy and deep copy (AttributeError: 'note' on the copy), without a word.
    twin = _COPIES[how](make())
    assert type(twin) is type(make()) and twin.note == "kept"


@pytest.mark.parametrize("make", [_slotted_model, _slotted_buffer])
def test_a_model_or_buffer_in_use_given_a_state_takes_its_slots_too(make) -> None:
    target, source = make(), make()
    source.note = "the state's"
    target.__setstate__(copy.copy(source.__getstate__()))
    assert target.note == "the state's"
    del source.note  # a state without it: the one it replaces is the state's, as unpickled
    target.__setstate__(copy.copy(source.__getstate__()))
    assert not hasattr(target, "note")


def test_a_slotted_subclass_pickles_its_fields_portably() -> None:
    # its fields are the package's arrays, pickled as bytes, dtype and shape (any numpy major reads them)
    data = pickle.dumps(_slotted_experience(), protocol=4)
    assert b"_reconstruct" not in data and b"_array" in data


# ------------------------------------------------------------ 2. a save keeps to its folder when the process's is removed
def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _change_to_a_folder_then_remove_it(folder) -> None:
    """Another thread's ``os.chdir`` into a folder it then removes (a
    ``TemporaryDirectory`` it worked in): the process's working folder is gone."""
    def change_and_remove() -> None:
        os.chdir(folder)
        os.rmdir(folder)

    thread = threading.Thread(target=change_and_remove)
    thread.start()
    thread.join()


def test_a_save_by_a_relative_name_is_written_when_another_thread_moved_to_a_folder_since_removed(
        tmp_path, monkeypatch) -> None:
    # Before: "path: 'out/m.gm' names a file in the current folder, which has been removed", of a save whose
    # folder (current as it began, where its name is followed) was there all along; nothing written.
    from grapheme_multimodal import checkpoint

    (tmp_path / "first" / "out").mkdir(parents=True)
    (tmp_path / "gone").mkdir()
    monkeypatch.chdir(tmp_path / "first")
    copy_state = checkpoint.checkpoint_state

    def copied_as_another_thread_moves(*args, **kwargs):
        state = copy_state(*args, **kwargs)
        _change_to_a_folder_then_remove_it(tmp_path / "gone")
        return state

    monkeypatch.setattr(checkpoint, "checkpoint_state", copied_as_another_thread_moves)
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3})
    before = _open_descriptors()
    model.save("out/m.gm")
    assert _open_descriptors() == before
    assert os.listdir(tmp_path / "first" / "out") == ["m.gm"]
    loaded = gm.LearnableMultiModal.load(tmp_path / "first" / "out" / "m.gm")
    assert all(np.array_equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_files_written_together_by_relative_names_all_land_when_the_working_folder_is_removed_midway(
        tmp_path, monkeypatch) -> None:
    # the second file's name was refused as above after the first was written; neither was kept
    from grapheme_multimodal.io import atomic_write_all

    (tmp_path / "first").mkdir()
    (tmp_path / "gone").mkdir()
    monkeypatch.chdir(tmp_path / "first")

    def first(f) -> None:
        f.write(b"a")
        _change_to_a_folder_then_remove_it(tmp_path / "gone")

    atomic_write_all([("a.bin", first), ("b.bin", lambda f: f.write(b"b"))])
    assert sorted(os.listdir(tmp_path / "first")) == ["a.bin", "b.bin"]
    assert (tmp_path / "first" / "b.bin").read_bytes() == b"b"


def test_a_relative_name_in_a_removed_working_folder_is_still_refused_naming_it(tmp_path, monkeypatch) -> None:
    # the refusal kept for a save that begins there (no folder to write into)
    (tmp_path / "gone").mkdir()
    monkeypatch.chdir(tmp_path / "gone")
    os.rmdir(tmp_path / "gone")
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3})
    with pytest.raises(FileNotFoundError, match=r"path: 'm.gm' names a file in the current folder, which has been removed"):
        model.save("m.gm")


# ------------------------------------------------------------ 3. the command line's stream stand-ins copy as streams
class _Catching(io.StringIO):
    """A program's stdout that keeps what ``sys.stdout`` was as it was written
    to (what a handler made during ``main`` holds: the command line's stand-in)."""

    seen: list

    def write(self, text: str) -> int:
        self.seen.append(sys.stdout)
        return super().write(text)


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_a_stand_in_for_stdout_held_after_main_copies_and_writes_on(tmp_path, monkeypatch, how) -> None:
    # Before: copy.copy and copy.deepcopy of stdout's stand-in were a RecursionError (its __getattr__ read
    # self._stream on the copy being made); stderr's took the stream's own __getstate__ on Python 3.9.
    from grapheme_multimodal import cli

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3})
    model.save(tmp_path / "m.gm")
    out = _Catching()
    out.seen = []
    monkeypatch.setattr(sys, "stdout", out)
    assert cli.main(["info", str(tmp_path / "m.gm")]) == 0
    stand_in = next(s for s in out.seen if s is not out)
    twin = how(stand_in)
    assert type(twin) is type(stand_in)
    twin.write("after main\n")
    twin.flush()
    written = out if how is copy.copy else twin._stream
    assert written.getvalue().endswith("after main\n") and sys.stdout is out


# ------------------------------------------------------------ 4. a damaged portable pickle is refused naming what it holds
def _pickled_with(monkeypatch, obj, edit) -> bytes:
    """``obj`` pickled with each portable array's arguments passed through ``edit`` (a damaged pickle)."""
    from grapheme_multimodal import _portable

    reduce = _portable._PortableArray.__reduce_ex__

    def edited(self, protocol):
        function, args = reduce(self, protocol)
        return function, edit(*args)

    with monkeypatch.context() as patch:
        patch.setattr(_portable._PortableArray, "__reduce_ex__", edited)
        return pickle.dumps(obj, protocol=4)


@pytest.mark.parametrize("edit, held, expected", [
    (lambda data, dtype, shape, *order: (data, dtype, (shape[0] + 1,) + shape[1:]) + order, 96, "108 bytes, that shape's"),
    (lambda data, dtype, shape, *order: (data[:-1], dtype, shape) + order, 95, "96 bytes, that shape's"),
    (lambda data, dtype, shape, *order: (data, dtype, (-1,) + shape[1:]) + order, 96, "sizes >= 0"),
], ids=["a row more", "a byte less", "a -1 for numpy to infer"])
def test_a_pickle_whose_array_bytes_do_not_match_its_shape_is_refused_naming_both(monkeypatch, edit, held, expected) -> None:
    # Before: numpy's "cannot reshape array of size 24 into shape (9,3)" or "buffer size must be a multiple of
    # element size", naming nothing; a shape of -1 was taken for whatever the bytes made.
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3})

    def edit_the_first_encoders_weight(data, dtype, shape, *order):
        return edit(data, dtype, shape, *order) if tuple(shape) == (8, 3) else (data, dtype, shape) + order

    data = _pickled_with(monkeypatch, model, edit_the_first_encoders_weight)
    with pytest.raises(gm.CheckpointError, match=rf"pickle: holds {held} bytes for an array of dtype '<f4' and shape "
                                                 rf"\(.*\); expected {expected} \(the pickle is damaged") as err:
        pickle.loads(data)
    assert err.value.arg == "pickle"


# ------------------------------------------------------------ 5. a training Batch pickles under numpy 1 and 2 alike
def _experience_batch() -> gm.Batch:
    buffer = gm.ExperienceBuffer(4, embed_dim=8)
    unit = np.eye(8, dtype=np.float32)[0]
    buffer.extend(np.tile(unit, (3, 7, 1)), np.ones((3, 7), bool), np.tile(unit, (3, 1)), np.zeros((3, 7, 7), np.float32),
                  np.arange(3.0))
    return gm.Batch.from_experiences(buffer.batch())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_batch_of_the_packages_arrays_pickles_portably_and_trains_alike(protocol) -> None:
    # Before: Batch.from_experiences' arrays (and from_events' components) pickled as numpy 2 makes them:
    # numpy._core.multiarray._reconstruct, a module numpy 1 lacks (ModuleNotFoundError there).
    batch = _experience_batch()
    data = pickle.dumps(batch, protocol=protocol)
    assert b"numpy._core" not in data and b"_reconstruct" not in data
    twin = pickle.loads(data)
    assert type(twin) is gm.Batch and twin.embeddings.flags.writeable
    for name in ("embeddings", "mask", "fused", "rewards"):
        np.testing.assert_array_equal(getattr(twin, name), getattr(batch, name))
    models = [gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, input_dims={"visual": 3}, seed=0)
              for _ in range(2)]
    assert models[0].train_step(batch) == models[1].train_step(twin)
    assert all(np.array_equal(v, models[1].state_dict()[k]) for k, v in models[0].state_dict().items())


def test_a_batch_copies_as_it_did() -> None:
    batch = _experience_batch()
    assert copy.copy(batch).embeddings is batch.embeddings
    deep = copy.deepcopy(batch)
    assert deep.embeddings is not batch.embeddings and np.array_equal(deep.embeddings, batch.embeddings)
