"""grapheme_multimodal.distributed on a local 2-CPU Ray: embed_dataset equals
encode_and_fuse; the distributed fit equals model.fit (bit for bit with one
worker), survives a killed worker, detects drifting replicas; Ray stays on
loopback."""

import gc
import os
import sys

import numpy as np
import pytest

if os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
    import ray
else:
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
import pyarrow as pa  # noqa: E402  (Ray Data's dependency)

import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from grapheme_multimodal.training import fit as local_fit  # noqa: E402
from test_fit import small_model  # noqa: E402
from test_fit import synthetic as views  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]

MODALITIES = ("visual", "auditory", "linguistic")


def synthetic(n, seed=0, missing=0.0):
    """test_fit's three views of a shared latent, and a mask with some rows
    lacking some views (never all)."""
    data = views(n, seed)
    rng = np.random.default_rng(seed + 100)
    mask = np.zeros((n, 7), bool)
    mask[:, [0, 1, 2]] = rng.random((n, 3)) >= missing
    mask[~mask.any(axis=1), 2] = True
    return data, mask


def assert_same_training_state(a, b, exact=True, atol=0.0, counters=(None, None), records=True):
    sa, sb = a.state_dict(), b.state_dict()
    for name in sa:
        if exact:
            assert sa[name].tobytes() == sb[name].tobytes(), name
        else:
            np.testing.assert_allclose(sa[name], sb[name], rtol=0, atol=atol, err_msg=name)
    oa, ob = a.optimizer_state(), b.optimizer_state()
    assert oa["step"] == ob["step"]
    if counters == (None, None):
        assert oa["rng_counter"] == ob["rng_counter"]
    else:
        assert (oa["rng_counter"], ob["rng_counter"]) == counters
    for key in ("exp_avg", "exp_avg_sq"):
        for name in oa[key]:
            if exact:
                assert oa[key][name].tobytes() == ob[key][name].tobytes(), (key, name)
            else:
                np.testing.assert_allclose(oa[key][name], ob[key][name], rtol=1e-3, atol=1e-9, err_msg=f"{key} {name}")
    for m in gm.Modality:
        na, nb = a.normalization(m), b.normalization(m)
        assert (na is None) == (nb is None)
        if na is not None:
            assert all(x.tobytes() == y.tobytes() for x, y in zip(na, nb))
    assert a.epochs_trained == b.epochs_trained
    if records:  # the driver counts the rows its workers trained on, as fit does
        assert a.trained_modalities == b.trained_modalities


def without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


# ------------------------------------------------------------------ training
def test_one_worker_is_model_fit_bit_for_bit():
    data, mask = synthetic(160, missing=0.3)
    val, val_mask = synthetic(40, seed=1, missing=0.3)
    options = dict(
        mask=mask, epochs=3, batch_size=32, modality_dropout=0.3, validation=val, validation_mask=val_mask,
        early_stopping=1, metrics={"norm": lambda m: float(np.abs(m.state_dict()["fusion.0.weight"]).sum())},
        monitor="val_norm", mode="max", progress=False, seed=5,
    )
    local, ray_model = small_model(), small_model()
    expected = local.fit(data, **options)
    got = distributed.fit(ray_model, data, num_workers=1, **options)
    assert_same_training_state(local, ray_model)
    assert without_seconds(got.epochs) == without_seconds(expected.epochs)
    assert without_seconds(ray_model.history) == without_seconds(local.history)
    assert (got.best_epoch, got.stopped_early, got.monitor) == (expected.best_epoch, expected.stopped_early, expected.monitor)


def test_weight_averaging_resumes_on_workers_from_the_trained_weights():
    data, mask = synthetic(120, missing=0.2)
    options = dict(mask=mask, batch_size=32, ema_decay=0.8, progress=False)
    local, ray_model = small_model(), small_model()
    local.fit(data, epochs=3, **options)
    ray_model.fit(data, epochs=1, **options)  # the model now holds an average; the workers must get the trained weights
    distributed.fit(ray_model, data, num_workers=1, epochs=2, **options)
    assert_same_training_state(local, ray_model)
    assert ray_model.weight_average.count == 3


