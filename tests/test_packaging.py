"""What pip installs is what the docs and the error messages promise.

Every ``pip install 'grapheme-multimodal[X]'`` that the code, the README or
the docs advise names an extra pyproject.toml defines; the oldest Python
CI tests is the one ``requires-python`` and the abi3 wheel start at, with
the dependency floors pyproject.toml declares; the README's Rust minimum
is Cargo's ``rust-version``; and without any optional dependency every
public module imports, those that are an optional feature themselves
(``sklearn``, ``distributed``) and the demo naming the extra to install.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11: pytest itself depends on tomli there
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CI_VERSIONS = (ROOT / ".ci" / "python-versions.sh").read_text(encoding="utf-8")

#: The optional dependencies, blocked together to stand for a plain ``pip install grapheme-multimodal``.
OPTIONAL = ("sklearn", "matplotlib", "ray", "cca_zoo", "networkx", "scipy", "mvlearn", "psutil", "pandas", "pyarrow")


def _advised_extras():
    """``(file, extra)`` for every ``grapheme-multimodal[extra]`` in the package, the docs and the benchmarks."""
    files = [*(ROOT / "python").rglob("*.py"), ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
             *(ROOT / "benchmarks").glob("*.py"), ROOT / "benchmarks" / "README.md"]
    for path in files:
        for extras in re.findall(r"grapheme-multimodal\[([^\]]*)\]", path.read_text(encoding="utf-8")):
            for extra in extras.split(","):
                yield path.relative_to(ROOT), extra.strip()


def _pin(requirement: str, op: str):
    """``(name, version)`` of ``name<op>version``, the version's trailing ``.0`` and ``.*`` dropped
    (``numpy==1.23.*`` installs the newest 1.23 patch release: the floor 1.23 as far as an API goes)."""
    name, _, version = requirement.partition(op)
    assert version, f"{requirement!r}: no {op}"
    return name.strip().lower(), re.sub(r"(\.0|\.\*)+$", "", version.strip())


def test_every_advised_extra_exists():
    defined = set(PYPROJECT["project"]["optional-dependencies"])
    advised = list(_advised_extras())
    assert len({extra for _, extra in advised}) >= 4, advised
    wrong = [f"{path}: [{extra}]" for path, extra in advised if extra not in defined]
    assert not wrong, f"advised extras pyproject.toml does not define ({sorted(defined)}): {wrong}"


def test_readme_table_lists_every_user_extra():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `\[([a-z]+)\]` \|", readme, re.M))
    assert listed == set(PYPROJECT["project"]["optional-dependencies"]), listed


def test_oldest_ci_python_is_requires_python_and_the_abi3_floor():
    versions = re.search(r"^VERSIONS=\(([^)]*)\)", CI_VERSIONS, re.M).group(1).split()
    oldest = min(versions, key=lambda v: tuple(map(int, v.split("."))))
    assert PYPROJECT["project"]["requires-python"] == f">={oldest}"
    bindings = (ROOT / "rust" / "python" / "Cargo.toml").read_text(encoding="utf-8")
    assert f'"abi3-py{oldest.replace(".", "")}"' in bindings, "pyo3's abi3-pyXY feature is not the oldest CI Python"
    assert re.search(rf'if \[\[ \$1 == {re.escape(oldest)} \]\]; then echo "', CI_VERSIONS), (
        f"python-versions.sh installs its dependency floors on {oldest}, not the oldest Python")


def test_ci_installs_the_declared_floors():
    """The floors of the required dependencies are the versions the oldest CI Python tests."""
    declared = {_pin(r, ">=") for r in PYPROJECT["project"]["dependencies"]}
    installed = re.search(r'^floors\(\).*?echo "([^"]*)"', CI_VERSIONS, re.M | re.S).group(1).split()
    installed = {_pin(r, "==") for r in installed}
    assert installed == declared, f"pyproject.toml floors {sorted(declared)}; CI installs {sorted(installed)}"


def test_readme_rust_minimum_is_cargos_rust_version():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    msrv = cargo["workspace"]["package"]["rust-version"]
    for crate in ("core", "python"):
        manifest = tomllib.loads((ROOT / "rust" / crate / "Cargo.toml").read_text(encoding="utf-8"))
        assert manifest["package"].get("rust-version") == {"workspace": True}, f"rust/{crate}: no rust-version.workspace"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"Rust ≥ ([0-9.]+)", readme) == [msrv]


def test_without_optional_dependencies_modules_import_and_features_name_their_extra(tmp_path):
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        for name in {OPTIONAL!r}:
            sys.modules[name] = None  # "import name" and "import name.sub" raise ModuleNotFoundError
        import grapheme_multimodal as gm
        features = {{"grapheme_multimodal.sklearn": "[sklearn]", "grapheme_multimodal.distributed": "[ray]"}}
        for info in pkgutil.walk_packages(gm.__path__, "grapheme_multimodal."):
            name = info.name
            if name.endswith("__main__") or name == "grapheme_multimodal._sklearn_errors":
                continue  # runs the command line; imported only where scikit-learn is
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                print(name, "|", err)
            else:
                print(name, "| ok")
        from grapheme_multimodal import demo, plotting
        for what, call in [("demo", lambda: demo.demo_files({str(tmp_path / 'demo')!r})),
                           ("plot", lambda: plotting.plot_history([{{"epoch": 1, "loss": 1.0}}], {str(tmp_path / 'c.png')!r})),
                           ("networkx", lambda: gm.Graph.from_text("a cat").to_networkx())]:
            try:
                call()
            except ModuleNotFoundError as err:
                print(what, "|", err)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    results = dict(line.split(" | ", 1) for line in out.stdout.strip().splitlines())
    expected = {
        "grapheme_multimodal.sklearn": "grapheme_multimodal.sklearn needs scikit-learn: pip install 'grapheme-multimodal[sklearn]'",
        "grapheme_multimodal.distributed": 'grapheme_multimodal.distributed needs Ray: pip install "grapheme-multimodal[ray]"',
        "demo": "the demo needs matplotlib and scikit-learn: pip install 'grapheme-multimodal[demo]'",
        "plot": "plotting needs matplotlib: pip install 'grapheme-multimodal[plot]'",
        "networkx": "Graph.to_networkx needs networkx: pip install networkx",  # in no extra: was Python's bare message
    }
    for name, message in expected.items():
        assert results.pop(name, "").startswith(message), (name, out.stdout)
    assert len(results) >= 30, out.stdout
    failed = {name: why for name, why in results.items() if why != "ok"}
    assert not failed, f"modules that need an optional dependency to import: {failed}"
