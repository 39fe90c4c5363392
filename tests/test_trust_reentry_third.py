"""User code running inside the library's calls, third pass: a buffer's
``__setstate__`` on a buffer in use (a model's, or one another thread
records into), the metrics of ``fit_with_stopping``'s cross-validation
folds, which could train the model the folds are copies of, and other
threads writing that model while its folds train. Each is refused with a
clear error and the model (or buffer) left as it was, or waits its turn."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import grapheme_multimodal as gm

from test_trust_model import small_model, synthetic


def _buffer_bytes(buffer: gm.ExperienceBuffer) -> tuple:
    tensors, meta = buffer.state()
    return {k: v.tobytes() for k, v in tensors.items()}, {k: v for k, v in meta.items() if k != "rng_state"}


# ------------------------------------------------- a buffer's __setstate__ in use
def test_setstate_of_a_models_buffer_refuses_a_buffer_of_another_embed_dim() -> None:
    """Took the state of a buffer of embed_dim 16 into the model's buffer
    (embed_dim 8) without the check ``model.experience = ...`` makes; the
    model's next ``record_batch`` then failed naming ``embeddings``, an
    argument its caller never passed."""
    model = small_model()
    model.record_batch(synthetic(4))
    before = _buffer_bytes(model.experience)
    state = gm.ExperienceBuffer(10, embed_dim=16).__getstate__()
    with pytest.raises(gm.CheckpointError, match=r"^state: is the state of a buffer of embed_dim=16, which this "
                                                  r"model's buffer cannot take .*expected embed_dim=8 or None") as info:
        model.experience.__setstate__(state)
    assert info.value.arg == "state"
    assert _buffer_bytes(model.experience) == before
    model.record_batch(synthetic(3))  # records on as ever
    assert len(model.experience) == 7


def test_setstate_of_a_models_buffer_takes_a_buffer_it_can_record_into() -> None:
    """Of the model's dims, or of none (a buffer that never recorded, which
    keeps the model's embed_dim, as ``load`` keeps it); the buffer keeps
    its lock and stays the model's."""
    model, other = small_model(), small_model()
    other.record_batch(synthetic(6, seed=2))
    buffer = model.experience
    lock = buffer._lock
    buffer.__setstate__(other.experience.__getstate__())
    assert _buffer_bytes(buffer) == _buffer_bytes(other.experience) and buffer._lock is lock
    model.record_batch(synthetic(3))
    assert len(buffer) == 9 and len(other.experience) == 6  # the state's arrays were copied, not shared
    buffer.__setstate__(gm.ExperienceBuffer(5).__getstate__())
    assert len(buffer) == 0 and buffer.embed_dim == 8
    model.record_batch(synthetic(3))
    with pytest.raises(gm.CheckpointError, match=r"embed_dim=16"):  # still the model's buffer
        buffer.__setstate__(gm.ExperienceBuffer(5, embed_dim=16).__getstate__())


@pytest.mark.parametrize("forge", [
    lambda s: None,
    lambda s: {},
    lambda s: {k: v for k, v in s.items() if k != "_arrays"},
    lambda s: {**s, "_rng": 3},
    lambda s: {**s, "_arrays": {**s["_arrays"], "rewards": np.full(len(s["_arrays"]["rewards"]), np.nan, np.float32)}},
], ids=["None", "empty", "no arrays", "no generator", "NaN rewards"])
def test_a_bad_state_leaves_a_buffer_in_use_as_it_was(forge) -> None:
    """Applied as far as it went: a state without arrays left the buffer's
    dims changed, its arrays the old ones (a bare KeyError or
    AttributeError, and the next record failed)."""
    buffer = gm.ExperienceBuffer(10, embed_dim=4)
    buffer.extend(np.ones((3, 7, 4)), np.ones((3, 7), bool), np.ones((3, 4)), np.ones((3, 7, 7)), np.ones(3))
    before = _buffer_bytes(buffer)
    good = gm.ExperienceBuffer(20, embed_dim=6)
    good.extend(np.ones((2, 7, 6)), np.ones((2, 7), bool), np.ones((2, 6)), np.ones((2, 7, 7)), np.ones(2))
    with pytest.raises(gm.CheckpointError, match=r"^state: ") as info:
        buffer.__setstate__(forge(good.__getstate__()))
    assert info.value.arg == "state" and _buffer_bytes(buffer) == before
    buffer.extend(np.ones((1, 7, 4)), np.ones((1, 7), bool), np.ones((1, 4)), np.ones((1, 7, 7)), np.ones(1))
    assert len(buffer) == 4


def test_setstate_from_another_thread_waits_for_a_record_in_progress() -> None:
    """Took no lock (a record in progress in another thread wrote into the
    old arrays after the swap, or half into each) and put a new lock in
    (the threads waiting for the old one ran beside those taking it)."""
    buffer = gm.ExperienceBuffer(10, embed_dim=4)
    other = gm.ExperienceBuffer(10, embed_dim=4)
    other.extend(np.ones((2, 7, 4)), np.ones((2, 7), bool), np.ones((2, 4)), np.ones((2, 7, 7)), np.ones(2))
    lock = buffer._lock
    replacer = threading.Thread(target=buffer.__setstate__, args=(other.__getstate__(),))
    with lock:  # a record or sample in progress
        replacer.start()
        replacer.join(0.3)
        assert replacer.is_alive() and len(buffer) == 0  # waiting: the buffer is the record's until it ends
    replacer.join()
    assert buffer._lock is lock and _buffer_bytes(buffer) == _buffer_bytes(other)
