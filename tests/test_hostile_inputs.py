"""Hostile inputs the earlier hardening missed: each one used to give a
wrong answer without a word, a numpy or OS error that named nothing (or a
killed process), or left an object changed by a call that failed."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import metrics
from grapheme_multimodal.stopping import fit_with_stopping

E = 8


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, num_heads=2, seed=0, **kw)


def views(n: int = 12, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(n, 18)) for m in ("visual", "auditory", "linguistic")}


def test_a_tiny_contrastive_pair_power_gives_the_geometric_mean_not_1() -> None:
    # In float32 L**p rounded to 1 for p <= 1e-8: the loss was exactly 1.0 and
    # the gradients a third of their size, for any data.
    x = views()
    geometric = small_model(contrastive_pair_power=0.0)
    want = geometric.losses(x, weights={"contrastive": 1.0})["contrastive"]
    geometric.backward(x, weights={"contrastive": 1.0})
    for p in (1e-8, 1e-12, 1e-30, 5e-324):
        model = small_model(contrastive_pair_power=p)
        got = model.losses(x, weights={"contrastive": 1.0})["contrastive"]
        assert got == pytest.approx(want, rel=1e-6), p
        model.backward(x, weights={"contrastive": 1.0})
        for name, grad in model.gradients().items():
            np.testing.assert_allclose(grad, geometric.gradients()[name], rtol=1e-4, atol=1e-7, err_msg=f"{p} {name}")
    # A power mean grows with its order (the tiny orders were below the geometric mean, then 1.0).
    curve = [small_model(contrastive_pair_power=p).losses(x, weights={"contrastive": 1.0})["contrastive"]
             for p in (0.0, 1e-7, 1e-5, 1e-3, 0.5, 1.0)]
    assert curve == sorted(curve), curve


def test_two_keys_for_one_modality_are_refused_not_one_dropped() -> None:
    model = small_model()
    x = views()["visual"]
    for inputs in ({"visual": x, 0: 2 * x}, {"visual": x, gm.Modality.VISUAL: x}, {"VISUAL": x, "visual": x}):
        with pytest.raises(gm.InvalidValueError, match="name the same modality") as err:
            model.encode(inputs)
        assert err.value.arg == "inputs"
    with pytest.raises(gm.InvalidValueError, match="same modality"):
        model.train_step({"visual": x, 0: x})


def test_a_scalar_is_reported_as_the_scalar_it_is() -> None:
    with pytest.raises(gm.ShapeError, match=r"got shape \(\)"):  # was "(1,)": ascontiguousarray makes it 1-D
        small_model().encode({"visual": np.float32(1.0)})


def test_ints_beyond_int64_are_checked_as_numbers_not_numpys_type_error() -> None:
    # np.isfinite(2**70) raised numpy's "ufunc 'isfinite' not supported" TypeError.
    model = small_model()
    for value in (-(2**70), 10**400):
        with pytest.raises(gm.InvalidValueError, match="lr: expected a finite positive number"):
            model.train_step(views(), lr=value)
        with pytest.raises(gm.InvalidValueError, match="temperature: expected a finite positive number"):
            small_model(temperature=value)
    assert small_model(learning_rate=2**70).config.learning_rate == 2.0**70  # finite in float32: as np.uint64 was


def test_numpy_floats_are_fractions_too() -> None:
    model = small_model()
    # np.float32(0.25) was refused as "expected a number in [0, 1), got np.float32(0.25)"
    model.fit(views(), epochs=1, modality_dropout=np.float32(0.25), progress=False)
    for bad, error in ((np.float32(1.0), gm.InvalidValueError), (np.float64("nan"), gm.InvalidValueError),
                       (True, TypeError), ("0.1", TypeError)):  # a wrong type: a TypeError, as the config's
        with pytest.raises(error, match=r"modality_dropout: expected a number in \[0, 1\)"):
            model.fit(views(), epochs=1, modality_dropout=bad, progress=False)


def test_fit_refuses_what_it_would_ignore() -> None:
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match="validation_mask: given without validation"):
        model.fit(views(), epochs=1, validation_mask=np.ones((12, 7), bool), progress=False)
    for monitor in (0, False, ""):  # each used to mean the default monitor
        with pytest.raises(gm.InvalidValueError, match="monitor"):
            model.fit(views(), epochs=1, monitor=monitor, progress=False)
    assert model.epochs_trained == 0


def test_an_array_binder_kind_is_our_error_not_an_ambiguous_truth_value() -> None:
    with pytest.raises(gm.InvalidValueError, match="binder_kind"):
        small_model(binder_kind=np.array(["additive", "bilinear"]))


@pytest.mark.parametrize("batch_size", [2**70, 2**40, np.uint64(2**64 - 1)])
def test_sampling_more_than_memory_holds_is_too_large_and_draws_nothing(batch_size) -> None:
    # Was OverflowError, "Maximum allowed dimension exceeded" or MemoryError
    # from numpy, and at 10**9 the OS killed the process.
    buffer = gm.ExperienceBuffer(8, embed_dim=E)
    buffer.extend(np.zeros((4, 7, E)), np.ones((4, 7), bool), np.zeros((4, E)), np.zeros((4, 7, 7)), np.zeros(4))
    state = buffer.state()[1]["rng_state"]
    for prioritized in (False, True):
        with pytest.raises(gm.TooLargeError, match="batch_size") as err:
            buffer.sample(batch_size, replace=True, prioritized=prioritized)
        assert err.value.arg == "batch_size"
    assert buffer.state()[1]["rng_state"] == state
    assert len(buffer.sample(3, replace=True)) == 3


def test_a_capacity_beyond_the_memory_budget_is_refused_before_allocating() -> None:
    # numpy's zeros are mapped lazily: a buffer just beyond memory was accepted
    # (touching only its event ids) and the OS killed the process as it filled.
    from grapheme_multimodal import _core

    capacity = _core.memory_budget() // (7 * E * 4) + 1  # its embeddings alone ([7, E] float32 each) are too many
    with pytest.raises(gm.TooLargeError, match=r"capacity: .* do not fit in this machine's memory") as err:
        gm.ExperienceBuffer(capacity, embed_dim=E)
    assert err.value.arg == "capacity"
    with pytest.raises(gm.TooLargeError, match=r"^buffer_size: .* do not fit") as err:  # the model's name for it
        gm.LearnableMultiModal(buffer_size=min(capacity, 2**32), embed_dim=E, hidden_dim=16, num_heads=2)
    assert err.value.arg == "buffer_size"


def test_masked_entries_are_refused_not_read_as_data() -> None:
    # numpy hands over the values under a mask: they were used as data unseen.
    x = views(12)["visual"]
    hidden = np.ma.masked_array(x, mask=np.zeros(x.shape, bool))
    hidden.mask[2, 3] = True
    model = small_model()
    before = model.state_dict()
    for call in (
        lambda: model.encode({"visual": hidden}),
        lambda: model.fit({"visual": hidden, "auditory": x}, epochs=1),
        lambda: metrics.cross_view_retrieval(hidden, x, np.arange(12) % 3),
    ):
        with pytest.raises(gm.InvalidValueError, match="a masked array with 1 masked entries"):
            call()
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    clear = np.ma.masked_array(x, mask=False)  # nothing masked: the numbers are all data
    assert np.array_equal(model.encode({"visual": clear})[0], model.encode({"visual": x})[0])
    with pytest.raises(TypeError, match="timedelta64"):  # a numpy integer by its type, but no number
        model.encode({"visual": x.astype("m8[s]")})


def test_the_estimator_reads_masked_rows_as_missing_views() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 6)), rng.normal(size=(40, 5))
    masked = np.ma.masked_array(a, mask=np.zeros(a.shape, bool))
    masked.mask[2, 3] = True
    with pytest.raises(gm.NonFiniteError, match=r"row 2 is masked in 1 of its 6 columns"):
        MultimodalEmbedder(epochs=1).fit([masked, b])
    masked.mask[2, :] = True  # a whole row masked: that view is missing there, as an all-NaN row says
    missing = a.copy()
    missing[2] = np.nan
    got = MultimodalEmbedder(epochs=2, random_state=0).fit_transform([masked, b])
    assert np.array_equal(got, MultimodalEmbedder(epochs=2, random_state=0).fit_transform([missing, b]))


def test_fit_names_validation_when_validation_is_wrong() -> None:
    # Both went through one converter that called everything "inputs": a bad
    # held-out array read as a mistake in the training data.
    model = small_model()
    data = views(12)
    good = views(6, seed=1)
    cases = [
        (dict(validation={**good, "visual": good["visual"][:, :5]}), r"^validation\['visual'\]: expected shape"),
        (dict(validation={**good, "visual": good["visual"][:4]}), r"^validation: arrays have different numbers of rows"),
        (dict(validation=good, validation_mask=np.ones((6, 3), bool)), r"^validation_mask: expected shape"),
        (dict(validation={"visual": good["visual"], 0: good["visual"]}), r"^validation: keys"),
    ]
    for kwargs, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            model.fit(data, epochs=1, **kwargs)
    with pytest.raises(ValueError, match=r"^data\['visual'\]: expected shape"):
        model.fit({**data, "visual": data["visual"][:, :5]}, epochs=1, validation=good)
    assert model.epochs_trained == 0


def test_fit_with_every_objective_weighted_0_is_refused_not_run() -> None:
    # It "trained" with loss 0: Adam steps on zero gradients, nothing learned.
    model = small_model()
    before = model.state_dict()
    for objectives in ({"contrastive": 0}, {"contrastive": 0.0, "binding": 0}):
        with pytest.raises(gm.InvalidValueError, match=r"^objectives: every weight is 0") as err:
            model.fit(views(12), epochs=1, objectives=objectives)
        assert err.value.arg == "objectives"
    assert model.epochs_trained == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    model.fit(views(12), epochs=1, objectives={"contrastive": 1, "binding": 0})  # one is enough


def test_train_step_and_backward_refuse_weights_that_are_all_0_as_fit_does() -> None:
    # weights={} (read as "the defaults") took an Adam step on zero gradients:
    # every weight moved by its momentum and nothing was learned, without a word.
    model = small_model()
    x = views(8)
    model.train_step(x)
    before, step = model.state_dict(), model.optimizer_state()["step"]
    model.zero_grad()
    for weights in ({}, {"contrastive": 0}, {"contrastive": 0.0, "binding": 0}):
        for call in (model.train_step, model.backward):
            with pytest.raises(gm.InvalidValueError, match=r"^weights: every weight is 0 .* \(None: the default mix\)$") as err:
                call(x, weights=weights)
            assert err.value.arg == "weights"
    assert model.optimizer_state()["step"] == step and not model.has_gradients()
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    assert model.losses(x, weights={})["total"] == 0.0  # a preview trains nothing: allowed
    model.train_step(x, weights={"contrastive": 1, "binding": 0})  # one is enough


@pytest.mark.parametrize("event_id", [1.5, float("nan"), "a", None, True, np.bool_(True), [1]])
def test_an_event_id_that_is_no_int_is_refused_where_it_is_set(event_id) -> None:
    # fuse_event, compute_bindings and fit took any id without a word; only
    # record_fusion refused it, after the user had built and fused the events.
    with pytest.raises(TypeError, match=r"^id: expected an int event id, got "):
        gm.MultiModalEvent(event_id)
    event = gm.MultiModalEvent(7, [gm.ModalFeatures(np.ones(18), "visual")])
    with pytest.raises(TypeError, match=r"^id: expected an int event id"):
        event.id = event_id
    assert event.id == 7, "a refused id leaves the event as it was"


@pytest.mark.parametrize("event_id", [2**63, -(2**63) - 1, 2**70, np.uint64(2**64 - 1)])
def test_an_event_id_beyond_int64_is_refused_where_it_is_set(event_id) -> None:
    with pytest.raises(gm.InvalidValueError, match=r"^id: got -?\d+; expected an event id that fits in int64") as err:
        gm.MultiModalEvent(event_id)
    assert err.value.arg == "id"


def test_an_event_id_in_int64_is_kept_as_a_python_int_and_recorded() -> None:
    model = small_model()
    for event_id in (-(2**63), 2**63 - 1, np.int8(-3), np.uint64(5)):
        event = gm.MultiModalEvent(event_id, [gm.ModalFeatures(np.ones(18), "visual")])
        assert type(event.id) is int and event.id == int(event_id)
        assert model.record_fusion(event).event_id == int(event_id)


def test_record_fusion_names_a_bad_event_id_set_around_the_check_and_records_nothing() -> None:
    # An event unpickled from before ids were checked skips __setattr__.
    model = small_model()
    for event_id, error, words in [(1.5, TypeError, "event.id: expected an int"), (2**70, gm.InvalidValueError, r"event\.id: got 1180591620717411303424")]:
        event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(18), "visual")])
        object.__setattr__(event, "id", event_id)
        with pytest.raises(error, match=words):  # 1.5 was recorded as 1
            model.record_fusion(event)
    with pytest.raises(TypeError, match="reward: expected a real number"):  # was float()'s "could not convert"
        model.record_fusion(gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(18), "visual")]), reward="x")
    assert model.num_experiences() == 0


@pytest.mark.parametrize("scale", [1e200, 1e300, 1e-300, 1e-320])
def test_retrieval_and_knn_of_huge_or_tiny_finite_values_find_the_true_neighbours(scale) -> None:
    # Squared, such values overflowed float64 (or underflowed): every distance
    # tied and the scores came out near chance, 0.4 instead of 1.0.
    rng = np.random.default_rng(0)
    q = rng.normal(size=(10, 4))
    g = q + 0.01 * rng.normal(size=(10, 4))
    y = np.arange(10) % 3
    for metric in ("cosine", "euclidean"):
        assert metrics.cross_view_retrieval(q * scale, g * scale, y, metric) == metrics.cross_view_retrieval(q, g, y, metric)
    pytest.importorskip("sklearn")
    assert metrics.knn_accuracy(q * scale, y, g * scale, y, k=1) == metrics.knn_accuracy(q, y, g, y, k=1) == 1.0


def test_nan_labels_are_refused_by_name_not_scored_as_misses() -> None:
    # NaN equals no label: retrieval scored those rows 0 without a word.
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    y = np.array([0.0, 1.0, 0.0, np.nan, 1.0, 0.0])
    with pytest.raises(gm.NonFiniteError, match=r"labels holds nan at row 3") as err:
        metrics.cross_view_retrieval(q, g, y)
    assert err.value.arg == "labels"
    with pytest.raises(gm.NonFiniteError, match="test_y"):
        metrics.knn_accuracy(q, np.zeros(6), g, y)
    assert metrics.cross_view_retrieval(q, g, np.array(list("abcabc")))["class_precision_at_1"] >= 0  # labels of any kind


def test_a_failed_refit_leaves_the_fitted_estimator_as_it_was() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 3))
    xs = [z @ rng.normal(size=(3, 6)), z @ rng.normal(size=(3, 5))]
    est = MultimodalEmbedder(embed_dim=E, hidden_dim=16, num_heads=2, epochs=2, encoder_hidden=(16,),
                             shared_head=(16, E)).fit(xs)
    fitted = {k: v for k, v in vars(est).items() if k.endswith("_")}
    before = est.transform(xs)
    # Each is found only after fit has set model_ to a new, untrained model.
    for bad in ({"patience": -1}, {"batch_size": 0}, {"learning_rate": -1.0}):
        est.set_params(**bad)
        with pytest.raises(gm.InvalidValueError):
            est.fit([xs[0][:, :4], xs[1]])
        est.set_params(**{k: MultimodalEmbedder().get_params()[k] if k != "batch_size" else 512 for k in bad})
        assert all(getattr(est, k) is v for k, v in fitted.items())
        np.testing.assert_array_equal(est.transform(xs), before)


def test_values_too_large_for_float32_are_named_as_such_not_as_nan_or_inf() -> None:
    # float64 1e39 became inf in the cast to float32 (with numpy's RuntimeWarning)
    # and was then reported as "NaN or inf", a value the user never gave.
    x = views()
    x["visual"][2, 5] = -1e39
    model = small_model()
    too_large = r"row 2 holds -1e\+39, too large for float32 \(largest 3.4e\+38\)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "overflow encountered in cast" either
        with pytest.raises(gm.NonFiniteError, match=r"inputs\['visual'\]: " + too_large):
            model.encode(x)
        with pytest.raises(gm.NonFiniteError, match=r"data\['visual'\]: " + too_large):
            model.fit(x, epochs=1)
        with pytest.raises(gm.NonFiniteError, match=r"embeddings: index \(0, 1, 3\) holds 1e\+39, too large"):
            model.fuse(np.where(np.arange(7 * E).reshape(1, 7, E) == 11, 1e39, 0.5))
        # What a mask marks absent may hold anything, as before: it is not read.
        mask = np.zeros((12, 7), bool)
        mask[:, :3] = True  # visual, auditory, linguistic
        mask[2, 0] = False
        zeroed = {**x, "visual": np.where(np.arange(12)[:, None] == 2, 0.0, x["visual"])}
        np.testing.assert_array_equal(model.encode(x, mask), model.encode(zeroed, mask))
        slots = np.ones((1, 7), bool)
        slots[0, 1] = False
        huge_in_absent_slot = np.where(np.arange(7 * E).reshape(1, 7, E) == 11, 1e39, 0.5)
        np.testing.assert_array_equal(model.fuse(huge_in_absent_slot, slots), model.fuse(np.full((1, 7, E), 0.5), slots))


# --- the scikit-learn surface: MultimodalEmbedder, metrics, evaluation, datasets


def _embedder(**kw):
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    return MultimodalEmbedder(embed_dim=E, hidden_dim=8, num_heads=2, epochs=1, batch_size=32, **kw)


def _two_views(n: int = 30) -> list:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, 5)), rng.normal(size=(n, 3))]


def test_the_estimator_names_xs_when_it_is_no_list_of_views() -> None:
    xs = _two_views()
    est = _embedder()
    # were numpy's "float() argument must be ... not 'dict'" and sklearn's "Expected 2D array, got 1D array: array=[]"
    for bad, match in (({"a": xs[0], "b": xs[1]}, r"Xs: expected a list .* got dict; pass list\(Xs.values\(\)\)"),
                       ((x for x in xs), "Xs: expected a list .* got generator"), ("abc", "Xs: expected a list .* got str")):
        with pytest.raises(TypeError, match=match):
            est.fit(bad)
    with pytest.raises(gm.InvalidValueError, match="Xs: expected at least one view") as err:
        est.fit([])
    assert err.value.arg == "Xs"
    # several views: the failing one is named (sklearn's messages named none)
    with pytest.raises(ValueError, match=r"Xs\[1\]: Expected 2D array"):
        est.fit([xs[0], xs[1][:, 0]])
    with pytest.raises(ValueError, match=r"Xs\[1\]: could not convert string"):
        est.fit([xs[0], np.full((30, 2), "a")])
    with pytest.raises(gm.InvalidValueError, match="Xs: could not be read as one 2-D array"):  # numpy's "inhomogeneous shape"
        est.fit([xs[0].tolist(), xs[1].tolist()])
    assert est.fit([xs[0], xs[1].tolist()]).n_views_ == 2  # a list beside an array is a view, not a row
    with pytest.raises(TypeError, match="modalities: expected None or a sequence .* got str"):  # was "unknown modality 'v'"
        _embedder(modalities="visual").fit(xs)
    with pytest.raises(TypeError, match="modalities: .* got int"):  # was "'int' object is not iterable"
        _embedder(modalities=5).fit(xs)
    with pytest.raises(TypeError, match="objectives: expected None or a mapping"):  # the same
        _embedder(objectives=5).fit(xs)
    with pytest.raises(TypeError, match="standardize: expected a bool, got str"):  # "no" was true, and standardised
        _embedder(standardize="no").fit(xs)


def test_finite_values_beyond_float32_are_named_as_such_not_as_nan() -> None:
    xs = _two_views()
    # was "inputs['visual']: row 0 holds NaN or inf" for finite input under another name
    with pytest.raises(gm.NonFiniteError, match=r"Xs\[0\]: row 0 holds .*too large for float32") as err:
        _embedder().fit([xs[0] * 1e300, xs[1]])
    assert err.value.arg == "Xs[0]"
    est = _embedder().fit(xs)
    with pytest.raises(gm.NonFiniteError, match=r"Xs\[1\]: row 0 holds .*too large for float32"):
        est.transform([xs[0], xs[1] * 1e300])


def test_a_refit_on_several_views_drops_what_one_view_set() -> None:
    pd = pytest.importorskip("pandas")
    xs = _two_views()
    est = _embedder().fit(pd.DataFrame(xs[0], columns=list("abcde")))
    assert est.n_features_in_ == 5
    est.fit(xs)
    # n_features_in_ and feature_names_in_ of the first fit stayed: the names of the new columns were refused
    assert not hasattr(est, "n_features_in_") and not hasattr(est, "feature_names_in_")
    assert len(est.get_feature_names_out(list("abcdexyz"))) == E


def test_retrieval_labels_equal_to_nothing_are_refused_and_odd_arguments_named() -> None:
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    # object NaN and NaT scored 0 for their rows without a word (float NaN was refused already)
    for labels, shown in ((np.array([0, 1, 0, np.nan, 1, 0], dtype=object), "nan"),
                          (np.array(["NaT", "2020-01-01"] * 3, dtype="datetime64[D]"), "NaT")):
        with pytest.raises(gm.NonFiniteError, match=f"labels holds {shown} at row"):
            metrics.cross_view_retrieval(q, g, labels)
    with pytest.raises(gm.InvalidValueError, match=r"^metric: expected one of"):  # was "truth value of an array is ambiguous"
        metrics.cross_view_retrieval(q, g, np.zeros(6), metric=np.array(["cosine", "euclidean"]))
    with pytest.raises(TypeError, match=r"^chunk_size: expected a positive int, got True \(bool\)$"):
        metrics.cross_view_retrieval(q, g, np.zeros(6), chunk_size=True)
    with pytest.raises(gm.InvalidValueError, match="chunk_size"):
        metrics.cross_view_retrieval(q, g, np.zeros(6), chunk_size=0)


def test_cosine_retrieval_of_views_on_far_apart_scales_is_their_retrieval() -> None:
    # One scale for both views made the smaller one's rows zeros: "gallery has 6 all-zero rows".
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 3))
    y = np.arange(6) % 2
    want = metrics.cross_view_retrieval(q, q, y)
    assert metrics.cross_view_retrieval(q * 1e300, q * 1e-300, y) == want
    assert metrics.cross_view_retrieval(np.r_[q[:3] * 1e300, q[3:] * 1e-300], q, y) == want


def test_classifier_read_outs_take_numpy_numbers_and_name_bad_labels() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(20, 4)), rng.normal(size=(10, 4))
    y, ty = np.arange(20) % 2, np.arange(10) % 2
    want = metrics.linear_probe_accuracy(x, y, t, ty)
    for c in (np.float32(1.0), np.int64(1)):  # refused: "C must be a positive number, got np.float32(1.0)"
        assert metrics.linear_probe_accuracy(x, y, t, ty, C=c) == want
    with pytest.raises(gm.InvalidValueError, match="C: expected a positive number"):  # was numpy's isfinite TypeError
        metrics.linear_probe_accuracy(x, y, t, ty, C=2**2000)
    with pytest.raises(gm.InvalidValueError, match=r"train_y: expected at least 2 classes, got only \[0\]"):
        metrics.linear_probe_accuracy(x, np.zeros(20, int), t, ty)
    odd = np.array([None, 1] * 10, dtype=object)  # sklearn: "Unknown label type: unknown"; None is named by its row
    for fn in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        with pytest.raises(gm.InvalidValueError, match=r"^train_y holds None at row 0; expected a class label") as err:
            fn(x, odd, t, ty)
        assert err.value.arg == "train_y"
        with pytest.raises(gm.InvalidValueError, match="test_y: expected class labels .* continuous"):
            fn(x, y, t, rng.normal(size=10))


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_linear_probe_of_huge_or_tiny_values_is_the_probe_of_the_values(scale) -> None:
    # Squared, 1e300 overflowed (sklearn: "Input X contains NaN"); 1e-300 underflowed:
    # every column a constant, the probe at chance without a word.
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    want = metrics.linear_probe_accuracy(x[:40], y[:40], x[40:], y[40:])
    assert want > 0.8
    big = x * np.array([scale, 1.0, 1.0])  # one column out of range, the others not
    assert metrics.linear_probe_accuracy(big[:40], y[:40], big[40:], y[40:]) == want


def test_roc_auc_refuses_masked_scores_instead_of_reading_them() -> None:
    masked = np.ma.array([1.0, 5.0], mask=[False, True])
    with pytest.raises(gm.InvalidValueError, match="positive_scores: a masked array"):  # was 0.5: the 5.0 counted
        metrics.roc_auc(masked, np.array([2.0]))


def test_unit_side_by_side_gives_unit_rows_or_names_the_problem() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    # float16 norms: rows of 1e-3 came out 0.994 long (of tinier ones 1e31); 1e300 rows (and 1e20 in float32) zeros
    for value in (x.astype(np.float16), (x * 1e-3).astype(np.float16), x * 1e300, (x * 1e20).astype(np.float32)):
        np.testing.assert_allclose(metrics.unit_side_by_side({"a": value}, ["a"]), unit, atol=2e-3)
    assert metrics.unit_side_by_side({"a": np.zeros((2, 3))}, ["a"]).tolist() == [[0.0] * 3] * 2
    # were KeyError 'b', numpy's concatenate messages, an AxisError and NaN rows
    for views, names, error, match in (
        ({"a": x}, ["a", "b"], gm.InvalidValueError, r"names: \['b'\] not in views"),
        ({"a": x, "b": x[:3]}, ["a", "b"], gm.ShapeError, "views: expected the same rows"),
        ({"a": x}, [], gm.InvalidValueError, "names: expected at least one"),
        ({"a": x[:, 0]}, ["a"], gm.ShapeError, r"^views\['a'\]: expected a non-empty 2-D array"),
        ({"a": x * np.nan}, ["a"], gm.NonFiniteError, r"views\['a'\]: row 0 holds NaN"),
    ):
        with pytest.raises(error, match=match):
            metrics.unit_side_by_side(views, names)


def test_standardize_refuses_non_finite_views_and_keeps_huge_columns_apart() -> None:
    from grapheme_multimodal.datasets import standardize

    x = np.array([[1e300, 1.0], [-1e300, 2.0]])
    np.testing.assert_array_equal(standardize({"a": x})[0]["a"], [[1, -1], [-1, 1]])  # was [[0, -1], [-0, 1]]
    np.testing.assert_array_equal(standardize({"a": x * 1e-300})[0]["a"], [[1, -1], [-1, 1]])
    with pytest.raises(gm.NonFiniteError, match=r"train_views\['a'\]: row 0 holds NaN"):  # was NaN z-scores
        standardize({"a": np.array([[np.nan, 1.0], [1.0, 2.0]])})
    with pytest.raises(TypeError, match=r"others\[0\]\['a'\]: expected real numbers, got complex"):  # dropped the imaginary part
        standardize({"a": x}, {"a": x + 1j})
    with pytest.raises(TypeError, match="train_views: expected a mapping"):  # was "'list' object has no attribute 'items'"
        standardize([x])
    with pytest.raises(gm.NonFiniteError, match="z-scores beyond float32"):  # was inf in the float32 output
        standardize({"a": np.array([[0.0], [1.0]])}, {"a": np.array([[1e300]])})


def test_split_takes_numpy_numbers_and_names_its_seed() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal.datasets import train_test_indices

    labels = np.arange(20) % 2
    want = train_test_indices(labels, test_size=0.5)
    got = train_test_indices(labels, test_size=np.float64(0.5), seed=np.int64(0))  # the first was refused
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    for seed, error in ((-1, gm.InvalidValueError), (True, TypeError), (2**40, gm.InvalidValueError)):
        # was sklearn's error about 'random_state'; True split as seed 1
        with pytest.raises(error, match="seed: expected an int"):
            train_test_indices(labels, seed=seed)


def test_evaluation_helpers_name_what_is_wrong() -> None:
    from grapheme_multimodal import evaluation

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4))
    want = evaluation.ExactCCA(2).fit(x, x[:, ::-1]).correlations_
    np.testing.assert_array_equal(evaluation.ExactCCA(2, reg=np.float64(1e-6)).fit(x, x[:, ::-1]).correlations_, want)
    bind = lambda a, b: (a * b).sum(axis=1)  # noqa: E731
    # were "low >= high", "need at least one array to concatenate", IndexError and a broadcast error
    for views in ({"a": x[:1], "b": x[:1]}, {"a": x}, {}, {"a": x, "b": x[:5]}):
        with pytest.raises(gm.ShapeError, match="view_embeddings: expected at least 2 views"):
            evaluation.binder_auc(bind, views)
    with pytest.raises(gm.InvalidValueError, match="test_std: has views"):  # was KeyError 'b'
        evaluation.pairwise_cca_retrieval({"a": x, "b": x}, {"a": x}, np.zeros(20))
    with pytest.raises(TypeError, match="data: expected None or a Nutrimouse"):  # was KeyError 'gene'
        evaluation.nutrimouse_cv(None, {"views": {}}, n_repeats=1)


@pytest.mark.parametrize(
    "returned, error, words",
    [
        ("0.5", TypeError, "metrics['m']: returned str; expected a real number"),  # was "could not convert string"
        (None, TypeError, "metrics['m']: returned NoneType"),
        (np.array([0.5, 0.6]), TypeError, "metrics['m']: returned array of shape (2,)"),
        (10**400, gm.InvalidValueError, "metrics['m']: returned an int too large for a float"),
        (True, TypeError, "metrics['m']: returned bool"),
    ],
)
def test_a_metric_returning_no_number_is_named(returned, error, words) -> None:
    model = small_model()
    with pytest.raises(error) as err:
        model.fit(views(), epochs=2, metrics={"m": lambda m: returned}, progress=False)
    assert words in str(err.value)
    assert model.epochs_trained == 0  # the failed fit left the model as it was


def test_a_monitored_metric_that_is_nan_is_refused_not_a_silent_first_epoch() -> None:
    # NaN compares false with everything: early stopping kept the first epoch and stopped, without a word.
    model = small_model()
    with pytest.raises(gm.NonFiniteError, match=r"monitor: 'val_m' is NaN at epoch 1"):
        model.fit(views(), epochs=5, metrics={"m": lambda m: float("nan")}, monitor="val_m", early_stopping=1, progress=False)
    assert model.epochs_trained == 0
    # recorded, not monitored, a NaN is the user's value and kept as given
    history = model.fit(views(), epochs=1, metrics={"m": lambda m: np.float32("nan")}, progress=False)
    assert np.isnan(history.epochs[-1]["val_m"])


@pytest.mark.parametrize("name", ["total", "contrastive", "fused_contrastive"])
def test_a_metric_named_as_a_validation_loss_is_refused_not_recorded_over_it(name) -> None:
    # Recorded as val_<name>, it overwrote that validation loss: val_total was
    # the metric's 123.0, and early stopping (watching val_total) kept its epoch.
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match=rf"^metrics\['{name}'\]: the name of a validation loss \(recorded as 'val_{name}'\)") as err:
        model.fit(views(), validation=views(6, seed=1), epochs=2, metrics={name: lambda m: 123.0}, progress=False)
    assert err.value.arg == "metrics" and model.epochs_trained == 0
    history = model.fit(views(), validation=views(6, seed=1), epochs=1, metrics={"loss": lambda m: 123.0}, progress=False)
    assert history.epochs[-1]["val_loss"] == 123.0 and history.epochs[-1]["val_total"] != 123.0


# ------------------------------------------------------------ events and their parts
def graph_event(event_id=1) -> gm.MultiModalEvent:
    return gm.MultiModalEvent(event_id, [gm.ModalGraph(gm.Graph.from_text("a cat"), "linguistic")])


def test_junk_put_straight_into_an_events_components_is_named_not_an_attribute_error() -> None:
    # `components` is a public list: what was appended without add_component
    # reached `c.modality` and raised AttributeError: 'str' object has no attribute 'modality'.
    model = small_model()
    event = graph_event()
    event.components.append("junk")
    for call in (model.fuse_event, model.encode_event, model.compute_bindings, model.record_fusion):
        with pytest.raises(TypeError, match=r"event\.components\[1\]: expected ModalGraph or ModalFeatures, got str"):
            call(event)
    with pytest.raises(TypeError, match=r"events\[1\]\.components\[1\]"):
        model.losses(gm.Batch(events=[graph_event(), event]))
    event.components = None
    with pytest.raises(TypeError, match=r"event\.components: expected a list"):
        model.fuse_event(event)
    assert model.num_experiences() == 0
    # At construction: one component is not a list of them ("'ModalGraph' object is not iterable"),
    # and bindings were kept unchecked.
    with pytest.raises(TypeError, match="components: expected a list of ModalGraph or ModalFeatures, got ModalGraph"):
        gm.MultiModalEvent(1, components=gm.ModalGraph(gm.Graph.from_text("x"), "visual"))
    with pytest.raises(TypeError, match="binding: expected CrossModalBinding, got str"):
        gm.MultiModalEvent(1, bindings=["x"])


def test_a_modal_features_of_the_wrong_width_is_a_shape_error_per_event_as_in_a_batch() -> None:
    model = small_model()
    event = gm.MultiModalEvent(4, [gm.ModalFeatures(np.ones(5), "visual")])
    with pytest.raises(gm.ShapeError, match=r"event 4: modality visual takes 18-long") as err:  # was a plain ValueError
        model.fuse_event(event)
    assert err.value.arg == "event"
    with pytest.raises(gm.ShapeError, match=r"event 4: modality visual takes 18-long"):
        model.losses(gm.Batch(events=[event]))


def test_binding_endpoints_are_checked_not_truncated() -> None:
    v, a = gm.Modality.VISUAL, gm.Modality.AUDITORY
    with pytest.raises(TypeError, match="source: expected an int node index, got 1.7"):  # was node 1, silently
        gm.CrossModalBinding((v, 1.7), (a, 0), 0.5)
    with pytest.raises(TypeError, match="target: expected an int node index"):  # was int()'s "invalid literal"
        gm.CrossModalBinding((v, 0), (a, "a"), 0.5)
    with pytest.raises(gm.InvalidValueError, match="source: expected a node index >= 0, got -1"):
        gm.CrossModalBinding((v, -1), (a, 0), 0.5)
    with pytest.raises(TypeError, match=r"source: expected a pair \(modality, node_index\)"):  # "cannot unpack"
        gm.CrossModalBinding(5, (a, 0), 0.5)
    with pytest.raises(gm.InvalidValueError, match="binding_type: expected a BindingType") as err:
        gm.CrossModalBinding((v, 0), (a, 0), 0.5, "friend")
    assert err.value.arg == "binding_type"
    b = gm.CrossModalBinding(("visual", np.int64(3)), [a, 2], 0.5, "identity")
    assert b.source == (v, 3) and b.target == (a, 2) and b.binding_type is gm.BindingType.IDENTITY


def test_spatial_region_of_an_int_past_float64_clamps_like_inf() -> None:
    assert gm.SpatialRegion(10**400, -(10**400)) == gm.SpatialRegion(float("inf"), float("-inf"))  # was OverflowError
    with pytest.raises(TypeError, match="other: expected SpatialRegion, got int"):  # was AttributeError
        gm.SpatialRegion().overlaps(3)


def test_record_fusion_names_a_reward_or_id_it_cannot_record_and_records_nothing() -> None:
    model = small_model()
    for reward, words in [(2**2000, "an int of 2001 bits"), (float("nan"), "NaN"), (1e300, r"1e\+300"), (float("-inf"), "-inf")]:
        with pytest.raises(gm.NonFiniteError, match=f"^reward: .*{words}") as err:  # 2**2000: OverflowError; NaN: "rewards: row 0"
            model.record_fusion(graph_event(), reward=reward)
        assert err.value.arg == "reward"
    assert model.num_experiences() == 0
    assert model.record_fusion(graph_event(-(2**63)), reward=np.float32(0.5)).event_id == -(2**63)


def test_the_components_form_of_a_batch_is_checked_by_name() -> None:
    model = small_model()
    x = np.random.default_rng(0).normal(size=(3, 18))
    parts = [(x.astype(np.float32), np.array([0, 1, 1]), np.ones(3, np.float32))] + [None] * 6
    want = model.losses(gm.Batch(components=(2, parts)))
    # float64 inputs and lists are converted, as everywhere else (was "failed to extract field PyBatch.components")
    as_given = [(x, [0, 1, 1], [1.0, 1.0, 1.0])] + [None] * 6
    assert model.losses(gm.Batch(components=(2, as_given))) == want
    for components, exc, words in [
        (("2", parts), TypeError, "components: expected the batch size first, an int, got str"),
        ((-1, parts), gm.InvalidValueError, "components: expected a batch size >= 0"),
        ((2, ["junk"] + [None] * 6), TypeError, r"components\['visual'\]: expected None or \(x"),
        ((2, [(x, np.array([0.0, 1.0, 1.0]), None)] + [None] * 6), TypeError, r"components\['visual'\]\.rows: expected integer"),
        ((2, [(x, np.array([0, -1, 1]), None)] + [None] * 6), gm.InvalidValueError, "row index -1 is negative"),
    ]:
        with pytest.raises(exc, match=words):
            model.losses(gm.Batch(components=components))
    with pytest.raises(gm.ShapeError, match="components: expected"):  # was "object of type 'int' has no len()"
        gm.Batch(components=(2, 5))


def test_featurize_refuses_a_mapping_or_set_of_texts() -> None:
    # A dict {doc_id: text} gave the ids' features, a set its texts in no fixed order, without a word.
    for items, words in (({"doc-1": "cat", "doc-2": "dog"}, r"got dict; pass list\(items.values\(\)\)"),
                         ({"cat", "dog"}, "got set"), (frozenset(["cat"]), "got frozenset")):
        with pytest.raises(TypeError, match="items: expected a sequence of str or Graph .*" + words):
            gm.featurize(items)
        with pytest.raises(TypeError, match="items: expected a sequence"):
            gm.GraphFeaturizer("wl", dim=16)(items)
    np.testing.assert_array_equal(gm.featurize(x for x in ["cat", "dog"]), gm.featurize(["cat", "dog"]))


def test_loaders_and_the_nutrimouse_protocol_name_odd_arguments() -> None:
    from grapheme_multimodal.datasets import load_multiple_features, load_nutrimouse

    with pytest.raises(TypeError, match="directory: expected None or a path"):  # was pathlib's TypeError
        load_multiple_features(5)
    for loader in (load_multiple_features, load_nutrimouse):
        with pytest.raises(TypeError, match="return_Xs_y: expected a bool, got str"):  # "no" counted as true
            loader(return_Xs_y="no")
    pytest.importorskip("sklearn")
    from grapheme_multimodal.evaluation import nutrimouse_cv

    with pytest.raises(gm.InvalidValueError, match="seeds: expected at least one training seed"):  # "ours" came back empty
        nutrimouse_cv(lambda views, seed: None, seeds=())


@pytest.mark.parametrize("scale", [1e-30, 1e-12])
def test_standardize_keeps_columns_of_tiny_but_varying_values(scale) -> None:
    # Their std fell below the old floor of 1.19e-6 and was taken as 1 ("a constant
    # column"): the model saw inputs of ~1e-30, zero to it, and learnt nothing from them.
    x = views()
    tiny = {m: v * scale for m, v in x.items()}
    plain, model = small_model(), small_model()
    plain.fit(x, epochs=2, batch_size=4, progress=False)
    model.fit(tiny, epochs=2, batch_size=4, progress=False)
    np.testing.assert_allclose(model.normalization("visual")[1], x["visual"].std(axis=0) * scale, rtol=1e-6)
    assert [h["loss"] for h in model.history] == pytest.approx([h["loss"] for h in plain.history], rel=1e-4)
    np.testing.assert_allclose(model.encode(tiny), plain.encode(x), atol=1e-5)
    constant = small_model()
    constant.fit_normalization({"visual": np.full((4, 18), 3e-30)})
    assert (constant.normalization("visual")[1] == 1).all()  # a constant column still gets std 1
    with pytest.raises(gm.NonFiniteError, match=r"inputs\['visual'\]: row 0 overflows float32 in the encoder"):
        model.encode({"visual": x["visual"] * 1e30})  # z-scores beyond float32: refused where they overflow
    with pytest.raises(gm.InvalidValueError, match=r"normalization\['visual'\]\.std"):
        model.set_normalization("visual", np.zeros(18), np.full(18, 1e-44))  # a subnormal std is still refused


def test_set_normalization_names_the_half_that_is_missing() -> None:
    # std=None beside a mean was "std: expected a real-valued numeric array, got array of shape () and dtype object"
    model = small_model()
    model.set_normalization("visual", np.zeros(18), np.ones(18))
    for kwargs, missing in (({"mean": np.zeros(18)}, "std"), ({"std": np.ones(18)}, "mean")):
        with pytest.raises(gm.InvalidValueError, match=rf"^{missing}: got None beside a .*; expected both \(arrays of 18\), or both None") as err:
            model.set_normalization("visual", **kwargs)
        assert err.value.arg == missing
    assert model.normalization("visual") is not None, "a refused call leaves the standardisation as it was"
    model.set_normalization("visual")
    assert model.normalization("visual") is None


def test_a_loss_that_overflows_after_a_huge_step_names_the_parameters_not_the_inputs() -> None:
    # Was "inputs: ... expected inputs of moderate size" for inputs drawn from N(0, 1):
    # the embeddings are unit vectors, the first step of lr=1e30 made the weights overflow.
    model = small_model()
    before = model.state_dict()
    with pytest.raises(gm.NonFiniteError, match="parameters overflow float32 .* learning rate") as err:
        model.fit(views(), lr=1e30, epochs=2, batch_size=4, progress=False)
    assert err.value.arg == "parameters"
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items()) and model.epochs_trained == 0


def test_training_data_with_no_modality_present_anywhere_is_refused() -> None:
    # It "trained": every loss 0 and every step moved the weights by Adam's momentum alone.
    model = small_model()
    before = model.state_dict()
    n = len(views()["visual"])
    with pytest.raises(gm.InvalidValueError, match="mask: no row has a modality present") as err:
        model.fit(views(), mask=np.zeros((n, 7), bool), epochs=2, batch_size=4, progress=False)
    assert err.value.arg == "mask"
    with pytest.raises(gm.InvalidValueError, match="mask: no row has a modality present"):
        fit_with_stopping(model, views(), mask=np.zeros((n, 7), bool), validation_fraction=0.1, patience=5,
                          monitor="val_contrastive", seed=0, epochs=2, batch_size=4, progress=False)
    assert all(np.array_equal(v, before[k]) for k, v in model.state_dict().items()) and model.epochs_trained == 0
    some = np.zeros((n, 7), bool)
    some[:, 0] = True  # one modality in every row: trains (fused_contrastive)
    assert model.fit(views(), mask=some, epochs=1, batch_size=4, progress=False).epochs[-1]["loss"] > 0


def test_the_estimator_refuses_views_that_are_all_missing() -> None:
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    with pytest.raises(gm.InvalidValueError, match="every row of every view is NaN") as err:
        MultimodalEmbedder(epochs=1).fit([np.full((40, 3), np.nan), np.full((40, 4), np.nan)])
    assert err.value.arg == "Xs"
    est = MultimodalEmbedder(epochs=1, random_state=0).fit([rng.normal(size=(40, 3)), rng.normal(size=(40, 4))])
    query = [rng.normal(size=(3, 3)), rng.normal(size=(3, 4))]
    query[0][1] = query[1][1] = np.nan  # row 1: every view missing, an embedding of nothing
    with pytest.raises(gm.InvalidValueError, match=r"Xs: row 1 is NaN in every view") as err:
        est.transform(query)
    query[1][1] = 0.5  # one view present: embedded
    assert np.isfinite(est.transform(query)).all()


def test_the_estimator_refuses_a_view_missing_in_every_row() -> None:
    # was fitted: the view's encoder never trained (nor its standardisation), and transform
    # then fused that untrained encoder's output into every row where the view was present
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    views = [rng.normal(size=(40, 3)), np.full((40, 4), np.nan), rng.normal(size=(40, 2))]
    est = MultimodalEmbedder(epochs=1, random_state=0).fit([views[0], rng.normal(size=(40, 4)), views[2]])
    fitted = est.model_
    with pytest.raises(gm.InvalidValueError, match=r"^Xs\[1\]: every row is NaN \(the view is missing in every sample\)") as err:
        est.fit(views)
    assert err.value.arg == "Xs[1]" and est.model_ is fitted  # the fitted estimator is kept
    views[1][7] = 0.5  # one present row: fitted
    assert np.isfinite(MultimodalEmbedder(epochs=1).fit(views).transform(views)).all()


@pytest.mark.parametrize(
    "field, batch",
    [
        # rewards below 1: every reward 1 leaves seed_consistency nothing to learn from, refused before the loss
        ("fused", lambda emb: gm.Batch(embeddings=emb, fused=np.full((8, 16), 1e19), rewards=np.full(8, 0.5))),
        ("rewards", lambda emb: gm.Batch(embeddings=emb, fused=np.ones((8, 16)), rewards=np.full(8, 3e38))),
        # (embeddings * 1e19 are refused before any loss as not of norm 1: test_leftovers_s60)
    ],
)
def test_a_loss_that_overflows_on_a_recorded_batch_names_the_field_at_fault(field, batch) -> None:
    # All three were "inputs: ... expected inputs of moderate size": a batch of recorded
    # embeddings has no inputs, and the fault was the fused targets, the rewards or the embeddings.
    model = gm.LearnableMultiModal(embed_dim=16, hidden_dim=32, seed=0)
    emb = np.random.default_rng(0).normal(size=(8, 7, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=2, keepdims=True)
    # contrastive alone trains nothing on recorded embeddings (refused first): binding beside it does
    weights = {"seed_consistency": 1.0} if field != "embeddings" else {"contrastive": 1.0, "binding": 1.0}
    with pytest.raises(gm.NonFiniteError, match=rf"^{field}: the \w+ loss of this batch is not finite: it overflows float32 on the batch's {field}") as err:
        model.train_step(batch(emb), weights=weights)
    assert err.value.arg == field


def test_pandas_nullable_numeric_columns_are_numbers_and_their_missing_values_are_named() -> None:
    # Float64 / Int64 / boolean columns read as an object array: "expected a real-valued
    # numeric array, got ... dtype object" for a frame of plain numbers.
    pd = pytest.importorskip("pandas")
    model = small_model()
    x = views()["visual"]
    frame = pd.DataFrame(x)
    np.testing.assert_array_equal(model.encode({"visual": frame.astype("Float64")}), model.encode({"visual": x}))
    counts = (frame * 10).round()
    np.testing.assert_array_equal(model.encode({"visual": counts.astype("Int64")}), model.encode({"visual": counts.to_numpy()}))
    with_na = frame.astype("Float64")
    with_na.iloc[3, 2] = pd.NA
    with pytest.raises(gm.NonFiniteError, match=r"inputs\['visual'\]: .*row 3"):
        model.encode({"visual": with_na})
    with pytest.raises(TypeError, match="dtype object"):  # text stays refused, as in a numpy array
        model.encode({"visual": frame.astype("string")})


def test_a_thread_count_past_int64_is_clamped_like_any_other() -> None:
    """set_num_threads(2**63) raised numpy-less OverflowError "Python int too
    large to convert to C long" (the core takes an int64); every other count
    above the limit is clamped with a RuntimeWarning, and so is this one."""
    from grapheme_multimodal import _core

    before = gm.get_num_threads()
    try:
        for n in (2**63, 2**200):
            with pytest.warns(RuntimeWarning, match=f"{n} threads requested"):
                gm.set_num_threads(n)
            assert gm.get_num_threads() == _core.max_threads()
        with pytest.raises(gm.InvalidValueError, match="n: expected a positive number of threads, got -(2\\*\\*63|9223372036854775808)"):
            gm.set_num_threads(-(2**63))
    finally:
        gm.set_num_threads(before)


def test_fit_normalization_names_the_input_row_that_holds_nan_or_inf() -> None:
    """fit_normalization took the mean of NaN/inf rows, numpy warned "invalid
    value encountered in subtract", and the error named
    normalization['visual'].mean, an argument the caller never gave; now it
    names the input and its row, as encode does, and nothing is learned."""
    model = small_model()
    mask = np.zeros((6, 7), bool)
    mask[:, 0] = True
    mask[1, 0] = False  # an absent row may hold anything
    x = np.ones((6, 18))
    x[1] = np.nan
    x[4, 7] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: contains a non-finite value \(NaN or inf\) at row 4 ") as err:
            model.fit_normalization({"visual": x}, mask)
    assert err.value.arg == "inputs['visual']"
    assert model.normalization("visual") is None
    x[4, 7] = 0.0
    model.fit_normalization({"visual": x}, mask)  # the NaN row is absent
    assert model.normalization("visual") is not None


def test_buffer_positions_past_int64_are_reported_as_given() -> None:
    """A uint64 position past int64 was cast first and reported as the
    negative number it wrapped to ("got -9223372036854775808..."); and a
    small unsigned dtype stays usable as positions."""
    buf = gm.ExperienceBuffer(600, embed_dim=2)
    for _ in range(3):  # the oldest experience sits at slot 300: slots wrap past uint8's range
        buf.extend(np.zeros((300, 7, 2)), np.ones((300, 7), bool), np.zeros((300, 2)), np.zeros((300, 7, 7)), np.zeros(300))
    for positions, shown in (([2**63], "9223372036854775808"), (np.array([2**64 - 1], np.uint64), "18446744073709551615")):
        with pytest.raises(IndexError, match=f"positions: expected values in \\[0, 600\\), got {shown}\\.\\.{shown}$"):
            buf.update_priorities(positions, [1.0])
        with pytest.raises(IndexError, match=f"got {shown}\\.\\.{shown}$"):
            buf.batch(positions)
    small = np.array([5, 250], np.uint8)
    buf.update_priorities(small, [2.0, 3.0])
    assert len(buf.batch(small)) == 2 and buf.batch(small).indices.tolist() == [5, 250]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_loading_a_file_that_cannot_be_mapped_names_it() -> None:
    """/proc files are regular files that cannot be memory-mapped:
    safetensors' reader raised OSError "No such device (os error 19)",
    naming neither the file nor the argument (and so did grapheme-mm info).
    Files are read now, not mapped: it is a file that is no checkpoint."""
    for load in (gm.LearnableMultiModal.load, gm.ExperienceBuffer(2).load):
        with pytest.raises(gm.CheckpointError, match=r"^path: '/proc/self/status' is not a readable .* \(truncated or corrupt\?\)"):
            load("/proc/self/status")


def test_fingerprints_name_what_is_not_a_sequence_of_graphs() -> None:
    """fingerprints(None) or of one Graph said "'NoneType' object is not
    iterable", naming nothing; a dict gave its keys' rows ("graphs[0]:
    expected Graph, got str" for {'a': graph})."""
    graph = gm.Graph.from_text("ab")
    for value, kind in ((None, "NoneType"), (graph, "Graph"), ({"a": graph}, "dict"), ("ab", "str"), (7, "int")):
        with pytest.raises(TypeError, match=f"^graphs: expected a sequence of Graph .*got {kind}$"):
            gm.fingerprints(value)
    assert gm.fingerprints(g for g in [graph, graph]).shape == (2, 18)


