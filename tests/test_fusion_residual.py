"""``fusion_residual``: a residual path around the fusion network, fused =
normalize(fusion(x) + c × mean of the present modality embeddings). The
default 0 is the original fusion (the same weights give the same outputs as
before the option); the forward matches a NumPy reference, the gradient is
the one checked in ``rust/core/tests/core/gradients.rs``, and checkpoints, exact
resume, the CLI and the scikit-learn estimator carry the option."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import (
    assert_resumes_exactly,
    reloaded,
    save_with_config_fields,
    small_model,
    two_cluster_views,
)
from numpy_reference import NumpyModel

DIMS = {"visual": 6, "auditory": 9, "linguistic": 4, "abstract": 5}


def model(**changes):
    return small_model(DIMS, **changes)


def batch(n=24, seed=0):
    data = two_cluster_views(DIMS, n, seed)
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, 7), dtype=bool)
    slots = [gm.Modality.parse(m).index for m in DIMS]
    mask[:, slots] = rng.random((n, len(slots))) < 0.6
    mask[0, slots] = True
    mask[1, slots[1]] = True
    mask[1, [s for s in slots if s != slots[1]]] = False  # one modality alone
    mask[2] = False  # nothing present
    return data, mask


def test_default_is_the_original_fusion_and_adds_no_parameters():
    assert gm.LearnableMultiModalConfig().fusion_residual == 0.0
    plain, residual = model(), model(fusion_residual=1.0)
    assert plain.num_parameters() == residual.num_parameters()
    for name, value in plain.state_dict().items():
        assert value.tobytes() == residual.state_dict()[name].tobytes(), name
    data, mask = batch()
    emb = plain.encode(data, mask)
    np.testing.assert_array_equal(emb, residual.encode(data, mask))
    assert not np.allclose(plain.fuse(emb, mask)[mask.any(axis=1)], residual.fuse(emb, mask)[mask.any(axis=1)], atol=1e-3)


@pytest.mark.parametrize("c", [0.0, 0.3, 2.0])
def test_forward_matches_the_numpy_reference(c):
    m = model(fusion_residual=c)
    data, mask = batch()
    emb, fused = m.encode_and_fuse(data, mask)
    ref = NumpyModel(m.state_dict(), num_heads=2)
    want = ref.fuse(emb.astype(np.float64), mask, residual=c)
    present = mask.any(axis=1)
    np.testing.assert_allclose(fused[present], want[present], atol=1e-5)
    np.testing.assert_allclose(m.fuse(emb, mask), fused, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fused[present], axis=1), 1, atol=1e-5)


def test_a_large_weight_makes_the_fused_embedding_the_mean_of_the_present_views():
    m = model(fusion_residual=1e6)
    data, mask = batch()
    emb, fused = m.encode_and_fuse(data, mask)
    mean = emb.sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
    present = mask.any(axis=1)
    want = mean[present] / np.linalg.norm(mean[present], axis=1, keepdims=True)
    np.testing.assert_allclose(fused[present], want, atol=1e-4)
    np.testing.assert_allclose(fused[1], emb[1, gm.Modality.parse("auditory").index], atol=1e-4)  # one view: itself


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), 2e6, "1", True, None])
def test_bad_values_name_the_argument(value):
    with pytest.raises((InvalidValueError, TypeError), match="fusion_residual"):
        model(fusion_residual=value)


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), 2e6])
def test_the_core_refuses_bad_values_by_itself(value):
    with pytest.raises(InvalidValueError) as err:
        gm._core.Model(8, 16, 1e-3, 2, 10, 0, [6] * 7, fusion_residual=value)
    assert err.value.arg == "fusion_residual"


def test_every_objective_trains_finitely_and_gradients_reach_the_fusion():
    data, mask = batch(32)
    m = model(fusion_residual=1.0, fused_neighbors=3, fused_neighbor_space="inputs", binder_kind="bilinear")
    before = m.state_dict()
    weights = {"contrastive": 1.0, "fused_contrastive": 1.0, "binding": 1.0, "cross_modal": 0.1}
    losses = m.train_step(gm.Batch(inputs=data, mask=mask), weights=weights)
    assert all(np.isfinite(v) for v in losses.values()), losses
    after = m.state_dict()
    assert all(not np.array_equal(after[f"fusion.{i}.weight"], before[f"fusion.{i}.weight"]) for i in range(3))


def test_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    data = two_cluster_views(DIMS, 48)
    kwargs = dict(epochs=2, batch_size=16, progress=False)
    make = lambda: model(fusion_residual=2.5, fused_neighbors=3)  # noqa: E731
    trained = assert_resumes_exactly(make, data, tmp_path, **kwargs)  # also checks the loaded config equals
    loaded = reloaded(trained, tmp_path)
    assert loaded.config.fusion_residual == 2.5
    emb = trained.encode(data)
    assert loaded.fuse(emb).tobytes() == trained.fuse(emb).tobytes()


def test_checkpoints_without_the_field_load_as_the_original_fusion(tmp_path):
    m = model()
    loaded = reloaded(m, tmp_path, without=("fusion_residual",))
    assert loaded.config == m.config and loaded.config.fusion_residual == 0.0


def test_a_forged_checkpoint_with_a_bad_weight_is_a_clean_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_with_config_fields(model(), path, fusion_residual=-1)
    with pytest.raises(gm.CheckpointError, match="fusion_residual"):
        gm.LearnableMultiModal.load(path)
