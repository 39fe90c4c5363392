"""Files under hostile review, round s64: pickles of estimators fitted on
data frames across numpy majors, and damaged or forged files."""

from __future__ import annotations

import copy
import glob
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.sklearn import MultimodalEmbedder
from pickle_globals import numpy_globals

pd = pytest.importorskip("pandas")

REPO = Path(__file__).resolve().parents[1]


def _frame(columns=("a", "b", "c", "d", "e")) -> "pd.DataFrame":
    return pd.DataFrame(np.random.default_rng(0).normal(size=(30, len(columns))), columns=list(columns))


def _embedder(**options) -> MultimodalEmbedder:
    return MultimodalEmbedder(epochs=2, embed_dim=4, hidden_dim=4, num_heads=1, **options)


# ------------------------------------------------------------ 1. an estimator fitted on one frame pickles portably
@pytest.fixture(scope="module", params=[{"view_sizes": [2, 3]}, {}], ids=["view_sizes", "one_view"])
def fitted_on_a_frame(request) -> MultimodalEmbedder:
    return _embedder(**request.param).fit(_frame())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_an_embedder_fitted_on_a_frame_pickles_naming_no_numpy_internals(fitted_on_a_frame, protocol) -> None:
    # Before: feature_names_in_ (scikit-learn's object array of one frame's column names) pickled as numpy
    # makes it: under numpy 2, numpy._core.multiarray._reconstruct, so numpy 1 refused the pickle
    # (ModuleNotFoundError: No module named 'numpy._core'), though the docs promise both majors load it.
    X = _frame()
    estimator = fitted_on_a_frame
    data = pickle.dumps(estimator, protocol=protocol)
    assert numpy_globals(data) == set()
    twin = pickle.loads(data)
    names = twin.feature_names_in_
    assert type(names) is np.ndarray and names.dtype == object and names.tolist() == list("abcde")
    np.testing.assert_array_equal(twin.transform(X), estimator.transform(X))
    with pytest.raises(ValueError, match="order|feature names"):
        twin.transform(X[list("edcba")])  # the names still checked, as the original checks them
    for copied in (copy.copy(estimator), copy.deepcopy(estimator)):  # a copy hands the state over unpickled
        assert type(copied.feature_names_in_) is np.ndarray and copied.feature_names_in_.tolist() == list("abcde")


_READ_IN_OTHER_NUMPY = '''
import pickle, sys
import numpy as np, pandas as pd
X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 5)), columns=list("abcde"))
with open(sys.argv[1], "rb") as f:
    est, Z = pickle.load(f)
assert est.feature_names_in_.tolist() == list("abcde")
np.testing.assert_array_equal(est.transform(X), np.asarray(Z, dtype=np.float32))
'''


def _other_numpy_python() -> "str | None":
    """An interpreter of the other numpy major (the CI's venvs), or None."""
    listed = [p for p in os.environ.get("GM_OTHER_PYTHONS", "").split(os.pathsep) if p]
    venvs = os.environ.get("GM_CI_VENVS") or os.path.join(os.environ.get("TMPDIR") or "/tmp", "grapheme-mm-ci-venvs")
    ours = np.__version__.split(".")[0]
    for python in listed + sorted(glob.glob(os.path.join(venvs, "*", "bin", "python"))):
        try:
            done = subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                                  text=True, timeout=60)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.split(".")[0] != ours:
            return python
    return None


@pytest.mark.main_only  # fresh interpreters of another Python
def test_an_embedder_fitted_on_a_frame_unpickles_under_the_other_numpy_major(tmp_path: Path) -> None:
    other = _other_numpy_python()
    if other is None:
        pytest.skip("no interpreter of the other numpy major here (GM_OTHER_PYTHONS names some)")
    if Path(gm.__file__).resolve().parent.parent != (REPO / "python").resolve():
        pytest.skip("this build is not this tree's: the other interpreter would import another")
    estimator = _embedder(view_sizes=[2, 3]).fit(_frame())
    path = tmp_path / "estimator.pkl"
    path.write_bytes(pickle.dumps((estimator, estimator.transform(_frame()).tolist())))
    script = tmp_path / "read.py"
    script.write_text(_READ_IN_OTHER_NUMPY)
    done = subprocess.run([other, str(script), str(path)], env=dict(os.environ, PYTHONPATH=str(REPO / "python")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"read by {other}: {done.stderr[-2000:]}"
