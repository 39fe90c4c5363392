"""The stub of the Rust extension stays honest without mypy: the names
``_core.pyi`` declares are exactly the extension's public names (module
level and per class), with the parameter names the extension takes; and,
where mypy is installed, ``mypy.stubtest`` agrees.

``tests/test_stub.py`` checks parameter kinds and defaults of every ``def``
the stub has; this file checks the other direction too (nothing of the
extension's is missing from the stub, nothing of the stub's is missing at
runtime), by parsing the stub with ``ast`` rather than by substring.
"""

import ast
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

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
