"""Files saved by older versions of this package load, and give what they gave.

The other checkpoint tests simulate an older file (a config field dropped, a
key renamed); the files here were written by the package itself at earlier
commits of main (``tests/data/older_versions/README.md`` says which commit
wrote which folder, with ``make_golden.py``, the script that wrote them).
Each folder holds a trained checkpoint, its experience buffer (a file and a
pickle), an ensemble file (versions that had ``save_ensemble``), a pickled
``MultimodalEmbedder``, a pickled event of a text graph and ``expected.npz``: that version's inputs and outputs. The files are
gzipped to keep the repository small; each test unpacks what it reads.
"""

import gzip
import json
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from sklearn.base import clone

import grapheme_multimodal as gm
from grapheme_multimodal.ensemble import load_ensemble

from conftest import load_script

DATA = Path(__file__).parent / "data" / "older_versions"
VERSIONS = sorted(p.name for p in DATA.iterdir() if p.is_dir())
golden = load_script("tests/data/older_versions/make_golden.py")


class Saved:
    """One older version's files, unpacked into a temporary folder."""

    def __init__(self, version: str, folder: Path) -> None:
        self.version = version
        self.folder = folder
        source = DATA / version
        for packed in source.glob("*.gz"):
            with gzip.open(packed, "rb") as f, open(folder / packed.name[: -len(".gz")], "wb") as out:
                shutil.copyfileobj(f, out)
        manifest = json.loads((source / "manifest.json").read_text())
        self.files = manifest["files"]
        with np.load(source / "expected.npz") as z:
            self.expected: Dict[str, np.ndarray] = dict(z)
        self.x = {name: self.expected["x_" + name] for name in golden.DIMS}
        self.mask = self.expected["mask"]
        # `fit` as that version trained on from its file (with its weight average, where it had one)
        self.resume_options = golden.resume_options(self.mask, manifest["ema_decay"])

    def path(self, name: str) -> Path:
        return self.folder / name

    def assert_outputs(self, model: gm.LearnableMultiModal, prefix: str) -> None:
        """The model's forward equals the one that version stored, bit for bit."""
        for key, got in golden.outputs(model, self.x, self.mask, prefix).items():
            np.testing.assert_array_equal(got, self.expected[key], err_msg=f"{self.version}: {key}")


needs_numpy_2 = pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0",
    reason="pickled under numpy 2, whose arrays unpickle as numpy._core, which numpy 1 lacks (numpy's own limit)",
)


@pytest.fixture(params=VERSIONS)
def saved(request, tmp_path) -> Saved:
    return Saved(request.param, tmp_path)


def test_there_are_files_of_several_older_versions():
    assert len(VERSIONS) >= 3, VERSIONS


def test_checkpoint_loads_with_the_outputs_it_had(saved):
    model = gm.LearnableMultiModal.load(saved.path("model.safetensors"))
    saved.assert_outputs(model, "model_")


def test_checkpoint_trains_on_as_it_did(saved):
    # The version's own `fit(epochs=1)` after loading its file (make_golden.py): the objectives,
    # the standardisation, the weight average and the Adam state all carried through the file.
    # A deliberate change of what `fit` does by default (its objectives, say) fails this too:
    # then say so here and compare only the file's own outputs, never loosen a tolerance.
    model = gm.LearnableMultiModal.load(saved.path("model.safetensors"))
    model.fit(saved.x, **saved.resume_options)
    saved.assert_outputs(model, "resumed_")


def test_checkpoint_saved_again_gives_the_same_model(saved, tmp_path):
    model = gm.LearnableMultiModal.load(saved.path("model.safetensors"))
    model.save(tmp_path / "again.safetensors")
    again = gm.LearnableMultiModal.load(tmp_path / "again.safetensors")
    saved.assert_outputs(again, "model_")
    assert len(again.experience) == len(model.experience) > 0
    again.fit(saved.x, **saved.resume_options)
    saved.assert_outputs(again, "resumed_")


def test_buffer_file_loads_with_its_experiences(saved):
    buffer = gm.ExperienceBuffer.from_file(saved.path("buffer.safetensors"))
    for key, got in golden.buffer_contents(buffer.batch(), "buffer_").items():
        np.testing.assert_array_equal(got, saved.expected[key], err_msg=f"{saved.version}: {key}")
    sample = buffer.sample(4)  # the saved generator's next draw
    np.testing.assert_array_equal(sample.indices, saved.expected["buffer_sample_indices"])
    np.testing.assert_array_equal(sample.rewards, saved.expected["buffer_sample_rewards"])


@needs_numpy_2
def test_pickled_buffer_holds_its_experiences(saved):
    with open(saved.path("buffer.pkl"), "rb") as f:
        buffer = pickle.load(f)
    for key, got in golden.buffer_contents(buffer.batch(), "buffer_").items():
        np.testing.assert_array_equal(got, saved.expected[key], err_msg=f"{saved.version}: {key}")
    np.testing.assert_array_equal(buffer.sample(4).indices, saved.expected["buffer_sample_indices"])


@needs_numpy_2
def test_pickled_event_fingerprints_and_fuses_as_it_did(saved):
    with open(saved.path("event.pkl"), "rb") as f:
        event = pickle.load(f)
    graph = event.get_component(gm.Modality.TACTILE).graph
    np.testing.assert_array_equal(gm.fingerprints([graph]), saved.expected["event_fingerprint"])
    model = gm.LearnableMultiModal.load(saved.path("model.safetensors"))
    with warnings.catch_warnings():  # tactile never trained: the graph's path is what this checks
        warnings.simplefilter("ignore", gm.UntrainedModalityWarning)
        fused = model.fuse_event(event)
    np.testing.assert_array_equal(fused, saved.expected["event_fused"])


def test_ensemble_file_loads_and_embeds_as_it_did(saved):
    if "ensemble.safetensors" not in saved.files:
        pytest.skip(f"{saved.version} had no save_ensemble")
    members = load_ensemble(saved.path("ensemble.safetensors"))
    assert len(members) == 2
    for j, member in enumerate(members):
        saved.assert_outputs(member, f"ensemble{j}_")


@needs_numpy_2
def test_pickled_embedder_transforms_as_it_did(saved):
    with open(saved.path("embedder.pkl"), "rb") as f:
        embedder = pickle.load(f)
    Xs = [saved.x[name] for name in golden.DIMS]
    np.testing.assert_array_equal(embedder.transform(Xs), saved.expected["embedder_transform"])
    # Parameters added since that version read as what it did (no skip path, no weight average, ...),
    # so the estimator describes its fit and refits like a new one.
    assert "MultimodalEmbedder(" in repr(embedder)
    config, params = embedder.model_.config, embedder.get_params()
    described = {k: v for k, v in params.items() if hasattr(config, k) and v is not None}
    assert described == {k: getattr(config, k) for k in described}
    refit = clone(embedder).set_params(patience=0).fit_transform(Xs)  # 8 rows: no validation slice
    assert refit.shape == saved.expected["embedder_transform"].shape and np.isfinite(refit).all()
