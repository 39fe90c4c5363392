"""An independent hostile check of the evaluation side (s53): what it found.

compare() counted a NaN figure (a failed run, a hand-edited results file) as
a target missed, without a word, and uci_targets.py stopped with a traceback
on a split whose split_random_state or n_test was no int.
"""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

from conftest import REPO, load_script

pytest.importorskip("sklearn")

RESULTS = REPO / "benchmarks" / "results"


# ------------------------------------------------------------------ compare: figures that are no numbers
def _runs_and_anchors(**changes):
    from grapheme_multimodal import evaluation

    figures = {m: 0.5 for m in evaluation.RETRIEVAL_METRICS}
    run = dict(retrieval={"a->b": dict(figures), "b->a": dict(figures)}, fused_knn=0.9, fused_probe=0.9,
               two_view_knn={"a+b": 0.9}, binder_auc=0.9)
    anchors = dict(cca={"a->b": dict(figures), "b->a": dict(figures)}, raw_knn=0.8, raw_probe=0.8,
                   raw_two_view_knn={"a+b": 0.8})
    for key, value in changes.items():
        (anchors if key.startswith("anchors.") else run)[key.split(".")[-1]] = value
    return [evaluation.ModelScores(**run)], evaluation.Anchors(**anchors)


@pytest.mark.parametrize("changes, where", [
    ({"fused_knn": math.nan}, "runs[0].fused_knn"),
    ({"fused_probe": math.inf}, "runs[0].fused_probe"),
    ({"binder_auc": math.nan}, "runs[0].binder_auc"),
    ({"two_view_knn": {"a+b": math.nan}}, "runs[0].two_view_knn['a+b']"),
    ({"retrieval": {"a->b": {"class_precision_at_1": math.nan, "instance_recall_at_1": 0.5},
                    "b->a": {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.5}}},
     "runs[0].retrieval['a->b']['class_precision_at_1']"),
    ({"anchors.raw_knn": math.nan}, "anchors.raw_knn"),
    ({"anchors.raw_two_view_knn": {"a+b": -math.inf}}, "anchors.raw_two_view_knn['a+b']"),
    ({"anchors.cca": {"a->b": {"class_precision_at_1": 0.5, "instance_recall_at_1": math.nan},
                      "b->a": {"class_precision_at_1": 0.5, "instance_recall_at_1": 0.5}}},
     "anchors.cca['a->b']['instance_recall_at_1']"),
])
def test_compare_refuses_a_figure_of_nan_or_inf(changes, where):
    """NaN compared false with every bound: a run's NaN counted as a target
    missed, an anchor's NaN made the figures beside it fall short (a NaN
    raw_knn: "fused 5-NN" missed), and uci_targets.py printed "5-NN nan" and
    a total, without a word."""
    from grapheme_multimodal import NonFiniteError, evaluation

    runs, anchors = _runs_and_anchors(**changes)
    with pytest.raises(NonFiniteError, match=f"^{__import__('re').escape(where)}: expected a finite figure") as info:
        evaluation.compare(runs, anchors)
    assert info.value.arg == where.split(".")[0].split("[")[0]


def test_compare_refuses_a_figure_that_is_no_number():
    from grapheme_multimodal import evaluation

    for value in (True, "0.9", None):
        runs, anchors = _runs_and_anchors(fused_knn=value)
        with pytest.raises(TypeError, match=r"^runs\[0\]\.fused_knn: expected a figure"):
            evaluation.compare(runs, anchors)
    runs, anchors = _runs_and_anchors(retrieval={"a->b": {"class_precision_at_1": 0.5}, "b->a": {}})
    with pytest.raises(ValueError, match=r"^runs\[0\]\.retrieval\['a->b'\]: expected a mapping with the figures"):
        evaluation.compare(runs, anchors)  # was a bare KeyError: 'instance_recall_at_1'
    runs, anchors = _runs_and_anchors(binder_auc=None)  # a model without a binder: still compared
    assert evaluation.compare(runs, anchors)["binder_auc"] is None


# ------------------------------------------------------------------ uci_targets.py: splits that are no ints
@pytest.fixture(scope="module")
def targets():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        yield types.SimpleNamespace(main=load_script("benchmarks/uci_targets.py").main)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def _edited(tmp_path: Path, edit) -> str:
    doc = json.loads((RESULTS / "uci-multifeature.json").read_text())
    edit(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))  # NaN and Infinity as Python's json writes and reads them
    return str(path)


def _usage_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def _split(doc, **changes):
    doc["uci_multiple_features"][0].update(changes)


def _second_split(doc):
    doc["uci_multiple_features"].append({**doc["uci_multiple_features"][0], "split_random_state": "1"})


def _nan_run(doc):
    doc["uci_multiple_features"][0]["runs"][1]["fused_knn"] = math.nan


@pytest.mark.parametrize("edit, flags, message", [
    (lambda d: _split(d, split_random_state=[0]), [], "uci_multiple_features[0]: split_random_state is [0]; expected an int"),
    (_second_split, [], "]: split_random_state is '1'; expected an int"),  # sorted(): '<' str, int
    (lambda d: _split(d, n_test=math.inf), ["--shortfalls"], "uci_multiple_features[0]: n_test is inf; expected a positive int"),
    (_nan_run, [], "split 0: not the figures benchmarks/uci_multifeature.py writes "
                   "(NonFiniteError: runs[1].fused_knn: expected a finite figure, got nan)"),
])
def test_uci_targets_names_a_split_it_cannot_score(targets, capsys, tmp_path, edit, flags, message):
    """Tracebacks before (unhashable type: 'list'; '<' not supported between
    'str' and 'int'; OverflowError of round(inf)), and a NaN run's figure
    printed as "5-NN nan" and counted as a target missed."""
    err = _usage_error(targets.main, [_edited(tmp_path, edit), *flags], capsys)
    assert ": error: " in err and err.endswith(message)
