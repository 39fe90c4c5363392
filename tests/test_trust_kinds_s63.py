"""Column kinds (s63): a pandas table gets the same answer from every entry
point — the model's calls and the scikit-learn estimator read the same
columns as the same numbers, or refuse them alike — and a missing value
(``pd.NA``, ``None``) is named as missing, not as the NaN it was read as."""

from __future__ import annotations

import decimal
import fractions
import re
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm

pd = pytest.importorskip("pandas")

ROWS = 8
FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, validation_fraction=0.0, patience=0,
            cv_folds=0, random_state=0)


def _model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0,
                                  encoder_hidden=(4,))


def _values() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(ROWS, 3)).round(3)


def _frame() -> "pd.DataFrame":
    return pd.DataFrame(_values(), columns=list("abc"))


def _with_missing(dtype: str) -> "pd.DataFrame":
    """The frame with column 'b' of ``dtype`` holding a missing value in row 2."""
    frame = _frame()
    if dtype == "double[pyarrow]":
        pytest.importorskip("pyarrow")
    if dtype == "Int64":
        frame["b"] = np.arange(ROWS)
    column = frame["b"].astype(dtype)
    column.iloc[2] = None
    return frame.assign(b=column)


def _estimator(**settings):
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    return MultimodalEmbedder(**{**FAST, **settings})


def _calls(model: gm.LearnableMultiModal) -> dict:
    """The model's calls that read a frame of features, each given it as the visual input."""
    return {
        "encode": lambda x: model.encode({"visual": x}),
        "hidden_features": lambda x: model.hidden_features({"visual": x}),
        "fit_normalization": lambda x: model.fit_normalization({"visual": x}),
        "fit": lambda x: model.fit({"visual": x}, epochs=1, batch_size=ROWS, progress=False),
    }


@pytest.mark.parametrize("call", ["encode", "hidden_features", "fit_normalization", "fit"])
@pytest.mark.parametrize("dtype", ["Float64", "Int64", "double[pyarrow]", "object"])
def test_a_missing_value_in_a_feature_frame_is_named_as_missing_not_as_nan(call, dtype) -> None:
    """Before: a frame whose nullable column ('Float64', 'Int64', pyarrow's
    'double[pyarrow]', or numbers as objects with ``None``) held a missing
    value was refused as "contains a non-finite value (NaN or inf) at row 2"
    (or "holds NaN or inf"): a NaN the frame never held. Now the missing
    value is named as such, with its row and column, and the fill; a NaN in
    a float column is still named NaN. The model is left as it was."""
    model = _model()
    before = model.state_dict()
    shown = "None" if dtype == "object" else "<NA>"
    name = "data['visual']" if call == "fit" else "inputs['visual']"  # fit's argument is data
    with pytest.raises(gm.NonFiniteError, match=rf"^{re.escape(name)}: holds {shown} \(a missing value\) at row 2, "
                                                r"column 'b'.*fillna") as info:
        _calls(model)[call](_with_missing(dtype))
    assert "NaN" not in str(info.value)
    assert info.value.arg == name
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    nan = _frame()
    nan.iloc[2, 1] = np.nan
    with pytest.raises(gm.NonFiniteError, match=r"NaN"):
        _calls(model)[call](nan)


def test_a_missing_value_in_a_row_marked_absent_is_not_read() -> None:
    """A row the mask marks absent may hold anything, a missing value too."""
    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8, num_heads=2,
                                   seed=0)
    mask = np.zeros((ROWS, 7), bool)
    mask[:, :2] = True
    mask[2, 0] = False
    auditory = np.ones((ROWS, 2))
    filled = _with_missing("Float64").fillna(0.0)
    assert np.array_equal(model.encode({"visual": _with_missing("Float64"), "auditory": auditory}, mask),
                          model.encode({"visual": filled, "auditory": auditory}, mask))


@pytest.mark.parametrize("dtype", ["Float64", "double[pyarrow]"])
@pytest.mark.parametrize("views", [1, 2])
def test_the_estimator_names_a_missing_value_inside_a_row_as_missing(dtype, views) -> None:
    """Before: the estimator said "row 2 holds NaN inside a row" of a frame
    whose nullable column held ``pd.NA`` there. Now the missing value is
    named, with its column; a row missing in every column is still the
    view missing there."""
    frame = _with_missing(dtype)
    Xs = frame if views == 1 else [frame, np.ones((ROWS, 2))]
    name = "Xs[0]"  # the estimator's words for the first view, however many are given
    with pytest.raises(gm.NonFiniteError, match=rf"^{re.escape(name)}: row 2 holds <NA> \(a missing value\) in column "
                                                r"'b' inside a row") as info:
        _estimator().fit(Xs)
    assert "NaN" not in str(info.value).split("(only")[0]


