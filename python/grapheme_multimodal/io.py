"""Files: atomic writes and tagged, checksummed safetensors containers.

Every file this library writes goes to a temporary file in the target
directory first (``.NAME.*.tmp``, created with the user's umask, locked while
it is written where the filesystem takes locks), is flushed to disk, and then
replaces the target in one step (``os.replace``), after which the directory is
synced too. An interrupted save never leaves a half-written file where a good
one was, and the temporary files of saves that were killed are removed by the
next save to the same target.
The replace gives the name a new file: other hard links to the file it
replaces keep the old content (a write in place could not be atomic).
Files written as one result (:func:`atomic_write_all`, or every save in a
:func:`writing_together` block) are all written before any is given its
name, and none keeps it when one cannot have its own; two such results
given their names in one folder at once (two processes) are renamed one
after the other, so the files left are one writer's set.

Each safetensors file carries a CRC-32 of every tensor (its name, dtype, shape
and bytes) and of its metadata in a ``checksum`` metadata entry, verified on
load. Loading reads the header first, checks the tensors it declares against
what the caller expects (names, dtypes, shapes) and only then reads their data,
so a forged or oversized file is refused before it costs memory; the data is
read, not memory-mapped, so a file cut short while it is loaded is an error,
not a crash (SIGBUS). Files written
before checksums existed (library 0.1 and earlier; no ``checksum`` entry) still
load, unverified; saving them again adds one.
"""

from __future__ import annotations

__all__ = ["TensorSpec", "atomic_write", "atomic_write_all", "atomic_write_bytes", "writing_together", "write_tagged_safetensors",
           "read_tagged_safetensors"]

import atexit
import bisect
import codecs
import contextlib
import contextvars
import errno
import itertools
import json
import math
import functools
import os
import re
import secrets
import stat
import sys
import threading
import time
import weakref
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Mapping, NamedTuple, NoReturn, Optional, Sequence, Set, Tuple, TypeVar, Union

import numpy as np

from ._locking import uninterrupted
from ._validation import counted, is_utf8, refuse_beyond_budget
from .exceptions import CheckpointError, InvalidValueError, TooLargeError

try:  # POSIX: in-flight temporary files are locked, so a cleanup can tell them from orphans
    import fcntl
except ImportError:  # pragma: no cover - Windows: orphans are left alone
    fcntl = None  # type: ignore[assignment]

PathLike = Union[str, "os.PathLike[str]"]
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------- saves at exit
# A daemon thread saving when the interpreter exits aborted the process ("FATAL: exception not rethrown"):
# safetensors' serialiser releases the GIL, and a thread that takes it back once the interpreter finalizes is
# ended by pthread_exit, whose unwinding the extension's Rust frames catch, which glibc answers with abort().
# So the interpreter's exit (an atexit hook: before daemon threads are stopped) waits for the saves in flight,
# which then complete (work the user asked for); a save another thread begins after that is refused.

#: How long the interpreter's exit waits for saves in flight in other threads, in seconds.
EXIT_WAIT_S = 60.0
_saves_lock = threading.Lock()  # taken by itself where a Ctrl-C may come (see call_saving)
_saves = threading.Condition(_saves_lock)
_saves_in_flight = 0
_exiting = False
_save_depth = threading.local()  # this thread's nesting of saves (a model's save writes by the file writers)


def call_saving(path: Any, function: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
    """``function(*args, **kwargs)``, counted as a save to ``path`` in
    flight, which the interpreter's exit waits for (:func:`_wait_for_saves`).
    Once exit has begun, a save from another thread than the main one is
    refused (``RuntimeError``, nothing written): it would be stopped
    half-way, or abort the process.

    A function, not a context manager: a Ctrl-C as contextlib's
    ``__enter__`` returned or its ``__exit__`` began kept the save counted
    while the interrupt was alive (a REPL keeps the last one): the
    interpreter's exit then waited a minute for it, and every later save of
    the thread took itself for a part of it, a relative path written in
    the working folder of the interrupted save, not the current one."""
    global _saves_in_flight
    depth = getattr(_save_depth, "n", 0)
    counted = False
    try:
        if not depth:
            # The working folder as the save begins, which its files are written by (_stage): read again as
            # each is written, another thread's os.chdir while a model's state was copied sent the file there.
            _save_depth.cwd = _working_folder()
            # The lock itself, not the condition: Condition.__enter__ is Python, and a Ctrl-C landing as its
            # acquire returned left the lock held for good (every later save, and the exit, waited for ever).
            with _saves_lock:
                if _exiting and threading.current_thread() is not threading.main_thread():
                    what = "nothing was saved" if path is None else f"path: {_shown(path)} was not saved"
                    raise RuntimeError(
                        f"{what}: the interpreter is exiting, and a save another "
                        "thread begins now would be stopped half-way (finish saves before the program ends, or "
                        "join the thread that saves)")
                _saves_in_flight += 1
                counted = True  # with the count, in the try: a Ctrl-C as the block ended left it up (exit waited)
        _save_depth.n = depth + 1
        return function(*args, **kwargs)
    finally:
        _save_depth.n = depth
        if not depth:
            _save_depth.cwd = None
        if counted:
            with _saves_lock:
                _saves_in_flight -= 1
                _saves.notify_all()


def _working_folder() -> Optional[str]:
    """The working folder, or None when it has been removed."""
    try:
        return os.getcwd()
    except OSError:
        return None


def _shown(path: Any) -> str:
    """``path`` as a refused save names it (a file name's repr; anything else as it is)."""
    try:
        return repr(os.fspath(path))
    except TypeError:
        return repr(path)


def _wait_for_saves() -> None:
    """At the interpreter's exit: waits (up to :data:`EXIT_WAIT_S`) for the
    saves other threads have in flight, and refuses new ones from them."""
    global _exiting
    deadline = time.monotonic() + EXIT_WAIT_S
    with _saves:
        _exiting = True
        while _saves_in_flight:
            left = deadline - time.monotonic()
            if left <= 0:
                print(f"grapheme_multimodal: {_saves_in_flight} save(s) still in progress after {EXIT_WAIT_S:g} s "
                      "at exit; not waiting longer (their files stay as they were)", file=sys.stderr)
                return
            _saves.wait(left)


def _saves_after_fork_in_child() -> None:
    """A forked child has only the forking thread: the other threads' saves are not in flight there (and the
    condition's lock, held by one at the fork, would never be released)."""
    global _saves, _saves_lock, _saves_in_flight, _exiting
    _saves_lock = threading.Lock()
    _saves = threading.Condition(_saves_lock)
    _saves_in_flight = 1 if getattr(_save_depth, "n", 0) else 0
    _exiting = False


atexit.register(_wait_for_saves)
if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_saves_after_fork_in_child)


class TensorSpec(NamedTuple):
    """What a file must declare for one tensor: its numpy dtype name, its
    shape, and whether it must be there (``required=False``: it may be absent)."""

    dtype: str
    shape: Tuple[int, ...]
    required: bool = True