def test_objective_weights_refuse_numpy_bools_as_python_bools() -> None:
    """weights={'contrastive': np.True_} was a weight of 1.0 (numpy's bool has
    __float__), where True is refused."""
    model = small_model()
    for flag in (True, np.True_, np.bool_(False)):
        with pytest.raises(TypeError, match=r"weights\['contrastive'\]: expected a number, got bool"):
            model.losses(views(), weights={"contrastive": flag})
    assert model.losses(views(), weights={"contrastive": np.float32(1.0)})["contrastive"] > 0


@pytest.mark.parametrize("flag", ["False", "no", 0, 1, None, 1.0])
def test_bool_options_refuse_what_only_looks_like_a_bool(flag, tmp_path) -> None:
    # Read by truth value, "False" and "no" were true: the per-head shape,
    # a strict load, sampling with replacement or by priority, the training
    # dropout, the recorded inputs, a saved buffer, each without a word.
    model = small_model()
    data = views(6)
    model.record_batch(data)
    emb = model.encode(data)
    query = emb[:, 0]
    calls = {
        "per_head": lambda: model.attention_weights(query, emb, per_head=flag),
        "strict": lambda: model.load_state_dict(model.state_dict(), strict=flag),
        "include_experience": lambda: model.save(tmp_path / "m.safetensors", include_experience=flag),
        "prioritized": lambda: model.experience.sample(2, prioritized=flag),
        "replace": lambda: model.experience.sample(2, replace=flag),
        "training": lambda: model.losses(data, training=flag),
        "use_inputs": lambda: gm.Batch.from_experiences(model.experience.batch(), use_inputs=flag),
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match=f"^{name}: expected a bool, got {type(flag).__name__}$"):
            call()
    assert not (tmp_path / "m.safetensors").exists()
    # numpy's bools are bools
    assert model.attention_weights(query, emb, per_head=np.True_).shape == (6, 2, 7)
    model.experience.sample(2, replace=np.False_, prioritized=np.True_)


