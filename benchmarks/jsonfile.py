"""The benchmarks' ``--json`` output: written atomically with the library's
own writer, so an interrupted run never leaves a half-written results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grapheme_multimodal.io import atomic_write_bytes


def write_json(path: "str | Path", payload: Any, indent: int = 2) -> None:
    """Writes ``payload`` as JSON to ``path``, making its folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(payload, indent=indent) + "\n").encode())
