"""A fourth hostile-use audit of grapheme_multimodal.distributed: what the
first three (test_trust_distributed*.py, test_trust_ray_audit.py) left
out. Each test says what a user saw before the fix."""

import gc
import logging
import os

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


@pytest.fixture
def quiet_ray_data(monkeypatch):
    """Ray Data's loggers off for a test whose dataset fails in an actor (their
    records' tracebacks would keep the failed pool alive; see test_distributed)."""
    for name in _RAY_DATA_ERROR_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    yield
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected


def images(n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 20)).astype(np.float32)


def arrow_images(x, kind=pa.list_(pa.float32())):
    """A dataset of ``id`` and ``img`` (rows of ``x`` as Arrow ``kind``)."""
    return ray.data.from_arrow(pa.table({"id": np.arange(len(x)), "img": pa.array([list(r) for r in x], type=kind)}))


# ------------------------------------------------------------- nulls inside vectors
NULL_ITEM_TYPES = [pa.list_(pa.float32()), pa.large_list(pa.float64()), pa.list_(pa.float32(), 20), pa.list_(pa.int64())]


def with_null_item(kind, row=2, position=5):
    """``arrow_images`` of ``kind`` whose ``row`` holds a null at ``position`` of its vector."""
    rows = [[int(v * 10) if pa.types.is_integer(kind.value_type) else float(v) for v in r] for r in images()]
    rows[row][position] = None
    return ray.data.from_arrow(pa.table({"id": np.arange(6), "img": pa.array(rows, type=kind)}))


@pytest.mark.parametrize("kind", NULL_ITEM_TYPES, ids=str)
def test_fit_names_a_null_inside_a_vector_a_null_not_nan_or_inf(kind):
    """A null item inside a row's vector (one missing value) became NaN on
    the way to numpy, and fit said the column "holds NaN or inf in row 2":
    the user searched the data for a NaN it did not hold."""
    model = small_model()
    before = {k: v.tobytes() for k, v in model.state_dict().items()}
    with pytest.raises(gm.InvalidValueError, match=r"^data: column 'img' \(visual\) holds a null \(a missing value\) at "
                                                   r"position 5 of its vector in row 2; expected a number at every position "
                                                   r"\(the whole vector null where a row lacks the modality\)$") as info:
        distributed.fit(model, with_null_item(kind), num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)
    assert info.value.arg == "data"
    assert {k: v.tobytes() for k, v in model.state_dict().items()} == before


def test_fit_names_a_none_inside_a_pandas_list_a_null():
    """The same None in a list of a pandas DataFrame (its block stays pandas)."""
    import pandas as pd

    rows = [list(map(float, r)) for r in images()]
    rows[4][0] = None
    ds = ray.data.from_pandas(pd.DataFrame({"img": rows}))
    with pytest.raises(gm.InvalidValueError, match=r"^data: column 'img' \(visual\) holds a null \(a missing value\) at "
                                                   r"position 0 of its vector in row 4;"):
        distributed.fit(small_model(), ds, num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)


@pytest.mark.parametrize("kind", NULL_ITEM_TYPES[:3:2], ids=str)
def test_embed_dataset_names_a_null_inside_a_vector_a_null_not_nan_or_inf(kind, quiet_ray_data):
    """As fit: the actors said "holds NaN or inf in a row of a batch"."""
    out = distributed.embed_dataset(with_null_item(kind), small_model(), {"visual": "img"}, batch_size=4, num_actors=1)
    with pytest.raises(gm.InvalidValueError) as info:
        out.materialize()
    error = info.value.cause if hasattr(info.value, "cause") else info.value
    assert str(error).startswith("column 'img' (visual) holds a null (a missing value) at position 5 of its vector in a "
                                 "row of a batch of 4 (its row 2; Ray Data does not number the dataset's rows), whose "
                                 "other columns are {'id': 2}; expected a number at every position"), str(error)
    assert error.arg == "img"
    del info, error
