"""Issue 11, the Rust side: sizes, settings, finite inputs, threads and the
numpy boundary. Each reproducer from the issue is a test asserting the clean
behaviour; the ones that used to abort the interpreter run in a subprocess
(with an address-space limit), so a regression fails one test instead of
killing the run."""

from __future__ import annotations

import json
import os
import pickle
import resource
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal import _core

HUGE = 3e38  # finite float32, whose products and squares overflow


def run_isolated(code: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter limited to 8 GiB of address space."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
        env={**os.environ, **(env or {})},
    )


def expect_error(code: str, error: str, arg_prefix: str) -> dict:
    """`code` (which sets nothing) raises `error` whose `arg` starts with
    `arg_prefix`; returns what was raised (its classes, `arg` and `msg`)."""
    proc = run_isolated(
        f"""
        import json, numpy as np, grapheme_multimodal as gm
        try:
            {code}
            print(json.dumps({{"raised": None}}))
        except Exception as e:
            print(json.dumps({{"raised": [c.__name__ for c in type(e).__mro__], "arg": getattr(e, "arg", None), "msg": str(e)}}))
        """
    )
    assert proc.returncode == 0, f"the interpreter died ({proc.returncode}): {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["raised"] is not None, f"{code} raised nothing"
    assert error in out["raised"], out
    assert (out["arg"] or "").startswith(arg_prefix), out
    return out


def small_model(**kw) -> gm.LearnableMultiModal:
    return gm.LearnableMultiModal(**{"embed_dim": 16, "hidden_dim": 24, "num_heads": 2, "learning_rate": 0.01, "seed": 0, **kw})


