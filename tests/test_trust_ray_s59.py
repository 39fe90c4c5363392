"""A hostile check of the Ray scale-out layer (s59): an embedding actor
whose process dies, and ``embed_dataset`` / ``fit`` called from a metric of
a distributed fit whose workers hold the cluster's CPUs. Each test says
what a user saw before the fix."""

import copy
import os
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_fit import small_model, synthetic
from test_trust_ray_s57 import distributed, ray, ray_test, same, state  # Ray imported (or not) as the CI asks
from test_trust_ray_s58 import _cpus_freed, tensors

if distributed is not None:
    import pyarrow as pa  # Ray Data's own dependency
else:
    pa = None


def _killing_its_actor(model, marker, every_batch):
    """``model`` as a subclass (shipped to the actors as it is) whose
    ``encode_and_fuse`` ends its actor's process, as an out-of-memory kill
    or a crash in native code does: on every batch, or on the first one
    only (``marker``, a file, says it happened). Local: pickled by value for
    Ray's workers, which cannot import the tests."""

    class KillsItsActor(gm.LearnableMultiModal):
        def encode_and_fuse(self, *args, **kwargs):
            if every_batch or not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return super().encode_and_fuse(*args, **kwargs)

    killing = KillsItsActor.__new__(KillsItsActor)
    killing.__dict__.update(model.__dict__)
    return killing


@ray_test
@pytest.mark.timeout(60)  # before the fix, the run never ended
def test_an_embedding_actor_that_dies_on_every_batch_fails_the_run_instead_of_retrying_forever(quiet_ray_data, tmp_path):
    """An embedding actor whose process died on every batch (killed for
    memory, a crash in native code) was started again and its batch retried
    without end (Ray Data's default for an actor pool): the dataset ran
    forever, the driver's log filling with "There are infinite retries
    remaining". Now the run fails with Ray's ``ActorDiedError`` once the
    actor has been restarted ``MAX_RESTARTS_PER_STEP`` times, its CPUs
    freed; an actor that dies once is still restarted, and every row comes
    back embedded as the model embeds it."""
    x = synthetic(32)["visual"]
    ds = ray.data.from_arrow(pa.table({"v": tensors(x), "id": pa.array(range(32))}))
    model = small_model()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        dying = distributed.embed_dataset(ds, _killing_its_actor(model, str(tmp_path / "always"), True), {"visual": "v"},
                                          num_actors=1, batch_size=8)
    # the bound given to Ray Data as Ray 2.60 deprecates: its warning is no business of the caller's
    assert not [w for w in said if "ray_remote_args" in str(w.message)], [str(w.message) for w in said]
    with pytest.raises(ray.exceptions.RayActorError, match="The actor died unexpectedly"):
        dying.take_all()
    assert _cpus_freed(), ray.available_resources()
    rows = distributed.embed_dataset(ds, _killing_its_actor(model, str(tmp_path / "once"), False), {"visual": "v"},
                                     num_actors=1, batch_size=8).take_all()
    assert os.path.exists(tmp_path / "once")  # it did die
    rows.sort(key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(32))
    assert np.stack([r["fused"] for r in rows]).tobytes() == model.encode_and_fuse({"visual": x})[1].tobytes()


@ray_test
@pytest.mark.timeout(60)  # before the fix, the metric never returned
def test_embedding_from_a_metric_of_a_fit_whose_workers_hold_every_cpu_is_refused_not_waited_for(quiet_ray_data):
    """A metric that embeds a dataset (``embed_dataset(...).take_all()``)
    during a distributed fit whose workers held every CPU of the cluster
    (``num_workers=2`` on 2 CPUs) waited forever: the workers keep their
    CPUs until the fit returns, and the fit waited for the metric. So did a
    metric that trained a copy with a distributed fit. Now refused, an
    ``InvalidValueError`` naming the argument and saying what the fit holds;
    the fit fails with it and leaves the model as it was. A fit that leaves
    a CPU free runs such a metric as before."""
    x = synthetic(32)["visual"]
    ds = ray.data.from_arrow(pa.table({"v": tensors(x), "id": pa.array(range(32))}))
    data = synthetic(64)
    metrics = {
        "embeds": lambda m: float(len(distributed.embed_dataset(ds, m, {"visual": "v"}, num_actors=1).take_all())),
        "embeds_scaling": lambda m: float(len(distributed.embed_dataset(ds, m, {"visual": "v"}).take_all())),
        "fits_a_copy": lambda m: len(distributed.fit(copy.deepcopy(m), data, num_workers=1, epochs=1, batch_size=32,
                                                     progress=False).epochs),
    }
    held = r"fit beside the distributed fit running in this thread \(this is called from its metric or callback\), whose " \
           r"workers hold 2 of the cluster's CPUs until it returns: 0 CPUs left \(0 per node\)"
    for name, arg, what in (("embeds", "cpus_per_actor", "actor"), ("fits_a_copy", "cpus_per_worker", "worker")):
        model = small_model()
        before = state(model)
        with pytest.raises(gm.InvalidValueError, match=rf"^{arg}: 1 {what} of 1 CPU each does not {held}") as err:
            distributed.fit(model, data, num_workers=2, epochs=1, batch_size=32, progress=False, validation=data,
                            metrics={name: metrics[name]})
        assert err.value.arg == arg
        assert model.epochs_trained == 0 and same(state(model), before)
        assert _cpus_freed(), ray.available_resources()
    # one worker leaves a CPU: the metrics run, an actor or a worker on it
    history = distributed.fit(small_model(), data, num_workers=1, epochs=1, batch_size=32, progress=False,
                              validation=data, metrics=metrics)
    assert history["val_embeds"] == history["val_embeds_scaling"] == [32.0] and history["val_fits_a_copy"] == [1]
    # two actors where one CPU is left: refused naming num_actors, with what fits
    with pytest.raises(gm.InvalidValueError, match=r"^num_actors: 2 actors of 1 CPU each do not fit beside .* workers hold 1 "
                       r"of the cluster's CPUs until it returns: 1 CPU left \(1 per node\), .*; expected at most 1 actor of 1 "
                       r"CPU \(that fit leaves more with fewer num_workers\), or this call after that fit returns$"):
        distributed.fit(small_model(), data, num_workers=1, epochs=1, batch_size=32, progress=False, validation=data,
                        metrics={"two": lambda m: len(distributed.embed_dataset(ds, m, {"visual": "v"}, num_actors=2).take_all())})
