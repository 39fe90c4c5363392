"""A hostile-use audit of the ensembles: evaluation.EnsembleEmbedder,
uci.fit_ensemble and uci.member_seeds, MultimodalEmbedder(n_members=K).
Every mistake is refused naming the caller's argument, what was given and
what was expected; nothing hangs, crashes or is read as something else."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402

from grapheme_multimodal import _validation, evaluation, uci  # noqa: E402
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError, ShapeError, TooLargeError  # noqa: E402
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402

TINY = uci.TrainingSettings(epochs=1, batch_size=32, embed_dim=8, hidden_dim=16, num_heads=2, encoder_hidden=(16,))
SMALL = dict(embed_dim=8, hidden_dim=16, num_heads=2, epochs=1, encoder_hidden=(16,))


def _views(n: int = 48, width_a: int = 5) -> dict:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(n, 3))
    return {"a": (z @ rng.normal(size=(3, width_a))).astype(np.float32),
            "b": (z @ rng.normal(size=(3, 4))).astype(np.float32)}


@pytest.fixture(scope="module")
def ensemble() -> evaluation.EnsembleEmbedder:
    """Two members of width 8: embeddings [N, 16]."""
    return uci.fit_ensemble(_views(), 0, members=2, settings=TINY)


# --- member_seeds and fit_ensemble ------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: uci.member_seeds(1, 2**65),
    lambda: uci.fit_ensemble(_views(), 1, members=2**65, settings=TINY),
    lambda: MultimodalEmbedder(**SMALL, random_state=1, n_members=2**65).fit(list(_views().values())),
])
def test_more_members_than_u64_seeds_are_refused_by_name(call):
    """Before: AttributeError "'float' object has no attribute 'bit_length'" (and with
    seed 0 a hang listing 2**65 seeds, of which all past 2**64 are no u64)."""
    with pytest.raises(InvalidValueError, match=r"^(n_)?members: expected at most 2\*\*64 members .* got 36893488147419103232$"):
        call()


def test_members_whose_seeds_exceed_memory_are_refused_before_listing_them(monkeypatch):
    """Before: member_seeds(0, 10**12) filled memory building the tuple (here, with a
    budget of under 1,000 seeds' bytes, it returned them)."""
    monkeypatch.setattr(_validation, "memory_budget", lambda: 39_999)
    with pytest.raises(TooLargeError, match=r"^members: the seeds of 1,000 members take 40,000 bytes, .* expected fewer members$"):
        uci.member_seeds(0, 1000)
    assert len(uci.member_seeds(0, 999)) == 999


def test_a_seed_taken_from_the_settings_is_named_as_the_settings_seed():
    """Before: "seed: expected an int in [0, 2**62) ..." though the caller gave no seed."""
    settings = uci.TrainingSettings(epochs=1, seed=2**63)
    with pytest.raises(InvalidValueError, match=r"^settings\.seed: expected an int in \[0, 2\*\*62\) \(member j trains "
                                                r"with settings\.seed \* 3 \+ j\), got 9223372036854775808$"):
        uci.fit_ensemble(_views(), members=3, settings=settings)
    with pytest.raises(InvalidValueError, match=r"^seed: expected an int in \[0, 2\*\*62\)"):
        uci.fit_ensemble(_views(), 2**63, members=3, settings=settings)
