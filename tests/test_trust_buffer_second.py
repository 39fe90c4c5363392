"""Second hostile-use audit of the experience buffer and the model's record
paths: what a user could do that the first audit (test_trust_buffer.py)
did not try, each a clear error naming what was given, and nothing saved
that cannot be loaded."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.buffer import Experience, ExperienceBuffer


def rows(n: int, e: int = 4, first_id: int = 0) -> dict:
    return dict(
        embeddings=np.ones((n, 7, e), np.float32),
        mask=np.ones((n, 7), bool),
        fused=np.zeros((n, e), np.float32),
        pair_strengths=np.zeros((n, 7, 7), np.float32),
        rewards=np.arange(n, dtype=np.float32) / 10,
        event_ids=np.arange(first_id, first_id + n),
    )


def small_model(embed_dim: int = 8) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0, embed_dim=embed_dim, hidden_dim=8, num_heads=2, input_dims={"visual": 4})


def visual(n: int) -> dict:
    return {"visual": np.random.default_rng(n).normal(size=(n, 4)).astype(np.float32)}


# ------------------------------------------------------------ embed_dim 0
@pytest.mark.parametrize("how", ["extend", "append"])
def test_embeddings_of_no_columns_are_refused_not_saved_unloadable(tmp_path, how) -> None:
    """Embeddings of shape (n, 7, 0) were recorded: the buffer took
    embed_dim=0, and the file its save wrote was refused by from_file
    ("embed_dim: expected a positive int, got 0"): saved, never loadable."""
    buf = ExperienceBuffer(3)
    with pytest.raises(gm.ShapeError, match=r"embeddings: .*E >= 1") as err:
        if how == "extend":
            buf.extend(**rows(2, e=0))
        else:
            buf.append(Experience(np.ones((7, 0)), np.ones(7, bool), np.zeros(0), np.zeros((7, 7)), 0.0))
    assert "embeddings" in err.value.arg
    assert buf.embed_dim is None and len(buf) == 0
    buf.extend(**rows(2))
    buf.save(tmp_path / "b.safetensors")
    assert len(ExperienceBuffer.from_file(tmp_path / "b.safetensors")) == 2


def test_zero_rows_of_no_columns_leave_the_buffer_without_dims() -> None:
    buf = ExperienceBuffer(3)
    with pytest.raises(gm.ShapeError, match="embeddings"):
        buf.extend(**rows(0, e=0))
    assert buf.embed_dim is None
