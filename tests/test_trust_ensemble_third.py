"""A third hostile-use audit of the ensembles (uci.fit_ensemble,
evaluation.EnsembleEmbedder, save_ensemble, MultimodalEmbedder(n_members=K),
run_demo(members=K)): what an ensemble refuses is named as the caller named
it, by the member it is about, with the package's own exception classes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from grapheme_multimodal import LearnableMultiModal, evaluation, uci  # noqa: E402
from grapheme_multimodal.ensemble import save_ensemble  # noqa: E402
from grapheme_multimodal.exceptions import InvalidTypeError, InvalidValueError, TooLargeError  # noqa: E402
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402

TINY = uci.TrainingSettings(epochs=1, batch_size=32, embed_dim=8, hidden_dim=16, num_heads=2, encoder_hidden=(16,))


def _views(n: int = 48) -> dict:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 3))
    return {"a": (z @ rng.normal(size=(3, 5))).astype(np.float32),
            "b": (z @ rng.normal(size=(3, 4))).astype(np.float32)}


@pytest.fixture(scope="module")
def shallow() -> evaluation.ModelEmbedder:
    """A member with one hidden layer (16,)."""
    return uci.fit_views(_views(), 0, settings=TINY)


@pytest.fixture(scope="module")
def deep() -> evaluation.ModelEmbedder:
    """A member with two hidden layers (8, 7) and wider embeddings."""
    settings = uci.TrainingSettings(epochs=1, batch_size=32, embed_dim=16, hidden_dim=16, num_heads=2, encoder_hidden=(8, 7))
    return uci.fit_views(_views(), 1, settings=settings)


# --- fit_ensemble ---------------------------------------------------------------------------


def test_a_view_too_wide_for_memory_is_named_as_the_view_whatever_the_number_of_members():
    """Before: with members=2, "input_dims: embed_dim=8, ... a model of 328565046320
    parameters ... would need 10.8 TiB" (the model's argument, which fit_ensemble has
    not), where one member's ensemble named it "views"."""
    views = {"a": np.broadcast_to(np.float32(1), (40, 2**31)), "b": _views(40)["b"]}  # no memory: one value
    messages = []
    for members in (1, 2):
        with pytest.raises(TooLargeError) as info:
            uci.fit_ensemble(views, 0, members=members, settings=TINY)
        assert str(info.value).startswith("views: embed_dim=8, hidden_dim=16, input_dims up to 2147483648")
        assert info.value.arg == "views"
        messages.append(str(info.value))
    assert messages[0] == messages[1]


# --- EnsembleEmbedder -----------------------------------------------------------------------


# --- run_demo(members=K) -----------------------------------------------------------------------