def _kinds() -> dict:
    """Frames whose column 'b' holds the numbers of column 'b' of _values() in another kind."""
    b = _values()[:, 1]
    kinds = {
        "Decimal objects": pd.Series([decimal.Decimal(repr(float(v))) for v in b], dtype=object),
        "Fraction objects": pd.Series([fractions.Fraction(float(v)) for v in b], dtype=object),
        "float objects": pd.Series(list(b), dtype=object),
        "category of numbers": pd.Series(b).astype("category"),
    }
    try:
        import pyarrow as pa
    except ImportError:
        return kinds
    kinds["dictionary<double>[pyarrow]"] = pd.Series(pd.array(
        pa.array(b).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.float64())),
        dtype=pd.ArrowDtype(pa.dictionary(pa.int8(), pa.float64()))))
    kinds["decimal128[pyarrow]"] = pd.Series([decimal.Decimal(repr(float(v))) for v in b],
                                             dtype=pd.ArrowDtype(pa.decimal128(12, 3)))
    return kinds


@pytest.mark.parametrize("kind", sorted(_kinds()))
def test_every_entry_point_reads_a_column_of_numbers_of_any_kind_as_its_floats(kind) -> None:
    """Before: ``MultimodalEmbedder`` (scikit-learn's ``check_array``) read
    a column of numbers held as Decimal or Fraction objects, or a
    pyarrow dictionary of doubles, as the numbers; ``encode`` refused the
    same frame ("pass its numeric columns only, e.g.
    inputs['visual'].select_dtypes('number')", which drops the column; or
    "cast them first"). Now every call reads the frame as pandas'
    ``to_numpy(dtype=float)`` does, the numbers of the float frame."""
    frame = _frame().assign(b=_kinds()[kind])
    floats = _frame()
    assert np.array_equal(frame.to_numpy(dtype=np.float64), floats.to_numpy())  # the kind holds the same numbers
    model = _model()
    for call in ("encode", "hidden_features"):
        assert np.array_equal(_calls(model)[call](frame), _calls(model)[call](floats)), call
    trained = {}
    for name, x in (("kind", frame), ("floats", floats)):
        model = _model()
        model.fit({"visual": x}, epochs=1, batch_size=ROWS, progress=False)
        trained[name] = model.encode({"visual": floats})
    assert np.array_equal(trained["kind"], trained["floats"])
    assert np.array_equal(_estimator().fit_transform(frame), _estimator().fit_transform(floats))


def _number_texts() -> dict:
    """Column 'b' of _values() as text, in pandas' kinds of text."""
    texts = [repr(float(v)) for v in _values()[:, 1]]
    kinds = {"str": pd.Series(texts, dtype="str"), "object": pd.Series(texts, dtype=object),
             "category": pd.Series(texts, dtype="category")}
    try:
        import pyarrow as pa
    except ImportError:
        return kinds
    kinds["string[pyarrow]"] = pd.Series(texts, dtype="string[pyarrow]")
    kinds["dictionary<string>[pyarrow]"] = pd.Series(pd.array(pa.array(texts).dictionary_encode(),
                                                              dtype=pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string()))))
    return kinds


@pytest.mark.parametrize("kind", sorted(_number_texts()))
def test_a_column_of_numbers_as_text_is_refused_alike_by_every_entry_point_with_the_conversion(kind) -> None:
    """Before: ``MultimodalEmbedder`` (scikit-learn's ``check_array``) read
    a column of numbers as text as the numbers, where ``encode`` refused the
    same frame with "pass its numeric columns only, e.g.
    inputs['visual'].select_dtypes('number')", which drops the column. Text
    is no number, as a numpy array of text is none: now every entry point
    refuses it, naming the column and the conversion that keeps it
    (``pd.to_numeric``); converted, every call reads the float frame's numbers."""
    frame = _frame().assign(b=_number_texts()[kind])
    calls = {**{name: call for name, call in _calls(_model()).items()}, "estimator": _estimator().fit}
    for call, run in calls.items():
        name = {"fit": r"data\['visual'\]", "estimator": "Xs"}.get(call, r"inputs\['visual'\]")
        with pytest.raises(TypeError, match=rf"^{name}: .*column 'b' has dtype .* holding numbers as text.*: convert them "
                                            rf"first, e\.g\. {name}\.apply\(pd\.to_numeric\)$"):
            run(frame)
    converted = frame.apply(pd.to_numeric)
    assert np.array_equal(_model().encode({"visual": converted}), _model().encode({"visual": _frame()}))
    assert np.array_equal(_estimator().fit_transform(converted), _estimator().fit_transform(_frame()))


