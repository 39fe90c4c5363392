"""A second look at the code merged in session 55 (each test failed before its fix)."""
import os

import numpy as np
import pytest

from grapheme_multimodal.cli import _checked_argv, main


class _BytesPath(os.PathLike):
    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path


def test_argv_paths_as_bytes_are_taken_as_their_names(tmp_path):
    # an os.PathLike giving bytes (and bytes themselves) was refused as "expected a str (or a path), got b'...'"
    name = os.fsencode(str(tmp_path / "model.gmm"))
    assert _checked_argv(["info", _BytesPath(name)]) == ["info", os.fsdecode(name)]
    assert _checked_argv(("info", name)) == ["info", os.fsdecode(name)]
    assert main(["info", _BytesPath(name)]) == 2  # read as the path: a missing file, not a TypeError
    with pytest.raises(TypeError, match=r"argv\[1\]"):
        _checked_argv(["info", 3])


@pytest.mark.parametrize("view", ["keys", "values"])
def test_embedder_modalities_as_a_dict_view_refused_saying_list(view):
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    from grapheme_multimodal.sklearn import MultimodalEmbedder

    names = {"visual": "visual", "tactile": "tactile"}
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(12, 3)).astype(np.float32), rng.normal(size=(12, 2)).astype(np.float32)]
    # d.keys() was refused as "a set has no order" (a dict's order is its own); d.values() fitted, and clone() then
    # failed with "cannot pickle 'dict_values' object" inside GridSearchCV
    est = MultimodalEmbedder(modalities=getattr(names, view)(), embed_dim=4, epochs=1, patience=0)
    with pytest.raises(TypeError, match=r"modalities: got a dict_%s; .*list\(" % view):
        est.fit(xs)
    # what it asks for is taken, and round-trips through clone
    est = MultimodalEmbedder(modalities=list(getattr(names, view)()), embed_dim=4, epochs=1, patience=0).fit(xs)
    assert clone(est).get_params()["modalities"] == ["visual", "tactile"]
