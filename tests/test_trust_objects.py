"""Hostile use of the original's user-facing objects (modalities, bindings,
events), the standalone components, ``Batch`` and the config: each test is a
defect a user met, asserting the clean behaviour."""

from __future__ import annotations

import copy
import enum
import pickle

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.components import CrossModalBinder, FusionNetwork, ModalityEncoder

C = gm.LearnableMultiModalConfig


def small_model(**overrides: object) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, **overrides)


# ------------------------------------------------------------------ types
class View(enum.IntEnum):
    TEXT = 0
    IMAGE = 2


class Named(str, enum.Enum):
    PICTURE = "visual"


@pytest.mark.parametrize("member", [View.TEXT, View.IMAGE, Named.PICTURE, gm.BindingType.REFERENCE])
def test_modality_parse_refuses_members_of_another_enum(member: enum.Enum) -> None:
    """Before: View.TEXT (an IntEnum, 0) was silently the visual modality, whatever the user's enum meant."""
    with pytest.raises(TypeError, match=rf"modality: got .*a member of {type(member).__name__}, not of Modality"):
        gm.Modality.parse(member)
    with pytest.raises(TypeError, match="input_dims: got"):
        C(input_dims={member: 5})
    assert gm.Modality.parse(View.IMAGE.value) is gm.Modality.LINGUISTIC  # its value, given as such, is an index


def test_binding_type_takes_its_name_in_any_case() -> None:
    """Before: binding_type="Reference" (the spec's spelling) was refused, though modalities take any case."""
    for given in ("Reference", "REFERENCE", "reference", gm.BindingType.REFERENCE):
        b = gm.CrossModalBinding(("visual", 0), ("auditory", 1), 0.5, given)
        assert b.binding_type is gm.BindingType.REFERENCE
    assert gm.CrossModalBinding(("visual", 0), ("auditory", 1), 0.5, "Identity").binding_type is gm.BindingType.IDENTITY
    with pytest.raises(gm.InvalidValueError, match="binding_type: expected a BindingType or one of"):
        gm.CrossModalBinding(("visual", 0), ("auditory", 1), 0.5, "Refer")


def test_event_repr_is_short_for_many_components() -> None:
    """Before: repr of an event of 20,000 components printed 4 MB."""
    event = gm.MultiModalEvent(2, [gm.ModalFeatures(np.ones(18), "visual") for _ in range(20_000)])
    text = repr(event)
    assert len(text) < 3_000
    assert text.startswith("MultiModalEvent(id=2, components=[ModalFeatures(") and "... 19,995 more]" in text
    small = gm.MultiModalEvent(3, [gm.ModalFeatures([1.0, 2.0], "visual")], timestamp=2)
    assert repr(small) == (
        "MultiModalEvent(id=3, components=[" + repr(small.components[0]) + "], bindings=[], timestamp=2.0)"
    )


def test_event_with_features_changed_in_place_names_the_component() -> None:
    """Before: a NaN written into a component's array was reported as inputs['visual'] row 0, an argument never given."""
    model = small_model()
    changed = gm.ModalFeatures(np.ones(18), "visual")
    event = gm.MultiModalEvent(7, [gm.ModalFeatures(np.ones(18), "auditory"), changed])
    changed.features[3] = np.inf
    for call in (model.fuse_event, model.encode_event, model.compute_bindings, model.record_fusion):
        with pytest.raises(gm.NonFiniteError, match=r"event\.components\[1\]\.features: entry 3 of event 7's visual") as err:
            call(event)
        assert err.value.arg == "event"
    for call in (model.losses, model.train_step):
        with pytest.raises(gm.NonFiniteError, match=r"events\[1\]: event 7's visual component holds NaN or inf"):
            call(gm.Batch(events=[gm.MultiModalEvent(1, [gm.ModalFeatures(np.ones(18), "visual")]), event]))
    assert model.optimizer_state()["step"] == 0 and len(model.experience) == 0
    changed.features = np.ones(18)
    assert model.fuse_event(event).shape == (8,)


# ------------------------------------------------------------------ batch
def test_batch_compares_and_hashes_by_identity() -> None:
    """Before: Batch(inputs=...) == another raised numpy's "truth value ... is ambiguous", and hash() "unhashable"."""
    a = gm.Batch(inputs={"visual": np.zeros((4, 18))})
    b = gm.Batch(inputs={"visual": np.zeros((4, 18))})
    assert a == a and a != b and hash(a) == hash(a)
    e = gm.Batch(embeddings=np.zeros((2, 7, 8)))
    assert e != gm.Batch(embeddings=np.zeros((2, 7, 8))) and len({a, b, e}) == 3


