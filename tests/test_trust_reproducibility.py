"""Reproducibility under hostile use: the same seed and data give the same
bits in another process, under another ``PYTHONHASHSEED``, on another
thread count; the library never touches the caller's global random state
(nor matplotlib's global state); seeds are taken as given or refused by
name, never truncated."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.exceptions import InvalidValueError

# fresh interpreters under other hash seeds and thread counts: run once, on the main Python
# (.ci/python-versions.sh leaves main_only out on 3.9 and 3.13).
pytestmark = pytest.mark.main_only

# One script, run in fresh interpreters: every path whose order a hash could
# decide (modalities given in any order and by name or enum, events with
# graph components through WL, the estimator, the buffer's sampling, the
# CLI's train on .npy/.csv/.txt files, a figure), each reduced to a digest.
WORKLOAD = r"""
import contextlib, hashlib, io, json, os, sys, tempfile
from pathlib import Path
import numpy as np
import grapheme_multimodal as gm
from grapheme_multimodal import cli
from grapheme_multimodal.sklearn import MultimodalEmbedder

if os.environ.get("T_SET_THREADS"):
    gm.set_num_threads(int(os.environ["T_SET_THREADS"]))
rows = int(os.environ.get("T_ROWS", "96"))

def digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(a if isinstance(a, bytes) else np.ascontiguousarray(a).tobytes())
    return h.hexdigest()

def model_digest(m):
    opt = m.optimizer_state()  # Adam's moments too: they decide how training goes on
    return digest(*m.state_dict().values(), *opt["exp_avg"].values(), *opt["exp_avg_sq"].values(),
                  np.array([opt["step"], opt["rng_counter"]]))

def batch_digest(batch):
    parts = [v for v in vars(batch).values() if isinstance(v, np.ndarray)]
    return digest(*parts, *(x for x in batch.inputs if x is not None))

out = {"threads": gm.get_num_threads()}
rng = np.random.default_rng(0)
X = {"visual": rng.normal(size=(rows, 12)), "auditory": rng.normal(size=(rows, 5)).astype(np.float32),
     "abstract": rng.normal(size=(rows, 18))}
mask = rng.random((rows, 7)) > 0.25
mask[:, [2, 3, 4, 5]] = False
m = gm.LearnableMultiModal(seed=3, input_dims={"auditory": 5, "visual": 12}, embed_dim=16, hidden_dim=24, num_heads=2,
                           encoder_hidden=(16,), encoder_hidden_dropout=0.2, reconstruction_decoders=True)