def test_more_epochs_than_adams_step_counter_holds_are_refused_not_run_for_ever() -> None:
    # epochs=2**64 trained until killed: each epoch a step, and Adam counts
    # at most 2**63 - 1 steps. A metric that raises tells a started fit apart.
    def started(model: gm.LearnableMultiModal) -> float:
        raise RuntimeError("training started")

    model = small_model()
    before = model.state_dict()
    for epochs, batch_size in ((2**64, 64), (np.uint64(2**64 - 1), 4), (2**63, 2)):  # 1, 3 and 6 steps an epoch
        with pytest.raises(gm.InvalidValueError, match="epochs: .* expected at most") as err:
            model.fit(views(), epochs=epochs, batch_size=batch_size, metrics={"m": started}, progress=False)
        assert err.value.arg == "epochs"
    assert model.epochs_trained == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    # the count left is what bounds it: a model near the end of the counter takes fewer
    opt = model.optimizer_state()
    model.load_optimizer_state({**opt, "step": 2**63 - 3})
    with pytest.raises(gm.InvalidValueError, match="expected at most 2 epochs"):
        model.fit(views(), epochs=3, progress=False)
    model.fit(views(), epochs=2, progress=False)
    assert model.optimizer_state()["step"] == 2**63 - 1


def test_an_int_beyond_64_bits_is_named_not_called_an_object_array() -> None:
    # numpy keeps such an int as an object: the error said "expected a real-valued
    # numeric array, got array of shape (1,) and dtype object" (a TypeError).
    buffer = gm.ExperienceBuffer(4, embed_dim=E)
    buffer.extend(np.zeros((2, 7, E)), np.ones((2, 7), bool), np.zeros((2, E)), np.zeros((2, 7, 7)), np.zeros(2))
    calls = {
        "positions": lambda: buffer.batch([1, 2**64]),
        "event_ids": lambda: small_model().record_batch(views(), event_ids=2**70),
        "inputs['visual']": lambda: small_model().encode({"visual": [[-(2**64)] + [1.5] * 17]}),
    }
    for arg, call in calls.items():
        with pytest.raises(gm.InvalidValueError, match=r"holds -?\d{20,}, an int beyond 64 bits") as err:
            call()
        assert err.value.arg == arg
    assert len(buffer) == 2
    with pytest.raises(TypeError, match="dtype object"):  # other objects stay refused as before
        buffer.batch([1, None])


