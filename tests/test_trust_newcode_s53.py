"""Session 53's own new code attacked with fresh eyes: each test pins a defect
found in it (before the fix: a panic, a hang, a wrong answer or a misleading
message)."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _core


# -- the exact tie decision's private binding ---------------------------------------------------------------------------
@pytest.mark.parametrize("start", [2**64 - 1, 2**64 - 2, 2**63])
def test_exact_nearest_rows_refuses_a_start_past_the_query_without_a_panic(start):
    # start + rows wrapped past usize::MAX, passed the shape check, and the core indexed far beyond the query
    # (a panic, caught as "internal error (a bug in grapheme-multimodal ...)")
    query, gallery, scores = np.ones((2, 2)), np.ones((3, 2)), np.ones((2, 3))
    with pytest.raises(ValueError, match="exact_nearest_rows: expected") as info:
        _core.exact_nearest_rows(query, gallery, 1.0, scores, start, np.array([0]), np.array([1.0]), True)
    assert not isinstance(info.value, gm.GraphemeError)  # the panic's error is one, "internal error"



@pytest.mark.parametrize("value", [1e-300, 1e300, 5e-324, np.nan, -1.0])
@pytest.mark.parametrize("cosine", [True, False])
def test_exact_nearest_rows_given_other_left_operands_gives_a_row_not_a_panic(value, cosine):
    # left (the gallery's split values' left operands of g.g) of magnitudes outside the gallery's: its terms were
    # shifted below the exact sums' fixed point or past their limbs, a panic ("internal error")
    query, gallery, scores = np.ones((2, 2)), np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), np.ones((2, 3))
    thresholds = np.full(2, 0.0 if cosine else 9.0)
    found = _core.exact_nearest_rows(query, gallery, 3.0, scores, 0, np.array([0, 1]), thresholds, cosine,
                                     np.full((3, 2), value))
    assert found.dtype == np.int64 and ((found >= 0) & (found < 3)).all(), found

# -- remembered column names --------------------------------------------------------------------------------------------
DIMS = (3, 2, 18, 32, 32, 16, 8)
SMALL = dict(input_dims=DIMS, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)


def test_column_names_of_numpy_strings_are_kept_and_shown_as_plain_str():
    # pandas 2 keeps numpy's str as column names (df.columns = list(np.array(names))); under numpy 2 their repr is
    # np.str_('a'): input_columns gave them back so and the refusal read "its columns [np.str_('c'), ...]"
    pd = pytest.importorskip("pandas")
    import warnings

    from grapheme_multimodal.metrics import cross_view_retrieval

    names = pd.Index([np.str_("a"), np.str_("b"), np.str_("c")], dtype=object)
    visual = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=names)
    assert all(type(c) is np.str_ for c in visual.columns)  # what the test is about
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual}, epochs=1, progress=False)
    assert model.input_columns("visual") == ("a", "b", "c")
    assert all(type(c) is str for c in model.input_columns("visual"))
    with pytest.raises(gm.InvalidValueError) as info:
        model.encode({"visual": visual[[np.str_("c"), np.str_("a"), np.str_("b")]]})
    assert "np.str_" not in str(info.value) and "its columns ['c', 'a', 'b']" in str(info.value), str(info.value)
    with pytest.raises(gm.InvalidValueError) as info:  # two frames side by side (metrics, standardize)
        cross_view_retrieval(visual, visual[[np.str_("c"), np.str_("a"), np.str_("b")]], np.arange(20))
    assert "np.str_" not in str(info.value), str(info.value)


def test_the_command_line_shows_header_names_one_line_each_and_told_apart(tmp_path, capsys):
    # a CSV header's quoted names may hold a newline, a comma or a terminal's escape: info printed the model's line
    # across two lines (and the escape raw, recolouring the terminal), and embed's refusal ran "a,b" into its
    # neighbours, where every other name a message shows (files, arguments) is quoted when it would be lost
    pd = pytest.importorskip("pandas")
    import warnings

    from grapheme_multimodal.cli import main

    names = ["a\nb", "c,d", "\x1b[31mred"]
    visual = pd.DataFrame(np.random.default_rng(0).normal(size=(20, 3)), columns=names)
    model = gm.LearnableMultiModal(**SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": visual}, epochs=1, progress=False)
    model.save(tmp_path / "m.safetensors")
    visual[[names[2], names[0], names[1]]].to_csv(tmp_path / "v.csv", index=False)
    assert main(["info", str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.lstrip().startswith("visual"))
    assert line.endswith("columns 'a\\nb','c,d','\\x1b[31mred'") and "\x1b" not in out, out
    assert main(["embed", str(tmp_path / "m.safetensors"), "--modality", f"visual={tmp_path / 'v.csv'}",
                 "--output", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "\x1b" not in err, err
    assert "another order ('\\x1b[31mred','a\\nb','c,d')" in err and err.strip().endswith(
        "trained on: 'a\\nb','c,d','\\x1b[31mred'"), err
