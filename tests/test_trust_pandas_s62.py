"""A hostile pandas user (s62): frames of modern dtypes (nullable, pyarrow,
categorical, temporal, objects) through the model's calls and the
scikit-learn estimator: a correct answer or a refusal that names the
column and a remedy that keeps its data."""

from __future__ import annotations

import re

import numpy as np
import pytest

import grapheme_multimodal as gm

pd = pytest.importorskip("pandas")

ROWS = 8


def _model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _values() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(ROWS, 3))


@pytest.mark.parametrize("kind", ["all columns", "one column with None", "one column with pd.NA", "ints"])
def test_a_frame_of_numbers_kept_as_objects_is_read_or_told_to_convert_them_not_to_drop_them(kind) -> None:
    """Before: a frame whose columns hold numbers as Python objects
    (``df.astype(object)``, a column of floats with ``None`` or ``pd.NA``
    among them) was refused with "pass its numeric columns only, e.g.
    inputs['visual'].select_dtypes('number')", which leaves those columns
    out: their data dropped, or no column at all. Now (s63) the frame is
    read as pandas' ``to_numpy(dtype=float)`` reads it, as the estimator
    reads it: the numbers, ``None`` a missing value named by its row; a
    ``pd.NA`` among objects, which pandas cannot make a float, is refused
    naming the column and the conversion that reads it (``to_numeric``),
    after which its missing value is named by its row."""
    values = _values()
    frame = pd.DataFrame(values, columns=list("abc"))
    if kind == "all columns":
        frame = frame.astype(object)
    elif kind == "ints":
        values = np.arange(3 * ROWS).reshape(ROWS, 3)
        frame = pd.DataFrame(values, columns=list("abc")).astype({"b": object})
    else:
        missing = None if kind == "one column with None" else pd.NA
        frame["b"] = pd.Series([missing if i == 2 else v for i, v in enumerate(values[:, 1])], dtype=object)
    model = _model()
    if kind == "one column with pd.NA":
        with pytest.raises(TypeError, match=r"^inputs\['visual'\]: .*column 'b' has dtype object holding numbers "
                                            r"stored as Python objects.*: convert them first, e\.g\. "
                                            r"inputs\['visual'\]\.apply\(pd\.to_numeric\)$"):
            model.encode({"visual": frame})
        assert frame.apply(pd.to_numeric).shape[1] == 3  # the advice keeps every column
        frame = frame.apply(pd.to_numeric)
    if "with" in kind:  # the missing value is named by its row (to_numeric made pd.NA a NaN of a float column)
        words = "holds None \\(a missing value\\)" if kind == "one column with None" else ".*"
        with pytest.raises(gm.NonFiniteError, match=rf"^inputs\['visual'\]: {words} at row 2"):
            model.encode({"visual": frame})
    else:
        assert np.array_equal(model.encode({"visual": frame}), model.encode({"visual": values}))


def test_an_object_column_of_text_beside_one_of_numbers_is_the_one_named() -> None:
    """A frame with a column of numbers kept as objects before a column of
    text: the text column is the one that cannot be converted, so it is
    named, with the advice to leave it out (not to convert it)."""
    frame = pd.DataFrame(_values(), columns=list("abc")).astype({"a": object}).assign(c="Oslo")
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: .*column 'c' has dtype (object|str|string).*"
                                        r"select_dtypes\('number'\)"):
        _model().encode({"visual": frame})


def _two_modalities() -> "tuple[gm.LearnableMultiModal, dict, np.ndarray]":
    rng = np.random.default_rng(1)
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2,
                                   seed=0)
    inputs = {"visual": rng.normal(size=(ROWS, 3)), "auditory": rng.normal(size=(ROWS, 2))}
    mask = np.zeros((ROWS, 7), bool)
    mask[:, 0] = True
    mask[::2, 1] = True
    return model, inputs, mask


def test_a_mask_frame_read_back_from_csv_in_another_slot_order_is_refused(tmp_path) -> None:
    """Before: a mask frame numbered by slot (``pd.DataFrame(mask)``) and
    written to CSV (or Parquet, which takes str names only) comes back with
    the slots' numbers as text, '0' to '6'; with its columns reordered
    (``mask[['1', '0', '2', ...]]``) it was read by position: the visual slot
    marked present where the auditory column said so, a silent wrong
    embedding, where the same frame numbered by ints is refused. Now refused
    alike, naming the column and the order expected; in slot order it reads
    as the array."""
    model, inputs, mask = _two_modalities()
    path = tmp_path / "mask.csv"
    pd.DataFrame(mask).to_csv(path, index=False)
    read = pd.read_csv(path)
    assert list(read.columns) == [str(slot) for slot in range(7)]
    assert np.array_equal(model.encode(inputs, mask=read), model.encode(inputs, mask=mask))
    swapped = read[["1", "0", "2", "3", "4", "5", "6"]]
    with pytest.raises(gm.InvalidValueError, match=r"^mask: its column 0 is labelled '1', the auditory slot's number, "
                                                   r".* read by position.*mask\[\['0', '1', '2', '3', '4', '5', '6'\]\]"):
        model.encode(inputs, mask=swapped)


