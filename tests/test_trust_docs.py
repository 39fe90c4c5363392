"""The docs as a user reads them (session 49): what ``help()``, the README
and ``docs/*.md`` promise is what the code does.

``tests/test_docs_honest.py`` checks that every public callable has a
docstring and that the README's method tables give the real call forms;
this file adds what a reader also relies on: the parameters a docstring's
``Args:`` section names exist, every public parameter and return value is
annotated, the README's bold call forms (``distributed.embed_dataset(...)``)
say which arguments are keyword-only, the docs' links lead somewhere, and
the exception the package exports for an unfitted estimator is the one its
estimator raises.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Iterator, List, Tuple

import numpy as np
import pytest

import grapheme_multimodal as gm

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def _public_modules() -> List[str]:
    names = ["grapheme_multimodal"]
    for info in pkgutil.walk_packages(gm.__path__, "grapheme_multimodal."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        if info.name == "grapheme_multimodal.distributed" and importlib.util.find_spec("ray") is None:
            continue  # needs Ray, which the [ray] extra installs
        names.append(info.name)
    return names


def _public_callables() -> Iterator[Tuple[str, object, object]]:
    """``(qualified name, function, what a user calls)`` for every function
    and class in a public module's ``__all__`` and every public method of
    those classes (inherited ones included: ``help()`` shows them), each
    once. The third item is the bound or class-level callable, whose
    signature is what the user sees (``model.fit`` shows ``training.fit``'s
    options less ``model``)."""
    seen = set()
    for name in _public_modules():
        module = importlib.import_module(name)
        for attr in module.__all__:
            obj = getattr(module, attr)
            if inspect.isfunction(obj):
                found = [(f"{name}.{attr}", obj, obj)]
            elif inspect.isclass(obj):
                found = [(f"{name}.{attr}", obj, obj)]
                for member, _ in inspect.getmembers(obj):
                    if member.startswith("_"):
                        continue
                    raw = inspect.getattr_static(obj, member)
                    func = getattr(raw, "__func__", raw)
                    if inspect.isfunction(func) and func.__module__.startswith("grapheme_multimodal"):
                        found.append((f"{name}.{attr}.{member}", func, getattr(obj, member)))
            else:
                continue
            for entry in found:
                if id(entry[1]) not in seen:
                    seen.add(id(entry[1]))
                    yield entry


def _documented_arguments(doc: str) -> List[str]:
    """The names an ``Args:`` section of a Google-style docstring lists:
    its entries are the lines at the section's first indentation
    (``name:``, ``name (type):``, ``a, b:``); deeper lines continue them."""
    lines = doc.splitlines()
    names: List[str] = []
    for k, line in enumerate(lines):
        if line.strip() not in ("Args:", "Arguments:", "Parameters:"):
            continue
        section_indent = len(line) - len(line.lstrip())
        entry_indent = None
        for entry in lines[k + 1:]:
            if not entry.strip():
                continue
            indent = len(entry) - len(entry.lstrip())
            if indent <= section_indent:
                break
            entry_indent = indent if entry_indent is None else entry_indent
            if indent == entry_indent:
                listed = re.match(r"\s*(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?:\([^)]*\))?\s*:", entry)
                assert listed, f"an Args: entry that names no argument: {entry.strip()!r}"
                names += [n.strip().lstrip("*") for n in listed.group(1).split(",")]
    return names


def test_documented_arguments_are_the_signatures():
    # LearnableMultiModal.fit (help(model.fit)) documented ``_steps``, an argument of training.fit that the
    # method does not take: its signature hides it, the copied docstring did not
    wrong, checked = [], 0
    for name, func, called in _public_callables():
        documented = _documented_arguments(inspect.getdoc(func) or "")
        if not documented:
            continue
        try:
            params = inspect.signature(called).parameters
        except (TypeError, ValueError):
            continue
        wrong += [f"{name}: documents {arg!r}, takes {list(params)}" for arg in documented if arg not in params]
        checked += 1
    assert not wrong, "\n".join(wrong)
    assert checked >= 10


def test_model_fit_help_shows_only_what_it_takes():
    doc = gm.LearnableMultiModal.fit.__doc__
    assert "_steps" not in doc and "_steps" not in inspect.signature(gm.LearnableMultiModal.fit).parameters
    from grapheme_multimodal import training

    assert "_steps: internal" in training.fit.__doc__  # the function that takes it still says what it is


def test_public_callables_are_annotated():
    """``py.typed`` promises type checkers hints on the public API."""
    missing = []
    for name, func, _ in _public_callables():
        if inspect.isclass(func):
            continue
        sig = inspect.signature(func)
        bare = [p for p, v in sig.parameters.items() if p not in ("self", "cls") and v.annotation is inspect.Parameter.empty]
        if bare:
            missing.append(f"{name}: {bare}")
        if sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{name}: return")
    assert not missing, f"public callables without type hints: {missing}"


# -- the README's bold call forms ----------------------------------------------------------------------------------

_BOLD_CALL = re.compile(r"\*\*`([\w.]+)\(([^`]*)\)`\*\*")


def _resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    if not module:
        return getattr(gm.LearnableMultiModal, attr)
    if module == "distributed":
        pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
    return getattr(importlib.import_module(f"grapheme_multimodal.{module}"), attr)


def _call_form_problems(shown_name: str, shown_args: str, real) -> List[str]:
    shown = ast.parse(f"def f({shown_args}): pass").body[0].args
    sig = inspect.signature(real)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    problems = []
    for i, arg in enumerate(shown.args):
        if i >= len(params) or params[i].name != arg.arg or params[i].kind != params[i].POSITIONAL_OR_KEYWORD:
            problems.append(f"{shown_name}: shows {arg.arg!r} as argument {i}, the function takes {sig}")
    for arg in shown.kwonlyargs:
        param = sig.parameters.get(arg.arg)
        if param is None or param.kind != param.KEYWORD_ONLY:
            problems.append(f"{shown_name}: shows {arg.arg!r} keyword-only, the function takes {sig}")
    if shown.kwarg is not None and not any(p.kind == p.VAR_KEYWORD and p.name == shown.kwarg.arg for p in params):
        problems.append(f"{shown_name}: shows **{shown.kwarg.arg}, the function takes {sig}")
    defaults = dict(zip([a.arg for a in shown.args][len(shown.args) - len(shown.defaults):], shown.defaults))
    defaults.update({a.arg: d for a, d in zip(shown.kwonlyargs, shown.kw_defaults) if d is not None})
    for arg, default in defaults.items():
        try:
            value = ast.literal_eval(default)
        except ValueError:  # a placeholder (num_workers=N), not a default
            continue
        param = sig.parameters.get(arg)
        if param is None or param.default != value:
            problems.append(f"{shown_name}: shows {arg}={ast.unparse(default)}, the function takes {sig}")
    return problems


def _bold_call_forms():
    for path in DOCS:
        text = " ".join(path.read_text(encoding="utf-8").split())
        for match in _BOLD_CALL.finditer(text):
            try:
                ast.parse(f"def f({match.group(2)}): pass")
            except SyntaxError:  # fit(data, ...): a name, not a call form
                continue
            yield pytest.param(match.group(1), match.group(2), id=f"{path.name}:{match.group(1)}")


@pytest.mark.parametrize("name, args", list(_bold_call_forms()))
def test_bold_call_forms_are_the_real_signatures(name, args):
    # README: ``distributed.embed_dataset(ds, checkpoint, columns, batch_size=1024, ...)`` read as if
    # ``embed_dataset(ds, path, columns, 4096)`` set the batch size: it is keyword-only (TypeError)
    assert not _call_form_problems(name, args, _resolve(name))


def test_call_form_check_catches_a_positional_keyword_only_argument():
    def embed(ds, checkpoint, *, batch_size=1024, outputs=("fused",)):
        """A stand-in."""

    assert _call_form_problems("embed", "ds, checkpoint, batch_size=1024", embed)
    assert _call_form_problems("embed", "ds, checkpoint, *, batch_size=512", embed)
    assert not _call_form_problems("embed", 'ds, checkpoint, *, batch_size=1024, outputs=("fused",)', embed)


# -- links ------------------------------------------------------------------------------------------------------------


def _anchors(path: Path) -> set:
    """GitHub's anchors of a markdown file's headings (outside code fences)."""
    found, counts, fenced = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6} (.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def test_doc_links_lead_somewhere():
    """A link to a file of the repository, or to a section, that a rename
    or a reworded heading left dangling."""
    broken, checked = [], 0
    for path in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file) if file else path
            checked += 1
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such section)")
    assert not broken, "\n".join(broken)
    assert checked >= 10


def test_link_check_finds_a_reworded_heading(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# The recipe: defaults\n\n## Two words\n\n```python\n# not a heading\n```\n", encoding="utf-8")
    assert _anchors(page) == {"the-recipe-defaults", "two-words"}


# -- the estimator's unfitted error -----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda est: est.transform([np.ones((3, 2)), np.ones((3, 2))]),
    lambda est: est.get_feature_names_out(),
], ids=["transform", "get_feature_names_out"])
def test_an_unfitted_estimator_raises_the_packages_not_fitted_error(call):
    # was scikit-learn's own NotFittedError: ``except gm.NotFittedError`` (the package's, which its docstring
    # says is raised for "a method that needs a fitted estimator called before fit", as ExactCCA raises it)
    # missed MultimodalEmbedder's
    from sklearn.exceptions import NotFittedError as ScikitLearnNotFittedError

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    with pytest.raises(gm.NotFittedError, match=r"MultimodalEmbedder: not fitted yet; call fit\(Xs\)") as err:
        call(MultimodalEmbedder())
    assert isinstance(err.value, ScikitLearnNotFittedError)  # scikit-learn's checks and except clauses still match
    assert isinstance(err.value, ValueError) and isinstance(err.value, AttributeError)


# -- docs/objectives.md: the state_dict's order ----------------------------------------------------------------------

_GROUPS = {"encoders": ("encoder",), "head": ("head",), "fusion": ("fusion",), "binder": ("binder",),
           "attention": ("attention",), "temperatures": ("contrastive", "fused_contrastive"),
           "reconstruction decoders": ("reconstruction",)}


def test_objectives_md_gives_the_state_dicts_order():
    # the sentence predated the reconstruction decoders, which come last: a reader matching tensors by
    # position (an optimizer's flat buffer, a converter) took the order it gave for the whole
    text = " ".join((ROOT / "docs" / "objectives.md").read_text(encoding="utf-8").split())
    listed = re.search(r"Order in `state_dict`: ([^.(]*)", text).group(1)
    shown = [p for group in listed.split(",") for p in _GROUPS[group.strip()]]
    model = gm.LearnableMultiModal(encoder_hidden=(8,), encoder_output_dim=16, shared_head=(16, 64), encoder_skip=True,
                                   learnable_temperature=True, reconstruction_decoders=True)
    real = []
    for name in model.state_dict():
        prefix = name.split(".")[0]
        if not real or real[-1] != prefix:
            real.append(prefix)
    assert real == shown
