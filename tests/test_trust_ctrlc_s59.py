"""Marks set around a block and taken off after it, under a Ctrl-C at
every point of their short critical sections (``ctrl_c_sweep``): a
contextlib context manager kept its mark while the interrupt was alive
(in its handler; a notebook keeps the last one) when the Ctrl-C landed as
its ``__enter__`` returned or its ``__exit__`` began. Each test failed
before its fix."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import checkpoint, io, stopping

from ctrl_c_sweep import interrupted_at

pytestmark = [
    pytest.mark.usefixtures("default_sigint"),  # CI runs pytest with SIGINT ignored: no Ctrl-C would land
    pytest.mark.skipif(sys.platform == "win32", reason="a real SIGINT sent to the process itself"),
]


def in_code(*where: tuple):
    """The code a sweep sends its Ctrl-C into: each ``(module, names)``'s
    functions (and what they call: contextlib's ``__enter__``/``__exit__``)."""
    return lambda code: any(code.co_filename == module.__file__ and code.co_name in names for module, names in where)


def test_a_ctrl_c_as_a_load_builds_its_model_leaves_buffer_sizes_checked_in_its_handler(tmp_path) -> None:
    """Before: a Ctrl-C as a load entered or left its block that marks the
    model it builds as saved state (contextlib's ``__enter__`` returning)
    left the mark while the interrupt was handled: a
    ``LearnableMultiModal(buffer_size=2**32)`` made in the handler (or in a
    notebook's next cell) was made without a word, its buffer refused only
    as it grew. Now it is refused up front, naming ``buffer_size``."""
    gm.LearnableMultiModal(seed=0, embed_dim=4, hidden_dim=4, num_heads=1, buffer_size=2).save(tmp_path / "m.st")
    wrong, n = [], 0

    def huge_buffer_refused() -> None:
        try:
            gm.LearnableMultiModal(seed=0, embed_dim=4, hidden_dim=4, num_heads=1, buffer_size=2**32)
        except gm.TooLargeError as err:
            assert "buffer_size" in str(err)
        else:
            wrong.append(n)

    while True:
        n += 1
        if not interrupted_at(n, lambda: gm.LearnableMultiModal.load(tmp_path / "m.st"),
                              in_code((checkpoint, ("_new_model",))), handler=huge_buffer_refused):
            break
    assert n > 10, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at points {wrong} let a buffer past memory through in its handler"


def test_a_ctrl_c_as_the_library_s_writing_together_block_opens_or_closes_never_swallows_a_later_save(tmp_path) -> None:
    """Before: the demo's result (``run_demo``) and the command line's were
    written in a ``with writing_together():`` block; a Ctrl-C as
    contextlib's ``__enter__`` returned or its ``__exit__`` began left the
    block open while the interrupt was alive: a model saved in the handler
    (or in a notebook's next cell) returned as saved, but its file was
    staged into the dead block, never written, and removed when the
    interrupt was dropped. Now (``call_writing_together``, what they call)
    the save in the handler is on disk, the block's own target is old or
    new whole, and no temporary file is left."""
    target, rescue = tmp_path / "result.bin", tmp_path / "rescue.bin"
    wrong, n = [], 0

    def write_result() -> None:
        io.atomic_write_bytes(target, b"new")

    def saved_in_the_handler() -> None:
        io.atomic_write_bytes(rescue, b"rescue")
        if not rescue.exists():
            wrong.append((n, "the handler's save was not written"))

    while True:
        n += 1
        io.atomic_write_bytes(target, b"old")
        rescue.unlink(missing_ok=True)
        if not interrupted_at(n, lambda: io.call_writing_together(write_result),
                              in_code((io, ("call_writing_together", "_commit_together"))), handler=saved_in_the_handler):
            break
        if target.read_bytes() not in (b"old", b"new") or sorted(p.name for p in tmp_path.iterdir()) != ["rescue.bin", "result.bin"]:
            wrong.append((n, f"left {target.read_bytes()!r}, {sorted(p.name for p in tmp_path.iterdir())}"))
    assert n > 5, f"the sweep reached {n} points only"
    assert target.read_bytes() == b"new"
    assert wrong == [], wrong[:5]


DIMS = {"visual": 3, "auditory": 2}


def small_model() -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, seed=0, input_dims=DIMS, encoder_hidden=(4,))


def rows(n: int) -> dict:
    rng = np.random.default_rng(0)
    return {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in DIMS.items()}


def constant_modality_warnings() -> list:
    """What a plain fit says of a modality the same in every row (it trains on all of them)."""
    x = rows(12)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        small_model().fit({"visual": x["visual"], "auditory": np.ones_like(x["auditory"])}, epochs=1, batch_size=12,
                          progress=False)
    return [str(w.message) for w in said if issubclass(w.category, gm.ConstantModalityWarning)]


