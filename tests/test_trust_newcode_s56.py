"""A hostile review of the newest code (s56-newcode): state dicts with the
standardisation buffers, main's argv, the estimator's ints past float64, CSV
comment headers, the weight average. Each test is a defect met, and says
what was seen before."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm


# ------------------------------------------------------------------ main(argv)
@pytest.mark.parametrize("argv", [bytearray(b"info"), memoryview(b"info")])
def test_main_refuses_bytes_like_argv_as_a_whole(argv) -> None:
    """Before: a bytearray (or memoryview) was read item by item, as ints:
    "argv[0]: expected a str (or a path), got 105 (int)", the 'i' of
    b"info", where bytes and str are refused naming argv itself."""
    from grapheme_multimodal.cli import main

    with pytest.raises(TypeError, match=r"^argv: expected a list of command-line arguments \(str\), e\.g\. "
                                        rf"\['info', 'model\.gmm'\], got .* \({type(argv).__name__}\)$"):
        main(argv)


@pytest.mark.parametrize("argv", [{"info", "model.gmm"}, frozenset({"info"}), {"info": 1}, {"info": 1}.keys()])
def test_main_refuses_an_argv_without_an_order(argv) -> None:
    """Before: a set gave the arguments in hash order (``--epochs`` after its
    value, the paths swapped: another command than the one written), a
    mapping its keys, without a word."""
    from grapheme_multimodal.cli import main

    with pytest.raises(TypeError, match=rf"^argv: got a {type(argv).__name__}; expected a list of command-line "
                                        r"arguments \(str\) in their order"):
        main(argv)


# ------------------------------------------------------------------ the estimator's ints past float64
def test_an_int_past_float64_in_views_given_as_nested_lists_is_named_by_view_and_row() -> None:
    """Before: views given as nested lists (``[view0_rows, view1_rows]``, read
    as one 3-D array) holding an int past float64 were refused as "Xs: holds
    an int too large for float64", naming neither the view nor the row
    (one view, or a list of arrays, was named by row)."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 3)).tolist()
    big = [row[:] for row in base]
    big[4][1] = -(10**400)
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[1\]: row 4 holds -1\.000e\+400 \(an int of 401 digits\), too "
                                                r"large for float32") as info:
        MultimodalEmbedder(epochs=1, embed_dim=4, hidden_dim=8).fit([base, big])
    assert info.value.arg == "Xs[1]"


# ------------------------------------------------------------------ CSV comment headers and the names a model keeps
def _savetxt_pair(tmp_path):
    """The same data written by np.savetxt with header "a,b,c", and with its first two columns swapped ("b,a,c")."""
    x = np.random.default_rng(0).normal(size=(30, 3))
    np.savetxt(tmp_path / "train.csv", x, delimiter=",", header="a,b,c")
    np.savetxt(tmp_path / "swapped.csv", x[:, [1, 0, 2]], delimiter=",", header="b,a,c")
    return x


