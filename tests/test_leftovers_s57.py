"""Defects found by earlier audits and left open (session 56's list), each
met as a user meets it; every test says what was seen before."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.types import ModalFeatures, MultiModalEvent


def _model(**dims: int) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(input_dims=dims or {"visual": 3, "auditory": 2}, embed_dim=8, hidden_dim=8,
                                  num_heads=2, seed=0)


# ------------------------------------------------------------------ 1. float64 whole numbers past 2**53
@pytest.mark.parametrize("base, step", [(2.0**53, 2.0), (2.0**60, 256.0), (-(2.0**55), 8.0)])
def test_float64_ids_past_2_53_that_float32_makes_one_value_are_reported(base, step) -> None:
    """Before: the whole-number rule stopped at 2**53. From 2**52 on every
    float64 is whole, so ids ``2**53 - 100 + i`` were reported, but ids
    ``2**53 + 2 * i`` (distinct float64 values, each the integer it holds,
    as int64 ids past 2**53 are reported) were trained on as one constant
    column without a word."""
    n = 40
    x = np.stack([base + step * np.arange(n), np.random.default_rng(0).normal(size=n)], 1)
    assert len(np.unique(x[:, 0])) == n and len(np.unique(x[:, 0].astype(np.float32))) == 1
    with pytest.warns(gm.PrecisionLossWarning, match=r"^inputs\['visual'\]: column 0 varies more finely than float32 "
                                                     r"resolves: .* so in float32 the column is constant"):
        _model(visual=2).fit_normalization({"visual": x})


def test_float64_columns_float32_holds_or_that_are_roundoff_are_still_not_reported() -> None:
    from grapheme_multimodal._validation import precision_lost

    n = 40
    exact = np.stack([2.0**60 + 2.0**37 * np.arange(n), np.arange(n, dtype=np.float64)], 1)  # float32 numbers
    assert precision_lost(exact, exact.astype(np.float32)) is None
    roundoff = np.array([0.3, 0.1 + 0.2] * (n // 2))[:, None] * np.ones((1, 2))  # float64 noise below 2**52
    assert precision_lost(roundoff, roundoff.astype(np.float32)) is None


# ------------------------------------------------------------------ 2. a state dict of two wrapped copies
def test_two_prefixes_holding_every_name_are_both_said_in_one_order() -> None:
    """Before: one of 'module.' and 'ema.module.' was named, picked in the
    order of a set of str (it changed with PYTHONHASHSEED), and the remedy
    stripped it alone, leaving the other copy's keys unexpected: strict
    loading refused the result again."""
    model = _model()
    weights = {k: v for k, v in model.state_dict().items() if not k.startswith("normalization")}
    state = {**{"ema.module." + k: v for k, v in weights.items()}, **{"module." + k: v for k, v in weights.items()}}
    with pytest.raises(gm.InvalidValueError) as err:
        model.load_state_dict(state)
    message = str(err.value)
    assert "behind each of the prefixes 'module.', 'ema.module.'" in message
    remedy = message[message.index("e.g. ") + 5:]
    assert remedy == "{k[7:]: v for k, v in state_dict.items() if k.startswith('module.')}"
    model.load_state_dict(eval(remedy, {"state_dict": state}))  # the remedy loads


def test_one_prefix_is_still_said_as_before() -> None:
    model = _model()
    state = {"module." + k: v for k, v in model.state_dict().items() if not k.startswith("normalization")}
    with pytest.raises(gm.InvalidValueError, match=r"behind the prefix 'module\.' .*strip it, "
                                                   r"\{k\[7:\] if k\.startswith\('module\.'\) else k"):
        model.load_state_dict(state)


# ------------------------------------------------------------------ 3. a column named '#'
def test_a_column_named_only_the_comment_mark_is_a_name_not_a_mark() -> None:
    """Before: '#' lost its mark and read as '', so ('#', 'x') and
    ('x', '') were the same names reordered, and a frame's columns were
    refused as fitted's in another order."""
    from grapheme_multimodal._frames import is_reordering

    assert not is_reordering(("#", "x"), ("x", ""))
    assert not is_reordering(("x", ""), ("#", "x"))
    assert is_reordering(("#", "x"), ("x", "#"))  # the same names reordered
    assert is_reordering(("# a", "b"), ("b", "a"))  # np.savetxt's header as pandas reads it, still compared


# ------------------------------------------------------------------ 4. --no-csv-header and a comment line
def test_no_header_said_skips_comment_lines_above_the_numbers(tmp_path) -> None:
    """Before: with header=False (the CLI's --no-csv-header), np.savetxt's
    '# a,b,c' was read as the first event and refused: "row 0 (line 1)
    has a non-numeric value '# a' (column 0 of 3); expected numbers only"."""
    from grapheme_multimodal.files import read_modality_file, read_numeric_csv

    path = tmp_path / "x.csv"
    path.write_text("# a,b,c\n# more\n1,2,3\n4,5,6\n")
    assert read_numeric_csv(path, header=False).tolist() == [[1, 2, 3], [4, 5, 6]]
    read = read_modality_file(gm.Modality.VISUAL, path, csv_header=False)
    assert read.values.tolist() == [[1, 2, 3], [4, 5, 6]] and read.columns is None  # no header said: no names
    path.write_text("# a,b,c\n1,x,3\n")
    with pytest.raises(gm.InvalidValueError, match=r"row 0 \(line 2\) has a non-numeric value 'x'"):
        read_numeric_csv(path, header=False)  # the rows counted as before, the lines as in the file
    path.write_text("# a,b\n1,2\n#3,4\n5,6\n")
    with pytest.raises(gm.InvalidValueError, match=r"row 1 \(line 3\) is a comment line"):
        read_numeric_csv(path, header=False)  # among the rows: refused as before (a commented-out event?)
    path.write_text("# a,b\n\n# c\n")
    with pytest.raises(gm.InvalidValueError, match=r"x\.csv: the CSV file holds only 2 comment lines; expected one "
                                                   r"row of numbers per event"):
        read_numeric_csv(path, header=False)


