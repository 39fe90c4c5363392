"""Leftovers of earlier sessions, each closed the way a user would expect:

1. a prioritised sample's importance weights are never 0: priorities that
   span many orders of magnitude (or a huge ``alpha * beta``) rounded the
   likelier experiences' weights to 0 in float32, so a batch of them had a
   weighted-mean loss of 0 / 0; they are now computed in float64 and a weight
   below float32's smallest normal is raised to it;
2. a benchmark's ``--json`` results are never lost to a write that fails at
   the end of the run (the folder replaced meanwhile, a full disk): they go
   to a new file in the temp folder, named on stderr, exit status 1 (it was
   a traceback, the whole run lost); ``ray_scaling.py`` checks its ``--json``
   before the run as the others do;
3. the interpreter's exit while a daemon thread saves a model waits for the
   save, which completes (it aborted the process, "FATAL: exception not
   rethrown": safetensors' serialiser re-took the GIL during finalization);
   a save another thread begins after exit began is refused, and the wait is
   bounded;
6. the command line shows a file name that holds a control character (a
   newline, a tab, an escape) quoted and escaped, in its errors and its
   "saved"/"wrote" lines alike: a newline was printed as a space (or broke the
   line), so the user could not tell which file; a name of two spaces is no
   longer printed with one. Other names are printed as before.

Each test failed before its fix."""

from __future__ import annotations

import decimal
import errno
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, as_unit, load_script
from grapheme_multimodal.buffer import ExperienceBuffer

TINY32 = float(np.finfo(np.float32).tiny)


def _buffer(priorities) -> ExperienceBuffer:
    rng = np.random.default_rng(3)
    n, e = len(priorities), 8
    buffer = ExperienceBuffer(n, seed=0)
    buffer.extend(as_unit(rng.normal(size=(n, 7, e))), np.ones((n, 7), bool), rng.normal(size=(n, e)),
                  rng.uniform(size=(n, 7, 7)), np.linspace(-1, 1, n))
    buffer.update_priorities(np.arange(n), priorities)
    return buffer


def _reference(priorities, pos, alpha: float, beta: float) -> np.ndarray:
    """w_i = (N P(i))^-beta / max_j (N P(j))^-beta = (p_i / p_min)^-(alpha beta), to 40 digits
    (Decimal: no overflow or underflow at any alpha, beta), then raised to float32's smallest normal."""
    ctx = decimal.Context(prec=40, Emin=-10**9, Emax=10**9)
    ab = ctx.multiply(decimal.Decimal(alpha), decimal.Decimal(beta))
    low = min(decimal.Decimal(float(p)) for p in priorities)
    out = []
    for i in pos:
        ratio = ctx.divide(decimal.Decimal(float(priorities[i])), low)
        w = ctx.exp(ctx.minus(ctx.multiply(ab, ctx.ln(ratio))))
        out.append(max(float(w), TINY32))
    return np.array(out)


PRIORITIES = np.logspace(-300, 308, 12)


@pytest.mark.parametrize("alpha, beta", [
    (0.6, 0.4), (1.0, 1.0), (1e-3, 1e-3), (1e-300, 1e-300), (1e300, 1e300), (0.6, 1e300),
    (1e308, 1e-308), (1e-308, 1e308), (0.05, 0.05),
])
def test_importance_weights_of_priorities_spanning_the_float64_range_are_never_0(alpha, beta) -> None:
    buffer = _buffer(PRIORITIES)
    s = buffer.sample(40, prioritized=True, alpha=alpha, beta=beta, replace=True)
    w = s.weights
    assert w.dtype == np.float32
    # was all 0 at (0.6, 0.4): the likelier experiences (p ~ 1e308) weigh (1e608)^-0.24 = 1e-146
    assert np.isfinite(w).all() and (w > 0).all() and (w <= 1).all(), w
    ref = _reference(PRIORITIES, s.indices, alpha, beta)
    np.testing.assert_allclose(w, ref, rtol=2 * np.finfo(np.float32).eps, atol=0)
    # a weighted mean over the batch is defined (it was 0 / 0 = nan)
    loss = np.ones(len(w), np.float32)
    assert np.isfinite((w * loss).sum() / w.sum())


def test_importance_weights_that_float32_holds_are_the_float64_formula_rounded() -> None:
    pri = np.geomspace(1e-3, 1e3, 10)
    s = _buffer(pri).sample(30, prioritized=True, alpha=0.7, beta=0.5, replace=True)
    n = len(pri)
    probs = pri ** 0.7 / (pri ** 0.7).sum()
    direct = (n * probs) ** -0.5 / ((n * probs) ** -0.5).max()  # the PER formula as written, float64
    np.testing.assert_allclose(s.weights, direct[s.indices], rtol=2 * np.finfo(np.float32).eps, atol=0)
    assert s.weights.max() <= 1 and (s.weights[s.indices == 0] == 1).all()