def test_embed_refuses_reordered_columns_of_a_model_fitted_on_pandas_reading_of_a_comment_header(tmp_path, capsys):
    """Before: pandas reads np.savetxt's "# a,b,c" as columns ('# a', 'b',
    'c'), which a model fitted on the frame keeps; grapheme-mm reads the
    comment header as ('a', 'b', 'c') since it reads comment headers, so a
    file of "# b,a,c" was not seen as those columns in another order and
    ``embed`` read them by position, another feature in each, exit 0."""
    pd = pytest.importorskip("pandas")
    from grapheme_multimodal.cli import main

    _savetxt_pair(tmp_path)
    frame = pd.read_csv(tmp_path / "train.csv")
    assert tuple(frame.columns) == ("# a", "b", "c")
    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=16, seed=0)
    model.fit({"visual": frame}, epochs=1, progress=False)
    path = str(tmp_path / "m.safetensors")
    model.save(path)
    capsys.readouterr()
    code = main(["embed", path, "-m", f"visual={tmp_path / 'swapped.csv'}", "-o", str(tmp_path / "e.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "in another order (b,a,c)" in err and "trained on: # a,b,c" in err, err
    assert not (tmp_path / "e.npy").exists()


def test_a_model_trained_on_a_comment_header_refuses_pandas_frame_of_the_columns_reordered(tmp_path) -> None:
    """The other way round: ``grapheme-mm train`` keeps ('a', 'b', 'c') of
    "# a,b,c"; pandas' frame of "# b,a,c" is ('# b', 'a', 'c'), which
    ``encode`` took for other names and read by position, without a word.
    Refused now, the remedy naming the order (no selection by the fitted
    names, which the frame does not hold)."""
    pd = pytest.importorskip("pandas")
    from grapheme_multimodal.cli import main

    x = _savetxt_pair(tmp_path)
    path = str(tmp_path / "m.safetensors")
    assert main(["train", "-m", f"visual={tmp_path / 'train.csv'}", "--epochs", "1", "--no-progress", "-o", path]) == 0
    model = gm.LearnableMultiModal.load(path)
    assert model.input_columns("visual") == ("a", "b", "c")
    before = model.encode({"visual": x})
    swapped = pd.read_csv(tmp_path / "swapped.csv")
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: its columns \['# b', 'a', 'c'\] are those the "
                                                   r"model was fitted on \(\['a', 'b', 'c'\]\) in another order, and "
                                                   r"columns are read by position; expected them in the order the "
                                                   r"model was fitted on: \['a', 'b', 'c'\]$"):
        model.encode({"visual": swapped})
    # the same names, or other names altogether, are as before
    same = pd.read_csv(tmp_path / "train.csv")
    np.testing.assert_array_equal(model.encode({"visual": same}), before)
    model.encode({"visual": swapped.rename(columns={"# b": "x", "a": "y", "c": "z"})})
    # one learned name at another position beside a renamed one ('a' read as 'b') is refused too
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: its columns \['x', 'a', 'c'\] name columns"):
        model.encode({"visual": swapped.rename(columns={"# b": "x"})})


def test_a_first_name_marked_as_a_comment_that_moved_is_still_a_reordering() -> None:
    from grapheme_multimodal._frames import is_reordering

    assert is_reordering(("#a", "b", "c"), ("b", "#a", "c"))  # pandas frames: the same names, reordered
    assert is_reordering(("#a", "b", "c"), ("a", "c", "b"))  # a checkpoint of before, the CLI's reading now
    assert not is_reordering(("#a", "b", "c"), ("a", "b", "c"))  # the same order
    assert not is_reordering(("# a", "b", "c"), ("# a", "b", "c"))
    assert not is_reordering(("a", "b", "c"), ("x", "b", "a"))


# ------------------------------------------------------------------ the weight average and the state dict's buffers
def _fitted(seed: int = 0):
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(5, 3, (24, 6)).astype(np.float32), "tactile": rng.normal(-2, 4, (24, 4)).astype(np.float32)}
    model = gm.LearnableMultiModal(input_dims={"visual": 6, "tactile": 4}, embed_dim=8, hidden_dim=16, seed=seed)
    model.fit(data, epochs=1, progress=False)  # standardize=True: the state dict holds normalization.* buffers
    return model, data


def test_a_weight_average_of_state_dicts_averages_the_weights_alone() -> None:
    """Before: ``updated(model.state_dict())`` averaged the standardisation
    buffers as weights: the average then held tensors no model's weights
    hold, ``holds(model.state_dict())`` (which leaves the buffers out) was
    False of the model holding it, and ``applied(model)`` was refused as
    "state_dict: unexpected keys ['normalization.tactile.mean', ...]"."""
    from grapheme_multimodal.averaging import WeightAverage

    model, _ = _fitted()
    average = WeightAverage.start(0.9).updated(model.state_dict()).updated(model.state_dict())
    assert set(average.mean) == set(model.parameter_shapes())
    applied = average.applied(model)
    assert applied is not None and applied.held_by(model)
    assert applied.holds(model.state_dict())
    assert set(applied.trained) == set(model.parameter_shapes())
    assert set(average.applied_to(model.state_dict()).trained) == set(model.parameter_shapes())


# ------------------------------------------------------------------ a strict load's refusal, said of the dict given
def _snapshot(model):
    return {k: v.tobytes() for k, v in model.state_dict().items()}


def test_a_strict_load_of_a_whole_state_dict_lacking_a_standardisation_says_what_the_dict_is() -> None:
    """Before: the state dict of a model that standardised visual only, loaded
    strictly into one standardising tactile too, was refused as "a dict of
    the parameters alone, or one saved before state_dict held the
    standardisation": neither, a whole state dict, whose owner went looking
    for what it lacked. The refusal says what it is; both remedies still
    named (the second for each modality), nothing changed."""
    model, _ = _fitted()
    source, _ = _fitted(seed=1)
    source.set_normalization("tactile")  # removed: a model that standardises visual's inputs only
    before = _snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"missing keys \['normalization\.tactile\.mean', 'normalization\."
                                                   r"tactile\.std'\] \(strict=True\): the model standardises the inputs "
                                                   r"of 'tactile' and the dict holds no standardisation for them \(a "
                                                   r"state dict of a model that standardised no such inputs\)"):
        model.load_state_dict(source.state_dict())
    assert _snapshot(model) == before
    params = {k: v for k, v in source.state_dict().items() if not k.startswith("normalization.")}
    with pytest.raises(gm.InvalidValueError, match=r"\(a dict of the parameters alone, one saved before state_dict held "
                                                   r"the standardisation, or one of a model that standardised no "
                                                   r"inputs\).*model\.set_normalization\('visual'\); model\.set_normalization\('tactile'\)\) "
                                                   r"to load the dict as the whole state$"):
        model.load_state_dict(params)
    assert _snapshot(model) == before


def test_a_strict_load_of_a_wrapped_models_dict_names_the_prefix_to_strip() -> None:
    """Before: a state dict saved from a wrapped model (``module.encoder...``,
    as PyTorch's DataParallel names it, its ``module.normalization.*``
    buffers too) was refused with every name listed twice, unexpected and
    missing, and nothing said of the prefix; the remedy the refusal gives
    now loads it."""
    model, data = _fitted()
    source, _ = _fitted(seed=1)
    wrapped = {"module." + k: v for k, v in source.state_dict().items()}
    before = _snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"\(strict=True\); the unexpected keys are the model's names behind "
                                                   r"the prefix 'module\.' \(as PyTorch's DataParallel and "
                                                   r"DistributedDataParallel name a wrapped model's\): strip it, "
                                                   r"\{k\[7:\] if k\.startswith\('module\.'\) else k: v for k, v in "
                                                   r"state_dict\.items\(\)\}$"):
        model.load_state_dict(wrapped)
    assert _snapshot(model) == before
    state_dict = wrapped
    assert model.load_state_dict({k[7:] if k.startswith('module.') else k: v for k, v in state_dict.items()}) == ([], [])
    assert _snapshot(model) == _snapshot(source)
    # names that are not all behind one prefix: no such note
    with pytest.raises(gm.InvalidValueError) as info:
        model.load_state_dict({**source.state_dict(), "module.extra": np.zeros(1)})
    assert "prefix" not in str(info.value)