# ------------------------------------------------------------------ 5. the estimator's HTML with a huge int
def test_html_repr_called_directly_shows_a_huge_int_parameter() -> None:
    """Before: ``_repr_html_()`` (what a notebook that reads no mime bundle
    calls) raised scikit-learn's "Exceeds the limit (4300 digits)" for
    ``epochs=10**5000``, which repr() and the mime bundle show."""
    import sklearn

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with sklearn.config_context(display="diagram"):
        estimator = MultimodalEmbedder(epochs=10**5000)
        html = estimator._repr_html_()
        assert "int of 5,001 digits" in html
        assert estimator.epochs == 10**5000  # the parameter itself untouched
        assert "epochs" in MultimodalEmbedder(epochs=3)._repr_html_()


# ------------------------------------------------------------------ 6. the caller's fit fitting other data
def test_a_fit_function_fitting_another_model_on_other_data_is_not_said_as_the_split() -> None:
    """Before: a ``fit`` function given to fit_with_stopping that fitted a
    side model on its own data too heard, of that data, "inputs['auditory']:
    holds the same values in every row holding it among the rows trained on
    (those held out to stop on are not)": fit_with_stopping's names and its
    split's words, of rows no split had held out."""
    from grapheme_multimodal.stopping import fit_with_stopping

    rng = np.random.default_rng(0)
    n = 40
    data = {"visual": rng.normal(size=(n, 3)), "auditory": rng.normal(size=(n, 2))}
    other = {"visual": rng.normal(size=(n, 3)), "auditory": np.ones((n, 2))}
    model, side = _model(), _model()

    def fit(inputs, **options):
        side.fit(other, epochs=1, progress=False)
        return model.fit(inputs, **options)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fit_with_stopping(model, data, validation_fraction=0.25, patience=2, monitor="val_total", epochs=1, fit=fit,
                          min_validation_rows=4, progress=False)
    said = [str(w.message) for w in seen if issubclass(w.category, gm.ConstantModalityWarning)]
    assert len(said) == 1 and said[0].startswith("data['auditory']: holds the same values in every row holding it; ")

    # the fit of the model on the split's rows is still said as the split's
    own = _model()
    data["auditory"] = np.ones((n, 2))
    with pytest.warns(gm.ConstantModalityWarning, match=r"^inputs\['auditory'\]: holds the same values in every row "
                                                        r"holding it among the rows trained on"):
        fit_with_stopping(own, data, validation_fraction=0.25, patience=2, monitor="val_total", epochs=1,
                          fit=lambda inputs, **options: own.fit(inputs, **options), min_validation_rows=4,
                          progress=False)


# ------------------------------------------------------------------ 7. features replaced between check and read
class _Replaced(ModalFeatures):
    """A component whose ``features`` is another array from the ``after``-th
    read on: what another thread's ``c.features = ...`` between two reads
    does, made deterministic."""

    reads, after, other = 0, 10**9, None

    def __getattribute__(self, name):
        if name == "features":
            cls = type(self)
            cls.reads += 1
            if cls.reads > cls.after:
                return cls.other
        return object.__getattribute__(self, name)


@pytest.mark.parametrize("after", [1, 2, 3])
@pytest.mark.parametrize("other", [np.array([7.0], np.float32), np.full((1, 3), 7.0, np.float32),
                                   np.full(5, 7.0, np.float32)], ids=["1", "1x3", "5"])
def test_features_replaced_after_their_check_are_never_broadcast_into_the_row(after, other) -> None:
    """Before: the batched path checked one read's length and copied
    another read's array: ``[7.0]`` set between the two was broadcast into
    the row, [7, 7, 7], trained on without a word."""
    from grapheme_multimodal.batch import event_components

    component = _Replaced(np.ones(3), "visual")
    _Replaced.reads, _Replaced.after, _Replaced.other = 0, after, other
    event = MultiModalEvent(components=[component], id=1)
    try:
        tables = event_components(_model().config, [event])
    except gm.ShapeError as err:
        assert "modality visual takes 3-long feature vectors, got ModalFeatures of shape" in str(err)
    else:
        assert tables[0][0].tolist() == [[1.0, 1.0, 1.0]]


# ------------------------------------------------------------------ 8. the CLI's width of a file of 2-D rows
def test_embed_names_the_width_of_a_file_of_2d_rows_as_values_per_row(tmp_path, capsys, monkeypatch) -> None:
    """Before: a ``[4, 2, 2]`` .npy (each row flattened to 4 features)
    given to a checkpoint whose encoder takes 2 was refused as "three.npy
    has 4 columns": a file with 2 columns per row, it named columns it has not."""
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)
    _model(visual=2).save("m.safetensors")
    np.save("three.npy", np.zeros((4, 2, 2), np.float32))
    np.save("flat.npy", np.zeros((4, 3), np.float32))
    for name, width in (("three.npy", "4 values per row (rows of shape (2, 2), flattened)"), ("flat.npy", "3 columns")):
        code = main(["embed", "m.safetensors", "-m", f"visual={name}", "-o", "e.npy"])
        err = capsys.readouterr().err
        assert code == 2 and not (tmp_path / "e.npy").exists()
        assert err == (f"grapheme-mm: error: visual: {name} has {width} but the checkpoint's visual encoder takes 2 "
                       "(a checkpoint from a different config?)\n")
