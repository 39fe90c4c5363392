"""Hostile use of grapheme_multimodal.distributed (embed_dataset, fit) and
of the command line's Ray paths: each mistake is refused with the package's
error naming the argument, what was given and what was expected, before any
actor starts where the call can know it; a fit that stops early or is
interrupted leaves the model model.fit would leave."""

import gc
import logging
import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest

if os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
    import ray
else:
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
import pyarrow as pa  # noqa: E402  (Ray Data's dependency)

import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from grapheme_multimodal.cli import _RAY_DATA_ERROR_LOGGERS, main  # noqa: E402
from conftest import run_concurrently  # noqa: E402
from test_distributed import assert_same_training_state, synthetic  # noqa: E402
from test_fit import small_model  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]


def vectors(rows, kind=pa.float32()):
    """A one-column ``img`` dataset of list<kind> rows."""
    return ray.data.from_arrow(pa.table({"img": pa.array([list(r) for r in rows], type=pa.list_(kind))}))


# ------------------------------------------------------------------ training
def interrupt_in_epoch(epoch):
    """A metric that raises KeyboardInterrupt (Ctrl-C) in ``epoch``, after its steps."""
    def metric(model):
        if model.epochs_trained == epoch:
            raise KeyboardInterrupt
        return 0.0
    return {"ctrl_c": metric}


def test_an_interrupted_fit_keeps_the_completed_epochs_as_model_fit_does():
    """Interrupted in epoch 2, fit drops that epoch and keeps epoch 1, so that
    fit resumes exactly; the distributed fit kept epoch 1's weights and Adam
    step beside epoch 2's rng_counter (close() set the last step's counter
    after the rollback): 8 where model.fit leaves 4, and a resumed run drew
    other random numbers. Now every byte is model.fit's."""
    data, mask = synthetic(64, missing=0.2)
    options = dict(mask=mask, epochs=3, batch_size=16, progress=False, metrics=interrupt_in_epoch(2))
    local, ray_model = small_model(), small_model()
    with pytest.raises(KeyboardInterrupt):
        local.fit(data, **options)
    with pytest.raises(KeyboardInterrupt):
        distributed.fit(ray_model, data, num_workers=1, **options)
    assert ray_model.epochs_trained == 1 and ray_model.optimizer_state()["rng_counter"] == 4
    assert_same_training_state(local, ray_model)


def test_early_stopping_restores_the_best_epochs_counter_as_model_fit_does():
    """Early stopping restores the best epoch's weights and optimizer state;
    the distributed fit then set the last epoch's rng_counter over it (12
    beside Adam's step 4), so num_workers=1 was not model.fit bit for bit."""
    data, mask = synthetic(64, missing=0.2)
    falling = [5.0, 1.0, 0.5, 0.2, 0.1]
    options = dict(mask=mask, epochs=5, batch_size=16, progress=False, early_stopping=2, monitor="val_k", mode="max",
                   metrics={"k": lambda m: falling[m.epochs_trained - 1]})
    local, ray_model = small_model(), small_model()
    expected = local.fit(data, **options)
    got = distributed.fit(ray_model, data, num_workers=1, **options)
    assert (got.best_epoch, got.stopped_early) == (expected.best_epoch, expected.stopped_early) == (1, True)
    assert ray_model.optimizer_state()["rng_counter"] == ray_model.optimizer_state()["step"] == 4
    assert_same_training_state(local, ray_model)


@pytest.mark.parametrize("model", [None, "model.safetensors", {"visual": 20}])
def test_fit_refuses_what_is_no_model_by_its_type(model):
    """fit(None, ...) said that "this model is being trained by fit, which is
    calling metrics[None]": with no metric running, the record of the one
    running holds None, which refuse_in_metric took for the model given."""
    data, _ = synthetic(16)
    with pytest.raises(TypeError, match=rf"^model: expected a LearnableMultiModal, got {type(model).__name__}$"):
        distributed.fit(model, data, num_workers=1)


