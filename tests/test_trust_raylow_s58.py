"""The Ray layer on the lowest Ray the package allows (``ray[data]>=2.50``:
2.51 is what pip gives Python 3.9) as on the main one (2.60): what users of
Ray 2.51 met that users of 2.60 did not. Each test says what was seen before
the fix; each runs on both Rays."""

import gc

import numpy as np

from test_fit import small_model, synthetic
from test_trust_ray_s57 import distributed, ray, ray_test  # Ray imported (or not) as the CI asks
from test_trust_ray_s58 import _cpus_freed

if distributed is not None:
    import pyarrow as pa  # Ray Data's own dependency
else:
    pa = None


@ray_test
def test_an_embedding_run_that_succeeded_frees_its_actors_without_the_garbage_collector():
    """With Ray 2.51, ``embed_dataset(...).take_all()`` (or any run read to
    its end) kept its actors, and their CPUs, until Python's garbage
    collector ran: Ray Data 2.51 drops its handles to a finished pool's
    actors, which its reference cycles keep. A following fixed pool or
    distributed ``fit`` waited for them (the Ray suite's clean-up check saw
    a CPU still held a minute later). Ray 2.60 frees them itself; the
    package now kills its pools' actors when a run ends, on both."""
    x = synthetic(32)["visual"]
    table = pa.table({"id": np.arange(32), "v": pa.array([list(r) for r in x], pa.list_(pa.float32()))})
    ds = ray.data.from_arrow(table)
    enabled = gc.isenabled()
    gc.disable()
    try:
        for actors in (1, 2, None):
            out = distributed.embed_dataset(ds, small_model(), {"visual": "v"}, num_actors=actors, batch_size=8)
            assert len(out.take_all()) == 32
            assert _cpus_freed(), (actors, ray.available_resources())
        out = distributed.embed_dataset(ds, small_model(), {"visual": "v"}, num_actors=1, batch_size=8)
        assert sum(len(b["fused"]) for b in out.iter_batches(batch_format="numpy")) == 32
        assert _cpus_freed(), ray.available_resources()
        # the result as before: the model's fusion of the rows
        rows = sorted(distributed.embed_dataset(ds, small_model(), {"visual": "v"}, num_actors=1).take_all(),
                      key=lambda r: r["id"])
        assert np.stack([r["fused"] for r in rows]).tobytes() == small_model().encode_and_fuse({"visual": x})[1].tobytes()
        assert _cpus_freed(), ray.available_resources()
    finally:
        if enabled:
            gc.enable()
