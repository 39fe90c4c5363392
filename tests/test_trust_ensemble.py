"""A hostile-use audit of the ensembles: evaluation.EnsembleEmbedder,
uci.fit_ensemble and uci.member_seeds, MultimodalEmbedder(n_members=K).
Every mistake is refused naming the caller's argument, what was given and
what was expected; nothing hangs, crashes or is read as something else."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402

from grapheme_multimodal import _validation, evaluation, uci  # noqa: E402
from grapheme_multimodal.exceptions import InvalidValueError, NonFiniteError, ShapeError, TooLargeError  # noqa: E402
from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: E402
from grapheme_multimodal.stopping import folds_bytes  # noqa: E402

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


# --- EnsembleEmbedder ---------------------------------------------------------------------


def test_members_taking_views_of_other_widths_are_refused_at_construction(ensemble):
    """Before: accepted, and every embedding of view 'a' then failed in one member or the
    other as the data's fault ("views['a']: expected shape (any, 7), got (48, 5)")."""
    wider = uci.fit_views(_views(width_a=7), 0, settings=TINY)
    with pytest.raises(InvalidValueError, match=r"^members\[1\]: takes views of \{'a': 7, 'b': 4\} columns; expected "
                                                r"those of members\[0\], \{'a': 5, 'b': 4\}$"):
        evaluation.EnsembleEmbedder([ensemble.members[0], wider])


def test_views_named_by_other_than_str_make_an_ensemble():
    """Before: fit_ensemble trained every member, then raised "TypeError: '<' not supported
    between instances of 'str' and 'int'" sorting the views {0, 'b'}, which fit_views takes."""
    views = _views()
    views = {0: views["a"], "b": views["b"]}
    ensemble = uci.fit_ensemble(views, 0, members=2, settings=TINY)
    assert ensemble.embed_fused(views).shape == (48, 16)
    other = uci.fit_views({0: views[0], "c": views["b"]}, 0, settings=TINY)
    with pytest.raises(InvalidValueError, match=r"^members\[1\]: embeds views \[0, 'c'\]; expected the views of members\[0\]"):
        evaluation.EnsembleEmbedder([ensemble.members[0], other])


@pytest.mark.parametrize("bad, message", [
    (lambda a: a + 1j, r"^a: expected real numbers, got complex"),
    (lambda a: a.astype(str), r"^a: expected a real-valued numeric array"),
    (lambda a: np.full(a.shape, None), r"^a: expected a real-valued numeric array"),
])
def test_bind_refuses_what_is_no_real_number_as_the_members_do(ensemble, bad, message):
    """Before: a cast to float32 dropped the imaginary part (a ComplexWarning only), read
    "0.5" strings as numbers, and called None a non-finite value."""
    emb = ensemble.embed_views(_views())
    with pytest.raises(TypeError, match=message):
        ensemble.bind(bad(emb["a"]), emb["b"])


def test_bind_names_the_ensembles_columns_not_a_members_block(ensemble):
    """Before: NaN at column 11 was reported "at index (2, 3)" (of the second member's
    block), b of too few rows "expected shape (5, 8)" (a member's), and a float64 1e39
    "a non-finite value"."""
    emb = ensemble.embed_views(_views())
    a = emb["a"].copy()
    a[2, 11] = np.nan
    with pytest.raises(NonFiniteError, match=r"^a: contains a non-finite value \(NaN or inf\) at index \(2, 11\)"):
        ensemble.bind(a, emb["b"])
    with pytest.raises(ShapeError, match=r"^b: expected shape \(5, 16\), got \(4, 16\)$"):
        ensemble.bind(emb["a"][:5], emb["b"][:4])
    wide = emb["a"].astype(np.float64)
    wide[2, 11] = 1e39
    with pytest.raises(NonFiniteError, match=r"^a: row 2 holds 1e\+39, too large for float32"):
        ensemble.bind(wide, emb["b"])
    # what is right still binds, as the mean of the members' strengths
    parts = [m.embed_views(_views()) for m in ensemble.members]
    expected = np.mean([m.bind(p["a"], p["b"]) for m, p in zip(ensemble.members, parts)], axis=0)
    np.testing.assert_allclose(ensemble.bind(emb["a"].astype(np.float64), emb["b"].tolist()), expected, atol=1e-6)