@pytest.mark.parametrize("argument", ["data", "validation"])
def test_fit_names_the_column_and_row_of_a_dataset_holding_nan(argument):
    """Left to model.fit, the error named data['visual'] and said that "rows
    the mask marks absent may hold anything", of a mask the caller never gave."""
    rng = np.random.default_rng(0)
    img, aud = rng.standard_normal((12, 20)), rng.standard_normal((12, 12))
    img[5, 3] = np.nan
    spoilt = ray.data.from_arrow(pa.table({"img": pa.array(list(img), type=pa.list_(pa.float32())),
                                           "aud": pa.array(list(aud), type=pa.list_(pa.float32()))}))
    clean = ray.data.from_arrow(pa.table({"img": pa.array(list(np.nan_to_num(img)), type=pa.list_(pa.float32())),
                                          "aud": pa.array(list(aud), type=pa.list_(pa.float32()))}))
    data, validation = (spoilt, clean) if argument == "data" else (clean, spoilt)
    model = small_model()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(gm.NonFiniteError, match=rf"^{argument}: column 'img' \(visual\) holds NaN or inf in row 5; ") as info:
        distributed.fit(model, data, num_workers=1, epochs=1, validation=validation,
                        columns={"visual": "img", "auditory": "aud"}, progress=False)
    assert info.value.arg == argument
    assert all(before[k].tobytes() == v.tobytes() for k, v in model.state_dict().items())


def test_two_threads_that_find_ray_stopped_start_it_once(monkeypatch):
    """fit and embed_dataset start Ray when it is not running. Two threads
    that both found it stopped both called ray.init, and the second failed
    inside Ray: "AssertionError: Perhaps you called ray.init twice by
    accident?" (2 of 2 runs of two concurrent fits in a fresh process).
    Here each ray.init waits until the other thread has looked whether Ray
    runs (2 s at most): without one lock around the look and the start,
    both look before either starts it, and both start it."""
    looks, started = [], []
    cond = threading.Condition()
    state = {"up": False}

    def is_initialized():
        with cond:
            looks.append(threading.get_ident())
            cond.notify_all()
        return state["up"]

    def init(*args, **kwargs):
        me = threading.get_ident()
        with cond:  # under the lock, the other thread looks only after this returns: the 2 s pass
            cond.wait_for(lambda: any(t != me for t in looks), timeout=2)
        started.append(me)
        state["up"] = True

    # distributed's own name for Ray only: Ray's threads keep the real functions
    monkeypatch.setattr(distributed, "ray", SimpleNamespace(is_initialized=is_initialized, init=init))
    monkeypatch.setattr(distributed, "_check_ray_address", lambda address, arg: None)
    run_concurrently(distributed._ensure_ray, distributed._ensure_ray)
    assert len(started) == 1 and len(set(looks)) == 2, (started, looks)


# ---------------------------------------------------------------- embedding
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved small model (visual 20, auditory 12), its folder holding spoilt copies."""
    d = tmp_path_factory.mktemp("hostile")
    path = d / "model.safetensors"
    small_model().save(path)
    raw = path.read_bytes()
    (d / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    (d / "notes.txt").write_text("not a checkpoint")
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    (d / "flipped.safetensors").write_bytes(bytes(flipped))
    return path


@pytest.mark.parametrize("outputs", [None, 3, ("fused", None)])
def test_embed_dataset_refuses_outputs_that_are_no_names(saved, outputs):
    """outputs=None or 3 was "TypeError: 'NoneType' object is not iterable",
    naming no argument."""
    ds = vectors(np.ones((2, 20)))
    with pytest.raises(gm.InvalidValueError, match=rf"^outputs: expected some of \[.*\], got {outputs!r}$".replace("(", r"\(").replace(")", r"\)")) as caught:
        distributed.embed_dataset(ds, saved, {"visual": "img"}, outputs=outputs)
    assert caught.value.arg == "outputs"


@pytest.mark.parametrize("name, error, message", [
    ("missing.safetensors", FileNotFoundError, "no file at"),
    (".", gm.CheckpointError, "is a directory"),
    ("notes.txt", gm.CheckpointError, "not a readable"),
    ("truncated.safetensors", gm.CheckpointError, "truncated or corrupt"),
    ("flipped.safetensors", gm.CheckpointError, "does not match its checksum"),
])
def test_embed_dataset_names_checkpoint_in_its_load_errors(saved, name, error, message):
    """A checkpoint that cannot be loaded was refused as "path: ...",
    load's argument, which the caller of embed_dataset never wrote."""
    path = saved.parent if name == "." else saved.parent / name
    with pytest.raises(error, match=message) as caught:
        distributed.embed_dataset(vectors(np.ones((2, 20))), path, {"visual": "img"})
    assert str(caught.value).startswith("checkpoint: ") and f"'{path}'" in str(caught.value), str(caught.value)
    assert getattr(caught.value, "arg", "checkpoint") == "checkpoint"  # FileNotFoundError has no arg


