"""Row-wise model calls over many rows, a chunk of rows at a time.

``grapheme-mm embed`` and :meth:`MultimodalEmbedder.transform` embed files
and arrays of millions of rows: one call of every row held the ``[N, 7, E]``
embeddings and the encoders' layers of all rows at once, many times the
output's size. Each row's outputs depend on that row alone, so the chunks
give the bits one call gives.
"""

from __future__ import annotations

__all__ = ["ROWS_PER_CALL", "in_row_chunks"]

from typing import Any, Callable, Optional, Tuple

import numpy as np

#: Rows per model call when embedding many rows (``grapheme-mm embed``'s
#: default ``--batch-size``, ``MultimodalEmbedder.transform``'s chunks).
ROWS_PER_CALL = 65536


def in_row_chunks(
    n: int, step: int, call: Callable[[slice], Tuple[Optional[np.ndarray], ...]], dtype: Any = None
) -> Tuple[Optional[np.ndarray], ...]:
    """The outputs of ``call(rows)`` for the ``n`` rows, ``step`` rows (a
    slice) per call, stacked along the first axis: a tuple as ``call``
    returns, its ``None`` entries left ``None``. With one call its outputs
    come back as they are; else each chunk is written into an output
    allocated once (of ``dtype`` when given, else the chunk's: cast as it
    lands), not kept as a list of chunks and concatenated, which held the
    outputs twice. ``call`` is made once even for ``n = 0``."""
    outputs = None
    for start in range(0, max(n, 1), step):
        got = call(slice(start, start + step))
        if outputs is None:
            if start + step >= n:  # one call
                return got
            outputs = tuple(None if g is None else np.empty((n,) + g.shape[1:], dtype or g.dtype) for g in got)
        for out, g in zip(outputs, got):
            if out is not None:
                out[start:start + len(g)] = g
    return outputs
