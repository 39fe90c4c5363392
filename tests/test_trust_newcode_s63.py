"""Hostile review of the code added in session 62 (portable pickles, folder
locks and anchored paths, warning filters, the training record, the CLI's
stand-ins, per-call fast paths). Each test says what a user saw before the fix."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import Experience
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


def test_a_slotted_subclass_pickles_its_fields_portably() -> None:
    # its fields are the package's arrays, pickled as bytes, dtype and shape (any numpy major reads them)
    data = pickle.dumps(_slotted_experience(), protocol=4)
    assert b"_reconstruct" not in data and b"_array" in data
