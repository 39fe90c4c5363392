"""Figures: training curves and attention heatmaps (matplotlib, an
optional extra: ``pip install grapheme-multimodal[plot]``), in the image
format the file name says, as matplotlib's ``savefig`` writes it
(``curves.pdf`` a PDF, ``curves.svg`` an SVG), else PNG."""

from __future__ import annotations

__all__ = ["plot_history", "plot_attention"]

import io
import os
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ._validation import IntLike, as_real_array, describe, exact_int, is_int, is_real_number, refuse_over_float64
from .exceptions import InvalidTypeError, InvalidValueError, NonFiniteError, ShapeError
from .io import PathLike, atomic_write_bytes
from .types import Modality


def _figure_class() -> Any:
    """matplotlib's ``Figure``, used without pyplot: a figure made through
    pyplot needed ``matplotlib.use("Agg")``, which switched the caller's
    backend for the whole process (a notebook's inline figures stopped
    showing), and joined pyplot's list of open figures, where one whose save
    failed stayed for the caller's next ``plt.show()``. A bare ``Figure``
    renders its PNG with Agg all the same and is freed with its last
    reference."""
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "plotting needs matplotlib: pip install 'grapheme-multimodal[plot]'", name="matplotlib"
        ) from err
    return Figure


def _save(fig: Any, path: PathLike) -> None:
    fmt = _image_format(fig, path)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight")
    except RuntimeError as exc:  # pgf needs a TeX installation: matplotlib's words named no file
        raise InvalidValueError(f"path: cannot write a .{fmt} figure here ({exc}); expected a name ending in .png, "
                                ".pdf or .svg", "path") from None
    atomic_write_bytes(path, buf.getvalue())


def _image_format(fig: Any, path: Any) -> str:
    """The format ``path``'s suffix names among those matplotlib writes
    (``fig.savefig(path)``'s own reading of it), else ``"png"``: every
    figure was a PNG, so ``curves.pdf`` or ``fig.svg`` held PNG bytes that
    no PDF or SVG reader opens. A name with no suffix, or one that names no
    image format (``curves_lr0.001``), is still a PNG."""
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(name, str):  # refused, by name, where it is written
        return "png"
    suffix = Path(name).suffix[1:].lower()
    return suffix if suffix in fig.canvas.get_supported_filetypes() else "png"