def batch(rows: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {m: rng.normal(size=(rows, 18)).astype(np.float32) for m in ("visual", "auditory", "linguistic")}


def state(m: gm.LearnableMultiModal) -> tuple:
    opt = m.optimizer_state()
    return (
        {k: v.copy() for k, v in m.state_dict().items()},
        {k: v.copy() for k, v in opt["exp_avg"].items()},
        {k: v.copy() for k, v in opt["exp_avg_sq"].items()},
        opt["step"],
        opt["rng_counter"],
        m.has_gradients(),
    )


def same_state(a: tuple, b: tuple) -> bool:
    for x, y in zip(a, b):
        if isinstance(x, dict):
            if x.keys() != y.keys() or not all(np.array_equal(x[k], y[k]) for k in x):
                return False
        elif x != y:
            return False
    return True


def all_finite_state(m: gm.LearnableMultiModal) -> bool:
    opt = m.optimizer_state()
    tensors = [*m.state_dict().values(), *opt["exp_avg"].values(), *opt["exp_avg_sq"].values()]
    return all(np.isfinite(t).all() for t in tensors)


# ------------------------------------------------------------------ 1. sizes
SIZES = [
    ("gm.LearnableMultiModal(embed_dim=10**9, num_heads=1)", "embed_dim"),
    ("gm.LearnableMultiModal(hidden_dim=10**9)", "hidden_dim"),
    ("gm.LearnableMultiModal(input_dims={'visual': 10**12})", "input_dims"),
    ("gm.LearnableMultiModal(input_dims={'visual': 10**9})", "input_dims"),
    ("gm.LearnableMultiModal(embed_dim=10**30, num_heads=1)", "embed_dim"),
    ("gm.Graph.from_edges(10**12, [])", "num_nodes"),
    ("gm.Graph.from_edges(10**30, [])", "num_nodes"),
    ("gm.Graph.from_sequence(np.zeros(10**9, np.float32))", "values"),
    ("gm._core.Graph.from_edges(2**64 - 1, np.zeros((0, 2), np.int64))", "num_nodes"),
    ("gm._core.Model(64, 128, 1e-3, 4, 10, 0, [18] * 7).encode_components(2**62, [None] * 7)", "batch_size"),
]


def raised_in_one_child(codes: list) -> dict:
    """What each of ``codes`` (one line each, setting nothing) raised, by
    code, as :func:`expect_error`'s child reports it, from one child instead
    of one each (the interpreter's start is most of such a test's time); a
    code that ends the child (an abort) is answered with the exit status and
    stderr, for its own test to fail with, and the codes after it run in a
    new child."""
    answers: dict = {}
    codes = list(codes)
    while codes:
        proc = run_isolated("import json, numpy as np, grapheme_multimodal as gm\n" + "".join(
            f"print(json.dumps({{'code': {code!r}}}), flush=True)\n"
            "try:\n"
            f"    {code}\n"
            "    print(json.dumps({'raised': None}), flush=True)\n"
            "except Exception as e:\n"
            "    print(json.dumps({'raised': [c.__name__ for c in type(e).__mro__], 'arg': getattr(e, 'arg', None), "
            "'msg': str(e)}), flush=True)\n"
            for code in codes
        ))
        code = None
        for line in proc.stdout.splitlines():
            out = json.loads(line)
            if "code" in out:
                code = out["code"]
            else:
                answers[code] = out
        if proc.returncode != 0:
            assert code is not None, f"the interpreter died ({proc.returncode}): {proc.stderr[-2000:]}"
            answers[code] = f"the interpreter died ({proc.returncode}) here: {proc.stderr[-2000:]}"
        codes = [c for c in codes if c not in answers]
    return answers


def check_raised(out, code: str, error: str, arg_prefix: str) -> None:
    """``out``, an answer of :func:`raised_in_one_child`, is an ``error``
    whose ``arg`` starts with ``arg_prefix`` (:func:`expect_error`'s checks)."""
    assert isinstance(out, dict), out
    assert out["raised"] is not None, f"{code} raised nothing"
    assert error in out["raised"], out
    assert (out["arg"] or "").startswith(arg_prefix), out


@pytest.fixture(scope="module")
def size_answers() -> dict:
    return raised_in_one_child([code for code, _ in SIZES])


@pytest.mark.parametrize("code, arg", SIZES)
def test_sizes_are_too_large_errors_not_aborts(code, arg, size_answers):
    check_raised(size_answers[code], code, "TooLargeError", arg)
    check_raised(size_answers[code], code, "MemoryError", arg)


def test_a_batch_whose_logits_cannot_fit_is_refused_before_training():
    expect_error(
        """
            rng = np.random.default_rng(0)
            x = {"visual": rng.normal(size=(200_000, 18)).astype(np.float32), "auditory": rng.normal(size=(200_000, 18)).astype(np.float32)}
            m = gm.LearnableMultiModal(seed=0)
            before = m.state_dict()
            try:
                m.fit(x, epochs=1, batch_size=200_000, progress=False)
            finally:
                assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
        """,
        "TooLargeError",
        "batch_size",
    )


def test_sizes_from_files_go_through_the_same_checks(tmp_path):
    m = small_model()
    st = m.__getstate__()
    st["meta"]["config"]["hidden_dim"] = 10**9
    forged = pickle.dumps(st)
    path = tmp_path / "forged.pkl"
    path.write_bytes(forged)
    expect_error(
        f"""
            import pickle
            st = pickle.loads(open({str(path)!r}, "rb").read())
            m = gm.LearnableMultiModal.__new__(gm.LearnableMultiModal)
            m.__setstate__(st)
        """,
        "TooLargeError",
        "hidden_dim",
    )
    proc = run_isolated(
        "from grapheme_multimodal.cli import main; import sys; sys.exit(main(['train', '--help']))"
    )
    assert proc.returncode == 0
    # The CLI builds its model through the same constructor: no abort.
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).normal(size=(8, 18)).astype(np.float32))
    proc = subprocess.run(
        [sys.executable, "-m", "grapheme_multimodal", "train", "-m", f"visual={data}", "-m", f"auditory={data}",
         "--hidden-dim", "1000000000", "--epochs", "1", "--no-progress", "--output", str(tmp_path / "m.safetensors")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode > 0, (proc.returncode, proc.stderr[-2000:])
    assert "--hidden-dim 1000000000" in proc.stderr and "PanicException" not in proc.stderr  # by the flag


# ------------------------------------------------------------ 2. settings
def test_huge_learning_rates_and_decays_are_refused_and_change_nothing():
    with pytest.raises(gm.InvalidValueError) as err:
        small_model(learning_rate=1e300)
    assert err.value.arg == "learning_rate"
    with pytest.raises(gm.InvalidValueError) as err:
        small_model(weight_decay=1e300)
    assert err.value.arg == "weight_decay"
    m = small_model()
    x = batch()
    m.train_step(x)
    before = state(m)
    with pytest.raises(gm.InvalidValueError) as err:
        m.train_step(x, lr=1e300)
    assert err.value.arg == "lr" and "float" in str(err.value)
    assert same_state(state(m), before), "a refused step changes nothing"
    m.train_step(x)  # and training goes on
    assert all_finite_state(m)


def test_huge_gradients_never_make_the_optimizer_state_unloadable(tmp_path):
    m = small_model()
    m.apply_gradients({k: np.full_like(v, HUGE) for k, v in m.state_dict().items()})
    assert all_finite_state(m), "Adam's moments stay finite (gradients are bounded inside Adam)"
    m.save(tmp_path / "m.safetensors")
    back = gm.LearnableMultiModal.load(tmp_path / "m.safetensors")
    assert same_state(state(back), state(m))
    pickle.loads(pickle.dumps(m))
    m.train_step(batch())
    assert all_finite_state(m)


def test_huge_objective_weights_leave_a_loadable_model(tmp_path):
    m = small_model()
    x = batch(32)
    weights = {"contrastive": 1e38, "binding": 1e38, "cross_modal": 1.0, "fused_contrastive": 1e38}
    for _ in range(3):
        before = state(m)
        try:
            m.train_step(x, weights=weights)
        except gm.GraphemeError:
            assert same_state(state(m), before)
    assert all_finite_state(m)
    m.save(tmp_path / "m.safetensors")
    gm.LearnableMultiModal.load(tmp_path / "m.safetensors")


def test_the_step_counter_never_wraps():
    m = small_model()
    opt = m.optimizer_state()
    with pytest.raises(gm.GraphemeError):
        m.load_optimizer_state({**opt, "step": 2**64 - 1})
    with pytest.raises(gm.GraphemeError):
        m.load_optimizer_state({**opt, "rng_counter": 2**64 - 1})


# ------------------------------------------------------- 3. finite inputs
def test_finite_embeddings_never_give_nan():
    m = small_model()
    big = np.full((2, 7, 16), HUGE, np.float32)
    query = np.full((2, 16), HUGE, np.float32)
    for call in (
        lambda: m.fuse(big),
        lambda: m.attention_weights(query, big),
        lambda: m.attend(query, big),
        lambda: m.pair_strengths(big),
        lambda: m.bind(query, query),
    ):
        try:
            out = call()
        except gm.NonFiniteError as e:
            assert "overflow" in str(e)
        else:
            assert np.isfinite(out).all()
    # Large but harmless values: finite unit rows.
    fused = m.fuse(np.full((2, 7, 16), 1e30, np.float32))
    assert np.allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-5)


def test_modality_attention_of_an_event_with_huge_values():
    m = small_model()
    event = gm.MultiModalEvent(0)
    event.add_component(gm.ModalFeatures(np.full(18, HUGE, np.float32), gm.Modality.VISUAL))
    event.add_component(gm.ModalFeatures(np.ones(18, np.float32), gm.Modality.AUDITORY))
    emb = m.encode_event(event)
    assert all(np.isfinite(v).all() and abs(np.linalg.norm(v) - 1) < 1e-5 for v in emb.values())
    try:
        weights = m.get_modality_attention(np.full(16, HUGE, np.float32), event)
    except gm.NonFiniteError:
        pass
    else:
        assert all(np.isfinite(w) for _, w in weights)


def test_huge_inputs_encode_to_unit_embeddings():
    m = small_model()
    emb = m.encode({"visual": np.full((3, 18), HUGE, np.float32)})
    assert np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb[:, 0], axis=1), 1, atol=1e-5)


