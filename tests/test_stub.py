"""The type stub of the Rust extension names everything the extension has."""

from pathlib import Path

import grapheme_multimodal as gm
from grapheme_multimodal import _core

STUB = (Path(gm.__file__).parent / "_core.pyi").read_text(encoding="utf-8")


def test_stub_covers_the_extension():
    for cls in (_core.Model, _core.Graph):
        missing = [n for n in dir(cls) if not n.startswith("_") and f"def {n}(" not in STUB]
        assert not missing, f"{cls.__name__}: {missing} are missing from _core.pyi"
    missing = [n for n in dir(_core) if not n.startswith("_") and n not in STUB]
    assert not missing, f"module-level names missing from _core.pyi: {missing}"


def test_package_is_typed():
    assert (Path(gm.__file__).parent / "py.typed").exists()
