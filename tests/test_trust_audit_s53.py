"""An independent hostile checker's audit (session 53): probes of the public
surface that found a defect, each pinned here with the promise it broke."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import InvalidTypeError

# -- a number of the wrong type is an InvalidTypeError naming its argument -------------------------------------------
# README ("errors") and exceptions.py promise it: 2.5 or None for an int, a str for a number, is an InvalidTypeError
# (a TypeError and an InvalidValueError, with .arg). These arguments raised a plain TypeError instead: no .arg, and
# missed by `except gm.InvalidValueError` / `except ValueError`, which catch every other argument's wrong number.


def _event_with_visual() -> gm.MultiModalEvent:
    event = gm.MultiModalEvent(1)
    event.add_component(gm.ModalFeatures(np.ones(18), "visual"))
    return event


def _record(reward=0.0, event_id=0) -> gm.Experience:
    model = gm.LearnableMultiModal(seed=0)
    exp = model.record_fusion(_event_with_visual())
    return gm.Experience(exp.embeddings, exp.mask, exp.fused, exp.pair_strengths, reward, event_id, None)


def _buffer_of_one() -> gm.ExperienceBuffer:
    model = gm.LearnableMultiModal(seed=0)
    model.record_fusion(_event_with_visual())
    return model.experience


def _plot(tmp_path):
    pytest.importorskip("matplotlib")
    from grapheme_multimodal import plotting

    return lambda: plotting.plot_history([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}],
                                         tmp_path / "curves.png", best_epoch=1.5)


CASES = {
    "set_num_threads(2.5)": ("n", lambda tmp: gm.set_num_threads(2.5)),
    "set_num_threads(None)": ("n", lambda tmp: gm.set_num_threads(None)),
    "set_num_threads('2')": ("n", lambda tmp: gm.set_num_threads("2")),
    "SpatialRegion(x='a')": ("x", lambda tmp: gm.SpatialRegion("a", 0, 1, 1)),
    "ModalFeatures(confidence='0.5')": ("confidence", lambda tmp: gm.ModalFeatures(np.ones(3), "visual", confidence="0.5")),
    "ModalGraph(confidence=None)": (
        "confidence", lambda tmp: gm.ModalGraph(gm.Graph.from_text("a"), "linguistic", confidence=None)),
    "ModalFeatures(timestamp='noon')": ("timestamp", lambda tmp: gm.ModalFeatures(np.ones(3), "visual", timestamp="noon")),
    "MultiModalEvent(1.5)": ("id", lambda tmp: gm.MultiModalEvent(1.5)),
    "CrossModalBinding source node 1.5": ("source", lambda tmp: gm.CrossModalBinding(
        ("visual", 1.5), ("auditory", 0), 0.5, "reference")),
    "CrossModalBinding(strength='high')": ("strength", lambda tmp: gm.CrossModalBinding(
        ("visual", 0), ("auditory", 0), "high", "reference")),
    "record_fusion(reward='1')": ("reward", lambda tmp: gm.LearnableMultiModal(seed=0).record_fusion(
        _event_with_visual(), reward="1")),
    "ExperienceBuffer.append(reward=True)": ("experience.reward", lambda tmp: gm.ExperienceBuffer(4).append(
        _record(reward=True))),
    "ExperienceBuffer.append(event_id=True)": ("experience.event_id", lambda tmp: gm.ExperienceBuffer(4).append(
        _record(event_id=True))),
    "buffer[0.0]": ("position", lambda tmp: _buffer_of_one()[0.0]),
    "train_step(weights={'contrastive': '1'})": ("weights", lambda tmp: gm.LearnableMultiModal(seed=0).train_step(
        {"visual": np.random.default_rng(0).normal(size=(4, 18))}, weights={"contrastive": "1"})),
    "MultimodalEmbedder(verbose=1.5).fit": ("verbose", lambda tmp: _estimator(verbose=1.5)),
    "plot_history(best_epoch=1.5)": ("best_epoch", lambda tmp: _plot(tmp)()),
}


def _estimator(**params):
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    return MultimodalEmbedder(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,), **params).fit(
        [rng.normal(size=(20, 3)), rng.normal(size=(20, 2))])


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_number_of_the_wrong_type_is_an_invalid_type_error_naming_its_argument(case, tmp_path):
    arg, call = CASES[case]
    before = gm.get_num_threads()
    try:
        with pytest.raises(InvalidTypeError) as info:
            call(tmp_path)
    finally:
        gm.set_num_threads(before)
    err = info.value
    assert isinstance(err, TypeError) and isinstance(err, gm.InvalidValueError) and isinstance(err, ValueError)
    assert err.arg == arg, (err.arg, str(err))
    assert str(err).startswith(arg), str(err)  # the message names it first, as before