@pytest.mark.parametrize("alpha, beta, expected", [(1e308, 1e-308, 0.1), (1e308, 5e-309, 0.1 ** 0.5)])
def test_importance_weight_with_a_huge_alpha_and_a_tiny_beta_uses_their_product(alpha, beta, expected) -> None:
    # alpha * log(10 / 1) overflows to inf though alpha * beta * log(10) is log(10): the weight was 0
    pri = np.array([1.0, 10.0, 1.0, 10.0])
    s = _buffer(pri).sample(4, prioritized=True, alpha=alpha, beta=beta, replace=True)
    assert (pri[s.indices] == 10).all()  # alpha that large draws the largest priority only
    np.testing.assert_allclose(s.weights, _reference(pri, s.indices, alpha, beta), rtol=2 * np.finfo(np.float32).eps)
    np.testing.assert_allclose(s.weights, expected, rtol=1e-6)


# ------------------------------------------------------------------ 2. benchmark results never lost at the end
BENCHMARKS = REPO / "benchmarks"


@pytest.fixture
def jsonfile(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))  # the fallback's folder
    (tmp_path / "temp").mkdir()
    return load_script("benchmarks/jsonfile.py")


def _rescued(capsys, tmp_path, target: Path, payload) -> Path:
    """The fallback file the failed write of ``payload`` to ``target`` named on stderr, checked to hold it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: could not write the results to {str(target)!r}: " in err
    (named,) = re.findall(r"the results are in '([^']+)' instead", err)
    (held,) = (tmp_path / "temp").iterdir()
    assert named == str(held)
    assert json.loads(held.read_text()) == payload
    return held


def test_a_results_write_into_a_folder_replaced_by_a_file_goes_to_the_temp_folder(jsonfile, capsys, tmp_path):
    target = tmp_path / "out" / "results.json"
    assert jsonfile.writable_output(target) is None  # the check before the run passed
    (tmp_path / "out").rmdir()
    (tmp_path / "out").write_text("a file now")  # mid-run
    payload = {"rows": [1, 2, 3], "seconds": 3600.0}
    with pytest.raises(SystemExit) as info:  # was FileExistsError's traceback, the results lost
        jsonfile.write_json(target, payload)
    assert info.value.code == 1
    held = _rescued(capsys, tmp_path, target, payload)
    assert held.name.startswith("results-") and held.suffix == ".json"


def test_a_results_write_to_a_full_disk_goes_to_the_temp_folder(jsonfile, capsys, tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    target.write_text('{"previous": "run"}')
    real = jsonfile.atomic_write_bytes

    def full(path, data):
        if Path(path).parent == tmp_path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(jsonfile, "atomic_write_bytes", full)
    with pytest.raises(SystemExit) as info:
        jsonfile.write_json(target, {"a": [1.5]})
    assert info.value.code == 1
    _rescued(capsys, tmp_path, target, {"a": [1.5]})
    assert target.read_text() == '{"previous": "run"}'  # the atomic write left the earlier file whole


def test_results_no_folder_takes_are_printed_to_stderr(jsonfile, capsys, tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonfile, "atomic_write_bytes", full)
    with pytest.raises(SystemExit) as info:
        jsonfile.write_json(tmp_path / "results.json", {"a": 1})
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "nor to the temp folder (No space left on device); the results follow:" in err
    assert json.loads(err.split("the results follow:\n", 1)[1]) == {"a": 1}
    assert list((tmp_path / "temp").iterdir()) == []  # no empty placeholder left behind


def test_every_benchmark_script_with_a_json_flag_writes_through_the_rescuing_writer():
    # a guard for the scripts to come: each writes --json by jsonfile.write_json (or the harness's write_results)
    writers = [p for p in BENCHMARKS.glob("*.py") if 'add_argument("--json"' in p.read_text()]
    assert len(writers) >= 9
    for path in writers:
        text = path.read_text()
        assert "json.dump(" not in text and "write_text(" not in text, path.name
        assert re.search(r"^\s*from jsonfile import .*\bwrite_json\b", text, re.M) or "harness.write_results(" in text, path.name


def test_uci_multifeature_keeps_the_results_of_a_run_whose_folder_went_away(jsonfile, capsys, tmp_path, monkeypatch):
    # end to end: the run ends, the final write fails, the figures are in the temp folder and the exit status is 1
    h = load_script("benchmarks/uci_multifeature.py")
    out = tmp_path / "out" / "results.json"

    def run_split(split, seeds, *args, **kwargs):
        (tmp_path / "out").rmdir()
        (tmp_path / "out").write_text("not a folder")  # while the split ran
        return {"split_random_state": split, "seeds": seeds, "figure": 0.97}

    monkeypatch.setattr(h, "run_split", run_split)
    with pytest.raises(SystemExit) as info:
        h.main(["--splits", "0", "--seeds", "0", "--no-nutrimouse", "--json", str(out)])
    assert info.value.code == 1
    printed = capsys.readouterr()
    assert f"could not write the results to {str(out)!r}: File exists: '{tmp_path / 'out'}'" in printed.err
    (held,) = (tmp_path / "temp").iterdir()
    doc = json.loads(held.read_text())
    assert doc["uci_multiple_features"] == [{"split_random_state": 0, "seeds": [0], "figure": 0.97}]
    assert f"wrote {out}" not in printed.out


def test_ray_scaling_refuses_an_unwritable_json_before_it_runs(tmp_path):
    pytest.importorskip("ray")
    # it had no check: a directory given was found after the whole run, in a traceback
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "ray_scaling.py"), "--quick", "--json", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"ray_scaling.py: error: --json: {str(tmp_path)!r} is a directory; expected a file name")


# ------------------------------------------------------------------ 3. saves in flight at the interpreter's exit
def _run_script(source: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source), *args], capture_output=True, text=True,
                          timeout=120)


SAVE_AT_EXIT = """
    import sys, threading
    import safetensors.numpy
    import grapheme_multimodal as gm

    model = gm.LearnableMultiModal(input_dims=[1024] * 7, seed=0)  # ~2 MB: serialising outlasts the exit's start
    inside = threading.Event()
    serialise = safetensors.numpy.save

    def save(*args, **kwargs):  # lets the main thread end the program while the daemon thread serialises
        inside.set()
        return serialise(*args, **kwargs)

    safetensors.numpy.save = save
    threading.Thread(target=model.save, args=(sys.argv[1],), daemon=True).start()
    inside.wait()
