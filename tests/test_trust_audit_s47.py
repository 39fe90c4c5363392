"""A hostile-user audit of session 47's additions (view names as modalities,
atomic_write_all, deterministic checkpoint bytes, masked views of the
scikit-learn estimator): the inputs their authors had not tried."""

from __future__ import annotations


import numpy as np
import pytest

from grapheme_multimodal import ShapeError, uci

SETTINGS = uci.TrainingSettings(epochs=1, embed_dim=8, hidden_dim=8, encoder_hidden=(8,), encoder_output_dim=8,
                                batch_size=16, num_heads=2)


def _views(n: int = 24) -> dict:
    rng = np.random.default_rng(0)
    return {"foo": rng.normal(size=(n, 4)), "bar": rng.normal(size=(n, 3))}


# -- fit_views / fit_ensemble: a view of no columns ---------------------------------------------------------------


@pytest.mark.parametrize("fit", [
    lambda views: uci.fit_views(views, 0, settings=SETTINGS),
    lambda views: uci.fit_ensemble(views, 0, members=2, settings=SETTINGS),
], ids=["fit_views", "fit_ensemble"])
def test_a_view_of_no_columns_is_named_as_the_view(fit):
    # was "input_dims['visual']: expected a positive int, got 0": an argument the caller never gave, and the
    # modality slot's name for a view the caller called 'foo'
    views = _views()
    views["foo"] = views["foo"][:, :0]
    with pytest.raises(ShapeError, match=r"views\['foo'\]: has no columns \(shape \(24, 0\)\)") as err:
        fit(views)
    assert err.value.arg == "views['foo']"
