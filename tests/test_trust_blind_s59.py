"""An outside checker's findings (session 59): each test pins one defect a
skeptical user met following the README and the docstrings."""

import copy
import pickle
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.averaging import WeightAverage
from grapheme_multimodal.datasets import MultipleFeatures, Nutrimouse


def _multiple_features(rng: np.random.Generator) -> MultipleFeatures:
    views = {"fou": rng.normal(size=(6, 3)).astype(np.float32), "pix": rng.normal(size=(6, 2)).astype(np.float32)}
    return MultipleFeatures(views=views, labels=np.arange(6) % 2)


def _nutrimouse(rng: np.random.Generator) -> Nutrimouse:
    views = {"gene": rng.normal(size=(4, 3)).astype(np.float32), "lipid": rng.normal(size=(4, 2)).astype(np.float32)}
    return Nutrimouse(
        views=views, genotype=np.array([0, 1, 0, 1]), diet=np.array([0, 1, 2, 3]),
        genotype_names=("ppar", "wt"), diet_names=("coc", "fish", "lin", "ref"),
        feature_names={"gene": ("a", "b", "c"), "lipid": ("d", "e")},
    )


@pytest.mark.parametrize("make", [_multiple_features, _nutrimouse], ids=["MultipleFeatures", "Nutrimouse"])
def test_data_sets_compare_by_value(make):
    """Before: ``data == copy.deepcopy(data)`` (and ``data in [data2]``) of a
    loaded data set raised numpy's "The truth value of an array with more than
    one element is ambiguous", and ``hash`` of a Nutrimouse said "unhashable
    type: 'dict'". Now data sets compare by value, as Experience does, and are
    unhashable by their own name (they hold arrays)."""
    data = make(np.random.default_rng(0))
    twin = copy.deepcopy(data)
    assert data == twin and twin == pickle.loads(pickle.dumps(data))
    assert data in [twin]
    name = next(iter(data.views))
    twin.views[name][0, 0] += 1
    assert data != twin
    assert data != "not a data set"
    with pytest.raises(TypeError, match=type(data).__name__):
        hash(data)


def test_data_sets_differing_in_view_order_differ():
    """Before: a comparison raised. Now two data sets whose views come in
    another order (their ``Xs`` lists differ) are not equal."""
    data = _multiple_features(np.random.default_rng(0))
    reordered = MultipleFeatures(views=dict(reversed(list(data.views.items()))), labels=data.labels)
    assert data != reordered


def _averaged_model() -> gm.LearnableMultiModal:
    rng = np.random.default_rng(0)
    model = gm.LearnableMultiModal(input_dims={"visual": 4}, embed_dim=8, hidden_dim=8, num_heads=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": rng.normal(size=(16, 4)), "linguistic": rng.normal(size=(16, 18))},
                  epochs=2, progress=False, ema_decay=0.9)
    return model


def test_weight_average_compares_by_value():
    """Before: ``model.weight_average == copy.deepcopy(model.weight_average)``
    (a read-only snapshot, documented as such) raised numpy's "truth value of
    an array ... is ambiguous", and ``hash`` named a private
    ``_ReadOnlyTensors``. Now averages compare by value (decay, count and
    every tensor) and are unhashable by their own name."""
    average = _averaged_model().weight_average
    assert isinstance(average, WeightAverage)
    assert average == copy.deepcopy(average) == pickle.loads(pickle.dumps(average))
    assert average != WeightAverage.start(0.9)
    other_mean = {k: v + (k == "binder.bias") for k, v in average.mean.items()}
    assert average != WeightAverage(decay=average.decay, count=average.count, mean=other_mean, trained=average.trained)
    with pytest.raises(TypeError, match="WeightAverage"):
        hash(average)


def test_a_weight_average_equals_itself_read_back_from_a_checkpoint(tmp_path):
    """A checkpoint reads the average's tensors back in another order (by
    name): the average a model holds after ``load`` equals the one it was
    saved with, as two dicts of the same items are equal."""
    model = _averaged_model()
    model.save(tmp_path / "model.safetensors")
    loaded = gm.LearnableMultiModal.load(tmp_path / "model.safetensors").weight_average
    assert list(loaded.mean) != list(model.weight_average.mean)
    assert loaded == model.weight_average


