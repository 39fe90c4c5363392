"""Speed of the per-event path (building an event of graphs, fuse_event on
a miss and on a hit), won back without dropping a check. No test times
anything; each pins that the faster code refuses and keeps what the slower
code did:

1. a component's fields that already hold their checked form (a Modality,
   a float in [0, 1], None) are set without the general check's call,
   whose answer they are; everything else still goes through it;
2. an event's id that is a plain int within int64 is kept without the
   general check; a list of components is copied without the iterable
   checks (``typing.Iterable``'s isinstance, a microsecond an event, is
   now ``collections.abc``'s: the same answer);
3. ``fuse_event`` checks an event's components with
   ``_checked_components`` only when one of them is not an exact
   ``ModalGraph`` (or ``components`` is not a list), before that one's
   fields are read: the same errors, with the same messages;
4. the untrained-modality warning is still given on a miss and on a hit,
   and the cached arrays are still read-only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal._validation import is_iterable

DIM = 18  # the default config's input width


def graph_component(**kwargs) -> gm.ModalGraph:
    return gm.ModalGraph(gm.Graph.from_text("a small red ball"), gm.Modality.VISUAL, **kwargs)


@pytest.mark.parametrize("make", [
    graph_component,
    lambda **kw: gm.ModalFeatures(np.zeros(DIM, np.float32), gm.Modality.VISUAL, **kw),
])
@pytest.mark.parametrize("given, kept", [
    (0.25, 0.25), (0.0, 0.0), (1.0, 1.0), (1.5, 1.0), (-2.0, 0.0), (np.float64(0.5), 0.5), (1, 1.0), (0, 0.0),
    (np.float32(2.0), 1.0), (float("inf"), 1.0),
])
def test_confidence_kept_clamped_and_a_python_float(make, given, kept):
    for c in (make(confidence=given), make()):
        c.confidence = given
        assert c.confidence == kept and type(c.confidence) is float
    minus_zero = make(confidence=-0.0).confidence
    assert minus_zero == 0.0 and np.signbit(minus_zero)  # as min(max(-0.0, 0.0), 1.0) keeps it


@pytest.mark.parametrize("given, error, match", [
    (True, gm.InvalidTypeError, "confidence: expected a number, got bool"),
    ("0.5", gm.InvalidTypeError, "confidence: expected a number, got str"),
    (None, gm.InvalidTypeError, "confidence: expected a number, got NoneType"),
    (float("nan"), gm.InvalidValueError, "confidence: expected a number in"),
])
def test_bad_confidence_still_refused(given, error, match):
    with pytest.raises(error, match=match):
        graph_component(confidence=given)
    c = graph_component()
    with pytest.raises(error, match=match):
        c.confidence = given
    assert c.confidence == 1.0


def test_other_fields_still_parsed_and_checked():
    g = gm.Graph.from_text("ab")
    for given in (gm.Modality.LINGUISTIC, "linguistic", "LINGUISTIC", 2, np.int64(2)):
        assert gm.ModalGraph(g, given).modality is gm.Modality.LINGUISTIC
        assert gm.ModalFeatures(np.zeros(3), given).modality is gm.Modality.LINGUISTIC
    c = gm.ModalGraph(g, 0, timestamp=3, region=gm.SpatialRegion(0, 0, 0.5, 0.5))
    assert c.timestamp == 3.0 and type(c.timestamp) is float and c.region == gm.SpatialRegion(0, 0, 0.5, 0.5)
    for kwargs, error in [({"timestamp": float("nan")}, gm.InvalidValueError), ({"timestamp": "noon"}, gm.InvalidTypeError),
                          ({"region": (0, 0, 1, 1)}, TypeError)]:
        with pytest.raises(error):
            gm.ModalGraph(g, 0, **kwargs)
    with pytest.raises(TypeError, match="modality: expected a Modality, a name or an index, got NoneType"):
        gm.ModalGraph(g, None)
    with pytest.raises(TypeError, match="graph: expected Graph"):
        gm.ModalGraph("ab", 0)
    c.note = "kept"  # an attribute of the user's own: stored as given, as before
    assert c.note == "kept"


class _Int(int):
    pass


@pytest.mark.parametrize("given", [0, 7, -(2**63), 2**63 - 1, np.int64(5), np.uint8(3), _Int(4)])
def test_event_id_kept_as_a_python_int(given):
    event = gm.MultiModalEvent(given)
    assert event.id == int(given) and type(event.id) is int
    event.id = given
    assert event.id == int(given) and type(event.id) is int


@pytest.mark.parametrize("given, error", [
    (2**63, gm.InvalidValueError), (-(2**63) - 1, gm.InvalidValueError), (True, gm.InvalidTypeError),
    (1.0, gm.InvalidTypeError), ("1", gm.InvalidTypeError), (None, gm.InvalidTypeError),
])
def test_bad_event_id_still_refused(given, error):
    with pytest.raises(error, match="^id: "):
        gm.MultiModalEvent(given)


def test_components_copied_and_other_iterables_still_read():
    c = graph_component()
    given = [c]
    event = gm.MultiModalEvent(0, given)
    assert event.components == [c] and event.components is not given
    given.append(graph_component())
    assert len(event.components) == 1
    assert gm.MultiModalEvent(0, (c, c)).components == [c, c]
    assert gm.MultiModalEvent(0, iter([c])).components == [c]
    for bad in ("ab", c, np.array(2.0), 3):
        with pytest.raises(TypeError, match="^components: expected a list of ModalGraph or ModalFeatures"):
            gm.MultiModalEvent(0, bad)
    with pytest.raises(TypeError, match=r"^component: expected ModalGraph or ModalFeatures, got"):
        gm.MultiModalEvent(0, [c, "junk"])


def test_is_iterable_answers_as_typing_iterable_did():
    for value in ([], (), "ab", b"", {}, set(), iter([]), (x for x in ()), np.zeros(2), range(2)):
        assert is_iterable(value) and isinstance(value, Iterable)
    for value in (3, 2.0, None, np.array(2.0), np.float64(1.0), object()):
        assert not is_iterable(value)


def _event(*components) -> gm.MultiModalEvent:
    event = gm.MultiModalEvent(3)
    event.components = list(components)  # as a user may: the list is public, nothing checks it here
    return event


def test_fuse_event_refuses_junk_after_graphs_as_before():
    model = gm.LearnableMultiModal(seed=0)
    with pytest.raises(TypeError, match=r"^event\.components\[1\]: expected ModalGraph or ModalFeatures, got"):
        model.fuse_event(_event(graph_component(), object()))
    with pytest.raises(TypeError, match=r"^event\.components\[2\]: expected ModalGraph or ModalFeatures, got .*; give a graph"):
        model.fuse_event(_event(graph_component(), graph_component(), gm.Graph.from_text("x")))
    features = gm.ModalFeatures(np.zeros(DIM, np.float32), gm.Modality.AUDITORY)
    features.features.shape = (2, DIM // 2)  # reshaped in place: the setter never saw it
    with pytest.raises(gm.ShapeError, match=r"^event\.components\[1\]\.features: has shape \(2, 9\) \(reshaped in place\)"):
        model.fuse_event(_event(graph_component(), features))
    # a junk component after a ModalFeatures one, which already called the check: the same error
    with pytest.raises(TypeError, match=r"^event\.components\[2\]: expected ModalGraph or ModalFeatures"):
        model.fuse_event(_event(gm.ModalFeatures(np.zeros(DIM, np.float32), 1), graph_component(), 5))
    event = _event(graph_component())
    event.components = tuple(event.components)
    with pytest.raises(TypeError, match=r"^event\.components: expected a list of ModalGraph or ModalFeatures, got tuple"):
        model.fuse_event(event)


class _Graph(gm.ModalGraph):
    pass


class _List(list):
    pass


def test_fuse_event_of_subclasses_and_mixed_components_as_of_plain_ones():
    model = gm.LearnableMultiModal(seed=0)
    g = gm.Graph.from_text("the cat runs")
    x = np.random.default_rng(0).normal(size=DIM).astype(np.float32)
    plain = model.fuse_event(gm.MultiModalEvent(1, [gm.ModalGraph(g, 0), gm.ModalFeatures(x, 2, confidence=0.5)]))
    sub = _event(_Graph(g, 0), gm.ModalFeatures(x, 2, confidence=0.5))
    np.testing.assert_array_equal(model.fuse_event(sub), plain)
    sub.components = _List(sub.components)
    np.testing.assert_array_equal(model.fuse_event(sub), plain)
    np.testing.assert_array_equal(model.fuse_event(sub), plain)  # a hit


def test_cached_arrays_read_only_and_untrained_warning_on_a_miss_and_a_hit():
    model = gm.LearnableMultiModal(seed=0)
    rng = np.random.default_rng(1)
    model.train_step([rng.normal(size=(4, DIM)).astype(np.float32)] + [None] * 6)  # visual only
    event = gm.MultiModalEvent(5, [graph_component(), gm.ModalGraph(gm.Graph.from_text("words"), "linguistic")])
    for _ in range(2):  # the miss, then the hit
        with pytest.warns(gm.UntrainedModalityWarning, match="'linguistic'"):
            fused = model.fuse_event(event)
        fused[:] = 0  # a copy: the cache is not edited
    with pytest.warns(gm.UntrainedModalityWarning):
        _, _, (emb, mask), cached = model._event_entry(event)
    assert not (emb.flags.writeable or mask.flags.writeable or cached.flags.writeable)
    assert np.abs(cached).sum() > 0
    only_visual = gm.MultiModalEvent(6, [graph_component()])
    with warnings.catch_warnings():
        warnings.simplefilter("error", gm.UntrainedModalityWarning)
        model.fuse_event(only_visual)
        model.fuse_event(only_visual)


def test_the_core_hands_the_event_arrays_back_read_only():
    """5. the core makes them read-only (the flag set in Python was 0.4 us
    of an uncached fuse_event): what the cache keeps no view may edit."""
    model = gm.LearnableMultiModal(seed=0)
    items = [(0, gm.Graph.from_text("a red ball")._g, 1.0), (2, np.ones(DIM, np.float32), 0.5)]
    emb, mask, fused = model._core.encode_event(9, items, model._featurizer_spec())
    for arr in (emb, mask, fused):
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    assert mask.tolist() == [[True, False, True, False, False, False, False]]
    assert model._core.encode_event(9, [], model._featurizer_spec())[2] is None
