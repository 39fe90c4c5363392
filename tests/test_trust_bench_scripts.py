"""The benchmark scripts the docs tell a researcher to run, used as a
researcher reproducing the figures would: a mistaken flag or file is one
argparse line naming it (exit 2) before anything runs, never a traceback
after minutes of training with the results lost; what they print agrees
with what they count."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from conftest import REPO, load_script

pytest.importorskip("sklearn")

# the benchmark scripts, pure Python over the same calls on every Python: run once, on the main Python
# (.ci/python-versions.sh leaves main_only out on 3.9 and 3.13), as test_bench_smoke.py
pytestmark = pytest.mark.main_only

RESULTS = REPO / "benchmarks" / "results"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(REPO / "benchmarks"))  # the scripts import their siblings (jsonfile, the harness)
    try:
        yield types.SimpleNamespace(harness=load_script("benchmarks/uci_multifeature.py"),
                                    targets=load_script("benchmarks/uci_targets.py"))
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def _usage_error(main, argv, capsys) -> str:
    """The one-line error of ``main(argv)``, checked to be argparse's (exit 2)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage:") and "Traceback" not in "\n".join(err)
    return err[-1]


# ------------------------------------------------------------------ uci_multifeature.py: flags checked up front
@pytest.fixture
def harness(scripts, monkeypatch):
    h = scripts.harness
    monkeypatch.setattr(h, "RECIPE", h.RECIPE)  # restored after the test

    def never(*args, **kwargs):
        raise AssertionError("ran a split: the flags were not checked before the run")

    monkeypatch.setattr(h, "run_split", never)
    monkeypatch.setattr(h, "run_nutrimouse", never)
    return h


@pytest.mark.parametrize("argv, message", [
    # a results path found wrong only after the run: a traceback, every figure lost
    (["--json", "{tmp}"], "--json: '{tmp}' is a directory; expected a file name"),
    (["--json", "{tmp}/file.txt/out.json"], "--json: cannot write '{tmp}/file.txt/out.json': '{tmp}/file.txt' is not a directory"),
    # the library's traceback after the split's anchors (or after the data loaded)
    (["--splits", "-1"], "--splits: expected ints in [0, 2**32), got [-1]"),
    (["--seeds", "0", "-1"], "--seeds: expected ints in [0, 2**64), got [-1]"),
    (["--nutrimouse-seeds", "-2"], "--nutrimouse-seeds: expected ints in [0, 2**64), got [-2]"),
    # one run counted twice in the mean ± std; a split twice wrote a file uci_targets.py refuses
    (["--seeds", "0", "1", "0"], "--seeds: [0] given more than once; expected each once"),
    (["--splits", "3", "3"], "--splits: [3] given more than once; expected each once"),
    # exit 1 and no usage line
    (["--members", "0"], "--members: expected a positive number of models, got 0"),
    (["--set", "epoch=2"], "--set: unknown TrainingSettings fields ['epoch']"),
    (["--set", "epochs"], "--set: expected KEY=VALUE, got 'epochs'"),
    # a value of the wrong type: a traceback at the first training, after the anchors
    (["--set", "encoder_skip=maybe"], "--set: encoder_skip: expected a bool, got str"),
    (["--set", "encoder_hidden=[-3]"], "--set: encoder_hidden[0]: expected a positive int, got -3"),
])
def test_uci_multifeature_refuses_a_bad_flag_before_it_runs(harness, capsys, tmp_path, argv, message):
    (tmp_path / "file.txt").write_text("not a folder")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    err = _usage_error(harness.main, argv, capsys)
    assert ": error: " + message.replace("{tmp}", str(tmp_path)) in err


def test_uci_multifeature_json_check_leaves_no_file_behind(harness, capsys, tmp_path):
    # the probe of the folder writes nothing that stays; the run then writes the file
    out = tmp_path / "new" / "results.json"
    with pytest.raises(AssertionError, match="ran a split"):
        harness.main(["--json", str(out), "--no-nutrimouse"])
    assert list((tmp_path / "new").iterdir()) == []


def test_uci_multifeature_set_value_refused_by_training_is_a_usage_error(scripts, monkeypatch, capsys, tmp_path):
    # batch_size is fit's, not the model's: refused by the first training, after the first split's anchors
    h = scripts.harness
    monkeypatch.setattr(h, "RECIPE", h.RECIPE)
    out = tmp_path / "results.json"
    err = _usage_error(h.main, ["--splits", "0", "--seeds", "0", "--no-nutrimouse", "--set", "batch_size=0",
                                "--json", str(out)], capsys)
    assert err.endswith(": error: --set: batch_size: expected an int >= 1, got 0")
    assert not out.exists()


