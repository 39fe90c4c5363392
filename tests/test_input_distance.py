"""``input_distance``: how the inputs' distance that finds each row's
nearest rows (``fused_neighbor_space="inputs"``, ``contrastive_neighbors``)
weighs the modalities. ``"columns"`` (the config's default, the behaviour
before the option): every input column the same, the concatenated inputs'
Euclidean distance. ``"modalities"``: every modality the same, each one's
mean squared difference per column, averaged over the modalities two rows
share. The rule itself, with missing modalities, is checked in
``rust/core/src/objectives/input_neighbors.rs``."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import assert_option_trains_reproducibly, save_without_config_fields, small_model

DIMS = {"visual": 2, "auditory": 40, "linguistic": 5}  # one modality of many columns


def model(**changes):
    return small_model(DIMS, **{"fused_neighbors": 3, "fused_neighbor_space": "inputs", **changes})


def views(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}


def reference(data, k, per_modality):
    """Each row's k nearest rows, in float64: the squared differences summed
    over all columns, or each modality's mean per column summed."""
    d = sum(
        ((x.astype(np.float64)[:, None] - x.astype(np.float64)[None]) ** 2).sum(-1) / (x.shape[1] if per_modality else 1)
        for x in data.values()
    )
    np.fill_diagonal(d, np.inf)
    return [list(np.argsort(row, kind="stable")[:k]) for row in d]


def positives(m, data):
    *_, found = m._core.objective_draws(m._learning_args(data, None, None)[0])
    return [list(p[1:]) for p in found]  # each row's own first


def test_columns_is_the_default_and_modalities_weigh_every_modality_the_same():
    data = views()
    assert gm.LearnableMultiModalConfig().input_distance == "columns"
    by_columns, by_modalities = positives(model(), data), positives(model(input_distance="modalities"), data)
    assert by_columns == reference(data, 3, per_modality=False)
    assert by_modalities == reference(data, 3, per_modality=True)
    # The 40-column modality decided most of the columns' neighbours; not the modalities'.
    auditory = reference({"auditory": data["auditory"]}, 3, per_modality=False)
    agree = lambda found: sum(len(set(a) & set(b)) for a, b in zip(found, auditory))  # noqa: E731
    assert agree(by_columns) > agree(by_modalities)
    data_loss = {"fused_contrastive": 1.0}
    assert model().losses(data, weights=data_loss) != model(input_distance="modalities").losses(data, weights=data_loss)


def test_one_modality_finds_the_same_neighbours_either_way():
    data = {"auditory": views()["auditory"]}
    assert positives(model(), data) == positives(model(input_distance="modalities"), data)


def test_trains_reproducibly_resumes_exactly_and_is_checkpointed(tmp_path):
    make = lambda: model(input_distance="modalities", contrastive_neighbors=2)  # noqa: E731
    assert_option_trains_reproducibly(make, views(48), tmp_path, "input_distance", "modalities", epochs=2, batch_size=16, progress=False)


def test_checkpoints_without_the_field_load_with_columns(tmp_path):
    m = model()
    path = tmp_path / "old.safetensors"
    save_without_config_fields(m, path, "input_distance")
    assert gm.LearnableMultiModal.load(path).config == m.config


@pytest.mark.parametrize("value", ["modality", "Columns", "", None, 1, ["columns"]])
def test_bad_values_name_the_argument(value):
    with pytest.raises(InvalidValueError, match="input_distance"):
        model(input_distance=value)
