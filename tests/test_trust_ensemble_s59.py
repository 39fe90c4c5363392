"""Hostile use of the graph builders and the ensemble surfaces (s59 audit)."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm

#: A nanosecond timestamp (pandas' datetime64[ns] as int64): float64's spacing there is 256.
T0 = 1_700_000_000_123_456_789


@pytest.mark.parametrize("bound", [int, np.int64])
@pytest.mark.parametrize("build", ["sequence", "image"])
def test_an_integer_value_range_far_from_zero_scales_integer_values_exactly(bound, build):
    """Before: int64 nanosecond timestamps 100 ns apart with value_range=(t0, t0 + 1000)
    came out as activations in quarters (0, 0, 0.25, 0.25, 0.5, 0.5, 0.5, ...), the bounds and the
    values rounded to float64 before the shift, though the same values without value_range scale
    exactly. Now: 0, 0.1, ..., 1, as without value_range."""
    values = T0 + np.arange(0, 1001, 100)
    given = (bound(T0), bound(T0 + 1000))
    graph = gm.Graph.from_sequence(values, given) if build == "sequence" else gm.Graph.from_image(values[None, :], given)
    np.testing.assert_array_equal(graph.activations, gm.Graph.from_sequence(values).activations)
    np.testing.assert_allclose(graph.activations, np.linspace(0, 1, 11), atol=1e-7)


def test_an_integer_value_range_closer_than_float64_resolves_is_taken():
    """Before: value_range=(t0, t0 + 100) of int64 timestamps was refused as if low were not below
    high: "expected finite (low, high) with low < high ..., got (1.7000000001234568e+18,
    1.7000000001234568e+18)", two bounds the user never gave. Now: taken, and values outside it are
    clamped as documented."""
    values = np.array([T0 - 5, T0, T0 + 50, T0 + 100, T0 + 10**9])
    graph = gm.Graph.from_sequence(values, value_range=(T0, T0 + 100))
    np.testing.assert_array_equal(graph.activations, np.array([0, 0, 0.5, 1, 1], dtype=np.float32))


def test_integer_values_at_the_ends_of_their_dtype_are_clamped_not_wrapped():
    """Values as far from an integer range as int64 allows (its min and max) are clamped to it:
    subtracted from the range's low end in int64 they would wrap round. uint64 likewise."""
    low = -(2**62)
    values = np.array([np.iinfo(np.int64).min, low, low + 3, np.iinfo(np.int64).max])
    np.testing.assert_array_equal(gm.Graph.from_sequence(values, value_range=(low, low + 4)).activations,
                                  np.array([0, 0, 0.75, 1], dtype=np.float32))
    high = np.array([0, 2**63, 2**63 + 2, 2**64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(gm.Graph.from_sequence(high, value_range=(2**63, 2**63 + 4)).activations,
                                  np.array([0, 0, 0.5, 1], dtype=np.float32))


def test_an_integer_value_range_still_refuses_what_it_refused():
    """Integer bounds with high not above low, or beyond float32, are refused as before."""
    with pytest.raises(gm.InvalidValueError, match="value_range"):
        gm.Graph.from_sequence(np.arange(3), value_range=(T0, T0))
    with pytest.raises(gm.InvalidValueError, match="value_range"):
        gm.Graph.from_sequence(np.arange(3), value_range=(0, 10**40))


def _member(widths: dict, seed: int):
    """A small untrained member over views a (visual) and b (auditory)."""
    from grapheme_multimodal import evaluation

    model = gm.LearnableMultiModal(input_dims={"visual": widths["a"], "auditory": widths["b"]}, embed_dim=8,
                                   hidden_dim=8, num_heads=2, seed=seed)
    return evaluation.ModelEmbedder(model, {"a": "visual", "b": "auditory"})


@pytest.fixture
def views() -> dict:
    rng = np.random.default_rng(0)
    return {"a": rng.normal(size=(6, 5)).astype(np.float32), "b": rng.normal(size=(6, 3)).astype(np.float32)}


@pytest.mark.filterwarnings("ignore::grapheme_multimodal.UntrainedModalityWarning")
def test_an_ensemble_whose_members_were_replaced_since_is_checked_again(views):
    """Before: ``ensemble.members = ()`` made every embedding fail as numpy's "need at least one array
    to concatenate", and a member's model replaced by one of other widths blamed the caller's views
    ("views['a']: expected shape (any, 4), got (6, 5)"). Now: each call checks the members as they
    are, as the constructor does, naming the member that differs."""
    from grapheme_multimodal import evaluation

    ensemble = evaluation.EnsembleEmbedder([_member({"a": 5, "b": 3}, 0), _member({"a": 5, "b": 3}, 1)])
    before = ensemble.embed_fused(views)
    ensemble.members[1].model = _member({"a": 4, "b": 3}, 2).model
    for call in (lambda: ensemble.embed_views(views), lambda: ensemble.embed_fused(views),
                 lambda: ensemble.hidden_features(views), lambda: ensemble.bind(before, before)):
        with pytest.raises(gm.InvalidValueError, match=r"members\[1\]: takes views of \{'a': 4, 'b': 3\} columns"):
            call()
    ensemble.members = ()
    for call in (lambda: ensemble.embed_fused(views), lambda: ensemble.has_hidden_features, lambda: ensemble.models):
        with pytest.raises(gm.InvalidValueError, match="members: expected at least one ModelEmbedder, got none"):
            call()  # has_hidden_features was True: all() of no members
    ensemble.members = (_member({"a": 5, "b": 3}, 0), _member({"a": 5, "b": 3}, 1))
    np.testing.assert_array_equal(ensemble.embed_fused(views), before)  # whole members again: as before


def test_one_nan_object_naming_both_attributes_is_refused():
    """Before: ``to_networkx(activation=x, label=x)`` with ``x = float("nan")`` passed the check that
    the two names differ (NaN != NaN) and wrote each label over its node's activation, under the one
    dict key. Now: refused, as two equal names are."""
    pytest.importorskip("networkx")
    nan = float("nan")
    with pytest.raises(gm.InvalidValueError, match="expected two names"):
        gm.Graph.from_text("ab").to_networkx(activation=nan, label=nan)
    two = gm.Graph.from_text("ab").to_networkx(activation=float("nan"), label="label")  # two NaN objects: two keys
    assert [sorted(data.values(), key=str) for _, data in two.nodes(data=True)] == [[1.0, "a"], [1.0, "b"]]


def test_integer_values_are_shifted_exactly_by_a_float_value_range():
    """Before: int64 timestamps with value_range=(float(t0), float(t0) + 1000) were rounded to
    float64 (steps of 256) before the shift, and came out in quarters. Now: the bound is the float
    given (t0 rounded to float64), and the values are shifted by it exactly."""
    low, high = float(T0), float(T0) + 1000  # 21 below T0, and 1024 above low: float64's own rounding
    values = T0 + np.arange(0, 901, 100)
    expected = ((values - int(low)) / (high - low)).astype(np.float32)
    np.testing.assert_allclose(gm.Graph.from_sequence(values, value_range=(low, high)).activations, expected, atol=1e-6)


def test_integer_values_past_a_float_value_ranges_top_map_to_one():
    """Values above a value_range whose width is no whole number (1000.5 here) map to 1, as the
    documented clamp says, not to the range's whole part over its width."""
    low = float(2**40)  # float32 cannot resolve 1000 there (the values are shifted); float64 holds the .5
    values = np.array([2**40, 2**40 + 1000, 2**40 + 1001, 2**40 + 5000])
    activations = gm.Graph.from_sequence(values, value_range=(low, low + 1000.5)).activations
    np.testing.assert_allclose(activations, [0, 1000 / 1000.5, 1, 1], atol=1e-7)
