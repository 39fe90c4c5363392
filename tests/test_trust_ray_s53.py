"""An independent hostile check of grapheme_multimodal.distributed (s53):
what the earlier audits (test_distributed.py, test_trust_distributed*.py,
test_trust_ray_*.py) left. Each test says what a user saw before the fix."""

import os

import numpy as np
import pytest

if os.environ.get("CI"):  # CI installs the test extra, Ray included: these tests must run there
    import ray
else:
    ray = pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
import pyarrow as pa  # noqa: E402  (Ray Data's dependency)

import grapheme_multimodal as gm  # noqa: E402
from grapheme_multimodal import distributed  # noqa: E402
from test_fit import small_model  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]


def test_fixed_size_vectors_of_vectors_are_named_as_such_not_by_their_outer_length():
    """A column of 4 fixed-size vectors of 5 numbers per row (20 numbers in
    all, the visual length) was refused as "a tensor column of shape (4,)
    per row", as though each row held 4 numbers; it is refused as vectors of
    vectors, as a list column of lists is, by both entry points."""
    x = np.zeros((3, 20), np.float32)
    nested = pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 5), 4)
    ds = ray.data.from_arrow(pa.table({"v": nested}))
    with pytest.raises(gm.ShapeError, match=r"^column 'v' \(visual\): expected vectors of 20 numbers per row, got vectors of vectors"):
        distributed.embed_dataset(ds, small_model(), {"visual": "v"}, num_actors=1)
    with pytest.raises(gm.ShapeError, match=r"^data: column 'v' \(visual\): expected vectors of 20 numbers per row, got vectors of vectors"):
        distributed.fit(small_model(), ds, columns={"visual": "v"}, num_workers=1, epochs=1, progress=False)
