"""Defects the s59 audit noticed and left (s60). Each test says what a user
saw before the fix."""

import copy
import dataclasses
import inspect
import os
import pickle
import sys

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_fit import small_model, synthetic
from test_trust_ray_s57 import distributed, ray, ray_test  # Ray imported (or not) as the CI asks
from test_trust_ray_s58 import _cpus_freed, tensors

if distributed is not None:
    import pyarrow as pa  # Ray Data's own dependency
else:
    pa = None


def _dying_after_each_task(model, marker):
    """``model`` as a subclass (shipped to the actors as it is) whose actor's
    process ends, as an out-of-memory kill does, at every task (a block of
    rows, the batches Ray retries together) but the first of each start:
    ``marker``, a file, says a process died and its successor has not yet
    embedded. Local: pickled by value for Ray's workers, which cannot
    import the tests."""

    class DiesBetweenBatches(gm.LearnableMultiModal):
        def encode_and_fuse(self, *args, **kwargs):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            os.remove(marker)
            return super().encode_and_fuse(*args, **kwargs)

    dying = DiesBetweenBatches.__new__(DiesBetweenBatches)
    dying.__dict__.update(model.__dict__)
    return dying


@ray_test
@pytest.mark.timeout(90)
@pytest.mark.skipif(distributed is None or "enable_true_multi_threading" not in
                    inspect.signature(ray.data.ActorPoolStrategy).parameters,
                    reason="Ray Data 2.51 calls an actor's UDF in a thread where Ray names no task: restarts counted over "
                    "the actor's life there")
def test_an_embedding_actor_that_dies_now_and_then_is_restarted_per_batch_not_three_times_in_its_life(quiet_ray_data, tmp_path):
    """``MAX_RESTARTS_PER_STEP`` bounded an embedding actor's restarts over
    its whole life: an ``embed_dataset`` whose actor was lost once every
    block of rows (a preemptible node, an out-of-memory kill), each block
    embedded at its retry, failed at the 4th loss with "an embedding
    actor's process died 4 times". The count now starts again once the
    actor completes a task: every row comes back, embedded as the model
    embeds it (an actor that dies on every task still fails the run,
    test_trust_ray_s59 and below)."""
    x = synthetic(20)["visual"]
    table = pa.table({"v": tensors(x), "id": pa.array(range(20))})
    ds = ray.data.from_arrow([table.slice(start, 4) for start in range(0, 20, 4)])  # 5 blocks, 5 tasks
    model = small_model()
    rows = distributed.embed_dataset(ds, _dying_after_each_task(model, str(tmp_path / "died")), {"visual": "v"},
                                     num_actors=1, batch_size=4).take_all()
    rows.sort(key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(20))
    assert np.stack([r["fused"] for r in rows]).tobytes() == model.encode_and_fuse({"visual": x})[1].tobytes()
    assert _cpus_freed(), ray.available_resources()
    from ray.experimental.internal_kv import _internal_kv_list

    assert _internal_kv_list("", namespace=distributed._COMPLETED_TASK_NAMESPACE) == []  # forgotten with its actor


