"""A hostile user's audit of the neighbour-based options (the
``neighborhood`` objective, ``neighborhood_neighbors``,
``neighborhood_temperature``, ``fused_neighbors``, ``fused_neighbor_space``,
``input_distance``, ``contrastive_neighbors``,
``contrastive_neighbor_weight``, ``contrastive_pair_power``,
``encoder_objectives``) and of the hidden-feature read-out
(``hidden_features``, ``hidden_width``, ``MultimodalEmbedder(output="hidden")``):
what it turned up, each test failing before its fix, and what held (last
tests). Bad values of each option by type and range, forged checkpoints,
exact resume, and the CLI's flags are covered option by option in
test_neighborhood.py, test_contrastive_neighbors.py,
test_fused_neighbor_space.py, test_input_distance.py,
test_contrastive_pair_power.py, test_encoder_objectives.py and
test_hidden_features.py."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.exceptions import InvalidValueError

from conftest import cli_train_args, model_state as state, recorded_buffer as recorded, run_concurrently
from conftest import two_view_data as views, two_view_model as model

NEIGHBORHOOD = {"neighborhood": 1.0}


# ------------------------------------------------------------- what broke
def test_neighborhood_weighted_without_neighbours_is_refused_by_the_caller_s_name(tmp_path, capsys):
    """neighborhood_neighbors=0 makes the neighborhood objective 0 on every
    batch: a fit of it alone ran its epochs on zero gradients and reported
    success (loss 0.0), beside others its weight was silently nothing, and a
    val_neighborhood watched for early stopping compared zeros."""
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    m = model(neighborhood_neighbors=0)
    before = state(m)
    for objectives in (NEIGHBORHOOD, {"contrastive": 1.0, "neighborhood": 0.5}):
        with pytest.raises(InvalidValueError, match=r"^objectives: neighborhood has weight .*, but the model's "
                                                    r"neighborhood_neighbors is 0 .*expected weight 0, or a model made "
                                                    r"with neighborhood_neighbors >= 1") as err:
            m.fit(views(), epochs=2, batch_size=10, objectives=objectives, progress=False)
        assert err.value.arg == "objectives" and state(m) == before
    with pytest.raises(InvalidValueError, match=r"^objectives: neighborhood has weight"):
        m.fit(views(), validation=views(20, 1), epochs=3, batch_size=10, objectives={"contrastive": 1.0, **NEIGHBORHOOD},
              monitor="val_neighborhood", early_stopping=1, progress=False)
    assert state(m) == before
    # Without the objective weighted, k = 0 is a model like any other.
    assert m.fit(views(), epochs=1, batch_size=10, objectives={"contrastive": 1.0}, progress=False).epochs
    # The recipe's settings refuse it by their own name, as the estimator (whose parameter it is too) and the CLI.
    with pytest.raises(InvalidValueError, match=r"^neighborhood_neighbors: got 0, but weights gives neighborhood weight "
                                                r"1\.0.*expected neighborhood_neighbors >= 1, or weights with "
                                                r"neighborhood 0") as err:
        uci.TrainingSettings(neighborhood_neighbors=0, weights={"contrastive": 1.0, **NEIGHBORHOOD})
    assert err.value.arg == "neighborhood_neighbors"
    assert uci.TrainingSettings(neighborhood_neighbors=0).model_options()["neighborhood_neighbors"] == 0  # not weighted
    estimator = MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1, objectives=NEIGHBORHOOD,
                                   neighborhood_neighbors=0)
    with pytest.raises(InvalidValueError, match=r"^neighborhood_neighbors: got 0"):
        estimator.fit(list(views(40).values()))
    assert not hasattr(estimator, "model_")
    argv = cli_train_args(tmp_path, views(40), tmp_path / "m.safetensors")
    assert main(argv + ["--objectives", "neighborhood=1", "--neighborhood-neighbors", "0"]) == 2
    err = capsys.readouterr().err
    assert "--neighborhood-neighbors: got 0, but weights gives neighborhood weight 1.0" in err, err
    assert not (tmp_path / "m.safetensors").exists()


def test_neighborhood_where_no_three_rows_share_a_modality_is_refused_or_said():
    """neighborhood ranks a row's neighbours among the other rows of its batch
    holding its modality, a softmax that is 1 over a single one: on data
    where no three rows hold the same modality (rows sharing no modality,
    or two rows) it is 0 with a zero gradient every batch, and a fit of it
    alone reported success; batches of two rows left it at 0 without a word."""
    data = views(6)
    inputs = {**data, "linguistic": np.ones((6, 18), np.float32)}
    pairs = np.zeros((6, 7), bool)  # each modality in two rows
    pairs[[0, 1], 0] = pairs[[2, 3], 1] = pairs[[4, 5], 2] = True
    m = model()
    before = state(m)
    for mask, rows in ((pairs, 6), (np.eye(2, 7, dtype=bool), 2)):  # and two rows sharing no modality
        with pytest.raises(InvalidValueError, match=r"^data: no three rows hold the same modality \(neighborhood is 0 on "
                                                    r"them\), so nothing would train") as err:
            m.fit({v: x[:rows] for v, x in inputs.items()}, mask=mask, epochs=1, batch_size=6, objectives=NEIGHBORHOOD,
                  progress=False)
        assert err.value.arg == "data" and state(m) == before
    with pytest.raises(InvalidValueError, match=r"^validation: no three rows hold the same modality \(neighborhood is 0 "
                                                r"on them\), so monitor 'val_neighborhood' would be 0 every epoch"):
        m.fit(views(20), validation={v: x[:2] for v, x in views(20, 1).items()}, epochs=2, batch_size=10,
              objectives={"contrastive": 1.0, **NEIGHBORHOOD}, monitor="val_neighborhood", early_stopping=1, progress=False)
    assert state(m) == before
    # Three rows of one modality are enough.
    three = pairs.copy()
    three[2, 0] = True
    assert m.fit(inputs, mask=three, epochs=1, batch_size=6, objectives=NEIGHBORHOOD, progress=False)["neighborhood"][0] > 0
    # Batches of two rows: 0 but for an epoch's last batch of three, which fit says.
    with pytest.warns(UserWarning, match=r"^batch_size: 2; neighborhood ranks .* so it is 0 on batches of two rows"):
        history = model().fit(views(7), epochs=1, batch_size=2, objectives=NEIGHBORHOOD, progress=False)
    assert history["neighborhood"][0] > 0  # the last batch, of three rows


def test_objectives_that_reach_no_parameter_are_refused_or_said():
    """neighborhood trains the encoders only, and contrastive the encoders
    and (when learned) its temperature: with encoder_objectives keeping their
    gradient from the encoders, or on recorded embeddings (no encoders to
    reach), a fit of them alone ran every epoch, reported falling losses and
    changed no weight; beside others their weight was silently nothing."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder  # noqa: F401  (the estimator has no encoder_objectives)

    m = model(encoder_objectives=("contrastive",))
    before = state(m)
    with pytest.raises(InvalidValueError, match=r"^objectives: neighborhood trains only the encoders, and "
                                                r"encoder_objectives=\('contrastive',\) keeps its gradient from them, so "
                                                r"nothing would train; expected those objectives in encoder_objectives") as err:
        m.fit(views(), epochs=2, batch_size=10, objectives=NEIGHBORHOOD, progress=False)
    assert err.value.arg == "objectives" and state(m) == before
    with pytest.warns(UserWarning, match=r"^objectives: neighborhood trains only the encoders, .*; only contrastive will train"):
        m.fit(views(), epochs=1, batch_size=10, objectives={"contrastive": 1.0, **NEIGHBORHOOD}, progress=False)
    # contrastive with a fixed temperature, kept from the encoders, trains nothing either; a learned one trains.
    fixed = model(encoder_objectives=())
    with pytest.raises(InvalidValueError, match=r"^objectives: contrastive trains only the encoders \(and a learned "
                                                r"temperature: learnable_temperature is False\), and encoder_objectives=\(\) "
                                                r"keeps its gradient from them; neighborhood trains only"):
        fixed.fit(views(), epochs=1, batch_size=10, objectives={"contrastive": 1.0, **NEIGHBORHOOD}, progress=False)
    learned = model(encoder_objectives=(), learnable_temperature=True)
    start = learned.state_dict()["contrastive.log_temperature"].copy()
    learned.fit(views(), epochs=1, batch_size=10, objectives={"contrastive": 1.0}, progress=False)
    assert learned.state_dict()["contrastive.log_temperature"] != start
    # Recorded embeddings: contrastive alone trained nothing; beside binding it is said.
    r = model()
    buffer = recorded(r, views())
    before = state(r)
    with pytest.raises(InvalidValueError, match=r"^data: contrastive trains only the encoders .*which recorded "
                                                r"embeddings do not reach, so nothing would train; expected data with "
                                                r"inputs, or an objective that trains what follows") as err:
        r.fit(buffer, epochs=1, batch_size=10, objectives={"contrastive": 1.0}, progress=False)
    assert err.value.arg == "data" and state(r) == before
    with pytest.warns(UserWarning, match=r"^data: contrastive trains only the encoders .*; only binding will train"):
        r.fit(buffer, epochs=1, batch_size=10, objectives={"contrastive": 1.0, "binding": 1.0}, progress=False)
    # The default mix on recorded embeddings is every objective that applies: not warned of.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r.fit(buffer, epochs=1, batch_size=10, progress=False)
    # The recipe's settings refuse it by their own name.
    with pytest.raises(InvalidValueError, match=r"^encoder_objectives: got \('binding',\), but weights gives only "
                                                r"neighborhood, which train only the encoders") as err:
        uci.TrainingSettings(encoder_objectives=("binding",), weights=NEIGHBORHOOD)
    assert err.value.arg == "encoder_objectives"
    assert uci.TrainingSettings(encoder_objectives=("binding",)).encoder_objectives == ("binding",)  # the recipe's mix trains


