"""Session 54's blind audit (the public API used as an ML engineer pushing it
hard would, README and docs read first): each test failed before its fix
and says what a user saw."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm


def test_a_partly_masked_row_of_the_estimators_view_is_named_as_masked_not_as_nan():
    """Before: ``NonFiniteError: Xs[0]: row 2 holds NaN inside a row (in 1 of its
    4 columns)`` for a masked array holding no NaN at all: the masked fill's NaN,
    a value the caller never gave, was what the message named."""
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 4)), rng.normal(size=(12, 3))
    masked = np.ma.masked_array(a, mask=np.zeros(a.shape, bool))
    masked.mask[2, 1] = True
    expected = (r"^Xs\[0\]: row 2 is masked in 1 of its 4 columns; expected whole rows masked \(a missing view there\) "
                r"or none: fill the masked entries, or mask the row whole$")
    with pytest.raises(gm.NonFiniteError, match=expected):
        MultimodalEmbedder(epochs=1).fit([masked, b])
    with pytest.raises(gm.NonFiniteError, match=r"^Xs: row 2 is masked in 1 of its 4 columns"):
        MultimodalEmbedder(epochs=1).fit(masked)  # one view, given as itself


@pytest.mark.parametrize("value, said", [
    ("1e400", "beyond float64's largest, 1.8e+308: read as infinity"),
    ("-1e400", "beyond float64's largest, 1.8e+308: read as infinity"),
    ("1e-400", "below float64's smallest, 4.94e-324: read as 0"),
])
def test_a_float_flag_beyond_float64_is_refused_as_typed_not_as_inf(tmp_path, capsys, value, said):
    """Before: ``--lr 1e400`` was refused as "--lr: expected a finite positive
    number, got inf", ``--lr 1e-400`` as "got 0.0", and ``--objectives
    contrastive=1e400`` as "--objectives['contrastive']: ... got inf": values
    the user never typed (float() reads 1e400 as inf, 1e-400 as 0)."""
    from grapheme_multimodal.cli import main

    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.float32))
    train = ["train", "-m", f"visual={tmp_path / 'a.npy'}", "--no-progress", "-o", str(tmp_path / "m.safetensors")]
    with pytest.raises(SystemExit) as exit_:  # argparse's refusal of a flag's value
        main([*train, "--lr", value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    expected = f"grapheme-mm: error: --lr: expected a number within float64's range, got '{value}' ({said})"
    assert err.startswith(expected), err
    assert main([*train, "--objectives", f"contrastive={value}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"grapheme-mm: error: --objectives: 'contrastive={value}' holds a number beyond float64's range "
                   f"({said}); expected NAME=NUMBER with a finite number >= 0\n"), err
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_unit_side_by_side_normalises_small_integers_in_float64_as_documented(dtype):
    """Before: ``unit_side_by_side`` of uint8 pixels or int16 counts came back
    float32 (numpy promotes them with float32 to float32), where its docstring
    says "float64 for integers and bools" and int32 views did get float64."""
    from grapheme_multimodal.metrics import unit_side_by_side

    x = np.arange(12).reshape(4, 3).astype(dtype)
    x[0] = 0  # a zero row stays zero
    out = unit_side_by_side({"v": x}, ["v"])
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, x / np.where(norms > 0, norms, 1), rtol=1e-15, atol=0)


def _components(visual):
    parts = [None] * 7
    parts[0] = visual
    parts[2] = (np.ones((4, 18)), np.arange(4), None)
    return gm.Batch(components=(4, parts))


@pytest.mark.parametrize("visual, error, message", [
    ((np.ones((4, 5)), np.array([0, 1, 2, 4]), None), gm.InvalidValueError,
     r"^components\['visual'\]\.rows: row index 4 is out of range; expected indices in \[0, 4\) \(the batch size\)$"),
    ((np.ones((4, 5)), np.array([0, 1, -1, 3]), None), gm.InvalidValueError,
     r"^components\['visual'\]\.rows: row index -1 is negative; expected indices in \[0, 4\)"),
    ((np.ones((4, 5)), np.arange(3), None), gm.ShapeError,
     r"^components\['visual'\]\.rows: expected one row index per row of x, 4, got 3$"),
    ((np.ones((4, 6)), np.arange(4), None), gm.ShapeError,
     r"^components\['visual'\]\.x: expected shape \(k, 5\) \(the modality's input width\), got \(4, 6\)$"),
    ((np.full((4, 5), np.nan), np.arange(4), None), gm.NonFiniteError,
     r"^components\['visual'\]\.x: row 0 holds NaN or inf; expected finite numbers$"),
    ((np.ones((4, 5)), np.arange(4), np.array([1.0, -1.0, 1.0, 1.0])), gm.InvalidValueError,
     r"^components\['visual'\]\.confidences: entry 1 is -1\.0; expected finite weights >= 0$"),
    ((np.ones((4, 5)), np.arange(4), np.ones(3)), gm.ShapeError, r"^components\['visual'\]\.confidences: expected shape"),
])
def test_a_batch_of_components_is_refused_naming_components_not_inputs(visual, error, message):
    """Before: ``Batch(components=...)`` with a row index past the batch, rows
    and x of other lengths, x of another width or holding NaN, or a negative
    weight was refused as ``inputs['visual']: ...``, an argument the caller
    never gave (the core's words for the inputs it builds from them)."""
    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 5}, embed_dim=8, hidden_dim=8)
    before = model.state_dict()
    for call in (model.losses, model.train_step):
        with pytest.raises(error, match=message):
            call(_components(visual))
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.optimizer_state()["step"] == 0


def test_the_recipe_refuses_nan_without_pointing_at_a_mask_it_does_not_take():
    """Before: ``uci.fit_views`` (and ``uci.train``) refused a NaN as "views['fou']:
    row 2 holds NaN or inf; expected finite numbers (rows the mask marks absent
    may hold anything)": neither takes a mask, every view is present in every row."""
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    views = {"fou": rng.normal(size=(12, 3)), "pix": rng.normal(size=(12, 2))}
    views["fou"][2, 1] = np.nan
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), batch_size=8)
    with pytest.raises(gm.NonFiniteError, match=r"^views\['fou'\]: row 2 holds NaN or inf; expected finite numbers$"):
        uci.fit_views(views, settings=settings)
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 2 holds NaN or inf; expected finite numbers$"):
        uci.train({"visual": views["fou"], "auditory": views["pix"]}, settings)


def test_an_embedders_nan_is_refused_without_pointing_at_marks_it_does_not_take():
    """Before: ``ModelEmbedder.embed_fused`` refused a NaN as "views['a']: contains a
    non-finite value (NaN or inf) at row 1 (a row marked present); ...": the
    embedder takes no mask, every view it is given is present in every row."""
    from grapheme_multimodal import evaluation

    model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 3}, embed_dim=8, hidden_dim=8)
    embedder = evaluation.ModelEmbedder(model, {"a": gm.Modality.VISUAL})
    x = np.ones((3, 3))
    x[1, 2] = np.nan
    for call in (embedder.embed_fused, embedder.embed_views):
        with pytest.raises(gm.NonFiniteError) as err:
            call({"a": x})
        assert str(err.value) == "views['a']: contains a non-finite value (NaN or inf) at row 1; expected finite numbers"
