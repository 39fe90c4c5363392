"""The type hints users' checkers read: the stub of the Rust extension names
everything the extension has, with its parameters; the `__init__`s declared
for type checkers are the dataclasses' own."""

import ast
import inspect
import sys
from pathlib import Path

import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _core
from grapheme_multimodal.config import LearnableMultiModalConfig
from grapheme_multimodal.uci import TrainingSettings

STUB = (Path(gm.__file__).parent / "_core.pyi").read_text(encoding="utf-8")


def test_stub_covers_the_extension():
    for cls in (_core.Model, _core.Graph):
        missing = [n for n in dir(cls) if not n.startswith("_") and f"def {n}(" not in STUB]
        assert not missing, f"{cls.__name__}: {missing} are missing from _core.pyi"
    missing = [n for n in dir(_core) if not n.startswith("_") and n not in STUB]
    assert not missing, f"module-level names missing from _core.pyi: {missing}"


def test_package_is_typed():
    assert (Path(gm.__file__).parent / "py.typed").exists()


def _stub_functions():
    """``{"name" or "Class.name": (FunctionDef, is_property)}`` of _core.pyi."""
    tree = ast.parse(STUB)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = (node, False)
        elif isinstance(node, ast.ClassDef) and hasattr(_core, node.name):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list)
                    found[f"{node.name}.{item.name}"] = (item, is_property)
    return found