def test_a_buffer_position_out_of_range_is_reported_as_given() -> None:
    # buffer[-100] of 5 said "positions: expected values in [0, 5), got -95..-95";
    # buffer[2**70] "positions: expected a real-valued numeric array ... dtype object".
    buffer = gm.ExperienceBuffer(8, embed_dim=E)
    buffer.extend(np.zeros((5, 7, E)), np.ones((5, 7), bool), np.zeros((5, E)), np.arange(5.0)[:, None, None] / 4 * np.ones((5, 7, 7)),
                  np.arange(5.0))
    for position in (-100, -6, 5, 2**70, np.uint64(2**64 - 1)):
        with pytest.raises(IndexError, match=rf"^position: expected an int in \[-5, 5\), got {int(position)}$"):
            buffer[position]
    assert buffer[-5].reward == 0.0 and buffer[4].reward == 4.0 and buffer[-1].reward == 4.0
    with pytest.raises(IndexError, match=r"^position: expected none: the buffer is empty, got 0$"):
        gm.ExperienceBuffer(8)[0]


def test_modalities_given_as_frames_with_different_indexes_are_refused() -> None:
    # rows are paired by position: frames of the same samples in another order were
    # trained on, and embedded, each sample's visual beside another's auditory
    pd = pytest.importorskip("pandas")
    x = views(40)
    samples = [f"s{i}" for i in range(40)]
    visual = pd.DataFrame(x["visual"], index=samples)
    auditory = pd.DataFrame(x["auditory"], index=samples).iloc[::-1]
    model = small_model()
    before = model.state_dict()
    calls = {"inputs": lambda data: model.encode(data), "data": lambda data: model.fit(data, epochs=1, progress=False),
             "inputs ": lambda data: fit_with_stopping(model, data, validation_fraction=0.5, patience=2,
                                                       monitor="val_total", seed=0, epochs=1, progress=False)}
    for arg, call in calls.items():
        arg = arg.strip()
        with pytest.raises(gm.InvalidValueError, match=rf"^{arg}\['auditory'\]: its index is not that of "
                                                       rf"{arg}\['visual'\]") as err:
            call({"visual": visual, "auditory": auditory})
        assert err.value.arg == f"{arg}['auditory']"
    with pytest.raises(gm.InvalidValueError, match=r"^validation\['auditory'\]: its index"):
        model.fit(x, validation={"visual": visual, "auditory": auditory}, epochs=1, progress=False)
    assert model.epochs_trained == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    aligned = {"visual": visual, "auditory": auditory.loc[visual.index]}  # as the message suggests
    np.testing.assert_array_equal(model.encode(aligned), model.encode({"visual": x["visual"], "auditory": x["auditory"]}))