# ------------------------------------------------------------------ 2. a pandas row's labels through dataclasses.replace
def test_a_reordered_pandas_row_made_into_another_component_keeps_its_labels():
    """``dataclasses.replace(component, confidence=0.5)`` of a
    ``ModalFeatures`` built from a pandas row whose labels are the model's
    learned columns reordered (``df[['c', 'a', 'b']].iloc[0]``) dropped the
    labels: the new component was embedded by position, each column read as
    another, without a word, where the original is refused. The labels now
    follow the features array, through ``replace``, a copy, and a copy of
    an unpickled one; a row in the learned order still embeds as its
    values."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=list("abc"))
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    model.fit_normalization({"visual": frame})
    reordered = gm.ModalFeatures(frame[["c", "a", "b"]].iloc[0], "visual")
    for made in (dataclasses.replace(reordered, confidence=0.5), copy.copy(reordered),
                 dataclasses.replace(pickle.loads(pickle.dumps(reordered)), timestamp=1.0),
                 dataclasses.replace(copy.deepcopy(reordered), confidence=0.25)):
        with pytest.raises(gm.InvalidValueError, match=r"^event\.components\[0\]\.features: event 7's visual component was "
                           r"given as a pandas Series whose labels \['c', 'a', 'b'\] are the columns the model learned"):
            model.encode_event(gm.MultiModalEvent(7, [made]))
    in_order = dataclasses.replace(gm.ModalFeatures(frame.iloc[0], "visual"), confidence=0.5)
    expected = model.encode_event(gm.MultiModalEvent(8, [gm.ModalFeatures(frame.iloc[0].to_numpy(), "visual", confidence=0.5)]))
    assert model.encode_event(gm.MultiModalEvent(8, [in_order]))[gm.Modality.VISUAL].tobytes() == expected[gm.Modality.VISUAL].tobytes()


# ------------------------------------------------------------------ 3. recorded embeddings not of norm 1
def _state(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_recorded_embeddings_that_are_not_unit_vectors_are_refused_naming_the_row_and_its_norm():
    """``Batch(embeddings=...)`` of vectors that are not of norm 1 (raw
    features, an average of embeddings, another encoder's output) trained
    the fusion network and binder on them without a word, though every
    objective assumes the unit vectors the encoders give (the temperatures
    scale cosine similarities). ``losses``, ``backward`` and ``train_step``
    now refuse them, naming the row, the modality and the norm, the model
    left as it was; the model's own embeddings (float32 round-off, a zero
    embedding of all-zero input, an event of pooled components recorded in
    the buffer) and anything in slots the mask marks absent still train."""
    model = small_model()
    x = {m: v for m, v in synthetic(6).items() if m in ("visual", "auditory")}
    emb, fused = model.encode_and_fuse(x)
    scaled = emb.copy()
    scaled[3, 1] *= 1.01  # 1 % too long, row 3's auditory embedding
    before = _state(model)
    said = (r"^embeddings: row 3's auditory embedding \(embeddings\[3, 1\], present\) has norm 1\.01 \(1 present "
            r"embeddings are longer than 1\); expected unit vectors, as the model's encoders give them \(norm 1 within "
            r"0\.001; shorter only for input near zero\), which the objectives assume: divide each by its norm")
    for call in (model.losses, model.backward, model.train_step):
        with pytest.raises(gm.InvalidValueError, match=said) as err:
            call(gm.Batch(embeddings=scaled, fused=fused))
        assert err.value.arg == "embeddings"
    assert all(before[k].tobytes() == v.tobytes() for k, v in model.state_dict().items()) and not model.has_gradients()

    mask = np.linalg.norm(emb, axis=2) > 0
    anything_absent = np.where(mask[:, :, None], emb, 5.0).astype(np.float32)
    zeros_present = emb.copy()
    zeros_present[0, 0] = 0.0  # as the encoder gives all-zero input before training moves its bias
    for ok in (gm.Batch(embeddings=emb, fused=fused), gm.Batch(embeddings=anything_absent, mask=mask, fused=fused),
               gm.Batch(embeddings=zeros_present, mask=mask, fused=fused)):
        assert np.isfinite(model.losses(ok)["seed_consistency"])
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(x["visual"][0], "visual", confidence=0.3),
                                   gm.ModalFeatures(x["visual"][1], "visual", confidence=0.9)])
    model.record_fusion(event, 0.5)
    model.train_step(gm.Batch.from_experiences(model.experience.batch()))
    assert model.optimizer_state()["step"] == 1


# ------------------------------------------------------------------ 5. a CSV header partly reordered
def _csv(path, header, values):
    path.write_text(header + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in values) + "\n")


def test_a_csv_header_with_learned_columns_swapped_beside_a_renamed_one_is_refused_by_embed(tmp_path, capsys):
    """``grapheme-mm embed`` of a CSV file whose header had two of the
    columns the checkpoint was trained on swapped and a third renamed
    (``b,a,x`` of ``a,b,c``) was read by position, ``b`` as ``a``, without
    a word (only a header of the same names reordered was refused). Now
    refused, exit 2, naming the columns at other positions and the order
    expected; a header of other names only, or one renamed in place
    (``a,b,z``), is read by position as before."""
    from grapheme_multimodal.cli import main

    x = np.random.default_rng(0).normal(size=(24, 3))
    _csv(tmp_path / "train.csv", "a,b,c", x)
    np.save(tmp_path / "aud.npy", np.random.default_rng(1).normal(size=(24, 4)).astype(np.float32))
    small = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress"]
    assert main(["train", "-m", f"visual={tmp_path / 'train.csv'}", "-m", f"auditory={tmp_path / 'aud.npy'}",
                 "-o", str(tmp_path / "m.safetensors"), *small]) == 0

    def embed(name, header, values):
        _csv(tmp_path / name, header, values)
        capsys.readouterr()
        code = main(["embed", str(tmp_path / "m.safetensors"), "-m", f"visual={tmp_path / name}",
                     "-m", f"auditory={tmp_path / 'aud.npy'}", "-o", str(tmp_path / f"{name}.npy")])
        return code, capsys.readouterr().err

    code, said = embed("partial.csv", "b,a,x", x[:, [1, 0, 2]])
    assert code == 2 and not (tmp_path / "partial.csv.npy").exists()
    assert "partial.csv (b,a,x) names columns the checkpoint was trained on at other " \
           "positions: b (column 1, trained on as column 2), a (column 2, trained on as column 1); columns are read by " \
           "position, so each would be read as another; expected them in the order it was trained on: a,b,c" in said, said
    assert embed("same.csv", "a,b,c", x)[0] == 0
    for name, header in (("renamed.csv", "p,q,r"), ("one_renamed.csv", "a,b,z")):
        assert embed(name, header, x)[0] == 0
        assert np.load(tmp_path / f"{name}.npy").tobytes() == np.load(tmp_path / "same.csv.npy").tobytes()


def test_a_frame_or_row_with_learned_columns_swapped_beside_a_renamed_one_is_refused():
    """The same of the Python API: a data frame (``encode``), a pandas row
    (``ModalFeatures``) or statistics (``set_normalization``) whose names
    had two of the learned columns swapped and a third renamed (``b, a,
    x`` of ``a, b, c``) were read by position, without a word. Now each is
    refused naming the columns at other positions; a frame renamed in place
    (``a, b, z``) is read by position as before."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=list("abc"))
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    model.fit_normalization({"visual": frame})
    before = _state(model)
    partly = frame[["b", "a", "c"]].rename(columns={"c": "x"})
    moved = r"at other positions: 'b' \(column 0, (fitted|learned) as column 1\), 'a' \(column 1, \1 as column 0\)"
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: its columns \['b', 'a', 'x'\] name columns the "
                       r"model was fitted on \(\['a', 'b', 'c'\]\) " + moved):
        model.encode({"visual": partly})
    with pytest.raises(gm.InvalidValueError, match=r"^event\.components\[0\]\.features: .* labels \['b', 'a', 'x'\] name "
                       r"columns the model learned this modality from \(\['a', 'b', 'c'\]\) " + moved):
        model.encode_event(gm.MultiModalEvent(1, [gm.ModalFeatures(partly.iloc[0], "visual")]))
    with pytest.raises(gm.InvalidValueError, match=r"labels \['b', 'a', 'x'\] name columns .* " + moved):
        model.set_normalization("visual", partly.mean(), partly.std())
    assert all(before[k].tobytes() == v.tobytes() for k, v in model.state_dict().items())
    in_place = frame.rename(columns={"c": "z"})
    assert model.encode({"visual": in_place}).tobytes() == model.encode({"visual": frame.to_numpy()}).tobytes()