def test_a_column_of_text_is_refused_alike_by_every_entry_point_keeping_the_others() -> None:
    """A column of text that is no number: refused by the model and the
    estimator, each naming the column, with the advice to leave it out."""
    frame = _frame().assign(b=pd.Series(["Oslo"] * ROWS, dtype=object))
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: .*column 'b'.*select_dtypes\('number'\)"):
        _model().encode({"visual": frame})
    with pytest.raises(ValueError, match=r"^Xs: .*'Oslo'.*column 'b'.*select_dtypes\('number'\)"):
        _estimator().fit(frame)


def test_a_decimal_column_finer_than_float32_warns_as_its_floats_do() -> None:
    """A column of decimals whose variation float32 cannot hold gets the
    package's PrecisionLossWarning in fit, as the same float64 column does."""
    values = _values()
    values[:, 1] = 1e6 + 1e-3 * np.arange(ROWS)
    floats = pd.DataFrame(values, columns=list("abc"))
    frame = floats.assign(b=[decimal.Decimal(repr(float(v))) for v in values[:, 1]])
    for x in (floats, frame):
        with pytest.warns(gm.PrecisionLossWarning, match=r"\['visual'\]: column 1 varies more finely"):
            _model().fit({"visual": x}, epochs=1, batch_size=ROWS, progress=False)


@pytest.mark.parametrize("dtype", ["datetime64[ns]", "timedelta64[ns]", "object of np.timedelta64",
                                   "object of np.datetime64"])
def test_a_column_of_dates_or_durations_is_refused_alike_not_read_as_nanoseconds(dtype) -> None:
    """Dates and durations beside numbers: refused by the model and the
    estimator alike, naming the column, not read as counts of their unit.
    Before: a column of numpy durations kept as objects was read by the
    estimator as counts of seconds, without a word (a cast to floats reads
    numpy's own scalars)."""
    unit = "m8[s]" if "timedelta" in dtype else "M8[s]"
    column = (pd.Series(list(np.arange(ROWS).astype(unit)), dtype=object) if dtype.startswith("object")
              else np.arange(ROWS).astype(dtype))
    frame = _frame().assign(b=column)
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: column 'b' has dtype .* \(dates or durations\); "
                                        r"expected numbers"):
        _model().encode({"visual": frame})
    with pytest.raises(TypeError, match=r"^Xs: column 'b' has dtype .* \(dates or durations\); expected numbers"):
        _estimator().fit(frame)


@pytest.mark.parametrize("kind", ["array", "lists"])
def test_a_numpy_array_of_numbers_as_text_is_refused_alike_with_the_conversion(kind) -> None:
    """Before: the estimator read a numpy array (or nested lists) of numbers
    as text as the numbers, where the model refused it ("dtype <U32", no
    remedy). Now both refuse it in the same words, with the conversion."""
    text = _values().astype(str)
    text = text if kind == "array" else text.tolist()
    remedy = r" \(numbers as text\): convert them first, e\.g\. np\.asarray\({name}, dtype=float\)$"
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: expected a real-valued numeric array, got array of shape "
                                        r"\(8, 3\) and dtype <U\d+" + remedy.format(name=r"inputs\['visual'\]")):
        _model().encode({"visual": text})
    with pytest.raises(TypeError, match=r"^Xs: expected a real-valued numeric array, got array of shape \(8, 3\) and "
                                        r"dtype <U\d+" + remedy.format(name="Xs")):
        _estimator().fit(text)


