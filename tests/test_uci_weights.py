"""uci.TrainingSettings(weights=...) is checked when made, its errors naming
``weights`` (what was given, what was expected): fit named them
"objectives", an argument the settings do not have. The estimator and the
CLI, which pass their own ``objectives`` / ``--objectives`` on as
``weights``, name theirs."""

import dataclasses

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import uci


@pytest.mark.parametrize("weights, error, message", [
    ({"contrastiv": 1.0}, gm.InvalidValueError, r"^weights: unknown objectives \['contrastiv'\]"),
    ({"contrastive": -1.0}, gm.InvalidValueError, r"^weights\['contrastive'\]: expected a finite number >= 0, got -1.0"),
    ({"contrastive": float("nan")}, gm.InvalidValueError, r"^weights\['contrastive'\]: expected a finite number"),
    ({"contrastive": "x"}, TypeError, r"^weights\['contrastive'\]: expected a number, got str"),
    ({"contrastive": 0.0}, gm.InvalidValueError, r"^weights: every weight is 0 \({'contrastive': 0.0}\); expected at least one"),
    ([1, 2], TypeError, r"^weights: expected None or a mapping objective name -> float, got list"),
    ({"seed_consistency": 1.0}, gm.InvalidValueError, r"^weights: seed_consistency needs"),
])
def test_training_settings_weights_errors_name_weights(weights, error, message):
    with pytest.raises(error, match=message) as caught:
        uci.TrainingSettings(weights=weights)
    if isinstance(caught.value, gm.GraphemeError):
        assert caught.value.arg == "weights"
    uci.TrainingSettings(weights={"contrastive": 1.0, "binding": 0.0})  # valid: made
    with pytest.raises(error, match=message):  # replace() checks too
        dataclasses.replace(uci.TrainingSettings(), weights=weights)


def test_the_estimator_and_the_cli_name_their_own_argument(tmp_path, capsys):
    from grapheme_multimodal.cli import main
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    Xs = [np.random.default_rng(0).normal(size=(20, 3)), np.random.default_rng(1).normal(size=(20, 2))]
    with pytest.raises(gm.InvalidValueError, match=r"^objectives\['contrastive'\]: expected a finite number") as caught:
        MultimodalEmbedder(objectives={"contrastive": -1.0}, epochs=1).fit(Xs)
    assert caught.value.arg == "objectives"
    with pytest.raises(gm.InvalidValueError, match=r"^objectives: every weight is 0"):
        MultimodalEmbedder(objectives={"contrastive": 0}, epochs=1).fit(Xs)
    np.save(tmp_path / "a.npy", Xs[0])
    np.save(tmp_path / "b.npy", Xs[1])
    code = main(["train", "-m", f"visual={tmp_path / 'a.npy'}", "-m", f"auditory={tmp_path / 'b.npy'}",
                 "-o", str(tmp_path / "m.safetensors"), "--epochs", "1", "--objectives", "contrastive=0"])
    err = capsys.readouterr().err
    assert code != 0 and "--objectives: every weight is 0" in err, err
