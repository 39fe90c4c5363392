"""A black-box audit of sizes and counts at their extremes (0, 1, -1, 2**31,
2**63, 2**64, beyond 64 bits, numpy ints of every width, bools, 3.0) across
the public API's int-valued options: what it turned up, each test failing
before its fix, and what held (last tests). The options' values one by one
held (a clear exception naming the option, or accepted and correct); what
broke were sizes in combination, memory a call takes in copies and threads
that no check counted: cross-validation folds each copying the model, the
members of an ensemble all training at once, and the bytes of a save. Past
memory, a Rust allocation that fails aborts the whole process, where no
Python ``try`` catches it, so the reproductions run in a child under
``RLIMIT_AS``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import TooLargeError, _parallel, _validation, uci
from grapheme_multimodal.sklearn import MultimodalEmbedder
from grapheme_multimodal.stopping import fit_with_stopping

from conftest import cli_train_args, model_state as state
from conftest import two_view_data as views, two_view_model as model

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")

STOP = dict(epochs=1, batch_size=10, progress=False, validation_fraction=0.1, patience=2, monitor="val_total")


def _child(code: str, limit: int = 1 << 30) -> str:
    """``code`` run in a fresh interpreter under an address-space limit; its
    stdout, failing with its output unless it exits 0 (a Rust abort is
    SIGABRT: returncode -6)."""
    prelude = (f"import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
               f"sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})\n"
               "import numpy as np\nimport grapheme_multimodal as gm\n")
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


# ------------------------------------------------------------- what broke
@linux_only
def test_cross_validation_folds_beyond_memory_are_refused_naming_cv_folds_not_an_abort():
    """fit_with_stopping's cross-validation trains a copy of the model per
    fold, all held at once, and nothing counted them: a model of 5 million
    parameters (its own state fits easily under 1 GiB) with 5 folds aborted
    the process ("memory allocation of ... bytes failed", SIGABRT) copying
    them, one of 6.7 million was numpy's bare MemoryError."""
    out = _child("""
        from conftest import two_view_data, TWO_VIEW_DIMS, model_state
        from grapheme_multimodal.stopping import fit_with_stopping
        for width in (30000, 40000):
            m = gm.LearnableMultiModal(input_dims=TWO_VIEW_DIMS, embed_dim=8, hidden_dim=8, num_heads=2,
                                       encoder_hidden=(width,))
            before = model_state(m)
            try:
                fit_with_stopping(m, two_view_data(20), epochs=1, batch_size=10, progress=False,
                                  validation_fraction=0.1, patience=2, monitor="val_total", cv_folds=5)
            except gm.TooLargeError as err:
                print(err.arg, model_state(m) == before, str(err).startswith("cv_folds: its 5 cross-validation folds"))
    """)
    assert out.splitlines() == ["cv_folds True True"] * 2, out


def test_folds_past_the_budget_are_refused_before_any_trains_and_a_slice_is_not(monkeypatch):
    m = model()
    before = state(m)
    trained = []
    real_fit = gm.LearnableMultiModal.fit
    monkeypatch.setattr(gm.LearnableMultiModal, "fit", lambda self, *a, **k: trained.append(1) or real_fit(self, *a, **k))
    params = m.num_parameters()
    monkeypatch.setattr(_validation, "memory_budget", lambda: 100 * params)  # the model, not five copies of it
    with pytest.raises(TooLargeError, match=r"^cv_folds: its 5 cross-validation folds each train a copy of the model "
                                            r".*expected fewer cv_folds, or a validation_fraction") as err:
        fit_with_stopping(m, views(20), cv_folds=5, **STOP)
    assert err.value.arg == "cv_folds" and state(m) == before and not trained
    # a slice held out (40 rows, 8 of them, at least min_validation_rows) copies nothing: it trains as before
    fit_with_stopping(m, views(40), **{**STOP, "validation_fraction": 0.2}, min_validation_rows=8)
    assert m.epochs_trained == 1


def _spy_jobs(monkeypatch) -> list:
    """The ``n_jobs`` each run_tasks call is given, wherever it is imported."""
    calls = []
    real = _parallel.run_tasks

    def spy(tasks, n_jobs):
        calls.append(n_jobs)
        return real(tasks, n_jobs)

    from grapheme_multimodal import cli, sklearn
    for module in (_parallel, uci, cli, sklearn):
        monkeypatch.setattr(module, "run_tasks", spy)
    return calls


def _one_member_at_a_time_budget(params: int, members: int) -> int:
    """Room for ``members`` trained members (36 bytes a parameter) and for one
    member's 5 folds at a time (5 copies of 24 bytes a parameter and a step's
    32: stopping.py) with its thread (72 MiB), not for two members' at once."""
    return 36 * params * members + (5 * 24 + 32) * params + 2**27


