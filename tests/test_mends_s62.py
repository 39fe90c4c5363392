"""Mends of session 62: arrays pickled portably keep their memory order;
an average's arrays unpickled are not copied a second time."""

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal._portable import portable

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def _fortran_arrays():
    return [np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.asfortranarray(np.arange(24, dtype=">i4").reshape(2, 3, 4)),
            np.asfortranarray(np.zeros((2, 3), "M8[ns]")), np.asfortranarray(np.array([["a", "b"], ["c", "d"]], dtype=object))]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fortran_ordered_arrays_come_back_fortran_ordered(protocol):
    """They came back C-ordered (numpy's own pickle keeps the order)."""
    for array in _fortran_arrays():
        back = pickle.loads(pickle.dumps(portable(array), protocol))
        assert back.flags.f_contiguous and not back.flags.c_contiguous, (array.dtype, back.flags)
        assert back.flags.writeable and back.dtype == array.dtype and np.array_equal(back, array)
        assert pickle.loads(pickle.dumps(array, protocol)).flags.f_contiguous  # as numpy's own


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_c_ordered_and_strided_arrays_pickle_as_before(protocol):
    """Only a Fortran-ordered array names its order: the others' pickles are
    those older versions read (data, dtype, shape), and come back C-ordered."""
    for array in (np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)[:, ::2], np.arange(3.0), np.array(2.0),
                  np.asfortranarray(np.arange(12.0).reshape(3, 4))[:, ::2]):
        function, arguments = portable(array).__reduce_ex__(protocol)
        assert len(arguments) == 3, arguments
        back = pickle.loads(pickle.dumps(portable(array), protocol))
        assert back.flags.c_contiguous and np.array_equal(back, array)


def test_a_model_objects_fortran_arrays_keep_their_order_through_pickle_and_copy():
    """Through a class that pickles so (an Experience): pickle, copy.copy and copy.deepcopy."""
    embeddings = np.asfortranarray(np.arange(14.0, dtype=np.float32).reshape(7, 2))
    experience = gm.Experience(embeddings=embeddings, mask=np.ones(7, bool), fused=np.zeros(2, np.float32),
                               pair_strengths=np.asfortranarray(np.eye(7, dtype=np.float32)[:, ::-1].copy(order="F")),
                               reward=1.0)
    for twin in (pickle.loads(pickle.dumps(experience)), copy.copy(experience), copy.deepcopy(experience)):
        assert twin == experience
        assert twin.embeddings.flags.f_contiguous and not twin.embeddings.flags.c_contiguous
        assert twin.pair_strengths.flags.f_contiguous
