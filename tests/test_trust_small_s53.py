"""Session 53's small defects (an audit's leftovers and what a hunt in the
same places found): each test says what a user saw before."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from nearest_oracle import exact_nearest
from test_trust_training_second import data, small
from test_trust_training_second import snapshot as second_snapshot

ONE_OF_ONE = (r"^batch: 1 row; contrastive, binding, fused_contrastive tell the rows of a batch apart and are 0 on a "
              r"single row; no row holds two modalities \(cross_modal is 0 on them\), so this step would train nothing; "
              r"expected at least 2 rows, or a row holding two modalities for cross_modal$")


def snapshot(model):
    """Everything a step changes, as bytes, the modalities it records as trained too: a refused call must leave
    it bit for bit."""
    return second_snapshot(model) + (pickle.dumps(model.trained_modalities),)


def trained():
    model = small()
    model.fit(data(), epochs=1, batch_size=8, progress=False)  # momentum to move by
    return model


def test_train_step_on_one_row_of_one_modality_is_refused_as_fit_refuses_it():
    """train_step on one row holding one modality computed every loss as 0,
    took an Adam step on zero gradients (every weight moved by its
    momentum, the step count advanced) and recorded the modality as
    trained, without a word; fit refused the same data."""
    model = trained()
    before = snapshot(model)
    one = {"visual": np.ones((1, 5))}
    with pytest.raises(gm.InvalidValueError, match=ONE_OF_ONE) as info:
        model.train_step(one)
    assert info.value.arg == "batch"
    with pytest.raises(gm.InvalidValueError, match=r"^data: 1 row; .*, so nothing would train; expected at least 2 rows, "
                       r"or a row holding two modalities for cross_modal$"):
        small().fit(one, epochs=1, progress=False)  # the same family of words
    # as events, as recorded embeddings, and with cross_modal alone
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(5), gm.Modality.VISUAL)])
    with pytest.raises(gm.InvalidValueError, match=ONE_OF_ONE):
        model.train_step(gm.Batch(events=[event]))
    emb, mask = np.zeros((1, 7, 8), np.float32), np.zeros((1, 7), bool)
    emb[0, 0, 0], mask[0, 0] = 1.0, True  # a unit vector, as recorded embeddings are
    with pytest.raises(gm.InvalidValueError, match=r"^batch: 1 row; .*no row holds two modalities"):
        model.train_step(gm.Batch(embeddings=emb, mask=mask))
    with pytest.raises(gm.InvalidValueError, match=r"^batch: no row holds two modalities \(cross_modal is 0 on them\), so "
                       r"this step would train nothing"):
        model.train_step({"visual": np.ones((3, 5)), "auditory": np.ones((3, 3))},
                         np.array([[1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]], bool),
                         weights={"cross_modal": 1.0})
    with pytest.raises(gm.InvalidValueError, match=r"^batch: no three rows hold the same modality \(neighborhood is 0"):
        model.train_step(data(2), weights={"neighborhood": 1.0})
    assert snapshot(model) == before
    # what learns still trains: one row of two modalities (cross_modal), two rows of one (fused_contrastive)
    assert model.train_step({"visual": np.ones((1, 5)), "auditory": np.ones((1, 3))})["cross_modal"] > 0
    assert model.train_step({"visual": np.arange(10.0).reshape(2, 5)})["fused_contrastive"] > 0


def test_backward_then_step_on_a_batch_that_learns_nothing_is_refused():
    """backward on one row of one modality set has_gradients (zeros) and
    step() then took an Adam step on them, as train_step did."""
    model = trained()
    model.zero_grad()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^batch: 1 row; .*, so its gradients would be 0 and the next step\(\) "
                       r"an Adam step on them; expected at least 2 rows"):
        model.backward({"visual": np.ones((1, 5))})
    model.step()  # no gradients: a no-op
    assert snapshot(model) == before
    # accumulating: zeros added to gradients already there are taken, as any micro-batch
    model.backward(data(4))
    model.backward({"visual": np.ones((1, 5))})
    model.step()
    assert model.optimizer_state()["step"] == before[1] + 1


def test_replaying_one_recorded_experience_of_one_modality_is_refused_unless_an_objective_learns_from_it():
    """A replay step on a sample of one experience of one modality, without
    seed_consistency (the one objective that learns from its fused
    embedding), was an Adam step on zero gradients."""
    model = trained()
    model.record_fusion(gm.MultiModalEvent(3, [gm.ModalFeatures(np.ones(5), gm.Modality.VISUAL)]), reward=0.5)
    before = snapshot(model)
    batch = gm.Batch.from_experiences(model.experience.sample(1))
    with pytest.raises(gm.InvalidValueError, match=r"^batch: 1 row; .*no row holds two modalities"):
        model.train_step(batch, weights={"contrastive": 1.0, "cross_modal": 1.0})
    assert snapshot(model) == before
    model.train_step(data(8))  # the model moves on from the one that recorded the fused embedding
    assert model.train_step(batch)["seed_consistency"] > 0  # the default mix with fused: seed_consistency learns


def test_a_replay_step_whose_every_reward_is_1_with_seed_consistency_alone_is_refused():
    """train_step on recorded experiences whose rewards are all 1, with
    only seed_consistency weighted (it weighs each row by 1 - reward), was
    an Adam step on zero gradients; fit refuses such a buffer."""
    model = trained()
    model.record_batch(data(4), rewards=1.0)
    model.zero_grad()
    before = snapshot(model)
    batch = gm.Batch.from_experiences(model.experience.batch())
    with pytest.raises(gm.InvalidValueError, match=r"^batch: every row's reward is 1, and seed_consistency weighs each row "
                       r"by 1 - reward \(seed_consistency is 0 on them\), so this step would train nothing"):
        model.train_step(batch, weights={"seed_consistency": 1.0})
    assert snapshot(model) == before
    assert model.train_step(batch)["total"] > 0  # the other objectives learn from the same rows


BIG = np.longdouble("1e4000")  # finite; float() and float64 make it inf
TINY = np.longdouble("1e-4000")  # > 0; float() and float64 make it 0
needs_long_double = pytest.mark.skipif(not np.isfinite(BIG), reason="long double is float64 on this platform")


@needs_long_double
def test_a_long_double_beyond_float64_is_named_as_given_not_as_inf():
    """record_fusion's reward, update_priorities and the objectives' weights
    read a long double 1e4000 through float() or a float64 copy and named it
    inf, a value the caller never gave (the model says "holds 1e+4000, too
    large for float32"); update_priorities warned numpy's overflow too, and a
    weight or priority of 1e-4000 became 0 without a word."""
    import warnings

    model = trained()
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(5), gm.Modality.VISUAL)])
    with pytest.raises(gm.NonFiniteError, match=r"^reward: holds -1e\+4000, too large for float32"):
        model.record_fusion(event, reward=-BIG)
    with pytest.raises(gm.NonFiniteError, match=r"^reward: holds 1e\+4000, too large for float32"):
        model.record_fusion(event, reward=np.array(BIG))
    model.record_fusion(event, reward=0.5)
    buffer = model.experience
    saved = buffer.state()[0]["priorities"].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast"
        with pytest.raises(gm.InvalidValueError, match=r"^priorities: expected finite numbers > 0, got \[1e\+4000\], which "
                           r"float64, the precision priorities are kept in, makes 0 or inf$"):
            buffer.update_priorities([0], np.array([BIG]))
        with pytest.raises(gm.InvalidValueError, match=r"^priorities: expected finite numbers > 0, got \[1e-4000\], which"):
            buffer.update_priorities([0], [TINY])
    with pytest.raises(gm.InvalidValueError, match=r"^priorities: expected finite numbers > 0, got \[0\.0, nan\]$"):
        buffer.update_priorities([0, 0], [0.0, np.nan])
    assert np.array_equal(buffer.state()[0]["priorities"], saved)
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=r"^weights\['contrastive'\]: expected a finite number >= 0 that float32 "
                       r"holds, got 1e\+4000$"):
        model.train_step(data(4), weights={"contrastive": BIG})
    with pytest.raises(gm.InvalidValueError, match=r"^objectives\['binding'\]: expected a finite number >= 0, got -1e\+4000$"):
        model.fit(data(4), epochs=1, progress=False, objectives={"binding": -BIG})
    with pytest.raises(gm.InvalidValueError, match=r"^weights\['contrastive'\]: got 1e-4000, which is 0 in float32"):
        model.train_step(data(4), weights={"contrastive": TINY})
    assert snapshot(model) == before


@needs_long_double
def test_plot_attention_names_a_long_double_beyond_float64(tmp_path):
    """plot_attention cast the weights to float64 first: 1e4000 became inf,
    refused as "holds NaN or inf" with numpy's overflow warning."""
    import warnings

    pytest.importorskip("matplotlib")
    from grapheme_multimodal.plotting import plot_attention

    w = np.zeros((2, 7), np.longdouble)
    w[1, 3] = BIG
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(gm.NonFiniteError, match=r"^weights: row 1 holds 1e\+4000, too large for float64"):
            plot_attention(w, ["a", "b"], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def _wide_integers(rng: np.random.Generator, n: int, d: int, dtype: type, top: int) -> "tuple[np.ndarray, np.ndarray]":
    """Rows of ``dtype`` whose first column (about ``top``, beyond 2**53, a
    few values) dominates small features, with copies and negated or halved
    gallery rows."""
    signed = np.dtype(dtype).kind == "i"
    stamps = [top - int(k) for k in rng.integers(0, 3, size=2 * n)]
    small = rng.integers(-3000 if signed else 0, 3000, size=(2 * n, d)).tolist()
    rows = np.array([[s] + r for s, r in zip(stamps, small)], dtype=dtype)
    query, gallery = rows[:n], rows[n:].copy()
    if n > 3:
        gallery[rng.integers(0, n, size=n // 3)] = gallery[rng.integers(0, n)]
        if signed:
            flip = rng.integers(0, n, size=n // 5)
            gallery[flip] = -gallery[flip]
        half = rng.integers(0, n, size=n // 5)
        gallery[half] = gallery[half] // 2
    return query, gallery


def _settled(query: np.ndarray, gallery: np.ndarray, metric: str) -> list:
    """Every query row's nearest as the exact rule decides it, every gallery row a candidate."""
    from grapheme_multimodal._exact_ties import ExactTies

    every = np.full((len(query), len(gallery)), 0.0)
    threshold = np.full(len(query), -np.inf if metric == "cosine" else np.inf)
    found = ExactTies(metric, query, gallery).settle(0, every, np.arange(len(query)), threshold)
    assert found is not None  # decided in the core, not row by row in Python integers
    return found.tolist()


@pytest.mark.parametrize("dtype, top", [(np.int64, 2**62 + 12345), (np.int64, 2**63 - 1), (np.uint64, 2**64 - 1),
                                        (np.uint64, 2**60 + 7)])
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_integers_beyond_2_53_are_decided_in_the_core_as_in_python_integers(dtype, top, metric):
    """cross_view_retrieval on int64 or uint64 values beyond 2**53 with one
    dominating column decided every near tie in Python integers, every
    gallery row a candidate of every query: 1.2 s for 1,000 rows, 10 s for
    3,000. The core now decides them on each value split exactly into two
    float64s; the rows found are those of Python integers."""
    for seed in range(6):
        rng = np.random.default_rng(seed)
        query, gallery = _wide_integers(rng, int(rng.integers(2, 25)), int(rng.integers(1, 4)), dtype, top)
        assert _settled(query, gallery, metric) == exact_nearest(query, gallery, metric), seed


def test_the_extremes_of_int64_and_uint64_split_exactly():
    """-2**63 (whose magnitude is no int64), 2**63 - 1 and 2**64 - 1 beside
    rows one unit away: each split into float64 parts exactly, found as in
    Python integers."""
    low, high = -(2**63), 2**63 - 1
    query = np.array([[low, 1], [high, -1], [low + 1, 0]], dtype=np.int64)
    gallery = np.array([[low + 1, 1], [low, 1], [high, 0], [high - 1, -1], [high, -1], [low, 0]], dtype=np.int64)
    for metric in ("cosine", "euclidean"):
        assert _settled(query, gallery, metric) == exact_nearest(query, gallery, metric)
    top = 2**64 - 1
    query = np.array([[top, 1], [top - 2048, 3]], dtype=np.uint64)
    gallery = np.array([[top - 1, 1], [top, 0], [top, 1], [top - 2047, 3], [top - 2048, 3]], dtype=np.uint64)
    for metric in ("cosine", "euclidean"):
        assert _settled(query, gallery, metric) == exact_nearest(query, gallery, metric)
    # multiples of 2**11 beyond 2**53 are float64s as they are: nothing to split
    query = np.array([[2**62, 2**11], [2**62 + 2**11, 0]], dtype=np.int64)
    gallery = np.array([[2**62 + 2**12, 0], [2**62, 0], [2**62 + 2**11, 2**11]], dtype=np.int64)
    for metric in ("cosine", "euclidean"):
        assert _settled(query, gallery, metric) == exact_nearest(query, gallery, metric)


def test_retrieval_of_wide_integers_gives_the_figures_of_python_integers():
    """The whole search (float64 scores, then the near ties exactly) on
    int64 near 2**62 and uint64 near 2**64: the figures of the nearest rows
    of Python integers."""
    from grapheme_multimodal.metrics import cross_view_retrieval

    for dtype, top in [(np.int64, 2**62 + 99), (np.uint64, 2**64 - 5)]:
        for metric in ("cosine", "euclidean"):
            rng = np.random.default_rng(3)
            query, gallery = _wide_integers(rng, 40, 2, dtype, top)
            labels = rng.integers(0, 4, size=40)
            nearest = np.array(exact_nearest(query, gallery, metric))
            got = cross_view_retrieval(query, gallery, labels, metric=metric)
            assert got["class_precision_at_1"] == float(np.mean(labels[nearest] == labels))
            assert got["instance_recall_at_1"] == float(np.mean(nearest == np.arange(40)))


@pytest.mark.ray
@pytest.mark.timeout(120)
@pytest.mark.usefixtures("ray_session")
def test_a_distributed_workers_batch_of_one_row_of_one_modality_still_trains():
    """backward now refuses a batch with nothing to learn from when nothing
    is accumulated; a distributed fit's worker computes each share alone,
    and with batch_size=1 a share is one row, here of one modality: part of
    an epoch that learns (fit checked its data and warned of batch_size=1)."""
    pytest.importorskip("ray")
    from grapheme_multimodal import distributed

    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(4, 5)), "auditory": rng.normal(size=(4, 3))}
    mask = np.zeros((4, 7), bool)
    mask[:, 0] = True
    mask[3, 1] = True  # rows 0-2: visual only, nothing to learn from alone (batches of 1, 1 and 2 rows)
    model = small()
    with pytest.warns(UserWarning, match=r"^batch_size: 1"):
        history = distributed.fit(model, data, mask=mask, num_workers=2, epochs=1, batch_size=1, progress=False)
    assert history["loss"][0] > 0 and model.optimizer_state()["step"] == 3
