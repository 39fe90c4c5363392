"""Messages the core words for its caller, and CSV headers that repeat a name.

- The core's refusal of NaN in a present row said "(a row marked present)"
  whoever called; ``evaluation.ModelEmbedder``, which takes no mask, cut
  the words out of the message by their text. The caller now says whether
  it takes a mask (``masked=`` of the binding, the ``taking_no_mask`` scope
  of the model's methods), and the core words the row for it.
- A CSV header naming two columns alike (``x,x``) was read without a word,
  though ``embed`` cannot then see those columns swapped.
"""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal._validation import taking_no_mask

_NAN_AT_ROW_1 = "inputs['visual']: contains a non-finite value (NaN or inf) at row 1{}; expected finite numbers"
_MARKED = " (a row marked present)"


@pytest.fixture(scope="module")
def model():
    return gm.LearnableMultiModal(seed=0, input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, encoder_hidden=(8,))


def _nan_row_1() -> np.ndarray:
    x = np.ones((3, 3), dtype=np.float32)
    x[1, 2] = np.nan
    return x


def _core_calls(model, masked):
    arrays = [_nan_row_1()] + [None] * 6
    mask = np.zeros((3, 7), dtype=bool)
    mask[:, 0] = True
    core = model._core
    return {
        "encode": lambda: core.encode(arrays, mask, masked),
        "encode_and_fuse": lambda: core.encode_and_fuse(arrays, mask, masked),
        "hidden_features": lambda: core.hidden_features(arrays, mask, 0, masked),
    }


@pytest.mark.parametrize("masked", [True, False])
def test_the_core_words_a_present_row_as_its_caller_marks_rows(model, masked):
    """Before: the binding took no word of the caller's (a third argument was
    a TypeError), and the core said "(a row marked present)" to every caller."""
    for name, call in _core_calls(model, masked).items():
        with pytest.raises(gm.NonFiniteError) as err:
            call()
        assert str(err.value) == _NAN_AT_ROW_1.format(_MARKED if masked else ""), name


def test_the_model_methods_pass_a_caller_without_a_mask_down_to_the_core(model):
    """Before: inside ``taking_no_mask`` (a caller without a mask: uci.train,
    fit_views, ModelEmbedder) the model's methods still said "(a row marked
    present)"; ModelEmbedder cut the words out of the message afterwards."""
    x = {"visual": _nan_row_1()}
    calls = {"encode": lambda: model.encode(x), "encode_and_fuse": lambda: model.encode_and_fuse(x),
             "hidden_features": lambda: model.hidden_features(x)}
    for name, call in calls.items():
        with pytest.raises(gm.NonFiniteError) as err:
            call()
        assert str(err.value) == _NAN_AT_ROW_1.format(_MARKED), name  # unchanged for the caller with a mask
        with taking_no_mask(), pytest.raises(gm.NonFiniteError) as err:
            call()
        assert str(err.value) == _NAN_AT_ROW_1.format(""), name
        with pytest.raises(gm.NonFiniteError) as err:  # the scope ends with its block
            call()
        assert str(err.value) == _NAN_AT_ROW_1.format(_MARKED), name


def test_the_embedder_edits_no_message_of_the_model(model):
    """ModelEmbedder's words come from the core: a refusal of the model's own
    that holds the phrase (a subclass's, or another row's wording) reaches
    the caller as the model said it, renamed only. Before: every
    " (a row marked present)" in any NonFiniteError was cut out."""
    from grapheme_multimodal import evaluation

    class Wording(gm.LearnableMultiModal):
        def encode_and_fuse(self, inputs, mask=None):
            raise gm.NonFiniteError("inputs['visual']: row 4 (a row marked present) of the cache is stale", "inputs['visual']")

    own = Wording(seed=0, input_dims={"visual": 3}, embed_dim=8, hidden_dim=8)
    with pytest.raises(gm.NonFiniteError) as err:
        evaluation.ModelEmbedder(own, {"a": gm.Modality.VISUAL}).embed_fused({"a": np.ones((2, 3))})
    assert str(err.value) == "views['a']: row 4 (a row marked present) of the cache is stale"
    embedder = evaluation.ModelEmbedder(model, {"a": gm.Modality.VISUAL})
    for call in (embedder.embed_fused, embedder.embed_views, embedder.hidden_features):
        with pytest.raises(gm.NonFiniteError) as err:
            call({"a": _nan_row_1()})
        assert str(err.value) == "views['a']: contains a non-finite value (NaN or inf) at row 1; expected finite numbers"


