"""Leftovers of session 51's audits, each pinned by a test that failed before its fix."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import stopping


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(seed=0, input_dims={"visual": 4, "auditory": 3}, embed_dim=8, hidden_dim=8, num_heads=2)


def caught(call) -> list:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        call()
    return [w for w in seen if issubclass(w.category, gm.ConstantModalityWarning)]


def test_a_modality_whose_rows_are_all_the_same_beside_one_that_varies_is_warned_of_once() -> None:
    """A text file of empty lines (or a column of one value) beside a modality
    that varies trained without a word: standardised, its every input is 0
    and its encoder learns nothing. When every modality is constant, fit
    refuses (as before); when one is, it warns, naming it, once per call
    however many fits the call makes (cross-validation's folds and the
    final fit)."""
    rng = np.random.default_rng(0)
    data = {"visual": rng.normal(size=(20, 4)), "auditory": np.ones((20, 3))}
    seen = caught(lambda: small_model().fit(data, epochs=1, progress=False))
    assert len(seen) == 1
    assert str(seen[0].message).startswith("data['auditory']: holds the same values in every row holding it;")
    assert seen[0].filename == __file__  # the caller's line
    # varying rows: no warning; standardize=False: none (the inputs are not made 0)
    assert not caught(lambda: small_model().fit({**data, "auditory": rng.normal(size=(20, 3))}, epochs=1, progress=False))
    assert not caught(lambda: small_model().fit(data, epochs=1, standardize=False, progress=False))
    # cross-validated stopping fits six times (five folds and the final fit): one warning
    seen = caught(lambda: stopping.fit_with_stopping(small_model(), data, validation_fraction=0.1, patience=2, epochs=2,
                                                      monitor="val_total", progress=False))
    assert len(seen) == 1 and seen[0].filename == __file__  # the user's line, not one inside stopping
    # the estimator too
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    seen = caught(lambda: MultimodalEmbedder(embed_dim=8, hidden_dim=8, num_heads=2, epochs=1).fit(
        [data["visual"], data["auditory"]]))
    assert len(seen) == 1 and seen[0].filename == __file__
    # present in one row only: said so
    mask = np.zeros((20, 7), bool)
    mask[:, 0] = True
    mask[3, 1] = True
    seen = caught(lambda: small_model().fit({"visual": data["visual"], "auditory": rng.normal(size=(20, 3))}, mask=mask,
                                            epochs=1, progress=False))
    assert [str(w.message).split(";")[0] for w in seen] == ["data['auditory']: holds the same values in its one row"]
    # every modality constant: refused, as before
    with pytest.raises(gm.InvalidValueError, match=r"^data: all 20 rows hold the same visual, auditory values"):
        small_model().fit({"visual": np.ones((20, 4)), "auditory": np.ones((20, 3))}, epochs=1, progress=False)


def test_the_command_line_says_a_text_file_of_empty_lines_trains_nothing(tmp_path) -> None:
    np.savetxt(tmp_path / "v.csv", np.random.default_rng(0).normal(size=(30, 4)), delimiter=",")
    (tmp_path / "t.txt").write_text("\n" * 30, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={tmp_path / 'v.csv'}",
         "-m", f"linguistic={tmp_path / 't.txt'}", "--epochs", "2", "-o", str(tmp_path / "m.safetensors"), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "holds the same values" in line]
    assert lines == [
        f"grapheme-mm: warning: linguistic ({tmp_path / 't.txt'}): holds the same values in every row holding it; "
        "standardised by the mean of those rows, each of its inputs is 0, so its encoder learns nothing of the data (one "
        "constant embedding for every event); expected rows that differ, or leave the modality out"
    ]


def test_a_first_moment_no_gradients_give_is_refused_and_the_optimizer_left_as_it_was() -> None:
    """``load_optimizer_state`` took any finite moments: an ``exp_avg`` of
    1e30 beside ordinary second moments was loaded, and the next step moved
    that weight to 1.6e32 at any learning rate, without a word. Adam's
    moments keep ``|m| <= C sqrt(v)`` for any gradients (Cauchy-Schwarz);
    beyond it, refused naming the parameter; every state training makes
    (and one at the edge) still loads."""
    model = small_model()
    rng = np.random.default_rng(1)
    model.fit({"visual": rng.normal(size=(20, 4)), "auditory": rng.normal(size=(20, 3))}, epochs=3, progress=False)
    state = model.optimizer_state()
    model.load_optimizer_state(state)  # what training made loads
    name = next(iter(state["exp_avg"]))
    tampered = {**state, "exp_avg": {k: np.array(a, copy=True) for k, a in state["exp_avg"].items()}}
    tampered["exp_avg"][name].flat[0] = 1e30
    with pytest.raises(gm.InvalidValueError, match=rf"^state\['exp_avg'\]\[{name!r}\]: is 1e\+30 at index ") as err:
        model.load_optimizer_state(tampered)
    assert err.value.arg == "state['exp_avg']"
    after = model.optimizer_state()
    assert all(np.array_equal(after["exp_avg"][k], state["exp_avg"][k]) for k in state["exp_avg"])
    # second moments that underflow float32 beside a first moment that does not: loads
    tiny = {**state, "exp_avg": {k: np.zeros_like(a) for k, a in state["exp_avg"].items()},
            "exp_avg_sq": {k: np.zeros_like(a) for k, a in state["exp_avg_sq"].items()}}
    tiny["exp_avg"][name].flat[0] = 1e-20
    model.load_optimizer_state(tiny)


def test_the_first_moment_bound_is_what_the_worst_gradients_reach_in_float32() -> None:
    """The bound is tight: gradients growing as (β2/β1)^j reach it (in
    float32, a few millionths above the exact value); the slack covers that."""
    from grapheme_multimodal.learning import _FIRST_MOMENT_BOUND, _FIRST_MOMENT_SLACK

    b1, b2 = np.float32(gm._core.ADAM_BETA1), np.float32(gm._core.ADAM_BETA2)
    m = v = np.float32(0)
    ratio = gm._core.ADAM_BETA1 / gm._core.ADAM_BETA2
    for j in range(300):
        g = np.float32(ratio ** (299 - j))
        m, v = b1 * m + (np.float32(1) - b1) * g, b2 * v + (np.float32(1) - b2) * g * g
    reached = float(m) / np.sqrt(float(v))
    assert _FIRST_MOMENT_BOUND * 0.9999 < reached <= _FIRST_MOMENT_BOUND * _FIRST_MOMENT_SLACK[0]