"""


def test_the_interpreter_exit_waits_for_a_daemon_thread_s_save_which_completes(tmp_path) -> None:
    import grapheme_multimodal as gm

    expected = gm.LearnableMultiModal(input_dims=[1024] * 7, seed=0).state_dict()
    for run in range(4):  # it aborted nearly every run
        path = tmp_path / f"model{run}.safetensors"
        proc = _run_script(SAVE_AT_EXIT, str(path))
        assert proc.returncode == 0 and "FATAL" not in proc.stderr, (proc.returncode, proc.stderr[-2000:])
        back = gm.LearnableMultiModal.load(path).state_dict()  # the save the user asked for, whole
        assert all(np.array_equal(back[k], v) for k, v in expected.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model{run}.safetensors" for run in range(4)]


def test_a_save_another_thread_begins_after_exit_began_is_refused_and_writes_nothing(tmp_path) -> None:
    proc = _run_script("""
        import atexit, sys, threading
        import grapheme_multimodal as gm

        model = gm.LearnableMultiModal(seed=0)
        model.save(sys.argv[1])  # an earlier save, which stays
        errors = []

        def late():  # runs after the library's exit hook (atexit runs the later-registered first)
            def save():
                try:
                    model.save(sys.argv[1])
                except RuntimeError as err:
                    errors.append(str(err))
            t = threading.Thread(target=save, daemon=True)
            t.start()
            t.join()  # would wait for ever were the thread blocked instead
            main_thread_save = sys.argv[1] + ".main"
            model.save(main_thread_save)  # the main thread's own saves still work during exit
            print(errors[0])

        atexit.register(late)
        import grapheme_multimodal.io  # noqa: the hook registered at import, before `late`
        atexit.unregister(grapheme_multimodal.io._wait_for_saves)
        atexit.register(grapheme_multimodal.io._wait_for_saves)  # now it runs first
    """, str(tmp_path / "model.safetensors"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (f"path: {str(tmp_path / 'model.safetensors')!r} was not saved: the interpreter is "
                                   "exiting, and a save another thread begins now would be stopped half-way (finish "
                                   "saves before the program ends, or join the thread that saves)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "model.safetensors.main"]


def test_the_exit_s_wait_for_a_save_that_never_ends_is_bounded_and_leaves_the_target_as_it_was(tmp_path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"earlier")
    proc = _run_script("""
        import sys, threading
        from grapheme_multimodal import io

        io.EXIT_WAIT_S = 0.2
        writing = threading.Event()

        def stuck(f):  # a write that never ends (a hung network file system)
            f.write(b"half")
            writing.set()
            threading.Event().wait()

        threading.Thread(target=io.atomic_write, args=(sys.argv[1], stuck), daemon=True).start()
        writing.wait()
    """, str(target))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ("grapheme_multimodal: 1 save(s) still in progress after 0.2 s at exit; not "
                                   "waiting longer (their files stay as they were)")
    assert target.read_bytes() == b"earlier"  # never a half-written file at the target


# ------------------------------------------------------------------ 6. the command line's file names with control characters
CLI_SMALL = ["--epochs", "1", "--embed-dim", "8", "--hidden-dim", "8", "--heads", "2", "--no-progress"]


@pytest.fixture(scope="module")
def named_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)
    for name in ("a.npy", "a\nb.npy", "tab\there.npy"):
        np.save(d / name, rng.normal(size=(24, 6)).astype(np.float32))
    np.save(d / "b.npy", rng.normal(size=(24, 4)).astype(np.float32))
    np.save(d / "short\x1b[2J.npy", rng.normal(size=(20, 4)).astype(np.float32))  # an escape sequence: clears a terminal
    (d / "bad\nfile.npy").write_bytes(b"garbage")
    (d / "bad\nfile.csv").write_text("a,b\n1,2\n3,x\n")
    return d


def _cli(capsys, argv, code):
    from grapheme_multimodal.cli import main

    assert main(argv) == code
    out, err = capsys.readouterr()
    return out, err


def _error_line(capsys, argv) -> str:
    _, err = _cli(capsys, argv, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "), err
    return lines[0]


@pytest.mark.parametrize("visual, auditory, expected", [
    # each was the name with a space for the newline: "file not found: missing file.npy"
    ("missing\nfile.npy", "b.npy", "visual: file not found: '{d}/missing\\nfile.npy'"),
    ("bad\nfile.npy", "b.npy", "'{d}/bad\\nfile.npy': not a numeric .npy file"),
    ("bad\nfile.csv", "b.npy", "'{d}/bad\\nfile.csv': row 1 (line 3) has a non-numeric value 'x'"),
    ("tab\there.npy", "short\x1b[2J.npy", "rows are not aligned across modalities (visual='{d}/tab\\there.npy': 24, "
                                            "auditory='{d}/short\\x1b[2J.npy': 20)"),
])
def test_a_file_name_with_a_control_character_is_shown_escaped_in_an_error(named_files, capsys, visual, auditory,
                                                                            expected) -> None:
    d = named_files
    line = _error_line(capsys, ["train", "-m", f"visual={d / visual}", "-m", f"auditory={d / auditory}", *CLI_SMALL,
                                "-o", str(d / "never.safetensors")])
    assert expected.replace("{d}", str(d)) in line, line
    assert "\x1b" not in line and "\t" not in line


def test_a_file_name_with_a_newline_is_shown_escaped_when_saved_written_and_refused(named_files, capsys) -> None:
    d = named_files
    model, visual = d / "model\n2.safetensors", d / "a\nb.npy"
    out, _ = _cli(capsys, ["train", "-m", f"visual={visual}", "-m", f"auditory={d / 'b.npy'}", *CLI_SMALL,
                           "-o", str(model)], 0)
    assert out.splitlines()[-1] == f"saved {str(model)!r}"  # was "saved .../model" and "2.safetensors" on two lines
    line = _error_line(capsys, ["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", *CLI_SMALL,
                                "-o", str(model)])
    assert line == (f"grapheme-mm: error: --output: {str(model)!r} already exists; pass --overwrite to replace it, or "
                    "choose another name")
    emb = d / "emb\r.npy"
    out, _ = _cli(capsys, ["embed", str(model), "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}",
                           "-o", str(emb)], 0)
    assert out.splitlines() == [f"wrote fused embeddings (24, 8) to {str(emb)!r}"]
    out, _ = _cli(capsys, ["info", str(model)], 0)
    assert out.splitlines()[0] == f"checkpoint: {str(model)!r}"


def test_ordinary_names_and_names_of_two_spaces_are_printed_as_they_are(named_files, capsys) -> None:
    d = named_files
    line = _error_line(capsys, ["train", "-m", f"visual={d / 'miss  ing.npy'}", "-m", f"auditory={d / 'b.npy'}",
                                *CLI_SMALL])
    assert line == f"grapheme-mm: error: visual: file not found: {d / 'miss  ing.npy'}"  # was "miss ing.npy"
    model = d / "my  model.safetensors"
    out, _ = _cli(capsys, ["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", *CLI_SMALL,
                           "-o", str(model)], 0)
    assert out.splitlines()[-1] == f"saved {model}"
    line = _error_line(capsys, ["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", *CLI_SMALL,
                                "-o", str(model)])
    assert line == (f"grapheme-mm: error: --output: {model} already exists; pass --overwrite to replace it, or choose "
                    "another name")
