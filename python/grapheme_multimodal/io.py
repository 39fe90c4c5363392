"""Files: atomic writes and tagged safetensors containers.

Every file this library writes goes to a temporary file in the target
directory first and then replaces the target in one step (``os.replace``), so
an interrupted save never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
FORMAT_KEY = "format"


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (temp file + fsync + replace)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"path: directory {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_tagged_safetensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], fmt: str, metadata: Mapping[str, Any]
) -> Path:
    """Saves ``tensors`` as safetensors with ``metadata`` (JSON-encoded values)
    and a ``format`` tag, atomically."""
    from safetensors.numpy import save

    meta = {FORMAT_KEY: fmt}
    meta.update({k: json.dumps(v) for k, v in metadata.items()})
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    return atomic_write_bytes(path, save(arrays, metadata=meta))


def read_tagged_safetensors(path: PathLike, fmt: str) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Loads a file written by :func:`write_tagged_safetensors` with tag
    ``fmt``. A missing, truncated, corrupt or foreign file raises a clear
    ``FileNotFoundError``/``ValueError``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no file at {str(path)!r}")
    raw = path.read_bytes()
    try:
        tensors = load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"path: {str(path)!r} is not a readable {fmt} file (truncated or corrupt?): {exc}") from None
    meta = header.get("__metadata__") or {}
    if meta.get(FORMAT_KEY) != fmt:
        raise ValueError(
            f"path: {str(path)!r} is not a {fmt} file (its format tag is {meta.get(FORMAT_KEY)!r})"
        )
    try:
        decoded = {k: json.loads(v) for k, v in meta.items() if k != FORMAT_KEY}
    except json.JSONDecodeError as exc:
        raise ValueError(f"path: {str(path)!r} has corrupt metadata: {exc}") from None
    return tensors, decoded