@pytest.mark.parametrize("checkpoint", [None, 3, [1]])
def test_embed_dataset_refuses_a_checkpoint_of_another_type(checkpoint):
    with pytest.raises(TypeError, match=rf"^checkpoint: expected a path to a saved model or a LearnableMultiModal, got {type(checkpoint).__name__}$"):
        distributed.embed_dataset(vectors(np.ones((2, 20))), checkpoint, {"visual": "img"})


#: Columns whose Arrow type no row of can feed a vector modality: refused by
#: the call (their schema says so), where the actors refused them per batch
#: once the dataset ran ("got shapes [()]" for bytes and records).
WRONG_TYPES = [
    (pa.array([[[1.0] * 20]] * 3, type=pa.list_(pa.list_(pa.float32()))), gm.ShapeError, r"vectors of vectors \(items of type list<item: float>\)"),
    (pa.array([["1.5"] * 20] * 3, type=pa.list_(pa.string())), TypeError, r"got vectors of string items"),
    (pa.array([b"x"] * 3), TypeError, r"got binary values"),
    (pa.array([{"a": 1.0}] * 3), TypeError, r"got struct<a: double> values"),
]


@pytest.mark.parametrize("values, error, message", WRONG_TYPES)
def test_column_types_no_row_can_use_are_refused_by_the_call(saved, values, error, message):
    ds = ray.data.from_arrow(pa.table({"img": values}))
    with pytest.raises(error, match=rf"^column 'img' \(visual\): expected vectors of 20 .*{message}"):
        distributed.embed_dataset(ds, saved, {"visual": "img"}, num_actors=1)
    with pytest.raises(error, match=rf"^data: column 'img' \(visual\): expected vectors of 20 .*{message}"):  # fit: which dataset
        distributed.fit(small_model(), ds, num_workers=1, columns={"visual": "img"}, epochs=1, progress=False)


def test_values_that_are_no_vectors_are_refused_by_their_type():
    """What the schema cannot show (a pandas batch): bytes among the rows were
    "expected vectors of 20 numbers ... got shapes [()]"."""
    plan = distributed._ColumnPlan(small_model(), {"visual": "v"})
    column = np.empty(2, object)
    column[:] = [b"x", np.ones(20)]
    with pytest.raises(TypeError, match=r"^column 'v' \(visual\): expected vectors of 20 numbers \(or texts\) per row, got values of type bytes$"):
        plan.inputs({"v": column})


def test_a_checkpoint_removed_before_the_dataset_runs_is_the_packages_error(tmp_path, quiet_ray_data):
    """The actors load the file when the lazy dataset runs: removed in
    between, an actor's constructor failed and the caller got Ray's
    ActorDiedError, which is none of the package's errors and names no
    argument. Now a CheckpointError naming ``checkpoint`` and the file."""
    path = tmp_path / "model.safetensors"
    small_model().save(path)
    out = distributed.embed_dataset(vectors(np.ones((4, 20))), path, {"visual": "img"}, num_actors=1)
    path.unlink()
    with pytest.raises(gm.CheckpointError, match="could not be loaded when the dataset ran") as caught:
        out.materialize()
    assert caught.value.arg == "checkpoint" and str(path) in str(caught.value) and "no file at" in str(caught.value)
    del caught