def test_train_members_are_trained_at_once_only_as_many_as_memory_holds(tmp_path, monkeypatch, capsys):
    """`train --members K` trained all K at once, each copying its model for
    every cross-validation fold: under `ulimit -v 3G`, 16 members of a model
    of 1.1 million parameters (room for all 16 trained) aborted the process
    mid-training. They now train as many at a time as memory holds, bit for
    bit as they did."""
    from grapheme_multimodal.cli import main

    args = cli_train_args(tmp_path, views(20), tmp_path / "all.safetensors")
    assert main(args + ["--members", "3"]) == 0
    all_at_once = gm.load_models(tmp_path / "all.safetensors")
    params = all_at_once[0].num_parameters()
    calls = _spy_jobs(monkeypatch)
    monkeypatch.setattr(_validation, "memory_budget", lambda: _one_member_at_a_time_budget(params, 3))
    assert main(cli_train_args(tmp_path, views(20), tmp_path / "few.safetensors") + ["--members", "3"]) == 0
    assert calls == [1]
    for a, b in zip(all_at_once, gm.load_models(tmp_path / "few.safetensors")):
        assert all(np.array_equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    capsys.readouterr()


@pytest.mark.parametrize("fit", ["estimator", "fit_ensemble"])
def test_members_at_once_of_the_estimator_and_fit_ensemble_are_as_many_as_memory_holds(monkeypatch, fit):
    xs = list(views(20).values())
    small = dict(epochs=1, batch_size=10, embed_dim=8, hidden_dim=8, num_heads=2)
    settings = uci.TrainingSettings(**small)
    params = MultimodalEmbedder(**small).fit(xs).model_.num_parameters()
    calls = _spy_jobs(monkeypatch)
    monkeypatch.setattr(_validation, "memory_budget", lambda: _one_member_at_a_time_budget(params, 3))
    if fit == "estimator":
        MultimodalEmbedder(**small, n_members=3, n_jobs=3).fit(xs)
    else:
        uci.fit_ensemble(dict(zip(["a", "b"], xs)), 0, members=3, settings=settings, n_jobs=3)
    assert calls == [1]


def test_a_save_whose_bytes_do_not_fit_is_refused_naming_the_file_not_an_abort(tmp_path, monkeypatch, capsys):
    """safetensors makes the file's bytes in memory at once, in Rust: an
    ensemble that fitted trained (16 members under `ulimit -v 3G`), then
    aborted the process saving it. Refused now, as the MemoryError of a save
    was, naming the file (--output in grapheme-mm), with nothing written."""
    from grapheme_multimodal.cli import main

    m = model()
    m.fit(views(20), epochs=1, batch_size=10, progress=False)
    monkeypatch.setattr(_validation, "memory_budget", lambda: 1000)
    with pytest.raises(TooLargeError, match=r"^path: not enough memory to write .*nothing was written") as err:
        m.save(tmp_path / "m.safetensors")
    with pytest.raises(TooLargeError, match=r"^path: not enough memory to write"):
        gm.save_ensemble([m, m], tmp_path / "e.safetensors")
    assert err.value.arg == "path" and not list(tmp_path.iterdir())
    monkeypatch.undo()
    args = cli_train_args(tmp_path, views(20), tmp_path / "cli.safetensors")
    monkeypatch.setattr(gm.LearnableMultiModal, "save", lambda self, path, **k: _refuse(path))
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("grapheme-mm: error: --output: not enough memory to write")


def _refuse(path):
    from grapheme_multimodal.io import not_enough_memory_to_write
    raise not_enough_memory_to_write(path, 1)


# ------------------------------------------------------------- what held
@pytest.mark.parametrize("value", [0, -1, 2**63, 2**64, 2**100, np.uint64(2**63), True, 3.0])
@pytest.mark.parametrize("name", ["embed_dim", "hidden_dim", "num_heads", "buffer_size"])
def test_extreme_widths_are_named_errors(name, value):
    with pytest.raises((TypeError, gm.InvalidValueError, TooLargeError), match=rf"^{name}: "):
        model(**{name: value})


@pytest.mark.parametrize("value", [2**63, 2**64, 2**100, np.uint64(2**63)])
def test_batch_size_beyond_the_data_trains_one_batch_and_epochs_beyond_adams_count_are_refused(value):
    m = model()
    m.fit(views(20), epochs=1, batch_size=value, progress=False)
    assert m.epochs_trained == 1 and m.optimizer_state()["step"] == 1
    before = state(m)
    with pytest.raises(gm.InvalidValueError, match=r"^epochs: .* steps; expected at most"):
        m.fit(views(20), epochs=value, batch_size=10, progress=False)
    assert state(m) == before


def test_a_too_large_embed_dim_is_named_not_the_head_that_ends_in_it() -> None:
    """The recipe's shared head ends in ``embed_dim``: of the equally wide
    fields the core named the last, ``shared_head`` (``--shared-head`` on the
    command line), which the user never set."""
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    with pytest.raises(TooLargeError, match=r"^embed_dim: ") as err:
        MultimodalEmbedder(epochs=1, embed_dim=2**31).fit([rng.normal(size=(20, 3)), rng.normal(size=(20, 2))])
    assert err.value.arg == "embed_dim"
    with pytest.raises(TooLargeError, match=r"^embed_dim: "):
        gm.LearnableMultiModal(embed_dim=2**31, shared_head=(2**31,))
    with pytest.raises(TooLargeError, match=r"^shared_head: "):  # the widest alone is still named
        gm.LearnableMultiModal(embed_dim=8, shared_head=(2**30, 8))
