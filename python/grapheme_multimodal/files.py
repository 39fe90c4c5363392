"""Reading a user's per-modality files: ``.npy``, ``.npz``, ``.csv`` (numeric
feature rows) and ``.txt`` (one text per line, turned into graphs).

Rows are events: row ``i`` of every file belongs to the same event.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .types import Modality

ARRAY_SUFFIXES = (".npy", ".npz", ".csv")
TEXT_SUFFIXES = (".txt",)


@dataclass
class ModalityFile:
    """One modality's data: ``values`` is a float32 ``[N, d]`` array, or a list
    of ``N`` texts for a ``.txt`` file."""

    modality: Modality
    path: Path
    values: Union[np.ndarray, List[str]]

    @property
    def is_text(self) -> bool:
        """Whether ``values`` are texts (a ``.txt`` file) rather than numbers."""
        return isinstance(self.values, list)

    def __len__(self) -> int:
        return len(self.values)


def parse_modality_spec(spec: str) -> Tuple[Modality, Path, Optional[str]]:
    """``"visual=images.npz:train"`` → ``(Modality.VISUAL, Path("images.npz"), "train")``."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ValueError(f"--modality: expected NAME=PATH (e.g. visual=images.npy), got {spec!r}")
    modality = Modality.parse(name.strip())
    key = None
    path_text = rest
    if ".npz:" in rest:
        path_text, key = rest.rsplit(":", 1)
    return modality, Path(path_text), key


def read_modality_file(modality: Modality, path: Path, key: Optional[str] = None) -> ModalityFile:
    """Reads one file; every problem is a ``ValueError``/``FileNotFoundError``
    naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{modality}: file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return ModalityFile(modality, path, read_texts(path))
    if suffix == ".npy":
        values = _load_npy(path)
    elif suffix == ".npz":
        values = _load_npz(path, key)
    elif suffix == ".csv":
        values = read_numeric_csv(path)
    else:
        known = ", ".join(ARRAY_SUFFIXES + TEXT_SUFFIXES)
        raise ValueError(f"{modality}: {path} has an unsupported type {suffix or '(none)'!r}; expected one of {known}")
    return ModalityFile(modality, path, as_feature_rows(values, f"{modality} ({path})"))


def read_texts(path: Path) -> List[str]:
    """One text per line (trailing newline stripped; UTF-8)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_numeric_csv(path: Path) -> np.ndarray:
    """A numeric CSV; a first row that is not numeric is taken as a header."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(cell.strip() for cell in r)]
    if not rows:
        raise ValueError(f"{path}: the CSV file is empty")
    if not _numeric_row(rows[0]):
        rows = rows[1:]
    width = len(rows[0]) if rows else 0
    out = np.empty((len(rows), width), np.float32)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: row {i + 1} has {len(row)} columns, expected {width}")
        try:
            out[i] = [float(cell) for cell in row]
        except ValueError:
            bad = next(c for c in row if not _is_float(c))
            raise ValueError(f"{path}: row {i + 1} has a non-numeric value {bad!r}; expected numbers only") from None
    return out


def as_feature_rows(values: np.ndarray, what: str) -> np.ndarray:
    """``[N, d]`` float32 from ``[N]``, ``[N, d]`` or ``[N, ...]`` (flattened per row)."""
    arr = np.asarray(values)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{what}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{what}: expected one row per event, got a scalar")
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim != 1 else arr[:, None]
    arr = arr.astype(np.float32, copy=False)  # freshly read: float32 files need no second copy
    if not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0, 0])
        raise ValueError(f"{what}: row {row} holds NaN or inf; expected finite numbers")
    return arr


def check_aligned(files: Sequence[ModalityFile]) -> int:
    """The common number of rows, or a ValueError listing each file's count."""
    counts = {f"{f.modality}={f.path}": len(f) for f in files}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise ValueError(f"rows are not aligned across modalities ({detail}); every file needs one row per event")
    return next(iter(counts.values()))


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: not a numeric .npy file ({exc})") from None


def _load_npz(path: Path, key: Optional[str]) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            if key is None:
                if len(keys) != 1:
                    raise ValueError(f"{path}: holds arrays {keys}; pick one with {path}:KEY")
                key = keys[0]
            if key not in keys:
                raise ValueError(f"{path}: has no array {key!r}; it holds {keys}")
            return z[key]
    except (OSError, ValueError) as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None


def _numeric_row(row: Sequence[str]) -> bool:
    return all(_is_float(c) for c in row)


def _is_float(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False