def plot_history(epochs: Sequence[Dict[str, Any]], path: PathLike, title: str = "training", best_epoch: Optional[IntLike] = None) -> None:
    """One panel per training loss (solid) with its validation value (dashed),
    of every record (a record without a value leaves a gap);
    ``best_epoch`` (an epoch number) is marked by a dotted line."""
    if isinstance(epochs, (str, bytes, Mapping)) or not isinstance(epochs, Sequence):
        # a History (what fit returns) failed inside with "list indices must be integers or slices, not str"
        hint = ": call its .plot(path), or pass its .epochs" if hasattr(epochs, "epochs") else ""
        raise TypeError(f"epochs: expected a list of epoch records (dicts, as History.epochs), got {describe(epochs)}{hint}")
    # The records as they are now, read once: model.history, plotted from another thread while fit
    # appends to it, grew between reading the epoch numbers and the values ("x and y must have same
    # first dimension"). fit replaces a record rather than changing it, so the records themselves hold.
    epochs = list(epochs)
    if not epochs:
        raise InvalidValueError("epochs: expected at least one epoch to plot, got none", "epochs")
    for i, e in enumerate(epochs):
        if not isinstance(e, Mapping) or "epoch" not in e:  # else KeyError: 'epoch', or "'int' object is not subscriptable"
            raise InvalidValueError(f"epochs[{i}]: expected a record with an 'epoch' number, got {e!r:.80}", "epochs")
        others = [k for k in e if not isinstance(k, str)]
        if others:  # else "'int' object has no attribute 'startswith'", or sorted()'s "'<' not supported"
            raise TypeError(f"epochs[{i}]: expected str keys (the losses' names), got the key {others[0]!r:.80} ({describe(others[0])})")
    x = [e["epoch"] for e in epochs]
    for i, number in enumerate(x):  # "a" was drawn as a category, NaN dropped its point, True drawn at 1
        if not is_real_number(number):
            raise TypeError(f"epochs[{i}]['epoch']: expected an epoch number, got {describe(number)}")
        # float(): np.isfinite of an int beyond int64 raised numpy's "ufunc 'isfinite' not supported", naming nothing
        if not np.isfinite(_as_float(number, f"epochs[{i}]['epoch']")):
            raise InvalidValueError(f"epochs[{i}]['epoch']: expected a finite epoch number, got {number!r}", "epochs")
    _refuse_unscalable([float(n) for n in x], "the epoch numbers", "epochs")
    # A line at 1.5, NaN or True would mark an epoch that never was.
    if best_epoch is not None and not is_int(best_epoch):
        raise InvalidTypeError(f"best_epoch: expected None or an int, got {describe(best_epoch)}", "best_epoch")
    if best_epoch is not None:
        best_epoch = exact_int(best_epoch)  # a 0-d array too: the int it holds
    if best_epoch is not None and best_epoch not in x:  # so would one beyond the records, the axis stretched to it
        raise InvalidValueError(
            f"best_epoch: {best_epoch} is not an epoch of epochs (their 'epoch' numbers run from {min(x)} to {max(x)}); "
            "expected one of them, or None", "best_epoch")
    figure = _figure_class()
    skip = {"epoch", "seconds"}
    # the keys of every record, in the order first met: read off the first record only, a model's history of a
    # fit without validation then one with (or with another objective) was drawn without the later curves
    keys = list(dict.fromkeys(k for e in epochs for k in e))
    names: List[str] = [k for k in keys if k not in skip and not k.startswith("val_")]
    names.sort(key=lambda k: k != "loss")  # the total first
    extra = [k for k in keys if k.startswith("val_") and k[4:] not in names and k != "val_total"]
    panels = names + extra
    if not panels:  # else matplotlib's "Number of columns must be a positive integer, not 0"
        raise InvalidValueError(f"epochs: the records hold no values to plot, only {sorted(keys)}", "epochs")
    _refuse_bad_math(title, "title: {text!r}", "title")
    for name in panels:  # each panel's title
        _refuse_bad_math(name, "epochs: the key {text!r}", "epochs")
    for name in panels:
        _check_plottable(epochs, [name] + (["val_total" if name == "loss" else f"val_{name}"] if not name.startswith("val_") else []))
    fig = figure(figsize=(3.2 * len(panels), 3.0))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, name in zip(axes[0], panels):
        ax.plot(x, [e.get(name, np.nan) for e in epochs], label="train" if not name.startswith("val_") else name)
        val_key = "val_total" if name == "loss" else f"val_{name}"
        if not name.startswith("val_") and val_key in keys:
            ax.plot(x, [e.get(val_key, np.nan) for e in epochs], "--", label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.suptitle(title, y=1.04)
    _save(fig, path)


def _as_float(number: Any, name: str) -> float:
    """``float(number)``; an int beyond float64 (whose float() raised "int too
    large to convert to float", naming nothing) is refused naming ``name``."""
    try:
        return float(number)
    except OverflowError:
        raise InvalidValueError(f"{name}: got an int beyond float64 ({str(number)[:20]}...); expected a number a plot's "
                                "axis can hold", "epochs") from None


def _check_plottable(epochs: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Refuses the values of ``keys`` (one panel) when matplotlib cannot
    scale them: numbers whose range overflows float64 (a metric's 1e308
    beside -1e308 failed inside matplotlib with "arange: cannot compute
    length"), or values that are no real numbers."""
    values = []
    for i, e in enumerate(epochs):
        for key in keys:
            v = e.get(key)
            if v is None:
                continue
            if not is_real_number(v):
                raise TypeError(f"epochs[{i}][{key!r}]: expected a real number to plot, got {describe(v)}")
            values.append(_as_float(v, f"epochs[{i}][{key!r}]"))
    _refuse_unscalable([v for v in values if np.isfinite(v)], f"the values of {keys[0]!r}", "epochs")


#: How much room beyond the values' reach (their largest magnitude, or their span) an axis or colour
#: scale needs in float64: matplotlib adds margins and tick steps to it. A loss of 1.7e308 beside 0 (or
#: between 1e308 and 1.7e308), epochs out to 1.7e308, or such an attention weight had a finite span, yet
#: failed inside matplotlib as "arange: cannot compute length" or "cannot convert float infinity to integer".
_AXIS_ROOM = 1.25


def _refuse_unscalable(values: Sequence[float], what: str, arg: str) -> None:
    """InvalidValueError naming ``arg`` when the finite ``values`` (``what``,
    as the message says them) reach so far that an axis over them (their
    largest magnitude or their span, times :data:`_AXIS_ROOM`) is beyond
    float64; values of ±1e307 are still drawn."""
    if not values:
        return
    low, high = min(values), max(values)
    with np.errstate(over="ignore"):
        reach = np.float64(max(abs(low), abs(high))) * _AXIS_ROOM + np.float64(high - low) * (_AXIS_ROOM - 1)
    if not np.isfinite(reach):
        raise InvalidValueError(
            f"{arg}: {what} run from {low:.3g} to {high:.3g}, a range that no axis or colour scale can span in "
            "float64 (with its margins and ticks); expected values of smaller magnitude", arg)


def _refuse_bad_math(text: Any, subject: str, arg: str) -> None:
    """InvalidValueError naming ``arg`` (the message begins with ``subject``,
    its ``{text!r}`` filled in) when ``text`` (as matplotlib shows it:
    ``str(text)``) holds math text (an even number of unescaped ``$``,
    matplotlib's rule) that matplotlib's parser refuses: the figure failed
    as it was saved, with the parser's bare ``ValueError`` ("Expected
    \\frac{num}{den}"), naming no text and no argument."""
    shown = str(text)
    dollars = shown.count("$") - shown.count(r"\$")
    if not dollars or dollars % 2:
        return
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(shown)
    except ValueError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise InvalidValueError(
            f"{subject.format(text=shown)} holds $...$ math text that matplotlib cannot draw ({reason}); expected valid math "
            "between the $ signs, or each $ written as \\$ to show it as it is", arg) from None


def plot_attention(
    weights: Any,
    row_labels: Sequence[str],
    path: PathLike,
    title: str = "attention",
    column_labels: Optional[Dict[Modality, str]] = None,
) -> None:
    """A heatmap of attention weights ``[rows, 7]`` (e.g. the mean weight of
    each modality per class); modalities no row attends to are left out.
    ``column_labels`` renames modalities (e.g. to the data's view names)."""
    w = as_real_array(weights, "weights")  # complex or text refused, naming weights
    refuse_over_float64(w, "weights")  # before the cast, where 1e4000 became inf, refused as "NaN or inf"
    w = w.astype(float)
    if row_labels is None or isinstance(row_labels, (str, bytes, Set, Mapping)) or not hasattr(row_labels, "__len__"):
        # a set's labels came in hash order, which changes from one process to the next, each on another row's
        # cells (a mapping gave its keys): a figure that said the wrong thing, without a word
        raise TypeError(f"row_labels: expected one label per row of weights, in the rows' order (a list), got "
                        f"{describe(row_labels)}")
    if column_labels is not None:
        if not isinstance(column_labels, Mapping):  # else AttributeError: 'list' object has no attribute 'get'
            raise TypeError(f"column_labels: expected None or a mapping modality -> label, got {describe(column_labels)}")
        # by name too: a key "visual" matched no Modality, and the label was left out without a word
        column_labels = {Modality.parse(m, "column_labels"): label for m, label in column_labels.items()}
    if w.ndim != 2 or w.shape[1] != len(Modality) or w.shape[0] != len(row_labels):
        raise ShapeError(f"weights: expected shape ({len(row_labels)}, 7), one row per row label, got {w.shape}", "weights")
    if w.shape[0] == 0:  # else an empty figure, with matplotlib's "identical low and high ylims" warning only
        raise ShapeError(f"weights: expected at least one row to plot, got shape {w.shape}", "weights")
    if not np.isfinite(w).all():  # a NaN would draw as an empty cell and colour the rest wrongly
        row = int(np.argwhere(~np.isfinite(w))[0][0])
        raise NonFiniteError(f"weights: row {row} holds NaN or inf; expected finite weights", "weights")
    if (w < 0).any():  # the colours start at 0 (vmin=0): a negative weight was drawn as a modality not attended to
        row, col = (int(i) for i in np.argwhere(w < 0)[0])
        raise InvalidValueError(f"weights: row {row} holds {w[row, col]:.3g}; expected attention weights >= 0", "weights")
    _refuse_unscalable([0.0, float(w.max())], "the weights", "weights")  # the colours start at 0
    figure = _figure_class()
    _refuse_bad_math(title, "title: {text!r}", "title")
    for i, label in enumerate(row_labels):
        _refuse_bad_math(label, f"row_labels[{i}]: {{text!r}}", "row_labels")
    for m, label in (column_labels or {}).items():
        _refuse_bad_math(label, f"column_labels[{str(m)!r}]: {{text!r}}", "column_labels")
    present = w.any(axis=0)
    cols = [m for m, p in zip(Modality, present) if p] or list(Modality)
    w = w[:, [m.index for m in cols]]
    fig = figure(figsize=(1.1 * len(cols) + 2, 0.4 * len(row_labels) + 1.5))
    ax = fig.subplots()
    image = ax.imshow(w, cmap="viridis", aspect="auto", vmin=0)
    names = [(column_labels or {}).get(m, str(m)) for m in cols]
    ax.set_xticks(range(len(cols)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), list(row_labels))
    for (i, j), v in np.ndenumerate(w):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < w.max() * 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.04)
    ax.set_title(title)
    _save(fig, path)
