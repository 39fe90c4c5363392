"""The benchmarks' ``--json`` output: written atomically with the library's
own writer, so an interrupted run never leaves a half-written results file,
and never lost to a write that fails at the end of the run."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from grapheme_multimodal.io import atomic_write_bytes


def write_json(path: "str | Path", payload: Any, indent: int = 2) -> None:
    """Writes ``payload`` as JSON to ``path``, making its folder if needed.

    :func:`refuse_unwritable` checks ``path`` before the run, but the write
    at its end can still fail (a full disk, the folder removed or replaced
    meanwhile), and a traceback then lost the whole run's results. They go
    instead to a new file in the temp folder, named on stderr, and the
    script exits with status 1 (the results are not where asked); where
    even that fails they are printed to stderr."""
    data = (json.dumps(payload, indent=indent) + "\n").encode()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except (OSError, ValueError) as err:
        _rescue(path, data, err)


def _rescue(path: Path, data: bytes, err: BaseException) -> None:
    """Writes ``data`` (the results meant for ``path``, whose write failed
    with ``err``) to a new file in the temp folder, says where on stderr, and
    exits with status 1; prints them to stderr where that write fails too."""
    print(f"error: could not write the results to {str(path)!r}: {_reason(err, path)}", file=sys.stderr)
    fallback = None
    try:
        fd, fallback = tempfile.mkstemp(prefix=f"{path.stem or 'results'}-", suffix=path.suffix or ".json")
        os.close(fd)
        atomic_write_bytes(fallback, data)
    except (OSError, ValueError) as again:
        if fallback is not None:
            try:
                os.unlink(fallback)  # the empty placeholder of a write that failed
            except OSError:
                pass
        print(f"error: nor to the temp folder ({_reason(again, fallback)}); the results follow:", file=sys.stderr)
        sys.stderr.write(data.decode())
        sys.stderr.flush()
        raise SystemExit(1) from None
    print(f"the results are in {fallback!r} instead", file=sys.stderr)
    raise SystemExit(1) from None


def _reason(err: BaseException, path: "str | Path | None") -> str:
    """``err`` in a few words: its ``strerror``, with the file it names
    where that is not ``path`` ("File exists: '/data/out'" for a folder
    replaced by a file), else its message."""
    why = getattr(err, "strerror", None)
    if not why:
        return str(err) or type(err).__name__
    name = getattr(err, "filename", None)
    return f"{why}: {str(name)!r}" if name is not None and str(name) != str(path) else why


def writable_output(path: "str | Path | None") -> "str | None":
    """Why ``path`` cannot take a results file (a one-line reason), or None
    when it can: checked before a run, so that a long benchmark does not
    end in a traceback with its results lost. Makes the folder (as
    :func:`write_json` would) and writes and removes a file in it."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        return f"{str(path)!r} is a directory; expected a file name"
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():  # mkdir's "File exists" would not say which
        return f"cannot write {str(path)!r}: {str(above)!r} is not a directory"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".write-probe-"):
            pass
    except OSError as err:
        return f"cannot write {str(path)!r}: {err.strerror or err}"
    return None


def refuse_unwritable(parser: Any, path: "str | Path | None", flag: str = "--json") -> None:
    """``parser.error`` (one line, exit 2) when ``path`` cannot take the
    results file: called right after the flags are read, before the run."""
    reason = writable_output(path)
    if reason:
        parser.error(f"{flag}: {reason}")


def cpu_description() -> str:
    """The CPU as ``/proc/cpuinfo`` names it, with its family and model: a
    bare "AMD EPYC" does not tell Zen 4 from Zen 5, whose BLAS kernels round
    differently (scikit-learn's iterative CCA anchor moves with them);
    ``"unknown"`` where there is no ``/proc/cpuinfo``."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if not line.strip():  # the end of the first CPU's block
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return "unknown"
    name = fields.get("model name", "unknown")
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name