def test_read_modality_file_takes_a_str_path_and_parses_the_modality(tmp_path):
    """Before: ``files.read_modality_file("visual", "x.npy")`` (a public
    function; names as ``open`` and ``np.load`` take them) raised
    "AttributeError: 'str' object has no attribute 'suffix'", and a modality
    that is none (``"bogus"``) was read into a ModalityFile as if it were
    one. Now a str (or os.PathLike) name reads as a Path does, and the
    modality is parsed, an unknown one refused by name."""
    from grapheme_multimodal.files import read_modality_file

    x = np.arange(6.0).reshape(3, 2)
    np.save(tmp_path / "x.npy", x)
    read = read_modality_file("visual", str(tmp_path / "x.npy"))
    assert read.modality is gm.Modality.VISUAL
    np.testing.assert_array_equal(read.values, x.astype(np.float32))
    with pytest.raises(gm.InvalidValueError, match="bogus"):
        read_modality_file("bogus", tmp_path / "x.npy")


@pytest.mark.parametrize("name", [None, 3, 2.5, b"x.csv"])
def test_file_readers_refuse_what_is_no_file_name(tmp_path, name):
    """Before: ``read_modality_file(m, None)`` said "stat: path should be
    string, bytes, os.PathLike or integer", ``3`` stat-ed the process's file
    descriptor 3 ("Bad file descriptor"), and ``read_texts`` and
    ``read_numeric_csv`` said "open: path should be ...", naming no
    argument. Now each is a TypeError naming ``path``, what it got and what
    it expects, as ``LearnableMultiModal.load`` and every other reader say
    it (bytes too)."""
    from grapheme_multimodal.files import read_modality_file, read_numeric_csv, read_texts

    for read in (lambda: read_modality_file(gm.Modality.VISUAL, name), lambda: read_texts(name),
                 lambda: read_numeric_csv(name)):
        with pytest.raises(TypeError, match=r"^path: expected a file name"):
            read()


@pytest.mark.parametrize("spec", [None, 3, b"visual=x.npy"])
def test_parse_modality_spec_refuses_what_is_no_str(spec):
    """Before: ``files.parse_modality_spec(Path("visual=x.npy"))`` or ``None``
    raised "AttributeError: ... has no attribute 'partition'" (bytes: "a
    bytes-like object is required"). Now a TypeError says a str NAME=PATH is
    expected and what was given."""
    from pathlib import Path

    from grapheme_multimodal.files import parse_modality_spec

    for given in (spec, Path("visual=x.npy")):
        with pytest.raises(TypeError, match=r"^--modality: expected a str NAME=PATH .*, got " + type(given).__name__):
            parse_modality_spec(given)


def test_data_set_reprs_are_short():
    """Before: ``repr`` of a loaded Nutrimouse printed 9 kB (its lipid view
    in full, all 141 feature names), a MultipleFeatures 3 kB of numbers.
    Now arrays show as their shape and dtype, as an ExperienceBatch's do."""
    rng = np.random.default_rng(0)
    views = {"gene": rng.normal(size=(40, 120)).astype(np.float32), "lipid": rng.normal(size=(40, 21)).astype(np.float32)}
    mice = Nutrimouse(views=views, genotype=np.arange(40) % 2, diet=np.arange(40) % 5, genotype_names=("ppar", "wt"),
                      diet_names=("coc", "fish", "lin", "ref", "sun"),
                      feature_names={"gene": tuple(f"g{i}" for i in range(120)), "lipid": tuple(f"l{i}" for i in range(21))})
    shown = repr(mice)
    assert len(shown) < 600, shown
    assert shown.startswith("Nutrimouse(views={'gene': array(shape=(40, 120), dtype=float32)")
    digits = MultipleFeatures(views={"pix": rng.normal(size=(2000, 240)).astype(np.float32)}, labels=np.arange(2000) % 10)
    assert repr(digits) == ("MultipleFeatures(views={'pix': array(shape=(2000, 240), dtype=float32)}, "
                            "labels=array(shape=(2000,), dtype=int64))")