def test_a_mask_frame_numbered_by_nullable_ints_shows_the_number_plainly() -> None:
    """The refusal of a mask frame whose columns are the slots' numbers in
    another order, in a nullable ``Int64`` (or numpy int) index, showed the
    label as ``np.int64(6)`` under numpy 2; now as the number, 6."""
    model, inputs, mask = _two_modalities()
    frame = pd.DataFrame(mask)[[6, 1, 2, 3, 4, 5, 0]]
    frame.columns = pd.Index(list(frame.columns), dtype="Int64")
    with pytest.raises(gm.InvalidValueError, match=r"^mask: its column 0 is labelled 6, the abstract slot's number"):
        model.encode(inputs, mask=frame)


FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0,
            cv_folds=0)


def _column_of(kind: str) -> "pd.Series":
    """A column that scikit-learn's check_array cannot make floats of."""
    if kind == "categories of text":
        return pd.Series(pd.Categorical(["p", "q"] * (ROWS // 2)))
    if kind == "periods":
        return pd.Series(pd.period_range("2020-01-01", periods=ROWS, freq="D"))
    if kind == "intervals":
        return pd.Series(pd.interval_range(0, ROWS))
    return pd.Series([None if i == 2 else float(i) for i in range(ROWS)], dtype=object).where(
        lambda s: s.notna(), pd.NA)  # numbers as objects with pd.NA among them


@pytest.mark.parametrize("kind", ["categories of text", "periods", "intervals", "numbers with pd.NA"])
@pytest.mark.parametrize("views", [1, 2])
def test_the_estimator_names_the_frame_column_it_cannot_read(kind, views) -> None:
    """Before: ``MultimodalEmbedder`` given a frame with a column of
    categories of text, periods, intervals, or numbers kept as objects with
    ``pd.NA`` among them raised scikit-learn's "could not convert string to
    float: 'p'" or Python's "float() argument must be a string or a real
    number, not 'Period'" (or 'NAType'), naming the view but not which of
    its columns, nor what to do (the model's own calls name the column).
    Now the column, its dtype and a remedy are named, the error's type kept
    (scikit-learn's checks expect ValueError or TypeError)."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    pytest.importorskip("sklearn")
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(ROWS, 3)), columns=["x", "a", "y"]).assign(a=_column_of(kind))
    Xs = frame if views == 1 else [frame, rng.normal(size=(ROWS, 2))]
    name = "Xs" if views == 1 else "Xs[0]"
    remedy = (rf"{re.escape(name)}\.apply\(pd\.to_numeric\)" if kind == "numbers with pd.NA"
              else rf"{re.escape(name)}\.select_dtypes\('number'\)")
    with pytest.raises((ValueError, TypeError), match=rf"^{re.escape(name)}: .*\(column 'a', of dtype .*\).*{remedy}"):
        MultimodalEmbedder(**FAST).fit(Xs)


@pytest.mark.parametrize("dtype", ["boolean", "bool[pyarrow]", "Int64"])
def test_a_missing_value_in_a_nullable_mask_frame_is_named_as_missing_not_as_nan(dtype) -> None:
    """Before: a mask frame of pandas' nullable flags with a missing value
    (``pd.NA``) was refused with "expected booleans or 0/1 numbers, got nan
    at index (2, 0)": a NaN the caller never gave (the value is pandas'
    missing marker). Now the missing value is named as such, with the fill
    that makes the mask; filled, the mask reads as the array."""
    if dtype == "bool[pyarrow]":
        pytest.importorskip("pyarrow")
    model, inputs, mask = _two_modalities()
    frame = pd.DataFrame(mask).astype(dtype)
    frame.iloc[2, 0] = None
    absent = 0 if dtype == "Int64" else False  # an Int64 column takes no bool
    with pytest.raises(gm.InvalidValueError, match=rf"^mask: expected booleans or 0/1 numbers, got <NA> \(a missing "
                                                   rf"value\) at index \(2, 0\); .*mask\.fillna\({absent}\)$"):
        model.encode(inputs, mask=frame)
    mask[2, 0] = False
    assert np.array_equal(model.encode(inputs, mask=frame.fillna(absent)), model.encode(inputs, mask=mask))


@pytest.mark.parametrize("views", [1, 2])
def test_column_names_that_differ_only_in_unicode_normalisation_are_told_apart(views) -> None:
    """Before: a frame whose column name is the fitted one in another Unicode
    normalisation ('café' composed at fit, decomposed now, as macOS file
    names and some text tools give it) was refused with "columns ['café',
    'b']; expected those seen in fit, in that order: ['café', 'b']" (or
    scikit-learn's "unseen at fit time: - café ... missing: - café"): two
    lists that print the same. Now the message shows both names' code
    points and how to normalise them."""
    import unicodedata

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    pytest.importorskip("sklearn")
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(ROWS * 4, 2)), columns=[composed, "b"])
    other = rng.normal(size=(ROWS * 4, 2))
    renamed = frame.set_axis([decomposed, "b"], axis=1)
    fitted = MultimodalEmbedder(**FAST).fit(frame if views == 1 else [frame, other])
    name = "Xs" if views == 1 else "Xs[0]"
    with pytest.raises(ValueError, match=rf"(?s)^{re.escape(name)}: .*{re.escape(ascii(decomposed))} against the "
                                         rf"fitted {re.escape(ascii(composed))}.*unicodedata\.normalize\('NFC'"):
        fitted.transform(renamed if views == 1 else [renamed, other])
    normalised = renamed.set_axis([unicodedata.normalize("NFC", c) for c in renamed.columns], axis=1)
    assert np.array_equal(fitted.transform(normalised if views == 1 else [normalised, other]),
                          fitted.transform(frame if views == 1 else [frame, other]))
