"""What users read about the API is what the code does.

``grapheme-mm ... --help`` prints the real defaults (the recipe's, for
``train``, as are ``MultimodalEmbedder``'s), the README lists every
``train`` option, every public callable has a docstring, the docstrings'
``>>>`` examples run and the sections they cite exist, and the README's
method tables give each method's real call form (positional order,
keyword-only arguments, defaults).
"""

from __future__ import annotations

import argparse
import ast
import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import cli
from grapheme_multimodal.graph import WL_DEFAULT_DIM
from grapheme_multimodal.uci import RECIPE_HIDDEN_DROPOUT, TrainingSettings, recipe_head, recipe_skip

ROOT = Path(__file__).resolve().parent.parent
RECIPE = TrainingSettings()


def _subparsers():
    parser = cli._parser()
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return group.choices


#: ``train`` flags whose argparse default is None (the recipe decides later)
#: and whose help names the default the recipe then takes.
_EFFECTIVE_DEFAULTS = {
    ("train", "early_stopping"): RECIPE.patience,
    ("train", "encoder_output_dim"): RECIPE.encoder_output_dim,
    ("train", "encoder_hidden_dropout"): RECIPE_HIDDEN_DROPOUT,
    ("train", "wl_dim"): WL_DEFAULT_DIM,
    ("train", "shared_head"): recipe_head(RECIPE.embed_dim)[0],
    ("train", "encoder_skip"): recipe_skip(RECIPE.encoder_hidden, recipe_head(RECIPE.embed_dim)),
    ("embed", "batch_size"): cli.EMBED_BATCH_SIZE,
}
_DEFAULT_SHOWN = re.compile(r"\bdefault:? ([^\s;,):]+)")
_ON_OFF = {"on": True, "off": False}


def _same(shown: str, value) -> bool:
    if isinstance(value, bool):
        return _ON_OFF.get(shown) is value
    if isinstance(value, (int, float)):
        try:
            return float(shown) == float(value)
        except ValueError:
            return False
    return shown == str(value)


@pytest.mark.parametrize("command", ["demo", "train", "embed", "info"])
def test_help_prints_the_real_defaults(command):
    sub = _subparsers()[command]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS) or action.dest == "help":
            continue
        text = " ".join(formatter._expand_help(action).split())
        found = _DEFAULT_SHOWN.search(text)
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if action.default is not None:
            if action.default is not False:  # a store_true flag's help says what its absence means instead
                assert found, f"{command} {flag}: its help does not say its default {action.default!r}: {text!r}"
            if found and (action.default is not False or found.group(1) in _ON_OFF):
                assert _same(found.group(1), action.default), f"{command} {flag}: help says {found.group(1)!r}, default {action.default!r}"
        elif found and re.fullmatch(r"-?[\d.]+|on|off", found.group(1)):
            key = (command, action.dest)
            assert key in _EFFECTIVE_DEFAULTS, f"{command} {flag}: help says default {found.group(1)!r}; no value to check it by"
            assert _same(found.group(1), _EFFECTIVE_DEFAULTS[key]), (
                f"{command} {flag}: help says {found.group(1)!r}, the recipe takes {_EFFECTIVE_DEFAULTS[key]!r}")
    undescribed = [a.option_strings for a in sub._actions if a.option_strings and a.default is not None and a.default is not False and not a.help]
    assert not undescribed, f"{command}: options with a default and no help to show it: {undescribed}"


def test_train_defaults_are_the_recipe():
    defaults = vars(_subparsers()["train"].parse_args(["-m", "visual=x.npy"]))
    names = {"heads": "num_heads", "lr": "learning_rate", "binder": "binder_kind", "validation_split": "validation_fraction"}
    fields = {f for f in TrainingSettings.__dataclass_fields__}
    checked = 0
    for dest, value in defaults.items():
        field = names.get(dest, dest)
        if field not in fields or value is None:
            continue
        recipe = getattr(RECIPE, field)
        if field == "encoder_hidden":
            recipe = ",".join(map(str, recipe))
        elif field == "encoder_objectives":
            recipe = "all" if recipe is None else ",".join(recipe)
        elif recipe is None:  # given to the settings as `or None` (0 on the command line)
            recipe = 0.0
        assert value == recipe, f"train --{dest.replace('_', '-')}: default {value!r}, the recipe's {field} is {recipe!r}"
        checked += 1
    assert checked >= 25


def _public_modules():
    names = ["grapheme_multimodal"]
    for info in pkgutil.walk_packages(gm.__path__, "grapheme_multimodal."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]) and info.name != "grapheme_multimodal.distributed":
            names.append(info.name)  # distributed needs Ray: tests/test_distributed.py
    return names


def _public_callables():
    seen = set()
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            continue
        for attr in exported:
            obj = getattr(module, attr)
            if id(obj) in seen or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            seen.add(id(obj))
            yield f"{name}.{attr}", obj
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                    if not member.startswith("_") and inspect.isfunction(func):
                        yield f"{name}.{attr}.{member}", func


