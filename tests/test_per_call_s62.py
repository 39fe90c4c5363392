"""The per-call shortcuts of session 62 against what they stand in for: the
event cache's clear, ``as_mask``'s return of a ready mask, ``fuse``'s
default mask, a featuriser's call of itself, and ``extend``'s finite check
of inputs and its unstaged absent inputs. Same results, same refusals."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _validation
from grapheme_multimodal._validation import as_mask
from grapheme_multimodal.exceptions import NonFiniteError, ShapeError, TooLargeError
from grapheme_multimodal.model import _EventCache


def _event(event_id: int = 0) -> gm.MultiModalEvent:
    event = gm.MultiModalEvent(event_id)
    for m, text in ((gm.Modality.VISUAL, "a red ball"), (gm.Modality.LINGUISTIC, "the ball is red")):
        event.add_component(gm.ModalGraph(gm.Graph.from_text(text), m))
    return event


def test_clear_cache_empties_it_and_its_entries_are_recomputed_alike():
    model = gm.LearnableMultiModal(seed=0)
    event = _event()
    first = model.fuse_event(event)
    assert len(model._cache) == 1
    model.clear_cache()
    assert len(model._cache) == 0
    np.testing.assert_array_equal(model.fuse_event(event), first)
    assert len(model._cache) == 1


def test_a_training_step_clears_the_cache():
    model = gm.LearnableMultiModal(seed=0)
    event = _event()
    before = model.fuse_event(event)
    rng = np.random.default_rng(0)
    model.train_step({"visual": rng.normal(size=(4, 18)), "linguistic": rng.normal(size=(4, 18))})
    assert len(model._cache) == 0
    assert not np.array_equal(model.fuse_event(event), before)


def test_the_event_cache_still_forgets_a_dead_event_and_clears_while_iterated():
    cache = _EventCache()
    events = [_event(i) for i in range(3)]
    for e in events:
        cache[e] = e.id
    del e
    events.pop()
    gc.collect()
    assert len(cache) == 2  # the weak key's callback removed the third
    walk = iter(cache.keys())  # an iteration in progress: the inherited clear, with its bookkeeping
    next(walk)
    cache.clear()
    assert len(cache) == 0
    del walk
    cache[events[0]] = 0
    cache.clear()  # none in progress: the dict's own
    assert len(cache) == 0 and list(cache.items()) == []
    ref = weakref.ref(events[0])
    cache[events[0]] = 1
    events.clear()
    gc.collect()
    assert ref() is None and len(cache) == 0


def test_as_mask_returns_a_ready_mask_itself_and_still_checks_the_rest():
    ready = np.ones((3, 7), bool)
    assert as_mask(ready, 3) is ready
    assert as_mask(ready, None) is ready
    with pytest.raises(ShapeError, match=r"mask: expected shape \(4, 7\), got \(3, 7\)"):
        as_mask(ready, 4)
    fortran = np.asfortranarray(np.ones((3, 7), bool))
    out = as_mask(fortran, 3)
    assert out.flags.c_contiguous and out is not fortran
    np.testing.assert_array_equal(out, fortran)


def test_as_mask_of_a_ready_mask_beyond_the_budget_is_refused_naming_it(monkeypatch):
    monkeypatch.setattr(_validation, "memory_budget", lambda: 20)
    with pytest.raises(TooLargeError, match="^mask: "):
        as_mask(np.ones((3, 7), bool), 3)


def test_fuse_default_mask_is_the_nonzero_slots_nan_included():
    model = gm.LearnableMultiModal(seed=0)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(2, 7, model.config.embed_dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
    emb[0, 3] = 0.0
    emb[1, 2] = -0.0
    emb[1, 5] = 0.0
    emb[1, 5, 0] = np.float32(1e-45)  # a subnormal is not zero
    _, mask = model._embeddings_and_mask(emb, None)
    np.testing.assert_array_equal(mask, (emb != 0).any(axis=2))
    np.testing.assert_array_equal(model.fuse(emb), model.fuse(emb, (emb != 0).any(axis=2)))
    emb[0, 1, 4] = np.nan  # present (not zero), and refused by the core as before
    assert model._embeddings_and_mask(emb, None)[1][0, 1]
    with pytest.raises(NonFiniteError):
        model.fuse(emb)


def test_a_featurisers_call_gives_featurize_and_refuses_alike():
    texts = ["a red ball", "the ball is red"]
    for featurizer in (gm.GraphFeaturizer(), gm.GraphFeaturizer("wl", dim=32, iterations=2)):
        np.testing.assert_array_equal(
            featurizer(texts), gm.featurize(texts, featurizer.kind, featurizer.dim, featurizer.iterations))
        for bad, words in (("abc", "a single str"), ({"a": "b"}, "list(items.values())"), ({"abc"}, "got set")):
            with pytest.raises(TypeError, match=r"^items: .*" + words.replace("(", r"\(").replace(")", r"\)")):
                featurizer(bad)
        with pytest.raises(TypeError, match=r"^items\[1\]: "):
            featurizer(["abc", None])


def test_extend_records_absent_inputs_as_nan_and_checks_present_rows_finite():
    buf = gm.ExperienceBuffer(capacity=8, embed_dim=4, input_dims=(3,) * 7, seed=0)
    emb = np.zeros((2, 7, 4), np.float32)
    emb[:, :2, 0] = 1.0
    mask = np.zeros((2, 7), bool)
    mask[:, :2] = True
    mask[1, 1] = False  # row 1 lacks modality 1: its input row may hold NaN
    emb[1, 1] = 0.0
    visual = np.ones((2, 3), np.float32)
    auditory = np.array([[1, 2, 3], [np.nan, np.nan, np.nan]], np.float32)
    inputs = [visual, auditory] + [None] * 5
    buf.extend(emb, mask, np.zeros((2, 4), np.float32), np.zeros((2, 7, 7), np.float32), [0.0, 1.0], inputs=inputs)
    got = buf.batch()
    assert np.isnan(got.inputs[1][1]).all() and np.array_equal(got.inputs[1][0], [1, 2, 3])
    assert all(np.isnan(got.inputs[m]).all() for m in range(2, 7))
    bad = auditory.copy()
    bad[0, 1] = np.inf  # a present row
    with pytest.raises(NonFiniteError, match=r"^inputs\['auditory'\]: row 0 "):
        buf.extend(emb, mask, np.zeros((2, 4), np.float32), np.zeros((2, 7, 7), np.float32), [0.0, 1.0],
                   inputs=[visual, bad] + [None] * 5)
    assert len(buf) == 2


def test_a_featuriser_subclass_s_rows_are_cast_into_the_float32_table():
    """Graphs only, the featuriser's rows became the table as they were: a
    subclass's float64 rows stayed float64 (every table is float32, as the
    core reads it, and a subclass's rows may be its own cache: shared)."""
    from grapheme_multimodal.batch import event_components
    from grapheme_multimodal.graph import GraphFeaturizer

    class Wide(GraphFeaturizer):
        def __call__(self, items, unit="char"):
            return super().__call__(items, unit).astype(np.float64)

    model = gm.LearnableMultiModal(seed=0, graph_features={"linguistic": Wide()})
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalGraph(gm.Graph.from_text("cat"), gm.Modality.LINGUISTIC))
    table = event_components(model.config, [event])[2][0]
    assert table.dtype == np.float32 and table.flags.c_contiguous
