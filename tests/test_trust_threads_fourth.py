"""Hostile use from several threads, fourth audit: what test_threads,
test_thread_matrix, test_trust_concurrency and test_trust_threads_audit
left out. Threads meet at events, never at sleeps; every wait is bounded,
so a regression fails instead of hanging CI."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from typing import Any, Callable, Dict, List

import numpy as np
import pytest

from conftest import Overlap

#: A thread still running after this many seconds is taken as hung.
JOIN_TIMEOUT_S = 5.0

# ------------------------------------------------- BLAS limits on several threads
#: Runs in a fresh interpreter, where no other code has touched a thread count: in pytest's process
#: earlier tests' limits (threadpoolctl >= 3.7 lets only one thread at a time set OpenBLAS's count,
#: the first to set it) decide what a thread's set does. Prints "<scenario> => ok" or what went wrong.
_BLAS_SCENARIOS = """
    import os, signal, sys, threading, warnings
    import numpy as np
    import threadpoolctl
    from sklearn.cross_decomposition import CCA
    from grapheme_multimodal import anchors, datasets, evaluation
    from grapheme_multimodal.evaluation import NUTRIMOUSE_ANCHORS
    from grapheme_multimodal.metrics import knn_accuracy

    TIMEOUT = {timeout}

    def blas():
        return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    def in_thread(call, name="helper"):
        thread = threading.Thread(target=call, name=name, daemon=True)
        thread.start()
        return thread

    def joined(thread):
        thread.join(TIMEOUT)
        assert not thread.is_alive(), thread.name + ": still running (deadlock)"

    def blas_on_two_threads():  # whatever the machine, so that a 1 left behind shows; from a thread (above)
        joined(in_thread(lambda: threadpoolctl.threadpool_limits(limits=2, user_api="blas")))

    def split(n, seed):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, 3))
        views = {"a": z @ rng.normal(size=(3, 6)), "b": z @ rng.normal(size=(3, 5)) + 0.1 * rng.normal(size=(n, 5))}
        return datasets.MultipleFeatures(views={v: x.astype(np.float32) for v, x in views.items()}, labels=np.arange(n) % 3)

    TRAIN, TEST = split(40, 0), split(20, 1)
    X, Y = np.random.default_rng(0).normal(size=(300, 40)), np.arange(300) % 3  # 40 columns: the brute-force search
    joined(in_thread(lambda: knn_accuracy(X, Y, X, Y)))  # loads every BLAS the blocks use
    blas_on_two_threads()
    BEFORE = blas()
    assert set(BEFORE.values()) == {2}, BEFORE
    real_fit, pause = CCA.fit, [None]
    CCA.fit = lambda self, *args, **kwargs: (pause[0](), real_fit(self, *args, **kwargs))[1]

    def one_thread():
        with evaluation._anchors.one_thread():
            pause[0]()

    BLOCKS = {
        "one_thread": one_thread,
        "cca_anchor": lambda: anchors.cca_anchor(TRAIN, TEST, "a", "b", n_components=2),
        "nutrimouse anchor": lambda: NUTRIMOUSE_ANCHORS["CCA(2), scikit-learn (iterative)"](
            TRAIN.views["a"], TRAIN.views["b"], TEST.views["a"], TEST.views["b"]),
    }

    def overlapping(first, second):
        # the first in, the second in, the first out, the second out
        in_first, in_second, first_out, second_out = (threading.Event() for _ in range(4))
        inside = []

        def paused():
            inside.append(blas())
            if threading.current_thread().name == "first":
                in_first.set()
                assert in_second.wait(TIMEOUT)
            else:
                in_second.set()
                assert first_out.wait(TIMEOUT)

        pause[0] = paused

        def run_first():
            try:
                BLOCKS[first]()
            finally:
                first_out.set()
            assert second_out.wait(TIMEOUT)  # alive till then (threadpoolctl >= 3.7 let only it set OpenBLAS)

        one = in_thread(run_first, "first")
        assert in_first.wait(TIMEOUT)
        two = in_thread(BLOCKS[second], "second")
        try:
            joined(two)
        finally:
            second_out.set()
        joined(one)
        assert len(inside) == 2 and all(set(seen.values()) == {1} for seen in inside), ("not limited inside", inside)

    def knn_on_threads():
        expected = knn_accuracy(X, Y, X[::2], Y[::2])
        for _ in range(5):  # rounds until one leaves BLAS limited (before: the first, nearly always)
            got = []
            threads = [in_thread(lambda: got.extend(knn_accuracy(X, Y, X[::2], Y[::2]) for _ in range(4)))
                       for _ in range(4)]
            for thread in threads:
                joined(thread)
            assert got == [expected] * 16
            assert blas() == BEFORE, ("left limited", blas())

    def nested_and_failing():
        seen = []

        def run():
            try:
                with evaluation._anchors.one_thread():
                    with evaluation._anchors.one_thread():
                        seen.append(set(blas().values()))
                    seen.append(set(blas().values()))  # the outer block still limits
                    1 / 0
            except ZeroDivisionError:
                seen.append("raised")
        joined(in_thread(run))
        assert seen == [{1}, {1}, "raised"], seen

    def forked_mid_block():
        # the child has only the thread that forked: the other thread's block never ends there
        entered, release = threading.Event(), threading.Event()

        def hold():
            with evaluation._anchors.one_thread():
                entered.set()
                release.wait(TIMEOUT)

        holder = in_thread(hold)
        assert entered.wait(TIMEOUT)
        assert set(blas().values()) == {1}
        with warnings.catch_warnings():  # Python 3.12+: "this process is multi-threaded, use of fork()..."
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            signal.alarm(int(TIMEOUT))  # a child stuck on the lock ends
            put_back = blas() == BEFORE
            with evaluation._anchors.one_thread():
                limits = set(blas().values()) == {1}
            os._exit(0 if put_back and limits and blas() == BEFORE else 1)
        release.set()
        joined(holder)
        status = os.waitpid(pid, 0)[1]
        assert status == 0, "the child's BLAS stayed limited, or a block there hung (status %d)" % status

    SCENARIOS = {
        **{f"{a} | {b}": (lambda a=a, b=b: overlapping(a, b)) for a, b in [
            ("one_thread", "one_thread"), ("cca_anchor", "cca_anchor"), ("one_thread", "cca_anchor"),
            ("cca_anchor", "one_thread"), ("nutrimouse anchor", "one_thread")]},
        "knn_accuracy on threads": knn_on_threads,
        "nested and failing": nested_and_failing,
        "forked mid-block": forked_mid_block,
    }
    for name, scenario in SCENARIOS.items():
        try:
            scenario()
            assert blas() == BEFORE, ("left limited", blas())
            print(name, "=> ok", flush=True)
        except Exception as exc:
            print(name, "=>", type(exc).__name__, exc, flush=True)
        blas_on_two_threads()  # the next starts from two, whatever this one left
