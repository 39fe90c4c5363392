"""Defects left by s60 and fixed here (s60-leftovers2). Each test says
what a user saw before the fix."""

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.buffer import Experience
from test_fit import small_model, synthetic
from test_trust_ray_s57 import distributed, ray, ray_test  # Ray imported (or not) as the CI asks
from test_trust_ray_s58 import _cpus_freed


# ------------------------------------------------------------------ 1. non-unit embeddings refused where recorded
def _unit_rows(n, e=4, seed=0):
    """``(embeddings [n, 7, e] of unit vectors, mask [n, 7] all present)``."""
    emb = np.random.default_rng(seed).normal(size=(n, 7, e))
    return emb / np.linalg.norm(emb, axis=-1, keepdims=True), np.ones((n, 7), bool)


def _extend(buf, emb, mask):
    n, e = emb.shape[0], emb.shape[2]
    buf.extend(emb, mask, np.zeros((n, e)), np.zeros((n, 7, 7)), np.zeros(n))


def test_extend_refuses_embeddings_that_are_not_unit_vectors_naming_row_slot_and_norm():
    """``ExperienceBuffer.extend(np.ones((n, 7, E)), ...)`` recorded them
    without a word; training from the buffer refused them only later, far
    from the call that made them. Now extend refuses them, naming the row,
    the slot and the norm, the buffer unchanged; slots the mask marks absent
    are not checked, and zero embeddings (an encoder's output for all-zero
    input) are recorded."""
    buf = gm.ExperienceBuffer(16)
    good, mask = _unit_rows(3)
    _extend(buf, good, mask)
    before = buf.state()
    bad = good.copy()
    bad[2, 4] *= 2.0
    said = (r"^embeddings: row 2's proprioceptive embedding \(embeddings\[2, 4\], present\) has norm 2 \(1 present "
            r"embeddings are longer than 1\); expected unit vectors")
    with pytest.raises(gm.InvalidValueError, match=said) as err:
        _extend(buf, bad, mask)
    assert err.value.arg == "embeddings"
    with pytest.raises(gm.InvalidValueError, match=r"has norm 2\.64575 \(21 present"):  # sqrt(7): np.ones((n, 7, 7))
        _extend(gm.ExperienceBuffer(4), np.ones((3, 7, 7)), mask)
    after = buf.state()
    assert len(buf) == 3 and before[1] == after[1]
    assert all(before[0][k].tobytes() == v.tobytes() for k, v in after[0].items())

    absent = mask.copy()
    absent[2, 4] = False  # the same row, its long slot marked absent: not checked, recorded as zeros
    zero = good.copy()
    zero[0, 0] = 0.0
    _extend(buf, bad, absent)
    _extend(buf, zero, mask)
    assert len(buf) == 9 and not buf.batch().embeddings[5, 4].any()
    _extend(buf, good * 0.02, mask)  # shorter: what the encoders give for input near zero (below)
    assert len(buf) == 12


def test_a_models_own_embeddings_of_input_near_zero_are_recorded_and_trained_on():
    """The encoders divide a row of norm below 1e-8 by 1e-8, not by its
    norm: inputs of 1e-10 give embeddings of norm 0.02. ``record_batch``
    recorded them, and ``compute_loss`` (and ``train_step`` on a sample of
    the buffer) then refused the model's own embeddings as "not of norm 1".
    Shorter embeddings are now taken, by the buffer and by training alike;
    longer ones are refused by both."""
    model = small_model()
    x = {"visual": np.full((3, 20), 1e-10, np.float32)}
    emb, _ = model.encode_and_fuse(x)
    assert 0 < np.linalg.norm(emb[:, 0], axis=-1).max() < 0.5
    model.record_batch(x)
    assert len(model.experience) == 3 and np.isfinite(model.compute_loss())
    model.train_step(gm.Batch.from_experiences(model.experience.sample(3)))


def test_append_refuses_an_experience_whose_embedding_is_not_a_unit_vector_naming_its_slot():
    """``append(Experience(embeddings=np.ones((7, E)), ...))`` recorded it;
    now it is refused naming ``experience.embeddings`` and the slot."""
    buf = gm.ExperienceBuffer(4)
    emb, _ = _unit_rows(1)
    emb = emb[0]
    emb[6] *= 2.0
    x = Experience(embeddings=emb, mask=np.ones(7, bool), fused=np.zeros(4), pair_strengths=np.zeros((7, 7)),
                   reward=0.0, event_id=1)
    said = (r"^experience\.embeddings: its abstract embedding \(experience\.embeddings\[6\], present\) has norm 2 "
            r"\(1 present embeddings are longer than 1\).* or mark absent slots False in experience\.mask$")
    with pytest.raises(gm.InvalidValueError, match=said) as err:
        buf.append(x)
    assert err.value.arg == "experience.embeddings" and len(buf) == 0
    mask = np.ones(7, bool)
    mask[6] = False
    buf.append(Experience(embeddings=emb, mask=mask, fused=np.zeros(4), pair_strengths=np.zeros((7, 7)),
                          reward=0.0, event_id=1))
    assert len(buf) == 1