def test_the_estimator_reads_hidden_features_by_its_fitted_model():
    """output is a transform-time choice, encoder_hidden a fit-time one:
    output="hidden" set on an estimator fitted without hidden layers was
    refused naming ``layer`` (an argument of no call the user made), and
    encoder_hidden=() set after a fit with hidden layers refused to read the
    layers the fitted model has."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = list(views(60).values())
    small = dict(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1)
    plain = MultimodalEmbedder(**small, encoder_hidden=(), encoder_hidden_dropout=0.0).fit(Xs)
    plain.set_params(output="hidden", encoder_hidden=(4,))  # not fitted yet
    with pytest.raises(InvalidValueError, match=r"^output: this model's encoders have no hidden layers") as err:
        plain.transform(Xs)
    assert err.value.arg == "output"
    deep = MultimodalEmbedder(**small, encoder_hidden=(5,), output="hidden").fit(Xs)
    expected = deep.transform(Xs)
    deep.set_params(encoder_hidden=())  # takes effect at the next fit
    np.testing.assert_array_equal(deep.transform(Xs), expected)
    assert len(deep.get_feature_names_out()) == expected.shape[1] == 10


def test_a_temperature_whose_logits_overflow_is_blamed_not_the_parameters(tmp_path, capsys):
    """neighborhood_temperature=1e-38 is taken (float32 holds its
    reciprocal), but the batch's loss, logits of ±1e38 over 20 rows,
    overflows: the refusal blamed "the model's parameters ... too large a
    learning rate", which were the initial ones. The embeddings are unit
    vectors, so the temperature is to blame (contrastive's, which
    neighborhood takes when it has none of its own, as well)."""
    from grapheme_multimodal.cli import main

    for changes, name, objectives in (
        ({"neighborhood_temperature": 1e-38}, "neighborhood_temperature", NEIGHBORHOOD),
        ({"temperature": 1e-38}, "temperature", NEIGHBORHOOD),
        ({"temperature": 1e-38}, "temperature", {"contrastive": 1.0}),
        ({"temperature": 1e-38}, "temperature", {"fused_contrastive": 1.0}),
    ):
        m = model(**changes)
        before = state(m)
        with pytest.raises(gm.NonFiniteError, match=rf"^{name}: got 1e-38; the {next(iter(objectives))} loss of this batch "
                                                    rf"is not finite: its logits reach 1 / {name} = 1\.000e38") as err:
            m.fit(views(), epochs=1, batch_size=20, objectives=objectives, progress=False)
        assert err.value.arg == name and state(m) == before
    # Recorded unit embeddings: the same; larger ones are blamed themselves (refused as not unit, s60).
    m = model(temperature=1e-38)
    emb = m.encode(views())
    mask = np.linalg.norm(emb, axis=2) > 0
    with pytest.raises(gm.NonFiniteError, match=r"^temperature: got 1e-38"):
        m.losses(gm.Batch(embeddings=emb, mask=mask), weights={"contrastive": 1.0})
    with pytest.raises(gm.InvalidValueError, match=r"^embeddings: row 0's visual embedding .* has norm 1e\+20"):
        m.losses(gm.Batch(embeddings=1e20 * emb, mask=mask), weights={"contrastive": 1.0})
    # A temperature of 1e-37 trains on these 20 rows, to finite weights.
    assert np.isfinite(model(neighborhood_temperature=1e-37).fit(views(), epochs=1, batch_size=20, objectives=NEIGHBORHOOD,
                                                                  progress=False)["neighborhood"][0])
    argv = cli_train_args(tmp_path, views(40), tmp_path / "m.safetensors")
    assert main(argv + ["--objectives", "contrastive=1,neighborhood=1", "--neighborhood-temperature", "1e-38"]) == 2
    err = capsys.readouterr().err
    assert "--neighborhood-temperature: got 1e-38; the neighborhood loss" in err, err


def test_modalities_of_far_apart_magnitudes_find_their_rows_neighbours():
    """Without standardisation, a modality at 1e30 beside one at 1: the
    inputs' distance was rescaled by one power of two for the whole batch,
    which put the smaller modality's squares at 1e-60, 0 in float32, so the
    rows holding only it were all tied and got the batch's lowest rows as
    their neighbours. The encoders are scale-invariant here (zero biases),
    so the neighborhood loss must not move; it went from 0.75 to 2.17."""
    data = views(12)
    mask = np.zeros((12, 7), bool)
    mask[:6, 0] = mask[6:, 1] = True  # rows 0-5 visual only, 6-11 auditory only
    m = model(neighborhood_neighbors=2, fused_neighbor_space="inputs", contrastive_neighbors=2)
    plain = m.losses(gm.Batch(inputs=data, mask=mask), weights=NEIGHBORHOOD)["neighborhood"]
    scaled = {"visual": data["visual"] * np.float32(1e30), "auditory": data["auditory"]}
    assert m.losses(gm.Batch(inputs=scaled, mask=mask), weights=NEIGHBORHOOD)["neighborhood"] == pytest.approx(plain, rel=1e-5)
    # the rows holding both: the huge view decides their distances, as it does in exact arithmetic
    assert np.isfinite(m.train_step(scaled, weights={"contrastive": 1.0, "fused_contrastive": 1.0, **NEIGHBORHOOD})["total"])


# ------------------------------------------------------------- what held
ALL_OPTIONS = dict(encoder_hidden=(5, 7), shared_head=(8,), fused_neighbor_space="inputs", fused_neighbors=3,
                   input_distance="modalities", contrastive_neighbors=2, contrastive_neighbor_weight=0.3,
                   neighborhood_neighbors=4, neighborhood_temperature=0.3, contrastive_pair_power=0.5,
                   encoder_objectives=("contrastive", "fused_contrastive", "neighborhood"))
ALL_OBJECTIVES = {"contrastive": 1.0, "fused_contrastive": 1.0, "neighborhood": 0.5, "binding": 1.0, "cross_modal": 0.1}


def test_every_option_together_resumes_copies_and_reads_out_exactly(tmp_path):
    """Held before this audit: a model with every neighbour option and two
    hidden layers trains reproducibly, resumes bit for bit across a
    checkpoint, pickles and copies into models that train on identically,
    and reads its hidden features out the same from any layout, dtype or
    index type; a bad ``layer`` is refused by name and leaves nothing changed."""
    from conftest import assert_resumes_exactly

    data = views(30)
    fit_kw = dict(epochs=2, batch_size=10, objectives=ALL_OBJECTIVES, progress=False)
    trained = assert_resumes_exactly(lambda: model(**ALL_OPTIONS), data, tmp_path, **fit_kw)
    for twin in (pickle.loads(pickle.dumps(trained)), copy.deepcopy(trained)):
        assert twin.config == trained.config
        a, b = copy.deepcopy(trained), twin
        a.fit(data, **fit_kw)
        b.fit(data, **fit_kw)
        assert all(v.tobytes() == b.state_dict()[k].tobytes() for k, v in a.state_dict().items())
    hidden = trained.hidden_features(data)
    assert hidden.shape == (30, 7, 7) and np.isfinite(hidden).all()
    frozen = {k: np.asfortranarray(x.astype(np.float64)) for k, x in data.items()}
    for x in frozen.values():
        x.flags.writeable = False
    for inputs, layer in ((frozen, np.int64(-1)), (data, np.uint8(1)), ({k: x[::-1][::-1] for k, x in data.items()}, 1)):
        np.testing.assert_array_equal(trained.hidden_features(inputs, layer=layer), hidden)
    assert trained.hidden_features(data, layer=0).shape == (30, 7, 5) == (30, 7, trained.hidden_width(-2))
    before = state(trained)
    for layer, error, words in (
            (2, InvalidValueError, r"^layer: expected an index into config\.encoder_hidden = \(5, 7\) \(-2 to 1\), got 2"),
            (True, TypeError, r"^layer: expected an integer index"), (1.0, TypeError, r"^layer: expected an integer index"),
            (2**70, InvalidValueError, r"^layer: expected an index")):  # a wrong type is a TypeError
        with pytest.raises(error, match=words):
            trained.hidden_features(data, layer=layer)
    assert state(trained) == before


def test_threads_reading_hidden_features_during_a_fit_get_finite_ones_and_leave_it_unchanged():
    """Held: readers of the hidden features while another thread fits with
    the neighbour options get finite features, and the fit ends where a
    fit alone ends."""
    data = views(32)
    fit_kw = dict(epochs=6, batch_size=8, objectives=ALL_OBJECTIVES, progress=False)
    shared, alone = model(**ALL_OPTIONS), model(**ALL_OPTIONS)
    alone.fit(data, **fit_kw)
    seen = []

    def read() -> None:
        for _ in range(30):
            seen.append(bool(np.isfinite(shared.hidden_features(data)).all()))

    run_concurrently(lambda: shared.fit(data, **fit_kw), read, read)
    assert all(seen) and len(seen) == 60
    assert all(v.tobytes() == alone.state_dict()[k].tobytes() for k, v in shared.state_dict().items())


@pytest.mark.parametrize("k", [1, 19, 2**32 - 1])
def test_neighbour_counts_at_and_past_the_batch_and_duplicate_rows_train_to_finite_weights(k):
    """Held: neighbour counts up to 2**32 - 1 (clamped to the batch's other
    rows), on a batch of duplicate rows (every distance 0: ties to the lower
    row) and on one of huge and tiny magnitudes without standardisation."""
    data = views(20)
    duplicate = {v: np.repeat(x[:1], 20, axis=0) for v, x in data.items()}
    magnitudes = {"visual": data["visual"] * np.float32(1e30), "auditory": data["auditory"] * np.float32(1e-30)}
    m = model(fused_neighbor_space="inputs", fused_neighbors=k, contrastive_neighbors=k, neighborhood_neighbors=k)
    for batch in (data, duplicate, magnitudes):
        losses = m.train_step(batch, weights={"contrastive": 1.0, "fused_contrastive": 1.0, "neighborhood": 1.0})
        assert all(np.isfinite(v) for v in losses.values()), losses
    assert all(np.isfinite(v).all() for v in m.state_dict().values())


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_ray_shares_of_two_rows_are_said_and_the_options_train_as_in_one_process(ray_session, tmp_path):
    """Ray's workers split each batch into shares, each a batch of its own
    for the objectives: with shares of two rows, neighborhood was 0 on every
    one without a word (batch_size=4 on 2 workers). Held: one worker trains
    every neighbour option as model.fit does, bit for bit, and
    embed_dataset's hidden features are hidden_features'."""
    from grapheme_multimodal import distributed

    data = views(24)
    with pytest.warns(UserWarning, match=r"^num_workers: 2 workers split each batch of batch_size=4 rows into shares of 2 "
                                         r"rows; neighborhood .* expected batch_size >= 6"):
        distributed.fit(model(), data, num_workers=2, epochs=1, batch_size=4, objectives={"contrastive": 1.0, **NEIGHBORHOOD},
                        progress=False)
    fit_kw = dict(epochs=2, batch_size=8, objectives=ALL_OBJECTIVES, progress=False)
    local, remote = model(**ALL_OPTIONS), model(**ALL_OPTIONS)
    expected = local.fit(data, **fit_kw)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # shares of 8 rows on one worker: nothing to say
        got = distributed.fit(remote, data, num_workers=1, **fit_kw)
    assert [r["loss"] for r in got.epochs] == [r["loss"] for r in expected.epochs]
    assert all(v.tobytes() == remote.state_dict()[k].tobytes() for k, v in local.state_dict().items())
    path = tmp_path / "m.safetensors"
    local.save(path)
    ds = ray_session.data.from_items([{"i": i, "v": row.tolist()} for i, row in enumerate(data["visual"])])
    out = distributed.embed_dataset(ds, path, {"visual": "v"}, outputs=("hidden_features",), batch_size=7).to_pandas()
    out = out.sort_values("i")
    hidden = np.stack([np.stack(list(h)) if h.dtype == object else h for h in out["hidden_features"]])
    np.testing.assert_array_equal(hidden, local.hidden_features({"visual": data["visual"]}))
