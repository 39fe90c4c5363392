"""Small mends (s64): CSV missing-value spellings as pandas reads them, view
columns named as X's own, Parquet int64 ids beyond 2**53, a loaded
log-temperature outside its clamp range."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.files import read_modality_file, read_numeric_csv


# ------------------------------------------------------------- 1. CSV missing values as pandas' read_csv reads them
def test_every_pandas_default_na_string_in_a_whole_row_marks_the_event_missing(tmp_path):
    """``None`` or ``#NA``, NaN to ``pd.read_csv``, were refused as "a non-numeric value"."""
    from pandas._libs.parsers import STR_NA_VALUES

    path = tmp_path / "a.csv"
    for cell in sorted(STR_NA_VALUES - {""}):
        path.write_text(f"x,y\n1,2\n{cell},{cell}\n3,4\n")
        read = read_modality_file("auditory", path)
        assert read.present.tolist() == [True, False, True], cell
        assert np.isnan(read.values[1]).all(), cell


def test_a_pandas_na_string_beside_numbers_is_refused_as_a_missing_value(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("1,2\nNone,4\n")
    with pytest.raises(ValueError, match=r"row 1 \(line 2\) has the cell 'None' \(column 0 of 2\), a missing value"):
        read_numeric_csv(path)


def test_a_first_row_of_pandas_na_strings_is_an_event_not_a_header(tmp_path):
    """The rule kept: a cell that is a missing value makes no header."""
    path = tmp_path / "a.csv"
    path.write_text("None,#NA\n1,2\n")
    values = read_numeric_csv(path)
    assert values.shape == (2, 2) and np.isnan(values[0]).all() and values[1].tolist() == [1, 2]


# ------------------------------------------------------------- 2. view_sizes: X's own column named, not the view's
def _side_by_side_views(rows=16):
    return np.random.default_rng(0).normal(size=(rows, 10))


def _embedder():
    return gm.MultimodalEmbedder(view_sizes=[4, 6], embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,),
                                 epochs=1, batch_size=8, validation_fraction=0.0, patience=0)


def test_an_infinity_in_a_view_of_side_by_side_columns_is_named_by_the_column_of_xs():
    """It said "Xs[:, 4:10]: row 7 holds inf (infinity) in column 1", the view's column 1, X's column 5."""
    X = _side_by_side_views()
    X[7, 5] = np.inf
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[:, 4:10\]: row 7 holds inf \(infinity\) in column 5 of Xs;"):
        _embedder().fit(X)


def test_a_column_float32_loses_in_a_view_of_side_by_side_columns_is_named_by_the_column_of_xs():
    X = _side_by_side_views()
    X[:, 6] = 1e9 + np.random.default_rng(1).normal(size=16) * 1e-3
    with pytest.warns(gm.PrecisionLossWarning, match=r"^Xs\[:, 4:10\]: column 6 of Xs varies more finely"):
        _embedder().fit(X)
    X[:, 8] = 1e9 + np.random.default_rng(2).normal(size=16) * 1e-3
    with pytest.warns(gm.PrecisionLossWarning, match=r"columns 6, 8 of Xs \(2 of 6\) vary .*: column 6's values"):
        _embedder().fit(X)


def test_a_column_below_float32s_range_in_a_view_of_side_by_side_columns_is_named_by_the_column_of_xs():
    X = _side_by_side_views()
    X[:, 5] = 1e-300 * np.random.default_rng(1).normal(size=16)
    with pytest.raises(ValueError, match=r"^Xs\[:, 4:10\]: the values of column 5 of Xs are at most .* below float32"):
        _embedder().fit(X)


def test_views_of_their_own_still_name_their_own_columns():
    X = _side_by_side_views()
    X[7, 1] = np.inf
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[1\]: row 7 holds inf \(infinity\) in column 1;"):
        gm.MultimodalEmbedder(epochs=1).fit([X[:, 4:], X[:, :4]])