# ------------------------------------------------------------------ 4. Ctrl-C as a `with writing_together():` opens or closes
@pytest.mark.usefixtures("default_sigint")  # CI runs pytest with SIGINT ignored: no Ctrl-C would land
@pytest.mark.skipif(sys.platform == "win32", reason="a real SIGINT sent to the process itself")
def test_a_ctrl_c_as_a_writing_together_block_opens_or_closes_never_swallows_a_save_in_its_handler(tmp_path):
    """``with io.writing_together():`` (public) kept its block open while a
    Ctrl-C that landed as contextlib's ``__enter__`` returned or its
    ``__exit__`` began was alive (in its handler; a notebook keeps the
    last one): a save in the handler, or a new block there, was staged into
    the dead block, returned as written, and its file was never written.
    Now the save in the handler and a block opened there are on disk, the
    block's own target is old or new whole, and no temporary file is left
    once the interrupt is dropped."""
    from grapheme_multimodal import io

    from ctrl_c_sweep import interrupted_at

    target, rescue, again = tmp_path / "result.bin", tmp_path / "rescue.bin", tmp_path / "again.bin"

    def block():
        with io.writing_together():
            io.atomic_write_bytes(target, b"new")

    def saved_in_the_handler():
        io.atomic_write_bytes(rescue, b"rescue")
        with io.writing_together():  # a block opened there is a block of its own
            io.atomic_write_bytes(again, b"again")
        if not (rescue.exists() and rescue.read_bytes() == b"rescue" and again.exists() and again.read_bytes() == b"again"):
            wrong.append((n, "a save in the handler was not written"))

    # every point of the with statement, and of what it calls (the block's __enter__ and __exit__: each point
    # in them, as their callers' frames are block's own)
    in_block = lambda code: code is block.__code__  # noqa: E731
    wrong, n = [], 0
    while True:
        n += 1
        io.atomic_write_bytes(target, b"old")
        for name in (rescue, again):
            name.unlink(missing_ok=True)
        interrupted = interrupted_at(n, block, in_block, handler=saved_in_the_handler)
        left = sorted(p.name for p in tmp_path.iterdir())
        if target.read_bytes() not in (b"old", b"new") or not set(left) <= {"result.bin", "rescue.bin", "again.bin"}:
            wrong.append((n, f"left {target.read_bytes()!r}, {left}"))
        if io._TOGETHER.get() is not None:
            wrong.append((n, "the block stayed open"))
            io._TOGETHER.set(None)
        if not interrupted:
            break
    assert n > 5, f"the sweep reached {n} points only"
    assert target.read_bytes() == b"new"
    assert wrong == [], wrong[:5]


