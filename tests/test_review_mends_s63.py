"""The s63 review's mends: a data frame's missing value named as such by
every call that reads rows, numbers as text in an object array refused
with the conversion that keeps them (as both TypeError and ValueError),
a pasteable remedy for extra columns beside many learned ones, and an
edited pickle's odd array shape refused as a CheckpointError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import training
from grapheme_multimodal.stopping import fit_with_stopping

pd = pytest.importorskip("pandas")

ROWS = 16


def _model(dim: int = 3) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims={"visual": dim}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def _with_na() -> "pd.DataFrame":
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(ROWS, 3)), columns=list("abc")).astype("Float64")
    frame.iloc[5, 1] = pd.NA
    return frame


# ------------------------------------------------------------- pd.NA named alike
@pytest.mark.parametrize("call, arg", [
    (lambda m, v: training.fit(m, {"visual": v}, epochs=1, progress=False), "data"),
    (lambda m, v: m.fit({"visual": v}, epochs=1, progress=False), "data"),
    (lambda m, v: m.fit({"visual": v.fillna(0)}, validation={"visual": v}, epochs=1, progress=False), "validation"),
    (lambda m, v: fit_with_stopping(m, {"visual": v}, epochs=1, progress=False, validation_fraction=0.25,
                                    patience=1, monitor="val_total"), "inputs"),
    # record_batch learns no standardisation: its refusal came from the encoding, of "a non-finite value"
    (lambda m, v: m.record_batch({"visual": v}, None, np.ones(ROWS, np.float32)), "inputs"),
])
def test_missing_value_named_by_every_call_that_reads_rows(call, arg):
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(gm.NonFiniteError, match=rf"^{arg}\['visual'\]: holds <NA> \(a missing value\) at row 5, "
                                                    r"column 'b'") as info:
            call(model, _with_na())
    assert info.value.arg == f"{arg}['visual']"


def test_missing_value_in_rows_marked_absent_is_not_refused():
    frame = _with_na()
    mask = np.ones((ROWS, 7), bool)
    mask[5] = False
    mask[:, 1:] = False
    training.fit(_model(), {"visual": frame}, mask=mask, epochs=1, progress=False)


# ------------------------------------------------------------- numbers as text
def _values() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(ROWS, 3)).astype(np.float32)


def _estimator():
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    return MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, validation_fraction=0.0, patience=0,
                              cv_folds=0, random_state=0)


@pytest.mark.parametrize("text", [
    lambda x: x.astype(str).astype(object),  # check_array read it as its numbers; the model named one str
    lambda x: np.array([[str(v) if j else float(v) for j, v in enumerate(row)] for row in x], dtype=object),
    lambda x: np.char.encode(x.astype(str)).astype(object),
    lambda x: x.astype(str),
])
def test_numbers_as_text_in_arrays_refused_alike_with_their_conversion(text):
    given = text(_values())
    with pytest.raises(gm.InvalidTypeError, match=r"^data\['visual'\]: .* \(numbers as text\): convert them first, "
                                                  r"e\.g\. np\.asarray\(data\['visual'\], dtype=float\)$") as info:
        _model().fit({"visual": given}, epochs=1, progress=False)
    assert info.value.arg == "data['visual']"
    with pytest.raises(gm.InvalidTypeError, match=r"^Xs: .* \(numbers as text\): convert them first, "
                                                  r"e\.g\. np\.asarray\(Xs, dtype=float\)$") as info:
        _estimator().fit(given)
    assert info.value.arg == "Xs"
    _estimator().fit(np.asarray(given, dtype=float))  # the conversion named works


@pytest.mark.parametrize("call", [
    lambda v: _model().encode({"visual": v}),
    lambda v: _estimator().fit(v),
])
@pytest.mark.parametrize("given", [
    lambda x: x.astype(str),
    lambda x: pd.DataFrame(x, columns=list("abc")).astype(str),
    lambda x: pd.DataFrame(x, columns=list("abc")).astype(str).astype(object),
])
def test_numbers_as_text_caught_as_type_error_and_as_value_error(call, given):
    """scikit-learn's check_array raises ValueError for text: code written for it catches that."""
    with pytest.raises(ValueError, match="numbers as text"):
        call(given(_values()))
    with pytest.raises(TypeError, match="numbers as text"):
        call(given(_values()))


@pytest.mark.parametrize("given", [
    lambda x: np.array([["1.5", None, "2"]] * ROWS, dtype=object),  # None would become NaN: named as it is
    lambda x: np.array([["1.5", True, "2"]] * ROWS, dtype=object),
    lambda x: np.array([["1.5", "abc", "2"]] * ROWS, dtype=object),
])
def test_object_arrays_not_all_numbers_as_text_keep_their_refusal(given):
    with pytest.raises(TypeError, match=r"at index \(0, 0\): str '1.5'\)$") as info:
        _model().encode({"visual": given(None)})
    assert "numbers as text" not in str(info.value)


# ------------------------------------------------------------- extra columns' remedy
@pytest.mark.parametrize("width", [4, 30])
def test_extra_and_reordered_columns_remedy_is_code_that_runs(width):
    """Past 8 learned names the list was cut with '...': the remedy pasted did not run."""
    columns = [f"c{i}" for i in range(width)]
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(ROWS, width)).astype(np.float32), columns=columns)
    model = _model(width)
    model.fit({"visual": frame}, epochs=1, progress=False)
    expected = model.encode({"visual": frame})
    for given in (frame.assign(extra=1.0), frame[columns[::-1]]):
        inputs = {"visual": given}  # the names the remedy's code uses
        with pytest.raises(gm.InvalidValueError) as info:
            model.encode(inputs)
        remedy = str(info.value).rsplit(": ", 1)[1]
        assert "..." not in remedy
        np.testing.assert_array_equal(model.encode({"visual": eval(remedy)}), expected)


# ------------------------------------------------------------- an edited pickle's shape
@pytest.mark.parametrize("bad", [8.0, "8", None], ids=["float", "str", "None"])
def test_a_pickle_whose_array_shape_holds_no_int_is_a_checkpoint_error(monkeypatch, bad):
    """Was a bare TypeError from math.prod or numpy's reshape, naming nothing."""
    import pickle

    from grapheme_multimodal import _portable

    reduce = _portable._PortableArray.__reduce_ex__

    def edited(self, protocol):
        function, (data, dtype, shape, *order) = reduce(self, protocol)
        return function, (data, dtype, (bad,) + tuple(shape[1:]) if tuple(shape) == (8, 3) else shape, *order)

    with monkeypatch.context() as patch:
        patch.setattr(_portable._PortableArray, "__reduce_ex__", edited)
        data = pickle.dumps(_model(), protocol=4)
    with pytest.raises(gm.CheckpointError, match=r"^pickle: holds an array of dtype '<f4' and shape \(.*, 3\); "
                                                 r"expected a shape of ints \(the pickle is damaged or was edited\)$") as info:
        pickle.loads(data)
    assert info.value.arg == "pickle"