# ------------------------------------------------------------- 3. Parquet: int64 ids beyond 2**53 beside floats
def test_parquet_int64_ids_beyond_2_53_beside_a_float_column_are_said_as_an_npy_of_them_is(tmp_path):
    """Stacked as float64 with the floats, ids 2**60 + i became one value: a constant column, said nothing of."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ids = np.int64(2**60) + np.arange(20)
    x = np.random.default_rng(0).normal(size=20)
    np.save(tmp_path / "ids.npy", ids[:, None])
    said_of_npy = []
    read_modality_file("visual", tmp_path / "ids.npy", notes=said_of_npy)
    assert len(said_of_npy) == 1
    pq.write_table(pa.table({"x": x, "id": ids}), tmp_path / "a.parquet")
    notes = []
    read_modality_file("visual", tmp_path / "a.parquet", notes=notes)
    assert [n.split(": ", 1)[1] for n in notes] == [said_of_npy[0].split(": ", 1)[1].replace("column 0", "column 1")]
    # with a row null throughout (an event lacking the modality), the stack is float64 whatever the dtypes
    pq.write_table(pa.table({"id": pa.array([*ids[:19], None]), "y": pa.array([*ids[:19] + 5, None])}),
                   tmp_path / "a.parquet")
    notes = []
    read_modality_file("visual", tmp_path / "a.parquet", notes=notes)
    assert len(notes) == 2 and all(f"column {j} varies more finely than float32 resolves" in n
                                   for j, n in enumerate(notes)), notes


def test_parquet_ids_float64_holds_are_not_said_twice(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ids = np.int64(2**60) + 1000 * np.arange(20)  # distinct in float64 too: the float64 rows' check says them
    pq.write_table(pa.table({"id": ids, "x": np.random.default_rng(0).normal(size=20)}), tmp_path / "a.parquet")
    notes = []
    read_modality_file("visual", tmp_path / "a.parquet", notes=notes)
    assert len(notes) == 1 and "column 0 varies more finely" in notes[0]


# ------------------------------------------------------------- 4. a loaded log-temperature beyond its range
def _learnable(temperature=0.07):
    return gm.LearnableMultiModal(learnable_temperature=True, temperature=temperature, embed_dim=8, hidden_dim=8,
                                  num_heads=2, encoder_hidden=(8,), input_dims={"visual": 3, "auditory": 2})


@pytest.mark.parametrize("given, bound", [(100.0, 1.0), (-50.0, 0.01)])
def test_a_log_temperature_beyond_its_range_is_loaded_as_the_bound_the_model_computes_with(given, bound):
    """state_dict() kept 100 while the model computed with the bound, exp(0) = 1."""
    inputs = {"visual": np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32),
              "auditory": np.random.default_rng(1).normal(size=(6, 2)).astype(np.float32)}
    model, at_bound = _learnable(), _learnable(bound)
    sd = model.state_dict()
    for name in ("contrastive.log_temperature", "fused_contrastive.log_temperature"):
        sd[name] = np.full(1, given, np.float32)
    with pytest.warns(UserWarning) as said:
        model.load_state_dict(sd)
    assert [str(w.message).split(":")[0] for w in said] == [
        "state_dict['contrastive.log_temperature']", "state_dict['fused_contrastive.log_temperature']"]
    assert all("beyond a learned log-temperature's range" in str(w.message) and "loaded as its bound" in str(w.message)
               for w in said)
    expected = np.float32(np.log(bound))
    assert model.state_dict()["contrastive.log_temperature"].tolist() == [expected]
    assert model.state_dict()["fused_contrastive.log_temperature"].tolist() == [expected]
    # the bound is the temperature the model computed with: the same losses as a model set there
    at_bound.load_state_dict({**sd, "contrastive.log_temperature": np.full(1, expected),
                              "fused_contrastive.log_temperature": np.full(1, expected)})
    assert model.losses(inputs) == at_bound.losses(inputs)


def test_a_log_temperature_at_its_bound_as_training_leaves_it_loads_as_it_is_unwarned():
    import warnings

    model = _learnable(0.01)  # stored at float32(ln 0.01), where training clamps a temperature going lower
    sd = model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.load_state_dict(sd)
    assert model.state_dict()["contrastive.log_temperature"].tobytes() == sd["contrastive.log_temperature"].tobytes()


# ------------------------------------------------------------- 5. TrainingSettings checked when made
@pytest.mark.parametrize("field, value, error, said", [
    ("batch_size", 0, ValueError, "batch_size: expected an int >= 1, got 0"),
    ("epochs", True, TypeError, "epochs: expected an int >= 0, got True"),
    ("learning_rate", float("nan"), ValueError, "learning_rate: expected a finite positive number, got nan"),
    ("patience", -1, ValueError, "patience: expected an int >= 0, got -1"),
    ("validation_fraction", 2.0, ValueError, "validation_fraction: expected a number in [0, 1), got 2.0"),
    ("modality_dropout", 1.5, ValueError, "modality_dropout: expected a number in [0, 1), got 1.5"),
    ("ema_decay", 2.0, ValueError, "ema_decay: expected None (no averaging) or a number in [0, 1), got 2.0"),
    ("embed_dim", 0, ValueError, "embed_dim: expected a positive int, got 0"),
])
def test_training_settings_refuse_a_bad_field_when_made_as_train_refused_it(field, value, error, said):
    """They were made without a word, and failed only when train ran (the same message, later)."""
    from grapheme_multimodal.uci import TrainingSettings

    with pytest.raises(error) as refused:
        TrainingSettings(**{field: value})
    assert str(refused.value).startswith(said)
