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