# -------------------------------------------------------------- command line
def test_cli_names_the_workers_flag_when_the_cluster_cannot_hold_them(tmp_path, capsys):
    """`train --workers 3` and `embed --ray --workers 3` on a 2-CPU cluster
    were refused as "num_workers: ..." and "num_actors: ...", Python
    arguments the user of the command line never typed."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.normal(size=(40, 20)).astype(np.float32))
    np.save(tmp_path / "a.npy", rng.normal(size=(40, 12)).astype(np.float32))
    files = ["-m", f"visual={tmp_path / 'v.npy'}", "-m", f"auditory={tmp_path / 'a.npy'}"]
    code = main(["train", *files, "--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress",
                 "-o", str(tmp_path / "m.safetensors"), "--workers", "3"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("grapheme-mm: error: --workers: 3 workers of 1 CPU each do not fit"), err
    small_model().save(tmp_path / "m.safetensors")
    code = main(["embed", str(tmp_path / "m.safetensors"), *files, "-o", str(tmp_path / "e.npy"), "--ray", "--workers", "3"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("grapheme-mm: error: --workers: 3 actors of 1 CPU each do not fit"), err
    assert not (tmp_path / "e.npy").exists()


def test_two_fits_that_each_need_every_cpu_take_turns_instead_of_waiting_for_each_other(monkeypatch):
    """Each fit started its workers one by one, then waited for all of
    them: two fits of 2 workers on the 2-CPU cluster (two threads, two
    models) that had each started one worker held a CPU each and waited for
    the other forever. Here each fit's first worker waits (3 s at most) until
    the other fit has started one too, so that both hold one: the workers
    of a fit are now reserved together (a placement group), so the second
    fit waits for the whole first one instead, and both end."""
    both_started_one = threading.Barrier(2, timeout=3)
    actors, original = [], distributed._RaySteps._start

    def start(self, *args, **kwargs):
        actor = original(self, *args, **kwargs)
        actors.append(actor)
        if len(self.workers) == 0:  # this fit's first worker
            try:
                both_started_one.wait()
            except threading.BrokenBarrierError:  # the other fit starts none while this one holds the CPUs
                pass
        return actor

    monkeypatch.setattr(distributed._RaySteps, "_start", start)
    data, _ = synthetic(32)
    done = []

    def train():
        model = small_model()
        distributed.fit(model, data, num_workers=2, epochs=1, batch_size=16, progress=False)
        done.append(model.epochs_trained)

    threads = [threading.Thread(target=train, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    hung = any(t.is_alive() for t in threads)
    if hung:  # end them, so that the session's Ray gets its CPUs back
        for actor in actors:
            ray.kill(actor)
        for t in threads:
            t.join(timeout=30)
    assert not hung and done == [1, 1], "two fits waited for each other's CPUs"


def test_embed_dataset_names_a_row_holding_nan_by_its_column_and_other_columns(monkeypatch):
    """The model named inputs['visual'] (no argument of embed_dataset's) and
    the row's place in its batch: row 9 for the dataset's row 57 in batches
    of 16, which Ray Data does not number, so the user looked at row 9."""
    for name in _RAY_DATA_ERROR_LOGGERS:  # pytest keeps their records, whose tracebacks would keep the failed pool alive
        monkeypatch.setattr(logging.getLogger(name), "disabled", True)
    img = np.random.default_rng(0).standard_normal((100, 20)).astype(np.float32)
    img[57, 4] = np.nan
    ds = ray.data.from_arrow(pa.table({"id": np.arange(100), "img": pa.array(list(img), type=pa.list_(pa.float32()))}))
    out = distributed.embed_dataset(ds, small_model(), {"visual": "img"}, batch_size=16, num_actors=1)
    with pytest.raises(gm.NonFiniteError) as info:
        out.materialize()
    error = info.value.cause if hasattr(info.value, "cause") else info.value
    assert str(error).startswith("column 'img' (visual) holds NaN or inf in a row of a batch of 16 (its row 9;")
    assert "whose other columns are {'id': 57}" in str(error)
    assert error.arg == "img"
    del info, error
    gc.collect()  # a failed Ray Data run frees its actor pool when its reference cycles are collected