@pytest.mark.parametrize("n_rows, split", [(80, "a slice held out"), (12, "cross-validation folds")])
def test_a_ctrl_c_as_fit_with_stopping_trains_on_a_split_leaves_a_plain_fit_in_its_handler_plain(n_rows, split) -> None:
    """Before: a Ctrl-C as ``fit_with_stopping`` entered or left its block
    that marks fit as training on part of its rows (``with
    training_on_split(...)``: contextlib's ``__enter__`` returning or its
    ``__exit__`` beginning) left the mark while the interrupt was alive
    (and for good when a cycle kept the block from its close): a plain fit
    in the handler took itself for a cross-validation fold's and said
    nothing of a modality the same in every row (no
    ConstantModalityWarning), or for a slice's, its refusals speaking of
    rows "held out to stop on". Now it says what an uninterrupted one does."""
    expected = constant_modality_warnings()
    assert expected, "the reference fit warns"
    options = dict(validation_fraction=0.2, patience=1, min_validation_rows=3, cv_folds=2, monitor="val_total",
                   batch_size=64, epochs=1, progress=False)
    wrong, n = [], 0

    def plain_fit_says_its_own() -> None:
        said = constant_modality_warnings()
        if said != expected:
            wrong.append((n, said))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few rows: the objectives that compare rows are few
        while True:
            n += 1
            if not interrupted_at(n, lambda: stopping.fit_with_stopping(small_model(), rows(n_rows), **options),
                                  in_code((stopping, ("fit_with_stopping", "_cv_epochs"))), handler=plain_fit_says_its_own):
                break
    assert n > 30, f"the sweep reached {n} points only"
    assert wrong == [], f"{split}: a Ctrl-C at points {[k for k, _ in wrong]} left a fit in its handler saying {wrong[0][1]}"


def precision_warnings() -> list:
    """What a plain fit says of a view float32 cannot hold (1e6 + tiny changes)."""
    x = rows(12)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        small_model().fit({"visual": 1e6 + 1e-3 * x["visual"].astype(np.float64), "auditory": x["auditory"]}, epochs=1,
                          batch_size=12, progress=False)
    return [str(w.message) for w in said if issubclass(w.category, gm.PrecisionLossWarning)]


