"""A third hostile-use audit of grapheme_multimodal.distributed: what the
first two (test_trust_distributed.py, test_trust_distributed_second.py)
missed. Each test says what a user saw before the fix."""

import gc
import logging
import os
import threading

import numpy as np
import pytest

if os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
    import ray
else:
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
import pyarrow as pa  # noqa: E402  (Ray Data's dependency)

import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from grapheme_multimodal.cli import _RAY_DATA_ERROR_LOGGERS  # noqa: E402
from test_fit import small_model  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]


def float64_rows(rows):
    """A dataset of ``id`` and ``img`` (list<double>, as from_items makes of Python floats)."""
    return ray.data.from_arrow(pa.table({"id": np.arange(len(rows)), "img": pa.array([list(r) for r in rows], type=pa.list_(pa.float64()))}))


def test_a_finite_value_too_large_for_float32_is_named_not_called_nan_or_inf(monkeypatch):
    """A list<double> column holding 1e300 was cast to float32 on reading,
    and both fit and embed_dataset said it "holds NaN or inf": the user
    searched the data for a NaN it did not hold. model.fit names the value."""
    img = np.random.default_rng(0).standard_normal((40, 20))
    img[7, 3] = 1e300
    with pytest.raises(gm.NonFiniteError, match=r"^data: column 'img' \(visual\) holds 1e\+300, too large for float32 "
                                                r"\(largest 3\.4e\+38\) in row 7; expected finite float32 numbers"):
        distributed.fit(small_model(), float64_rows(img), num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)

    for name in _RAY_DATA_ERROR_LOGGERS:  # pytest keeps their records, whose tracebacks would keep the failed pool alive
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    out = distributed.embed_dataset(float64_rows(img), small_model(), {"visual": "img"}, batch_size=16, num_actors=1)
    with pytest.raises(gm.NonFiniteError) as info:
        out.materialize()
    error = info.value.cause if hasattr(info.value, "cause") else info.value
    assert str(error).startswith("column 'img' (visual) holds 1e+300, too large for float32 (largest 3.4e+38) in a row "
                                 "of a batch of 16 (its row 7;"), str(error)
    assert "whose other columns are {'id': 7}" in str(error)
    del info, error
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected


def test_a_float64_column_below_float32s_range_is_refused_as_model_fit_refuses_it():
    """A list<double> column was cast to float32 while the dataset was read:
    values of 1e-45 became a column of zeros (and 0, its neighbour) that fit
    trained on without a word, where model.fit (and a tensor column) refused
    the same numbers. Now the model casts them, as from arrays."""
    img = np.random.default_rng(0).standard_normal((40, 20)) * 1e-45
    with pytest.raises(gm.InvalidValueError, match=r"below float32's smallest normal number"):
        small_model().fit({"visual": img}, epochs=1, progress=False)
    model = small_model()
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=r"below float32's smallest normal number"):
        distributed.fit(model, float64_rows(img), num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())


def test_a_subclassed_model_that_cannot_be_pickled_is_refused_naming_checkpoint():
    """A subclass goes to the actors pickled, as it is; one holding a lock
    (a user's attribute) failed in Ray's ray.put with a report of many lines
    about "the put value", naming no argument of embed_dataset's."""
    class Guarded(gm.LearnableMultiModal):
        pass

    model = Guarded(embed_dim=16, hidden_dim=32, num_heads=2, seed=0, input_dims={"visual": 20})
    model.guard = threading.Lock()
    ds = float64_rows(np.ones((4, 20)))
    with pytest.raises(TypeError, match=r"^checkpoint: a Guarded \(a subclass of LearnableMultiModal\) .* cannot be "
                                        r"\(cannot pickle '_thread.lock' object\); expected .*\(model\.save\)$"):
        distributed.embed_dataset(ds, model, {"visual": "img"}, num_actors=1)


def test_a_nan_for_a_missing_vector_says_that_a_missing_row_is_null():
    """pandas marks a missing value NaN; in a column of lists Arrow keeps it as
    a number, and the refusal said only "got values of type float"."""
    import pandas as pd

    rows = [list(np.linspace(0, 1, 20) + i) for i in range(6)]
    with_nan = ray.data.from_pandas(pd.DataFrame({"img": rows[:2] + [np.nan] + rows[3:]}))
    with pytest.raises(TypeError, match=r"column 'img' \(visual\): expected vectors of 20 numbers \(or texts\) per row, "
                                        r"got values of type float; a row without the vector takes None \(null\), not NaN"):
        distributed.fit(small_model(), with_nan, num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)
    with_none = ray.data.from_pandas(pd.DataFrame({"img": rows[:2] + [None] + rows[3:]}))  # the remedy, taken
    distributed.fit(small_model(), with_none, num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)


def test_a_refused_embed_dataset_does_not_warn_of_untrained_modalities_first():
    """The untrained-modality warning came before the checks of outputs,
    batch_size and the actors: a call refused for its batch_size had warned."""
    import warnings

    rng = np.random.default_rng(0)
    model = small_model()
    model.fit({"auditory": rng.normal(size=(8, 12))}, epochs=1, batch_size=4, progress=False)  # visual never trained
    ds = float64_rows(np.ones((4, 20)))
    for bad in ({"batch_size": 0}, {"outputs": ("nothing",)}, {"num_actors": 0}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises((ValueError, TypeError)):
                distributed.embed_dataset(ds, model, {"visual": "img"}, **bad)
        assert not [w for w in caught if issubclass(w.category, gm.UntrainedModalityWarning)], bad
    with pytest.warns(gm.UntrainedModalityWarning, match="'visual'"):  # a call that goes on still says it
        distributed.embed_dataset(ds, model, {"visual": "img"}, num_actors=1)