def test_fit_with_stopping_splits_lists_and_frames_by_row_and_names_a_bad_seed() -> None:
    # A held-out slice was taken as x[rows]: a list failed with numpy's "only integer
    # scalar arrays can be converted to a scalar index", a DataFrame picked columns
    # (KeyError); seed=-1 gave numpy's unnamed "expected non-negative integer".
    pd = pytest.importorskip("pandas")
    x = views(40)
    options = dict(validation_fraction=0.5, patience=2, monitor="val_total", epochs=2, progress=False)
    want = fit_with_stopping(small_model(), x, seed=0, **options).epochs
    for inputs in ({**x, "visual": x["visual"].tolist()}, {**x, "visual": pd.DataFrame(x["visual"], index=np.arange(40)[::-1])}):
        got = fit_with_stopping(small_model(), inputs, seed=0, **options).epochs
        assert [{k: v for k, v in e.items() if k != "seconds"} for e in got] == [
            {k: v for k, v in e.items() if k != "seconds"} for e in want]
    for seed, error in ((-1, gm.InvalidValueError), (1.5, TypeError), (True, TypeError)):  # a wrong type: a TypeError
        for fraction in (0.5, 0.1):  # a held-out slice, and cross-validation
            model = small_model()
            with pytest.raises(error, match="seed: expected an int >= 0") as err:
                fit_with_stopping(model, x, seed=seed, **{**options, "validation_fraction": fraction})
            assert getattr(err.value, "arg", "seed") == "seed" and model.epochs_trained == 0
    with pytest.raises(TypeError, match="inputs: expected a mapping"):
        fit_with_stopping(small_model(), [x["visual"]], seed=0, **options)


