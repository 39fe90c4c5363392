"""A hostile user's audit of the scikit-learn estimator
(:class:`~grapheme_multimodal.sklearn.MultimodalEmbedder`) as a
scikit-learn user pushes it, and five smaller items noticed by earlier
audits: what it turned up, each test failing before its fix, and what held
(last tests). scikit-learn's own estimator checks run in test_sklearn.py."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.config import MAX_DROPOUT
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import save_with_config_fields, two_view_data, two_view_model


# ------------------------------------------------------------- what broke
@pytest.mark.parametrize("name", ["encoder_input_dropout", "encoder_hidden_dropout"])
@pytest.mark.parametrize("rate", [1 - 1e-7, 0.999, float(np.nextafter(1.0, 0.0))])
def test_a_dropout_whose_keep_probability_the_draws_cannot_resolve_is_refused_by_name(name, rate):
    """A rate just below 1 passed the check for [0, 1): its entries are kept
    when a 32-bit draw clears round(p * 2**32), so a keep probability of
    1e-7 was realised only to about 0.1 % and one of 1e-16 as 2**-32, while
    each kept entry was scaled by 1 / (1 - p), up to 9e15: the expected
    multiplier was no longer 1. Refused in the core's config (every entry
    point) and by the Python config, naming the field."""
    options = dict(encoder_hidden=(8,), **{name: rate})
    with pytest.raises(InvalidValueError, match=rf"^{name}: expected a probability in \[0, 0\.998046875\]") as err:
        gm.LearnableMultiModalConfig(**options)
    assert err.value.arg == name
    with pytest.raises(InvalidValueError, match=rf"^{name}: ") as err:
        gm.LearnableMultiModal(**options)
    assert err.value.arg == name
    at_bound = two_view_model(encoder_hidden=(8,), **{name: MAX_DROPOUT})  # the bound itself trains
    at_bound.fit(two_view_data(), epochs=1, batch_size=10, progress=False)
    assert np.isfinite(at_bound.history[-1]["loss"])


def test_the_core_refuses_a_dropout_beyond_the_bound_by_name_too():
    """The Rust config's own check, which the model runs past the Python
    config (a config changed behind its back here)."""
    assert MAX_DROPOUT == 1 - 2**-9
    config = gm.LearnableMultiModalConfig(encoder_hidden=(8,))
    object.__setattr__(config, "encoder_hidden_dropout", 0.999)  # frozen: as a buggy caller could
    with pytest.raises(InvalidValueError, match=r"^encoder_hidden_dropout: got 0\.999; expected a probability in \[0, 0\.998046875\]") as err:
        gm.LearnableMultiModal(config)
    assert err.value.arg == "encoder_hidden_dropout"


def test_a_file_saved_with_a_dropout_beyond_the_bound_still_loads(tmp_path):
    """A model saved by an earlier version with such a rate (it trained, if
    to no purpose) is the user's: it loads, its rate read as the bound, and
    says so."""
    model = two_view_model(encoder_hidden=(8,), encoder_hidden_dropout=0.5)
    path = tmp_path / "m.safetensors"
    save_with_config_fields(model, path, encoder_hidden_dropout=0.9999)
    with pytest.warns(UserWarning, match=r"encoder_hidden_dropout: .* 0\.9999 .* read as 0\.998046875"):
        loaded = gm.LearnableMultiModal.load(path)
    assert loaded.config.encoder_hidden_dropout == MAX_DROPOUT
    np.testing.assert_array_equal(loaded.encode_and_fuse(two_view_data())[1], model.encode_and_fuse(two_view_data())[1])


FAST = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=2, batch_size=32)


def estimator_views(n: int = 80, widths=(6, 4), seed: int = 0) -> list:
    """Views ``[n, d]`` of one 3-d latent."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return [z @ rng.normal(size=(3, d)) for d in widths]


def test_views_as_one_3d_array_in_mvlearns_convention_are_the_views():
    """The estimator follows mvlearn's convention, in which Xs is a list of
    [n, d] arrays or one [n_views, n, d] array; the latter was refused with
    scikit-learn's "Found array with dim 3, while dim <= 2 is required"."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = estimator_views(widths=(5, 5, 5))
    stacked = np.stack(Xs)
    est = MultimodalEmbedder(**FAST).fit(stacked)
    assert est.n_views_ == 3 and est.view_dims_ == [5, 5, 5]
    expected = MultimodalEmbedder(**FAST).fit(Xs)
    np.testing.assert_array_equal(est.transform(stacked), expected.transform(Xs))
    np.testing.assert_array_equal(est.transform(Xs), expected.transform(stacked))
    with pytest.raises(InvalidValueError, match=r"^Xs: expected at least one view .* got a 3-d array of 0 views"):
        MultimodalEmbedder(**FAST).fit(np.zeros((0, 10, 5)))