# -- a CSV header repeating a name ----------------------------------------------------------------------------------------
_SMALL = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress"]


def _warnings(err: str):
    return [line for line in err.splitlines() if line.startswith("grapheme-mm: warning: ")]


def test_a_header_repeating_a_name_is_said_by_train_and_embed(tmp_path, capsys, monkeypatch):
    """Before: ``x,x,y`` was read without a word by train (which keeps the
    names) and embed (which refuses the names in another order, and so could
    not see the two x columns swapped)."""
    from grapheme_multimodal.cli import main

    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "v.csv", rng.normal(size=(24, 3)), delimiter=",", header="x,x,y", comments="")
    np.savetxt(tmp_path / "a.csv", rng.normal(size=(24, 2)), delimiter=",", header="p,q", comments="")
    monkeypatch.chdir(tmp_path)  # the messages name the files as given
    visual, auditory, model = "v.csv", "a.csv", "m.safetensors"
    expected = ("grapheme-mm: warning: visual (v.csv): the header repeats a name ('x' for columns 0 and 1), so those "
                "columns are told apart by position only: embed, which checks a header's names against the order the "
                "checkpoint was trained on, cannot see them swapped; give each column a name of its own")
    assert main(["train", "-m", f"visual={visual}", "-m", f"auditory={auditory}", *_SMALL, "-o", model]) == 0
    assert _warnings(capsys.readouterr().err) == [expected]
    assert gm.LearnableMultiModal.load(tmp_path / model).input_columns("visual") == ("x", "x", "y")  # kept as written
    assert main(["embed", model, "-m", f"visual={visual}", "-m", f"auditory={auditory}", "-o", "e.npy"]) == 0
    assert _warnings(capsys.readouterr().err) == [expected]


def test_names_repeated_in_several_places_are_each_said():
    from grapheme_multimodal.files import _repeated_names_notes

    assert _repeated_names_notes("visual (v.csv)", ("a", "b")) == ()
    assert _repeated_names_notes("visual (v.csv)", None) == ()
    (note,) = _repeated_names_notes("visual (v.csv)", ("x", "y", "x", "y", "x", "z", "w", "w", "v", "v", "x", "x"))
    assert note.startswith("visual (v.csv): the header repeats names ('x' for columns 0, 2, 4, 10 and 1 more; "
                           "'y' for columns 1 and 3; 'w' for columns 6 and 7; and 1 more name), so those columns"), note


def test_a_repeated_name_is_no_cause_given_for_rows_out_of_line(tmp_path, capsys, monkeypatch):
    """The refusal of files whose rows are not aligned lists what reading
    assumed that could cost a row (a first event read as a header); a
    repeated name costs none, and is not listed there."""
    from grapheme_multimodal.cli import main

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.savetxt("v.csv", rng.normal(size=(24, 3)), delimiter=",", header="x,x,y", comments="")
    np.savetxt("a.csv", rng.normal(size=(23, 2)), delimiter=",", header="p,q", comments="")
    assert main(["train", "-m", "visual=v.csv", "-m", "auditory=a.csv", *_SMALL, "-o", "m.safetensors"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("grapheme-mm: error: rows are not aligned across modalities (visual=v.csv: 24, auditory=a.csv: "
                           "23); every file needs one row per event"), err