def test_the_recipe_names_inputs_that_are_not_views() -> None:
    from grapheme_multimodal import uci

    settings = uci.TrainingSettings(epochs=1, embed_dim=E, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8)
    x = views(40)["visual"]
    # a list had no .shape (AttributeError), a 1-D array no width (IndexError)
    model = uci.train({"visual": x.tolist(), "auditory": x}, settings)
    assert model.config.input_dims[:2] == (18, 18)
    for bad in (x[:, 0], np.float64(1.0)):
        with pytest.raises(gm.ShapeError, match=r"inputs\['visual'\]: expected a 2-D array \[N, d\], got shape") as err:
            uci.train({"visual": bad, "auditory": x}, settings)
        assert err.value.arg == "inputs['visual']"
    with pytest.raises(TypeError, match="inputs: expected a mapping"):
        uci.train([x, x], settings)


def test_the_embedder_names_random_state_and_verbose_and_fit_checks_progress() -> None:
    # random_state=None was refused as "seed: ...", a name the estimator does not have;
    # verbose="no" and progress="no" were true: a progress bar was drawn.
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(20, 5)), rng.normal(size=(20, 4))]
    kw = dict(embed_dim=E, hidden_dim=8, num_heads=2, encoder_hidden=(8,), encoder_output_dim=8, epochs=1)
    for seed in (None, np.random.RandomState(0), -1, 2**64, 1.0, True):
        # a wrong type (None, a RandomState, a float, a bool) is a TypeError, an int out of range an InvalidValueError
        error = gm.InvalidValueError if type(seed) is int else TypeError
        with pytest.raises(error, match=r"^random_state: expected an int in \[0, 2\*\*64\)") as err:
            MultimodalEmbedder(random_state=seed, **kw).fit(xs)
        assert getattr(err.value, "arg", "random_state") == "random_state"
    with pytest.raises(TypeError, match="verbose: expected a bool"):
        MultimodalEmbedder(verbose="no", **kw).fit(xs)
    model = small_model()
    with pytest.raises(TypeError, match="progress: expected a bool"):
        model.fit(views(), epochs=1, progress="no")
    assert model.epochs_trained == 0
    assert MultimodalEmbedder(random_state=np.uint64(2**64 - 1), verbose=np.bool_(False), **kw).fit(xs).n_views_ == 2


