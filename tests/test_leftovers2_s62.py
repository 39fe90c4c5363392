"""Leftovers of session 62 (second list): pickles that travel between numpy
majors, the import-time warning of unreadable settings said once, the name
in an error of a racing first append."""

import copy
import glob
import os
import pickle
import runpy
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from pickle_globals import numpy_globals

REPO = Path(__file__).resolve().parent.parent

# What one interpreter pickles and what the other reads back: `write` pickles the package's objects and
# stores, as .npz (which every numpy reads), what they give after; `read` unpickles the other side's and
# checks that they give the same, bit for bit (run here in-process, and in the other interpreter).
_EXCHANGE = textwrap.dedent('''
    import pickle
    import warnings
    from pathlib import Path

    import numpy as np

    import grapheme_multimodal as gm
    from grapheme_multimodal.evaluation import ExactCCA
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    DIMS = {"visual": 4, "auditory": 3}


    def data():
        rng = np.random.default_rng(0)
        x = {name: rng.normal(size=(8, d)).astype(np.float32) for name, d in DIMS.items()}
        mask = np.zeros((8, 7), dtype=bool)
        mask[:, :2] = True
        return x, mask


    def objects():
        """A trained model with gradients pending and a filled buffer (a batch and an experience of it),
        its weight average, a fresh model and buffer, fitted and unfitted embedders, a fitted ExactCCA, a
        graph, an event of features and a graph."""
        x, mask = data()
        config = gm.LearnableMultiModalConfig(embed_dim=4, hidden_dim=4, num_heads=2, buffer_size=6, seed=0,
                                              input_dims=dict(DIMS))
        model = gm.LearnableMultiModal(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, mask=mask, epochs=2, batch_size=4, progress=False, seed=0, ema_decay=0.5)
            average = model.weight_average
            model.record_batch(x, mask, rewards=np.linspace(0, 1, 8, dtype=np.float32))
            model.backward(x, mask)
            embedder = MultimodalEmbedder(embed_dim=4, hidden_dim=4, num_heads=1, epochs=1, batch_size=4,
                                          random_state=0).fit(list(x.values()))
        return {"model": model, "new_model": gm.LearnableMultiModal(seed=0), "buffer": model.experience,
                "batch": model.experience.batch(), "experience": model.experience[0],
                "new_buffer": gm.ExperienceBuffer(10, seed=3), "embedder": embedder,
                "unfitted": MultimodalEmbedder(embed_dim=8), "graph": gm.Graph.from_text("a cat sat"),
                "cca": ExactCCA(2).fit(x["visual"], x["auditory"]), "average": average,
                "event": gm.MultiModalEvent(3, [gm.ModalFeatures(x["visual"][0], gm.Modality.VISUAL),
                                                gm.ModalGraph(gm.Graph.from_text("a dog"), gm.Modality.TACTILE)])}


    def facts(objs):
        """What the objects give: weights after the pending step, buffer contents and the next draws."""
        x, mask = data()
        out = {}
        objs["model"].step()
        out.update({"model/" + k: v for k, v in objs["model"].state_dict().items()})
        out.update({"new_model/" + k: v for k, v in objs["new_model"].state_dict().items()})
        out["model/epochs_trained"] = np.array(objs["model"].epochs_trained)
        for name in ("buffer", "new_buffer"):
            buffer = objs[name]
            if len(buffer):
                batch = buffer.batch()
                out.update({f"{name}/{k}": getattr(batch, k) for k in ("embeddings", "fused", "rewards", "mask")})
                out[name + "/inputs"] = batch.inputs[0]
                out[name + "/sample"] = buffer.sample(3).indices
            out[name + "/draws"] = np.array(buffer._rng.bit_generator.random_raw(4), dtype=np.uint64)
        batch, experience = objs["batch"], objs["experience"]
        out.update({"batch/" + k: getattr(batch, k) for k in ("embeddings", "rewards", "indices", "weights", "has_inputs")})
        out["batch/inputs"] = batch.inputs[1]
        out.update({"experience/" + k: getattr(experience, k) for k in ("embeddings", "mask", "fused", "pair_strengths")})
        out["experience/inputs"] = experience.inputs[0]
        out["embedder/transform"] = objs["embedder"].transform(list(x.values()))
        out["unfitted/embed_dim"] = np.array(objs["unfitted"].embed_dim)
        out["graph/fingerprint"] = gm.fingerprints([objs["graph"]])
        out["cca/x"], out["cca/y"] = objs["cca"].transform(x["visual"], x["auditory"])
        out.update({"average/mean/" + k: v for k, v in objs["average"].mean.items()})
        out.update({"average/trained/" + k: v for k, v in objs["average"].trained.items()})
        features, graph = objs["event"].components
        out["event/features"] = features.features
        out["event/graph"] = gm.fingerprints([graph.graph])
        return out


    def write(folder):
        objs = objects()
        with open(Path(folder) / "objects.pkl", "wb") as f:
            pickle.dump(objs, f)
        np.savez(Path(folder) / "facts.npz", **facts(objs))


    def read(folder):
        with open(Path(folder) / "objects.pkl", "rb") as f:
            objs = pickle.load(f)
        got = facts(objs)
        with np.load(Path(folder) / "facts.npz") as z:
            expected = dict(z)
        assert sorted(got) == sorted(expected), (sorted(got), sorted(expected))
        for key, value in expected.items():
            assert got[key].dtype == value.dtype and np.array_equal(got[key], value, equal_nan=True), key


    if __name__ == "__main__":
        import sys
        read(sys.argv[1])
        write(sys.argv[2])
''')