def test_batch_repr_is_short() -> None:
    """Before: repr of a batch of 5,000 events printed 1.3 MB, and every array's values."""
    events = [gm.MultiModalEvent(i, [gm.ModalFeatures(np.ones(18), "visual")]) for i in range(5_000)]
    assert len(repr(gm.Batch(events=events))) < 3_000
    assert repr(gm.Batch(inputs={"visual": np.zeros((4, 18))})) == "Batch(inputs={'visual': array(shape=(4, 18), dtype=float64)})"
    text = repr(gm.Batch(embeddings=np.zeros((100_000, 7, 8)), rewards=[0.5]))
    assert text == "Batch(embeddings=array(shape=(100000, 7, 8), dtype=float64), rewards=[0.5])"


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: gm.Batch(components=(-1, [None] * 7)), gm.InvalidValueError, r"components: expected a batch size >= 0"),
        (lambda: gm.Batch(components=("a", [None] * 7)), TypeError, r"components: expected the batch size first, an int"),
        (lambda: gm.Batch(inputs="abc"), TypeError, r"inputs: expected a mapping modality -> array or a sequence of 7"),
        (lambda: gm.Batch(inputs=5), TypeError, r"inputs: expected a mapping modality -> array"),
        (lambda: gm.Batch(embeddings=3).batch_size, gm.ShapeError, r"embeddings: expected an array with one row per"),
        (lambda: gm.Batch(inputs={"visual": 3}).batch_size, gm.ShapeError, r"inputs\['visual'\]: expected an array"),
        (lambda: gm.Batch(inputs={"visual": np.zeros((2, 18))}, mask=3).batch_size, gm.ShapeError, r"mask: expected an array"),
        (lambda: gm.Batch.from_events(None), TypeError, r"events: expected a sequence of MultiModalEvent, got NoneType"),
    ],
)
def test_batch_refuses_what_it_cannot_size(make, error, message) -> None:
    """Before: batch_size was -1, 1 for inputs="abc", or a bare "has no len()" / "not iterable" / int() ValueError."""
    with pytest.raises(error, match=message):
        make()


# ----------------------------------------------------------------- config
@pytest.mark.parametrize("given", [None, "embed_dim", [("embed_dim", 3)], 5])
def test_config_from_dict_refuses_what_is_no_mapping(given: object) -> None:
    """Before: from_dict(None) said "'NoneType' object is not iterable", and from_dict("embed_dim") listed each letter as an unknown field."""
    with pytest.raises(TypeError, match=r"config: expected a mapping field name -> value \(what to_dict gives\)"):
        C.from_dict(given)  # type: ignore[arg-type]


def test_config_from_dict_names_unknown_keys_of_mixed_types() -> None:
    """Before: unknown keys 1 and "a" together raised "'<' not supported between instances of 'str' and 'int'"."""
    with pytest.raises(gm.InvalidValueError, match=r"config: unknown fields \[1, 'a'\]"):
        C.from_dict({1: 3, "a": 2, "embed_dim": 32})


def test_config_keeps_its_names_as_str() -> None:
    """Before: binder_kind=np.str_("bilinear") (read from an array) stayed numpy's str: repr showed np.str_('bilinear')."""
    c = C(binder_kind=np.str_("bilinear"), fused_neighbor_space=np.str_("inputs"), input_distance=np.str_("modalities"))
    for name in ("binder_kind", "fused_neighbor_space", "input_distance"):
        assert type(getattr(c, name)) is str
    assert "binder_kind='bilinear'" in repr(c) and "np.str_" not in repr(c)
    assert c == C(binder_kind="bilinear", fused_neighbor_space="inputs", input_distance="modalities")
    with pytest.raises(gm.InvalidValueError, match=r"binder_kind: expected one of \['additive', 'bilinear'\], got 'x'$"):
        C(binder_kind=np.str_("x"))


def test_config_takes_input_dims_as_a_numpy_vector() -> None:
    """Before: input_dims=np.array([...7 ints]) was refused as "got ndarray" (encoder_hidden takes arrays)."""
    c = C(input_dims=np.arange(1, 8))
    assert c.input_dims == (1, 2, 3, 4, 5, 6, 7) and c == C(input_dims=list(range(1, 8)))
    assert all(type(d) is int for d in c.input_dims)
    with pytest.raises(TypeError, match=r"input_dims: expected .* got an array of shape \(7, 1\)"):
        C(input_dims=np.ones((7, 1), int))
    with pytest.raises(gm.ShapeError, match="input_dims: expected 7 entries"):
        C(input_dims=np.arange(1, 7))


@pytest.mark.parametrize(
    "entry, error, message",
    [
        ("nope", gm.InvalidValueError, r"graph_features\['visual'\]: expected one of \('fingerprint', 'wl'\)"),
        ({"kind": "wl", "dim": -1}, gm.InvalidValueError, r"graph_features\['visual'\]\['dim'\]: expected an int"),
        ({"kind": "wl", "iterations": 1.5}, TypeError, r"graph_features\['visual'\]\['iterations'\]: expected an int"),
        ({"kind": 3}, TypeError, r"graph_features\['visual'\]\['kind'\]: expected one of"),
    ],
)
def test_config_graph_features_errors_name_the_entry(entry: object, error: type, message: str) -> None:
    """Before: graph_features={"visual": "nope"} said "kind: ..." and {"dim": -1} "dim: ...", naming no argument given."""
    with pytest.raises(error, match=message):
        C(graph_features={"visual": entry})


# ------------------------------------------------------------- components
def test_component_views_of_one_model_are_equal() -> None:
    """Before: model.encoder == model.encoder was False (each access makes a new view)."""
    model = small_model()
    assert model.encoder == model.encoder and hash(model.encoder) == hash(model.encoder)
    assert model.fusion != model.encoder and model.encoder != small_model().encoder
    assert len({model.encoder, model.encoder, model.binder}) == 2
    standalone = ModalityEncoder(embed_dim=8, hidden_dim=8, num_heads=2)
    assert standalone == standalone and standalone != ModalityEncoder(embed_dim=8, hidden_dim=8, num_heads=2)
    twin = pickle.loads(pickle.dumps(model.fusion))  # a copy views a copy of the model
    assert twin != model.fusion and isinstance(twin, FusionNetwork)
    assert copy.deepcopy(model.binder) != model.binder and isinstance(copy.deepcopy(model.binder), CrossModalBinder)