def test_two_workers_equal_one_process_without_in_batch_coupling():
    """seed_consistency is a mean over rows with no draws and no negatives:
    two workers give the single-process gradients up to summation order."""
    data, _ = synthetic(96)
    recorder = small_model()
    recorder.record_batch(data, rewards=np.linspace(0, 0.5, 96))
    options = dict(objectives={"seed_consistency": 1.0}, epochs=3, batch_size=32, progress=False)
    local, ray_model = small_model(), small_model()
    local.fit(recorder.experience, **options)
    history = distributed.fit(ray_model, recorder.experience, num_workers=2, **options)
    # 9 steps; the two workers' shares are 18 gradient computations (draws)
    assert_same_training_state(local, ray_model, exact=False, atol=2e-6, counters=(9, 18))
    np.testing.assert_allclose(history["loss"], [e["loss"] for e in local.history], rtol=1e-5)


def fit_record(data, options):
    """``trained_modalities`` of the small model after ``fit(data, **options)`` in this process."""
    model = small_model()
    model.fit(data, **options)
    return model.trained_modalities


class GradientAccumulation(gm.training.LocalSteps):
    """The documented meaning of a step of N workers, in one process with
    the public API: the batch's N contiguous shares, share k with the random
    draws of rng_counter + k, gradients averaged weighted by rows."""

    workers = 2

    def step(self, rows, keep):
        m = self.model
        shares = np.array_split(np.arange(len(rows)), min(self.workers, len(rows) // 2))
        state = m.optimizer_state()
        total = {name: np.zeros(shape) for name, shape in m.parameter_shapes().items()}
        losses = {}
        for k, pos in enumerate(shares):
            m.load_optimizer_state({**state, "rng_counter": state["rng_counter"] + k})
            m.zero_grad()
            share_losses = m.backward(self.train.batch(rows[pos], None if keep is None else keep[pos]), weights=self.objectives)
            w = np.float64(len(pos) / len(rows))  # float64 sums, as the workers' average (a Python float made them float32)
            for name, g in m.gradients().items():
                total[name] += w * g
            losses = {key: losses.get(key, 0.0) + w * v for key, v in share_losses.items()}
        m.apply_gradients({name: g.astype(np.float32) for name, g in total.items()}, lr=self.lr)
        m.load_optimizer_state({**m.optimizer_state(), "rng_counter": state["rng_counter"] + len(shares)})
        return losses


def test_two_workers_are_gradient_accumulation_over_shares():
    """With in-batch negatives (the default mix) a worker's share is its own
    batch: the run equals accumulating the shares' gradients in one process."""
    data, mask = synthetic(130, missing=0.3)  # batches of 32, 32, 32, 34 (the last two merge a single row)
    options = dict(mask=mask, epochs=2, batch_size=32, modality_dropout=0.2, progress=False)
    reference, ray_model = small_model(), small_model()
    expected = local_fit(reference, data, _steps=GradientAccumulation, **options)
    got = distributed.fit(ray_model, data, num_workers=2, **options)
    # the reference applies its gradients with apply_gradients, which knows no rows: fit's record instead
    assert_same_training_state(reference, ray_model, records=False)
    assert ray_model.trained_modalities == fit_record(data, options)
    assert without_seconds(got.epochs) == without_seconds(expected.epochs)


class KillingSteps(distributed._RaySteps):
    """Kills a worker with ray.kill before the third step (its call fails
    and the step is retried) and another before the end-of-epoch sync."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.killed = 0, []

    def kill(self, k):
        self.killed.append(self.workers[k])
        ray.kill(self.workers[k])

    def step(self, rows, keep):
        self.calls += 1
        if self.calls == 3:
            self.kill(1)
        return super().step(rows, keep)

    def end_epoch(self):
        if self.calls == 4:
            self.kill(0)
        super().end_epoch()


def test_a_killed_worker_is_replaced_and_the_run_is_unchanged():
    data, mask = synthetic(128, missing=0.2)
    options = dict(mask=mask, epochs=2, batch_size=32, modality_dropout=0.2, progress=False)
    uninterrupted, interrupted = small_model(), small_model()
    expected = local_fit(uninterrupted, data, _steps=GradientAccumulation, **options)  # = 2 workers, as tested above
    made = []

    def factory(*args, **kwargs):
        made.append(KillingSteps(*args, num_workers=2, cpus_per_worker=1, **kwargs))
        return made[-1]

    got = local_fit(interrupted, data, _steps=factory, **options)
    steps = made[0]
    assert len(steps.killed) == 2 and not steps.workers, "two kills; every worker ended with the run"
    assert_same_training_state(uninterrupted, interrupted, records=False)  # as above
    assert interrupted.trained_modalities == fit_record(data, options)  # a retried step counted once
    assert without_seconds(got.epochs) == without_seconds(expected.epochs)


def test_drifting_replicas_fail_loudly_and_workers_use_their_cpus():
    data, mask = synthetic(64)
    model = small_model()
    train = gm.training.as_dataset(model, data, mask, "data")
    steps = distributed._RaySteps(model, train, None, None, num_workers=2, cpus_per_worker=1)
    try:
        threads = ray.get([w.__ray_call__.remote(lambda replica: gm.get_num_threads()) for w in steps.workers])
        assert threads == [1, 1], "each worker computes with the CPUs Ray gave it"
        steps.step(np.arange(32), None)
        nudge = np.full(model.num_parameters(), 1e-3, np.float32)
        ray.get(steps.workers[1].step.remote(nudge, None, None, 0))  # an update only worker 1 applies
        with pytest.raises(distributed.ReplicaDriftError, match=r"workers \[1\] of 2"):
            steps.end_epoch()
        with pytest.raises(IndexError):  # a worker's own error, re-raised as it is
            steps.step(np.array([0, 1, 64, 65]), None)
    finally:
        steps.close()


def test_a_ray_dataset_trains_as_its_arrays():
    data, mask = synthetic(96, missing=0.3)
    rows = [
        {"id": i, **{name: (data[name][i] if mask[i, m] else None) for m, name in enumerate(MODALITIES)}}
        for i in range(96)
    ]
    ds = ray.data.from_arrow(
        pa.table(
            {"id": np.arange(96), **{n: pa.array([r[n] for r in rows], type=pa.list_(pa.float32())) for n in MODALITIES}}
        )
    )
    options = dict(epochs=2, batch_size=32, progress=False)
    from_arrays, from_ds = small_model(), small_model()
    from_arrays.fit(data, mask=mask, **options)
    distributed.fit(from_ds, ds, num_workers=1, **options)
    assert_same_training_state(from_arrays, from_ds)


def test_fit_errors_are_model_fit_errors_and_leave_no_actor():
    data, _ = synthetic(40)
    with pytest.raises(gm.InvalidValueError, match="num_workers"):
        distributed.fit(small_model(), data, num_workers=0)
    with pytest.raises(ValueError, match="seed_consistency"):  # before any actor starts
        distributed.fit(small_model(), data, num_workers=2, objectives={"seed_consistency": 1.0}, progress=False)
    ds = ray.data.from_items([{"x": [1.0, 2.0]}])
    with pytest.raises(gm.InvalidValueError, match="no column is named after a modality"):
        distributed.fit(small_model(), ds, num_workers=1)


# ----------------------------------------------------------------- embedding
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A trained model whose linguistic modality featurises text (WL)."""
    data, mask = synthetic(64, missing=0.3)
    model = small_model(graph_features={"linguistic": gm.GraphFeaturizer("wl", dim=18)})
    model.fit(data, mask=mask, epochs=1, batch_size=32, progress=False)
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    model.save(path)
    return path


def test_embed_dataset_equals_encode_and_fuse(checkpoint):
    n = 300
    data, mask = synthetic(n, seed=2, missing=0.4)
    texts = [f"the {['cat', 'dog', 'bird'][i % 3]} number {i}" for i in range(n)]
    columns = {"visual": "img", "auditory": "snd", "linguistic": "txt"}
    table = {
        "id": pa.array(np.arange(n)),
        "note": pa.array([f"row {i}" for i in range(n)]),
        "img": pa.array([data["visual"][i] if mask[i, 0] else None for i in range(n)], type=pa.list_(pa.float32())),
        "snd": pa.array([data["auditory"][i] if mask[i, 1] else None for i in range(n)], type=pa.list_(pa.float32())),
        "txt": pa.array([texts[i] if mask[i, 2] else None for i in range(n)]),
    }
    ds = ray.data.from_arrow([pa.table({k: v[i : i + 100] for k, v in table.items()}) for i in range(0, n, 100)])
    out = distributed.embed_dataset(
        ds, checkpoint, columns, batch_size=64, num_actors=2, outputs=("fused", "embeddings", "bindings")
    )
    batches = list(out.iter_batches(batch_format="numpy", batch_size=None))
    got = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    assert set(got) == {"id", "note", "img", "snd", "txt", "fused", "embeddings", "bindings"}
    order = np.argsort(got["id"])
    model = gm.LearnableMultiModal.load(checkpoint)
    inputs = {"visual": data["visual"], "auditory": data["auditory"], "linguistic": model.config.graph_featurizer("linguistic")(texts)}
    emb, fused = model.encode_and_fuse(inputs, mask)
    np.testing.assert_array_equal(got["fused"][order], fused)
    np.testing.assert_array_equal(got["embeddings"][order], emb)
    np.testing.assert_array_equal(got["bindings"][order], model.pair_strengths(emb, mask))
    assert got["note"][order][7] == "row 7"
    assert got["fused"].dtype == np.float32 and got["fused"].shape == (n, 16)


def test_embed_dataset_rejects_bad_arguments(checkpoint):
    ds = ray.data.from_items([{"img": [0.0] * 20, "fused": 1}])
    with pytest.raises(gm.InvalidValueError, match="outputs"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, outputs=("fused", "logits"))
    with pytest.raises(ValueError, match="modality"):
        distributed.embed_dataset(ds, checkpoint, {"smell": "img"})
    with pytest.raises(TypeError, match="ray.data.Dataset"):
        distributed.embed_dataset([1, 2], checkpoint, {"visual": "img"})
    with pytest.raises(FileNotFoundError):
        distributed.embed_dataset(ds, checkpoint.parent / "nope.safetensors", {"visual": "img"})
    with pytest.raises(gm.InvalidValueError, match="already has a column named"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"})
    with pytest.raises(gm.InvalidValueError, match="no column"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "image"}, outputs="embeddings")
    with pytest.raises(gm.InvalidValueError, match="num_actors"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, outputs="bindings", num_actors=0)
    assert not gm.LearnableMultiModal.load(checkpoint).config.encoder_hidden
    with pytest.raises(gm.InvalidValueError, match=r"outputs: this model's encoders have no hidden layers"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, outputs="hidden_features")


def test_embed_dataset_with_nulls_in_some_batches_of_a_block(checkpoint):
    """A list column with a null in one batch of a block and none in the
    next: through numpy it was objects in one batch and a tensor in the
    other, which Ray Data could not put back in one block (an
    ArrowConversionError from the actor). The other columns now pass through
    as they are, and the values are encode_and_fuse's."""
    n = 8
    data, _ = synthetic(n, seed=3)
    mask = np.zeros((n, 7), bool)
    mask[:, :2] = True
    mask[1, 1] = False  # the first batch of 4 has a null, the second none
    table = pa.table({
        "id": np.arange(n),
        "img": pa.array(list(data["visual"]), type=pa.list_(pa.float32())),
        "snd": pa.array([data["auditory"][i] if mask[i, 1] else None for i in range(n)], type=pa.list_(pa.float32())),
    })
    out = distributed.embed_dataset(ray.data.from_arrow(table), checkpoint, {"visual": "img", "auditory": "snd"},
                                    batch_size=4, num_actors=1, outputs=("fused", "bindings"))
    batches = list(out.iter_batches(batch_format="numpy", batch_size=None))
    got = {k: np.concatenate([b[k] for b in batches]) for k in ("id", "fused", "bindings")}
    order = np.argsort(got["id"])
    model = gm.LearnableMultiModal.load(checkpoint)
    emb, fused = model.encode_and_fuse({"visual": data["visual"], "auditory": data["auditory"]}, mask)
    np.testing.assert_array_equal(got["fused"][order], fused)
    np.testing.assert_array_equal(got["bindings"][order], model.pair_strengths(emb, mask))
    schema = out.schema()
    assert [schema.types[schema.names.index(c)] for c in ("id", "img", "snd")] == list(table.schema.types)


def test_a_column_null_in_every_row_is_a_modality_no_row_has(checkpoint):
    """from_items with None throughout gives a column of Arrow type null;
    embed_dataset refused it as numbers where vectors were expected. Now
    every row lacks that modality, as with nulls in a list column."""
    n = 6
    data, _ = synthetic(n, seed=4)
    ds = ray.data.from_items([{"id": i, "img": data["visual"][i], "snd": None} for i in range(n)])
    out = distributed.embed_dataset(ds, checkpoint, {"visual": "img", "auditory": "snd"}, num_actors=1)
    got = sorted(out.take_all(), key=lambda r: r["id"])
    mask = np.zeros((n, 7), bool)
    mask[:, 0] = True
    _, fused = gm.LearnableMultiModal.load(checkpoint).encode_and_fuse({"visual": data["visual"]}, mask)
    np.testing.assert_array_equal(np.stack([r["fused"] for r in got]), fused)


def test_embed_dataset_says_once_on_the_driver_that_a_modality_never_trained(tmp_path):
    data, _ = synthetic(8, seed=4)
    model = small_model()
    model.fit({"visual": data["visual"]}, epochs=1, batch_size=4, progress=False)
    path = tmp_path / "visual.safetensors"
    model.save(path)
    ds = ray.data.from_items([{"id": i, "img": data["visual"][i], "snd": data["auditory"][i]} for i in range(8)])
    with pytest.warns(gm.UntrainedModalityWarning, match="modality 'auditory' was never present") as caught:
        out = distributed.embed_dataset(ds, path, {"visual": "img", "auditory": "snd"}, num_actors=1, batch_size=3)
    assert len(caught) == 1 and caught[0].filename == __file__
    got = sorted(out.take_all(), key=lambda r: r["id"])  # the actors embed without a word, as asked
    with pytest.warns(gm.UntrainedModalityWarning):
        _, fused = model.encode_and_fuse({"visual": data["visual"], "auditory": data["auditory"]})
    np.testing.assert_array_equal(np.stack([r["fused"] for r in got]), fused)


def test_workers_the_cluster_cannot_hold_are_refused_not_waited_for(checkpoint):
    """Three workers, or one of 3 CPUs, on the session's 2-CPU Ray waited for
    CPUs forever; now refused before any actor starts. And columns= with
    arrays, which it does not apply to, is refused rather than ignored."""
    data, _ = synthetic(40)
    with pytest.raises(gm.InvalidValueError, match=r"num_workers: 3 workers of 1 CPU each do not fit .* hold 2"):
        distributed.fit(small_model(), data, num_workers=3, epochs=1, progress=False)
    with pytest.raises(gm.InvalidValueError, match=r"cpus_per_worker: 1 worker of 3 CPUs each do not fit"):
        distributed.fit(small_model(), data, num_workers=1, cpus_per_worker=3, epochs=1, progress=False)
    ds = ray.data.from_items([{"img": [0.0] * 20}])
    with pytest.raises(gm.InvalidValueError, match=r"cpus_per_actor: 1 actor of 3 CPUs each do not fit"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, cpus_per_actor=3)
    with pytest.raises(gm.InvalidValueError, match=r"num_actors: 3 actors of 1 CPU each do not fit .* hold 2"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, num_actors=3)  # a fixed pool of 3 waited forever
    with pytest.raises(gm.InvalidValueError, match=r"columns: only used with a ray.data.Dataset"):
        distributed.fit(small_model(), data, num_workers=1, columns={"visual": "x"})


def test_column_values_become_inputs(checkpoint):
    """What each actor does with a batch's columns (run here, without Ray Data)."""
    plan = distributed._ColumnPlan(gm.LearnableMultiModal.load(checkpoint), {"visual": "v", "linguistic": "t"})
    v = np.empty(3, object)
    v[:] = [np.ones(20), None, np.zeros(20)]
    inputs, mask = plan.inputs({"v": v, "t": np.array(["a cat", None, "a dog"], object)})
    assert mask[:, [0, 2]].tolist() == [[True, True], [False, False], [True, True]] and not mask[:, [1, 3, 4, 5, 6]].any()
    # float64 vectors stay float64, as a tensor column's do: the model casts them, with model.fit's checks
    # (a value too large for float32, a column below its range: test_trust_distributed_third.py)
    assert inputs["visual"].shape == (3, 20) and inputs["visual"].dtype == np.float64
    inputs, mask = plan.inputs({"v": np.ones((2, 20)), "t": np.array(["x", "y"])})  # tensor and str columns
    assert mask[:, [0, 2]].all()
    short = np.empty(2, object)
    short[:] = [np.ones(3), None]
    with pytest.raises(gm.ShapeError, match=r"column 'v' \(visual\): expected vectors of 20 numbers"):
        plan.inputs({"v": short, "t": np.array(["x", "y"])})
    # A column of Arrow type null (None in every row) reaches numpy as NaN
    # floats; it was refused as "got float32 (2,)": no row has the modality.
    inputs, mask = plan.inputs({"v": np.full(2, np.nan, np.float32), "t": np.array(["x", "y"])})
    assert "visual" not in inputs and not mask[:, 0].any() and mask[:, 2].all()
    numeric = distributed._ColumnPlan(gm.LearnableMultiModal.load(checkpoint), {"auditory": "t"})
    with pytest.raises(gm.InvalidValueError, match="holds text"):
        numeric.inputs({"t": np.array(["x", "y"], object)})


def test_embed_dataset_actor_errors_are_the_packages_errors(checkpoint, monkeypatch):
    """What an actor refuses (a NaN row, a row of another length) reached the
    caller as RayTaskError(UserCodeException), catchable as neither the
    package's error nor the original; now it is an instance of the
    package's error, with the original (its arg and message) as its cause.
    The caller's dataset keeps Ray's own setting."""
    import logging

    from grapheme_multimodal.cli import _RAY_DATA_ERROR_LOGGERS

    for name in _RAY_DATA_ERROR_LOGGERS:  # pytest keeps their records, whose tracebacks would keep the failed pools alive
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    rows = [np.ones(20, np.float32) for _ in range(6)]
    rows[3] = np.full(20, np.nan, np.float32)
    ds = ray.data.from_arrow(pa.table({"img": pa.array(rows, type=pa.list_(pa.float32()))}))
    with pytest.raises(gm.NonFiniteError) as caught:
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, num_actors=1).materialize()
    assert "row 3" in str(caught.value.cause) and caught.value.arg == caught.value.cause.arg
    rows[3] = np.ones(7, np.float32)
    ds = ray.data.from_arrow(pa.table({"img": pa.array(rows, type=pa.list_(pa.float32()))}))
    with pytest.raises(gm.ShapeError, match=r"column 'img' \(visual\): expected vectors of 20 numbers"):
        distributed.embed_dataset(ds, checkpoint, {"visual": "img"}, num_actors=1).take_all()
    assert ds.context.raise_original_map_exception is False
    del caught
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected


def test_embed_dataset_refuses_a_checkpoint_saved_again_before_it_runs(tmp_path, monkeypatch):
    """``embed_dataset(ds, path)`` checks the model at ``path`` and returns
    a lazy dataset whose actors load ``path`` again when it runs: a model
    saved there in between (a training loop saving each epoch to one name)
    was used without a word, by the actors started after the save only (a
    pool grows as it runs), so one output could mix two models' rows. Now
    an actor refuses a file that is not the model that was checked, a
    CheckpointError naming ``checkpoint``; the file read unchanged embeds as before."""
    import logging

    from grapheme_multimodal.cli import _RAY_DATA_ERROR_LOGGERS

    for name in _RAY_DATA_ERROR_LOGGERS:  # as in test_embed_dataset_actor_errors_are_the_packages_errors
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    path = tmp_path / "model.safetensors"
    first = small_model()
    first.save(path)
    rows = np.random.default_rng(0).normal(size=(6, 20)).astype(np.float32)
    ds = ray.data.from_arrow(pa.table({"img": pa.array(list(rows), type=pa.list_(pa.float32()))}))
    unchanged = distributed.embed_dataset(ds, path, {"visual": "img"}, num_actors=1)
    saved_again = distributed.embed_dataset(ds, path, {"visual": "img"}, num_actors=1)
    got = np.concatenate([b["fused"] for b in unchanged.iter_batches(batch_format="numpy", batch_size=None)])
    np.testing.assert_array_equal(got, first.encode_and_fuse({"visual": rows})[1])
    other = small_model()
    other.load_state_dict({k: v + 1 for k, v in first.state_dict().items()})
    other.save(path)
    with pytest.raises(gm.CheckpointError, match="changed since embed_dataset") as caught:
        saved_again.materialize()
    assert caught.value.arg == "checkpoint" and str(path) in str(caught.value)
    del caught
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected


def test_embed_dataset_of_a_model_embeds_it_as_it_was_when_called():
    """``embed_dataset(ds, model)`` ships ``model`` to its actors when the
    lazy dataset runs: trained (or changed) in between, its later state was
    embedded, not the one the call was given. Now the model is taken as it
    is at the call, as a path's file is."""
    model = small_model()
    rows = np.random.default_rng(1).normal(size=(6, 20)).astype(np.float32)
    expected = model.encode_and_fuse({"visual": rows})[1]
    ds = ray.data.from_arrow(pa.table({"img": pa.array(list(rows), type=pa.list_(pa.float32()))}))
    out = distributed.embed_dataset(ds, model, {"visual": "img"}, num_actors=1)
    model.load_state_dict({k: v + 1 for k, v in model.state_dict().items()})
    got = np.concatenate([b["fused"] for b in out.iter_batches(batch_format="numpy", batch_size=None)])
    np.testing.assert_array_equal(got, expected)


def test_embed_dataset_refuses_column_types_the_model_cannot_take_at_once(checkpoint):
    """A column the schema shows to be wrong (vectors of another length,
    one number per row, text for a numeric modality) was found only by the
    actors, once the returned dataset ran; now refused by the call itself."""
    fixed = pa.array([[0.0] * 7] * 4, type=pa.list_(pa.float32(), 7))
    cases = [
        (ray.data.from_numpy(np.ones((4, 7), np.float32)), "visual", gm.ShapeError, r"column 'data' \(visual\).*shape \(7,\)"),
        (ray.data.from_arrow(pa.table({"data": fixed})), "visual", gm.ShapeError, r"shape \(7,\) per row"),
        (ray.data.from_arrow(pa.table({"data": np.arange(4.0)})), "visual", gm.ShapeError, r"got one double per row"),
        (ray.data.from_arrow(pa.table({"data": ["a cat"] * 4})), "auditory", gm.InvalidValueError, r"holds text"),
    ]
    for ds, modality, error, message in cases:
        with pytest.raises(error, match=message):
            distributed.embed_dataset(ds, checkpoint, {modality: "data"}, num_actors=1)
    plan = distributed._ColumnPlan(gm.LearnableMultiModal.load(checkpoint), {"visual": "v"})
    with pytest.raises(gm.ShapeError, match=r"column 'v' \(visual\).*got 7 per row"):  # a numpy batch's tensor column
        plan.inputs({"v": np.ones((2, 7))})


def test_vectors_that_are_not_real_numbers_are_refused_by_column(checkpoint):
    """Complex vectors lost their imaginary parts without a word (numpy's
    ComplexWarning at most) and vectors of text ("1.5") were parsed as
    numbers, where model.fit refuses both; text that was no number was a
    bare "could not convert string to float". Now a TypeError naming the column."""
    plan = distributed._ColumnPlan(gm.LearnableMultiModal.load(checkpoint), {"visual": "v"})
    rows = {
        "complex": [np.full(20, 1 + 2j), None],
        "complex objects": [np.array([1 + 2j] * 20, object), None],
        "numeric text": [np.array(["1.5"] * 20), None],
        "text objects": [np.array(["a"] * 20, object), None],
    }
    for what, values in rows.items():
        column = np.empty(2, object)
        column[:] = values
        with pytest.raises(TypeError, match=r"column 'v' \(visual\): expected (real numbers|a real-valued|vectors of real)"):
            plan.inputs({"v": column})
    with pytest.raises(TypeError, match=r"column 'v' \(visual\): expected real numbers, got complex"):
        plan.inputs({"v": np.full((2, 20), 1 + 2j)})  # a tensor column
    column = np.empty(2, object)
    column[:] = [np.arange(20), [float(i) for i in range(20)]]  # ints and Python floats: numbers, as before
    inputs, mask = plan.inputs({"v": column})
    assert mask[:, 0].all() and inputs["visual"].tolist() == [list(map(float, range(20)))] * 2


def test_fit_on_a_dataset_without_blocks_says_it_has_no_rows():
    # ray.data.from_items([]) has no schema: ds.columns() is None, and fit raised
    # "TypeError: 'NoneType' object is not iterable".
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match="data: the dataset has no rows"):
        distributed.fit(model, ray.data.from_items([]), num_workers=1, epochs=1, progress=False)
    assert model.epochs_trained == 0


