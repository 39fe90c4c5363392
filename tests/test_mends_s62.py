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


def _average(rows=256, tensors=4):
    from grapheme_multimodal.averaging import WeightAverage

    rng = np.random.default_rng(0)
    mean = {f"w{i}": rng.normal(size=(rows, 256)) for i in range(tensors)}
    return WeightAverage(decay=0.9, count=3, mean=mean, trained={k: v.astype(np.float32) for k, v in mean.items()})


@pytest.mark.parametrize("protocol", [3, 4, 5])  # (2 pickles bytes as text: more transient copies)
def test_an_unpickled_average_holds_its_arrays_once(protocol):
    """Each unpickled array was copied again as it was frozen: the peak was
    three times the average (the unpickler's memo holds the pickled bytes
    until it ends, the arrays made of them, their copies), now twice, and
    it is the same average, read-only."""
    import tracemalloc

    from grapheme_multimodal.averaging import _owned

    average = _average()
    data = pickle.dumps(average, protocol)
    held = sum(v.nbytes for part in (average.mean, average.trained) for v in part.values())
    tracemalloc.start()
    try:
        back = pickle.loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * held, (peak, held)  # was about 3 * held
    assert back == average
    for part in (back.mean, back.trained):
        for value in part.values():
            assert not value.flags.writeable and _owned(value)


def test_an_average_copied_or_deep_copied_is_equal_and_read_only():
    average = _average(rows=4)
    for twin in (copy.copy(average), copy.deepcopy(average), pickle.loads(pickle.dumps(average, 5))):
        assert twin == average
        assert all(not v.flags.writeable for part in (twin.mean, twin.trained) for v in part.values())
    deep = copy.deepcopy(average)
    assert all(deep.mean[k] is not average.mean[k] for k in average.mean)


def test_int_of_digits_reads_signs_and_leading_zeros():
    from grapheme_multimodal._validation import int_of_digits

    assert [int_of_digits(t) for t in ("0", "000", "+0007", "-0012", "42")] == [0, 0, 7, -12, 42]
    assert int_of_digits("0" * 5000 + "9" * 20, most_digits=20) == int("9" * 20)
    with pytest.raises(ValueError, match=r"^a number of 21 digits$"):
        int_of_digits("-" + "1" * 21, most_digits=20)


@pytest.mark.skipif(not hasattr(__import__("sys"), "set_int_max_str_digits"), reason="Python 3.11+: int() reads any length before")
def test_an_int_flag_is_refused_past_the_limit_int_reads_now(monkeypatch):
    """The limit is Python's as set (``sys.set_int_max_str_digits``), not 4,300
    written in: under a lower one, ``int()``'s own error came through."""
    import argparse
    import sys

    from grapheme_multimodal.cli import _int

    limit = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(640)
        assert _int("0" * 1000 + "7" * 640) == int("7" * 640)
        with pytest.raises(argparse.ArgumentTypeError, match=r"\(a number of 700 digits, beyond any value a flag takes\)$"):
            _int("7" * 700)
    finally:
        sys.set_int_max_str_digits(limit)


def test_a_thread_setting_is_read_past_its_leading_zeros_and_sign():
    from grapheme_multimodal._environment import _readable

    assert _readable(" +" + "0" * 5000 + "4 ", lambda n: n > 0)
    assert not _readable("1" * 21, lambda n: n > 0) and not _readable(str(2**64), lambda n: True)
    assert _readable(str(2**64 - 1), lambda n: True) and not _readable("0", lambda n: n > 0)