def _stub_parameters(node):
    """``[(name, kind, default)]`` of a stub ``def`` (``self`` left out;
    ``default`` is ``inspect.Parameter.empty`` when there is none)."""
    a = node.args
    positional = a.posonlyargs + a.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [
        (p.arg, inspect.Parameter.POSITIONAL_ONLY if p in a.posonlyargs else inspect.Parameter.POSITIONAL_OR_KEYWORD, d)
        for p, d in zip(positional, defaults)
    ]
    out += [(p.arg, inspect.Parameter.KEYWORD_ONLY, d if d is not None else inspect.Parameter.empty)
            for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if out and out[0][0] in ("self", "cls") and not is_static:
        out = out[1:]
    return [(n, k, d if d is inspect.Parameter.empty else ast.literal_eval(d)) for n, k, d in out]


def _signature(obj):
    """``inspect.signature``, from ``__text_signature__`` where it finds none
    (Python 3.9 for some classes); None where Python shows none at all
    (``Gate``'s ``()`` on Python 3.9)."""
    try:
        return inspect.signature(obj)
    except ValueError:
        if getattr(obj, "__text_signature__", None) is None:
            return None
        params = obj.__text_signature__[1:-1].replace("$self, ", "").replace("$self", "")
        return inspect.signature(eval(f"lambda {params}: None"))  # pyo3's text signature


def _runtime_signature(qualname):
    if "." not in qualname:
        return _signature(getattr(_core, qualname))
    cls_name, name = qualname.split(".")
    cls = getattr(_core, cls_name)
    if name in ("__init__", "__new__"):  # the constructor: the class's own signature
        return _signature(cls)
    raw = cls.__dict__[name]
    sig = _signature(getattr(cls, name))
    if sig is not None and not isinstance(raw, staticmethod):  # unbound: drop self
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def test_stub_signatures_match_the_extension():
    """Every ``def`` of _core.pyi exists in the extension with the same
    parameters: names, positional / keyword-only, and defaults (the ones
    the extension can show: pyo3 shows ``...`` for e.g. ``Vec::new()``)."""
    problems = []
    for qualname, (node, is_property) in _stub_functions().items():
        cls_name, _, name = qualname.rpartition(".")
        owner = getattr(_core, cls_name) if cls_name else _core
        if not hasattr(owner, name):
            problems.append(f"{qualname}: in _core.pyi but not in the extension")
            continue
        if is_property:
            if not inspect.isdatadescriptor(inspect.getattr_static(owner, name)):
                problems.append(f"{qualname}: a property in _core.pyi but not in the extension")
            continue
        signature = _runtime_signature(qualname)
        if signature is None:  # Python shows none (Gate.__init__ on 3.9); newer ones check it
            continue
        runtime = [(p.name, p.kind, p.default) for p in signature.parameters.values()]
        stub = _stub_parameters(node)
        if [(n, k) for n, k, _ in runtime] != [(n, k) for n, k, _ in stub]:
            problems.append(f"{qualname}: the extension takes {runtime}, _core.pyi says {stub}")
            continue
        for (n, _, have), (_, _, said) in zip(runtime, stub):
            # pyo3 shows ... for a default it cannot write (Vec::new()); 2 is no 2.0
            if have is not Ellipsis and (type(have), have) != (type(said), said):
                problems.append(f"{qualname}({n}): default {have!r} in the extension, {said!r} in _core.pyi")
    assert not problems, "\n".join(problems)


def test_gate_guard_exit_never_suppresses():
    """``GateGuard.__exit__`` returns False, and the stub says so (``-> bool``
    told type checkers that ``with lock.reading():`` may swallow an
    exception, so every ``return`` inside such a block was "missing")."""
    reading, writing, _ = _core.GateGuard.sides(_core.Gate())
    for guard in (reading, writing):
        guard.__enter__()
        assert guard.__exit__(ValueError, ValueError("x"), None) is False
    assert "def __exit__(self, _kind: object, _value: object, _traceback: object) -> Literal[False]: ..." in STUB


def _type_checking_init(cls):
    """The parameters ``[(name, default)]`` of the ``__init__`` that ``cls``
    declares under ``if TYPE_CHECKING:`` for type checkers (the dataclass
    makes the one that runs)."""
    module = sys.modules[cls.__module__]
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    guarded = [n for n in node.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    init = next(f for g in guarded for f in g.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    a = init.args
    assert not a.kwonlyargs and not a.posonlyargs and a.args[0].arg == "self"
    params = a.args[1:]
    defaults = [inspect.Parameter.empty] * (len(params) - len(a.defaults)) + [
        eval(ast.unparse(d), vars(module)) for d in a.defaults  # our own source
    ]
    return [(p.arg, d) for p, d in zip(params, defaults)]


@pytest.mark.parametrize(
    "cls",
    [LearnableMultiModalConfig, gm.ModalGraph, gm.ModalFeatures, gm.CrossModalBinding, gm.GraphFeaturizer, TrainingSettings,
     gm.MultiModalEvent],
    ids=lambda c: c.__name__,
)
def test_declared_init_is_the_dataclass_init(cls):
    """The ``__init__`` these dataclasses declare for type checkers (it says
    what they take: a modality's name, a dict of input dims, a list) has the
    dataclass's parameters and defaults, so it cannot drift from the one
    that runs when a field is added."""
    import dataclasses

    factories = {f.name for f in dataclasses.fields(cls) if f.default_factory is not dataclasses.MISSING}
    # a default_factory's default is declared as `...` (the signature shows `<factory>`)
    runtime = [(p.name, ... if p.name in factories else p.default) for p in inspect.signature(cls).parameters.values()]
    assert _type_checking_init(cls) == runtime


def test_stub_constants_have_their_types():
    """Every module-level constant of _core.pyi exists with the type it says."""
    simple = {"int": int, "float": float, "str": str}
    checked = 0
    for node in ast.parse(STUB).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name, kind = node.target.id, ast.unparse(node.annotation)
            assert hasattr(_core, name), f"{name}: in _core.pyi but not in the extension"
            value = getattr(_core, name)
            if kind in simple:
                assert type(value) is simple[kind], f"{name}: {type(value).__name__} in the extension, {kind} in _core.pyi"
            else:
                assert kind == "List[str]", kind
                assert isinstance(value, list) and all(type(v) is str for v in value), name
            checked += 1
    assert checked >= 10


def test_final_classes_are_final_in_the_stub():
    """pyo3 classes cannot be subclassed; the stub marks them ``@final`` so a
    checker says so before the TypeError at import time."""
    for cls in (_core.Graph, _core.Model, _core.Gate, _core.GateGuard):
        with pytest.raises(TypeError, match="not an acceptable base type"):
            type("Sub", (cls,), {})
        assert f"@final\nclass {cls.__name__}:" in STUB
