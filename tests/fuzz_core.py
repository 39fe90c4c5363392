"""Hypothesis fuzzing of the model, graph and featurize entry points: random
shapes, dtypes, memory layouts and values (NaN, infinities, finite extremes
like ±3e38, subnormals), huge sizes. Every call must return finite outputs
for finite inputs or raise an ordinary exception (``Exception``, not PyO3's
``PanicException``); an abort kills the interpreter.

Not collected by pytest directly (a crash would take the run down with it):
``tests/test_fuzz_core.py`` runs it in a subprocess. By hand, with counts::

    FUZZ_EXAMPLES=2000 FUZZ_SUMMARY=fuzz.json python -m pytest tests/fuzz_core.py -q -p no:cacheprovider

``FUZZ_SUMMARY`` receives the cases tried, clean errors, panics and NaN
leaks per entry point (an abort leaves the file unwritten: the parent test
counts it).
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import grapheme_multimodal as gm

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
SUMMARY = os.environ.get("FUZZ_SUMMARY")
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

counts: "collections.defaultdict[str, collections.Counter]" = collections.defaultdict(collections.Counter)
_lock = threading.Lock()


def _write_summary() -> None:
    if SUMMARY:
        total = collections.Counter()
        for c in counts.values():
            total.update(c)
        with open(SUMMARY, "w") as f:
            json.dump({"total": dict(total), "by_entry_point": {k: dict(v) for k, v in counts.items()}}, f, indent=1)


atexit.register(_write_summary)

# ------------------------------------------------------------------ values
FINITE_EXTREMES = [0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 3.4028235e38, 1e-45, -1e-45, 1.2e-38, 1e30, -1e30, 65504.0]
SPECIAL = [np.nan, np.inf, -np.inf]
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int8, np.uint8, np.bool_]


@st.composite
def arrays(draw, shape, allow_special: bool = True):
    """An array of `shape` with a random dtype, layout and values."""
    dtype = draw(st.sampled_from(DTYPES))
    n = int(np.prod(shape)) if shape else 1
    pool = FINITE_EXTREMES + (SPECIAL if allow_special else [])
    kind = draw(st.sampled_from(["normal", "extreme", "mixed", "constant"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "normal":
        values = rng.normal(size=n) * draw(st.sampled_from([1e-3, 1.0, 1e3, 1e20, 1e37]))
    elif kind == "extreme":
        values = rng.choice(pool, size=n)
    elif kind == "constant":
        values = np.full(n, draw(st.sampled_from(pool)))
    else:
        values = rng.normal(size=n)
        if n:
            idx = rng.integers(0, n, size=max(1, n // 7))
            values[idx] = rng.choice(pool, size=len(idx))
    with np.errstate(all="ignore"):
        arr = values.astype(dtype).reshape(shape)
    layout = draw(st.sampled_from(["c", "fortran", "strided", "misaligned", "readonly"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1 and arr.size:
        big = np.repeat(arr, 2, axis=-1)
        arr = big[..., ::2]
    elif layout == "misaligned" and arr.dtype.itemsize > 1:
        buf = np.zeros(arr.nbytes + 1, np.uint8)
        out = buf[1:].view(arr.dtype).reshape(arr.shape)
        out[...] = arr
        arr = out
    elif layout == "readonly":
        arr = arr.copy()
        arr.setflags(write=False)
    return arr


def dims(draw, lo=0, hi=6):
    return draw(st.integers(lo, hi))


def finite(*xs) -> bool:
    with np.errstate(all="ignore"):
        return all(np.isfinite(np.asarray(x, dtype=np.float64)).all() for x in xs if x is not None)


def run(entry: str, inputs_finite: bool, call) -> None:
    """Calls `call`, counting its outcome; fails on a panic or a NaN leak."""
    with _lock:
        counts[entry]["cases"] += 1
    try:
        out = call()
    except Exception as e:  # an ordinary, catchable error
        with _lock:
            counts[entry]["clean_errors"] += 1
        assert "PanicException" not in type(e).__name__
        return
    except BaseException as e:  # PanicException derives from BaseException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        with _lock:
            counts[entry]["panics"] += 1
        raise AssertionError(f"{entry}: {type(e).__name__}: {e}") from None
    outs = out if isinstance(out, tuple) else (out,)
    numeric = [o for o in outs if isinstance(o, np.ndarray) and o.dtype.kind == "f"]
    if inputs_finite and not finite(*numeric):
        with _lock:
            counts[entry]["nan_leaks"] += 1
        raise AssertionError(f"{entry}: finite inputs gave a non-finite output")
    with _lock:
        counts[entry]["ok"] += 1


_MODEL = gm.LearnableMultiModal(embed_dim=16, hidden_dim=24, num_heads=2, seed=0, input_dims={m: 6 for m in gm.Modality})
E = 16


@pytest.fixture(scope="module")
def model():
    return _MODEL


def draw_views(data) -> dict:
    """Some modalities' input arrays, of one row count: mostly 6 columns
    (the models' width), sometimes a wrong width or none."""
    b = dims(data.draw, 0, 40)
    present = data.draw(st.lists(st.sampled_from(list(gm.Modality)), min_size=1, max_size=7, unique=True))
    d = data.draw(st.sampled_from([6, 6, 6, 5, 0]))
    return {m: data.draw(arrays((b, d))) for m in present}


@FUZZ
@given(data=st.data())
def test_encode_and_fuse(data, model):
    xs = draw_views(data)
    run("encode_and_fuse", finite(*xs.values()), lambda: model.encode_and_fuse(xs))


_DEEP = gm.LearnableMultiModal(embed_dim=16, hidden_dim=24, num_heads=2, seed=0, encoder_hidden=(12, 8),
                               input_dims={m: 6 for m in gm.Modality})


@FUZZ
@given(data=st.data())
def test_hidden_features(data):
    xs = draw_views(data)
    layer = data.draw(st.sampled_from([0, 1, -1, -2, 2, -3, True, 1.0, None]))
    run("hidden_features", finite(*xs.values()), lambda: _DEEP.hidden_features(xs, layer=layer))


def _with_random_skips(m: gm.LearnableMultiModal) -> gm.LearnableMultiModal:
    rng = np.random.default_rng(0)
    m.load_state_dict({k: rng.normal(size=v.shape).astype(np.float32) if k.endswith(".skip.weight") else v
                       for k, v in m.state_dict().items()})
    return m


_SKIP = _with_random_skips(gm.LearnableMultiModal(embed_dim=16, hidden_dim=24, num_heads=2, seed=0, encoder_hidden=(12,),
                                                  shared_head=(16,), encoder_skip=True,
                                                  input_dims={m: 6 for m in gm.Modality}))


@FUZZ
@given(data=st.data())
def test_encode_and_fuse_with_a_skip_path(data):
    # Huge finite rows take the core's rescaled path, which carries the skip too.
    xs = draw_views(data)
    run("encode_and_fuse(skip)", finite(*xs.values()), lambda: _SKIP.encode_and_fuse(xs))


@FUZZ
@given(data=st.data())
def test_fuse_attend_bind(data, model):
    b = dims(data.draw, 0, 12)
    emb = data.draw(arrays((b, 7, data.draw(st.sampled_from([E, E, E, 3])))))
    q = data.draw(arrays((b, E)))
    mask = data.draw(arrays((b, 7)))
    ok = finite(emb, q)
    run("fuse", ok, lambda: model.fuse(emb))
    run("fuse(mask)", ok, lambda: model.fuse(emb, mask))
    run("pair_strengths", ok, lambda: model.pair_strengths(emb))
    run("attention_weights", ok, lambda: model.attention_weights(q, emb))
    run("attend", ok, lambda: model.attend(q, emb, mask))
    run("bind", finite(q), lambda: model.bind(q, q[::-1]))


@FUZZ
@given(data=st.data())
def test_training_entry_points(data):
    m = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=1, input_dims={k: 4 for k in gm.Modality})
    b = dims(data.draw, 0, 24)
    xs = {k: data.draw(arrays((b, 4))) for k in ("visual", "auditory", "linguistic")}
    lr = data.draw(st.sampled_from([None, 1e-3, 1.0, 1e30, 1e300, 1e-300, 5e-324]))
    weights = data.draw(st.sampled_from([None, {"contrastive": 1e38, "binding": 1.0}, {"contrastive": 1e30, "fused_contrastive": 1e30}]))
    ok = finite(*xs.values())

    def step():
        m.train_step(xs, lr=lr, weights=weights)
        return tuple(np.asarray(v) for v in m.state_dict().values())

    run("train_step", ok, step)
    grads = {k: data.draw(arrays(v.shape, allow_special=False)) for k, v in m.state_dict().items()}

    def apply():
        m.apply_gradients(grads, lr=lr)
        opt = m.optimizer_state()
        return tuple(np.asarray(v, np.float64) for v in [*m.state_dict().values(), *opt["exp_avg_sq"].values()])

    run("apply_gradients", True, apply)
    mean, std = data.draw(arrays((4,))), data.draw(arrays((4,)))
    run("set_normalization", True, lambda: m.set_normalization("visual", mean, std))
    run("encode(normalized)", ok, lambda: m.encode(xs))


