"""Thread pinning for every framework in the benchmark.

`pin_threads` must run before NumPy (or torch) is first imported: OpenBLAS,
MKL and OpenMP read their thread counts from the environment once, at load.
Our library reads `RAYON_NUM_THREADS` for its default too, and
`configure_library_threads` sets it explicitly with `gm.set_num_threads`.
"""

from __future__ import annotations

import os
import sys

BLAS_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
LIBRARY_ENV_VARS = ("RAYON_NUM_THREADS",)


def pin_threads(n: int) -> None:
    """Sets every thread-count variable to `n`; warns when NumPy is already loaded."""
    if "numpy" in sys.modules:
        print("warning: numpy was imported before the thread counts were pinned; BLAS may use more threads", file=sys.stderr)
    for var in BLAS_ENV_VARS + LIBRARY_ENV_VARS:
        os.environ[var] = str(n)


def configure_library_threads(gm: object, n: int) -> str:
    """Hook for our library's threading: calls ``gm.set_num_threads(n)`` when
    it exists; otherwise relies on the environment. Returns what was done."""
    setter = getattr(gm, "set_num_threads", None)
    if callable(setter):
        setter(n)
        return f"gm.set_num_threads({n})"
    return (
        f"no thread setter in the library: its rayon pool (featurize) reads RAYON_NUM_THREADS="
        f"{os.environ.get('RAYON_NUM_THREADS')}; the model's kernels are single-threaded"
    )


def configure_torch_threads(torch: object, n: int) -> None:
    torch.set_num_threads(n)  # type: ignore[attr-defined]
    try:
        torch.set_num_interop_threads(1)  # type: ignore[attr-defined]
    except RuntimeError:  # already set, or parallel work has started
        pass


def blas_threads() -> str:
    """The thread counts the loaded BLAS libraries report (via threadpoolctl when installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed; env " + ", ".join(f"{v}={os.environ.get(v)}" for v in BLAS_ENV_VARS[:3])
    return ", ".join(f"{i.get('internal_api')}:{i.get('num_threads')}" for i in threadpool_info())