def test_tiny_std_is_refused_also_from_a_checkpoint(tmp_path):
    m = small_model()
    with pytest.raises(gm.InvalidValueError) as err:
        m.set_normalization("visual", np.zeros(18), np.full(18, 1e-44))
    assert err.value.arg.startswith("normalization['visual'].std")
    # float32, as the model reads it: in float64, steps of 1e-7 at 1.0 (below float32's spacing there) warn, PrecisionLossWarning
    m.fit_normalization({"visual": (np.ones((8, 18)) + 1e-7 * np.arange(8)[:, None]).astype(np.float32)})
    std = m.normalization("visual")[1]
    assert (std >= _core.MIN_STD).all(), "fit_normalization takes a near-constant column's std as 1"
    tensors, meta = m.__getstate__()["tensors"], m.__getstate__()["meta"]
    tensors["normalization/visual/std"] = np.full(18, 1e-44, np.float32)
    from grapheme_multimodal.checkpoint import model_from_state

    with pytest.raises(gm.GraphemeError):
        model_from_state(tensors, meta)


# -------------------------------------------------------------- 5. threads
def test_readers_racing_a_trainer_see_whole_steps():
    """One model, one trainer, three readers: no "Already borrowed", the
    trainer ends where training alone ends, and every read equals the
    encoding after some whole step."""
    x = batch(32, seed=1)
    steps = 8
    alone = small_model()
    snapshots = [alone.encode(x)]
    for _ in range(steps):
        alone.train_step(x)
        snapshots.append(alone.encode(x))

    shared = small_model()
    seen, errors = [], []

    def read() -> None:
        try:
            for _ in range(30):
                seen.append(shared.encode(x))
        except BaseException as e:  # noqa: BLE001 - a PanicException is a BaseException
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for _ in range(steps):
        shared.train_step(x)
    for t in readers:
        t.join()
    assert not errors, errors
    assert same_state(state(shared), state(alone))
    assert all(any(np.array_equal(s, snap) for snap in snapshots) for s in seen)