def test_a_ctrl_c_as_fit_with_stopping_opens_or_closes_its_warnings_scope_leaves_a_plain_fit_s_warnings_its_own() -> None:
    """Before: a Ctrl-C as ``fit_with_stopping`` entered or left its scope
    of warnings (``with precision_scope(...)`` in its decorator:
    contextlib's ``__enter__`` returning or its ``__exit__`` beginning)
    left the scope while the interrupt was alive: a fit in the handler
    named its PrecisionLossWarning ``inputs['visual']``, an argument it has
    not, and the fit after it did not warn at all (said once per scope).
    Now each says ``data['visual']``, as an uninterrupted thread does."""
    from grapheme_multimodal import _validation

    expected = precision_warnings()
    assert len(expected) == 1 and expected[0].startswith("data['visual']"), expected
    wrong, n = [], 0

    def plain_fits_say_their_own() -> None:
        said = [precision_warnings(), precision_warnings()]
        if said != [expected, expected]:
            wrong.append((n, said))

    options = dict(validation_fraction=0.2, patience=1, min_validation_rows=3, monitor="val_total", batch_size=64,
                   epochs=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        while True:
            n += 1
            if not interrupted_at(n, lambda: stopping.fit_with_stopping(small_model(), rows(80), **options),
                                  in_code((_validation, ("scoped", "call_in_precision_scope"))), handler=plain_fits_say_their_own):
                break
    assert n > 5, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at points {[k for k, _ in wrong]} left fits in its handler saying {wrong[0][1]}"


def test_a_ctrl_c_as_a_model_embedder_call_opens_or_closes_its_no_mask_scope_leaves_the_model_s_messages_whole() -> None:
    """Before: a Ctrl-C as ``evaluation.ModelEmbedder`` entered or left its
    scope of a caller without a mask (``with taking_no_mask()``:
    contextlib's ``__enter__`` returning or its ``__exit__`` beginning)
    left the scope while the interrupt was alive: the model's own refusal
    of a NaN in a row its mask marks present, called in the handler, lost
    its "(a row marked present)", the model's caller left guessing which
    rows it meant. Now it says them, as outside any scope."""
    from grapheme_multimodal import _validation, evaluation

    model = gm.LearnableMultiModal(embed_dim=4, hidden_dim=4, num_heads=1, seed=0, input_dims={"visual": 3})
    embedder = evaluation.ModelEmbedder(model, {"a": gm.Modality.VISUAL})
    nan_row = np.ones((2, 3), np.float32)
    nan_row[1, 0] = np.nan

    def refusal() -> str:
        with pytest.raises(gm.NonFiniteError) as err:
            model.encode({"visual": nan_row})
        return str(err.value)

    expected = refusal()
    assert "(a row marked present)" in expected, expected
    wrong, n = [], 0

    def model_refuses_as_its_own() -> None:
        if refusal() != expected:
            wrong.append(n)

    while True:
        n += 1
        if not interrupted_at(n, lambda: embedder.embed_fused({"a": np.ones((2, 3), np.float32)}),
                              in_code((evaluation._embedders, ("_on_views",)), (_validation, ("call_taking_no_mask",))),
                              handler=model_refuses_as_its_own):
            break
    assert n > 5, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at points {wrong} left the model's refusal in the handler without its rows marked present"


def test_a_ctrl_c_as_a_save_is_counted_or_uncounted_leaves_later_saves_where_they_are_asked(tmp_path, monkeypatch) -> None:
    """Before: a Ctrl-C as a save counted itself in flight (contextlib's
    ``__enter__`` of ``saving`` returning) or took the count off (its
    ``__exit__`` beginning) left it counted while the interrupt was alive
    (a REPL keeps the last one, and its exit then waited a minute for that
    save): a save in the handler took itself for a part of the interrupted
    one, and after an ``os.chdir`` its relative path was written in the
    folder the interrupted save began in. Now it is written where asked."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    wrong, n = [], 0

    def saved_in_the_new_folder() -> None:
        os.chdir(second)
        try:
            io.atomic_write_bytes("rescue.bin", b"rescue")
        finally:
            os.chdir(first)
        if not (second / "rescue.bin").exists():
            wrong.append((n, sorted(p.name for p in first.iterdir())))
        (second / "rescue.bin").unlink(missing_ok=True)

    monkeypatch.chdir(first)
    while True:
        n += 1
        if not interrupted_at(n, lambda: io.atomic_write_bytes("result.bin", b"new"),
                              in_code((io, ("atomic_write_all", "call_saving"))), handler=saved_in_the_new_folder):
            break
    assert n > 5, f"the sweep reached {n} points only"
    assert wrong == [], f"a Ctrl-C at points {wrong} sent the handler's save to the interrupted save's folder"


def plain_calls_say() -> tuple:
    """What a plain model says outside every scope: its refusal of a NaN in
    a row its mask marks present, a fit's PrecisionLossWarning, and a
    fit's refusal of rows that all standardise to 0."""
    nan_row = np.ones((2, 3), np.float32)
    nan_row[1, 0] = np.nan
    with pytest.raises(gm.NonFiniteError) as nan:
        small_model().encode({"visual": nan_row})
    with pytest.raises(gm.InvalidValueError) as constant:
        small_model().fit({m: np.ones((12, d), np.float32) for m, d in DIMS.items()}, epochs=1, batch_size=12,
                          progress=False)
    return str(nan.value), precision_warnings(), str(constant.value)


def _estimator_fit(views: list) -> None:
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    MultimodalEmbedder(embed_dim=4, hidden_dim=4, num_heads=1, encoder_hidden=(4,), encoder_output_dim=4,
                       shared_head=(4,), fused_neighbors=2, epochs=1, batch_size=64, patience=0,
                       random_state=0).fit(views)


# fit_views opens the same scopes by the same functions as the estimator (a sweep of it takes seconds)
@pytest.mark.parametrize("caller", ["uci.train", "MultimodalEmbedder.fit"])
def test_a_ctrl_c_as_a_recipe_opens_or_closes_its_scopes_leaves_plain_calls_in_its_handler_plain(caller) -> None:
    """Before: ``train`` and the estimator's ``fit`` (and ``fit_views``) opened
    their scopes (no mask; the views' names for warnings; the views' words
    for a refusal of constant rows) as ``with`` blocks: a Ctrl-C as one was
    entered or left kept it while the interrupt was alive, and in the
    handler a model's refusal of a NaN lost its "(a row marked present)",
    a fit's PrecisionLossWarning was named by the recipe's views (or not
    said), or its refusal of constant rows spoke of views it was not
    given. Now each says what it says outside every scope."""
    from grapheme_multimodal import _validation, sklearn as gm_sklearn, training, uci

    rng = np.random.default_rng(0)
    views = {"a": rng.normal(size=(40, 3)), "b": rng.normal(size=(40, 2))}
    settings = uci.TrainingSettings(embed_dim=4, hidden_dim=4, num_heads=1, encoder_hidden=(4,), encoder_output_dim=4,
                                    epochs=1, batch_size=64, fused_neighbors=2, neighborhood_neighbors=2)
    call, sites = {
        "uci.train": (lambda: uci.train({gm.Modality.VISUAL: views["a"], gm.Modality.AUDITORY: views["b"]}, settings),
                      (uci, ("train",))),
        "MultimodalEmbedder.fit": (lambda: _estimator_fit(list(views.values())),
                                   (gm_sklearn, ("_fit", "_train_member"))),
    }[caller]
    scopes = ((_validation, ("call_in_precision_scope", "call_taking_no_mask")),
              (training, ("call_with_constant_rows_refused_as",)))
    expected = plain_calls_say()
    wrong, n = [], 0

    def plain_calls_say_their_own() -> None:
        said = plain_calls_say()
        if said != expected:
            wrong.append((n, [s for s, e in zip(said, expected) if s != e]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        while True:
            n += 1
            if not interrupted_at(n, call, in_code(sites, *scopes), handler=plain_calls_say_their_own):
                break
    assert n > 5, f"the sweep reached {n} points only"
    assert wrong == [], f"{caller}: a Ctrl-C at points {[k for k, _ in wrong]} left in its handler {wrong[0][1]}"
