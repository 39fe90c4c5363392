"""What a pickle imports as it loads: the tests of pickles that must load
under numpy 1 and numpy 2 alike check that no numpy internals are named."""

from __future__ import annotations

import io
import pickle


def numpy_globals(data: bytes) -> set:
    """The numpy names a pickle imports as it loads (numpy 2 names numpy._core, which numpy 1 lacks)."""
    imported = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module, name):
            imported.add((module, name))
            return super().find_class(module, name)

    Recording(io.BytesIO(data)).load()
    return {(module, name) for module, name in imported if module.split(".")[0] == "numpy"}