def test_roc_auc_of_large_integer_scores_does_not_call_them_ties() -> None:
    # Cast to float64, 2**63 - 1 and 2**63 - 2 were one number: AUC 0.5 for scores that never tie.
    assert metrics.roc_auc(np.array([2**63 - 1]), np.array([2**63 - 2])) == 1.0
    assert metrics.roc_auc(np.array([2**64 - 2], np.uint64), np.array([2**64 - 1], np.uint64)) == 0.0
    assert metrics.roc_auc(np.array([2**53 + 1]), np.array([float(2**53)])) == 1.0  # an int against a float, exactly
    assert metrics.roc_auc(np.array([2**63 - 1, -(2**63)]), np.array([2**64 - 2, 3], np.uint64)) == 0.25
    assert metrics.roc_auc(np.array([3, 5]), np.array([4, 5])) == metrics.roc_auc(np.array([0.3, 0.5]), np.array([0.4, 0.5])) == 0.375


def test_binder_auc_names_its_own_arguments() -> None:
    # seed=-1 was numpy's "expected non-negative integer", a list of views "only integer
    # scalar arrays ...", a bind returning a scalar "zero-dimensional arrays cannot be
    # concatenated", and [N, E] or NaN strengths were blamed on "positive_scores".
    from grapheme_multimodal.evaluation import binder_auc, view_modalities

    rng = np.random.default_rng(0)
    embeddings = {"a": rng.normal(size=(10, 4)), "b": rng.normal(size=(10, 4))}
    dot = lambda a, b: (a * b).sum(axis=1)  # noqa: E731
    want = binder_auc(dot, embeddings, seed=3)
    assert binder_auc(dot, embeddings, seed=np.uint8(3)) == want
    for seed, error in ((-1, gm.InvalidValueError), (1.5, TypeError), (True, TypeError)):  # a wrong type: a TypeError
        with pytest.raises(error, match="seed: expected an int >= 0") as err:
            binder_auc(dot, embeddings, seed=seed)
        assert getattr(err.value, "arg", "seed") == "seed"
    with pytest.raises(TypeError, match="view_embeddings: expected a mapping"):
        binder_auc(dot, list(embeddings.values()))
    for bind, error in ((lambda a, b: 0.5, gm.ShapeError), (lambda a, b: a * b, gm.ShapeError),
                        (lambda a, b: np.full(len(a), np.nan), gm.NonFiniteError)):
        with pytest.raises(error, match=r"^bind: returned .* for views 'a', 'b'") as err:
            binder_auc(bind, embeddings)
        assert err.value.arg == "bind"
    with pytest.raises(TypeError, match="views: expected view names, got a str"):
        view_modalities("abc")  # three views 'a', 'b', 'c'


def test_objective_weights_too_large_or_complex_are_refused_by_name() -> None:
    # 2**1024 raised Python's bare "int too large to convert to float"; numpy's
    # complex 1+5j was read as 1.0 (its imaginary part dropped with a warning).
    model = small_model()
    with pytest.raises(gm.InvalidValueError, match=r"^weights\['contrastive'\]: .* an int too large for a float"):
        model.losses(views(), weights={"contrastive": 2**1024})
    with pytest.raises(gm.InvalidValueError, match=r"^objectives\['binding'\]"):
        model.fit(views(), epochs=1, objectives={"contrastive": 1, "binding": -(2**1024)}, progress=False)
    for weight in (np.complex128(1 + 5j), 1 + 0j):
        with pytest.raises(TypeError, match=r"weights\['contrastive'\]: expected a number, got complex"):
            model.losses(views(), weights={"contrastive": weight})
    assert model.epochs_trained == 0 and model.optimizer_state()["step"] == 0


def test_a_train_step_with_nothing_to_learn_from_is_refused_as_fit_refuses_it() -> None:
    # Every loss 0, yet the step was taken: Adam's momentum moved every weight.
    x = views()
    model = small_model()
    model.train_step(x)
    before = state_of(model)
    one_row = {k: v[:1] for k, v in x.items()}
    with pytest.raises(gm.InvalidValueError, match=r"^batch: no rows") as err:
        model.train_step({k: v[:0] for k, v in x.items()})
    assert err.value.arg == "batch"
    for weights in ({"contrastive": 1.0}, {"contrastive": 1.0, "binding": 2.0, "fused_contrastive": 1.0}):
        with pytest.raises(gm.InvalidValueError, match=r"^batch: 1 row; .* are 0 on a single row"):
            model.train_step(one_row, weights=weights)
    with pytest.raises(gm.InvalidValueError, match=r"^batch: 1 row"):
        model.train_step(gm.Batch(embeddings=model.encode(one_row)), weights={"binding": 1.0})
    assert state_of(model) == before
    # one row still trains what learns from one row, and any two rows anything
    model.train_step(one_row, weights={"contrastive": 1.0, "cross_modal": 1.0})
    assert model.optimizer_state()["step"] == 2
    model.train_step({k: v[:2] for k, v in x.items()}, weights={"contrastive": 1.0})


def state_of(model: gm.LearnableMultiModal) -> tuple:
    opt = model.optimizer_state()
    return (tuple((k, v.tobytes()) for k, v in model.state_dict().items()), opt["step"], opt["rng_counter"],
            tuple(v.tobytes() for v in opt["exp_avg"].values()))


def test_multiple_features_takes_a_list_of_labels_and_names_views_that_are_no_mapping() -> None:
    # labels=[...] passed the checks, then n_events and subset raised AttributeError
    # ('list' object has no attribute 'shape'); views=[...] "'list' object has no attribute 'items'".
    from grapheme_multimodal.datasets import MultipleFeatures

    rng = np.random.default_rng(0)
    views_ = {"fou": rng.normal(size=(6, 3)), "fac": rng.normal(size=(6, 2))}
    data = MultipleFeatures(views_, [0, 1, 0, 1, 0, 1])
    assert data.n_events == 6 and data.subset([1, 2]).labels.tolist() == [1, 0]
    with pytest.raises(TypeError, match=r"^views: expected a mapping"):
        MultipleFeatures(list(views_.values()), np.arange(6))


def test_an_image_or_sequence_too_large_for_a_graph_is_refused_before_its_float32_copy() -> None:
    # The copy came first: numpy's unnamed MemoryError when it could not be had, else
    # seconds to minutes of copying (16 GiB for a 65536 x 65536 uint8 image) before the
    # core refused the graph. Broadcast views: nothing here allocates them.
    for shape in ((2**20, 2**20), (65536, 65536)):
        with pytest.raises(gm.TooLargeError, match=r"^image: a graph of \d+ nodes") as err:
            gm.Graph.from_image(np.broadcast_to(np.uint8(0), shape))
        assert err.value.arg == "image"
    with pytest.raises(gm.TooLargeError, match=r"^values: a graph of \d+ nodes") as err:
        gm.Graph.from_sequence(np.broadcast_to(0.0, (2**40,)))
    assert err.value.arg == "values"
    assert gm.Graph.from_image(np.ones((3, 4), np.uint8)).edge_count == 34
    assert gm.Graph.from_sequence(np.broadcast_to(0.5, (5,))).edge_count == 4


def test_edges_from_a_generator_are_read_as_pairs_as_activations_are() -> None:
    # edges=(pair for ...) was "edges: expected integer node indices, got dtype object"
    graph = gm.Graph.from_edges(3, ((i, i + 1) for i in range(2)), activations=(a for a in (0.1, 0.2, 0.3)))
    assert graph.edges.tolist() == [[0, 1], [1, 2]]
    with pytest.raises(gm.InvalidValueError, match=r"edges: edge 0 is \(0, 3\)"):
        gm.Graph.from_edges(3, ((0, 3) for _ in range(1)))


def test_two_config_keys_for_one_modality_are_refused_not_one_dropped() -> None:
    # input_dims={"visual": 18, "VISUAL": 5} built a model taking 5 columns: the last key won.
    for field_name, value in (("input_dims", {"visual": 18, "VISUAL": 5}), ("input_dims", {"visual": 18, 0: 18}),
                              ("graph_features", {"visual": "fingerprint", gm.Modality.VISUAL: {"kind": "wl"}})):
        with pytest.raises(gm.InvalidValueError, match=rf"^{field_name}: keys .* name the same modality") as err:
            small_model(**{field_name: value})
        assert err.value.arg == field_name
    assert small_model(input_dims={"visual": 5, "auditory": 6}).config.input_dims[:2] == (5, 6)


