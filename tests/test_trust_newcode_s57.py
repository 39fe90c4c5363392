"""Defects found by a hostile review of the code added in 55d2907..main (s57):
each test fails before its fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import training


def _small() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 5}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _rows(n: int = 16) -> dict:
    return {"visual": np.random.default_rng(0).normal(size=(n, 5))}


class _ClosingFails(training.LocalSteps):
    def close(self):
        super().close()
        raise RuntimeError("cannot reach the workers")


@pytest.mark.parametrize("how", ["training.fit", "model.fit"])
def test_a_failure_to_end_the_steps_is_said_at_the_callers_line(how) -> None:
    """Before: the RuntimeWarning said of a failed ``stepper.close()`` was
    raised with ``stacklevel=3`` counted from ``fit``, which the new
    ``_scopes_bound`` wrapper put one frame further from the caller: it
    pointed at a line of grapheme_multimodal/training.py (and under the
    "default" filter was said once per that line, for every caller)."""
    model = _small()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        if how == "training.fit":
            training.fit(model, _rows(), epochs=1, progress=False, _steps=_ClosingFails)
        else:
            model.fit(_rows(), epochs=1, progress=False, _steps=_ClosingFails)
    closing = [w for w in said if "ending its training steps" in str(w.message)]
    assert len(closing) == 1 and closing[0].filename == __file__, [(w.filename, str(w.message)[:80]) for w in said]
    assert model.epochs_trained == 1


@pytest.mark.parametrize("kind, said", [
    (10**5000, "got the state of bit_generator 1.000e+5000 (an int of 5001 digits)"),
    (None, "got the state of bit_generator None"),
    ("x" * 100, "got the state of bit_generator '" + "x" * 39 + "..."),
], ids=["int of 5001 digits", "None", "long str"])
def test_a_buffer_state_of_another_generator_is_refused_naming_what_it_holds(kind, said) -> None:
    """Before: an rng_state whose ``bit_generator`` was an int of 5,001
    digits was refused with Python's own "Exceeds the limit (4300 digits)
    for integer string conversion" in place of the message naming
    rng_state; one holding ``None`` was said to be "a mapping without
    'bit_generator'"; a long name was cut without a mark."""
    tensors, meta = gm.ExperienceBuffer(capacity=4, seed=1).state()
    meta = dict(meta, rng_state={"bit_generator": kind, "state": {}})
    with pytest.raises(gm.InvalidValueError) as err:
        gm.ExperienceBuffer.from_state(tensors, meta)
    assert "rng_state: expected a PCG64 generator state, " + said in str(err.value), str(err.value)


def test_a_frame_of_repeated_names_that_are_not_str_is_read_by_position() -> None:
    """Before: the model's calls refused ``pd.concat([a, b], axis=1)`` of two
    unnamed frames (columns ``0, 1, 0, 1``) "(the model learns a frame's
    column names ...)", though it learns no names that are not all str:
    such names are positions. Repeated str names are still refused."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    joined = pd.concat([pd.DataFrame(rng.normal(size=(8, 2))), pd.DataFrame(rng.normal(size=(8, 2)))], axis=1)
    assert list(joined.columns) == [0, 1, 0, 1]
    model.fit({"visual": joined}, epochs=1, progress=False)
    np.testing.assert_array_equal(model.encode({"visual": joined}), model.encode({"visual": joined.to_numpy()}))
    named = pd.DataFrame(rng.normal(size=(8, 4)), columns=["a", "b", "a", "c"])
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(gm.InvalidValueError, match=r"^data\['visual'\]: column names \['a'\] appear more than once"):
        model.fit({"visual": named}, epochs=1, progress=False)
    assert model.epochs_trained == 1 and all(v.tobytes() == before[k].tobytes() for k, v in model.state_dict().items())


def test_the_progress_bars_stream_copies_as_a_plain_object() -> None:
    """Before: ``copy.copy`` (or ``copy.deepcopy``, ``pickle``) of the
    stream fit's progress bar draws on recursed until RecursionError: its
    ``__getattr__`` passthrough read ``self._stream`` on an instance not yet
    holding it, which came back to ``__getattr__``."""
    import copy
    import io

    stream = io.StringIO()
    wrapped = training._BarStream(stream)
    copied = copy.copy(wrapped)
    copied.write("x")
    assert stream.getvalue() == "x" and copied == stream
    assert not hasattr(training._BarStream.__new__(training._BarStream), "isatty")
    assert wrapped.getvalue() == "x"  # the passthrough still reads the stream's own attributes


def test_a_pyarrow_table_of_repeated_names_is_read_by_position() -> None:
    """Before: the model's calls refused a pyarrow table whose names repeat,
    "(the model learns a frame's column names ...)", though the model
    learns no pyarrow table's names (read by position, as before today)."""
    pa = pytest.importorskip("pyarrow")
    model = gm.LearnableMultiModal(input_dims={"visual": 2}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 2))
    table = pa.Table.from_arrays([pa.array(x[:, 0]), pa.array(x[:, 1])], names=["a", "a"])
    np.testing.assert_array_equal(model.encode({"visual": table}), model.encode({"visual": x}))
