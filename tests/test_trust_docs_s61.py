"""What a reader copies from ``help()`` and ``examples/`` runs (session 61).

``tests/test_docs_honest.py`` runs the ``>>>`` examples of the public
modules, but :class:`doctest.DocTestFinder` only looks at objects defined
in the module it is given: a class a public package re-exports from a
private module (``evaluation.ExactCCA``, defined in ``evaluation/_cca.py``)
had its examples, which ``help(evaluation.ExactCCA)`` shows, run nowhere.
``examples/quickstart.py``, the README's "smaller first run", was run by no
test either.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import inspect
import io
import re
import runpy
import sys
from pathlib import Path
from typing import Iterator, List, Tuple

from test_docs_honest import _public_modules

ROOT = Path(__file__).resolve().parent.parent


def reexported_from_private_modules() -> Iterator[Tuple[str, object]]:
    """``(public name, object)`` for every class or function a public
    module exports (``__all__``) that is defined in a private module of the
    package: the objects whose docstrings ``help()`` shows under a public
    name but which a doctest run over the public modules skips."""
    seen = set()
    for name in _public_modules():
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in seen:
                continue
            home = getattr(obj, "__module__", "") or ""
            if home.startswith("grapheme_multimodal.") and any(p.startswith("_") for p in home.split(".")[1:]):
                seen.add(id(obj))
                yield f"{name}.{attr}", obj


def run_examples(public_name: str, obj: object) -> Tuple[int, List[str]]:
    """Runs the ``>>>`` examples of ``obj`` (and of its methods) in the
    globals of the module that defines it; returns how many ran and a report
    of each failure."""
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    home = sys.modules[obj.__module__]
    report = io.StringIO()
    attempted = 0
    for test in finder.find(obj, public_name, module=home, globs=dict(vars(home))):
        if test.examples:
            attempted += runner.run(test, out=report.write).attempted
    failures = [report.getvalue()] if runner.failures else []
    return attempted, failures


def test_examples_of_objects_reexported_from_private_modules_run():
    """``help(evaluation.ExactCCA)`` shows an example with its output; it
    must print that output (it was checked by no test)."""
    ran, failures = 0, []
    names = []
    for public_name, obj in reexported_from_private_modules():
        attempted, failed = run_examples(public_name, obj)
        ran += attempted
        failures += failed
        names.append(public_name)
    assert "grapheme_multimodal.evaluation.ExactCCA" in names
    assert not failures, "".join(failures)
    assert ran >= 6  # ExactCCA's example: a broken finder would run none


def test_a_broken_example_in_a_private_module_is_caught(monkeypatch):
    """The check fails for a re-exported object whose example no longer
    prints what it shows (as it would after a change of the code)."""
    from grapheme_multimodal.evaluation import ExactCCA

    doc = ExactCCA.__doc__
    assert "array([1.  , 0.99, 0.12])" in doc
    monkeypatch.setattr(ExactCCA, "__doc__", doc.replace("array([1.  , 0.99, 0.12])", "array([1.  , 0.5 , 0.12])"))
    attempted, failures = run_examples("grapheme_multimodal.evaluation.ExactCCA", ExactCCA)
    assert attempted >= 6 and failures and "0.5" in failures[0]


def test_quickstart_example_runs_and_prints_what_it_says():
    """``python examples/quickstart.py``: a unit fused embedding, one
    binding per pair of its three modalities, attention over the 7
    modalities summing to 1 (0 for the absent ones), and batched attention
    rows that sum to 1."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    printed = out.getvalue()
    assert re.search(r"^fused embedding: \(64,\) norm 1\.0$", printed, re.M), printed
    assert len(re.findall(r"^binding \w+ -> \w+: 0\.\d{3}$", printed, re.M)) == 3, printed
    weights = {m: float(w) for m, w in re.findall(r"^attention (\w+): (\d\.\d{3})$", printed, re.M)}
    assert len(weights) == 7 and abs(sum(weights.values()) - 1) < 0.003, weights
    assert all(weights[m] == 0 for m in ("tactile", "proprioceptive", "action", "abstract")), weights
    assert "batched: (4096, 7, 64) (4096, 64) attention rows sum to [1. 1. 1.]" in printed, printed
