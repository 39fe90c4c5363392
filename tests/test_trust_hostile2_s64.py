"""A second hostile review (s64) of the components, Batch, the thread
setting, the training recipe (``uci``), the types users build and the
model's learning methods. Each test says what a user saw before the fix."""

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci
from grapheme_multimodal.evaluation import view_modalities
from grapheme_multimodal.types import Modality

#: A recipe small enough to train in a fraction of a second.
_SMALL = dict(embed_dim=8, hidden_dim=8, encoder_hidden=(8,), encoder_output_dim=8, epochs=1, batch_size=8,
              patience=0, cv_folds=0, ema_decay=None)


def _views(rows=12):
    rng = np.random.default_rng(0)
    return {"visual": rng.normal(size=(rows, 5)), "linguistic": rng.normal(size=(rows, 4))}


def test_train_names_the_settings_learning_rate_when_it_grows_the_parameters():
    """``uci.train`` with a learning rate that grows the parameters past
    float32 said "parameters: ... (too large a learning rate grows them)",
    naming nothing train takes, while ``fit_views`` (which trains through
    it) named ``settings.learning_rate``; train names it too now."""
    settings = uci.TrainingSettings(**_SMALL, learning_rate=1e30)
    with pytest.raises(gm.NonFiniteError, match=r"^settings\.learning_rate: got 1e\+30;") as caught:
        uci.train(_views(), settings)
    assert caught.value.arg == "settings.learning_rate"


def test_train_refuses_validation_views_of_modalities_it_does_not_train():
    """A ``validation`` view of a modality ``inputs`` lacks was refused by
    fit as "expected shape (any, 18) ... make the model with input_dims=...",
    a remedy train has no argument for (and one of 18 columns was taken,
    measuring an encoder no row trained); it is refused naming
    ``validation`` and the modalities trained."""
    views = _views()
    for width in (5, 18):
        validation = {"auditory": np.ones((12, width)), "linguistic": views["linguistic"]}
        with pytest.raises(gm.InvalidValueError, match=r"^validation: view 'auditory' is no modality of inputs "
                                                       r"\(visual, linguistic\)") as caught:
            uci.train(views, uci.TrainingSettings(**_SMALL), validation=validation)
        assert caught.value.arg == "validation"


@pytest.mark.parametrize("name", ["v\u0131sual", "vi\u017fual", "ab\u017ftract", "V\u0131SUAL"])
def test_modality_names_are_ascii_not_whatever_upper_maps_to_one(name):
    """``str.upper()`` maps the dotless "ı" to "I" and the long "ſ" to "S":
    ``Modality.parse("vısual")`` was visual and "abſtract" abstract, a
    misspelt name taken without a word (and a view so named took that
    slot); such names are unknown now, as any other misspelling."""
    with pytest.raises(gm.InvalidValueError, match="unknown modality"):
        Modality.parse(name)
    with pytest.raises(gm.InvalidValueError, match="unknown modality"):
        gm.ModalFeatures(np.ones(18), name)
    assert view_modalities([name, "visual"])["visual"] is Modality.VISUAL  # a plain view name, not the visual slot
    assert Modality.parse("ViSuAl") is Modality.VISUAL  # any case of the ASCII name, as documented


def _xy(rows=4):
    rng = np.random.default_rng(1)
    return rng.normal(size=(rows, 18)), rng.normal(size=(rows, 18))


@pytest.mark.parametrize("make, blamed, rows", [
    (lambda v, l: gm.Batch(inputs={"visual": v, "linguistic": l[:3]}), r"inputs\['linguistic'\]", 3),
    (lambda v, l: gm.Batch(inputs={"visual": v, "linguistic": l}, mask=np.ones(7, bool)), "mask", 7),
    (lambda v, l: gm.Batch(inputs={"visual": v, "linguistic": l}, mask=np.ones((3, 7), bool)), "mask", 3),
    (lambda v, l: gm.Batch(inputs={"visual": v}, fused=np.zeros((4, 8)), rewards=np.zeros(3)), "rewards", 3),
    (lambda v, l: gm.Batch(embeddings=np.zeros((4, 7, 8)), fused=np.zeros((5, 8))), "fused", 5),
    (lambda v, l: gm.Batch(events=[gm.MultiModalEvent(1)], fused=np.zeros((2, 8))), "fused", 2),
])
def test_batch_size_refuses_arrays_that_disagree_on_the_rows(make, blamed, rows):
    """``Batch.batch_size`` was the first array's number of rows: inputs of
    4 and 3 rows were a batch of 4, and a mask of shape (7,) beside inputs
    of 4 rows a batch of 7, without a word, where the model refuses both.
    It names the array that disagrees now."""
    batch = make(*_xy())
    with pytest.raises(gm.ShapeError, match=rf"^{blamed}: has {rows} rows, but .* has \d+ ") as caught:
        batch.batch_size
    assert caught.value.arg == blamed.replace("\\", "")