def _numpy_major(python: str) -> "int | None":
    # a venv's installed numpy by its metadata's folder name (starting the interpreter costs a second)
    installed = glob.glob(str(Path(python).parent.parent / "lib" / "python*" / "site-packages" / "numpy-*.dist-info"))
    if len(installed) == 1:
        return int(Path(installed[0]).name.split("-")[1].split(".")[0])
    try:
        done = subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                              text=True, timeout=60)
    except OSError:
        return None
    return int(done.stdout.split(".")[0]) if done.returncode == 0 else None


def _other_numpy_python() -> "str | None":
    """An interpreter of the other numpy major (GM_OTHER_PYTHONS, else the CI's venvs), or None."""
    listed = [p for p in os.environ.get("GM_OTHER_PYTHONS", "").split(os.pathsep) if p]
    # the venvs .ci/python-versions.sh makes: where $GM_CI_VENVS says, as CI itself reads it
    venvs = os.environ.get("GM_CI_VENVS") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "grapheme-mm-ci-venvs")
    candidates = listed + sorted(glob.glob(os.path.join(venvs, "*", "bin", "python")))
    ours = int(np.__version__.split(".")[0])
    return next((p for p in candidates if os.path.exists(p) and _numpy_major(p) not in (None, ours)), None)


def _importing_this_build(python: str) -> "dict | None":
    """The environment in which ``python`` imports the grapheme_multimodal this
    process runs: this tree's (with its compiled core) where that is the one
    imported here, else the interpreter's own installed one (CI installs one
    wheel in every venv), checked by its _portable.py; None where it differs."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # another tree's, or this one without its core
    here = Path(gm.__file__).resolve().parent
    if here.parent == (REPO / "python").resolve():
        env["PYTHONPATH"] = str(REPO / "python")
    done = subprocess.run([python, "-c", "import grapheme_multimodal._portable as p; print(p.__file__)"], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return None
    theirs = Path(done.stdout.strip())
    return env if theirs.read_bytes() == (here / "_portable.py").read_bytes() else None


def test_pickles_travel_between_numpy_majors_both_ways(tmp_path):
    """Pickled under numpy 2, a model failed to unpickle under numpy 1 with a bare
    ModuleNotFoundError (numpy._core), a buffer with "PCG64 is not a known BitGenerator"."""
    other = _other_numpy_python()
    if other is None:
        pytest.skip("no interpreter of the other numpy major here (GM_OTHER_PYTHONS names some)")
    script = tmp_path / "exchange.py"
    script.write_text(_EXCHANGE)
    exchange = runpy.run_path(str(script))
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    exchange["write"](ours)
    env = _importing_this_build(other)
    if env is None:
        pytest.skip(f"{other} imports another build of grapheme_multimodal than this one")
    done = subprocess.run([other, str(script), str(ours), str(theirs)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    exchange["read"](theirs)


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    script = tmp_path_factory.mktemp("exchange") / "exchange.py"
    script.write_text(_EXCHANGE)
    return runpy.run_path(str(script))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pickles_name_no_numpy_internals(exchange, protocol):
    for name, obj in exchange["objects"]().items():
        assert numpy_globals(pickle.dumps(obj, protocol=protocol)) == set(), name


def test_pickles_copies_and_out_of_band_buffers_give_the_same_objects(exchange, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    objs = exchange["objects"]()
    expected = exchange["facts"](copy.deepcopy(objs))
    for twin in (copy.copy, copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o, protocol=2)),
                 lambda o: pickle.loads(pickle.dumps(o, protocol=5))):
        got = exchange["facts"]({k: twin(v) for k, v in objs.items()})
        assert sorted(got) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)
    # out of band (as Ray passes them): read-only memory the twin does not own
    buffers = []
    data = pickle.dumps(objs, protocol=5, buffer_callback=buffers.append)
    twin = pickle.loads(data, buffers=[bytes(b.raw()) for b in buffers])
    assert buffers, "the arrays went in band"
    twin["buffer"].append(twin["buffer"][0])  # its arrays are its own, writable
    got = exchange["facts"]({**twin, "buffer": pickle.loads(pickle.dumps(objs["buffer"]))})
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)


_SETTINGS = ("GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS", "GRAPHEME_MM_PORTABLE", "GRAPHEME_MM_NO_AVX512")
_UNREADABLE_LINE = "GRAPHEME_MM_NUM_THREADS='abc' is not a positive int and is ignored"
# pip's console script, as installed (the name is what marks it; its import of the cli module defers the warning)
_CONSOLE_SCRIPT = textwrap.dedent("""
    import sys
    from grapheme_multimodal.cli import main
    if __name__ == '__main__':
        sys.argv[0] = sys.argv[0][:-4] if sys.argv[0].endswith('.exe') else sys.argv[0]
        sys.exit(main())