def test_uci_multifeature_does_not_print_below_raw_for_a_pair_it_counts_as_reached(scripts):
    # three runs' mean of 0.9875 rounds to 0.98749999...: "below raw" printed for a pair compare counts as reached
    h, targets = scripts.harness, scripts.targets
    from grapheme_multimodal import evaluation

    (split,) = [s for s in json.loads((RESULTS / "uci-neighborhood-t0.2-splits-0-3.json").read_text())
                ["uci_multiple_features"] if s["split_random_state"] == 0]
    assert split["summary"]["two_view_knn"]["fou+pix"]["mean"] < split["anchors"]["raw_two_view_knn"]["fou+pix"]
    lines: list = []
    data = types.SimpleNamespace(n_events=0, views=range(6))
    h.print_split(0, data, data, split["seeds"], evaluation.Anchors(**split["anchors"]), split["summary"], lines.append)
    below = [line.split()[0] for line in lines if line.endswith("below raw")]
    f = targets.split_figures(split)  # the count of compare, as the run's "fused >= raw on N of 15" line says
    assert len(below) == f.n_two_view - f.two_view_pairs == 2
    assert "fou+pix" not in below
    # uci_targets.py --shortfalls: the same pair is no shortfall (it listed "fou+pix +0.0 rows")
    short = targets.shortfalls(split)
    assert [s.name for s in short if "+" in s.name] == below


# ------------------------------------------------------------------ uci_targets.py: files it cannot score
def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _edited(tmp_path: Path, edit) -> str:
    doc = json.loads((RESULTS / "uci-multifeature.json").read_text())
    edit(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda t: str(t / "missing.json"), "missing.json: cannot read it: No such file or directory"),
    (lambda t: str(t), "cannot read it: Is a directory"),
    (lambda t: _write(t / "cut.json", (RESULTS / "uci-multifeature.json").read_text()[:3000]),
     "cut.json: not JSON (truncated?): "),
    (lambda t: _write(t / "bench.json", json.dumps({"rows": []})),
     "bench.json: expected the JSON of benchmarks/uci_multifeature.py --json"),
    (lambda t: _write(t / "list.json", "[1, 2]"),
     "list.json: expected the JSON of benchmarks/uci_multifeature.py --json"),
    # a Nutrimouse-only file: "targets missed: 0 of 0", as if every target were met
    (lambda t: str(RESULTS / "uci-ensemble3-nutrimouse.json"), "no UCI Multiple Features splits"),
    (lambda t: _edited(t, lambda d: d["uci_multiple_features"][0]["runs"].pop()),
     "uci_multiple_features[0]: expected as many runs as seeds (at least one), got seeds [0, 1, 2] and 2 runs"),
    (lambda t: _edited(t, lambda d: d["uci_multiple_features"][0]["runs"][0].pop("fused_knn")),
     "split 0: not the figures benchmarks/uci_multifeature.py writes (TypeError: "),
    (lambda t: _edited(t, lambda d: d["uci_multiple_features"][0]["anchors"].update(raw_knn="0.98")),
     "split 0: not the figures benchmarks/uci_multifeature.py writes (TypeError: "),
    (lambda t: _edited(t, lambda d: d["uci_multiple_features"].append(d["uci_multiple_features"][0])),
     "edited.json: split 0 appears more than once"),
    (lambda t: _edited(t, lambda d: d["uci_multiple_features"][0].update(seeds=[0, 0, 1])),
     "seeds [0, 0, 1] repeat a seed"),
])
def test_uci_targets_names_a_file_it_cannot_score(scripts, capsys, tmp_path, make, message):
    err = _usage_error(scripts.targets.main, [make(tmp_path)], capsys)
    assert ": error: " in err and message in err


def test_uci_targets_names_the_files_of_a_bad_baseline_or_seed(scripts, capsys, tmp_path):
    (tmp_path / "other.json").write_text("{}")
    recipe = str(RESULTS / "uci-multifeature.json")
    err = _usage_error(scripts.targets.main, [recipe, "--baseline", str(tmp_path / "other.json")], capsys)
    assert "other.json: expected the JSON of benchmarks/uci_multifeature.py --json" in err
    err = _usage_error(scripts.targets.main, [recipe, "--seeds", "7"], capsys)
    assert err.endswith(f"--seeds: split 0 of {recipe} has runs of seeds [0, 1, 2], none of [7]")
    # the same file twice: it named "another file"
    err = _usage_error(scripts.targets.main, [recipe, recipe], capsys)
    assert err.endswith(f"split 0 has runs of seeds [0, 1, 2] already read from {recipe}")