def test_public_callables_have_docstrings():
    missing = [name for name, obj in _public_callables() if not (obj.__doc__ or "").strip()]
    assert not missing, f"public callables without a docstring: {missing}"


def test_docstring_examples_run():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    ran = 0
    for name in _public_modules():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                ran += runner.run(test, out=lambda _: None).attempted
    assert runner.failures == 0, f"{runner.failures} docstring examples fail: python -m pytest --doctest-modules python/grapheme_multimodal"
    assert ran >= 10


_METHOD_CELL = re.compile(r"^\| (`[a-z_]+\(.*?\)`(?:, `[a-z_]+\(.*?\)`)*) \|", re.M)


def test_readme_method_tables_give_the_real_call_forms():
    """`train_step(batch, weights=None)` read as if weights came second,
    where the second argument is ``mask`` and ``weights`` keyword-only."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    model = gm.LearnableMultiModal()
    checked = 0
    for cell in _METHOD_CELL.finditer(text):
        for call in re.findall(r"`([a-z_]+)\((.*?)\)`", cell.group(1)):
            method, args = call
            real = getattr(model, method, None)
            if real is None:
                continue
            params = list(inspect.signature(real).parameters.values())
            shown = ast.parse(f"def f({args}): pass").body[0].args
            positional = shown.args
            for i, arg in enumerate(positional):
                assert i < len(params) and params[i].name == arg.arg and params[i].kind == params[i].POSITIONAL_OR_KEYWORD, (
                    f"README shows {method}({args}): argument {i} is {arg.arg!r}; the method takes {inspect.signature(real)}")
            for arg in shown.kwonlyargs:
                real_param = inspect.signature(real).parameters.get(arg.arg)
                assert real_param is not None and real_param.kind == real_param.KEYWORD_ONLY, (
                    f"README shows {method}({args}): {arg.arg!r} keyword-only; the method takes {inspect.signature(real)}")
            named = {a.arg: d for a, d in zip(positional[len(positional) - len(shown.defaults):], shown.defaults)}
            named.update({a.arg: d for a, d in zip(shown.kwonlyargs, shown.kw_defaults) if d is not None})
            for arg, default in named.items():
                assert inspect.signature(real).parameters[arg].default == ast.literal_eval(default), (
                    f"README shows {method}({args}); the method takes {inspect.signature(real)}")
            checked += 1
    assert checked >= 15


def test_estimator_defaults_are_the_recipe():
    """README: ``MultimodalEmbedder()`` with no options trains by the recipe."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    names = {"random_state": "seed", "objectives": "weights"}
    params = inspect.signature(MultimodalEmbedder).parameters
    shared = {p: names.get(p, p) for p in params if hasattr(RECIPE, names.get(p, p))}
    assert len(shared) >= 30
    for param, field in shared.items():
        assert params[param].default == getattr(RECIPE, field), (
            f"MultimodalEmbedder({param}={params[param].default!r}); the recipe's {field} is {getattr(RECIPE, field)!r}")


def test_docstrings_cite_sections_that_exist():
    """``(docs/objectives.md, "Title")`` in a docstring names a heading of that file."""
    cited = re.compile(r"(docs/\w+\.md),\s+\"([^\"]+)\"")
    for path in sorted((ROOT / "python" / "grapheme_multimodal").rglob("*.py")):
        for doc, title in cited.findall(" ".join(path.read_text(encoding="utf-8").split())):
            headings = [line for line in (ROOT / doc).read_text(encoding="utf-8").splitlines() if line.startswith("#")]
            assert any(title in h for h in headings), f"{path.name} cites {doc}, {title!r}: no such heading"


def test_readme_lists_every_option_of_train():
    """The README's list of ``grapheme-mm train`` options is complete."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("Options of\n`train`:")
    listed = " ".join(text[start:text.index("train --help`)", start)].split())
    for action in _subparsers()["train"]._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag in (None, "--help", "--modality"):  # -m: the worked example's every line
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            assert f"--[no-]{flag[2:]}" in listed, f"README's options of train leave out {flag} / --no-{flag[2:]}"
        else:
            assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", listed) for o in action.option_strings), (
                f"README's options of train leave out {flag}")


def test_model_fit_shows_the_options_it_takes() -> None:
    """``model.fit(data, **kwargs)`` showed ``help()``, notebooks and
    ``inspect.signature`` no option: they are training.fit's."""
    from grapheme_multimodal import training

    model = gm.LearnableMultiModal(seed=0)
    shown = inspect.signature(model.fit).parameters
    expected = [n for n in inspect.signature(training.fit).parameters if n not in ("model", "_steps")]
    assert list(shown) == expected and shown["epochs"].default == 10
    assert "validation_mask" in model.fit.__doc__ and model.fit.__doc__.startswith("Trains this model on ``data``.")


def test_every_public_module_says_what_it_exports() -> None:
    """Eighteen public modules had no ``__all__``: star imports, autodoc and
    readers could not tell their API from their helpers (STYLE §4)."""
    for name in _public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported, f"{name} has no __all__"
        assert not [n for n in exported if not hasattr(module, n)], f"{name}.__all__ names what it lacks"
