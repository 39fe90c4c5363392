"""A hostile check of the Ray scale-out layer (s64): ``embed_dataset`` on
datasets whose modality columns hold nulls (Arrow fixed-size lists with a
null bitmap, as ``_arrays_dataset(present=...)`` and ``grapheme-mm embed
--ray`` now make them), and the refusals its actors raise. Each test says
what a user saw before the fix, or what it pins."""

import datetime

import numpy as np
import pytest

import grapheme_multimodal as gm
from test_fit import small_model, synthetic
from test_trust_ray_s57 import distributed, ray, ray_test  # Ray imported (or not) as the CI asks
from test_trust_ray_s58 import tensors

if distributed is not None:
    import pyarrow as pa  # Ray Data's own dependency
else:
    pa = None

VISUAL, AUDITORY = gm.Modality.parse("visual").index, gm.Modality.parse("auditory").index


def nullable_vectors(x, present):
    """``x [n, d]`` as Arrow fixed-size lists, null where ``present`` is False."""
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x).reshape(-1)), x.shape[1],
                                             mask=pa.array(~present))


@ray_test
@pytest.mark.timeout(60)
def test_an_actors_refusal_of_a_row_is_raised_though_a_column_beside_it_holds_a_date_python_cannot_hold():
    """A row the actors refuse (NaN in its vector, null in every column) is
    identified by its other columns; one holding a timestamp or date beyond
    Python's ``datetime`` (a far-future sentinel in seconds, as Arrow stores
    it) made that description fail: the user saw
    ``RayTaskError(OverflowError): Python int too large to convert to C
    int``, naming neither the row, the column nor the NaN. Now the package's
    refusal, the value in Arrow's own text."""
    x = synthetic(8)
    visual, auditory = x["visual"].astype(np.float32), x["auditory"].astype(np.float32)
    visual[2, 1] = np.nan
    expires = pa.array([10**15] * 8, pa.timestamp("s"))  # year 31 690 708: Arrow holds it, datetime cannot
    table = pa.table({"v": tensors(visual), "expires": expires})
    with pytest.raises(gm.NonFiniteError, match=r"column 'v' \(visual\) holds NaN or inf in a row of a batch of 8 "
                       r"\(its row 2; .*whose other columns are \{'expires': '.+'\}"):
        distributed.embed_dataset(ray.data.from_arrow([table]), small_model(), {"visual": "v"}, num_actors=1).take_all()
    present = np.ones(8, bool)
    present[5] = False
    table = pa.table({"v": nullable_vectors(x["visual"].astype(np.float32), present),
                      "a": nullable_vectors(auditory, present),
                      "day": pa.array([2**31 - 1] * 8, pa.date32())})
    with pytest.raises(gm.InvalidValueError, match=r"ds: a row of a batch of 8 \(its row 5; .*whose other columns "
                       r"are \{'day': '.+'\}, is null in every column") as err:
        distributed.embed_dataset(ray.data.from_arrow([table]), small_model(), {"visual": "v", "auditory": "a"},
                                  num_actors=1).take_all()
    assert err.value.cause.arg == "ds"
    # a date Python holds is said as Python says it, as before
    table = table.set_column(2, "day", pa.array([datetime.date(2020, 1, 2)] * 8))
    with pytest.raises(gm.InvalidValueError, match=r"other columns are \{'day': datetime.date\(2020, 1, 2\)\}"):
        distributed.embed_dataset(ray.data.from_arrow([table]), small_model(), {"visual": "v", "auditory": "a"},
                                  num_actors=1).take_all()


@ray_test
@pytest.mark.timeout(60)
def test_rows_lacking_a_modality_in_the_first_and_last_block_embed_as_in_one_process_bit_for_bit():
    """``_arrays_dataset(present=...)`` (what ``embed --ray`` sends) makes
    fixed-size lists with a null bitmap; a missing row at a block's first
    or last place, a block lacking a modality in every row, and batches
    that cut blocks at odd places (Arrow slices: offsets into the bitmap)
    must each be the row's own absence, not a neighbour's: every output
    equals ``encode_and_fuse``'s on the same rows and mask, bit for bit."""
    n = 23
    x = synthetic(n)
    inputs = {"visual": x["visual"].astype(np.float32), "auditory": x["auditory"].astype(np.float32)}
    mask = np.zeros((n, 7), bool)
    mask[:, VISUAL] = True
    mask[[10, 19, 20, 22], VISUAL] = False  # the first and last rows of the blocks of 10 after the first
    mask[10:, AUDITORY] = True  # the first block lacks auditory in every row
    model = small_model(encoder_hidden=(8,))
    zeroed = {m: np.where(mask[:, idx, None], v, 0).astype(np.float32) for (m, v), idx in zip(inputs.items(), (VISUAL, AUDITORY))}
    emb, fused = model.encode_and_fuse(zeroed, mask)
    expected = {"fused": fused, "embeddings": emb, "bindings": model.pair_strengths(emb, mask),
                "hidden_features": model.hidden_features(zeroed, mask)}
    present = {"visual": mask[:, VISUAL], "auditory": mask[:, AUDITORY]}
    ds = distributed._arrays_dataset({"row": np.arange(n), **inputs}, 10, present)
    out = distributed.embed_dataset(ds, model, {"visual": "visual", "auditory": "auditory"}, num_actors=1, batch_size=3,
                                    outputs=tuple(expected)).take_all()
    order = np.argsort([r["row"] for r in out])
    for name, values in expected.items():
        assert np.stack([out[i][name] for i in order]).tobytes() == values.tobytes(), name