def test_uci_targets_still_scores_the_stored_files(scripts, capsys):
    assert scripts.targets.main([str(RESULTS / "uci-multifeature.json")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "targets missed: 2 of 16"


# ------------------------------------------------------------------ bench.py
BENCH = REPO / "benchmarks" / "bench.py"


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads: expected a positive number of threads, got 0"),  # pin_threads' traceback
    (["--repeats", "-3"], "--repeats: expected a positive number of samples, got -3"),  # IndexError after the run
    (["--repeats", "0"], "--repeats: expected a positive number of samples, got 0"),  # ran the default's samples unsaid
    (["--json", "{tmp}"], "--json: '{tmp}' is a directory; expected a file name"),  # a traceback after the run
])
def test_bench_refuses_a_bad_flag_before_it_runs(tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--no-torch", "--only", "featurise", *argv],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "... featurise" not in proc.stderr  # nothing ran
    assert proc.stderr.strip().splitlines()[-1] == "bench.py: error: " + message.replace("{tmp}", str(tmp_path))


# ------------------------------------------------------------------ compare.py
def _bench_doc(work: int, median: float, quick: bool) -> dict:
    row = {"section": "1. featurise", "case": "batch", "unit": "char", "kind": "throughput", "work_per_call": work,
           "value": {"ours": work / median}, "speedup_vs": {}, "seconds_per_call": {"ours": {"median": median}}}
    return {"settings": {"quick": quick}, "rows": [row]}


def test_compare_reads_speed_per_unit_of_work(tmp_path, capsys):
    # a --quick run's call featurises 1,453 characters, a full run's 13,802: per call, twice the
    # throughput read as 0.21x ("slower") beside the very throughputs it printed
    compare = load_script("benchmarks/compare.py")
    before = _write(tmp_path / "before.json", json.dumps(_bench_doc(1000, 1e-3, quick=True)))
    after = _write(tmp_path / "after.json", json.dumps(_bench_doc(10000, 5e-3, quick=False)))
    assert compare.main([before, after]) == 0
    out = capsys.readouterr()
    (line,) = [x for x in out.out.splitlines() if x.startswith("1. batch")]
    assert line.split()[2:5] == ["1e+06", "2e+06", "2.00x"]  # after / before, as the two throughputs say
    assert "one run is --quick and the other not" in out.err


@pytest.mark.parametrize("make, message", [
    (lambda t: str(t / "missing.json"), "missing.json: cannot read it: No such file or directory"),
    (lambda t: _write(t / "cut.json", json.dumps(_bench_doc(1, 1.0, True))[:40]), "cut.json: not JSON (truncated?)"),
    (lambda t: _write(t / "uci.json", (RESULTS / "uci-multifeature.json").read_text()),
     "uci.json: expected the JSON of benchmarks/bench.py --json"),
    (lambda t: _write(t / "other.json", json.dumps({"settings": {}, "rows": [{"section": "x", "case": "y"}]})),
     "other.json: expected the JSON of benchmarks/bench.py --json"),
])
def test_compare_names_a_file_it_cannot_read(tmp_path, capsys, make, message):
    compare = load_script("benchmarks/compare.py")
    good = _write(tmp_path / "good.json", json.dumps(_bench_doc(1000, 1e-3, quick=True)))
    err = _usage_error(compare.main, [good, make(tmp_path)], capsys)
    assert ": error: " in err and message in err


# ------------------------------------------------------------------ the other scripts that write --json
@pytest.mark.parametrize("script, argv", [
    ("anchors.py", ["--json", "{tmp}"]),
    ("uci_hidden_sketch_probe.py", ["--json", "{tmp}"]),
    ("uci_probe_recipe.py", ["--json", "{tmp}"]),
    ("ensemble_training_time.py", ["--json", "{tmp}"]),
    ("ensemble_training_time.py", ["--repeats", "0"]),  # "no median for empty data"
])
def test_probe_scripts_refuse_a_bad_flag_before_they_run(tmp_path, script, argv):
    # each found its --json folder only after minutes of training, in a traceback
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *argv],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{script}: error: --") and "Traceback" not in proc.stderr
    assert proc.stdout == ""  # nothing ran


# ------------------------------------------------------------------ examples/wl_binding.py
def test_wl_binding_words_of_too_few_letters_are_refused_not_drawn_forever():
    import numpy as np

    ex = load_script("examples/wl_binding.py")
    with pytest.raises(ValueError, match="length: words of 4 letters from 7 make 2401 distinct words; expected at least the 2402"):
        ex.make_pairs(2402, 4, np.random.default_rng(0))
    texts, _ = ex.make_pairs(49, 2, np.random.default_rng(0))  # every word there is: still drawn
    assert sorted(texts) == sorted({a + b for a in ex.ALPHABET for b in ex.ALPHABET})


@pytest.mark.parametrize("argv, message", [
    (["--length", "4"], "--length: words of 4 letters from 7 make 2401 distinct words; expected at least "
                        "--n-train + --n-test = 4200"),  # the defaults' 4,200 words: drawn forever
    (["--n-test", "1"], "--n-test: expected an int >= 2, got 1"),  # roc_auc's traceback, no negatives
    (["--epochs", "-1"], "--epochs: expected an int >= 0, got -1"),
    (["--seed", "-1"], "--seed: expected an int >= 0, got -1"),
    (["--dim", "0"], "--dim: expected an int in [1, 4194304] (the number of hash buckets), got 0"),
])
def test_wl_binding_refuses_a_bad_flag_before_it_runs(argv, message):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "wl_binding.py"), *argv],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "wl_binding.py: error: " + message
