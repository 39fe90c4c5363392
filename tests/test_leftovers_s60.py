"""Defects the s59 audit noticed and left (s60). Each test says what a user
saw before the fix."""

import copy
import dataclasses
import inspect
import os
import pickle

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