def test_a_model_embedder_refuses_two_views_in_one_modality() -> None:
    # {"a": visual, "b": visual}: embedding both views fed the model one of them for both
    from grapheme_multimodal.evaluation import ModelEmbedder

    with pytest.raises(gm.InvalidValueError, match=r"^modalities: views \['a', 'b'\] share a modality") as err:
        ModelEmbedder(small_model(), {"a": "visual", "b": gm.Modality.VISUAL, "c": "auditory"})
    assert err.value.arg == "modalities"
    embedder = ModelEmbedder(small_model(), {"a": "visual", "b": "auditory"})
    x = views(4)
    got = embedder.embed_views({"a": x["visual"], "b": x["auditory"]})
    assert not np.allclose(got["a"], got["b"])


def test_a_history_key_no_epoch_recorded_is_a_key_error_not_an_empty_curve() -> None:
    history = small_model().fit(views(), epochs=2, progress=False)
    assert len(history["loss"]) == 2
    with pytest.raises(KeyError, match=r"history\['val_totl'\]: not recorded; recorded: \['binding'"):
        history["val_totl"]  # was [], a curve of nothing
    assert gm.History()["anything"] == []  # no epochs: nothing to tell a typo by


def test_validation_of_one_row_is_refused_when_the_monitor_would_be_0_and_else_warned() -> None:
    # val_contrastive of one row is 0 every epoch: early stopping on it stopped after
    # `patience` epochs and kept epoch 1, without a word.
    x, one = views(12), {k: v[:1] for k, v in views(12, seed=1).items()}
    model = small_model()
    before = model.state_dict()
    for kwargs in (dict(monitor="val_contrastive", early_stopping=1), dict(objectives={"contrastive": 1.0}),
                   dict(objectives={"contrastive": 1.0, "cross_modal": 1.0}, monitor="val_contrastive")):
        with pytest.raises(gm.InvalidValueError, match=r"^validation: 1 row; .* would be 0 every epoch") as err:
            model.fit(x, validation=one, epochs=3, progress=False, **kwargs)
        assert err.value.arg == "validation"
    assert model.epochs_trained == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.warns(UserWarning, match=r"^validation: 1 row; .* their val_ losses will be 0"):
        history = model.fit(x, validation=one, epochs=1, progress=False)  # val_total holds cross_modal too
    assert history.epochs[0]["val_contrastive"] == 0.0 and history.epochs[0]["val_cross_modal"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, validation={k: v[:2] for k, v in views(12, seed=1).items()}, epochs=1, progress=False)


def test_one_validation_row_and_its_presence_are_judged_by_one_rule() -> None:
    # One row of one modality leaves cross_modal at 0 as surely as it leaves contrastive:
    # val_cross_modal was watched (best_epoch of zeros) while only contrastive was warned of.
    x, one = views(12), {"visual": views(12, seed=1)["visual"][:1]}
    model = small_model()
    before = model.state_dict()
    both = {"contrastive": 1.0, "cross_modal": 1.0}
    with pytest.raises(gm.InvalidValueError, match=r"^validation: no row holds two modalities \(cross_modal is 0 on them\), "
                                                   r"so monitor 'val_cross_modal' would be 0 every epoch; expected a row "
                                                   r"holding two modalities$") as err:
        model.fit(x, validation=one, epochs=2, objectives=both, monitor="val_cross_modal", progress=False)
    assert err.value.arg == "validation" and model.epochs_trained == 0
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.warns(UserWarning, match=r"^validation: 1 row; contrastive .*; no row holds two modalities \(cross_modal "
                                         r"is 0 on them\): their val_ losses will be 0"):
        model.fit(x, validation=one, epochs=1, objectives={**both, "seed_consistency": 0.0}, monitor="loss", progress=False)


def test_one_row_of_training_data_on_which_every_objective_is_0_is_refused() -> None:
    # fused_contrastive compares rows and cross_modal needs a row of two modalities: on one
    # row of one modality both are 0, and fit took Adam steps on zero gradients.
    one = {"visual": views(12)["visual"][:1]}
    model = small_model()
    before = model.state_dict()
    with warnings.catch_warnings():
        # no warning first: "only cross_modal will train" came before this refusal, which says it is 0 too
        warnings.simplefilter("error")
        with pytest.raises(
                gm.InvalidValueError, match=r"^data: 1 row; fused_contrastive .*; no row holds two modalities \(cross_modal is 0 "
                                            r"on them\), so nothing would train; expected at least 2 rows, or a row holding "
                                            r"two modalities for cross_modal$") as err:
            model.fit(one, epochs=1, objectives={"cross_modal": 1.0, "fused_contrastive": 1.0}, progress=False)
    assert err.value.arg == "data" and model.epochs_trained == 0
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())


def test_a_list_of_events_with_a_stray_item_names_it() -> None:
    # [event, 1] and [] were read as 7 per-modality arrays: "expected a mapping modality
    # -> array or a sequence of 7 arrays/None, got list"
    rng = np.random.default_rng(0)
    events = [gm.MultiModalEvent(i, [gm.ModalFeatures(rng.normal(size=18), m) for m in ("visual", "auditory")])
              for i in range(4)]
    model = small_model()
    with pytest.raises(TypeError, match=r"^data\[2\]: expected a MultiModalEvent like the others, got NoneType"):
        model.fit([*events[:2], None, events[2]], epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"^validation\[0\]: expected a MultiModalEvent"):
        model.fit(events, validation=[1, events[0]], epochs=1, progress=False)
    with pytest.raises(gm.InvalidValueError, match=r"^data: an empty list"):
        model.fit([], epochs=1, progress=False)
    assert model.epochs_trained == 0
    model.fit(events, epochs=1, progress=False)


def test_batch_from_experiences_takes_a_buffer_and_names_what_it_cannot_take() -> None:
    # A buffer, a list of experiences or one experience raised AttributeError ("no attribute 'embeddings'").
    model = small_model(buffer_size=50)
    model.record_batch(views(6), rewards=np.linspace(-1, 1, 6))
    whole = gm.Batch.from_experiences(model.experience.batch())
    from_buffer = gm.Batch.from_experiences(model.experience)
    assert from_buffer.batch_size == 6 and np.array_equal(from_buffer.fused, whole.fused)
    assert model.losses(from_buffer) == model.losses(whole)
    for bad in (list(model.experience), model.experience[0], []):
        with pytest.raises(TypeError, match=r"^experiences: expected an ExperienceBatch .* or an ExperienceBuffer, got"):
            gm.Batch.from_experiences(bad)


def test_fit_with_batch_size_1_still_trains_as_it_warned_it_would() -> None:
    # train_step's refusal of one-row batches must not reach fit, which warns of them
    # and whose last batch has two rows: the same steps as before.
    x = {m: v for m, v in views(5).items() if m != "linguistic"}
    model = small_model()
    with pytest.warns(UserWarning, match="batch_size: 1"):
        history = model.fit(x, epochs=1, batch_size=1, objectives={"contrastive": 1.0}, progress=False)
    assert model.optimizer_state()["step"] == 4 and history.epochs[0]["contrastive"] > 0


def _tiny_views(n: int = 40) -> tuple:
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, 5)), rng.normal(size=(n, 4))


def test_a_float64_view_below_float32_s_range_is_refused_not_made_constant() -> None:
    # Cast to float32 a view at the scale of 1e-45 became zeros: the model
    # standardised a constant view and trained on it without a word.
    a, b = _tiny_views()
    m = small_model(input_dims={"visual": 5, "auditory": 4})
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(gm.InvalidValueError, match=r"data\['auditory'\]: column 0's values are at most .* below float32's") as err:
        m.fit({"visual": a, "auditory": b * 1e-45}, epochs=1, batch_size=20, progress=False)
    assert err.value.arg == "data['auditory']"
    assert all(v.tobytes() == before[k].tobytes() for k, v in m.state_dict().items())
    one_column = b.copy()
    one_column[:, 2] *= 1e-40  # each column is standardised on its own: one lost column is lost data
    with pytest.raises(gm.InvalidValueError, match=r"inputs\['auditory'\]: column 2's values"):
        m.encode({"auditory": one_column})
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with pytest.raises(gm.InvalidValueError, match=r"Xs\[1\]: column 0's values"):
        MultimodalEmbedder(epochs=1).fit([a, b * 1e-45])


def test_tiny_values_beside_ordinary_ones_and_in_absent_rows_are_read_as_float32_reads_them() -> None:
    a, b = _tiny_views()
    m = small_model(input_dims={"visual": 5, "auditory": 4})
    some = b.copy()
    some[3, 1], some[5, 2], some[:, 3] = 1e-300, -1e-42, 0.0  # rounding to 0 beside their column's scale; a zero column
    np.testing.assert_array_equal(m.encode({"auditory": some}), m.encode({"auditory": some.astype(np.float32)}))
    mask = np.zeros((len(a), 7), dtype=bool)
    mask[:, 0], mask[:20, 1] = True, True
    absent = b.copy()
    absent[20:] *= 1e-45  # rows the mask marks absent may hold anything
    assert np.isfinite(m.encode({"visual": a, "auditory": absent}, mask=mask)).all()


def test_an_image_below_float32_s_range_is_refused_a_dark_column_is_not() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(gm.InvalidValueError, match="image: its values are at most"):
        gm.Graph.from_image(rng.random((8, 8)) * 1e-45)
    image = rng.random((8, 8))
    image[:, 0] *= 1e-45  # one scale for the whole image: a dark column, not lost data
    assert gm.Graph.from_image(image).node_count == 64


def test_the_cli_refuses_a_file_whose_column_is_below_float32_s_range(tmp_path, capsys) -> None:
    from grapheme_multimodal.cli import main

    from conftest import cli_train_args

    a, b = _tiny_views()
    b[:, 1] *= 1e-45
    assert main(cli_train_args(tmp_path, {"visual": a, "auditory": b}, tmp_path / "m.safetensors")) == 2
    err = capsys.readouterr().err
    assert "auditory" in err and "column 1's values are at most" in err and "Traceback" not in err
