"""A hostile-use audit of grapheme_multimodal.distributed's Ray scale-out,
as an engineer scaling out pushes it: numpy's ints for the CPUs, and
num_workers and batch_size far beyond the cluster. Each test says what a
user saw before the fix."""

import os

import numpy as np
import pytest

if os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
    import ray
else:
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')

import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from test_fit import small_model, synthetic  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]


def test_embed_dataset_gives_ray_a_python_int_for_cpus_per_actor(monkeypatch):
    """cpus_per_actor=np.int64(2) passed the package's check (numpy's ints
    are ints there, as for num_actors and batch_size) and went on to Ray as
    it was: "TypeError: The type of keyword 'num_cpus' must be (<class
    'float'>, <class 'int'>, ...)", naming no argument of embed_dataset.
    (Ray let np.int64(1) through; an actor of 2 CPUs takes all of this
    test cluster's, so the test reads what Ray is given.)"""
    given = []
    real = ray.data.Dataset.map_batches

    def recording(self, *args, **kwargs):
        given.append(kwargs.get("num_cpus"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ray.data.Dataset, "map_batches", recording)
    model = small_model()
    x = np.random.default_rng(0).standard_normal((6, 20)).astype(np.float32)
    out = distributed.embed_dataset(ray.data.from_numpy(x).rename_columns({"data": "img"}), model, {"visual": "img"},
                                    num_actors=np.int64(1), cpus_per_actor=np.int64(1), batch_size=np.int64(4))
    assert given == [1] and type(given[0]) is int
    out.context.execution_options.preserve_order = True
    fused = np.stack([row["fused"] for row in out.take_all()])
    assert fused.tobytes() == model.encode_and_fuse({"visual": x})[1].tobytes()


@pytest.mark.parametrize("objectives", [None, {"neighborhood": 1.0}])
def test_num_workers_and_batch_size_beyond_any_cluster_are_refused_by_the_cluster_check(objectives):
    """num_workers=10**12 with batch_size=10**13 listed the bounds of 10**12
    shares to count them (the draw-count check; the neighborhood warning
    too): a bare MemoryError, where num_workers=10**12 alone is refused,
    naming num_workers, as more workers than the cluster holds."""
    data = {k: v for k, v in synthetic(40).items() if k != "linguistic"}
    model = small_model()
    before = {k: v.tobytes() for k, v in model.state_dict().items()}
    with pytest.raises(gm.InvalidValueError, match=r"^num_workers: 1000000000000 workers of 1 CPU each do not fit") as info:
        distributed.fit(model, data, num_workers=10**12, batch_size=10**13, epochs=1, objectives=objectives, progress=False)
    assert info.value.arg == "num_workers"
    assert {k: v.tobytes() for k, v in model.state_dict().items()} == before


def test_shares_counted_without_listing_them_are_the_shares_of_a_step():
    """The count the checks read is the number of shares a step splits its
    batch into, and the smallest share is the one the warning names."""
    for rows in range(0, 40):
        for workers in range(1, 12):
            bounds = distributed._share_bounds(rows, workers)
            assert distributed._share_count(rows, workers) == len(bounds) - 1
            if rows:
                assert rows // distributed._share_count(rows, workers) == np.diff(bounds).min()
