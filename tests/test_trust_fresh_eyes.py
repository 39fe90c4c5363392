"""A fresh black-box audit of the public API (session 51), each defect
closed the way a user would expect:

1. ``fit(metrics={"loss": fn}, monitor="val_loss", early_stopping=k)``: the
   metric, recorded as ``val_loss``, is minimised (the name every Keras and
   Lightning user watches a validation loss by), while every other custom
   metric is maximised unless ``mode="min"``; the README said only the
   latter. Kept, documented and pinned, in ``fit`` and ``fit_with_stopping``.
2. ``evaluation.ordered_pairs`` / ``unordered_pairs`` ("every pair of
   distinct views") given a name twice returned the view paired with
   itself and each of its pairs twice, which the measurements would compute
   and key alike; ``view_modalities`` refused it saying "expected at most 6
   distinct view names" for two names. A repeated name is refused, named.

Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import evaluation, stopping


def small_model(**options) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 3}, embed_dim=8, hidden_dim=8,
                                  num_heads=2, **options)


def views(n: int = 30, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"visual": rng.normal(size=(n, 4)), "auditory": rng.normal(size=(n, 3))}


def scripted(values):
    """A metric returning ``values`` in turn, one per epoch."""
    it = iter(values)
    return lambda model: next(it)


@pytest.mark.parametrize(("name", "best"), [("loss", 1), ("accuracy", 3)])
def test_a_custom_metric_named_loss_is_minimised_as_documented_others_maximised(name, best) -> None:
    model = small_model()
    history = model.fit(views(), epochs=5, metrics={name: scripted([0.1, 0.5, 0.9, 0.2, 0.3])},
                        monitor=f"val_{name}", early_stopping=2, progress=False)
    assert [e[f"val_{name}"] for e in history.epochs][: len(history.epochs)] == [0.1, 0.5, 0.9, 0.2, 0.3][: len(history.epochs)]
    assert history.best_epoch == best
    # an explicit mode wins over the name's default, either way
    model = small_model()
    flipped = "max" if name == "loss" else "min"
    history = model.fit(views(), epochs=5, metrics={name: scripted([0.5, 0.1, 0.9, 0.2, 0.3])},
                        monitor=f"val_{name}", mode=flipped, early_stopping=2, progress=False)
    assert history.best_epoch == (3 if flipped == "max" else 2)


def test_the_readme_says_which_custom_metric_is_minimised() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "one named `loss` (`val_loss`) minimised" in " ".join(readme.split())
    assert "a metric named ``loss``" in " ".join(gm.LearnableMultiModal.fit.__doc__.split())


def test_losses_stay_minimised_by_default() -> None:
    history = small_model().fit(views(), validation=views(10, seed=1), epochs=2, progress=False)
    assert history.monitor == "val_total"
    best = min(range(2), key=lambda i: history.epochs[i]["val_total"])
    assert history.best_epoch == best + 1
    history = small_model().fit(views(), epochs=2, monitor="contrastive", progress=False)
    assert history.best_epoch == 1 + min(range(2), key=lambda i: history.epochs[i]["contrastive"])


def test_fit_with_stopping_minimises_a_metric_named_loss_as_fit_does() -> None:
    model = small_model()
    history = stopping.fit_with_stopping(
        model, views(40), validation=views(12, seed=1), validation_fraction=0.1, patience=2, epochs=5,
        monitor="val_loss", metrics={"loss": scripted([0.5, 0.1, 0.9, 0.2, 0.3])}, progress=False,
    )
    assert history.best_epoch == 2


@pytest.mark.parametrize("pairs", [evaluation.ordered_pairs, evaluation.unordered_pairs])
def test_view_pairs_refuse_a_view_named_twice(pairs) -> None:
    # were [('a', 'b'), ('a', 'a'), ('b', 'a'), ('b', 'a'), ('a', 'a'), ('a', 'b')]: self-pairs, each pair twice
    with pytest.raises(gm.InvalidValueError, match=r"^names: 'a' is given twice; expected distinct view names$") as err:
        pairs(["a", "b", "a"])
    assert err.value.arg == "names"
    assert evaluation.ordered_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"), ("c", "a"), ("c", "b")]
    assert evaluation.unordered_pairs(("a", "b", "c")) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_view_modalities_names_the_repeated_view() -> None:
    # was "views: expected at most 6 distinct view names, got ['fou', 'fou']" for two names
    with pytest.raises(gm.InvalidValueError, match=r"^views: 'fou' is given twice; expected distinct view names$") as err:
        evaluation.view_modalities(["fou", "fou"])
    assert err.value.arg == "views"
    with pytest.raises(gm.InvalidValueError, match=r"^views: expected at most 6 distinct view names"):
        evaluation.view_modalities([f"v{i}" for i in range(7)])
    assert evaluation.view_modalities(["linguistic", "fou"]) == {"linguistic": gm.Modality.LINGUISTIC,
                                                                 "fou": gm.Modality.VISUAL}
