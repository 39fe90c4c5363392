"""The stub of the Rust extension stays honest without mypy: the names
``_core.pyi`` declares are exactly the extension's public names (module
level and per class), with the parameter names the extension takes; and,
where mypy is installed, ``mypy.stubtest`` agrees.

``tests/test_stub.py`` checks parameter kinds and defaults of every ``def``
the stub has; this file checks the other direction too (nothing of the
extension's is missing from the stub, nothing of the stub's is missing at
runtime), by parsing the stub with ``ast`` rather than by substring.

Also, without mypy: the public numbers of the evaluation, datasets,
stopping, plotting, anchors and averaging modules are annotated IntLike /
FloatLike and take np.int64 / np.float32 at run time; and what the model's
mixins declare for type checkers is what LearnableMultiModal has.
"""

import ast
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _core

STUB_PATH = Path(gm.__file__).parent / "_core.pyi"

# What every pyo3 class has at runtime and a stub need not repeat.
_CLASS_BOILERPLATE = {"__module__", "__doc__", "__new__", "__init__", "__dict__", "__weakref__", "__qualname__"}


def _stub_tree():
    return ast.parse(STUB_PATH.read_text(encoding="utf-8"))


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _stub_module_names(tree):
    """Names the stub declares at module level: ``def``s, classes,
    annotated and assigned names (private aliases left out)."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not _is_private(n) and n != "__all__"}


def _stub_classes(tree):
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _stub_members(class_node):
    """``{name: FunctionDef}`` of a stub class (properties included)."""
    return {item.name: item for item in class_node.body if isinstance(item, ast.FunctionDef)}


def _decorators(node):
    return {d.id for d in node.decorator_list if isinstance(d, ast.Name)}


def _stub_parameter_names(node):
    """The parameter names of a stub ``def``, ``self`` / ``cls`` left out."""
    a = node.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if names and names[0] in ("self", "cls") and "staticmethod" not in _decorators(node):
        names = names[1:]
    names += [p.arg for p in a.kwonlyargs]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return names


def _runtime_parameter_names(obj, drop_first):
    """The parameter names pyo3 shows (``__text_signature__``), or None
    where Python shows no signature (some on Python 3.9)."""
    try:
        signature = inspect.signature(obj)
    except ValueError:
        text = getattr(obj, "__text_signature__", None)
        if text is None:
            return None
        params = text[1:-1].replace("$self, ", "").replace("$self", "").replace("$cls, ", "").replace("$cls", "")
        signature = inspect.signature(eval(f"lambda {params}: None"))  # pyo3's text signature
        drop_first = False
    names = []
    for p in signature.parameters.values():
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        names.append(prefix + p.name)
    return names[1:] if drop_first else names


def _runtime_module_names():
    return {n for n in dir(_core) if not n.startswith("_")} | {n for n in _core.__all__ if n.startswith("__")}


def _runtime_class_members(cls):
    return {n for n in vars(cls) if not _is_private(n) and n not in _CLASS_BOILERPLATE}


def _module_and_class_problems(tree):
    problems = []
    stub_names = _stub_module_names(tree)
    runtime_names = _runtime_module_names()
    for name in sorted(stub_names - runtime_names):
        problems.append(f"_core.{name}: declared in _core.pyi but not in the extension")
    for name in sorted(runtime_names - stub_names):
        problems.append(f"_core.{name}: in the extension but missing from _core.pyi")
    for name, node in sorted(_stub_classes(tree).items()):
        if _is_private(name):
            continue  # stub-only helpers (a Protocol for the batch the core reads)
        cls = getattr(_core, name, None)
        if not isinstance(cls, type):
            continue  # reported above
        stub_members = {n for n in _stub_members(node) if n not in _CLASS_BOILERPLATE}
        runtime_members = _runtime_class_members(cls)
        for member in sorted(stub_members - runtime_members - {"__enter__", "__exit__"}):
            problems.append(f"_core.{name}.{member}: declared in _core.pyi but not in the extension")
        for member in sorted(runtime_members - stub_members):
            problems.append(f"_core.{name}.{member}: in the extension but missing from _core.pyi")
        for dunder in ("__enter__", "__exit__"):
            if (dunder in stub_members) != (dunder in vars(cls)):
                problems.append(f"_core.{name}.{dunder}: the stub and the extension disagree on whether it exists")
    return problems


def _parameter_problems(tree):
    problems = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and hasattr(_core, node.name):
            runtime = _runtime_parameter_names(getattr(_core, node.name), drop_first=False)
            stub = _stub_parameter_names(node)
            if runtime is not None and runtime != stub:
                problems.append(f"_core.{node.name}: the extension takes {runtime}, _core.pyi says {stub}")
        elif isinstance(node, ast.ClassDef) and isinstance(getattr(_core, node.name, None), type):
            cls = getattr(_core, node.name)
            for name, item in _stub_members(node).items():
                if "property" in _decorators(item):
                    if not inspect.isdatadescriptor(inspect.getattr_static(cls, name, None)):
                        problems.append(f"_core.{node.name}.{name}: a property in _core.pyi but not in the extension")
                    continue
                if name in ("__init__", "__new__"):
                    if name == "__init__" and "__init__" not in vars(cls) and _stub_parameter_names(item):
                        problems.append(
                            f"_core.{node.name}: the stub declares __init__ but the extension's constructor is "
                            "__new__ (mypy.stubtest reports every parameter)"
                        )
                        continue
                    runtime = _runtime_parameter_names(cls, drop_first=False)
                elif name not in vars(cls):
                    continue  # reported by the name check
                else:
                    raw = vars(cls)[name]
                    runtime = _runtime_parameter_names(getattr(cls, name), drop_first=not isinstance(raw, staticmethod))
                stub = _stub_parameter_names(item)
                if runtime is not None and runtime != stub:
                    problems.append(f"_core.{node.name}.{name}: the extension takes {runtime}, _core.pyi says {stub}")
    return problems


def test_stub_names_are_the_extension_names():
    """Every public name of the extension (functions, classes, constants)
    is declared in the stub, and every name the stub declares exists in the
    extension; per class too (methods and properties)."""
    problems = _module_and_class_problems(_stub_tree())
    assert not problems, "\n".join(problems)


def test_stub_parameter_names_are_the_extension_names():
    """Each declared function, method and constructor takes, by name and in
    order, the parameters the extension's ``__text_signature__`` shows."""
    problems = _parameter_problems(_stub_tree())
    assert not problems, "\n".join(problems)