def test_weight_average_leaves_the_callers_arrays_alone():
    """Before: ``WeightAverage(decay, count, mean={"w": mine})`` (and
    ``applied_to({"w": mine})``) made the caller's own array read-only
    ("assignment destination is read-only" at their next write) and held it,
    so a snapshot documented as never changing shared it. Now the average
    holds read-only copies; the caller's arrays stay as they were."""
    mine, theirs = np.zeros(3), np.ones(3)
    average = WeightAverage(decay=0.9, count=1, mean={"w": mine})
    applied = average.applied_to({"w": theirs})
    assert mine.flags.writeable and theirs.flags.writeable
    mine[0], theirs[0] = 5.0, 7.0
    assert average.mean["w"][0] == 0.0 and applied.trained["w"][0] == 1.0
    assert not average.mean["w"].flags.writeable and not applied.trained["w"].flags.writeable


def test_a_fitted_weight_average_stays_read_only_and_resumes():
    """The average's own tensors stay read-only and unshared with the model
    after the change above (which copies only writable arrays it is given),
    and a second fit with averaging still continues from it."""
    model = _averaged_model()
    average = model.weight_average
    assert all(not v.flags.writeable for v in average.mean.values())
    assert all(not v.flags.writeable for v in average.trained.values())
    rng = np.random.default_rng(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit({"visual": rng.normal(size=(16, 4)), "linguistic": rng.normal(size=(16, 18))},
                  epochs=1, progress=False, ema_decay=0.9)
    assert model.weight_average.count == average.count + 1


def test_model_embedder_modalities_cannot_be_edited_past_its_checks():
    """Before: ``ModelEmbedder.modalities`` was a plain dict:
    ``embedder.modalities["a"] = "tactile"`` was taken unparsed, and an
    ``EnsembleEmbedder`` of that embedder then failed with "tuple indices
    must be integers or slices, not builtin_function_or_method". Now the
    mapping is read-only (``dict(embedder.modalities)`` is an editable copy;
    a new ModelEmbedder checks the new one), and still pickles."""
    from grapheme_multimodal.evaluation import EnsembleEmbedder, ModelEmbedder

    model = gm.LearnableMultiModal(input_dims={"visual": 3, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2)
    embedder = ModelEmbedder(model, {"a": "visual", "b": "auditory"})
    with pytest.raises(TypeError):
        embedder.modalities["a"] = "tactile"  # type: ignore[index]
    assert dict(embedder.modalities) == {"a": gm.Modality.VISUAL, "b": gm.Modality.AUDITORY}
    views = {"a": np.ones((2, 3)), "b": np.zeros((2, 3))}
    again = pickle.loads(pickle.dumps(embedder))
    np.testing.assert_array_equal(again.embed_fused(views), embedder.embed_fused(views))
    assert EnsembleEmbedder([embedder, again]).embed_fused(views).shape == (2, 16)


def _experience(reward: float) -> gm.Experience:
    return gm.Experience(np.full((7, 4), 0.5), np.ones(7, bool), np.ones(4), np.full((7, 7), 0.5), reward)


@pytest.mark.parametrize("name, value", [("capacity", 6), ("capacity", 0), ("embed_dim", 5),
                                         ("input_dims", (3,) * 7), ("seed", 7)])
def test_a_buffers_sizes_and_seed_are_fixed(tmp_path, name, value):
    """Before: ``buffer.capacity = 6`` on a full buffer of 3 was taken: it
    then held 6 experiences, two of them never recorded (rewards 0), and
    ``save`` wrote a file that ``load`` refused ("priorities: row 0 is
    0.0"); ``capacity = 0`` made every later call a ZeroDivisionError, and
    ``embed_dim``, ``input_dims`` and ``seed`` were as freely reassigned past
    their checks. Now each is fixed once the buffer is made (an
    AttributeError naming it), the buffer as it was, and still pickles,
    copies and loads."""
    buffer = gm.ExperienceBuffer(capacity=3, embed_dim=4)
    for reward in (0.1, 0.2, 0.3, 0.4):
        buffer.append(_experience(reward))
    before = getattr(buffer, name)
    with pytest.raises(AttributeError, match=f"^{name}: "):
        setattr(buffer, name, value)
    assert getattr(buffer, name) == before
    np.testing.assert_allclose(buffer.batch().rewards, [0.2, 0.3, 0.4])
    buffer.append(_experience(0.5))
    buffer.save(tmp_path / "buffer.safetensors")
    for twin in (gm.ExperienceBuffer.from_file(tmp_path / "buffer.safetensors"), copy.deepcopy(buffer),
                 pickle.loads(pickle.dumps(buffer))):
        assert (twin.capacity, twin.embed_dim, twin.input_dims, twin.seed) == (3, 4, None, 0)
        np.testing.assert_allclose(twin.batch().rewards, [0.3, 0.4, 0.5])


def test_a_buffer_takes_its_embed_dim_from_its_first_experience():
    """A buffer made without ``embed_dim`` still takes it from the first
    experience recorded (the one change of it the buffer makes itself)."""
    buffer = gm.ExperienceBuffer(capacity=2)
    assert buffer.embed_dim is None
    buffer.append(_experience(0.5))
    assert buffer.embed_dim == 4


def test_save_checkpoint_checks_its_arguments_as_model_save_does(tmp_path):
    """Before: ``checkpoint.save_checkpoint(model, path,
    include_experience="no")`` (a public function) wrote the experience
    buffer the caller asked to leave out ("no" is a true str), where
    ``model.save`` and ``save_ensemble`` refuse the str; and
    ``save_checkpoint("model.safetensors", path)`` raised "'str' object has
    no attribute '_lock'". Now both are TypeErrors naming the argument, and
    nothing is written."""
    from grapheme_multimodal.checkpoint import save_checkpoint

    model = gm.LearnableMultiModal(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8, num_heads=2)
    model.record_batch({"visual": np.ones((2, 3))}, None, np.ones(2))
    with pytest.raises(TypeError, match="^include_experience: expected a bool, got str"):
        save_checkpoint(model, tmp_path / "a.safetensors", include_experience="no")
    with pytest.raises(TypeError, match="^model: expected a LearnableMultiModal, got str"):
        save_checkpoint("model.safetensors", tmp_path / "b.safetensors")
    assert not list(tmp_path.iterdir())
    save_checkpoint(model, tmp_path / "c.safetensors", include_experience=False)
    assert gm.LearnableMultiModal.load(tmp_path / "c.safetensors").num_experiences() == 0


def test_module_fit_functions_name_a_model_that_is_none():
    """Before: ``training.fit("model.safetensors", data)`` raised
    "'str' object has no attribute 'epochs_trained'" and
    ``stopping.fit_with_stopping(estimator, ...)`` "... has no attribute
    'config'" (``averaging.model_weights`` and ``resume``: "'_core'",
    "'_weight_average'"). Now each is a TypeError naming ``model``."""
    from grapheme_multimodal import averaging, stopping, training

    for helper in (averaging.model_weights, lambda m: averaging.resume(m, 0.9)):  # "no attribute '_core'" ...
        with pytest.raises(TypeError, match="^model: expected a LearnableMultiModal, got str"):
            helper("model.safetensors")
    data = {"visual": np.ones((4, 18)), "linguistic": np.zeros((4, 18))}
    with pytest.raises(TypeError, match="^model: expected a LearnableMultiModal, got str"):
        training.fit("model.safetensors", data, epochs=1)
    with pytest.raises(TypeError, match="^model: expected a LearnableMultiModal, got NoneType"):
        stopping.fit_with_stopping(None, data, validation_fraction=0.1, patience=1, monitor="loss", epochs=1)


def test_a_data_set_changed_after_it_was_made_is_checked_when_split():
    """Before: a MultipleFeatures whose view was replaced by fewer rows
    (``data.views["fou"] = data.views["fou"][:5]``) split with "IndexError:
    index 31 is out of bounds for axis 0 with size 5". Now
    ``train_test_split`` and ``subset`` check the views as the data set's
    construction does, naming the view and the rows expected."""
    from grapheme_multimodal.datasets import train_test_split

    rng = np.random.default_rng(0)
    data = MultipleFeatures(views={"fou": rng.normal(size=(40, 3)).astype(np.float32),
                                   "pix": rng.normal(size=(40, 2)).astype(np.float32)}, labels=np.arange(40) % 2)
    data.views["fou"] = data.views["fou"][:5]
    for split in (lambda: train_test_split(data), lambda: data.subset(np.arange(3))):
        with pytest.raises(gm.ShapeError, match=r"^views\['fou'\]: has 5 rows; expected 40"):
            split()
