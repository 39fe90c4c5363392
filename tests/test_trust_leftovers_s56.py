"""Small defects earlier audits noted and left (session 56; each test failed before its fix)."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.cli import _checked_argv
from grapheme_multimodal.files import _read_numeric_csv_lines, read_numeric_csv


# 1. CSV comment lines ---------------------------------------------------------------------------------------------

def test_csv_header_of_several_comment_lines_as_numpy_writes_it(tmp_path):
    # np.savetxt(header="a,b,c\n...") writes "# a,b,c\n# ...": the second line was refused as
    # "row 0 (line 2) has a non-numeric value '# written by me'"
    path = tmp_path / "x.csv"
    data = np.arange(6.0).reshape(2, 3)
    np.savetxt(path, data, delimiter=",", header="a,b,c\nwritten by me", fmt="%g")
    values, lines, _, names = _read_numeric_csv_lines(path)
    np.testing.assert_array_equal(values, data)
    assert list(lines) == [3, 4] and names == ("a", "b", "c")
    np.testing.assert_array_equal(read_numeric_csv(path, header=True), data)
    # the names on the comment line below one that names none
    path.write_text("# written by me\n# a,b,c\n0,1,2\n3,4,5\n")
    assert _read_numeric_csv_lines(path)[3] == ("a", "b", "c")
    path.write_text("a,b,c\n# units: m\n\n# more\n0,1,2\n")
    assert read_numeric_csv(path).tolist() == [[0.0, 1.0, 2.0]]


@pytest.mark.parametrize("text, line", [
    ("a,b,c\n1,2,3\n# a note\n4,5,6\n", 3),  # was "row 1 (line 3) has 1 column, expected 3"
    ("a,b,c\n1,2,3\n#4,5,6\n", 3),  # was "has a non-numeric value '#4'": a commented-out event
    ("1,2,3\n# a note\n4,5,6\n", 2),
])
def test_csv_comment_line_among_the_rows_refused_saying_it_is_a_comment(tmp_path, text, line):
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(gm.InvalidValueError, match=rf"row 1 \(line {line}\) is a comment line .*only above the first "
                                                   r"row of numbers") as err:
        read_numeric_csv(path)
    assert err.value.arg == str(path)


def test_csv_missing_value_hash_na_is_no_comment(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n#N/A,1,2\n")
    with pytest.raises(gm.InvalidValueError, match="a missing value"):
        read_numeric_csv(path)


# 2. argv: a path-like that gives no path --------------------------------------------------------------------------

class _PathLike(os.PathLike):
    def __init__(self, value):
        self.value = value

    def __fspath__(self):
        return self.value


@pytest.mark.parametrize("value", [3, None])
def test_argv_pathlike_giving_no_path_refused_naming_its_place(value):
    # os.fsdecode's bare "expected _PathLike.__fspath__() to return str or bytes, not int" named no argument
    with pytest.raises(TypeError, match=r"^argv\[1\]: expected a str \(or a path\), got .*_PathLike"):
        _checked_argv(["info", _PathLike(value)])
    with pytest.raises(TypeError, match=r"^argv\[1\]"):
        gm.cli.main(["info", _PathLike(value)])


# 3. load_state_dict: a near-miss standardisation key --------------------------------------------------------------

@pytest.mark.parametrize("key", ["Normalization.visual.mean", "normalization.visual.mean ", "normalization.visual.means"])
def test_load_state_dict_names_the_near_miss_of_a_missing_standardisation_key(key):
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims=(3,) * 7)
    model.set_normalization("visual", np.zeros(3), np.ones(3))
    state = model.state_dict()
    state[key] = state.pop("normalization.visual.mean")
    before = model.state_dict()
    with pytest.raises(gm.InvalidValueError, match=rf"but not 'normalization.visual.mean' \(it holds {key!r}: a "
                                                   "misspelling"):
        model.load_state_dict(state, strict=False)
    for name, arr in model.state_dict().items():  # nothing changed
        np.testing.assert_array_equal(arr, before[name])


def test_load_state_dict_near_miss_is_not_another_modalitys_key():
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims=(3,) * 7)
    state = {"normalization.visual.std": np.ones(3, np.float32),
             "normalization.tactile.mean": np.zeros(3, np.float32), "normalization.tactile.std": np.ones(3, np.float32)}
    with pytest.raises(gm.InvalidValueError) as err:
        model.load_state_dict(state, strict=False)
    assert "misspelling" not in str(err.value)


# 4. encode: an empty modality beside a mask -----------------------------------------------------------------------

def test_empty_modality_beside_a_mask_says_where_the_batch_size_is_from_and_how_to_leave_it_out():
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims=(5,) * 7)
    mask = np.ones((2, 7), bool)
    # was "inputs['visual']: expected 2 rows (the batch size), got shape (0, 5)"
    with pytest.raises(gm.ShapeError, match=r"expected 2 rows \(the batch size, the rows of mask\), got shape \(0, 5\); "
                                            r"a modality absent from every row is left out of inputs"):
        model.encode({"visual": []}, mask=mask)
    with pytest.raises(gm.ShapeError, match=r"\[0, 2\]; expected one batch size \('visual' has none"):
        model.encode({"visual": np.zeros((0, 5)), "auditory": np.zeros((2, 5))})


# 5. losses given back where a batch or gradients are expected -----------------------------------------------------

def test_losses_given_to_backward_or_apply_gradients_refused_as_losses():
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims=(3,) * 7, seed=0)
    rng = np.random.default_rng(0)
    losses = model.losses({"visual": rng.normal(size=(4, 3)), "auditory": rng.normal(size=(4, 3))})
    before = model.state_dict()
    # backward(losses), PyTorch's loss.backward(): was "inputs: unknown modality 'contrastive'"
    for call in (model.backward, model.train_step, model.losses):
        with pytest.raises(gm.InvalidValueError, match=r"^batch: got losses \(keys .*'total'.*\), not a batch") as err:
            call(losses)
        assert err.value.arg == "batch"
    # apply_gradients(losses): was "unexpected keys [...], missing keys [...]"
    with pytest.raises(gm.InvalidValueError, match=r"^grads: got losses .*not gradients; expected gradients keyed by "
                                                   "parameter name"):
        model.apply_gradients(losses)
    assert not model.has_gradients()
    for name, arr in model.state_dict().items():
        np.testing.assert_array_equal(arr, before[name])


# 6. and 7. the estimator's repr and metadata ----------------------------------------------------------------------

def test_embedder_repr_with_an_int_past_the_digit_limit():
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    # fit takes it (early stopping ends training); the repr raised "Exceeds the limit (4300 digits) for integer
    # string conversion" from inside scikit-learn's printer
    est = MultimodalEmbedder(epochs=10**5000, encoder_hidden=(10**5000,))
    text = repr(est)
    assert text.startswith("MultimodalEmbedder(") and "epochs=" in text and "encoder_hidden=" in text
    assert "text/plain" in est._repr_mimebundle_()
    assert est.epochs == 10**5000  # the estimator itself keeps its parameters


def test_embedder_metadata_routing_does_not_list_the_data():
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    # Xs is the data (scikit-learn's X): it was listed as metadata fit and transform could request
    assert "Xs" not in repr(MultimodalEmbedder().get_metadata_routing())
    assert not hasattr(MultimodalEmbedder, "set_fit_request")


# 8. standardize of long doubles -----------------------------------------------------------------------------------

@pytest.mark.skipif(np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps, reason="long double is float64 here")
def test_standardize_keeps_long_double_variation_below_float64():
    from grapheme_multimodal.datasets import standardize

    step = np.longdouble(2) ** -60  # below float64's spacing at 1 (2**-52)
    x = np.longdouble(1) + np.arange(6, dtype=np.longdouble)[:, None] * step * np.ones((1, 2), np.longdouble)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (z,) = standardize({"v": x})
    # were all 0: the column became constant in the cast to float64
    expected = (np.arange(6) - 2.5) / np.arange(6).std()
    np.testing.assert_allclose(z["v"][:, 0], expected, rtol=1e-6)
    train, other = standardize({"v": x}, {"v": x[::-1]})
    np.testing.assert_allclose(other["v"][:, 0], expected[::-1], rtol=1e-6)