def test_stub_all_is_the_extension_all():
    """``__all__`` in the stub is the extension's (``from _core import *``
    sees the same names under a type checker as at runtime)."""
    for node in _stub_tree().body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            assert sorted(ast.literal_eval(node.value)) == sorted(_core.__all__)
            return
    pytest.fail("_core.pyi declares no __all__")


def test_stub_only_helpers_are_private():
    """Aliases and protocols that exist only in the stub are ``_``-named:
    a public one would let ``from grapheme_multimodal._core import F32``
    pass a type checker and fail at import."""
    tree = _stub_tree()
    declared = _stub_module_names(tree)
    assert not declared - _runtime_module_names()


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s.replace("def fingerprints(", "def fingerprintz("), "_core.fingerprints: in the extension but missing"),
        (lambda s: s.replace("    def fuse(self, ", "    def fused(self, "), "_core.Model.fuse: in the extension but missing"),
        (lambda s: s.replace("def set_num_threads(n: int)", "def set_num_threads(count: int)"), "_core.set_num_threads: the extension takes"),
        (lambda s: s.replace("def max_threads() -> int: ...\n", ""), "_core.max_threads: in the extension but missing"),
        (lambda s: s.replace("    def __new__(\n        cls,", "    def __init__(\n        self,"), "the extension's constructor is __new__"),
        (lambda s: s.replace("    def edge_count(self) -> int: ...", "    def edge_counts(self) -> int: ..."), "_core.Graph.edge_counts: declared"),
        (lambda s: s + "\ndef not_there() -> None: ...\n", "_core.not_there: declared in _core.pyi but not in the extension"),
        (lambda s: s + "\nMISSING_CONSTANT: int\n", "_core.MISSING_CONSTANT: declared"),
    ],
    ids=["function-renamed", "method-renamed", "parameter-renamed", "function-removed", "init-for-new", "property-renamed",
         "function-added", "constant-added"],
)
def test_checks_catch_a_drifted_stub(edit, expected):
    """The checks above fail on a stub with an entry removed, renamed or
    added (run on an edited copy of the stub's text)."""
    original = STUB_PATH.read_text(encoding="utf-8")
    edited = edit(original)
    assert edited != original, "the edit did not apply: update this test with the stub"
    tree = ast.parse(edited)
    problems = _module_and_class_problems(tree) + _parameter_problems(tree)
    assert any(expected in p for p in problems), problems


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_stubtest_agrees():
    """``mypy.stubtest`` finds no mismatch between the compiled module and
    _core.pyi (types of defaults, kinds, ``__new__`` vs ``__init__``...)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "grapheme_multimodal._core", "--concise"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _type_checking_init_parameters(path, class_name):
    """``[(name, annotation)]`` of the ``__init__`` a class declares under
    ``if TYPE_CHECKING:`` (``self`` left out)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    guarded = [n for n in cls.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    init = next(f for g in guarded for f in g.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    return [(a.arg, ast.unparse(a.annotation)) for a in init.args.args[1:]]


def test_model_keywords_are_the_config_fields():
    """``LearnableMultiModal(**overrides)`` declares, for type checkers, an
    overload whose keywords are the config's parameters with their types
    (``**overrides: Any`` let ``embed_dimm=3`` or ``embed_dim="3"`` pass
    mypy and gave editors nothing to complete)."""
    from grapheme_multimodal import config as config_module
    from grapheme_multimodal import model as model_module

    expected = _type_checking_init_parameters(config_module.__file__, "LearnableMultiModalConfig")
    tree = ast.parse(Path(model_module.__file__).read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LearnableMultiModal")
    overloads = [
        f for f in cls.body
        if isinstance(f, ast.FunctionDef) and f.name == "__init__" and "overload" in _decorators(f)
    ]
    keywords = [f for f in overloads if f.args.kwonlyargs]
    assert len(keywords) == 1, "expected one overload of LearnableMultiModal.__init__ with the config's keywords"
    declared = [(a.arg, ast.unparse(a.annotation)) for a in keywords[0].args.kwonlyargs]
    assert declared == expected
    assert [f.name for f in _config_fields()] == [n for n, _ in expected]


def _config_fields():
    import dataclasses

    from grapheme_multimodal.config import LearnableMultiModalConfig

    return dataclasses.fields(LearnableMultiModalConfig)


def test_model_fit_declares_training_fit_options():
    """``LearnableMultiModal.fit`` declares, for type checkers, the options
    of :func:`grapheme_multimodal.training.fit` with their types and
    defaults (``**kwargs: Any`` let ``model.fit(x, epoch=5)`` pass mypy)."""
    from grapheme_multimodal import model as model_module
    from grapheme_multimodal import training as training_module

    def options(node):
        a = node.args
        return [(p.arg, ast.unparse(p.annotation), ast.unparse(d)) for p, d in zip(a.kwonlyargs, a.kw_defaults)]

    training_tree = ast.parse(Path(training_module.__file__).read_text(encoding="utf-8"))
    fit = next(n for n in training_tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    expected = [o for o in options(fit) if o[0] != "_steps"]
    model_tree = ast.parse(Path(model_module.__file__).read_text(encoding="utf-8"))
    cls = next(n for n in model_tree.body if isinstance(n, ast.ClassDef) and n.name == "LearnableMultiModal")
    guarded = [n for n in cls.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    declared = next(f for g in guarded for f in g.body if isinstance(f, ast.FunctionDef) and f.name == "fit")
    assert [p.arg for p in declared.args.args] == ["self", "data"]
    assert options(declared) == expected


# --- numpy scalars: what the annotations promise, the validators take --------------------

#: The modules whose public numbers are checked (those of the model, buffer and
#: config are checked by their signatures' IntLike, asserted in their own tests).
_NUMBER_MODULES = ("evaluation", "datasets", "stopping", "plotting", "anchors", "averaging")

#: Signatures that annotate plain ``int`` / ``float`` on purpose, with why.
_PLAIN_NUMBERS = {
    "evaluation.Anchors.__init__": "a result record: compute_anchors fills it with Python numbers",
    "evaluation.ModelScores.__init__": "a result record: evaluate_model fills it with Python numbers",
    "averaging.WeightAverage.__init__": "made by WeightAverage.start and updated, which store Python numbers",
}


def _public_callables():
    """``(qualified name, function)`` of every public function, and public
    method or ``__init__`` a public class defines, of :data:`_NUMBER_MODULES`."""
    for short in _NUMBER_MODULES:
        module = importlib.import_module(f"grapheme_multimodal.{short}")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{short}.{name}", obj
            elif inspect.isclass(obj):
                for attr in sorted(vars(obj)):
                    member = inspect.getattr_static(obj, attr)
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if inspect.isfunction(member) and (attr == "__init__" or not attr.startswith("_")):
                        yield f"{short}.{name}.{attr}", member


def _leaves(annotation):
    """The classes an annotation is made of: ``Optional[Sequence[IntLike]]`` ->
    ``{NoneType, int, np.integer, ...}``."""
    origin = typing.get_origin(annotation)
    found = {origin} if isinstance(origin, type) else set()
    if isinstance(annotation, type) and origin is None:
        found.add(annotation)
    for arg in typing.get_args(annotation):
        found |= _leaves(arg)
    return found


def _number_parameters(function):
    """``{parameter: True when numpy's scalars are annotated too}`` for every
    parameter whose annotation takes a Python ``int`` or ``float``."""
    names = {**vars(typing), "np": np, "os": os, **{n: getattr(gm, n) for n in gm.__all__}}
    hints = typing.get_type_hints(function, localns=names)
    found = {}
    for name, annotation in hints.items():
        leaves = _leaves(annotation)
        if name != "return" and leaves & {int, float}:
            found[name] = (int not in leaves or np.integer in leaves) and (float not in leaves or np.floating in leaves)
    return found


def test_public_numbers_are_annotated_numpy_scalars_too():
    """``int`` alone refused np.int64 to mypy and pyright (numpy's stubs make
    it no int), and ``float`` np.float32, in calls that run: every public
    number of these modules is ``IntLike`` / ``FloatLike`` unless listed."""
    plain = {name: sorted(p for p, ok in _number_parameters(f).items() if not ok) for name, f in _public_callables()}
    plain = {name: params for name, params in plain.items() if params}
    assert sorted(set(plain) - set(_PLAIN_NUMBERS)) == [], plain
    assert sorted(set(_PLAIN_NUMBERS) - set(plain)) == []  # a stale exception


class _Identity:
    """A ViewEmbedder of views of one width: the views themselves."""

    def embed_views(self, views):
        return dict(views)

    def embed_fused(self, views):
        return np.mean(list(views.values()), axis=0)


@pytest.fixture(scope="module")
def scalar_context():
    from grapheme_multimodal import datasets, evaluation

    rng = np.random.default_rng(0)
    views = {"a": rng.normal(size=(40, 18)).astype(np.float32), "b": rng.normal(size=(40, 18)).astype(np.float32)}
    data = datasets.MultipleFeatures(views=views, labels=np.repeat(np.arange(4), 10))
    train, test = datasets.train_test_split(data, test_size=0.25, seed=0)
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, encoder_hidden=(4,))
    embedder = evaluation.ModelEmbedder(model, {"a": gm.Modality.VISUAL, "b": gm.Modality.AUDITORY})
    mice = datasets.Nutrimouse(
        views={"gene": rng.normal(size=(20, 4)).astype(np.float32), "lipid": rng.normal(size=(20, 4)).astype(np.float32)},
        genotype=np.arange(20) % 2, diet=np.arange(20) % 5, genotype_names=("ppar", "wt"),
        diet_names=("coc", "fish", "lin", "ref", "sun"), feature_names={"gene": tuple("abcd"), "lipid": tuple("wxyz")})
    return dict(
        views=views, data=data, train=train, test=test, standardized=datasets.standardize(train.views, test.views),
        model=model, embedder=embedder, mice=mice,
        anchors=evaluation.compute_anchors(train, test, cca_components=3, multiview=[], k=3),
        scores=evaluation.evaluate_model(embedder, train, test, k=3, seed=0, two_views=False),
    )


def _ev():
    from grapheme_multimodal import evaluation
    return evaluation


def _ds():
    from grapheme_multimodal import datasets
    return datasets


def _fit_with_stopping(c, **kw):
    from grapheme_multimodal.stopping import fit_with_stopping

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2)
    inputs = {gm.Modality.VISUAL: c["views"]["a"], gm.Modality.AUDITORY: c["views"]["b"]}
    return fit_with_stopping(model, inputs, monitor="loss", batch_size=16, **kw)


def _plot_history(c, **kw):
    from grapheme_multimodal.plotting import plot_history

    pytest.importorskip("matplotlib")
    with tempfile.TemporaryDirectory() as folder:
        plot_history([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}], os.path.join(folder, "h.png"), **kw)


def _weight_average(c, **kw):
    from grapheme_multimodal.averaging import WeightAverage

    return WeightAverage.start(**kw).updated(c["model"].state_dict())


#: For each signature with IntLike / FloatLike parameters: valid Python values
#: of them (given to the call as np.int64 / np.float32) and the call.
_SCALAR_CALLS = {
    "evaluation.ExactCCA.__init__": (
        {"n_components": 2, "reg": 1e-6},
        lambda c, **kw: _ev().ExactCCA(**kw).fit(c["views"]["a"], c["views"]["b"]).transform(c["views"]["a"], c["views"]["b"])),
    "evaluation.ModelEmbedder.hidden_features": ({"layer": -1}, lambda c, **kw: c["embedder"].hidden_features(c["views"], **kw)),
    "evaluation.EnsembleEmbedder.hidden_features": (
        {"layer": -1}, lambda c, **kw: _ev().EnsembleEmbedder([c["embedder"]] * 2).hidden_features(c["views"], **kw)),
    "evaluation.binder_auc": ({"seed": 3}, lambda c, **kw: _ev().binder_auc(lambda a, b: (a * b).sum(1), c["views"], **kw)),
    "evaluation.compare": ({"tolerance": 0.02}, lambda c, **kw: _ev().compare([c["scores"]], c["anchors"], **kw)),
    "evaluation.compute_anchors": (
        {"cca_components": 3, "multiview_components": 2, "k": 3},
        lambda c, **kw: _ev().compute_anchors(c["train"], c["test"], multiview=[], **kw)),
    "evaluation.evaluate_model": (
        {"k": 3, "seed": 3}, lambda c, **kw: _ev().evaluate_model(c["embedder"], c["train"], c["test"], two_views=False, **kw)),
    # one view: no pair to fit, so no cca-zoo needed; n_components is checked all the same
    "evaluation.multiview_cca_retrieval": (
        {"n_components": 2},
        lambda c, **kw: _ev().multiview_cca_retrieval(
            "MCCA", {"a": c["standardized"][0]["a"]}, {"a": c["standardized"][1]["a"]}, c["test"].labels, **kw)),
    "evaluation.nutrimouse_cv": (
        {"seeds": [0], "n_repeats": 1, "n_splits": 2, "random_state": 3},
        lambda c, **kw: _ev().nutrimouse_cv(lambda views, seed: _Identity(), c["mice"], anchors=False, **kw)),
    "evaluation.pairwise_cca_retrieval": (
        {"n_components": 2},
        lambda c, **kw: _ev().pairwise_cca_retrieval(c["standardized"][0], c["standardized"][1], c["test"].labels, **kw)),
    "datasets.train_test_indices": ({"test_size": 0.25, "seed": 3}, lambda c, **kw: _ds().train_test_indices(c["data"].labels, **kw)),
    "datasets.train_test_split": ({"test_size": 0.25, "seed": 3}, lambda c, **kw: _ds().train_test_split(c["data"], **kw)),
    "stopping.cv_folds_for": (
        {"n_rows": 40, "validation_fraction": 0.25, "min_validation_rows": 32, "folds": 3},
        lambda c, **kw: importlib.import_module("grapheme_multimodal.stopping").cv_folds_for(**kw)),
    "stopping.fit_with_stopping": (
        {"validation_fraction": 0.25, "patience": 1, "seed": 3, "cv_folds": 2, "min_validation_rows": 32, "epochs": 2},
        _fit_with_stopping),
    "plotting.plot_history": ({"best_epoch": 2}, _plot_history),
    "anchors.knn_anchors": (
        {"k": 3}, lambda c, **kw: importlib.import_module("grapheme_multimodal.anchors").knn_anchors(c["train"], c["test"], **kw)),
    "anchors.cca_anchor": (
        {"n_components": 2},
        lambda c, **kw: importlib.import_module("grapheme_multimodal.anchors").cca_anchor(c["train"], c["test"], "a", "b", **kw)),
    "averaging.WeightAverage.start": ({"decay": 0.5}, _weight_average),
    "averaging.resume": ({"decay": 0.5}, lambda c, **kw: importlib.import_module("grapheme_multimodal.averaging").resume(
        gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2), **kw)),
}


def _numpy_scalar(value):
    if isinstance(value, list):
        return [_numpy_scalar(v) for v in value]
    return np.float32(value) if isinstance(value, float) else np.int64(value)


def test_every_numpy_scalar_annotation_has_a_call():
    """Each parameter annotated IntLike / FloatLike is given a numpy scalar
    below; a new one (or one annotated so without a call) fails here."""
    annotated = {(name, p) for name, f in _public_callables() for p, ok in _number_parameters(f).items() if ok}
    called = {(name, p) for name, (values, _) in _SCALAR_CALLS.items() for p in values}
    assert sorted(annotated - called) == [] and sorted(called - annotated) == []


@pytest.mark.parametrize("name", sorted(_SCALAR_CALLS))
def test_numpy_scalars_run_where_annotated(name, scalar_context):
    """np.int64 / np.float32 of valid values are taken where the annotation
    says IntLike / FloatLike, as scikit-learn takes them everywhere."""
    values, call = _SCALAR_CALLS[name]
    call(scalar_context, **{p: _numpy_scalar(v) for p, v in values.items()})


# --- the mixins' declarations are the model's ------------------------------------------


def _mixin_declarations(module_name, class_name):
    """``(attributes {name: annotation source}, methods [FunctionDef])`` that
    the mixin declares for type checkers: class-level annotations without a
    value, and the defs under ``if TYPE_CHECKING:`` in its body."""
    module = importlib.import_module(f"grapheme_multimodal.{module_name}")
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    attributes = {n.target.id: ast.unparse(n.annotation) for n in cls.body
                  if isinstance(n, ast.AnnAssign) and n.value is None and isinstance(n.target, ast.Name)}
    guarded = [n for n in cls.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    methods = [f for g in guarded for f in g.body if isinstance(f, ast.FunctionDef)]
    return attributes, methods


def _conforms(value, annotation):
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        return isinstance(value, tuple) and len(value) == len(args) and all(map(_conforms, value, args))
    return isinstance(value, annotation)


def _normal(source):
    return ast.unparse(ast.parse(source, mode="eval"))


def _stub_signature(node):
    a = node.args
    params = [(p.arg, "POSITIONAL_OR_KEYWORD") for p in a.posonlyargs + a.args] + [(p.arg, "KEYWORD_ONLY") for p in a.kwonlyargs]
    annotations = [p.annotation for p in a.posonlyargs + a.args + a.kwonlyargs]
    positional_defaults = [None] * (len(a.posonlyargs + a.args) - len(a.defaults)) + list(a.defaults)
    defaults = positional_defaults + list(a.kw_defaults)
    return [(name, kind, _normal(ast.unparse(t)) if t is not None else None, d is not None)
            for (name, kind), t, d in zip(params, annotations, defaults)], _normal(ast.unparse(node.returns))


def _runtime_signature(function):
    sig = inspect.signature(function)
    params = [(p.name, p.kind.name, _normal(p.annotation) if p.annotation is not p.empty else None, p.default is not p.empty)
              for p in sig.parameters.values()]
    return params, _normal(sig.return_annotation)


@pytest.mark.parametrize("module_name, class_name", [("learning", "LearningMixin"), ("experience", "ExperienceMixin")])
def test_mixin_declarations_are_the_models(module_name, class_name):
    """What a mixin declares for mypy (the model's attributes and methods it
    uses) is what LearnableMultiModal has: a model's attribute is of the type
    declared, a method has the model's signature (the stub's defaults are ``...``)."""
    from grapheme_multimodal._locking import ModelLock
    from grapheme_multimodal.buffer import ExperienceBuffer
    from grapheme_multimodal.config import LearnableMultiModalConfig

    attributes, methods = _mixin_declarations(module_name, class_name)
    assert attributes and methods
    names = {"_CoreModel": _core.Model, "LearnableMultiModalConfig": LearnableMultiModalConfig, "ModelLock": ModelLock,
             "ExperienceBuffer": ExperienceBuffer, "Tuple": typing.Tuple}
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2)
    for name, annotation in attributes.items():
        value = getattr(model, name)
        assert _conforms(value, eval(annotation, names)), f"{class_name}.{name}: {annotation}, the model's is {value!r:.80}"
    for node in methods:
        actual = inspect.unwrap(getattr(gm.LearnableMultiModal, node.name))
        assert _stub_signature(node) == _runtime_signature(actual), f"{class_name}.{node.name}"