def test_fit_checks_its_inputs_before_starting_ray():
    """Without a running Ray, fit started a local cluster (seconds, CPUs,
    left running) before model.fit's checks refused the data; now the
    data is refused first and Ray is not started."""
    script = (
        "import numpy as np, ray, grapheme_multimodal as gm\n"
        "from grapheme_multimodal import distributed\n"
        "x = np.ones((8, 20)); x[2, 3] = np.nan\n"
        "try:\n"
        "    distributed.fit(gm.LearnableMultiModal(input_dims={'visual': 20}, seed=0), {'visual': x}, num_workers=1)\n"
        "except gm.NonFiniteError as err:\n"
        "    print('refused', err.arg, ray.is_initialized())\n"
    )
    import subprocess

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES=str(256 * 2**20)))
    assert done.stdout.split() == ["refused", "data['visual']", "False"], done.stdout + done.stderr


# ------------------------------------------------------------------- network
def _listening(pids):
    """``(pid, address)`` of every listening TCP socket and unconnected
    bound UDP socket of ``pids`` (a connected UDP socket only talks to its peer)."""
    inodes = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table, state_wanted in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        with open(f"/proc/net/{table}") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if inode in inodes and state == state_wanted:
                    found.append((inodes[inode], local.split(":")[0]))
    return found


def _is_loopback(hex_address):
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return raw[::-1][0] == 127  # /proc/net/tcp: little-endian IPv4
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    addr = b"".join(words)
    return addr == bytes(15) + b"\x01" or (addr[:12] == bytes(10) + b"\xff\xff" and addr[12] == 127)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ray_listens_on_loopback_only():
    ours = {os.getpid()}
    for _ in range(3):  # the driver's children (GCS, raylet) and theirs (workers, agents)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid in ours:
                ours.add(int(pid))
    sockets = _listening(ours)
    assert len(ours) > 3 and sockets, "Ray's processes and sockets were found"
    exposed = [(pid, addr) for pid, addr in sockets if not _is_loopback(addr)]
    assert not exposed, f"Ray sockets on non-loopback addresses: {exposed}"
