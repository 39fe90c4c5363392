import numpy as np
import pytest

import grapheme_multimodal as gm


@pytest.fixture
def model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def text_event(event_id: int, **texts: str) -> gm.MultiModalEvent:
    """An event with one text graph per named modality."""
    event = gm.MultiModalEvent(event_id)
    for modality, text in texts.items():
        event.add_component(gm.ModalGraph(gm.Graph.from_text(text), modality))
    return event
