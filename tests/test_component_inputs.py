"""The components form of a Batch: row indices and confidences given as numpy
arrays or as lists give the same losses as the events they came from, and
bad indices are clear errors."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.batch import event_components

from conftest import text_event


def _events():
    events = [text_event(i, linguistic="word " * (i % 4 + 1), visual="x" * (i % 3 + 1)) for i in range(6)]
    events[2].add_component(gm.ModalGraph(gm.Graph.from_text("extra"), "visual", confidence=0.25))
    return events


def test_arrays_and_lists_match_the_events():
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, seed=3)
    events = _events()
    tables = event_components(model.config, events)
    as_lists = [None if t is None else (t[0], t[1].tolist(), t[2].tolist()) for t in tables]
    from_events = model.losses(gm.Batch.from_events(events))
    assert model.losses(gm.Batch(components=(len(events), tables))) == from_events
    assert model.losses(gm.Batch(components=(len(events), as_lists))) == from_events
    # Other dtypes and strided arrays are converted, not misread.
    strided = [
        None if t is None else (np.asfortranarray(t[0]), t[1].astype(np.int32), t[2].astype(np.float64)[::-1][::-1])
        for t in tables
    ]
    assert model.losses(gm.Batch(components=(len(events), strided))) == from_events


def test_negative_row_index_is_a_value_error():
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=16, num_heads=2, seed=3)
    tables = event_components(model.config, _events())
    m = next(i for i, t in enumerate(tables) if t is not None)
    x, rows, conf = tables[m]
    tables[m] = (x, np.where(rows == rows[0], -1, rows), conf)
    with pytest.raises(ValueError, match=r"components\['\w+'\]\.rows: row index -1 is negative"):
        model.losses(gm.Batch(components=(6, tables)))