m.fit({gm.Modality.ABSTRACT: X["abstract"], "visual": X["visual"], "auditory": X["auditory"]}, mask=mask, epochs=2,
      batch_size=max(rows // 3, 8), modality_dropout=0.3, standardize=True, ema_decay=0.9, progress=False,
      objectives={"contrastive": 1, "binding": 0.5, "cross_modal": 0.5, "fused_contrastive": 1, "reconstruction": 1})
out["fit"] = model_digest(m)
out["encode"] = digest(*m.encode_and_fuse(X, mask))
m.record_batch(X, mask, np.linspace(0, 1, rows))
out["sample"] = batch_digest(m.experience.sample(7))
out["sample_prioritized"] = batch_digest(m.experience.sample(7, prioritized=True))

texts = ["the cat sat", "a dog ran far", "zebra", "the cat sat on the mat", "na\u00efve caf\u00e9", "e\u0301!"]
out["wl"] = digest(gm.featurize(texts, kind="wl", dim=64))
g = gm.LearnableMultiModal(seed=1, embed_dim=16, hidden_dim=16, num_heads=2,
                           graph_features={"linguistic": gm.GraphFeaturizer("wl", dim=32)})
events = []
for i, t in enumerate(texts * 3):
    e = gm.MultiModalEvent(i)
    e.add_component(gm.ModalGraph(gm.Graph.from_text(t, unit="grapheme"), gm.Modality.LINGUISTIC))
    e.add_component(gm.ModalFeatures(rng.normal(size=18), "visual"))
    e.add_component(gm.ModalGraph(gm.Graph.from_text(t[::-1]), gm.Modality.ABSTRACT))
    events.append(e)
g.fit(events, epochs=2, batch_size=6, progress=False)
out["events"] = model_digest(g)
out["bindings"] = [[str(b.source[0]), str(b.target[0]), b.strength] for b in g.compute_bindings(events[0])]

est = MultimodalEmbedder(embed_dim=16, hidden_dim=16, encoder_hidden=(16,), encoder_output_dim=16, epochs=3,
                        random_state=7, verbose=False)
out["estimator"] = digest(est.fit_transform([X["visual"], X["auditory"]]))

folder = Path(tempfile.mkdtemp())
cli_rows = min(rows, 96)  # the recipe's 5-fold cross-validation: its folds are drawn too
np.save(folder / "img.npy", X["visual"][:cli_rows])
np.savetxt(folder / "aud.csv", X["auditory"][:cli_rows], delimiter=",")
(folder / "cap.txt").write_text("\n".join((texts * rows)[:cli_rows]) + "\n", encoding="utf-8")
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = cli.main(["train", "-m", f"visual={folder / 'img.npy'}", "-m", f"auditory={folder / 'aud.csv'}",
                   "-m", f"linguistic={folder / 'cap.txt'}", "--text-features", "wl", "--wl-dim", "32", "--epochs", "2",
                   "--embed-dim", "16", "--hidden-dim", "16", "--heads", "2", "--no-progress",
                   "-o", str(folder / "m.safetensors")])
out["cli_rc"] = rc
loaded = gm.LearnableMultiModal.load(folder / "m.safetensors")
out["cli"] = model_digest(loaded)
# the history's losses are part of the model (its wall-clock seconds are not)
out["cli_history"] = [{k: v for k, v in r.items() if k != "seconds"} for r in loaded.history]

from grapheme_multimodal import plotting
plotting.plot_history(m.history, folder / "curves.png")
plotting.plot_attention(m.attention_weights(*reversed(m.encode_and_fuse(X, mask)))[:4], list("abcd"), folder / "att.png")
out["png"] = digest((folder / "curves.png").read_bytes(), (folder / "att.png").read_bytes())
print(json.dumps(out))
"""


def run_workload(env: dict) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", WORKLOAD], capture_output=True, text=True, timeout=300,
                          env={**full, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_same(runs: dict) -> None:
    (first_name, first), *rest = runs.items()
    for name, run in rest:
        differ = sorted(k for k in first if k != "threads" and first[k] != run[k])
        assert not differ, f"{name} differs from {first_name} in {differ}"


def test_hash_seed_and_thread_count_change_no_weight_embedding_sample_or_figure():
    """Every run differs from the first in its PYTHONHASHSEED and its thread
    count, which README promises never changes a result ("the same bits on
    1 thread or 16"): by set_num_threads and by the environment variables.
    1,536 rows: batches of 512, large enough to be split between threads."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    settings = {
        "PYTHONHASHSEED=0, set_num_threads(1)": {"PYTHONHASHSEED": "0", "T_SET_THREADS": "1"},
        "PYTHONHASHSEED=1, set_num_threads(2)": {"PYTHONHASHSEED": "1", "T_SET_THREADS": "2"},
        "PYTHONHASHSEED=12345, GRAPHEME_MM_NUM_THREADS=3": {"PYTHONHASHSEED": "12345", "GRAPHEME_MM_NUM_THREADS": "3"},
        "PYTHONHASHSEED=random, RAYON_NUM_THREADS=1, OMP_NUM_THREADS=1":
            {"PYTHONHASHSEED": "random", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    }
    runs = {name: run_workload({**env, "T_ROWS": "1536"}) for name, env in settings.items()}
    assert [r["threads"] for r in runs.values()] == [1, 2, 3, 1]
    assert_same(runs)
    assert all(r["cli_rc"] == 0 for r in runs.values())


PORTABLE_FIT = r"""
import json, numpy as np, grapheme_multimodal as gm
rng = np.random.default_rng(0)
X = {"visual": rng.normal(size=(96, 12)), "auditory": rng.normal(size=(96, 5))}
m = gm.LearnableMultiModal(seed=3, input_dims={"visual": 12, "auditory": 5}, embed_dim=16, hidden_dim=32, num_heads=2)
m.fit(X, epochs=3, batch_size=32, modality_dropout=0.3, progress=False)
print(json.dumps({"path": gm._core.kernel_path(), "fused": m.encode_and_fuse(X)[1].tolist(),
                  "weights": np.concatenate([v.ravel() for v in m.state_dict().values()]).tolist(),
                  "loss": [r["loss"] for r in m.history]}))
"""


def test_portable_kernels_train_the_same_model_up_to_float_rounding():
    """README: GRAPHEME_MM_PORTABLE=1 gives "the same results up to float
    rounding" — checked here on a short fit, not only on one step."""
    runs = {}
    for portable in ("0", "1"):
        proc = subprocess.run([sys.executable, "-c", PORTABLE_FIT], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "GRAPHEME_MM_PORTABLE": portable})
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[portable] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["1"]["path"] == "portable"
    for key in ("fused", "weights"):
        np.testing.assert_allclose(runs["0"][key], runs["1"][key], rtol=0, atol=1e-5)
    np.testing.assert_allclose(runs["0"]["loss"], runs["1"]["loss"], rtol=1e-5)


GLOBAL_RNG = r"""
import json, pickle, random, sys, tempfile
from pathlib import Path
import numpy as np
np.random.seed(11); random.seed(11)
try:
    import torch
    torch.manual_seed(11)
except ImportError:
    torch = None

def snapshot():
    s = [pickle.dumps(np.random.get_state()), pickle.dumps(random.getstate())]
    if torch is not None:
        s.append(torch.get_rng_state().numpy().tobytes())
    return s

before = snapshot()
changed = []
def check(what):
    global before
    now = snapshot()
    if now != before:
        changed.append(what)
        before = now

import grapheme_multimodal as gm
check("import grapheme_multimodal")
from grapheme_multimodal import datasets, evaluation, plotting, uci
from grapheme_multimodal.sklearn import MultimodalEmbedder
check("import submodules")
rng = np.random.default_rng(0)
X = {"visual": rng.normal(size=(80, 6)), "auditory": rng.normal(size=(80, 5))}
m = gm.LearnableMultiModal(seed=2, input_dims={"visual": 6, "auditory": 5}, embed_dim=8, hidden_dim=8, num_heads=2)
check("LearnableMultiModal")
m.fit(X, epochs=2, batch_size=16, modality_dropout=0.3, validation=X, early_stopping=2, ema_decay=0.9, progress=False)
check("fit")
m.record_batch(X, None, np.linspace(0, 1, 80)); m.experience.sample(5); m.experience.sample(5, prioritized=True)
check("buffer")
m.fit(m.experience, epochs=1, batch_size=16, progress=False)
check("fit on the buffer")
MultimodalEmbedder(embed_dim=8, verbose=False).fit_transform([X["visual"], X["auditory"]])
check("MultimodalEmbedder.fit_transform")
gm.featurize(["abc", "d e"], kind="wl", dim=16); gm.fingerprints([gm.Graph.from_text("ab")])
gm.Graph.from_image(rng.random((5, 5))); gm.Graph.from_sequence(np.arange(5.0))
gm.Graph.from_edges(3, [(0, 1), (1, 2)], labels=["a", "b", "c"])
check("graph builders and featurisers")
data = datasets.load_multiple_features()
train, test = datasets.train_test_split(data, seed=0)
check("datasets")
train, test = train.subset(np.arange(0, train.n_events, 16)), test.subset(np.arange(0, test.n_events, 8))
embedder = uci.fit_views(train.views, settings=uci.TrainingSettings(epochs=2), progress=False)
check("uci.fit_views")
evaluation.evaluate_model(embedder, train, test)
evaluation.compute_anchors(train, test, multiview=())
check("evaluation")
folder = Path(tempfile.mkdtemp())
plotting.plot_history(m.history, folder / "c.png")
plotting.plot_attention(np.full((2, 7), 1 / 7), ["a", "b"], folder / "a.png")
check("plotting")
print(json.dumps({"changed": changed, "torch": torch is not None}))
"""


def test_no_call_touches_the_global_random_state():
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    proc = subprocess.run([sys.executable, "-c", GLOBAL_RNG], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["changed"] == []


def _small_fit(**model_options) -> bytes:
    rng = np.random.default_rng(0)
    X = {"visual": rng.normal(size=(40, 6)), "auditory": rng.normal(size=(40, 5))}
    fit_seed = model_options.pop("fit_seed", None)
    m = gm.LearnableMultiModal(input_dims={"visual": 6, "auditory": 5}, embed_dim=8, hidden_dim=8, num_heads=2,
                               **{"seed": 0, **model_options})
    m.fit(X, epochs=2, batch_size=8, modality_dropout=0.3, progress=False, seed=fit_seed)
    return b"".join(np.ascontiguousarray(v).tobytes() for v in m.state_dict().values())


def test_a_seeded_fit_ignores_the_global_numpy_and_random_state():
    state = np.random.get_state(), random.getstate()
    try:
        np.random.seed(1); random.seed(1)
        first = _small_fit()
        np.random.seed(2); random.seed(2)
        assert _small_fit() == first
    finally:
        np.random.set_state(state[0]); random.setstate(state[1])


def test_numpy_integer_seeds_are_their_value():
    plain = _small_fit(seed=5)
    assert _small_fit(seed=np.int64(5)) == plain
    assert _small_fit(seed=np.uint32(5)) == plain
    assert _small_fit(seed=0, fit_seed=np.uint64(7)) == _small_fit(seed=0, fit_seed=7)


def test_large_seeds_are_not_truncated():
    zero = _small_fit(seed=0)
    for seed in (2**32, 2**63, 2**64 - 1):
        assert _small_fit(seed=seed) != zero, f"seed={seed} trained seed 0's model"
    assert _small_fit(seed=2**64 - 1) == _small_fit(seed=np.uint64(2**64 - 1))
    # fit's own seed (shuffles and modality dropout) has no upper bound: no wrap either
    for fit_seed in (2**32, 2**64, 2**64 + 1, 2**70):
        assert _small_fit(fit_seed=fit_seed) != _small_fit(fit_seed=0), f"fit seed={fit_seed} drew seed 0's batches"


@pytest.mark.parametrize("seed", [None, -1, 2**64, 1.0, True, "0", np.random.RandomState(0), np.random.default_rng(0)])
def test_a_seed_that_is_no_seed_is_refused_by_name(seed):
    # an int out of range is an InvalidValueError, anything else (None, a float, a generator) a TypeError
    error = InvalidValueError if type(seed) is int else TypeError
    with pytest.raises(error, match=r"^seed: expected an int in \[0, 2\*\*64\)") as err:
        gm.LearnableMultiModal(seed=seed)
    assert getattr(err.value, "arg", "seed") == "seed"


@pytest.mark.parametrize("random_state", [None, -1, np.random.RandomState(0), np.random.default_rng(0)])
def test_the_estimator_refuses_a_random_state_it_cannot_rerun_by_name(random_state):
    pytest.importorskip("sklearn")
    from grapheme_multimodal.sklearn import MultimodalEmbedder

    rng = np.random.default_rng(0)
    est = MultimodalEmbedder(embed_dim=8, random_state=random_state, verbose=False)
    error = InvalidValueError if type(random_state) is int else TypeError  # None or a generator: a wrong type
    with pytest.raises(error, match=r"^random_state: expected an int") as err:
        est.fit([rng.normal(size=(20, 3)), rng.normal(size=(20, 4))])
    assert getattr(err.value, "arg", "random_state") == "random_state"
    assert not hasattr(est, "model_")


MATPLOTLIB_STATE = r"""
import json, tempfile
from pathlib import Path
import numpy as np
import matplotlib
matplotlib.use("svg")  # the caller's own backend (a notebook's inline one, say)
import matplotlib.pyplot as plt
mine = plt.figure()
before = {"backend": matplotlib.get_backend(), "fallback": matplotlib.rcParams["backend_fallback"], "figures": plt.get_fignums()}
from grapheme_multimodal import plotting
folder = Path(tempfile.mkdtemp())
records = [{"epoch": 1, "loss": 2.0, "val_total": 2.5}, {"epoch": 2, "loss": 1.0, "val_total": 1.5}]
plotting.plot_history(records, folder / "curves.png")
plotting.plot_attention(np.full((2, 7), 1 / 7), ["a", "b"], folder / "att.png")
failed = []
for call in (lambda: plotting.plot_history(records, folder / "missing" / "curves.png"),
             lambda: plotting.plot_attention(np.full((2, 7), 1 / 7), ["a", "b"], folder / "missing" / "att.png")):
    try:
        call()
    except OSError as e:
        failed.append(type(e).__name__)
after = {"backend": matplotlib.get_backend(), "fallback": matplotlib.rcParams["backend_fallback"], "figures": plt.get_fignums()}
print(json.dumps({"before": before, "after": after, "failed": failed, "mine": plt.gcf() is mine,
                  "png": all((folder / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in ("curves.png", "att.png"))}))
"""


def test_plotting_leaves_the_callers_matplotlib_backend_and_figures_alone():
    """plot_history (History.plot) and plot_attention switched pyplot's
    backend to Agg for the whole process (a notebook's inline figures
    stopped showing, plt.show() said "FigureCanvasAgg is non-interactive")
    and a save that failed left its figure open in pyplot, where the
    caller's next plt.show() or plt.savefig() met it."""
    pytest.importorskip("matplotlib")
    proc = subprocess.run([sys.executable, "-c", MATPLOTLIB_STATE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["failed"] == ["FileNotFoundError", "FileNotFoundError"]
    assert out["png"]
    assert out["after"] == out["before"]
    assert out["mine"], "the caller's current figure is no longer pyplot's current one"