def test_bind_names_a_finite_value_that_overflows_once_scaled_back_to_a_members_rows(ensemble):
    """Before: a float32 3e38 at column 12 (finite; times sqrt(2) it is not) gave numpy's
    "overflow encountered in multiply" and "a: contains a non-finite value ... at index (1, 4)"."""
    emb = ensemble.embed_views(_views())
    huge = emb["a"].copy()
    huge[1, 12] = 3e38
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NonFiniteError, match=r"^a: index \(1, 12\) holds 3e\+38, which times sqrt\(2\) \(back to a "
                                                 r"member's rows\) passes float32's largest 3\.4e\+38; expected the "
                                                 r"ensemble's embeddings \(unit rows\)$"):
            ensemble.bind(huge, emb["b"])


# --- MultimodalEmbedder(n_members=K) ---------------------------------------------------


def test_an_estimator_pickled_before_n_members_existed_can_be_refitted_and_cloned():
    """Before: its repr, get_params, clone and fit raised AttributeError 'n_members'."""
    Xs = list(_views().values())
    est = MultimodalEmbedder(**SMALL).fit(Xs)
    state = est.__getstate__()
    for name in ("models_", "histories_", "n_members"):  # what an older version's pickle lacks
        state.pop(name)
    old = pickle.loads(pickle.dumps(est))
    old.__dict__.clear()
    old.__setstate__(state)
    assert old.get_params()["n_members"] == 1 and "MultimodalEmbedder(" in repr(old)
    assert clone(old).get_params() == est.get_params()
    np.testing.assert_array_equal(old.fit(Xs).transform(Xs), est.transform(Xs))
    assert len(old.models_) == 1


def test_more_members_than_memory_holds_are_refused_before_making_them(monkeypatch):
    """Before: every member's model was made up front whatever their number: past
    memory the allocation aborted the process (here, under a small budget, they were made)."""
    Xs = list(_views().values())
    fitted = MultimodalEmbedder(**SMALL).fit(Xs)
    expected = fitted.transform(Xs)
    params = fitted.model_.num_parameters()
    held = uci.TRAINED_BYTES_PER_PARAMETER * params  # a trained member: weights, Adam, the average
    # and the copies of the one member training for its 5 cross-validation folds (counted since: past memory
    # they aborted the process)
    monkeypatch.setattr(_validation, "memory_budget", lambda: int(2.5 * held) + folds_bytes(params, 5))
    MultimodalEmbedder(**SMALL, n_members=2).fit(Xs)  # two fit
    fitted.set_params(n_members=3)
    with pytest.raises(TooLargeError, match=rf"^n_members: 3 models of {params:,} parameters, each with its training "
                                            rf"state, take {3 * held:,} bytes, .* expected fewer members$"):
        fitted.fit(Xs)
    assert len(fitted.models_) == 1  # the failed fit left the estimator as it was
    np.testing.assert_array_equal(fitted.transform(Xs), expected)


def test_fit_ensemble_refuses_more_members_than_memory_holds_before_training_them(monkeypatch):
    """Before: fit_ensemble trained member after member whatever their number: past
    memory an allocation aborted the process (here, under a small budget, all trained)."""
    views = _views()
    params = uci.fit_views(views, 0, settings=TINY).model.num_parameters()
    held = uci.TRAINED_BYTES_PER_PARAMETER * params
    # and the copies of the one member training for its 5 cross-validation folds (counted since)
    monkeypatch.setattr(_validation, "memory_budget", lambda: int(2.5 * held) + folds_bytes(params, 5))
    assert len(uci.fit_ensemble(views, 0, members=2, settings=TINY)) == 2
    trained, fit_views = [], uci.fit_views
    monkeypatch.setattr(uci, "fit_views", lambda *args, **kwargs: trained.append(1) or fit_views(*args, **kwargs))
    with pytest.raises(TooLargeError, match=rf"^members: 3 models of {params:,} parameters, each with its training "
                                            rf"state, take {3 * held:,} bytes, .* expected fewer members$"):
        uci.fit_ensemble(views, 0, members=3, settings=TINY)
    assert not trained  # counted by an untrained model of the settings, before any member trains