""".replace("{timeout}", str(JOIN_TIMEOUT_S))


@functools.lru_cache(maxsize=None)
def _blas_scenarios() -> Dict[str, str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(_BLAS_SCENARIOS)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONFAULTHANDLER": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(line.split(" => ", 1) for line in done.stdout.splitlines() if " => " in line)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the scenarios fork (one of them)")
@pytest.mark.parametrize("scenario", [
    "one_thread | one_thread", "cca_anchor | cca_anchor", "one_thread | cca_anchor", "cca_anchor | one_thread",
    "nutrimouse anchor | one_thread", "knn_accuracy on threads", "nested and failing", "forked mid-block",
])
def test_blas_limits_on_several_threads_are_put_back(scenario: str) -> None:
    """threadpoolctl's limit puts back, on leaving, the thread count it found
    on entering, for the whole process. Two threads' blocks that overlapped
    (the first in, the second in, the first out, the second out) ended with
    the second putting back the 1 it found: BLAS stayed on one thread for the
    rest of the process (numpy's products on every thread on one core). So
    did scikit-learn's own limit inside knn_accuracy on several threads, and
    a block in progress in another thread when the process forked (in the
    child, where that thread never leaves it)."""
    pytest.importorskip("sklearn")
    got = _blas_scenarios()
    assert got.get(scenario) == "ok", f"{scenario}: {got.get(scenario, 'not run')}"


# ------------------------------------------- warning filters of nutrimouse_cv's anchors
def test_nutrimouse_anchors_on_two_threads_at_once_leave_the_warning_filters_alone(monkeypatch) -> None:
    """nutrimouse_cv's scikit-learn anchors silenced ConvergenceWarning with
    warnings.catch_warnings, which sets the filters of the whole process: two
    fits whose blocks overlapped (one in, the other in, the first out, the
    second out) left ConvergenceWarning ignored for good, and while one ran,
    every other thread's ConvergenceWarnings were dropped."""
    from sklearn.cross_decomposition import CCA, PLSCanonical

    from grapheme_multimodal.evaluation import NUTRIMOUSE_ANCHORS

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 5)), rng.normal(size=(16, 4))
    before = list(warnings.filters)
    overlap = Overlap(JOIN_TIMEOUT_S)
    in_first, first_out = overlap.in_first, overlap.first_out
    during: List[Any] = []

    def pausing(real: Callable[..., Any]) -> Callable[..., Any]:
        def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
            during.append(list(warnings.filters))
            overlap.meet()
            return real(self, *args, **kwargs)

        return fit

    monkeypatch.setattr(CCA, "fit", pausing(CCA.fit))
    monkeypatch.setattr(PLSCanonical, "fit", pausing(PLSCanonical.fit))
    anchor = dict(NUTRIMOUSE_ANCHORS)
    results: Dict[str, Any] = {}

    def run(name: str, which: str) -> None:
        try:
            results[name] = anchor[which](x, y, x, y)
        finally:
            if name == "first":
                first_out.set()

    first = threading.Thread(target=run, args=("first", "CCA(2), scikit-learn (iterative)"), name="first", daemon=True)
    second = threading.Thread(target=run, args=("second", "PLSCanonical(2), scikit-learn"), name="second", daemon=True)
    first.start()
    assert in_first.wait(JOIN_TIMEOUT_S)
    second.start()
    for thread in (first, second):
        thread.join(JOIN_TIMEOUT_S)
        assert not thread.is_alive(), f"{thread.name}: still running after {JOIN_TIMEOUT_S} s (deadlock)"
    assert set(results) == {"first", "second"}
    assert len(during) == 2 and all(filters == before for filters in during), "an anchor changed the warning filters"
    assert warnings.filters == before, "the anchors left the process's warning filters changed"