@FUZZ
@given(data=st.data())
def test_graph_builders_and_featurize(data):
    n = data.draw(st.sampled_from([0, 1, 5, 33, 2**40, 10**12, 2**63 - 1, 2**64]))
    edges = data.draw(arrays((dims(data.draw, 0, 5), 2)))
    run("Graph.from_edges", True, lambda: gm.Graph.from_edges(n, edges.astype(np.int64) if edges.dtype.kind == "f" and finite(edges) else edges))
    seq = data.draw(arrays((dims(data.draw, 0, 50),)))
    run("Graph.from_sequence", True, lambda: gm.Graph.from_sequence(seq))
    img = data.draw(arrays((dims(data.draw, 0, 9), dims(data.draw, 0, 9))))
    run("Graph.from_image", True, lambda: gm.Graph.from_image(img))
    text = data.draw(st.text(max_size=40))
    kind = data.draw(st.sampled_from(["fingerprint", "wl"]))
    dim = data.draw(st.sampled_from([None, 1, 16, 0, -1, 2**22, 2**40]))
    g = gm.Graph.from_text(text)

    def feats():
        out = gm.featurize([text, g], kind=kind, dim=dim) if kind == "wl" else gm.featurize([text, g])
        return np.asarray(out)

    run("featurize", True, feats)
