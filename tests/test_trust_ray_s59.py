"""A hostile check of the Ray scale-out layer (s59): an embedding actor
whose process dies, and ``embed_dataset`` / ``fit`` called from a metric of
a distributed fit whose workers hold the cluster's CPUs. Each test says
what a user saw before the fix."""

import copy
import os
import re

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
    remaining". Now the run fails with a ``RuntimeError`` saying so once
    the actor has been restarted ``MAX_RESTARTS_PER_STEP`` times, its CPUs
    freed; an actor that dies once is still restarted, and every row comes
    back embedded as the model embeds it."""
    x = synthetic(32)["visual"]
    ds = ray.data.from_arrow(pa.table({"v": tensors(x), "id": pa.array(range(32))}))
    model = small_model()
    dying = distributed.embed_dataset(ds, _killing_its_actor(model, str(tmp_path / "always"), True), {"visual": "v"},
                                      num_actors=1, batch_size=8)
    with pytest.raises(RuntimeError, match=r"embed_dataset: an embedding actor's process died 4 times \(killed for using "
                       r"too much memory\? a crash\? .*\), and Ray restarted it each time to retry its batch; giving up "
                       r"after 3 restarts, as distributed.fit gives up on a worker that dies that often"):
        dying.take_all()
    assert _cpus_freed(), ray.available_resources()
    rows = distributed.embed_dataset(ds, _killing_its_actor(model, str(tmp_path / "once"), False), {"visual": "v"},
                                     num_actors=1, batch_size=8).take_all()
    assert os.path.exists(tmp_path / "once")  # it did die
    rows.sort(key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(32))
    assert np.stack([r["fused"] for r in rows]).tobytes() == model.encode_and_fuse({"visual": x})[1].tobytes()


def _refusals(calls, model):
    """The errors each of ``calls`` (of ``model``) raises, in order, as a
    metric that catches them sees them."""
    said = []
    for call in calls:
        with pytest.raises(gm.InvalidValueError) as err:
            call(model)
        said.append(err.value)
    return said


@ray_test
@pytest.mark.timeout(60)  # before the fix, the metric never returned
@pytest.mark.filterwarnings("ignore:Use 'expr' instead of 'fn'")  # Ray Data's advice on the test's own filter
def test_embedding_from_a_metric_of_a_fit_whose_workers_hold_every_cpu_is_refused_not_waited_for(quiet_ray_data):
    """A metric that embeds a dataset (``embed_dataset(...).take_all()``)
    during a distributed fit whose workers held every CPU of the cluster
    (``num_workers=2`` on 2 CPUs) waited forever: the workers keep their
    CPUs until the fit returns, and the fit waited for the metric. So did a
    metric that trained a copy with a distributed fit, and one embedding
    behind a step that needed a CPU of its own (a filter). Now
    refused, an ``InvalidValueError`` naming the argument and saying what
    the fit holds; a fit whose metric raises it fails with it and leaves
    the model as it was. A fit that leaves a CPU free runs such a metric
    as before."""
    x = synthetic(32)["visual"]
    ds = ray.data.from_arrow(pa.table({"v": tensors(x), "id": pa.array(range(32))}))
    data = synthetic(64)

    embeds = lambda m, **kw: float(len(distributed.embed_dataset(ds, m, {"visual": "v"}, **kw).take_all()))  # noqa: E731
    fits_a_copy = lambda m: float(len(distributed.fit(copy.deepcopy(m), data, num_workers=1, epochs=1,  # noqa: E731
                                                      batch_size=32, progress=False).epochs))
    said = []

    def refused_beside_two_workers(model):
        said.extend(_refusals([lambda m: embeds(m, num_actors=1), embeds, fits_a_copy], model))
        raise said[0]

    model = small_model()
    before = state(model)
    with pytest.raises(gm.InvalidValueError) as err:
        distributed.fit(model, data, num_workers=2, epochs=1, batch_size=32, progress=False, validation=data,
                        metrics={"refused": refused_beside_two_workers})
    assert err.value is said[0] and model.epochs_trained == 0 and same(state(model), before)
    assert _cpus_freed(), ray.available_resources()
    held = r"fit beside the distributed fit running in this thread \(this is called from one of its metrics\), whose " \
           r"workers hold 2 of the cluster's CPUs until it returns: 0 CPUs left \(0 per node\), and Ray would wait for the " \
           r"rest forever; expected at most 0 \w+s of 1 CPU \(that fit leaves more with fewer num_workers\), or this call " \
           r"after that fit returns$"
    for error, arg, what in zip(said, ("cpus_per_actor", "cpus_per_actor", "cpus_per_worker"), ("actor", "actor", "worker")):
        assert error.arg == arg
        assert re.match(rf"^{arg}: 1 {what} of 1 CPU each does not {held}", str(error)), str(error)

    # one worker leaves a CPU: a metric's actor or worker runs on it; what needs more is refused
    def refused_beside_one_worker(model):
        said[:] = _refusals([lambda m: embeds(m, num_actors=2),
                             lambda m: distributed.embed_dataset(ds.filter(lambda row: True), m, {"visual": "v"},
                                                                 num_actors=1).take_all()], model)
        return 0.0

    history = distributed.fit(small_model(), data, num_workers=1, epochs=1, batch_size=32, progress=False, validation=data,
                              metrics={"embeds": lambda m: embeds(m, num_actors=1), "embeds_scaling": embeds,
                                       "fits_a_copy": fits_a_copy, "refused": refused_beside_one_worker})
    assert history["val_embeds"] == history["val_embeds_scaling"] == [32.0] and history["val_fits_a_copy"] == [1.0]
    assert str(said[0]).startswith("num_actors: 2 actors of 1 CPU each do not fit beside the distributed fit running in "
                                   "this thread"), str(said[0])
    assert "workers hold 1 of the cluster's CPUs until it returns: 1 CPU left (1 per node)" in str(said[0])
    assert "; expected at most 1 actor of 1 CPU (that fit leaves more with fewer num_workers)" in str(said[0])
    assert str(said[1]).startswith("cpus_per_actor: 1 actor of 1 CPU leaves no room on this Ray cluster (its nodes: 1 CPUs, "
                                   "less the 1 that the workers of the distributed fit running in this thread hold until it "
                                   "returns) for the steps of ds before embedding (Filter(<lambda>))"), str(said[1])


@ray_test
def test_a_two_worker_fit_saved_loaded_and_continued_is_the_uninterrupted_fit_bit_for_bit(tmp_path):
    """Exact resume across a checkpoint on Ray, which no test pinned with
    more than one worker: a 2-worker fit of 1 epoch, saved, loaded and fit
    for 1 more (modality dropout, weight averaging, rows missing
    modalities, a last batch of unequal shares) ends with the weights,
    optimizer state, average and history of the uninterrupted 2-epoch
    fit. Checked as found, no fix needed: guards the replicas' draw
    counter and Adam state through save/load."""
    data = synthetic(90)  # batches of 32, 32 and 26 rows: shares of 16 and 13
    mask = np.zeros((90, 7), bool)
    for modality in data:  # each given modality missing from about a third of the rows
        mask[:, gm.Modality.parse(modality).index] = np.random.default_rng(len(modality)).random(90) > 0.3
    options = dict(mask=mask, batch_size=32, progress=False, seed=5, modality_dropout=0.3, ema_decay=0.8)
    uninterrupted = small_model()
    distributed.fit(uninterrupted, data, num_workers=2, epochs=2, **options)
    first = small_model()
    distributed.fit(first, data, num_workers=2, epochs=1, **options)
    first.save(tmp_path / "first.safetensors")
    resumed = gm.LearnableMultiModal.load(tmp_path / "first.safetensors")
    distributed.fit(resumed, data, num_workers=2, epochs=1, **options)
    assert same(state(resumed), state(uninterrupted))
    assert resumed._core.optimizer_state()[2:] == uninterrupted._core.optimizer_state()[2:]
    assert [e["loss"] for e in resumed.history] == [e["loss"] for e in uninterrupted.history]
    assert resumed.weight_average.count == uninterrupted.weight_average.count == 2


@ray_test
@pytest.mark.parametrize("nodes, expected", [
    ([0.0], r"expected a node with at least 1 CPU, which none of its nodes has \(on an autoscaling cluster, start its "
            r"nodes first\)$"),
    ([0.5, 0.0], r"expected a node with at least 1 CPU, which none of its nodes has"),
    ([1.5], r"expected cpus_per_\w+ at most 1 \(the most CPUs a node has\)"),
])
def test_a_cluster_without_a_whole_cpu_on_any_node_is_named_not_asked_of_cpus_each(monkeypatch, nodes, expected):
    """On a cluster whose only node has no CPU to give (an autoscaling
    cluster's head started with 0 CPUs, its worker nodes not up yet), the
    refusal said "expected cpus_per_actor at most 0 (the most CPUs a node
    has)", a bound no value meets (it counts from 1); on a node of 1.5 CPUs,
    "at most 1.5" for an int. Now it says the cluster lacks a node with a
    whole CPU, and bounds by whole CPUs (nothing runs here: Ray's nodes are
    those of the test)."""
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": c}} for c in nodes])
    ds = ray.data.from_arrow(pa.table({"v": tensors(synthetic(8)["visual"])}))
    with pytest.raises(gm.InvalidValueError, match=r"^cpus_per_actor: 1 actor of 2 CPUs each do not fit .*" + expected) as err:
        distributed.embed_dataset(ds, small_model(), {"visual": "v"}, cpus_per_actor=2)
    assert err.value.arg == "cpus_per_actor"
    with pytest.raises(gm.InvalidValueError, match=r"^cpus_per_worker: 1 worker of 2 CPUs each do not fit .*" + expected):
        distributed.fit(small_model(), synthetic(8), num_workers=1, cpus_per_worker=2, epochs=1, progress=False)