def test_two_trainers_on_one_model_each_step_whole():
    x = batch(16, seed=2)
    m = small_model()
    errors = []

    def train() -> None:
        try:
            for _ in range(5):
                m.train_step(x)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    alone = small_model()
    for _ in range(10):
        alone.train_step(x)
    assert same_state(state(m), state(alone)), "ten whole steps, as if one after another"


def test_thread_counts_are_bounded():
    before = gm.get_num_threads()
    try:
        with pytest.warns(RuntimeWarning):
            gm.set_num_threads(2000)
        assert gm.get_num_threads() == _core.max_threads() <= 4 * (os.cpu_count() or 1)
        m = small_model()
        m.encode({"visual": np.ones((4096, 18), np.float32)})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gm.set_num_threads(1)
    finally:
        gm.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_the_pool_works_in_a_forked_child():
    proc = run_isolated(
        """
        import os, numpy as np, grapheme_multimodal as gm
        gm.set_num_threads(2)
        m = gm.LearnableMultiModal(seed=0)
        x = {"visual": np.ones((4096, 18), np.float32)}
        parent = m.encode(x)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if np.array_equal(m.encode(x), parent) else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("child 0")


# ---------------------------------------------------- 8. the numpy boundary
def misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = buf[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def test_misaligned_arrays_are_read_correctly():
    m = small_model()
    x = batch(8)["visual"]
    odd = misaligned(x)
    assert np.array_equal(m.encode({"visual": odd}), m.encode({"visual": x}))
    mask = np.ones((8, 7), bool)
    xs = [x] + [None] * 6
    mask[:, 1:] = False
    core = m._core
    assert np.array_equal(core.encode([odd] + [None] * 6, mask), core.encode(xs, mask))
    emb = m.encode({"visual": x})
    assert np.array_equal(core.fuse(misaligned(emb), mask), core.fuse(emb, mask))
    assert np.array_equal(
        _core.Graph.from_sequence(misaligned(np.arange(5, dtype=np.float32))).activations(),
        _core.Graph.from_sequence(np.arange(5, dtype=np.float32)).activations(),
    )


def test_masks_with_other_bytes_than_0_and_1():
    m = small_model()
    x = batch(8)
    emb = m.encode(x)
    bytes_ = np.random.default_rng(0).integers(0, 256, size=(8, 7), dtype=np.uint8) & 6
    odd_mask = bytes_.view(bool)
    clean = bytes_ != 0
    core = m._core
    arrays, _ = m.prepare_inputs(x)
    full = [a if a is not None else np.zeros((8, 18), np.float32) for a in arrays]
    assert np.array_equal(core.encode(full, odd_mask), core.encode(full, clean))
    assert np.array_equal(core.fuse(emb, odd_mask), core.fuse(emb, clean))
    assert np.array_equal(core.pair_strengths(emb, odd_mask), core.pair_strengths(emb, clean))


PATHS_CODE = """
    import json, numpy as np, grapheme_multimodal as gm
    gm.set_num_threads(1)
    m = gm.LearnableMultiModal(embed_dim=16, hidden_dim=24, num_heads=2, learning_rate=0.01, seed=0)
    rng = np.random.default_rng(0)
    x = {k: rng.normal(size=(64, 18)).astype(np.float32) for k in ("visual", "auditory", "linguistic")}
    emb, fused = m.encode_and_fuse(x)
    losses = [m.train_step(x)["total"] for _ in range(3)]
    print(json.dumps({"path": gm._core.kernel_path(), "emb": emb.ravel().tolist(), "fused": fused.ravel().tolist(),
                      "losses": losses, "nan_fuse": bool(np.isnan(m.fuse(emb)).any())}))
"""


def test_portable_and_avx2_paths_agree():
    runs = {}
    for portable in ("0", "1"):
        proc = run_isolated(PATHS_CODE, env={"GRAPHEME_MM_PORTABLE": portable})
        assert proc.returncode == 0, proc.stderr
        runs[portable] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["1"]["path"] == "portable"
    a, b = runs["0"], runs["1"]
    np.testing.assert_allclose(a["emb"], b["emb"], atol=2e-5)
    np.testing.assert_allclose(a["fused"], b["fused"], atol=2e-5)
    np.testing.assert_allclose(a["losses"], b["losses"], rtol=1e-4)
    assert not a["nan_fuse"] and not b["nan_fuse"]


AVX512_CODE = """
    import json, numpy as np, grapheme_multimodal as gm
    gm.set_num_threads(2)
    bits = lambda a: np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).ravel().tolist()
    out = {"path": gm._core.kernel_path()}
    # Widths that take the 6 x 32 tile masked (24, and the inputs' 18) and
    # full, with a narrow 6 x 16 after it (48 = 32 + 16, 72 = 64 + 8).
    for tag, (e, h) in {"": (16, 24), "w": (48, 72)}.items():
        m = gm.LearnableMultiModal(embed_dim=e, hidden_dim=h, num_heads=2, learning_rate=0.01, seed=0)
        rng = np.random.default_rng(0)
        x = {k: rng.normal(size=(203, 18)).astype(np.float32) for k in ("visual", "auditory", "linguistic")}
        emb, fused = m.encode_and_fuse(x)
        losses = [m.train_step(x)["total"] for _ in range(3)]
        emb2, fused2 = m.encode_and_fuse(x)
        out.update({"emb" + tag: bits(emb), "fused" + tag: bits(fused), "emb2" + tag: bits(emb2),
                    "fused2" + tag: bits(fused2), "losses" + tag: [float(v).hex() for v in losses]})
    print(json.dumps(out))
"""


def test_avx512_and_avx2_tiles_give_the_same_bits():
    """The AVX-512 GEMM tiles (where the CPU has AVX-512F) and the AVX2 ones
    (``GRAPHEME_MM_NO_AVX512=1``) compute the same sums in the same order:
    outputs, and outputs after training steps, are equal bit for bit."""
    runs = {}
    for off in ("0", "1"):
        proc = run_isolated(AVX512_CODE, env={"GRAPHEME_MM_NO_AVX512": off, "GRAPHEME_MM_PORTABLE": "0"})
        assert proc.returncode == 0, proc.stderr
        runs[off] = json.loads(proc.stdout.strip().splitlines()[-1])
    if runs["0"]["path"] != "avx512":
        pytest.skip(f"no AVX-512F here (kernel path {runs['0']['path']})")
    assert runs["1"]["path"] == "avx2", "the switch keeps the tiles on AVX2"
    a, b = runs["0"], runs["1"]
    for key in ("emb", "fused", "losses", "emb2", "fused2"):
        for tag in ("", "w"):
            assert a[key + tag] == b[key + tag], f"{key + tag}: AVX-512 and AVX2 differ"
