"""A fourth hostile-use audit of grapheme_multimodal.distributed: an actor
pool that starves the dataset's own steps, nulls inside vectors, and the
odd datasets and column types the first three audits
(test_trust_distributed*.py, test_trust_ray_audit.py) left out. Each test
says what a user saw before the fix."""

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
from test_fit import small_model  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]


def images(n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 20)).astype(np.float32)


def arrow_images(x, kind=pa.list_(pa.float32())):
    """A dataset of ``id`` and ``img`` (rows of ``x`` as Arrow ``kind``)."""
    return ray.data.from_arrow(pa.table({"id": np.arange(len(x)), "img": pa.array([list(r) for r in x], type=kind)}))


def fused_rows(out, timeout=60):
    """``out``'s fused embeddings in ``id`` order, read in a thread that must
    end within ``timeout`` seconds: a dataset that waits forever fails the
    test instead of hanging the run."""
    got = []
    reader = threading.Thread(target=lambda: got.extend(out.take_all()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"the embedded dataset did not finish within {timeout} s"
    return np.stack([r["fused"] for r in sorted(got, key=lambda r: r["id"])])


# -------------------------------------------------- the actors and the steps before them
def test_actors_that_leave_no_cpu_for_the_steps_before_them_are_refused_not_waited_for():
    """cpus_per_actor=2 on this 2-CPU cluster behind a rename_columns (a
    Project step of its own: Ray Data fuses it into the actors only when
    their CPUs match its 1) hung the dataset forever: the pool starts first
    and holds every CPU, and the step that makes its rows never ran. Two
    actors of 1 CPU behind a filter (not fused: it may drop rows) hung the
    same way. Both are refused at the call, naming the argument and what
    fits; what the message offers runs to the end."""
    x = images()
    renamed = arrow_images(x).rename_columns({"img": "pic"})
    with pytest.raises(gm.InvalidValueError, match=r"^cpus_per_actor: 1 actor of 2 CPUs leaves no room on this Ray cluster "
                                                   r"\(its nodes: 2 CPUs\) for the steps of ds before embedding \(Project\), "
                                                   r"which need 1 CPU for a task: .*; expected cpus_per_actor at most 1, or "
                                                   r"ds\.materialize\(\) first") as info:
        distributed.embed_dataset(renamed, small_model(), {"visual": "pic"}, cpus_per_actor=2)
    assert info.value.arg == "cpus_per_actor"
    filtered = arrow_images(x).filter(lambda row: True)
    with pytest.raises(gm.InvalidValueError, match=r"^num_actors: 2 actors of 1 CPU each leave no room .*\(Filter\(<lambda>\)\)"
                                                   r".*; expected num_actors at most 1, or ds\.materialize\(\) first") as info:
        distributed.embed_dataset(filtered, small_model(), {"visual": "img"}, num_actors=2)
    assert info.value.arg == "num_actors"

    model = small_model()
    _, expected = model.encode_and_fuse({"visual": x})
    out = distributed.embed_dataset(renamed.materialize(), model, {"visual": "pic"}, cpus_per_actor=2)
    assert fused_rows(out).tobytes() == expected.tobytes()
    out = distributed.embed_dataset(filtered, model, {"visual": "img"}, num_actors=1)
    assert fused_rows(out).tobytes() == expected.tobytes()


def test_steps_that_take_no_cpu_of_their_own_leave_the_actors_every_cpu():
    """What runs in the actors (a rename fused into them), or runs no task
    (a limit, a union), or asks for no CPU, is no reason to refuse: these
    finish with actors holding every CPU of the cluster."""
    x = images()
    model = small_model()
    _, expected = model.encode_and_fuse({"visual": x})
    fused = arrow_images(x).rename_columns({"img": "pic"})  # fused into actors of 1 CPU
    assert fused_rows(distributed.embed_dataset(fused, model, {"visual": "pic"}, num_actors=2)).tobytes() == expected.tobytes()
    for ds in (arrow_images(x).limit(6), arrow_images(x).map_batches(lambda b: b, num_cpus=0)):
        out = distributed.embed_dataset(ds, model, {"visual": "img"}, cpus_per_actor=2)
        assert fused_rows(out).tobytes() == expected.tobytes()


@pytest.mark.parametrize("nodes, options, expected", [
    ([4, 2], dict(cpus_per_actor=4), None),  # the filter's task runs on the node of 2
    ([4, 4], dict(num_actors=2, cpus_per_actor=4), r"^num_actors: 2 actors of 4 CPUs each leave no room .*\(its nodes: 4, 4 CPUs\).*"
                                                   r"expected num_actors at most 1, or ds\.materialize\(\) first"),
    ([2, 2], dict(num_actors=3), None),
    ([2, 2], dict(num_actors=4), r"^num_actors: 4 actors of 1 CPU each leave no room .*expected num_actors at most 3, or"),
    ([3], dict(cpus_per_actor=3), r"^cpus_per_actor: 1 actor of 3 CPUs leaves .*expected cpus_per_actor at most 2, or"),
])
def test_the_room_left_for_the_steps_before_the_actors_is_counted_per_node(monkeypatch, nodes, options, expected):
    """On a cluster of several nodes the steps' task needs a CPU on one of
    them, beside the actors: what fits is found node by node, and the
    error offers the most that fits (nothing runs here: Ray's nodes are
    those of the test)."""
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": float(c)}} for c in nodes])
    ds = arrow_images(images()).filter(lambda row: True)
    if expected is None:
        distributed.embed_dataset(ds, small_model(), {"visual": "img"}, **options)
    else:
        with pytest.raises(gm.InvalidValueError, match=expected):
            distributed.embed_dataset(ds, small_model(), {"visual": "img"}, **options)


def test_fit_reads_a_dataset_with_steps_before_its_workers_take_every_cpu():
    """fit reads its dataset (steps and all) before any worker reserves a
    CPU, so the workers may take every CPU: it is not refused, and it
    trains as on the dataset's arrays."""
    x = images(40)
    ds = ray.data.from_numpy(x).rename_columns({"data": "img"}).filter(lambda row: True)
    done = []
    options = dict(epochs=1, batch_size=8, progress=False)
    for kw in (dict(num_workers=1, cpus_per_worker=2), dict(num_workers=2)):
        model, reference = small_model(), small_model()
        worker = threading.Thread(target=lambda: done.append(distributed.fit(model, ds, columns={"visual": "img"}, **kw, **options)),
                                  daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), f"fit with {kw} did not finish within 60 s"
        distributed.fit(reference, {"visual": x}, **kw, **options)
        for name, value in reference.state_dict().items():
            assert value.tobytes() == model.state_dict()[name].tobytes(), name
    assert len(done) == 2


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