def test_the_experience_buffer_names_a_missing_value_and_reads_decimals_as_the_model_does() -> None:
    """Before: ``ExperienceBuffer.extend`` refused a frame input's (or a
    rewards Series') ``pd.NA`` as NaN, a value never given, and a column of
    Decimal objects the model's calls now read. Now the missing value is
    named by its row and column, and the Decimal frame is recorded as its floats."""
    model = _model()
    values = _values()
    embeddings = model.encode({"visual": values})
    mask = np.zeros((ROWS, 7), bool)
    mask[:, 0] = True
    fused, strengths = model.fuse(embeddings, mask), model.pair_strengths(embeddings, mask)

    def extend(visual, rewards=np.zeros(ROWS)) -> gm.ExperienceBuffer:
        buffer = gm.ExperienceBuffer(16, input_dims=model.config.input_dims)
        buffer.extend(embeddings, mask, fused, strengths, rewards, inputs=[visual] + [None] * 6)
        return buffer

    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: holds <NA> \(a missing value\) at row 2, "
                                                r"column 'b'"):
        extend(_with_missing("Float64"))
    rewards = pd.Series(np.zeros(ROWS)).astype("Float64")
    rewards.iloc[1] = None
    with pytest.raises(gm.NonFiniteError, match=r"^rewards: holds <NA> \(a missing value\) at row 1;"):
        extend(values, rewards)
    decimals = _frame().assign(b=[decimal.Decimal(repr(float(v))) for v in values[:, 1]])
    assert np.array_equal(extend(decimals).batch().inputs[0], extend(values).batch().inputs[0])


def _table(column) -> "object":
    """_values() as a pyarrow table, its column 'b' given as ``column``."""
    pa = pytest.importorskip("pyarrow")
    values = _values()
    return pa.table({"a": values[:, 0], "b": column, "c": values[:, 2]})


def test_a_null_in_a_pyarrow_table_is_named_as_missing_by_every_entry_point() -> None:
    """Before: a pyarrow table with a null was refused as "contains a
    non-finite value (NaN or inf) at row 2" (the estimator: "holds NaN
    inside a row"). Now the null is named, with its row and column."""
    pa = pytest.importorskip("pyarrow")
    table = _table(pa.array([None if i == 2 else v for i, v in enumerate(_values()[:, 1])], pa.float64()))
    for call, run in _calls(_model()).items():
        name = "data['visual']" if call == "fit" else "inputs['visual']"
        with pytest.raises(gm.NonFiniteError, match=rf"^{re.escape(name)}: holds null \(a missing value\) at row 2, "
                                                    r"column 'b'.*fill_null"):
            run(table)
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[0\]: row 2 holds null \(a missing value\) in column 'b'"):
        _estimator().fit(table)


def test_a_pyarrow_table_is_read_as_a_frame_of_its_columns_is() -> None:
    """Before: a pyarrow table of decimals was read by the estimator as its
    floats and refused by the model ("numbers stored as Python objects");
    one of numbers as text read by the estimator and refused by the model
    naming no column. Now decimals are read alike, and text refused alike,
    naming the column and the conversion."""
    pa = pytest.importorskip("pyarrow")
    b = _values()[:, 1]
    decimals = _table(pa.array([decimal.Decimal(repr(float(v))) for v in b], pa.decimal128(12, 3)))
    assert np.array_equal(_model().encode({"visual": decimals}), _model().encode({"visual": _values()}))
    assert np.array_equal(_estimator().fit_transform(decimals), _estimator().fit_transform(_values()))
    text = _table(pa.array([repr(float(v)) for v in b]))
    remedy = r"column 'b' has dtype string\[pyarrow\] holding numbers as text.*convert them first, e\.g\. {}\.to_pandas\(\)"
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: .*" + remedy.format(r"inputs\['visual'\]")):
        _model().encode({"visual": text})
    with pytest.raises(TypeError, match=r"^Xs: " + remedy.format("Xs")):
        _estimator().fit(text)


@pytest.mark.parametrize("big", [decimal.Decimal("1e400"), fractions.Fraction(10**400, 3), 10**400])
def test_a_number_past_float64_among_objects_is_named_alike_as_given(big) -> None:
    """Before: a Decimal past float64 in a frame's column of objects was
    refused as "contains a non-finite value (NaN or inf)" by the model and
    "holds inf (infinity)" by the estimator (float() made it inf); a
    Fraction or int past float64 as holding decimals to cast, or "a number
    too large for float64" of no row. Now both name it, its row and column."""
    frame = _frame().assign(b=pd.Series([big if i == 1 else decimal.Decimal(i) for i in range(ROWS)], dtype=object))
    words = r"row 1 holds .*\(column 'b'\), too large for float64"
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: " + words):
        _model().encode({"visual": frame})
    with pytest.raises(gm.NonFiniteError, match=r"^Xs: " + words):
        _estimator().fit(frame)