def test_buffers_saved_with_embeddings_that_are_not_unit_vectors_still_load(tmp_path):
    """Files and pickles written before this check may hold such embeddings
    (nothing saved is unloadable): ``from_state``, ``from_file``, ``load``
    and unpickling take them as they are, bit for bit."""
    buf = gm.ExperienceBuffer(8)
    emb, mask = _unit_rows(4)
    _extend(buf, emb, mask)
    tensors, meta = buf.state()
    tensors = dict(tensors, embeddings=tensors["embeddings"] * np.float32(3.0))
    old = gm.ExperienceBuffer.from_state(tensors, meta)
    old.save(tmp_path / "old.safetensors")
    loaded = [old, gm.ExperienceBuffer.from_file(tmp_path / "old.safetensors"), pickle.loads(pickle.dumps(old))]
    into = gm.ExperienceBuffer(8)
    into.load(tmp_path / "old.safetensors")
    for b in (*loaded, into):
        assert b.batch().embeddings.tobytes() == tensors["embeddings"][:4].tobytes()


# ------------------------------------------------------------------ 2. embed --ray reads its outputs in the driver
@ray_test
@pytest.mark.timeout(60)
def test_cli_embed_on_ray_reads_its_outputs_without_a_ray_data_step_after_the_pool(tmp_path, monkeypatch):
    """``embed --ray`` read the pool's outputs through ``select_columns``,
    a step Ray Data runs as tasks after the embedding pool, which Ray Data
    can wait forever for behind a pool of every CPU on larger data. Now the
    columns are selected in the driver from the blocks the pool gives;
    every output (fused, bindings, hidden features) is what ``embed``
    without ``--ray`` writes, bit for bit, in row order."""
    from grapheme_multimodal.cli import main

    pools, selected = [], []

    def embed_dataset(*args, **kwargs):
        pools.append(embed_dataset.real(*args, **kwargs))
        return pools[-1]

    def select_columns(self, *args, **kwargs):
        selected.append(self)
        return select_columns.real(self, *args, **kwargs)

    embed_dataset.real = distributed.embed_dataset
    select_columns.real = ray.data.Dataset.select_columns
    monkeypatch.setattr(distributed, "embed_dataset", embed_dataset)
    monkeypatch.setattr(ray.data.Dataset, "select_columns", select_columns)
    x = synthetic(10)
    small_model(encoder_hidden=(8,)).save(tmp_path / "m.safetensors")
    common = ["embed", str(tmp_path / "m.safetensors"), "--batch-size", "2"]
    for m in ("visual", "auditory"):
        np.save(tmp_path / f"{m}.npy", x[m])
        common += ["-m", f"{m}={tmp_path / f'{m}.npy'}"]
    outputs = {"ray": [], "local": []}
    for run, flags in (("ray", ["--ray", "--workers", "2"]), ("local", [])):
        files = {flag: tmp_path / f"{run}{flag}.npy" for flag in ("-o", "--bindings", "--hidden-features")}
        assert main([*common, *[a for f, p in files.items() for a in (f, str(p))], *flags]) == 0
        outputs[run] = [np.load(p) for p in files.values()]
    assert len(pools) == 1 and not [ds for ds in selected if ds is pools[0]]
    assert [a.tobytes() for a in outputs["ray"]] == [a.tobytes() for a in outputs["local"]]
    assert _cpus_freed(), ray.available_resources()


# ------------------------------------------------------------------ 3. nullable labels holding pd.NA
def test_nullable_labels_holding_na_are_named_missing_labels():
    """``knn_accuracy(X, pd.array([0, 1, pd.NA, ...], dtype="Int64"), ...)``
    said "train_y holds nan at row 2; expected finite labels", as if a
    number were wrong (numpy reads the nullable column's NA as NaN), where
    the same ``pd.NA`` among objects is named a missing label. Now it is
    named a missing label (<NA>) as well; a float NaN is still refused as
    not finite."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X, Xt, yt = rng.normal(size=(8, 4)), rng.normal(size=(4, 4)), np.array([0, 1, 0, 1])
    said = (r"^train_y holds <NA> at row 2; expected a class label in every row \(<NA> marks a missing label, as NaN "
            r"and None do, and is no class: leave those rows out\)$")
    ints = pd.array([0, 1, pd.NA, 1, 0, 1, 0, 1], dtype="Int64")
    bools = pd.array([True, False, pd.NA, True, False, True, False, True], dtype="boolean")
    for y in (ints, pd.Series(ints), bools, ints.astype(object)):
        with pytest.raises(gm.InvalidValueError, match=said) as err:
            metrics.knn_accuracy(X, y, Xt, yt, k=3)
        assert err.value.arg == "train_y"
    with pytest.raises(gm.NonFiniteError, match=r"^train_y holds nan at row 2; expected finite labels$"):
        metrics.knn_accuracy(X, np.array([0, 1, np.nan, 1, 0, 1, 0, 1]), Xt, yt, k=3)
    assert 0.0 <= metrics.knn_accuracy(X, ints.fillna(0), Xt, yt, k=3) <= 1.0