FORMAT_KEY = "format"
CHECKSUM_KEY = "checksum"
_METADATA_ENTRY = "__metadata__"
_SAFETENSORS_DTYPES = {"float32": "F32", "float64": "F64", "bool": "BOOL", "int64": "I64"}
_NUMPY_DTYPES = {
    **{v: k for k, v in _SAFETENSORS_DTYPES.items()},
    **{"F16": "float16", "BF16": "bfloat16", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8"},
}
#: Bytes per element of every dtype the safetensors format names.
_ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
#: The longest header safetensors itself reads.
_MAX_HEADER_BYTES = 100_000_000


class _Declared(NamedTuple):
    """A tensor as a safetensors header declares it: dtype name, shape and
    where its bytes are (offsets into the data that follows the header)."""

    dtype: str
    shape: Tuple[int, ...]
    start: int
    end: int


def as_path(path: Any, arg: str = "path") -> Path:
    """``path`` as a :class:`~pathlib.Path`, after checking it is a file name:
    a ``str`` or ``os.PathLike`` giving a ``str``, not empty, without NUL
    characters, and one the file system's encoding can encode (not a lone
    surrogate such as ``"\\ud800"``; ``"\\udc80"``, an undecodable byte that
    ``os.fsdecode`` gave, encodes back) (a ``TypeError`` or
    :class:`InvalidValueError` naming ``arg``; ``os`` would say only
    "embedded null byte", or raise a bare ``UnicodeEncodeError``, naming no
    argument)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{arg}: expected a file name (str or os.PathLike), got {type(path).__name__} {path!r:.80}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError(f"{arg}: expected a file name as str, got {type(text).__name__} {text!r:.80}")
    if not text:
        raise InvalidValueError(f"{arg}: the file name is empty; expected a file name", arg)
    if "\0" in text:
        raise InvalidValueError(f"{arg}: {text!r:.80} contains a NUL character; expected a file name", arg)
    why = unencodable(text)
    if why is not None:  # a lone surrogate: every os call raised a bare UnicodeEncodeError naming no argument
        raise InvalidValueError(f"{arg}: {why}", arg)
    return Path(text)


#: Characters that break a one-line message or vanish in it: C0 and C1 controls (a newline, a tab, a
#: terminal's escape sequence), and Unicode's line and paragraph separators.
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown_name(path: Any) -> str:
    """A file name as a one-line message shows it: as it is, or quoted and
    escaped (Python's repr) when it holds a control character. A name with
    a newline was printed with a space (the command line's messages are one
    line each), or across two lines: the user could not tell which file,
    nor copy its name back. (Bytes a name holds that are not UTF-8 are
    printed as they are, as ``ls`` prints them: see the command line.)"""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str):
        return repr(text)
    return repr(text) if _CONTROL_CHARACTERS.search(text) else text


def unencodable(text: str) -> Optional[str]:
    """Why the file system cannot take the name ``text`` (a lone surrogate
    such as ``"\\ud800"``, which no file name's bytes decode to), or None
    when it can. ``"\\udc80"``, an undecodable byte ``os.fsdecode`` gave,
    encodes back to its byte and passes."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError as exc:
        return (f"{text!r:.80} cannot be encoded for the file system ({exc.encoding}: {text[exc.start:exc.end]!r:.20} "
                f"at position {exc.start}); expected a file name the file system can hold")
    return None


# --------------------------------------------------------------------- writing
#: The targets a write must not replace: ``{where the name lives: the argument
#: that named it}``, set by :func:`keeping_existing`.
_KEPT: "contextvars.ContextVar[Mapping[str, str]]" = contextvars.ContextVar("_KEPT", default={})
#: The targets whose failed writes are named by an argument (``--output``) instead of ``path``: ``{where the
#: name lives: the argument}``, set by :func:`naming_outputs` (and, with the targets it keeps, :func:`keeping_existing`).
_NAMED: "contextvars.ContextVar[Mapping[str, str]]" = contextvars.ContextVar("_NAMED", default={})
#: The longest file name most filesystems take (bytes); a temporary file's name adds ``_TEMP_NAME_EXTRA``.
_NAME_MAX = 255
_TEMP_NAME_EXTRA = len("..0123456789ab.tmp")  # the dots, secrets.token_hex(_TEMP_TOKEN_BYTES), the suffix
#: Random bytes in a temporary file's name (twice as many hex digits).
_TEMP_TOKEN_BYTES = 6


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (temp file + fsync + replace +
    directory fsync). A new file gets the permissions the user's umask allows;
    a replaced one keeps its permissions (and its owner, where this process
    may give it one: as root). Through a symbolic link it writes
    the file the link names, as ``open(path, "wb")`` would (the rename would
    replace the link and leave that file stale). Inside
    :func:`keeping_existing`, a file at one of its targets is never replaced."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write(path: PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """:func:`atomic_write_bytes` of what ``write(f)`` writes to the open
    temporary file ``f``: a large array goes to the file in chunks, not
    first into a bytes copy of it (the command line's embeddings: 256 MB
    for a million rows, held twice). ``write`` must write by ``f.write``,
    whose failures raise: not ``np.save(f, ...)`` on ``f`` itself, which
    writes by ``ndarray.tofile`` and loses a failed write (see the command
    line's ``_save_npy``)."""
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(writes: Sequence[Tuple[PathLike, Callable[[BinaryIO], Any]]]) -> List[Path]:
    """:func:`atomic_write` of several files, ``[(path, write), ...]``, as
    one result: every file is written and synced to its temporary file
    before any replaces its target, so a write that fails (a full disk, a
    file size limit) leaves every target as it was. Written one after the
    other, the outputs of ``grapheme-mm embed --overwrite`` (embeddings,
    binding strengths) were half replaced by a run that failed: the
    previous embeddings lost, beside binding strengths of the run before.
    Inside :func:`keeping_existing`, a target taken meanwhile fails the
    whole write: the files it had already given a new name are removed
    again. Inside :func:`writing_together`, the targets are replaced when
    that block ends. Two writes to one file (by one name, or through a
    symbolic link) are refused before any is written: the later replaced
    the earlier, lost without a word."""
    writes = list(writes)
    return call_saving(writes[0][0] if writes else "", _atomic_write_all, writes)


def _atomic_write_all(writes: List[Tuple[PathLike, Callable[[BinaryIO], Any]]]) -> List[Path]:
    """:func:`atomic_write_all` itself, counted as a save in flight (:func:`call_saving`)."""
    files: Dict[Any, int] = {}  # by file_key
    for k, (target, _) in enumerate(writes):
        earlier = files.setdefault(file_key(_anchored(_file_name(target, "path"))), k)
        if earlier != k:
            raise InvalidValueError(
                f"writes: {os.fspath(target)!r} and {os.fspath(writes[earlier][0])!r} are one file; expected a file "
                "of its own for each write (the later would replace the earlier)", "writes")
    # The staged files are this list's until the commit (or the writing_together block) takes them, a
    # move made with Ctrl-C held back: whoever holds them removes them on failure. Discarded only up to
    # the commit, Ctrl-C between the last write and the commit left them on disk, their descriptors open
    # and locked (so that no later save of this process took them for orphans).
    staged: List[_Staged] = []
    try:
        for target, write in writes:
            _stage(target, write, staged)
        given = [s.given for s in staged]
        together = _open_block()
        if together is not None:
            together.add(staged)
        else:
            _commit(staged)
    except BaseException:
        _discard(staged)  # those the commit or the block had not taken
        raise
    return given


class writing_together(contextlib.ContextDecorator):
    """``with writing_together():`` every :func:`atomic_write_all` (and so
    every save of this library) in the block is written and synced to its
    temporary file at once, but its
    target is replaced only when the block ends without an error: the files
    of one run (the demo's checkpoint, figures and JSON) are all written or
    none is. A block that fails removes the temporary files and leaves
    every target as it was; a target that :func:`keeping_existing` keeps
    and that another program took meanwhile fails the block at its end,
    with the files it had already named removed. A block inside another
    joins it. Nothing written in the block is at its target before the
    block ends: it cannot be read back there. (The block is this thread's
    context: another thread's writes join it only when that thread runs in
    a copy of it, as this library's parallel tasks do.) Also a decorator,
    ``@writing_together()``: a block per call.

    A Ctrl-C as the block opens or closes never leaves it open: a save in
    the interrupt's handler (or a notebook's next cell) is written, and so
    is a block opened there. (A generator's block, contextlib's, stayed
    open while the interrupt was alive; each save there was staged into it,
    never written, its file removed when the interrupt was dropped.)"""

    def __init__(self) -> None:
        self._together: Optional[_Together] = None
        self._watch: Optional["weakref.ref[writing_together]"] = None

    def _recreate_cm(self) -> "writing_together":
        # as a decorator (``@writing_together()``, as contextlib's had it), a block of its own per call:
        # one instance shared by calls in two threads, or a recursive one, would be entered twice
        return writing_together()

    def __enter__(self) -> None:
        if self._together is not None:  # else the inner with's end wrote the outer's files, its block still open
            raise RuntimeError("writing_together: this block is open already; expected a new writing_together() per with")
        if _open_block() is not None:  # inside another block: joins it
            return
        together = _Together()
        # Closes the block when this is dropped with its __exit__ never run (see __exit__); a
        # weak reference, not __del__: one run at every block's end swallowed a Ctrl-C landing there
        self._watch = weakref.ref(self, functools.partial(_close_dropped_block, together))
        _WATCHES.add(self._watch)
        try:
            _TOGETHER.set(together)  # a Ctrl-C is raised as set returns, in this try: no block is left
            self._together = together  # a store: nothing is raised between it and the with's own try
        except BaseException:
            _TOGETHER.set(None)
            raise

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # A Ctrl-C can land as this is called, before its first line: _open_block finds the block
        # dead (a frame of the interrupt is this call, holding it), and _close_dropped_block closes
        # it once the interrupt is dropped
        together, self._together = self._together, None
        if together is None:
            return
        try:
            _TOGETHER.set(None)  # in the try: a Ctrl-C raised as it returns still discards the staged files
            watch, self._watch = self._watch, None  # dropped with it: its callback is never called
            _WATCHES.discard(watch)  # type: ignore[arg-type]
            if exc_type is None:
                _commit_together(together)
        finally:
            _discard(together.staged)  # those the commit had not taken (all of them, after an error)


#: The code of :class:`writing_together`'s ``__enter__`` and ``__exit__``, as :func:`_open_block` finds them.
_ENTER_CODE, _EXIT_CODE = writing_together.__enter__.__code__, writing_together.__exit__.__code__

#: The weak references of the :class:`writing_together` blocks not yet ended.
_WATCHES: "Set[weakref.ref[writing_together]]" = set()


def _close_dropped_block(together: "_Together", watch: "weakref.ref[writing_together]") -> None:
    """A :class:`writing_together` dropped unended (a Ctrl-C kept its
    ``__exit__`` from running): its block closed where this context holds
    it, its staged files removed."""
    _WATCHES.discard(watch)
    if _TOGETHER.get() is together:
        _TOGETHER.set(None)
    _discard(together.staged)


def _open_block() -> "Optional[_Together]":
    """The :func:`writing_together` block this context's writes join, if
    any: not one whose ``__exit__`` a Ctrl-C interrupted before its first
    line (a frame of the interrupt, while it is handled or kept as the last
    one), closed here and its staged files removed; so is one whose
    ``__exit__`` was interrupted before it closed the block, or whose
    ``__enter__`` was interrupted after it opened it."""
    together = _TOGETHER.get()
    if together is None:
        return None
    for exc in (sys.exc_info()[1], getattr(sys, "last_exc", None), getattr(sys, "last_value", None)):
        tb = getattr(exc, "__traceback__", None)
        while tb is not None:  # an __enter__ or __exit__ of this block in it, interrupted: it still holds the block
            code = tb.tb_frame.f_code
            if code is _ENTER_CODE or code is _EXIT_CODE:
                local = tb.tb_frame.f_locals
                owner = local.get("self")
                # or an __exit__ that had taken it off self (its first line) before closing it, or an __enter__
                # that opened it and raised past its try: Python 3.9 and 3.10 raise a Ctrl-C after most
                # instructions, not at calls alone (an __enter__'s own refusal opened none: no `together` there)
                if local.get("together") is together or (code is _EXIT_CODE and getattr(owner, "_together", None) is together):
                    _TOGETHER.set(None)
                    owner._together = None
                    watch, owner._watch = owner._watch, None
                    _WATCHES.discard(watch)
                    _discard(together.staged)
                    return None
            tb = tb.tb_next
    return together


def call_writing_together(function: Callable[[], _T]) -> _T:
    """``function()`` as the body of a :func:`writing_together` block: its
    saves all written when it returns, or none when it raises.

    A function, for this library's own blocks (the demo's result, the
    command line's): a Ctrl-C as contextlib's ``__enter__`` returned or
    its ``__exit__`` began kept the block's generator suspended, the block
    open, while the interrupt was alive (in its handler; a notebook keeps
    the last one): a save made there (a model saved in the handler, or in
    the next cell) was staged into the dead block, never written, and its
    file removed when the interrupt was dropped. Here the block is opened
    in the try whose finally closes it."""
    if _open_block() is not None:  # inside another block: joins it
        return function()
    together = _Together()
    try:
        try:
            _TOGETHER.set(together)
            result = function()
        finally:
            _TOGETHER.set(None)
        _commit_together(together)
    except BaseException:
        # a Ctrl-C past the try, before its finally's reset returned (Python 3.9 and 3.10 raise one after most
        # instructions): the block stayed in the context, and every later save of it was staged there, never written
        if _TOGETHER.get() is together:
            _TOGETHER.set(None)
        _discard(together.staged)  # those the commit had not taken (Ctrl-C before it did, as the block ended)
        raise
    return result


def _commit_together(together: "_Together") -> None:
    """Gives the files of a :func:`writing_together` block that ended their names."""
    # The renames at its end are a save in flight, which the interpreter's exit waits for (each file was
    # one while it was written); the block's own work is not: it may be anything, for any time. Refused
    # once the exit has begun: the caller discards the staged files.
    call_saving(None, _commit, together.staged)


class _Staged(NamedTuple):
    """One file written to its temporary file ``tmp`` (open as ``fd``,
    locked) and not yet given its name: ``path`` (``given``, followed),
    which file it is (``key``, its :func:`file_key`), in ``directory``;
    ``kept_as``: the argument that named it when :func:`keeping_existing`
    keeps what is there (it is linked, not replaced)."""

    given: Path
    path: Path
    key: Union[str, Tuple[Tuple[int, int], str]]
    directory: Path
    kept_as: Optional[str]
    fd: int
    tmp: str
    where: Path  # ``path`` by the absolute name of its folder: what the rename writes (``path`` is the name errors give)


class _Together:
    """The files a :func:`writing_together` block has staged."""

    def __init__(self) -> None:
        self.staged: List[_Staged] = []
        self._lock = threading.Lock()

    def add(self, staged: List[_Staged]) -> None:
        """Adds ``staged``; one of them written again in the block replaces
        the earlier write (linked both, the second would find the first's
        name taken, "by something else")."""
        # Ctrl-C held back: the files move from the caller's list to the block's in one step (the
        # replaced ones, closed, out of the block's list in the same)
        with self._lock, uninterrupted():
            # by file_key, as atomic_write_all tells two writes to one file: by the followed path,
            # d/a beside d/sub/../a were two files, and the second's link found the first's in its place
            again = {s.key for s in staged}
            _discard([s for s in self.staged if s.key in again])
            self.staged = [s for s in self.staged if s.key not in again] + staged
            staged.clear()


#: The :func:`writing_together` block that holds the writes (None: outside one, each write is replaced at once).
_TOGETHER: "contextvars.ContextVar[Optional[_Together]]" = contextvars.ContextVar("_TOGETHER", default=None)


def _stage(target: PathLike, write: Callable[[BinaryIO], Any], staged: List[_Staged]) -> None:
    """Writes and syncs ``write``'s file to a temporary file beside ``target``
    and appends it to ``staged`` (before writing: a failed write's file is
    removed with the others)."""
    given = _file_name(target, "path")
    anchored = _anchored(given)
    path = _followed(anchored)
    try:
        directory = check_write_target(path)
        if not directory.is_absolute():
            # The working folder read once, as the save began (call_saving): by a relative name, the temporary
            # file was made in one folder and renamed (or removed, on failure) in the folder current at the
            # rename, so another thread's os.chdir meanwhile failed the save ("its folder '.' was removed or
            # moved") and left the temporary file behind. Joined, not normalised: "link/.." stays the OS's.
            directory = Path(getattr(_save_depth, "cwd", None) or os.getcwd(), directory)
        kept_as = _KEPT.get().get(_location(anchored))
        key = file_key(anchored)  # before the temporary file exists (it was computed, realpath and all, after)
        _remove_orphaned_temp_files(directory, path.name)
        where = directory / path.name  # `path`, by the folder read above (`path` names it in errors)
        owner = _owner(where)
        # Ctrl-C held back from the temporary file's creation until it is in `staged`, which a failure
        # removes: in between, it left the file on disk and its locked descriptor open (no call in it waits:
        # a temporary file another save's cleanup holds is given up for another)
        with uninterrupted():
            fd, tmp = _locked_temp_file(directory, where, path)
            staged.append(_Staged(given, path, key, directory, kept_as, fd, tmp, where))
        with os.fdopen(fd, "wb", closefd=False) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _give_to(fd, owner)
    except OSError as exc:
        _raise_naming(exc, path, _argument_of(given))


def _anchored(given: Path) -> Path:
    """``given`` as the save reads it: a relative name joined to the working
    folder as the save began (:func:`call_saving`) where another thread's
    ``os.chdir`` has changed it since, else as it is (its errors name it as
    given). Resolved in the folder current when the file was made, a
    relative name was checked there ("directory 'out' does not exist", of a
    folder that was there when ``save`` was called), and a symbolic link by
    that name there was followed: the checkpoint written over the file
    another folder's link names, without a word."""
    began = getattr(_save_depth, "cwd", None)
    if given.is_absolute() or began is None or _working_folder() == began:
        return given
    return Path(began, given)


def _argument_of(given: PathLike) -> str:
    """The argument a failed write to ``given`` is named by: the command
    line's flag (:func:`naming_outputs`, :func:`keeping_existing`), else
    ``path``. Looked up only inside such a block: ``_location`` reads the
    working folder, and where that folder was removed it raised its own
    bare FileNotFoundError in place of the save's error."""
    kept, named = _KEPT.get(), _NAMED.get()
    if not kept and not named:
        return "path"
    try:
        location = _location(_anchored(Path(given)))  # by the folder current as the save began, as kept_as is
    except OSError:  # the working folder gone: the save's own error says so
        return "path"
    return kept.get(location) or named.get(location) or "path"


def _commit(staged: List[_Staged]) -> None:
    """Gives each staged file its name (a rename, or a hard link where
    :func:`keeping_existing` keeps what is there), then syncs the folders.
    When one fails (its name taken meanwhile), the files this commit had
    already linked are removed again (only where the name still holds the
    file written here) and the error raised: a set of outputs with its
    last missing looked complete. Takes the files out of ``staged`` (those
    it has not taken when it raises, the caller discards)."""
    linked: List[_Staged] = []
    taken: List[_Staged] = []
    directories: List[Path] = []
    folders: List[int] = []  # the folders' descriptors, locked while the files are renamed
    try:
        _lock_folders(staged, folders)  # before the block: the wait must stay interruptible
        # Ctrl-C held back: a replaced file cannot be put back, and one between two renames left the first
        # replaced and the second not (raised after the loop, it removes the links as a failed link does)
        with uninterrupted():
            taken[:] = staged  # in the same step as the files' names: Ctrl-C between left them on disk
            staged.clear()
            directories[:] = dict.fromkeys(s.directory for s in taken)
            # the links first: one that fails (its name taken meanwhile) is undone with the links before it, but
            # a file already replaced cannot be put back (a kept output refused beside another one overwritten)
            replaced: List[_Staged] = []  # those a failure cannot put back: its error names them
            for s in sorted(taken, key=lambda s: s.kept_as is None):
                try:
                    if s.kept_as is None:
                        os.replace(s.tmp, s.where)
                        replaced.append(s)
                    else:
                        _link_as_new(s.tmp, s.where, s.given, s.kept_as)
                        linked.append(s)
                except OSError as exc:
                    if exc.errno == errno.ENOENT and not os.path.lexists(s.tmp):
                        # was the OS's "No such file or directory: '.NAME.<hex>.tmp' -> 'NAME'", of a file the user never named
                        raise _temp_file_gone(s, replaced) from None
                    if exc.filename == s.tmp:  # the OS's, of the rename: it named the temporary file
                        raise _not_renamed(exc, s) from None
                    _raise_naming(exc, s.path, s.kept_as or _argument_of(s.given))
            # the replaced files' descriptors closed in the same step (Ctrl-C after it left them open and
            # locked); a linked one's is kept until a Ctrl-C held back meanwhile has removed its link
            _discard([s for s in taken if s not in linked], remove=False)
            taken[:] = linked
            _close_all(folders)
    except BaseException:
        with uninterrupted():  # a second Ctrl-C here left the others' files
            for s in linked:
                _unlink_if_ours(s)
            _discard(taken)
            _close_all(folders)
        raise
    try:
        with uninterrupted():  # each directory's descriptor closed
            for directory in directories:
                _fsync_directory(directory)
    finally:
        _discard(taken, remove=False)


def _temp_file_gone(s: _Staged, replaced: List[_Staged]) -> FileNotFoundError:
    """The error of the staged file ``s``, whose temporary file was not there
    to be renamed, after this commit had replaced the files ``replaced``
    (which stay). Said "its folder was removed or moved" of a temporary file
    removed from a folder still there, and "nothing was written" after the
    commit had replaced files in other folders."""
    try:
        unlinked = os.fstat(s.fd).st_nlink == 0  # a folder moved keeps it linked
    except OSError:
        unlinked = True
    if unlinked and os.path.isdir(s.directory):
        why = (f"its temporary file {os.path.basename(s.tmp)!r} was removed from its folder {str(s.directory)!r} while "
               "the file was written (by another program: a cleanup of hidden .tmp files?), or the folder was removed "
               "and made again")
    else:
        why = f"its folder {str(s.directory)!r} was removed or moved while the file was written"
    done = ", ".join(repr(str(r.given)) for r in replaced)
    saved = "was saved before it and stays" if len(replaced) == 1 else "were saved before it and stay"
    written = f"{done} {saved}; nothing else was written" if done else "nothing was written"
    return FileNotFoundError(errno.ENOENT, f"{why}; {written}", str(s.given))


def _lock_folders(staged: List[_Staged], held: List[int]) -> None:
    """Locks the folders of a commit of several files (an exclusive
    ``flock`` on each, taken in one order, so that two commits never wait
    for each other), appending their descriptors to ``held`` as they are
    opened (the caller closes them: :func:`_close_all`). Two runs writing
    one set of outputs at once (two ``grapheme-mm embed --overwrite``)
    interleaved their renames: one's embeddings were left beside the
    other's binding strengths, of other rows perhaps, without a word. The
    wait is for another commit's renames alone. One file's commit needs no
    lock (its rename is one step), nor can a folder that cannot be locked
    (Windows, a filesystem without locks) take one: renamed as before."""
    if len(staged) < 2 or fcntl is None:
        return
    mine = _folders_of_this_thread()
    for folder, name in _folders_in_lock_order(staged):
        if folder in mine:
            # a signal handler's commit (a "save on SIGTERM") run in this thread inside its own commit, which holds
            # the folder (or waits for it) and cannot go on until the handler returns: waiting, it hung the program
            continue
        # in `held` as it is opened (a Ctrl-C between left the descriptor open), and in _FOLDERS_LOCKED before
        # a fork can copy it; this thread's before the wait, which a handler may interrupt
        with uninterrupted(), _folders_locked_guard:
            try:
                fd = os.open(name, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            try:
                opened = _identity(os.fstat(fd))  # the folder opened (another put at the name since: its own)
            except OSError:
                opened = folder
            if opened in mine:  # held already, by this commit or the one a signal handler here interrupted
                os.close(fd)
                continue
            held.append(fd)
            _FOLDERS_LOCKED[fd] = (opened, threading.get_ident())
            mine.add(opened)
        _wait_for_folder(fd, opened, name, staged)


#: How long a commit of several files waits for their folder, which another commit holds locked while it
#: renames its files (moments), in seconds: past that, its process is taken for stopped (Ctrl-Z, SIGSTOP) or
#: hung in the middle of it, and the save fails saying so (it waited for ever, without a word). As long as
#: the interpreter's exit waits for saves in flight (EXIT_WAIT_S).
FOLDER_LOCK_WAIT_S = 60.0
#: The longest pause between two tries of the folder's lock, in seconds (the first is a millisecond).
_FOLDER_LOCK_PAUSE_S = 0.05


def _wait_for_folder(fd: int, folder: Tuple[int, int], name: Path, staged: List[_Staged]) -> None:
    """Locks the folder open at ``fd`` (``folder``: its device and inode),
    trying again after growing pauses (interruptible: Ctrl-C) for up to
    :data:`FOLDER_LOCK_WAIT_S`; then ``TimeoutError`` naming the folder and,
    where it can be read, the process that holds it. Tried without blocking:
    ``flock`` has no timeout, and an alarm to end its wait is the main
    thread's alone. The wait starts again where the lock changed hands
    meanwhile (another process holds it at the end than at the start: saves
    that follow one another are no process stopped)."""
    deadline, pause, holder = None, 0.001, None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _FOLDERS_HELD.add(fd)
            return
        except BlockingIOError:  # held by another commit
            pass
        except OSError:  # a filesystem without locks: renamed as before
            return
        now = time.monotonic()
        if deadline is None or now >= deadline:
            was, holder = holder, _folder_lock_holder(folder)
            if deadline is not None and (holder is None or holder == was):
                raise _folder_held(holder, folder, name, next(s for s in staged if s.directory == name))
            deadline = now + FOLDER_LOCK_WAIT_S
        time.sleep(min(pause, deadline - now))
        pause = min(2 * pause, _FOLDER_LOCK_PAUSE_S)


def _folder_held(pid: Optional[int], folder: Tuple[int, int], name: Path, s: _Staged) -> OSError:
    """The ``TimeoutError`` of a save whose folder (``folder``: device and
    inode; ``name``) another commit held locked for :data:`FOLDER_LOCK_WAIT_S`
    (its process ``pid``, where ``/proc/locks`` says it; where it cannot,
    as on macOS, this process's own commits are known)."""
    held = (f"{_argument_of(s.given)}: {str(s.path)!r} cannot be saved: its folder {str(name)!r} has been locked for "
            f"{FOLDER_LOCK_WAIT_S:g} s by another save of several files into it")
    if pid == os.getpid() or pid is None and _held_in_this_process(folder):
        # a flock is the open file's: another open of the folder here waits for it too
        # not "stopped (Ctrl-Z)": this process runs, and kill -CONT of it changed nothing
        return named_os_error(
            errno.ETIMEDOUT,
            f"{held} in this process (another thread's, or the one a signal handler interrupted), which renames its "
            "files in moments: that save is stuck in the middle of it (waiting for another folder, as for a save a "
            "signal handler began during it, which waits for ever, or for a file system that does not answer); "
            "nothing was written; expected no save from a signal handler while a save is under way (set a flag "
            "there and save once the handler has returned), and the save run again")
    who = "" if pid is None else f" (process {pid})"
    return named_os_error(
        errno.ETIMEDOUT,
        f"{held}{who}, which renames its files in moments: its process is stopped (Ctrl-Z, SIGSTOP) or hung in the "
        "middle of it; nothing was written; expected that process resumed (fg, kill -CONT) or ended, and the save "
        "run again")


def _held_in_this_process(folder: Tuple[int, int]) -> bool:
    """Whether a commit of this process holds ``folder`` (device, inode) locked."""
    with _folders_locked_guard:
        return any(fd in _FOLDERS_HELD and held == folder for fd, (held, _) in _FOLDERS_LOCKED.items())


def _folder_lock_holder(folder: Tuple[int, int]) -> Optional[int]:
    """The process ``/proc/locks`` (Linux) says holds the ``flock`` on the
    folder ``folder`` (device, inode), or None where it says none it can
    name (no such file, another pid namespace's process: 0)."""
    device = f"{os.major(folder[0]):02x}:{os.minor(folder[0]):02x}:{folder[1]}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's reads "1: -> FLOCK ..."
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == device:
            return int(fields[4]) if fields[4].isdigit() and int(fields[4]) > 0 else None
    return None


def _folders_in_lock_order(staged: List[_Staged]) -> List[Tuple[Tuple[int, int], Path]]:
    """The folders of ``staged``, each once as what it is (its device and
    inode, with a name of it), in the order of those: one folder reached
    by two names that are not links (a bind mount, as a container's two
    volumes of one folder) was locked twice by one commit, whose second
    lock waited for its first for ever; and two processes reaching two
    folders by such names could order them differently (by their names)
    and each wait for the other's lock. A folder gone is left out (its
    rename says so)."""
    folders: Dict[Tuple[int, int], Path] = {}
    for directory in dict.fromkeys(s.directory for s in staged):  # one stat per name, not per file
        try:
            folders.setdefault(_identity(os.stat(directory)), directory)
        except OSError:
            continue
    return sorted(folders.items())


def _identity(info: os.stat_result) -> Tuple[int, int]:
    """Which file ``info`` describes: its device and inode."""
    return info.st_dev, info.st_ino


def _close_all(descriptors: List[int]) -> None:
    """Closes ``descriptors`` (releasing their locks), taking them out of the list."""
    while descriptors:
        with _folders_locked_guard:
            fd = descriptors.pop()
            _folders_of_this_thread().discard(_FOLDERS_LOCKED.pop(fd, (None,))[0])
            _FOLDERS_HELD.discard(fd)
            os.close(fd)


#: The descriptors of the folders that commits in flight hold locked (:func:`_lock_folders`): ``{descriptor:
#: ((device, inode) of the folder, thread)}``. A child forked meanwhile shares their locks (a flock belongs to
#: the open file, which a fork copies) and closes the copies of other threads' commits, which do not go on
#: there: kept, the lock outlived the commit until the child exited (a 'fork' pool's worker: for ever), and
#: every later commit of several files into the folder waited for it.
_FOLDERS_LOCKED: Dict[int, Tuple[Tuple[int, int], int]] = {}
#: Those of :data:`_FOLDERS_LOCKED` whose lock is taken (the others wait for it): where ``/proc/locks`` cannot
#: name the holder of a folder a save timed out on, whether it is this process (see :func:`_folder_held`).
_FOLDERS_HELD: Set[int] = set()
_folders_locked_guard = threading.Lock()  # held by a fork: a descriptor is opened and listed in one step
_this_thread = threading.local()


def _folders_of_this_thread() -> Set[Tuple[int, int]]:
    """The folders this thread's commit holds locked (or waits for), by device and inode."""
    if not hasattr(_this_thread, "folders"):
        _this_thread.folders = set()
    return _this_thread.folders


def _folders_locked_after_fork_in_child() -> None:
    """Closes, in a forked child, the folders other threads' commits held locked (see :data:`_FOLDERS_LOCKED`)."""
    global _folders_locked_guard
    me = threading.get_ident()  # the forking thread, whose own commit (if any) closes its descriptors itself
    for fd, (_, thread) in list(_FOLDERS_LOCKED.items()):
        if thread != me:
            del _FOLDERS_LOCKED[fd]
            _FOLDERS_HELD.discard(fd)
            with contextlib.suppress(OSError):
                os.close(fd)  # not flock(LOCK_UN): that would release the parent's lock too
    _folders_locked_guard = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(before=lambda: _folders_locked_guard.acquire(),
                        after_in_parent=lambda: _folders_locked_guard.release(),
                        after_in_child=_folders_locked_after_fork_in_child)


def _not_renamed(exc: OSError, s: _Staged) -> OSError:
    """The error of the written file ``s`` that the rename could not give
    its name, naming the file given: the OS's named the temporary file too
    ("Is a directory: '.m.st.<hex>.tmp' -> 'm.st'", of a folder made at the
    name while the file was written), a name the user never gave."""
    try:
        folder, kind = file_kind(s.directory), file_kind(s.where)
    except OSError:
        folder, kind = "a directory", None  # said no more than the OS did
    if folder not in ("a directory", MISSING):  # a file or a device put in the folder's place
        what = f"its folder {str(s.directory)!r} is now {folder or 'a file'}, put there while the file was written"
    elif kind not in (None, MISSING):
        what = f"is now {kind}, made there while the file was written"
    elif exc.errno == errno.EBUSY and _mounted_on(s.where):
        what = f"is {_MOUNT_POINT}"
    else:
        what = "could not be given the written file"
    # the command line's flag (--output) where it names the file: "path" is an argument no command has
    return named_os_error(exc.errno, f"{s.kept_as or _argument_of(s.given)}: {str(s.given)!r}: {what} "
                                     f"({exc.strerror}); nothing was written there")


def _discard(staged: List[_Staged], remove: bool = True) -> None:
    """Removes the staged files' temporary files (with ``remove``; one
    already renamed is no longer there) and closes them, taking them out of
    ``staged``: each is closed once, however often this runs (Ctrl-C held
    back meanwhile: one between two left the others open, locked, and their
    files on disk)."""
    with uninterrupted():
        taken = list(staged)
        staged.clear()
        for s in taken:
            if remove:
                _remove_temp_file(s)
            os.close(s.fd)  # releases the lock


def _remove_temp_file(s: _Staged) -> None:
    """Removes ``s``'s temporary file: by its name, or, where its folder was
    moved (renamed) while it was written, where its descriptor says it is
    now (Linux's ``/proc/self/fd``): by its name alone, the copy of the
    whole file was left in the moved folder for good (no later save to
    the target looks there)."""
    try:
        os.unlink(s.tmp)
        return
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        now = os.readlink(f"/proc/self/fd/{s.fd}")
        # the same file, still linked, by the same name: not another file put at that path since
        if os.path.basename(now) == os.path.basename(s.tmp) and os.path.samestat(os.lstat(now), os.fstat(s.fd)):
            os.unlink(now)
    except OSError:  # no /proc (macOS, Windows), or the file is gone: nothing more to do
        pass


def _unlink_if_ours(s: _Staged) -> None:
    """Removes the name ``s.path`` (by ``s.where``) if it still holds the
    file written to ``s.fd`` (the same inode on the same device); a file
    that another program put there since is kept."""
    try:
        if os.path.samestat(os.lstat(s.where), os.fstat(s.fd)):
            os.unlink(s.where)
            _fsync_directory(s.directory)
    except OSError:
        pass


def _raise_naming(exc: OSError, path: Path, arg: str = "path") -> NoReturn:
    """Raises ``exc``, or, when it names no file (a write's or sync's "No
    space left on device", "File too large", "Input/output error"), the
    error of its errno (its subclass kept) worded as the package's other
    file errors: ``path: 'PATH' cannot be saved: <the system's words>``
    (``arg`` for ``path``: the command line's flag, :func:`naming_outputs`).
    It was the OS's ``[Errno 28] No space left on device: 'PATH'``, without
    the ``path:`` the others begin with. Errors that name a file already,
    the OS's or this module's (``path: ...``), are raised as they are."""
    if exc.errno is not None and exc.filename is None and not str(exc).startswith(("path: ", f"{arg}: ")):
        why = exc.strerror or os.strerror(exc.errno)
        raise named_os_error(exc.errno, f"{arg}: {str(path)!r} cannot be saved: {why}; nothing was written there") from exc
    raise exc


def named_os_error(errno_: Optional[int], message: str) -> OSError:
    """An OSError of ``errno_``'s subclass (``PermissionError`` for EACCES)
    whose text is ``message`` alone (``"path: 'm.st' ..."``), its ``errno``
    set. Made as ``PermissionError(13, message)``, the text began
    "[Errno 13] ": the command line printed that before the argument's
    name, and :func:`~._validation.renamed` (which renames an error whose
    text begins with an argument's name) could not give it the flag's."""
    error = OSError(errno_, message)  # the errno's subclass, as the OS's own errors
    named = type(error)(message)
    named.errno = errno_
    return named


@contextlib.contextmanager
def naming_outputs(targets: Mapping[str, Optional[PathLike]]) -> Iterator[None]:
    """``with naming_outputs({"--output": path}):`` a write to one of
    ``targets`` (``{argument: path}``; ``None`` paths skipped) in the block
    that fails as it writes (a full disk) names the argument, not ``path``:
    for the command line, which has no argument of that name."""
    named = {_location(as_path(p, arg)): arg for arg, p in targets.items() if p is not None}
    previous = _NAMED.get()
    try:
        _NAMED.set({**previous, **named})
        yield
    finally:
        _NAMED.set(previous)


@contextlib.contextmanager
def keeping_existing(targets: Mapping[str, Optional[PathLike]]) -> Iterator[None]:
    """``with keeping_existing({"--output": path}):`` an :func:`atomic_write_bytes`
    to one of ``targets`` (``{argument: path}``; ``None`` paths skipped) in
    the block never replaces a file that is there, but raises
    ``FileExistsError`` naming the argument. For the command line, which
    refuses existing outputs before its work: a file created during that
    work (by another program, or a second run with the same output) is kept,
    not silently replaced. The check and the write are one step (a hard
    link, which fails when the name is taken)."""
    kept = {_location(as_path(p, arg)): arg for arg, p in targets.items() if p is not None}
    previous = _KEPT.get()
    try:
        _KEPT.set({**previous, **kept})  # in the try (see writing_together): kept for good after a Ctrl-C there
        yield
    finally:
        _KEPT.set(previous)


def file_key(given: Path) -> Union[str, Tuple[Tuple[int, int], str]]:
    """Which file a write to ``given`` writes: one key for every name of it
    (``d/a``, ``d/sub/../a``, a symbolic link to it, its name in a folder
    bind-mounted elsewhere): its folder as what it is (device and inode),
    and its name. By the resolved path alone, ``/out/x.npy`` beside
    ``/work/out/x.npy`` of a container given one folder as two volumes were
    two files, and the later write replaced the earlier without a word. A
    folder that is not there, or of no inode: by its resolved path."""
    path = _followed(given)
    try:
        folder = os.stat(path.parent if str(path.parent) else ".")
    except OSError:
        return _location(path)
    # an inode of 0 says none is known (some Windows file systems): every folder there would be one
    return (_identity(folder), path.name) if folder.st_ino else _location(path)


def _location(path: Path) -> str:
    """Where the name ``path`` lives (its folder resolved), whatever is there."""
    return os.path.join(os.path.realpath(path.parent if str(path.parent) else "."), path.name)


def _link_as_new(tmp: str, path: Path, given: Path, arg: str) -> None:
    """Gives the written ``tmp`` the name ``path`` unless a file has it."""
    taken = FileExistsError(
        f"{arg}: {str(given)!r} was created by something else while this ran; it was kept as it is and this "
        "result was not written (pass --overwrite to replace it, or choose another name)"
    )
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise taken from None
    except OSError:  # a filesystem without hard links: check, then rename (a small window remains)
        if os.path.lexists(path):
            raise taken from None
        os.replace(tmp, path)
        return
    _unlink_quietly(tmp)


def check_write_target(path: PathLike, arg: str = "path", mounts: bool = False) -> Path:
    """The directory of ``path``, after checking that :func:`atomic_write_bytes`
    can put a file there: ``path`` names a file (not ending in a separator),
    the directory exists and ``path`` is not a directory, device, FIFO or
    socket (through a symbolic link: what it names, which is what the writer
    writes). With ``mounts``, nor a file mounted there (a container's volume
    of one file), which no rename can replace: that reads the system's
    table of mounts (tens of microseconds), for a check before long work
    (the command line's), not at every save, whose rename says it then.
    Errors name ``arg``."""
    given = _anchored(_file_name(path, arg))  # in a save: by the folder current as it began
    file_kind(given, arg)  # a name too long is refused naming arg: pathlib's calls below raised the OS's error bare
    path = _followed(given)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        if directory.exists():
            raise NotADirectoryError(f"{arg}: {str(directory)!r} is not a directory; expected a file name in one")
        if file_kind(directory) == _LOOP:  # it is there: Path.exists says False for what it cannot follow
            raise NotADirectoryError(f"{arg}: directory {str(directory)!r} is {_LOOP}; expected a folder")
        link = next((p for p in (directory, *directory.parents) if p.is_symlink() and not p.exists()), None)
        if link is not None:  # the folder named is there, a link: what is missing is what it names
            raise FileNotFoundError(f"{arg}: directory {str(directory)!r} does not exist: {str(link)!r} is a symbolic "
                                    f"link to {os.readlink(link)!r}, which does not exist")
        if path != given:  # the name given is there, a link: the folder missing is that of the file it names
            raise FileNotFoundError(f"{arg}: {str(given)!r} is a symbolic link to {os.readlink(given)!r}, whose folder "
                                    f"{str(directory)!r} does not exist; expected a link to a file in a folder that "
                                    "exists (a save writes the file a link names)")
        raise FileNotFoundError(f"{arg}: directory {str(directory)!r} does not exist{tilde_hint(given)}")
    if path.is_dir():
        raise IsADirectoryError(f"{arg}: {str(path)!r} is a directory; expected a file name")
    kind = file_kind(path)
    if kind is not None and kind is not MISSING:  # the rename would replace a device, FIFO or socket with a file
        raise FileExistsError(f"{arg}: {str(path)!r} is {kind}, not a regular file; expected a file name to write")
    if kind is None and mounts and _mounted_on(path):
        # the rename fails with EBUSY (a mount point's name cannot be given another file): refused before the work
        # (grapheme-mm train trained to its end, then lost it)
        raise named_os_error(errno.EBUSY, f"{arg}: {str(path)!r} is {_MOUNT_POINT}")
    if kind is None and _on_read_only_filesystem(directory):
        # os.access said no of every file there: "is read-only ... (make it writable)" sent the user to
        # chmod a file whose mode was never the cause, and which no chmod there can change
        raise named_os_error(errno.EROFS, f"{arg}: {str(path)!r} cannot be replaced: its folder {str(directory)!r} is "
                                          "on a read-only file system; expected a folder on a writable one")
    if kind is None and (not os.access(path, os.W_OK) or not stat.S_IMODE(os.stat(path).st_mode) & 0o222):
        # the rename would replace a file its owner made read-only (even as root, where os.access says yes)
        raise named_os_error(errno.EACCES, f"{arg}: {str(path)!r} is read-only; expected a file that may be replaced "
                                           "(make it writable, or save under another name)")
    return directory


#: What a file mounted at an output's name is, and what to do.
_MOUNT_POINT = ("a mount point (a file mounted there, as a container's volume of one file), which a save cannot "
                "replace: it writes a new file and gives it that name; expected a file that is not mounted (mount its "
                "folder, and save into that)")


def _mounted_on(path: Path) -> bool:
    """Whether a file system is mounted at ``path`` (its folder resolved;
    Linux's ``/proc/self/mountinfo``, False where that cannot be told). A
    file bind-mounted in a container is on the same device as its folder,
    often: ``os.path.ismount`` does not see it."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            table = f.read()
        where = os.fsencode(os.path.join(os.path.realpath(path.parent if str(path.parent) else "."), path.name))
    except (OSError, ValueError):
        return False
    # the table's fifth field is where it is mounted, with " ", a tab, a newline and "\\" as octal escapes
    escaped = re.sub(rb"[ \t\n\\]", lambda m: b"\\%03o" % m[0][0], where)
    if escaped not in table:  # most often answered without splitting the table
        return False
    return any(len(fields) > 4 and fields[4] == escaped for fields in (line.split(b" ") for line in table.splitlines()))


def _on_read_only_filesystem(directory: Path) -> bool:
    """Whether ``directory`` is on a file system mounted read-only (False where that cannot be told)."""
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows), or the folder cannot be examined
        return False


def _file_name(path: Any, arg: str) -> Path:
    """:func:`as_path`, refusing a name that ends in a separator or ``/.``
    (``out/``): ``Path`` drops that ending, and the write would create a
    file named ``out`` where the user named a folder."""
    given = as_path(path, arg)
    text = os.fspath(path)
    last = text.replace(os.altsep, os.sep) if os.altsep else text
    if last.rsplit(os.sep, 1)[-1] in ("", "."):
        raise IsADirectoryError(f"{arg}: {text!r} names a folder (it ends with {text[-1]!r}); expected a file name")
    # a save that began in a folder that exists follows the name there (_anchored), wherever the working folder
    # is now: refused here, a save was told its folder had been removed when another thread had changed to a
    # folder since removed
    if getattr(_save_depth, "cwd", None) is None and in_removed_working_folder(given):
        # the OS's bare "[Errno 2] No such file or directory", naming neither the argument nor a file
        raise FileNotFoundError(f"{arg}: {text!r} {IN_REMOVED_WORKING_FOLDER}")
    return given


#: What a relative file name is when the working folder has been removed (see :func:`in_removed_working_folder`).
IN_REMOVED_WORKING_FOLDER = ("names a file in the current folder, which has been removed; expected a file name in a "
                             "folder that exists (an absolute one, or change to such a folder first)")


def in_removed_working_folder(path: Path) -> bool:
    """Whether ``path`` is relative and the working folder, where every
    resolution of it begins, has been removed: saves and reads alike then
    fail with "No such file or directory", which says nothing of why."""
    if path.is_absolute():
        return False
    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def _followed(path: Path) -> Path:
    """``path``, or the file it names when it is a symbolic link."""
    # os.path.islink, not Path.is_symlink: that raised the OS's bare error of a name too long (check_write_target names it)
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _locked_temp_file(directory: Path, path: Path, shown: Path) -> Tuple[int, str]:
    """A new ``.NAME.<random>.tmp`` beside ``path``, open for writing and
    locked (so other saves see it is in use; unlocked where the filesystem
    takes no locks), with the target's permissions
    or, for a new target, ``0o666`` minus the umask (applied by ``open``).
    Errors name the file ``shown`` (``path`` as the caller gave it)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = None
    while True:
        tmp = str(directory / f"{_temp_prefix(path.name)}{secrets.token_hex(_TEMP_TOKEN_BYTES)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        except OSError as exc:  # a folder the user may not write: name the file they gave, not ours
            if exc.errno == errno.ENOENT:  # "No such file or directory", of a file being made
                if not os.path.isdir(directory) or _removed(directory):  # since the check
                    raise FileNotFoundError(f"path: directory {str(directory)!r} does not exist") from None
                raise FileNotFoundError(
                    f"path: {str(shown)!r} cannot be saved: its folder {str(directory)!r} takes no new files (the system "
                    "answers \"No such file or directory\": a virtual file system, such as /proc?); expected a folder "
                    "on a disk") from None
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # the process's (or system's) limit, not the folder's
                raise named_os_error(exc.errno,
                                     f"path: {str(shown)!r} cannot be saved: {_open_files_limit(exc)}") from None
            # "path: ..." as the package's other file errors (check_write_target's read-only file among them),
            # not the OS's bare "[Errno 13] Permission denied: 'm.st'"; the errno kept (PermissionError stays one)
            remedy = "; expected a folder this user may write" if exc.errno in (errno.EACCES, errno.EPERM) else ""
            raise named_os_error(exc.errno, f"path: {str(shown)!r} cannot be saved: no file can be created in its "
                                            f"folder {str(directory)!r} ({exc.strerror}){remedy}") from None
        try:
            if mode is not None:
                os.chmod(tmp, mode)  # the target's permissions, not the umask's
            if fcntl is None:
                return fd, tmp
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Another save's cleanup took it for an orphan in the moment before the lock, and removes it: another
                # made, not waited for (a cleanup stopped there, Ctrl-Z, held it for ever, and this wait held Ctrl-C back)
                with contextlib.suppress(OSError):
                    if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                        os.unlink(tmp)
                os.close(fd)
                continue
            except OSError as exc:
                # A filesystem that takes no locks (Lustre without -o flock: ENOSYS; NFS without its lock
                # daemon: ENOLCK) failed every save there. Written unlocked, as on Windows: no cleanup there can
                # lock a file either, so none takes this one for an orphan (they are kept, not removed).
                if exc.errno not in _NO_LOCKS:
                    raise
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return fd, tmp
        except FileNotFoundError:
            pass  # a cleanup took it for an orphan before it was locked: make another
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)


def _open_files_limit(exc: OSError) -> str:
    """What an EMFILE/ENFILE ``exc`` says: the files this process (or the
    system) may have open are all open, whatever folder the file is in."""
    if exc.errno == errno.ENFILE:
        return f"the system has as many files open as it may ({exc.strerror}); expected fewer files open"
    limit = ""
    with contextlib.suppress(ImportError, OSError, ValueError):  # resource: POSIX only
        import resource

        limit = f", ulimit -n: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]:,}"
    return (f"this process has as many files open as it may ({exc.strerror}{limit}); expected fewer files open (close "
            "those no longer needed, or raise the limit)")


#: What ``flock`` raises on a filesystem that does not lock files. EINVAL too: flock's one other cause of it, an
#: operation it does not know, is never this module's (LOCK_EX, LOCK_EX | LOCK_NB), and it failed every save there.
_NO_LOCKS = frozenset({errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})


def _removed(directory: Path) -> bool:
    """Whether ``directory`` is a folder removed while still reached by its
    name (the current folder, ``.``, after ``rm -r`` of it): no file can be
    made in it."""
    try:
        return os.stat(directory).st_nlink == 0
    except OSError:
        return True


def _owner(path: Path) -> Optional[Tuple[int, int]]:
    """``(uid, gid)`` of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_uid, st.st_gid


def _give_to(fd: int, owner: Optional[Tuple[int, int]]) -> None:
    """The replacement of a file keeps its owner where this process may say
    so (root, e.g. in a container writing into a user's folder: the file
    became root's, and its user could no longer replace it); elsewhere the
    saver owns it, as before."""
    if owner is None or not hasattr(os, "fchown") or owner == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, *owner)
    except OSError:  # not root: another user's file becomes the saver's
        pass


def _temp_prefix(name: str) -> str:
    """``.NAME.``, ``NAME`` cut (at a character) so that the temporary file's
    name is no longer than the longest name a filesystem takes: a target
    whose own name is close to that limit can still be written."""
    raw = os.fsencode(name)
    cut = _NAME_MAX - _TEMP_NAME_EXTRA
    if len(raw) > cut:
        while cut > 0 and raw[cut] & 0xC0 == 0x80:  # not inside a UTF-8 character
            cut -= 1
        name = os.fsdecode(raw[:cut])
    return f".{name}."


def _remove_orphaned_temp_files(directory: Path, name: str) -> None:
    """Removes ``.NAME.<12 hex digits>.tmp`` files that no running save
    holds (left by saves that were killed). Files of other users or still
    locked are kept, and so are other names that merely begin with
    ``.NAME.`` and end with ``.tmp`` (``.model.st.old.tmp``): the user's own
    files, which the cleanup used to delete."""
    if fcntl is None:
        return
    ours = re.compile(re.escape(_temp_prefix(name)) + "[0-9a-f]" * (2 * _TEMP_TOKEN_BYTES) + r"\.tmp")
    try:
        candidates = [e for e in os.scandir(directory) if ours.fullmatch(e.name)]
    except OSError:
        return
    for entry in candidates:
        with uninterrupted():  # no call here waits; Ctrl-C between the open and the try left the descriptor open
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a save is writing it
                if os.path.samestat(st, os.lstat(entry.path)):
                    os.unlink(entry.path)
            except OSError:
                continue
            finally:
                os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Makes the rename durable. Filesystems that cannot sync a directory are skipped."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows, where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


#: ``{format tag: what a file of it is}``, for a file of one of the
#: package's formats given where another is read (``grapheme-mm info``
#: of a buffer file): filled by the modules that define the formats.
FORMAT_NAMES: Dict[str, str] = {}

#: ``{format tag: hint}``: ``hint(tensor names)`` says what a file of another
#: program, given where that format is read, may be after all and how to read
#: it (a model's state dict given to ``LearnableMultiModal.load``), or "".
#: Filled by the modules that define the formats.
FOREIGN_FILE_HINTS: Dict[str, Callable[[Sequence[str]], str]] = {}


def _other_version(tag: str, raw_meta: Mapping[str, str]) -> str:
    """What a tag of one of the package's formats at a version this one does
    not read (``grapheme-multimodal/checkpoint/v2``) says of the file: it
    was only "not a .../v1 file", which neither said that the file is this
    library's, written by a newer version, nor what to do; "" for any other tag."""
    family, slash, _ = tag.rpartition("/")
    known = sorted(t for t in FORMAT_NAMES if t.rpartition("/")[0] == family) if slash else []
    if not known:
        return ""
    from ._core import __version__

    version = raw_meta.get("library_version")
    try:
        version = json.loads(version) if isinstance(version, str) else None
    except ValueError:
        version = None
    by = f"grapheme-multimodal {version:.40}" if isinstance(version, str) else "another version of grapheme-multimodal"
    return (f": a version of the format this grapheme-multimodal {__version__} does not read (it reads "
            f"{', '.join(repr(t) for t in known)}), written by {by}; install that version (or a newer one) to load it")


def write_tagged_safetensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], fmt: str, metadata: Mapping[str, Any]
) -> Path:
    """Saves ``tensors`` as safetensors with ``metadata`` (JSON-encoded
    values), a ``format`` tag and a ``checksum`` entry, atomically."""
    # counted: safetensors' serialiser in a daemon thread aborted the process at exit
    return call_saving(path, _write_tagged_safetensors, path, tensors, fmt, metadata)


def _write_tagged_safetensors(
    path: PathLike, tensors: Mapping[str, np.ndarray], fmt: str, metadata: Mapping[str, Any]
) -> Path:
    from safetensors.numpy import save

    check_write_target(path)  # before the work of serialising: a bad path fails at once
    try:
        # order="C", not np.ascontiguousarray: that makes a 0-d tensor one of shape (1,), read back so
        arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}
        meta = {FORMAT_KEY: fmt}
        meta.update({k: json.dumps(v) for k, v in metadata.items()})
        sums = {_METADATA_ENTRY: _metadata_crc(meta)}
        sums.update({name: _tensor_crc(name, arr) for name, arr in sorted(arrays.items())})
        # by name, not in the caller's order: a model loaded and saved again (its tensors then in the file's
        # order) gave a file of other bytes than its first save, the same model to a content hash
        meta[CHECKSUM_KEY] = json.dumps({"crc32": sums})
        # safetensors makes the file's bytes in memory at once, a Rust allocation that aborted the process when
        # they did not fit (an ensemble trained for hours, then lost saving it); refused, as a MemoryError below
        refuse_beyond_budget(sum(a.nbytes for a in arrays.values()), "path", "the file's {bytes} bytes")
        try:
            data = save(arrays, metadata=meta)
        except Exception as exc:  # safetensors' SafetensorError, no class of ours
            if "headertoolarge" not in str(exc).lower().replace(" ", ""):
                raise
            raise header_too_large(path, meta) from None
        head = _header_with_sorted_metadata(data)
    except MemoryError:  # the file's bytes are made in memory before any is written
        raise not_enough_memory_to_write(path, sum(np.asarray(v).nbytes for v in tensors.values())) from None

    def write(f: BinaryIO) -> None:  # the tensors' bytes from data itself: a file-sized copy less
        f.write(head)
        f.write(memoryview(data)[len(head):])

    return atomic_write(path, write)


class HeaderTooLargeError(InvalidValueError):
    """:func:`write_tagged_safetensors`' refusal of a header safetensors
    cannot hold; ``arg`` names the largest metadata entry, and the savers
    say it in their own words (an ensemble's members, a model's history)."""


def header_too_large(path: PathLike, meta: Mapping[str, str]) -> HeaderTooLargeError:
    """What saving a file whose header would pass the
    :data:`_MAX_HEADER_BYTES` safetensors writes (and reads) raises, naming
    the largest entry of ``meta`` (its JSON-encoded metadata): the entry's
    name is the error's ``arg`` (``history``, an ensemble's ``members``),
    which the callers name as their own. safetensors' bare
    ``SafetensorError: Error while serializing: header too large`` named
    nothing (an ensemble of thousands of members, a history of millions of
    epochs), after all the training the file was to keep."""
    key = max(meta, key=lambda k: len(meta[k]))
    return HeaderTooLargeError(
        f"{key}: takes {len(meta[key]):,} bytes of the header of {str(path)!r}, and the header would pass the "
        f"{_MAX_HEADER_BYTES:,} bytes a safetensors header may hold (safetensors neither writes nor reads a longer "
        "one); nothing was written", key)


def _header_with_sorted_metadata(data: bytes) -> bytes:
    """The first bytes of ``data`` (a safetensors file: its header's length
    and its header) with the header's ``__metadata__`` entries in sorted
    order. safetensors writes them in the order of a hash map, another at
    every save: the same model saved twice gave files of different bytes,
    two checkpoints to a content hash (DVC, a cache, a reproducible build).
    The header is the same JSON, written compact as safetensors writes it and
    padded to the same length, so the tensors' bytes do not move; were it
    ever not to fit, the header stays as it was (a valid file, only not
    canonical)."""
    size = int.from_bytes(data[:8], "little")
    given = bytes(data[:8 + size])
    header = json.loads(given[8:])
    if not isinstance(header.get("__metadata__"), dict):
        return given
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > size:
        return given
    return given[:8] + text + b" " * (size - len(text))


def not_enough_memory_to_write(path: PathLike, nbytes: Optional[int] = None, arg: str = "path") -> TooLargeError:
    """The error of a save that ran out of memory before writing (a bare
    ``MemoryError`` named no file) its ``nbytes`` of tensors (None: not
    known): the file at ``path`` is as it was."""
    size = "" if nbytes is None else f" ({nbytes:,} bytes of tensors)"
    return TooLargeError(
        f"{arg}: not enough memory to write {os.fspath(path)!r}{size}; nothing was written, a file already there is "
        "as it was", arg,
    )


# --------------------------------------------------------------------- reading
class _DeclaredBytes:
    """The bytes of each tensor a header declares, summed over the names
    that begin with a prefix in O(log n): the names sorted, beside the
    running total of their sizes (those that begin with a prefix are one run
    of the sorted names). Summed by a scan of every name, an ensemble of K
    members, which asks once per member, took O(K²): 400 members of a small
    model took 3.3 s to load (1,000, by the square, about 20 s)."""

    def __init__(self, sizes: Mapping[str, int]) -> None:
        self.names = sorted(sizes)
        self.totals = [0, *itertools.accumulate(sizes[n] for n in self.names)]

    def of(self, prefix: str) -> int:
        names = self.names
        lo = bisect.bisect_left(names, prefix)
        if not prefix:
            hi = len(names)
        elif prefix[-1] == chr(sys.maxunicode):  # no next prefix to bound the run by: scan it
            hi = lo
            while hi < len(names) and names[hi].startswith(prefix):
                hi += 1
        else:  # the first name past the run: below it, every name from lo on begins with prefix
            hi = bisect.bisect_left(names, prefix[:-1] + chr(ord(prefix[-1]) + 1), lo)
        return self.totals[hi] - self.totals[lo]


#: While :func:`read_tagged_safetensors` calls its ``expected``: the bytes of
#: each tensor the header of the file being read declares.
_DECLARED_BYTES: "contextvars.ContextVar[Optional[_DeclaredBytes]]" = contextvars.ContextVar("_DECLARED_BYTES", default=None)


def declared_bytes_being_read(prefix: str = "") -> Optional[int]:
    """Inside the ``expected`` of a :func:`read_tagged_safetensors`, the
    bytes of the tensors whose names begin with ``prefix`` that the header
    of the file being read declares (and so the file holds: the header's
    offsets tile its data); None elsewhere. An ``expected`` that builds a
    model from a config in the metadata checks first that the file holds
    the tensors such a model needs: a forged config (or a list of members
    beside a large tensor of no member) built models many times the file's
    size before its tensors were found not to fit them. With no ``prefix``,
    all the tensor data the file holds: an ``expected`` that builds an
    object per entry of the metadata (an ensemble's members) stops once they
    need more than that, before a forged list of members costs memory."""
    declared = _DECLARED_BYTES.get()
    if declared is None:
        return None
    return declared.of(prefix)


def read_tagged_safetensors(
    path: PathLike,
    fmt: str,
    expected: Optional[Callable[[Dict[str, Any]], Mapping[str, TensorSpec]]] = None,
) -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """Loads a file written by :func:`write_tagged_safetensors` with tag
    ``fmt``: ``(tensors, metadata)``.

    ``expected(metadata)`` returns the ``{name: (dtype, shape)}`` the file
    must declare (it may raise ``ValueError``/``TypeError`` for metadata it
    refuses); the header is checked against it before any tensor data is
    read. A missing file raises ``FileNotFoundError``; anything else that
    makes the file unloadable (not a regular file, truncated, corrupt,
    checksum mismatch, foreign, unexpected tensors) a
    :class:`~grapheme_multimodal.CheckpointError` naming the file.

    The file is read, not memory-mapped (as safetensors' own reader does): a
    mapped file cut short while it is read (``cp new.safetensors
    model.safetensors`` over a file another process is loading) kills the
    reading process with SIGBUS; read, it is a file that ended too soon.
    """
    path = as_path(path)
    where = f"path: {str(path)!r}"
    _check_regular_file(path, where)
    try:
        # not waiting: should a FIFO have taken the file's place since the check, opening it does not wait
        with opened_for_reading(path) as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise CheckpointError(f"{where} is not a regular file; expected a file", "path")
            raw_meta, entries, data_start = _read_header(f, st.st_size, where, fmt)
            if raw_meta.get(FORMAT_KEY) != fmt:
                tag = raw_meta.get(FORMAT_KEY)
                ours = (FORMAT_NAMES.get(tag, "") or _other_version(tag, raw_meta)) if tag is not None else ""
                what = (f"its format tag is {tag!r:.80}{ours}"
                        if tag is not None else "it is a safetensors file without this "
                        "library's format tag, written by another program (PyTorch's or Hugging Face's save_file?)")
                # another program's file (no tag, or "pt" as safetensors.torch.save_model writes)
                hint = "" if ours or fmt not in FOREIGN_FILE_HINTS else FOREIGN_FILE_HINTS[fmt](list(entries))
                error = CheckpointError(f"{where} is not a {fmt} file ({what}){hint}", "path")
                # the tag of the file read: load_models reads that file with that tag's loader
                error._format_found = tag  # type: ignore[attr-defined]
                raise error
            sums = _stored_checksums(raw_meta, where)
            if sums is not None and sums.get(_METADATA_ENTRY) != _metadata_crc(raw_meta):
                raise CheckpointError(f"{where} is corrupt: its metadata does not match its checksum", "path")
            meta = _decoded_metadata(raw_meta, where)
            names = list(entries)
            if expected is not None:
                previous = _DECLARED_BYTES.get()
                try:
                    # set in the try, put back as it was: reset by set's token, a Ctrl-C landing as set returned
                    # left this file's sizes in place, and a later copy or unpickling of a larger model in the
                    # thread was refused as a forged file ("... but the file holds N bytes of its tensors")
                    _DECLARED_BYTES.set(_DeclaredBytes({n: e.end - e.start for n, e in entries.items()}))
                    want = expected(meta)
                except (TypeError, ValueError, KeyError) as exc:
                    if isinstance(exc, TooLargeError):
                        raise
                    raise CheckpointError(f"{where} is not a valid {fmt} file: {_text(exc)}", "path") from None
                finally:
                    _DECLARED_BYTES.set(previous)
                _check_declared({n: (e.dtype, e.shape) for n, e in entries.items()}, want, where, fmt)
            if sums is not None and set(sums) - {_METADATA_ENTRY} != set(names):
                raise CheckpointError(f"{where} is corrupt: its tensors do not match its checksum list", "path")
            tensors = {}
            for name in names:
                arr = _read_tensor(f, name, entries[name], data_start, where, fmt)
                if sums is not None and sums[name] != _tensor_crc(name, arr):
                    raise CheckpointError(f"{where} is corrupt: tensor {name!r} does not match its checksum", "path")
                tensors[name] = arr
    except PermissionError as exc:  # the OS's bare "[Errno 13] Permission denied: 'm.st'", as a save's was
        raise named_os_error(exc.errno, f"{where} cannot be read ({exc.strerror}); expected a file this user may "
                                        "read") from None
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE):
            raise
        raise named_os_error(exc.errno, f"{where} cannot be read: {_open_files_limit(exc)}") from None
    except TooLargeError:
        raise
    except MemoryError:
        size = path.stat().st_size
        raise TooLargeError(f"{where}: not enough memory to load its {size:,} bytes", "path") from None
    return tensors, meta


def format_tag(path: PathLike) -> Optional[str]:
    """The format tag :func:`write_tagged_safetensors` wrote into the file
    at ``path`` (which loader reads it), read from its header alone; None
    for anything that is not a readable tagged safetensors file (missing,
    not a regular file, cut short, foreign): its loader then says why."""
    try:
        path = as_path(path)
        with opened_for_reading(path) as f:  # a FIFO in the file's place does not make this wait
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            if not 0 < length <= _MAX_HEADER_BYTES:
                return None
            header = json.loads(f.read(length))
        tag = header.get("__metadata__", {}).get(FORMAT_KEY)
    except (OSError, ValueError, TypeError, AttributeError, MemoryError, RecursionError):
        # RecursionError: a header of deeply nested JSON (load_models raised it bare; the loaders name it)
        return None
    return tag if isinstance(tag, str) else None


def _read_header(f: Any, size: int, where: str, fmt: str) -> Tuple[Dict[str, str], Dict[str, _Declared], int]:
    """``(metadata, {name: declared tensor}, offset of the data)`` of the
    safetensors file ``f`` of ``size`` bytes, checked as safetensors checks
    it: a JSON header of at most 100 MB, string metadata, known dtypes,
    offsets that tile the data exactly, each as long as its shape needs."""

    def unreadable(why: str) -> CheckpointError:
        return CheckpointError(f"{where} is not a readable {fmt} file (truncated or corrupt?): {why}", "path")

    if size < 8:
        raise unreadable(f"{counted(size, 'byte')}, too few for a header")
    first = f.read(8)
    length = int.from_bytes(first, "little")
    if length > min(_MAX_HEADER_BYTES, size - 8):
        other = _other_format(first)
        if other is not None:  # e.g. embed's arguments swapped: the user's data, not a damaged file
            raise CheckpointError(f"{where} is not a readable {fmt} file: it is {other} (it begins {first!r}), "
                                  "not a safetensors file this library wrote", "path")
        raise unreadable(f"its header would be {length:,} bytes, more than the {size - 8:,} that follow")
    try:
        header = _loads(f.read(length).decode("utf-8"))
    except _DuplicateKey as exc:
        raise unreadable(f"its header: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise unreadable(f"its header is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise unreadable("its header is not a JSON object")
    raw_meta = header.pop(_METADATA_ENTRY, None)
    raw_meta = {} if raw_meta is None else raw_meta
    if not isinstance(raw_meta, dict) or not all(isinstance(v, str) for v in raw_meta.values()):
        raise unreadable("its metadata is not text by name")
    # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 text holds (safetensors
    # refuses them): the checksums, which encode the names and metadata, raised UnicodeEncodeError.
    lone = next((s for s in (*raw_meta, *raw_meta.values(), *header) if not is_utf8(s)), None)
    if lone is not None:
        raise unreadable(f"its header holds {lone!r:.60}, text with a lone surrogate, which UTF-8 cannot encode")
    entries: Dict[str, _Declared] = {}
    for name, info in header.items():
        fields = (info.get("dtype"), info.get("shape"), info.get("data_offsets")) if isinstance(info, dict) else (None,) * 3
        dtype, shape, offsets = fields
        if (
            not isinstance(dtype, str)  # a list or object: the lookup below raised a bare "unhashable type"
            or dtype not in _ITEM_BYTES
            or not isinstance(shape, list)
            or not all(type(d) is int and d >= 0 for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int for o in offsets)
        ):
            raise unreadable(f"tensor {name!r} is declared as {info!r:.100}; expected a dtype, a shape and data offsets")
        entries[name] = _Declared(dtype, tuple(shape), offsets[0], offsets[1])
    end = 0
    for name, e in sorted(entries.items(), key=lambda item: (item[1].start, item[1].end)):
        if e.start != end or e.end - e.start != math.prod(e.shape) * _ITEM_BYTES[e.dtype]:
            raise unreadable(f"tensor {name!r}'s data offsets [{e.start}, {e.end}] do not fit its shape or its neighbours")
        end = e.end
    if end != size - 8 - length:
        raise unreadable(f"its tensors take {end:,} bytes, but {size - 8 - length:,} follow the header")
    return raw_meta, entries, 8 + length


#: The first bytes of files often mistaken for a checkpoint, and what they are (none
#: is the start of a safetensors file: its first 8 bytes are a header length < 100 MB).
_OTHER_FORMATS = (
    (b"\x93NUMPY", "a NumPy array file (.npy)"),
    (b"PK\x03\x04", "a zip archive (a NumPy .npz file, or a PyTorch .pt/.pth file)"),
    (b"PK\x05\x06", "an empty zip archive (a NumPy .npz file?)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5?)"),
    (b"\x1f\x8b", "a gzip-compressed file"),
)


def _other_format(first: bytes) -> Optional[str]:
    """What a file beginning with ``first`` (8 bytes) is, when its magic
    bytes name a format people keep arrays or models in, or it begins as
    text; else None."""
    known = binary_format(first)
    if known is None and _is_text(first):
        known = "a text file (a CSV, JSON or other text file?)"
    return known


def binary_format(first: bytes) -> Optional[str]:
    """What a file beginning with ``first`` (its first 8 bytes) is, when its
    magic bytes name a binary format people keep arrays or models in; else
    None."""
    known = next((what for magic, what in _OTHER_FORMATS if first.startswith(magic)), None)
    if known is None and first[:1] == b"\x80" and first[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        known = "a Python pickle (which this library never loads: it can run code)"
    return known


def _is_text(first: bytes) -> bool:
    """Whether ``first`` (a file's first bytes) begins text: printable UTF-8
    (its last character may be cut), tabs and line ends. No safetensors file
    begins so: its header length, 8 bytes, has zero high bytes."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(first.removeprefix(codecs.BOM_UTF8))
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\t\n\r" for c in text)


def _read_tensor(f: Any, name: str, e: _Declared, data_start: int, where: str, fmt: str) -> np.ndarray:
    """The declared tensor ``e`` read from ``f`` (little-endian, as written)."""
    numpy_name = _NUMPY_DTYPES.get(e.dtype)
    if numpy_name is None or numpy_name == "bfloat16":
        raise CheckpointError(f"{where} is not a readable {fmt} file: tensor {name!r} is {e.dtype}, which numpy cannot hold", "path")
    arr = np.empty(e.shape, np.dtype(numpy_name).newbyteorder("<"))
    raw = arr.reshape(-1).view(np.uint8)
    f.seek(data_start + e.start)
    if f.readinto(raw) != len(raw):  # the file was cut short since its size was read
        raise CheckpointError(f"{where} is not a readable {fmt} file (truncated or corrupt?): it ends inside tensor {name!r}", "path")
    return arr


def name_too_long(path: PathLike, arg: str) -> InvalidValueError:
    """The refusal of ``path``, whose name the file system found too long
    (``ENAMETOOLONG``): which part, how long, and the file system's limits.
    The OS's own error, "File name too long: 'xxx...'", named no argument, and
    a name of hundreds of characters hid what was wrong with it."""
    text = os.fspath(path)
    raw = os.fsencode(text)
    longest = max(raw.split(os.fsencode(os.sep)), key=len)
    folder = next((p for p in Path(text).parents if os.path.isdir(p)), Path("."))
    name_max, path_max = _NAME_MAX, 4096
    with contextlib.suppress(OSError, ValueError, AttributeError):  # pathconf: POSIX only
        name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    what = (f"its part {os.fsdecode(longest)!r:.40}... is {len(longest):,} bytes" if len(longest) > name_max
            else f"it is {len(raw):,} bytes")
    return InvalidValueError(
        f"{arg}: {text!r:.80}... is too long a file name ({what}); expected at most {name_max:,} bytes in each "
        f"folder's or file's name and {path_max - 1:,} in all, as the file system takes", arg,
    )


@contextlib.contextmanager
def opened_for_reading(path: PathLike, check: Optional[Callable[[int], None]] = None, **text: Any) -> Iterator[Any]:
    """``with opened_for_reading(path) as f:`` the file at ``path`` open for
    reading, in binary (or as text with ``text``: ``open``'s encoding and
    newline), closed when the block ends. Opened without waiting
    (``O_NONBLOCK``): a FIFO at the name does not wait for a writer; what
    was opened is for the caller to check (``os.fstat``), or for
    ``check(fd)``, called before the file object is made (it may raise).

    The descriptor is closed whatever interrupts: a Ctrl-C is held back
    from ``os.open`` until the file object that closes it is made (landing
    between the two, it left the descriptor open for the life of the
    process), and a descriptor ``os.fdopen`` refuses (a directory: Linux
    opens one for reading) is closed, not left open, as ``load_models`` of
    a folder did at each call."""
    f = None
    try:
        with uninterrupted():  # no wait: O_NONBLOCK; a regular file's open does not block
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
            try:
                if check is not None:
                    check(fd)
                f = os.fdopen(fd, "r" if text else "rb", **text)
            except BaseException:
                os.close(fd)
                raise
        yield f
    finally:
        if f is not None:
            f.close()


def _check_regular_file(path: Path, where: str) -> None:
    """FileNotFoundError when nothing is there; CheckpointError naming what is
    there when it is not a regular file (a FIFO would block a reader)."""
    kind = file_kind(path)
    if kind is MISSING:
        raise FileNotFoundError(f"path: no file at {str(path)!r}{missing_hint(path)}")
    if kind is not None:
        raise CheckpointError(f"{where} is {kind}; expected a file", "path")


def tilde_hint(path: Path) -> str:
    """For a name that begins with ``~`` (``~/models/m.st``), which only a
    shell takes for the home folder: what ``os.path.expanduser`` makes of it."""
    text = str(path)
    home = os.path.expanduser(text) if text.startswith("~") else text
    return f" ('~' is a folder's name here, not the home folder: os.path.expanduser gives {home!r})" if home != text else ""


def missing_hint(path: Path) -> str:
    """Why nothing is at ``path`` where the name alone does not say: a
    symbolic link on the way names what does not exist (a deployment's
    ``latest`` left pointing at a removed checkpoint, which ``ls`` shows),
    or :func:`tilde_hint`; or the working folder, where a relative ``path``
    is looked for, has been removed (the name alone looked like a typo)."""
    if in_removed_working_folder(path):
        return f": it {IN_REMOVED_WORKING_FOLDER}"
    link = next((p for p in (path, *path.parents) if os.path.islink(p) and not os.path.exists(p)), None)
    if link is None:
        return tilde_hint(path)
    try:
        target = os.readlink(link)
    except OSError:  # removed since
        return tilde_hint(path)
    return f" ({str(link)!r} is a symbolic link to {target!r}, which does not exist)"


#: What :func:`file_kind` returns when nothing is at the path.
MISSING = "missing"
_LOOP = "a loop of symbolic links"


def file_kind(path: PathLike, arg: str = "path") -> Optional[str]:
    """None for a regular file (the only kind read: a FIFO would block a
    reader forever), :data:`MISSING` when there is nothing, else what is
    there ("a directory", "a FIFO (named pipe)", ...). A name too long for
    the file system is an :class:`InvalidValueError` naming ``arg``."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # symbolic links that name each other
            return _LOOP
        if exc.errno == errno.ENAMETOOLONG:
            raise name_too_long(path, arg) from None
        raise
    return kind_of_mode(mode)


def kind_of_mode(mode: int) -> Optional[str]:
    """:func:`file_kind` of a file whose ``st_mode`` is ``mode``: None for a
    regular file, else what it is ("a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


class _DuplicateKey(ValueError):
    """A JSON object of a file that gives one key twice."""


def _without_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    """The JSON object of ``pairs``; :class:`_DuplicateKey` when a key comes twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"the key {key!r:.60} is given twice in one JSON object")
            seen.add(key)
    return obj


def _loads(text: Union[str, bytes]) -> Any:
    """``json.loads(text)``, refusing an object that gives a key twice: json
    keeps the last without a word, and the writer of this library never
    writes one, so a file that holds one was forged or damaged (a config
    whose second ``seed`` won; a header with two ``__metadata__``, which
    safetensors refuses)."""
    return json.loads(text, object_pairs_hook=_without_duplicates)


def _stored_checksums(raw_meta: Mapping[str, str], where: str) -> Optional[Dict[str, str]]:
    """The per-entry CRC-32s, or None for a file written before checksums."""
    text = raw_meta.get(CHECKSUM_KEY)
    if text is None:
        return None
    try:
        sums = _loads(text)["crc32"]
    except (ValueError, KeyError, TypeError, RecursionError):
        sums = None
    if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
        raise CheckpointError(f"{where} is corrupt: its checksum entry is unreadable", "path")
    return sums


def _decoded_metadata(raw_meta: Mapping[str, str], where: str) -> Dict[str, Any]:
    decoded = {}
    for key, value in raw_meta.items():
        if key in (FORMAT_KEY, CHECKSUM_KEY):
            continue
        try:
            decoded[key] = _loads(value)
        except ValueError as exc:
            raise CheckpointError(f"{where} has corrupt metadata in {key!r}: {exc}", "path") from None
        except RecursionError:
            raise CheckpointError(f"{where} has corrupt metadata in {key!r}: nested too deeply", "path") from None
    return decoded


def _check_declared(
    declared: Mapping[str, Tuple[str, Tuple[int, ...]]], want: Mapping[str, TensorSpec], where: str, fmt: str
) -> None:
    """The header's tensors are exactly ``want`` (names, dtypes, shapes);
    checked in ``want``'s order, so the first problem named is always the same."""
    missing = [n for n, spec in want.items() if spec.required and n not in declared]
    unknown = sorted(set(declared) - set(want))
    if missing or unknown:
        raise CheckpointError(
            f"{where} is not a valid {fmt} file: missing tensors {missing[:5]}, unexpected tensors {unknown[:5]}", "path"
        )
    for name, spec in want.items():
        if name not in declared:
            continue
        got_dtype, got_shape = declared[name]
        if got_dtype != _SAFETENSORS_DTYPES[spec.dtype] or got_shape != tuple(spec.shape):
            raise CheckpointError(
                f"{where} is not a valid {fmt} file: tensor {name!r}: expected {spec.dtype} of shape "
                f"{tuple(spec.shape)}, got {_NUMPY_DTYPES.get(got_dtype, got_dtype)} of shape {got_shape}",
                "path",
            )


def _tensor_crc(name: str, arr: np.ndarray) -> str:
    """CRC-32 of a tensor's name, dtype, shape and (little-endian) bytes."""
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    head = f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode()
    return f"{zlib.crc32(memoryview(arr.reshape(-1)).cast('B'), zlib.crc32(head)):08x}"


def _metadata_crc(raw_meta: Mapping[str, str]) -> str:
    crc = 0
    for key in sorted(k for k in raw_meta if k != CHECKSUM_KEY):
        crc = zlib.crc32(f"{key}\0{raw_meta[key]}\0".encode(), crc)
    return f"{crc:08x}"


def _text(exc: BaseException) -> str:
    """An exception's message (a KeyError's is its key, in quotes)."""
    return f"missing {exc}" if isinstance(exc, KeyError) else str(exc)


@contextlib.contextmanager
def removing_new_folders(folder: Path) -> Iterator[None]:
    """If the block fails, the folders of ``folder``'s path that did not
    exist before it are removed again, deepest first, as long as they are
    empty (whatever a user put there meanwhile stays): a refused or failed
    run (``grapheme-mm demo``, :func:`~grapheme_multimodal.demo.run_demo`)
    left the output folder it had made."""
    new = []
    path = folder.absolute()
    while not os.path.exists(path) and path != path.parent:  # not Path.exists: it raised on a name too long
        new.append(path)
        path = path.parent
    try:
        yield
    except BaseException:
        for path in new:
            try:
                path.rmdir()
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENAMETOOLONG):  # never made (the run failed before it, or at its
                    continue  # name): stopping here left the folders above it, which the run made
                break  # not empty: not ours to remove
        raise