""")


def _stderr_of(argv: list, tmp_path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    # the package this process imports (this tree's, or the one installed: a fresh clone's python/ has no core)
    env.update(GRAPHEME_MM_NUM_THREADS="abc", PYTHONPATH=str(Path(gm.__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return done.stderr


@pytest.mark.main_only  # fresh interpreters, the same on every Python
@pytest.mark.parametrize("program, said_as", [
    # a program's own import of the cli module (for train_flags): warned of at import, as any import
    ("import grapheme_multimodal.cli", "RuntimeWarning"),
    ("from grapheme_multimodal.cli import train_flags; train_flags()", "RuntimeWarning"),
    # ... that runs main after: said at import, and not again by main
    ("from grapheme_multimodal.cli import main; main(['info', 'no-such'])", "RuntimeWarning"),
    ("import grapheme_multimodal", "RuntimeWarning"),
])
def test_a_programs_import_of_the_cli_module_warns_of_unreadable_settings_once(tmp_path, program, said_as):
    """``import grapheme_multimodal.cli`` in a program was taken for the command
    line's import, which leaves the warning to ``main``: never called, the
    program never heard that GRAPHEME_MM_NUM_THREADS=abc was ignored."""
    lines = [line for line in _stderr_of(["-c", program], tmp_path).splitlines() if _UNREADABLE_LINE in line]
    assert len(lines) == 1 and said_as in lines[0], lines


@pytest.mark.main_only
@pytest.mark.parametrize("how", ["-m grapheme_multimodal", "-m grapheme_multimodal.cli", "console script"])
def test_the_command_line_says_unreadable_settings_once_as_its_warning(tmp_path, how):
    if how == "console script":
        (tmp_path / "grapheme-mm").write_text(_CONSOLE_SCRIPT)
        argv = [str(tmp_path / "grapheme-mm")]
    else:
        argv = how.split()
    lines = _stderr_of([*argv, "info", "no-such"], tmp_path).splitlines()
    assert lines == [f"grapheme-mm: warning: {_UNREADABLE_LINE}; expected e.g. GRAPHEME_MM_NUM_THREADS=4 (RAYON_NUM_THREADS, "
                     "else the number of CPUs, applies instead)", "grapheme-mm: error: checkpoint: no file at 'no-such'"]


def _experience(embed_dim: int) -> "gm.Experience":
    embeddings = np.zeros((7, embed_dim), dtype=np.float32)
    embeddings[0, 0] = 1.0
    mask = np.zeros(7, dtype=bool)
    mask[0] = True
    return gm.Experience(embeddings, mask, embeddings[0].copy(), np.zeros((7, 7), dtype=np.float32), 0.5)


def test_the_loser_of_a_race_to_the_first_append_is_told_of_experience_embeddings(monkeypatch):
    """Two threads appending experiences of different sizes to an empty buffer:
    the one whose append began before the other's allocated the first rows
    (and set embed_dim) was refused naming extend's ``embeddings``, an argument
    its caller never passed."""
    buffer = gm.ExperienceBuffer(10)
    loser_began, winner_done = threading.Event(), threading.Event()
    extend = gm.ExperienceBuffer.extend

    def extend_after_the_winner(self, *args, **kwargs):
        if threading.current_thread() is not winner:  # the loser: its append read embed_dim None already
            loser_began.set()
            assert winner_done.wait(10)
        return extend(self, *args, **kwargs)

    def win():
        assert loser_began.wait(10)
        buffer.append(_experience(4))
        winner_done.set()

    monkeypatch.setattr(gm.ExperienceBuffer, "extend", extend_after_the_winner)
    winner = threading.Thread(target=win)
    winner.start()
    try:
        with pytest.raises(gm.ShapeError) as refused:
            buffer.append(_experience(8))
    finally:
        winner_done.set()
        winner.join(10)
    assert refused.value.arg == "experience.embeddings", str(refused.value)
    assert str(refused.value) == ("experience.embeddings: expected shape (7, 4) (the buffer's embed_dim), got (7, 8)")
    assert len(buffer) == 1 and buffer.embed_dim == 4


def test_a_checkpoint_is_of_one_read_of_epochs_trained(monkeypatch):
    """checkpoint_state read model.epochs_trained twice: assigned by another
    thread between the reads, the file said 5 epochs with the record of
    trained modalities of a model of 0 (left out: a model of 5 epochs loaded
    with its record unknown)."""
    from grapheme_multimodal import checkpoint

    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=1, seed=0)
    model.epochs_trained = 5
    expected = checkpoint.checkpoint_state(model)[1]
    checked = checkpoint._checked_epochs

    def read_then_reset(epochs, name="epochs_trained"):
        value = checked(epochs, name)
        model.epochs_trained = 0  # another thread's assignment, right after the save read it
        return value

    monkeypatch.setattr(checkpoint, "_checked_epochs", read_then_reset)
    got = checkpoint.checkpoint_state(model)[1]
    assert got["epochs_trained"] == 5 and got.get("trained_rows") == expected.get("trained_rows"), got


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_arrays_pickled_portably_come_back_as_they_were(protocol):
    """0-d, empty, Fortran-ordered, strided, big-endian, text, object, datetime and
    read-only arrays: the same dtype, shape and values, writable."""
    from grapheme_multimodal._portable import portable

    read_only = np.arange(4.0)
    read_only.flags.writeable = False
    arrays = [np.array(3.0), np.zeros((0, 4), np.float32), np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              np.arange(12.0).reshape(3, 4)[:, ::2], np.array([1, 2], dtype=">i4"), np.array(["ab", "c"]),
              np.array([["x", 1], [None, 2.5]], dtype=object), np.zeros(3, "M8[ns]"), np.ones(2, np.complex64),
              np.ones(3, bool), read_only]
    for array in arrays:
        back = pickle.loads(pickle.dumps(portable(array), protocol=protocol))
        assert type(back) is np.ndarray and back.dtype == array.dtype and back.shape == array.shape, array
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable
