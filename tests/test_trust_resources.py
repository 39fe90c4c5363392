"""Resources and sizes under hostile or repeated use: sizes beyond what the
process may allocate are refused naming the argument (never an abort or the
OOM killer), memory bounds hold for large inputs, and repeated calls,
failing ones included, leak no memory, file descriptors, files or threads.

Anything that could abort or exhaust memory runs in a child process under
an address-space limit (``RLIMIT_AS``), so a regression fails the test
rather than the test run.
"""

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from grapheme_multimodal import metrics

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")

_GIB = 1 << 30


def _child(code: str, limit: int = 2 * _GIB, timeout: float = 120) -> str:
    """Runs ``code`` in a fresh interpreter under an address-space limit of
    ``limit`` bytes; returns its stdout, failing with its output unless it
    exits 0 (a Rust abort is SIGABRT, the OOM killer SIGKILL)."""
    prelude = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
        import numpy as np
        import grapheme_multimodal as gm
    """)
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


# ------------------------------------------------------- ulimit -v / -d
@linux_only
def test_memory_budget_counts_the_address_space_limit():
    # Batch schedulers set `ulimit -v`: above it an allocation fails outright
    # (no overcommit), so sizes must be checked against it, not the RAM.
    out = _child("from grapheme_multimodal._validation import memory_budget; print(memory_budget())")
    assert 0 < int(out) <= 2 * _GIB


@linux_only
def test_input_beyond_the_address_space_limit_is_too_large_naming_it():
    # 2**25 rows of 18 float64 (a broadcast view: no memory of its own) take
    # 2.4 GB as float32: numpy's copy raised its own MemoryError naming no argument.
    out = _child("""
        model = gm.LearnableMultiModal(seed=0)
        big = np.broadcast_to(np.zeros((1, 18)), (2**25, 18))
        try:
            model.encode({"visual": big})
        except gm.TooLargeError as exc:
            print(exc.arg)
            print(exc)
        print(model.encode({"visual": np.ones((2, 18))}).shape)  # the model still works
    """)
    arg, message, shape = out.splitlines()
    assert arg == "inputs['visual']"
    assert "(33554432, 18)" in message and "expected fewer rows" in message
    assert shape == "(2, 7, 64)"


@linux_only
def test_buffer_capacity_beyond_the_address_space_limit_is_refused_up_front():
    # 2**20 experiences of 2,272 bytes (2.4 GB): accepted, the buffer then
    # failed only when it grew, after a long run of appends.
    out = _child("""
        try:
            gm.ExperienceBuffer(capacity=2**20, embed_dim=64)
        except gm.TooLargeError as exc:
            print(exc.arg)
        print(len(gm.ExperienceBuffer(capacity=1000, embed_dim=64)))
    """)
    assert out.split() == ["capacity", "0"]


# ------------------------------------------------- retrieval's blocks
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_retrieval_distance_blocks_stay_bounded_for_a_large_gallery(metric):
    # Blocks of 2048 query rows x the whole gallery: 16 GiB each at a million
    # rows (three of them for euclidean), whatever chunk_size said it bounded.
    n = 12_000
    rng = np.random.default_rng(0)
    query, gallery = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    labels = rng.integers(0, 5, n)
    tracemalloc.start()
    try:
        got = metrics.cross_view_retrieval(query, gallery, labels, metric=metric)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 160 << 20, f"peak {peak:,} bytes"
    # and every query row still gets its nearest gallery row
    if metric == "cosine":
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    nearest = np.concatenate([
        np.argmax(block @ gallery.T, axis=1) if metric == "cosine"
        else np.argmin((gallery**2).sum(axis=1) - 2 * block @ gallery.T, axis=1)
        for block in np.array_split(query, 60)
    ])
    assert got == {"class_precision_at_1": float(np.mean(labels[nearest] == labels)),
                   "instance_recall_at_1": float(np.mean(nearest == np.arange(n)))}


@linux_only
def test_metrics_inputs_beyond_memory_are_too_large_naming_them():
    # A memory map or broadcast view larger than memory: the float64 copy or
    # isfinite's mask of it raised numpy's MemoryError naming no argument.
    out = _child("""
        from grapheme_multimodal import metrics
        huge = np.broadcast_to(np.zeros((1, 4), np.float32), (2**28, 4))  # 8 GiB as float64
        small, labels = np.zeros((8, 4)), np.arange(8) % 2
        calls = {
            "knn": lambda: metrics.knn_accuracy(huge, np.zeros(2**28, np.int8), small, labels),
            "probe": lambda: metrics.linear_probe_accuracy(small, labels, huge, np.zeros(2**28, np.int8)),
            "retrieval": lambda: metrics.cross_view_retrieval(huge, huge, np.zeros(2**28, np.int8)),
            "auc": lambda: metrics.roc_auc(np.zeros(3), np.broadcast_to(np.zeros(1), (2**30,))),
        }
        for what, call in calls.items():
            try:
                call()
            except gm.TooLargeError as exc:
                print(what, exc.arg)
    """)
    assert out.splitlines() == ["knn train_x", "probe test_x", "retrieval query", "auc negative_scores"]


@linux_only
def test_masks_positions_and_views_beyond_memory_are_too_large_naming_them():
    # Broadcast views larger than memory were copied (a mask's rows are the
    # batch's) or masked by isfinite/isnan first: numpy's bare MemoryError.
    out = _child("""
        from grapheme_multimodal.sklearn import MultimodalEmbedder
        rows = np.random.default_rng(0).random((16, 18)).astype(np.float32)
        model = gm.LearnableMultiModal(seed=0)
        model.record_batch({"visual": rows, "auditory": rows})
        buffer = model.experience if hasattr(model, "experience") else model.buffer
        before = buffer.batch().rewards.copy()
        huge = (2**33,)
        estimator = MultimodalEmbedder(epochs=1).fit([rows[:, :6], rows[:, 6:]])
        calls = {
            "encode": lambda: model.encode({"visual": rows}, mask=np.broadcast_to(np.ones((1, 7), bool), huge + (7,))),
            "batch": lambda: buffer.batch(np.broadcast_to(np.zeros(1, np.int64), huge)),
            "priorities": lambda: buffer.update_priorities([0], np.broadcast_to(np.ones(1), huge)),
            "transform": lambda: estimator.transform([np.broadcast_to(rows[:1, :6], (2**28, 6)), rows[:1, 6:]]),
        }
        for what, call in calls.items():
            try:
                call()
            except gm.TooLargeError as exc:
                print(what, exc.arg)
        print(len(buffer), np.array_equal(buffer.batch().rewards, before))
    """)
    assert out.splitlines() == ["encode mask", "batch positions", "priorities priorities", "transform Xs[0]", "16 True"]


# ------------------------------------------ repetition: memory, fds, files, threads
@linux_only
def test_repeated_calls_leak_no_memory_descriptors_files_or_threads():
    # Each phase runs N calls after a warm-up and must not grow the resident
    # set by more than about a kilobyte a call (a leaked embedding row is 1.8
    # KB; a leaked checkpoint 280 KB), nor open descriptors, leave files
    # beside a target, or leave threads running.
    out = _child("""
        import gc, os, tempfile, threading, warnings
        warnings.simplefilter("ignore")
        from grapheme_multimodal.sklearn import MultimodalEmbedder

        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        def fds():
            return len(os.listdir("/proc/self/fd"))

        def phase(name, call, n, allowed):
            for _ in range(max(5, n // 5)):
                call()
            gc.collect()
            before, fd_before = rss(), fds()
            for _ in range(n):
                call()
            gc.collect()
            grown = rss() - before
            print(name, grown <= allowed, fds() == fd_before, grown)

        def failing(call, *errors):
            def run():
                try:
                    call()
                except (gm.GraphemeError, OSError) + errors:
                    pass
                else:
                    raise AssertionError("expected a failure")
            return run

        rng = np.random.default_rng(0)
        rows = rng.random((32, 18)).astype(np.float32)
        model = gm.LearnableMultiModal(seed=0)
        emb = model.encode({"visual": rows, "auditory": rows})
        phase("encode", lambda: model.encode({"visual": rows, "auditory": rows}), 2000, 2 << 20)
        phase("fuse", lambda: model.fuse(emb), 2000, 2 << 20)
        phase("encode-failing", failing(lambda: model.encode({"visual": rows[:, :5]})), 2000, 2 << 20)
        phase("encode-nan", failing(lambda: model.encode({"visual": np.full((3, 18), np.nan)})), 2000, 2 << 20)
        trained = gm.LearnableMultiModal(seed=0)
        data = {"visual": rows, "auditory": rows}
        phase("fit", lambda: trained.fit(data, epochs=1, batch_size=16, progress=False), 100, 2 << 20)
        phase("fit-progress", lambda: trained.fit(data, epochs=1, batch_size=16, progress=True), 50, 2 << 20)
        bad = {"visual": rows, "auditory": np.full_like(rows, np.nan)}
        phase("fit-failing", failing(lambda: trained.fit(bad, epochs=1, progress=True), ValueError), 100, 2 << 20)
        buffer = gm.ExperienceBuffer(capacity=64)
        mask = np.zeros((32, 7), bool)
        mask[:, :2] = True
        fused = model.fuse(emb, mask)
        strengths = model.pair_strengths(emb, mask)
        buffer.extend(emb, mask, fused, strengths, np.ones(32))

        def cycle():
            buffer.extend(emb[:4], mask[:4], fused[:4], strengths[:4], np.ones(4))
            drawn = buffer.sample(8, prioritized=True)
            buffer.update_priorities(drawn.indices, np.full(8, 2.0))
        phase("buffer", cycle, 2000, 2 << 20)

        folder = tempfile.mkdtemp()
        target = os.path.join(folder, "model.safetensors")
        buffer_file = os.path.join(folder, "buffer.safetensors")
        phase("checkpoint", lambda: (model.save(target), gm.LearnableMultiModal.load(target)), 200, 4 << 20)
        phase("buffer-file", lambda: (buffer.save(buffer_file), buffer.load(buffer_file)), 200, 4 << 20)
        garbage = os.path.join(folder, "garbage.safetensors")
        with open(garbage, "wb") as f:
            f.write(b"not a checkpoint" * 64)
        np.save(os.path.join(folder, "rows.npy"), rows)
        phase("load-garbage", failing(lambda: gm.LearnableMultiModal.load(garbage)), 300, 2 << 20)
        phase("load-missing", failing(lambda: gm.LearnableMultiModal.load(folder + "/none.safetensors")), 300, 2 << 20)
        phase("load-folder", failing(lambda: gm.LearnableMultiModal.load(folder)), 300, 2 << 20)
        phase("buffer-garbage", failing(lambda: buffer.load(garbage)), 300, 2 << 20)
        phase("save-nowhere", failing(lambda: model.save(folder + "/no/such/model.safetensors")), 300, 2 << 20)
        from pathlib import Path
        from grapheme_multimodal.files import read_modality_file
        for name, content in (("bad.npy", b"\\x93NUMPY garbage"), ("bad.csv", b"1,2\\n3,x,4\\n"), ("bad.npz", b"PK junk")):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(content)
            bad_file = Path(folder, name)
            phase("read-" + name, failing(lambda: read_modality_file(gm.Modality.VISUAL, bad_file), ValueError), 300, 2 << 20)
            os.unlink(bad_file)
        print("files", sorted(os.listdir(folder)))

        MultimodalEmbedder(epochs=1).fit([rows[:, :9], rows[:, 9:]])
        others = [t for t in threading.enumerate() if t is not threading.main_thread()]
        print("threads", all(t.daemon for t in others), len(others) <= 1)  # tqdm's monitor, a daemon, at most
    """, limit=4 * _GIB, timeout=240)
    lines = out.splitlines()
    phases = [line.split() for line in lines if not line.startswith(("files", "threads"))]
    assert len(phases) == 18
    assert [p for p in phases if p[1:3] != ["True", "True"]] == []
    assert lines[-2] == "files ['buffer.safetensors', 'garbage.safetensors', 'model.safetensors', 'rows.npy']"
    assert lines[-1] == "threads True True"


# ------------------------------------------------------------- CSV files
def test_reading_a_csv_takes_about_its_size_in_memory(tmp_path):
    # Every cell was kept as a Python string until the whole file was read:
    # 10-30x the file's size, so a CSV of a few GB was ended by the OOM killer.
    from grapheme_multimodal.files import read_numeric_csv

    path = tmp_path / "rows.csv"
    rows = np.random.default_rng(0).random((20_000, 10))
    np.savetxt(path, rows, fmt="%.5f", delimiter=",", header=",".join(f"c{i}" for i in range(10)), comments="")
    tracemalloc.start()
    try:
        values = read_numeric_csv(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * path.stat().st_size, f"peak {peak:,} bytes for a file of {path.stat().st_size:,}"
    np.testing.assert_array_equal(values, np.loadtxt(path, delimiter=",", skiprows=1))


# ---------------------------------------------------------- grapheme-mm embed
def test_embed_bounds_the_rows_per_model_call_by_default(tmp_path, monkeypatch, capsys):
    # Without --batch-size every row went through one call: the [N, 7, E]
    # embeddings and the encoders' layers of the whole file at once, many
    # times the output's size, so a file of a few million rows met the OOM
    # killer. The chunks give the bits one call gives.
    import grapheme_multimodal as gm
    from grapheme_multimodal.cli import EMBED_BATCH_SIZE, main

    n = EMBED_BATCH_SIZE + 1000
    rows = np.random.default_rng(0).random((n, 3)).astype(np.float32)
    np.save(tmp_path / "rows.npy", rows)
    model = gm.LearnableMultiModal(gm.LearnableMultiModalConfig(input_dims={"visual": 3}, embed_dim=8, hidden_dim=8,
                                                                num_heads=2, encoder_hidden=(8,)))
    model.save(tmp_path / "model.safetensors")
    whole_emb, whole = model.encode_and_fuse({"visual": rows})
    whole_hidden = model.hidden_features({"visual": rows})
    calls = []
    encode_and_fuse = gm.LearnableMultiModal.encode_and_fuse

    def recording(self, inputs, mask=None):
        calls.append(len(next(iter(inputs.values()))))
        return encode_and_fuse(self, inputs, mask)

    monkeypatch.setattr(gm.LearnableMultiModal, "encode_and_fuse", recording)
    out = tmp_path / "fused.npy"
    hidden = tmp_path / "hidden.npy"
    code = main(["embed", str(tmp_path / "model.safetensors"), "-m", f"visual={tmp_path / 'rows.npy'}", "-o", str(out),
                 "--hidden-features", str(hidden)])
    assert code == 0, capsys.readouterr().err
    assert calls == [EMBED_BATCH_SIZE, 1000]
    np.testing.assert_array_equal(np.load(out), whole)
    np.testing.assert_array_equal(np.load(hidden), whole_hidden)
    assert whole_emb.shape == (n, 7, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output", ["fused", "hidden"])
def test_estimator_transform_bounds_the_rows_per_model_call(output, dtype, monkeypatch):
    # As embed: transform ran every row through one call, many times the
    # output's memory; a million rows of the default recipe took ~20 GB.
    import grapheme_multimodal as gm
    from grapheme_multimodal import sklearn as gm_sklearn

    assert gm_sklearn._TRANSFORM_ROWS == 65536
    monkeypatch.setattr(gm_sklearn, "_TRANSFORM_ROWS", 1000)  # the same code path, on fewer rows
    rng = np.random.default_rng(0)
    estimator = gm_sklearn.MultimodalEmbedder(epochs=1, output=output).fit([rng.random((64, 4)), rng.random((64, 3))])
    n = 2500
    views = [rng.random((n, 4)).astype(dtype), rng.random((n, 3)).astype(dtype)]
    views[1][5] = np.nan  # a missing view in a row of the first chunk: the mask is chunked with the rows
    inputs = {estimator.modalities_[0]: views[0], estimator.modalities_[1]: views[1]}
    present = np.zeros((n, 7), bool)
    present[:, estimator.modalities_[0].index] = True
    present[:, estimator.modalities_[1].index] = ~np.isnan(views[1]).all(axis=1)
    inputs[estimator.modalities_[1]] = np.where(present[:, [estimator.modalities_[1].index]], views[1], 0)
    if output == "fused":
        whole = estimator.model_.encode_and_fuse(inputs, present)[1]
    else:
        features = estimator.model_.hidden_features(inputs, present)
        whole = metrics.unit_side_by_side({m: features[:, m.index] for m in estimator.modalities_}, estimator.modalities_)
    calls = []
    method = "encode_and_fuse" if output == "fused" else "hidden_features"
    original = getattr(gm.LearnableMultiModal, method)

    def recording(self, inputs, mask=None, *args, **kwargs):
        calls.append(len(mask))
        return original(self, inputs, mask, *args, **kwargs)

    monkeypatch.setattr(gm.LearnableMultiModal, method, recording)
    got = estimator.transform(views)
    assert calls == [1000, 1000, 500]
    # the chunks are written into an array of the views' dtype: the bits of one call's output cast to it
    assert got.dtype == dtype and got.tobytes() == whole.astype(dtype).tobytes()


# --------------------------------------------------------------- ExactCCA
@linux_only
def test_cca_of_a_view_too_wide_for_memory_is_too_large_naming_it():
    # 20,000 columns: four [d, d] float64 matrices (12.8 GB) in a 2 GiB
    # process; numpy's bare MemoryError from X.T @ X, or the OOM killer.
    out = _child("""
        from grapheme_multimodal.evaluation import ExactCCA
        rng = np.random.default_rng(0)
        cca = ExactCCA(2).fit(rng.random((50, 4)), rng.random((50, 3)))
        before = cca.x_weights_.copy()
        for wide in ("X", "Y"):
            views = {"X": rng.random((50, 4)), "Y": rng.random((50, 3)), wide: rng.random((50, 20_000))}
            try:
                cca.fit(views["X"], views["Y"])
            except gm.TooLargeError as exc:
                print(exc.arg)
        print(np.array_equal(cca.x_weights_, before))
    """)
    assert out.split() == ["X", "Y", "True"]