def test_batch_size_of_a_str_is_no_count_of_its_characters():
    """``Batch(..., rewards="abc").batch_size`` read the str's 3 characters
    as 3 rows; a str is no array of rows."""
    v, _ = _xy()
    batch = gm.Batch(inputs={"visual": v}, fused=np.zeros((4, 8)), rewards="abcd")
    with pytest.raises(gm.ShapeError, match=r"^rewards: expected an array with one row per batch entry, got str"):
        batch.batch_size


def test_batch_size_of_consistent_batches_is_kept():
    v, l = _xy(5)
    assert gm.Batch(inputs={"visual": v, "linguistic": l}, mask=np.ones((5, 7), bool)).batch_size == 5
    assert gm.Batch(inputs=[v, None, l.tolist(), None, None, None, None]).batch_size == 5
    assert gm.Batch(embeddings=np.zeros((5, 7, 8)), fused=np.zeros((5, 8)), rewards=np.zeros(5)).batch_size == 5
    assert gm.Batch(inputs={}).batch_size == 0


@pytest.mark.parametrize("name, value", [("GRAPHEME_MM_NUM_THREADS", str(2**64)),
                                         ("GRAPHEME_MM_NUM_THREADS", " +" + "9" * 5000),
                                         ("RAYON_NUM_THREADS", "99999999999999999999")])
def test_a_thread_count_beyond_what_the_core_reads_is_not_called_no_int(monkeypatch, name, value):
    """A thread count of 2**64 or more, which the core passes over, was
    said to be "not a positive int" (or "not an int >= 0"), which it is;
    the warning says it is beyond the largest count the core reads."""
    from grapheme_multimodal._environment import unreadable_settings

    monkeypatch.setenv("GRAPHEME_MM_NUM_THREADS", value if name == "GRAPHEME_MM_NUM_THREADS" else "x")
    monkeypatch.setenv("RAYON_NUM_THREADS", value if name == "RAYON_NUM_THREADS" else "2")
    said = [message for message in unreadable_settings() if message.startswith(name + "=")]
    assert len(said) == 1 and "is a count beyond 2**64 - 1 (the largest" in said[0] and "not a" not in said[0]
    monkeypatch.setenv(name, "4x")
    assert any(m.startswith(name + "='4x' is not a") for m in unreadable_settings())


def test_training_settings_hold_encoder_objectives_as_the_config_does():
    """``TrainingSettings(encoder_objectives={"contrastive", "binding"})``
    (a set, which the model's config takes) was kept as the set: the frozen
    settings raised "unhashable type: 'set'" when hashed, and the same
    objectives in another order or container compared unequal, though
    they train the same model. They are held in the config's canonical
    order now."""
    as_set = uci.TrainingSettings(encoder_objectives={"contrastive", "binding"})
    as_list = uci.TrainingSettings(encoder_objectives=["binding", "contrastive"])
    assert as_set.encoder_objectives == as_list.encoder_objectives == ("contrastive", "binding")
    assert as_set == as_list and hash(as_set) == hash(as_list)
    assert as_set.model_options()["encoder_objectives"] == ("contrastive", "binding")
    assert uci.TrainingSettings().encoder_objectives is None


