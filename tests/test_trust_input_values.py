"""Hostile-use pass over input values and shapes: what a numpy / pandas /
scikit-learn user hands the model, the metrics and the command line, at the
edges of what they take. Each test failed before the fix it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm
from grapheme_multimodal.files import read_modality_file, read_numeric_csv
from grapheme_multimodal.types import Modality


# ------------------------------------------------- CSV rows of missing values
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.integers(2, 4),
    rows=st.integers(1, 5),
    missing=st.integers(0, 4),
    header=st.booleans(),
    blank=st.sampled_from(["", " ", "\t"]),
)
def test_a_csv_row_of_empty_cells_is_a_missing_event_not_a_blank_line(
    tmp_path: Path, width: int, rows: int, missing: int, header: bool, blank: str
) -> None:
    # pandas' to_csv writes a row of NaN as ",,": it was skipped as a blank
    # line, so every later event took the place of the one before it (embed
    # wrote one embedding fewer without a word). It is the event lacking the
    # modality (s64), in its place among the rows; a file of such rows only is refused.
    missing = min(missing, rows - 1)
    lines = [",".join(f"{r}.{c}" for c in range(width)) for r in range(rows)]
    lines[missing] = ",".join([blank] * width)
    if header:
        lines.insert(0, ",".join(f"col{c}" for c in range(width)))
    path = tmp_path / "view.csv"
    path.write_text("\n".join(lines) + "\n")
    if rows == 1:
        with pytest.raises(gm.InvalidValueError, match=r"view\.csv\): every row is missing"):
            read_modality_file(Modality.VISUAL, path)
        return
    read = read_modality_file(Modality.VISUAL, path)
    assert len(read) == rows and np.flatnonzero(~read.present).tolist() == [missing]
    assert np.isnan(read.values[missing]).all() and np.isfinite(np.delete(read.values, missing, axis=0)).all()


def test_blank_lines_of_a_csv_are_still_skipped(tmp_path: Path) -> None:
    path = tmp_path / "view.csv"
    path.write_text("a,b\n\n1,2\n   \n3,4\n\n")
    assert read_numeric_csv(path).tolist() == [[1, 2], [3, 4]]


def test_the_cli_refuses_to_embed_an_event_whose_only_file_lacks_it(tmp_path: Path, capsys) -> None:
    from grapheme_multimodal.cli import main

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, input_dims={"visual": 3})
    model.save(tmp_path / "model.safetensors")
    rows = np.arange(12.0).reshape(4, 3).astype(str).tolist()
    rows[1] = ["", "", ""]
    (tmp_path / "view.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    out = tmp_path / "fused.npy"
    code = main(["embed", str(tmp_path / "model.safetensors"), "-m", f"visual={tmp_path / 'view.csv'}", "-o", str(out)])
    assert code == 2 and not out.exists()
    assert "files: row 1 is missing in every modality file" in capsys.readouterr().err  # s64: no modality to embed


# ------------------------------------------------------------ missing labels
def _retrieval_where_rows_1_and_2_find_each_other():
    query = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    gallery = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    return query, gallery


@pytest.mark.parametrize(
    "labels",
    [
        ["a", None, None],  # a list with missing values
        np.array([1, None, None], dtype=object),  # a pandas object column's .to_numpy()
    ],
)
def test_a_none_label_is_refused_not_scored_as_a_class_of_its_own(labels) -> None:
    # None == None: the two events without a label, retrieving each other,
    # scored class precision 1.0 where every labelled one scored 1/3
    from grapheme_multimodal import metrics

    query, gallery = _retrieval_where_rows_1_and_2_find_each_other()
    with pytest.raises(gm.InvalidValueError, match=r"^labels holds None at row 1; expected a class label in every row") as err:
        metrics.cross_view_retrieval(query, gallery, labels)
    assert err.value.arg == "labels"


def test_a_none_label_is_refused_by_every_read_out_that_takes_labels() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import metrics

    x = np.random.default_rng(0).normal(size=(6, 2))
    y = np.array(["a", "b"] * 3, dtype=object)
    missing = y.copy()
    missing[3] = None
    for read_out in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        with pytest.raises(gm.InvalidValueError, match=r"^test_y holds None at row 3"):
            read_out(x, y, x, missing)
        with pytest.raises(gm.InvalidValueError, match=r"^train_y holds None at row 3"):
            read_out(x, missing, x, y)
    # labels that merely are objects still score as before
    assert metrics.knn_accuracy(x, y, x, y, k=1) == 1.0


# ------------------------------------------------------------- CLI flag names
def test_a_wl_dim_beyond_the_hash_buckets_is_named_as_the_flag(tmp_path: Path, capsys) -> None:
    # was "grapheme-mm: error: dim: expected an int in [1, 4194304]", an argument the user never typed
    from grapheme_multimodal.cli import main

    np.save(tmp_path / "images.npy", np.random.default_rng(0).normal(size=(8, 3)))
    (tmp_path / "captions.txt").write_text("\n".join(f"caption {i}" for i in range(8)) + "\n")
    out = tmp_path / "model.safetensors"
    code = main(["train", "-m", f"visual={tmp_path / 'images.npy'}", "-m", f"linguistic={tmp_path / 'captions.txt'}",
                 "--wl-dim", "4194305", "--no-progress", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith("grapheme-mm: error: --wl-dim: expected an int in [1, 4194304]"), err


# ---------------------------------------------------------- CCA of one row
def test_pairwise_cca_of_one_training_row_names_the_training_view_not_x() -> None:
    # was "X must have at least 2 rows to estimate covariances", ExactCCA's own argument, which the caller never passed
    from grapheme_multimodal.evaluation import pairwise_cca_retrieval

    rng = np.random.default_rng(0)
    train = {"a": rng.normal(size=(1, 3)), "b": rng.normal(size=(1, 2))}
    test = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=(4, 2))}
    with pytest.raises(gm.ShapeError, match=r"^train_std\['a'\]: has 1 row; expected at least 2") as err:
        pairwise_cca_retrieval(train, test, np.arange(4))
    assert err.value.arg == "train_std['a']"


# ------------------------------------------------------------- figure files
_MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml", "eps": b"%!PS", "jpg": b"\xff\xd8"}


@pytest.mark.parametrize("name, kind", [
    ("curves.pdf", "pdf"), ("curves.SVG", "svg"), ("curves.eps", "eps"), ("curves.jpg", "jpg"),
    ("curves.png", "png"), ("curves", "png"), ("curves_lr0.001", "png"),  # no image suffix: PNG as before
])
def test_a_figure_is_written_in_the_format_its_name_says(tmp_path: Path, name: str, kind: str) -> None:
    # every figure was a PNG: history.plot("curves.pdf") wrote PNG bytes no PDF reader opens, without a word
    pytest.importorskip("matplotlib")
    from grapheme_multimodal.plotting import plot_attention

    history = gm.History(epochs=[{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}])
    history.plot(tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(_MAGIC[kind])
    heat = tmp_path / ("heat-" + name)
    plot_attention(np.full((2, 7), 1 / 7), ["a", "b"], str(heat))
    assert heat.read_bytes().startswith(_MAGIC[kind])


# ------------------------------------------------ per-event feature vectors
@pytest.mark.parametrize("scale", [1e-300, 1e-310])  # below float32's normal range; the second a float64 subnormal
def test_a_feature_vector_below_float32_s_range_is_refused_as_the_batched_row_is(scale: float) -> None:
    # ModalFeatures cast it to zeros without a word, and fuse_event / fit on events encoded those zeros, where
    # encode refused the same values given as a row
    values = scale * np.arange(1.0, 19.0)
    model = gm.LearnableMultiModal(seed=0)
    with pytest.raises(gm.InvalidValueError, match=r"below float32's smallest normal number"):
        model.encode({"visual": values[None]})
    with pytest.raises(gm.InvalidValueError, match=r"^features: its values are at most .* below float32's smallest normal") as err:
        gm.ModalFeatures(values, "visual")
    assert err.value.arg == "features"


def test_a_feature_vector_with_tiny_values_beside_ordinary_ones_is_read_as_before() -> None:
    values = np.r_[1.0, 1e-300, -0.0, np.arange(15.0)]
    assert gm.ModalFeatures(values, "visual").features.tolist() == values.astype(np.float32).tolist()