def test_an_ensemble_of_members_fitted_on_columns_partly_swapped_is_refused_at_its_save(tmp_path):
    """``save_ensemble`` of two models fitted on frames ``a, b, c`` and
    ``b, a, x`` was written: an ensemble reads each file once, by position,
    for all its members, so one member read ``a`` as its ``b``, without a
    word (only members of the same names reordered were refused). Now
    refused, naming the member and the columns at other positions; nothing
    is written."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=list("abc"))

    def fitted_on(columns):
        model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
        model.fit_normalization({"visual": columns})
        return model

    members = [fitted_on(frame), fitted_on(frame[["b", "a", "c"]].rename(columns={"c": "x"}))]
    with pytest.raises(gm.InvalidValueError, match=r"^models\[1\]: was fitted on the visual columns \['b', 'a', 'x'\], "
                       r"which name columns of models\[0\] \(\['a', 'b', 'c'\]\) at other positions: 'b' \(column 0, "
                       r"models\[0\] has it as column 1\), 'a' \(column 1, models\[0\] has it as column 0\)") as err:
        gm.save_ensemble(members, tmp_path / "e.safetensors")
    assert err.value.arg == "models[1]" and list(tmp_path.iterdir()) == []
    gm.save_ensemble([members[0], fitted_on(frame.rename(columns={"c": "z"}))], tmp_path / "e.safetensors")  # renamed in place