def test_training_settings_take_numpy_bools_as_the_bools_they_are():
    """The settings' own checks read the bool fields with ``is True`` /
    ``is False``, so numpy's bools (which the model's config takes) were
    misread: ``learnable_temperature=np.True_`` refused a valid
    ``encoder_objectives`` as training nothing, ``reconstruction_decoders=
    np.False_`` beside the recipe's reconstruction weight passed until
    train refused it naming fit's ``objectives``, and such settings did not
    json.dump. They are held as Python bools now."""
    import dataclasses
    import json

    learned = uci.TrainingSettings(weights={"contrastive": 1}, encoder_objectives=["binding"],
                                   learnable_temperature=np.True_)
    assert learned.learnable_temperature is True
    assert learned == uci.TrainingSettings(weights={"contrastive": 1}, encoder_objectives=["binding"])
    json.dumps(dataclasses.asdict(uci.TrainingSettings(encoder_skip=np.False_)))
    with pytest.raises(gm.InvalidValueError, match=r"^reconstruction_decoders: got False, but the recipe's objectives"):
        uci.TrainingSettings(reconstruction_decoders=np.False_)
    with pytest.raises(gm.InvalidValueError, match=r"^reconstruction_subsets: got True, but weights gives no reconstruction"):
        uci.TrainingSettings(reconstruction_subsets=np.True_, weights={"contrastive": 1})


def test_graph_made_without_arguments_says_how_graphs_are_made():
    """``gm.Graph()`` (as a user would try for an empty graph, say for a
    ``ModalGraph``) raised Python's "missing 1 required positional
    argument: '_inner'", naming nothing the user typed; it says how graphs
    are built now, as ``gm.Graph(5)`` did."""
    for args in ((), (5,), (None,)):
        with pytest.raises(TypeError, match=r"^Graph is built with Graph\.from_text/.*an empty graph: Graph\.from_text"):
            gm.Graph(*args)
    assert gm.Graph.from_text("").node_count == 0


_HUGE = 10**5000  # past Python's 4,300 digits, repr() and str() of it raise ValueError
_SHOWN_HUGE = r"1\.000e\+5000 \(an int of 5001 digits\)"


def test_ints_past_python_digit_limit_are_refused_in_the_package_words():
    """An int past 4,300 digits raised Python's "Exceeds the limit (4300
    digits) for integer string conversion" in the place of the message
    that refuses it (or of a repr): the settings' repr, the model's
    neighbour counts, a Batch's components size, hidden_features' layer,
    an event's timestamp. The number is shown as the package shows such
    ints now."""
    assert "epochs=1.000e+5000 (an int of 5001 digits)" in repr(uci.TrainingSettings(epochs=_HUGE))
    # such a width is refused when the settings are made (s64), in the package's words
    with pytest.raises(gm.TooLargeError, match=rf"^encoder_hidden\[0\]: got {_SHOWN_HUGE}"):
        uci.TrainingSettings(encoder_hidden=(_HUGE,))
    with pytest.raises(gm.InvalidValueError, match=rf"^fused_neighbors: expected an int in \[0, 2\*\*32\), got {_SHOWN_HUGE}"):
        gm.LearnableMultiModal(fused_neighbors=_HUGE)
    with pytest.raises(gm.InvalidValueError, match=rf"^neighborhood_neighbors: .*got {_SHOWN_HUGE}"):
        uci.train(_views(), uci.TrainingSettings(**_SMALL, neighborhood_neighbors=_HUGE))
    with pytest.raises(gm.InvalidValueError, match=rf"^components: expected a batch size >= 0 \(an int64\), got {_SHOWN_HUGE}"):
        gm.Batch(components=(_HUGE, [None] * 7))
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, encoder_hidden=(4,))
    with pytest.raises(gm.InvalidValueError, match=rf"^layer: expected an index .* got {_SHOWN_HUGE}"):
        model.hidden_features({"visual": np.ones((1, 18))}, layer=_HUGE)
    with pytest.raises(gm.InvalidValueError, match=rf"^timestamp: expected a finite number or None, got {_SHOWN_HUGE}"):
        gm.MultiModalEvent(1, timestamp=_HUGE)
    with pytest.warns(gm.EarlyStoppingSkippedWarning, match=rf"early stopping \(patience {_SHOWN_HUGE}\) is skipped"):
        uci.train(_views(), uci.TrainingSettings(**{**_SMALL, "patience": _HUGE}))


