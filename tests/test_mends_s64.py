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