@pytest.mark.parametrize("call, message", [
    (lambda: gm.LearnableMultiModal(binder_kind=_HUGE), r"^binder_kind: expected one of \['additive', 'bilinear'\], got "),
    (lambda: Modality.parse(-_HUGE), r"^modality: index -"),
    (lambda: gm.LearnableMultiModal().encode({_HUGE: np.ones((1, 18))}), r"^inputs: index "),
    (lambda: gm.set_num_threads(-_HUGE), r"^n: expected a positive number of threads, got -"),
    (lambda: gm.CrossModalBinding(("visual", -_HUGE), ("linguistic", 0), 0.5), r"^source: expected a node index >= 0, got -"),
    (lambda: gm.ExperienceBuffer(4).sample(-_HUGE), r"^batch_size: expected a positive int, got -"),
])
def test_more_ints_past_python_digit_limit_are_refused_in_the_package_words(call, message):
    """The same, for a modality index, a thread count, a binding's node, a
    sample's size and a choice given as a huge int."""
    with pytest.raises(gm.InvalidValueError, match=message + _SHOWN_HUGE):
        call()


def test_calls_taking_no_mask_say_nothing_of_one():
    """``model.encoder.encode(modality, x)`` and ``uci.train``'s
    ``validation`` take no mask, but their refusals spoke of one: a masked
    array was told to "leave the rows out with mask=", and a NaN row was
    "a row marked present". They say nothing of a mask now; the model's
    own ``encode``, which takes one, still does."""
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, seed=0)
    hidden = np.ma.masked_array(np.ones((1, 18)), mask=True)
    nan_row = np.ones((2, 18))
    nan_row[1, 3] = np.nan
    with pytest.raises(gm.InvalidValueError, match=r"^x: a masked array .*\(pass its values: x\.filled") as caught:
        model.encoder.encode("visual", hidden)
    assert "mask=" not in str(caught.value)
    with pytest.raises(gm.NonFiniteError, match=r"^x: contains a non-finite value \(NaN or inf\) at row 1; expected"):
        model.encoder.encode("visual", nan_row)
    with pytest.raises(gm.InvalidValueError, match=r"leave the rows out with mask="):
        model.encode({"visual": hidden})
    with pytest.raises(gm.NonFiniteError, match=r"at row 1 \(a row marked present\)"):
        model.encode({"visual": nan_row})
    views = _views()
    validation = {**views, "visual": np.ma.masked_array(views["visual"], mask=np.eye(12, 5, dtype=bool))}
    with pytest.raises(gm.InvalidValueError, match=r"^validation\['visual'\]: a masked array") as caught:
        uci.train(views, uci.TrainingSettings(**_SMALL), validation=validation)
    assert "mask=" not in str(caught.value)


def test_train_names_the_settings_weights_whose_sum_overflows():
    """Weights whose weighted sum of the losses overflows float32
    (``{"contrastive": 3e38}``, each one a float32) were refused by
    ``uci.train`` naming ``objectives``, fit's argument, which neither train
    nor its settings have (``fit_views`` said ``settings.weights``); train
    names ``settings.weights`` now."""
    settings = uci.TrainingSettings(**_SMALL, weights={"contrastive": 3e38})
    with pytest.raises(gm.NonFiniteError, match=r"^settings\.weights: the weighted sum of the losses overflows") as caught:
        uci.train(_views(), settings)
    assert caught.value.arg == "settings.weights"


def test_train_refuses_empty_validation_by_its_own_words():
    """``uci.train(..., validation={})`` was refused by fit as "no modality
    was given; expected at least one array when validation_mask is None",
    an argument train does not take."""
    with pytest.raises(gm.InvalidValueError, match=r"^validation: expected None or at least one modality") as caught:
        uci.train(_views(), uci.TrainingSettings(**_SMALL), validation={})
    assert "validation_mask" not in str(caught.value)


@pytest.mark.parametrize("n_views, error", [("2", TypeError), (True, TypeError), (2.5, TypeError), (0, ValueError),
                                            (-1, ValueError)])
def test_settings_monitor_checks_the_number_of_views(n_views, error):
    """``TrainingSettings().monitor("2")`` raised Python's "'>=' not
    supported between instances of 'str' and 'int'", and ``monitor(True)``,
    ``monitor(-1)`` or ``monitor(2.5)`` were answered; the count is
    checked now, by name (``stopping_options`` passes it on)."""
    settings = uci.TrainingSettings()
    with pytest.raises(error, match=r"^n_views: expected an int >= 1"):
        settings.monitor(n_views)
    with pytest.raises(error, match=r"^n_views: expected an int >= 1"):
        settings.stopping_options(n_views)
    assert settings.monitor(np.int64(2)) == "val_contrastive" and settings.monitor(1) == "val_total"
