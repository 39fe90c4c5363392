"""``grapheme-mm``: the command line (also ``python -m grapheme_multimodal``).

Subcommands: ``demo`` (real-data demo), ``train`` (your own files), ``embed``
(a checkpoint + files → fused embeddings), ``info`` (a checkpoint's summary).
``train --workers N`` and ``embed --ray`` run on Ray (a local cluster, or
``--ray-address`` to join one).
Every error a user can make ends with one clear line and exit status 2.
"""

from __future__ import annotations

__all__ = ["main", "PROG"]

import argparse
import codecs
import contextlib
import dataclasses
import decimal
import errno
import functools
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from collections.abc import Mapping, Set as AbstractSet
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, NoReturn, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__
from ._chunks import ROWS_PER_CALL, in_row_chunks
from ._environment import blanked_unreadable_settings, settings_unsaid
from ._locking import uninterrupted
from ._parallel import run_tasks
from ._validation import (
    as_finite_float, as_seed, counted, int_of_digits,
    renamed, unsigned_zero,
)
from ._caller_warnings import filters_action, holding_warnings, ignoring_warning
from ._frames import extra_names, is_reordering, misplaced_names, shown_misplaced
from .config import INPUT_DISTANCES, NEIGHBOR_SPACES
from .graph import WL_DEFAULT_DIM, GraphFeaturizer, featurized
from .io import removing_new_folders, shown_name
from .exceptions import (
    EarlyStoppingSkippedWarning, GraphemeError, InvalidValueError, NonFiniteError, PrecisionLossWarning, ShapeError,
    UntrainedModalityWarning,
)
from .ensemble import load_models, save_ensemble
from .evaluation._ensemble import side_by_side, unit_side_by_side_blocks
from .stopping import fit_with_stopping, planned_folds
from .training import constant_rows_refused_as, grown_by_learning_rate, overflow_in_user_rows
from .uci import (
    RECIPE_HIDDEN_DROPOUT, TrainingSettings, check_weights, member_seeds, members_within_memory,
    recipe_head, recipe_skip,
)

if TYPE_CHECKING:
    from .files import ModalityFile
    from .model import LearnableMultiModal
    from .training import History

PROG = "grapheme-mm"
#: ``grapheme-mm train``'s defaults: the package's recipe.
_RECIPE = TrainingSettings()

#: Rows per model call of ``embed --ray`` when ``--batch-size`` is not given.
RAY_EMBED_BATCH_SIZE = 1024
#: Rows per model call of ``embed`` in process when ``--batch-size`` is not given (a file of a
#: few million rows in one call met the OOM killer; see _chunks).
EMBED_BATCH_SIZE = ROWS_PER_CALL


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (listed in ``--help``: 0, 2, 129, 130, 141, 143).
    ``argv``: the command's arguments, str or paths (None: ``sys.argv[1:]``)."""
    if sys.stdout is None or not _is_open(1):
        # `grapheme-mm ... >&-`: the lines it prints would be lost without a word (--help's went to stderr, exit
        # 0), and the files it opens could take descriptor 1, which Ray's processes write their output to
        _say(f"{PROG}: error: standard output is closed; expected somewhere to print (>/dev/null to discard it)")
        return 2
    argv = _checked_argv(argv)
    with _standard_error_open(), _standard_output_errors() as stdout:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit:  # as argparse's: a usage error (2), or --help or --version printed (0)
            failed = _flushed(stdout) if exit.code == 0 else None  # printed only if it reached stdout
            if failed is None:
                raise
            raise SystemExit(failed) from None
        except _StandardOutputError as err:  # argparse's own printing drops an OSError, not this
            raise SystemExit(_standard_output_failed(err.error, stdout)) from None
        typed = _numbers_typed_otherwise(parser, argv if argv is not None else sys.argv[1:])
        for message in settings_unsaid():  # not said at import for the command line: see there
            _say_warning(message, RuntimeWarning)  # the library's at import
        with _names_printable(), _terminating_as_interrupted() as terminated:
            return _run(args, stdout, terminated, typed)


def _say_warning(line: str, category: "type[Warning]") -> None:
    """``line`` as the command line's one-line warning, unless the process's
    warning filters ignore a warning of ``category`` said by this module
    (``PYTHONWARNINGS=ignore``, ``python -W ignore -m grapheme_multimodal``):
    a user who silenced warnings heard them all the same. Under ``error``
    it is said as ever: the command runs on, as without the filter."""
    if filters_action(line, category, __name__, 0) != "ignore":
        print(f"{PROG}: warning: {line}", file=sys.stderr)


def _checked_argv(argv: Optional[Sequence[Any]]) -> Optional[List[str]]:
    """:func:`main`'s ``argv`` as a list of str, paths (``os.PathLike``, or
    bytes, decoded as ``os.fsdecode`` decodes them) taken as their names: a ``Path`` among them was a TypeError from inside
    argparse ("'PosixPath' object is not subscriptable", naming nothing),
    and a str (``main("info")``) was read as one argument per character. A
    set or a mapping is refused: it has no order of arguments."""
    from .types import bounded_repr

    if argv is None:
        return None
    # bytearray and memoryview are bytes too: read item by item they were ints ("argv[0]: ... got 105 (int)", the
    # 'i' of b"info"); a set or a mapping's keys gave the arguments in hash order ("--epochs" after its value)
    if isinstance(argv, (str, bytes, bytearray, memoryview)) or not hasattr(argv, "__iter__"):
        raise TypeError(f"argv: expected a list of command-line arguments (str), e.g. ['info', 'model.gmm'], "
                        f"got {bounded_repr(argv)} ({type(argv).__name__})")
    if isinstance(argv, (AbstractSet, Mapping)):
        raise TypeError(f"argv: got a {type(argv).__name__}; expected a list of command-line arguments (str) in their "
                        "order, e.g. ['info', 'model.gmm'] (a set has no order, and a mapping's keys are no arguments)")
    # a path as bytes (b"model.gmm", or an os.PathLike whose __fspath__ gives bytes) decoded as the
    # interpreter decodes sys.argv: it was refused as "expected a str (or a path), got b'model.gmm'"
    items = list(argv)
    for i, item in enumerate(items):
        if isinstance(item, (os.PathLike, bytes)):
            try:
                item = items[i] = os.fsdecode(item)
            except TypeError as exc:
                # an os.PathLike whose __fspath__ gives neither str nor bytes (an int, None): os.fsdecode's
                # TypeError named the class's method, not the argument
                raise TypeError(f"argv[{i}]: expected a str (or a path), got {bounded_repr(item)} "
                                f"({type(item).__name__}), a path-like object that is no path: {exc}") from None
        if not isinstance(item, str):
            raise TypeError(f"argv[{i}]: expected a str (or a path), got {bounded_repr(item)} ({type(item).__name__})")
    return items


#: ``grapheme-mm``'s exit statuses, listed at the end of ``--help``.
EXIT_STATUSES = (
    "exit status: 0 done; 2 an error (a usage error, bad input, a file that cannot be read or written), said in "
    "one line 'grapheme-mm: error: ...'; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP: "
    "its terminal closed), leaving the outputs as they were; 141 what read standard output stopped reading (`| head`)"
)


def _run(args: argparse.Namespace, stdout: Any, terminated: List[int], typed: Mapping[str, str]) -> int:
    """Runs the parsed command; every error a user can make is one line.
    ``typed``: the numbers typed as another number than the float read
    (:func:`_numbers_typed_otherwise`), which an error shows as typed."""
    try:
        code = args.run(args)
        return _flushed(stdout) or code  # here, not at exit: a reader that has gone is said as below
    except _StandardOutputError as err:
        return _standard_output_failed(err.error, stdout)
    except (ValueError, TypeError, OSError, ModuleNotFoundError, MemoryError) as exc:
        # bad input, unreadable or unwritable files (disk full, permissions), data too large for memory
        print(f"{PROG}: error: {_as_typed(_one_line(exc), typed)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        signum = terminated[0] if terminated else signal.SIGINT
        _said_if_possible(f"{PROG}: {_STOPPED_AS[signum]}")
        return 128 + signum


#: What the CLI says when a signal stopped it.
_STOPPED_AS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}
if hasattr(signal, "SIGHUP"):
    _STOPPED_AS[signal.SIGHUP] = "hung up"


def _said_if_possible(line: str) -> None:
    """``line`` on stderr, where it may be gone: after SIGHUP its terminal is
    (a write fails with EIO), and the exception would turn the clean stop
    into a traceback and exit status 1. Standard output's unwritten lines
    are dropped then too: Python's flush of them at exit failed with
    status 120."""
    try:
        print(line, file=sys.stderr)
        sys.stderr.flush()
    except OSError:
        with contextlib.suppress(OSError, ValueError):
            _devnull_on(sys.stderr.fileno())
    stdout = sys.stdout._stream if isinstance(sys.stdout, _Stdout) else sys.stdout
    try:
        if stdout is not None:
            stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            _devnull_on(stdout.fileno())


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _say(line: str) -> None:
    """``line`` on stderr, if there is one (``print(file=None)`` prints to stdout)."""
    if sys.stderr is not None:
        print(line, file=sys.stderr)


@contextlib.contextmanager
def _standard_error_open() -> Iterator[None]:
    """With stderr closed (``2>&-``), /dev/null in its place while the
    command runs: the progress bar wrote to ``sys.stderr``, None, and train
    died at its first step with exit status 1 and nothing written (its
    traceback had nowhere to go); and a file the command opens would take
    descriptor 2, into which whatever writes to stderr (Ray's processes,
    the core's messages) would write. Whichever, as :class:`_Stderr`."""
    def open_stderr(before: Any) -> "_Stderr":
        if before is None or not _is_open(2):
            _devnull_on(2)
            # /dev/null: the encoding is named only because the locale's raised EncodingWarning (-X warn_default_encoding)
            before = open(2, "w", closefd=False, encoding="utf-8", errors="backslashreplace")
        return _Stderr(before)

    with _replacing_stream("stderr", open_stderr) as (_, wrapper):
        try:
            yield
        finally:
            wrapper.flush()


class _StandIn:
    """The base of :class:`_Stdout` and :class:`_Stderr`, which stand in for
    ``sys.<name>`` while the command runs. Once :func:`main` is done with it
    (:meth:`retire`), one still in use is the stream it wraps again: a
    program's ``contextlib.redirect_stdout`` entered in another thread while
    ``main`` ran put the stand-in back as ``sys.stdout`` when it ended, where
    it stayed for good, its writes' failures no ``OSError`` the program could
    catch (and stderr's sending the process's descriptor 2 to /dev/null).
    Retired, it writes straight to that stream, and at its first use puts the
    stream back in its place."""

    _name = ""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._retired = False

    def retire(self) -> None:
        """The command is done with this stand-in (see the class)."""
        self._retired = True

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding: the stream's
        # not self._stream: on an instance without it (a copy's), a RecursionError; nor the stream's special
        # names: copy.deepcopy and Python 3.9's copy.copy took the stream's __deepcopy__ or __getstate__ for
        # the stand-in's (and copy.copy of stdout's, with no such guard, was a RecursionError)
        stream = self.__dict__.get("_stream")
        if stream is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(stream, name)

    def _passed_through(self) -> Any:
        """The stream wrapped when retired (put back as ``sys.<name>`` where
        this is still there), else None."""
        if not self.__dict__.get("_retired", False):
            return None
        if getattr(sys, self._name, None) is self:
            setattr(sys, self._name, self._stream)
        return self._stream


class _Stderr(_StandIn):
    """``sys.stderr`` while the command runs: a line it cannot take
    (``2>log`` on a full disk, a pipe whose reader has gone) is dropped,
    and so is every later one, /dev/null in the descriptor's place (the
    lines held unwritten would fail again in Python's flush at exit, status
    120). The progress bar stopped drawing so already, but a warning's
    failed write stopped train before it trained, with exit status 1 and
    nothing saved, and an error's turned status 2 into 1."""

    _name = "stderr"

    def write(self, text: str) -> int:
        stream = self._passed_through()
        if stream is not None:
            return stream.write(text)
        try:
            return self._stream.write(text)
        except (OSError, ValueError):  # ValueError: a closed stream
            self._drop_the_rest()
            return len(text)

    def flush(self) -> None:
        stream = self._passed_through()
        if stream is not None:
            return stream.flush()
        try:
            self._stream.flush()
        except (OSError, ValueError):
            self._drop_the_rest()

    def _drop_the_rest(self) -> None:
        with contextlib.suppress(AttributeError, OSError, ValueError):  # a stream of no descriptor (a test's)
            _devnull_on(self._stream.fileno())



def _devnull_on(fd: int) -> None:
    """/dev/null in place of descriptor ``fd``."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:  # a closed fd is the lowest free one: the open took its place already
        os.dup2(devnull, fd)
        os.close(devnull)


class _StandardOutputError(Exception):
    """A write to stdout failed (``error``, the ``OSError``): not an
    ``OSError`` itself, which the code between a ``print`` and :func:`_run`
    may catch as a file's (a save names its file in such errors)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Stdout(_StandIn):
    """``sys.stdout`` while the command runs: its writes' failures are
    :class:`_StandardOutputError`, said as standard output's ("grapheme-mm:
    error: standard output: No space left on device"), not as "[Errno 28]
    No space left on device" after train had saved its checkpoint, which
    read as the checkpoint's disk being full."""

    _name = "stdout"

    def write(self, text: str) -> int:
        stream = self._passed_through()
        if stream is not None:
            return stream.write(text)
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise _StandardOutputError(exc) from None

    def flush(self) -> None:
        stream = self._passed_through()
        if stream is not None:
            return stream.flush()
        try:
            self._stream.flush()
        except OSError as exc:
            raise _StandardOutputError(exc) from None


@contextlib.contextmanager
def _standard_output_errors() -> Iterator[Any]:
    """``sys.stdout`` as :class:`_Stdout` in the block; yields the stream it wraps."""
    with _replacing_stream("stdout", _Stdout) as (stream, _):
        yield stream


@contextlib.contextmanager
def _replacing_stream(name: str, replacement: Callable[[Any], Any]) -> Iterator[Tuple[Any, Any]]:
    """``sys.<name>`` (``stdout``, ``stderr``) as ``replacement(sys.<name>)``
    in the block, which yields ``(the stream replaced, its replacement)``;
    shared by calls at once (:func:`_shared_change`). Put back only while
    it is still that replacement: :func:`main` run in a thread put back
    the stream it found over one another thread set meanwhile
    (``contextlib.redirect_stdout``), which then stayed for good."""
    def replace() -> Tuple[Any, Any]:
        replaced = getattr(sys, name)
        setattr(sys, name, replacement(replaced))
        return replaced, getattr(sys, name)

    def put_back(made: Tuple[Any, Any]) -> None:
        made[1].retire()  # where something puts it back later, it is the stream it wraps (see _StandIn)
        if getattr(sys, name) is made[1]:  # else another thread set its own since: left to it
            setattr(sys, name, made[0])

    with _shared_change(name, replace, put_back) as made:
        yield made


#: Guards :func:`_shared_change`'s count of the calls in each change, and what undoes it.
_SHARED_LOCK = threading.Lock()
_shared_users: Dict[str, int] = {}
_shared_tokens: Dict[str, Any] = {}


@contextlib.contextmanager
def _shared_change(name: str, make: Callable[[], Any], undo: Callable[[Any], None]) -> Iterator[Any]:
    """A change of the process's state that :func:`main` makes while it
    runs (``sys.stdout`` replaced, its error handler set), named ``name``:
    ``make()`` makes it and returns what ``undo`` takes to undo it; the
    block gets that. Calls of :func:`main` in several threads at once share
    the change: the first to begin makes it, the last to end undoes it.
    Each made and undid its own, and a call that began while another ran
    found that other's change, which it then took for the state to put
    back (the program's streams stayed the command line's wrappers for
    good, their writes' failures no ``OSError`` the program could catch),
    or the other undid it under the call still running (its "wrote ... to"
    of a file name of bytes that are not UTF-8 failed after the file was
    written)."""
    joined = False
    try:
        # the change made and counted in one step, inside the try: a Ctrl-C between the two (or before the try)
        # left the program's streams the command line's wrappers for good, and no later call put them back
        with uninterrupted(), _SHARED_LOCK:  # held a few instructions: the program's handlers run after it
            if not _shared_users.get(name):
                _shared_tokens[name] = make()
            _shared_users[name] = _shared_users.get(name, 0) + 1
            joined = True
        yield _shared_tokens[name]  # kept while this call counts among its users
    finally:
        interrupted = None
        while joined:  # counted out whatever a Ctrl-C meanwhile: one before the count is taken waits for it
            try:
                with uninterrupted(), _SHARED_LOCK:
                    _shared_users[name] -= 1
                    if not _shared_users[name]:
                        undo(_shared_tokens.pop(name))
                    joined = False
            except KeyboardInterrupt as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted


def _flushed(stream: Any) -> Optional[int]:
    """Flushes stdout (``stream``): None, or the exit status of its failure."""
    try:
        stream.flush()
    except OSError as exc:
        return _standard_output_failed(exc, stream)
    return None


def _standard_output_failed(exc: OSError, stream: Any) -> int:
    """The exit status of a write to stdout (``stream``) that failed with ``exc``."""
    try:
        fd: Optional[int] = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file's stream (a caller's of main), or closed under us
        fd = None
    if fd is not None and _is_open(fd):
        _devnull_on(fd)  # what stdout holds unwritten would fail again in Python's flush at exit ("Exception ignored ...")
    if isinstance(exc, BrokenPipeError):
        # What reads stdout stopped (`grapheme-mm info m.safetensors | head -1`): stop quietly, as a
        # command killed by SIGPIPE, instead of "error: Broken pipe" and a failure of the user's making.
        return 128 + signal.SIGPIPE
    _say(f"{PROG}: error: standard output: {exc.strerror or exc}")  # `> /dev/full`: the lines printed are lost
    return 2


#: The signals that end the command as Ctrl-C does (:func:`_terminating_as_interrupted`).
_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _terminating_as_interrupted() -> Iterator[List[int]]:
    """SIGTERM (``kill``, a job scheduler's stop) and SIGHUP (the terminal
    closed, an SSH session dropped) end the command as Ctrl-C does: the
    save under way discarded, the folders it made removed, one line, exit
    status 128 + the signal (143, 129). They killed the process where it
    stood: a half-written ``.NAME.*.tmp`` of the output's size stayed
    beside it, and demo's new, empty output folder. Yields the list the
    signal is noted in. Only signals not already handled or ignored (a
    program that calls :func:`main` keeps its own handler; ``nohup``'s
    ignored SIGHUP stays ignored), in the main thread; a second signal while
    the first is dealt with is ignored."""
    terminated: List[int] = []
    try:
        main_thread = threading.current_thread() is threading.main_thread()
        own = [s for s in _TERMINATING if main_thread and signal.getsignal(s) == signal.SIG_DFL]
    except ValueError:
        own = []

    def on_terminate(signum: int, frame: Any) -> None:
        if terminated:
            return
        terminated.append(signum)
        # as Ctrl-C: uninterrupted() holds every Python signal handler back while a save renames its files
        raise KeyboardInterrupt

    try:
        for s in own:
            signal.signal(s, on_terminate)
        yield terminated
    finally:
        for s in own:
            signal.signal(s, signal.SIG_DFL)


@contextlib.contextmanager
def _names_printable() -> Iterator[None]:
    """Lets stdout print any file name: one of bytes that are not UTF-8
    (Python reads them as surrogate escapes) failed to print on a strict
    UTF-8 stdout (every UTF-8 locale but C's) after its file was written,
    with exit status 2, and the files to write after it were not. Such a
    name is printed as the bytes it is (what ``ls`` prints), any other
    character stdout cannot encode as a backslash escape."""
    def make() -> Optional[Tuple[Any, str]]:
        stream = sys.stdout
        errors = getattr(stream, "errors", None)
        if errors != "strict" or not callable(getattr(stream, "reconfigure", None)):
            return None
        stream.reconfigure(errors=_PRINTABLE_ERRORS)
        return stream, errors

    def undo(made: Optional[Tuple[Any, str]]) -> None:
        if made is not None:
            with contextlib.suppress(OSError, ValueError):  # a closed stdout: nothing left to print
                made[0].reconfigure(errors=made[1])

    with _shared_change("stdout errors", make, undo):
        yield


def _raw_bytes_or_escaped(exc: UnicodeError) -> Tuple[Union[str, bytes], int]:
    """The codec error handler of :func:`_names_printable`."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    try:
        return codecs.lookup_error("surrogateescape")(exc)
    except UnicodeEncodeError:  # not a surrogate escape: a character this encoding has not
        return codecs.backslashreplace_errors(exc)


_PRINTABLE_ERRORS = "grapheme-mm-printable"
codecs.register_error(_PRINTABLE_ERRORS, _raw_bytes_or_escaped)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        text = f"{shown_name(exc.filename)}: {exc.strerror}"  # e.g. "out.npy: No space left on device"
    elif isinstance(exc, MemoryError) and not isinstance(exc, ValueError):
        text = f"not enough memory{': ' + str(exc) if str(exc) else ''}"
    else:
        text = str(exc)
    # Each line break (and other whitespace than spaces) with the spaces around it becomes one space; a run of
    # spaces alone stays: a file name of two spaces ("a  b.npy") was printed as another ("a b.npy").
    return _LINE_BREAKS.sub(" ", text).strip() or type(exc).__name__


#: A run of whitespace that holds some other than a space (a line break, a tab): :func:`_one_line` makes it one space.
_LINE_BREAKS = re.compile(r" *[^\S ]\s*")


_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors (an unknown flag, a missing or
    malformed value) as one line, as every other error of the command line,
    instead of the usage block and the error; exit status 2 as argparse's.
    ``--help`` is argparse's own. Subcommands' parsers are of this class too.
    Flags are taken only in full: argparse took ``--epoch 5`` for
    ``--epochs``, and a flag added later (``--epoch-size``) would have made
    it an error, or another flag, in scripts that worked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # argparse takes "-1e-3" (its matcher knows no exponent) and "-inf" for
        # flags and says "expected one argument" for `--lr -1e-3`: a value
        # given was called missing. Every number a float flag parses is a
        # value here (no flag of this CLI looks like a number), so the range
        # checks name what is wrong with it.
        self._negative_number_matcher = _NEGATIVE_NUMBER

    def parse_args(self, args: Optional[Sequence[str]] = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        """argparse's, but an extra argument that is empty or holds spaces is
        shown quoted: ``grapheme-mm train ''`` was refused as "unrecognized
        arguments:" with nothing after it, and ``'a b'`` read as two."""
        self._argv = list(sys.argv[1:] if args is None else args)  # for error(): see there
        if self._subparsers is not None:  # their errors (argparse's) see the command line too
            for parser in self._subparsers._group_actions[0].choices.values():  # type: ignore[attr-defined]
                parser._argv = self._argv
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:  # not through error(), whose one line of argparse's text would join 'a  b' to 'a b'
            # an argument the subcommand left is refused pointing at the subcommand's help (`train --bogus` pointed
            # at grapheme-mm --help, which lists no flag of train's), one before the subcommand at the top level's
            parser = self._subcommand(parsed, extra)
            hint = _abbreviation_hint(extra, _long_flags(parser))
            parser._refuse(f"unrecognized arguments: {' '.join(map(_shown, extra))}{hint}")
        return parsed

    def _subcommand(self, parsed: argparse.Namespace, extra: Sequence[str]) -> "_Parser":
        """The parser of the subcommand that parsed ``parsed`` (this one, at
        the top level or without one), unless ``extra``'s first argument came
        before the subcommand's name."""
        command = getattr(parsed, "command", None)
        if self._subparsers is None or command is None:
            return self
        argv = self._argv
        at = argv.index(command) if command in argv else -1
        if 0 <= at and extra[0] in argv[:at]:
            return self
        return self._subparsers._group_actions[0].choices[command]  # type: ignore[attr-defined]

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):  # "argument --epochs: ..." -> "--epochs: ...", as the CLI's own errors
            message = message[len("argument "):]
        argv = [a for a in getattr(self, "_argv", ()) if a != "--"]  # `grapheme-mm --`: no command, said so
        if self._subparsers is not None and argv and message.startswith("the following arguments are required"):
            # No subcommand, only flags that are not the top level's (those exit first): `grapheme-mm --vers` and
            # `-V` said "the following arguments are required: COMMAND", of a user who had typed no command
            # because they meant --version. Said as the unrecognized arguments they are, with the flag meant.
            hint = _abbreviation_hint(argv, _long_flags(self))
            self._refuse(f"unrecognized arguments: {' '.join(map(_shown, argv))}{hint}")
        self._refuse(" ".join(message.split()) + _dash_hint(message, getattr(self, "_argv", []), self))

    def _refuse(self, line: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {line}; see {self.prog} --help\n")


def _long_flags(parser: argparse.ArgumentParser) -> List[str]:
    """The ``--`` flags ``parser`` takes."""
    return [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]


def _abbreviation_hint(extra: Sequence[str], flags: Sequence[str]) -> str:
    """`` (flags are taken in full: did you mean --epochs?)`` when an
    unrecognized argument is the start of flags the command takes (the
    abbreviation argparse would have taken), else ``""``."""
    for argument in extra:
        start = argument.split("=", 1)[0]
        if not start.startswith("--") or start == "--":
            continue
        meant = [flag for flag in flags if flag.startswith(start)]
        if meant:
            shown = meant[0] if len(meant) == 1 else ", ".join(meant[:3]) + (", ..." if len(meant) > 3 else "")
            return f" (flags are taken in full only: did you mean {'' if len(meant) == 1 else 'one of '}{shown}?)"
    return ""


def _dash_hint(message: str, argv: Sequence[str], parser: argparse.ArgumentParser) -> str:
    """How to give a name that begins with ``-``, when argparse took one for
    a flag: ``-o -m.gmm`` was "--output/-o: expected one argument", and
    ``embed ... -m.gmm`` (a checkpoint so named: read as ``-m .gmm``) "the
    following arguments are required: checkpoint", of a user who had given
    both. Else ``""``."""
    head = list(argv[: argv.index("--")] if "--" in argv else argv)  # after --, nothing is a flag

    def flag_like(argument: str) -> bool:
        # argparse takes one with a space for a positional (a value), as it takes negative numbers here
        return (argument.startswith("-") and argument != "-" and " " not in argument
                and not _NEGATIVE_NUMBER.match(argument) and argument.split("=", 1)[0] not in parser._option_string_actions)

    needing = re.fullmatch(r"(\S+): expected one argument", message)
    if needing:
        flags = needing.group(1).split("/")
        for flag, value in zip(head, head[1:]):
            if flag in flags and flag_like(value):
                joined = next((f for f in flags if f.startswith("--")), flag)
                return (f" ({_shown(value)}, which begins with '-', was read as a flag: give such a value joined to "
                        f"its flag, {_shown(f'{joined}={value}')})")
        return ""
    if message.startswith("the following arguments are required") and not message.endswith(
            tuple(f for a in parser._actions if a.option_strings and a.required for f in a.option_strings)):
        for argument in head:  # a positional (a file) missing: one that begins with '-' was taken for a flag
            if flag_like(argument):
                short = argument[:2]
                how = (f"read as {short} {_shown(argument[2:])}" if short in parser._option_string_actions
                       else "read as a flag")
                return (f" ({_shown(argument)} was {how}: a file name that begins with '-' goes after '--', as in "
                        f"{parser.prog} [options] -- {_shown(argument)}, or is given as {_shown('./' + argument)})")
    return ""


def _shown(argument: str) -> str:
    """A command-line argument as an error shows it: as typed, or quoted
    (Python's repr) when it is empty or holds spaces or characters that do
    not print, which would be lost in the message."""
    return argument if argument and argument.isprintable() and not any(c.isspace() for c in argument) else repr(argument)


#: An int as a user types one: ASCII digits, an optional leading minus (a negative value is refused by
#: its flag's range check, which says what the range is).
_PLAIN_INT = re.compile(r"-?[0-9]+")
#: A number as a user types one: ASCII decimal, an optional exponent; nan and inf (which float() reads
#: in any case) reach the range check of their flag, which refuses them naming its range.
_PLAIN_FLOAT = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|-?(inf|infinity|nan)", re.IGNORECASE)


def _int(text: str) -> int:
    """An int flag's value (argparse's own error says "invalid int value").
    ASCII digits only: ``int()`` also reads ``4_0`` (40), ``+5``, `` 5 ``
    and other scripts' digits (``٣``, 3), which a user who typed them did
    not mean as that number, or did not see they had typed."""
    if _PLAIN_INT.fullmatch(text):
        try:
            return _plain_int(text)
        except ValueError as exc:  # else argparse's "invalid _int value", naming this function
            raise argparse.ArgumentTypeError(f"expected an int, got {text[:20]!r}... ({exc})") from None
    raise argparse.ArgumentTypeError(_not_plain(text, "an int", "e.g. 40", int))


def _plain_int(text: str) -> int:
    """The int a plain int ``text`` (:data:`_PLAIN_INT`) writes, its leading
    zeros dropped; ``ValueError`` saying how many digits it has when more
    than ``int()`` reads (its own error, "Exceeds the limit (4300 digits)
    for integer string conversion", named no flag)."""
    try:
        return int_of_digits(text)
    except ValueError as exc:
        raise ValueError(f"{exc}, beyond any value a flag takes") from None


def _float(text: str) -> float:
    """A float flag's value (argparse's own error says "invalid float value"),
    in plain ASCII decimal as :func:`_int` takes ints (``float()`` read
    ``1_0.5`` as 10.5)."""
    if _PLAIN_FLOAT.fullmatch(text):
        value = float(text)
        misread = _beyond_float64(text, value)
        if misread:  # else its flag's range check said "got inf" (or "got 0.0"), a value never typed
            raise argparse.ArgumentTypeError(f"expected a number within float64's range, got {text!r} ({misread})")
        return unsigned_zero(value)
    raise argparse.ArgumentTypeError(_not_plain(text, "a number", "e.g. 0.001 or 1e-3", float))


def _numbers_typed_otherwise(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Dict[str, str]:
    """Each float flag of ``argv`` (the last of one given twice, as argparse
    takes), and each weight of ``--objectives`` (``--objectives['contrastive']``),
    whose value typed is another number than the float :func:`_float`
    read -> the value as typed: ``--ema-decay 0.99999999999999999`` is read
    as 1.0, and its range check said "got 1.0", a value never typed."""
    flags = {option for sub in parser._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
             for action in sub._actions if action.type is _float for option in action.option_strings}
    typed: Dict[str, str] = {}
    for i, argument in enumerate(argv):
        if argument == "--":  # the rest are no flags
            break
        flag, equals, text = argument.partition("=")
        if flag not in flags and flag != "--objectives":
            continue
        text = text if equals else (argv[i + 1] if i + 1 < len(argv) else "")
        if flag == "--objectives":  # its weights, NAME=NUMBER, each named --objectives['NAME'] by its checks
            typed = {key: value for key, value in typed.items() if not key.startswith("--objectives[")}
            for item in text.split(","):
                name, _, number = item.partition("=")
                _note_if_typed_otherwise(typed, f"--objectives[{name.strip()!r}]", number.strip(" "))
        else:
            _note_if_typed_otherwise(typed, flag, text)
    return typed


def _note_if_typed_otherwise(typed: Dict[str, str], name: str, text: str) -> None:
    """``typed[name] = text`` when ``text`` is a plain number that the float
    read from it is not (``0.99999999999999999``, 1.0); else none for ``name``."""
    read = float(text) if _PLAIN_FLOAT.fullmatch(text) else math.nan
    if math.isfinite(read) and _decimal(text) not in (None, decimal.Decimal(repr(read))):
        typed[name] = text
    else:
        typed.pop(name, None)


def _decimal(text: str) -> Optional[decimal.Decimal]:
    """The exact number the plain number ``text`` writes, or None where its
    exponent is beyond what ``decimal`` holds (``1e-99999999999999999999``,
    which float reads as 0 and its flag's check refuses as beyond float64):
    the ``decimal.InvalidOperation`` raised there ended ``grapheme-mm train
    --objectives contrastive=1e-99999999999999999999`` with a traceback."""
    try:
        return decimal.Decimal(text)
    except decimal.InvalidOperation:
        return None


def _as_typed(line: str, typed: Mapping[str, str]) -> str:
    """An error ``line`` about a float flag of ``typed`` that shows the
    float read (``got 1.0``) showing the value as typed too, as the Python
    API says it: ``got 0.99999999999999999, which is 1.0 as a float``."""
    for flag, text in typed.items():
        read = f"got {float(text)!r}"
        at = line.find(read) if line.startswith(flag + ":") else -1
        if at >= 0:
            rest = line[at + len(read):]
            # a message that goes on with "which is ..." of its own: the float read in brackets
            as_float = f" ({float(text)!r} as a float)" if rest.startswith(", which is") else f", which is {float(text)!r} as a float"
            return f"{line[:at]}got {text}{as_float}{rest}"
    return line


def _beyond_float64(text: str, value: float) -> str:
    """Why ``value``, as ``float()`` read it from the plain number ``text``,
    is not the number typed, or ``""``: ``1e400`` reads as inf and
    ``1e-400`` as 0, which the flags' range checks showed as if typed."""
    if math.isinf(value) and "inf" not in text.lower():
        return f"beyond float64's largest, {np.finfo(np.float64).max:.3g}: read as infinity"
    if value == 0 and any(c in "123456789" for c in re.split("[eE]", text)[0]):
        return f"below float64's smallest, {np.finfo(np.float64).smallest_subnormal:.3g}: read as 0"
    return ""


def _not_plain(text: str, what: str, example: str, parse: Any) -> str:
    """The refusal of a flag's value ``text`` that is no plain ``what``;
    for one Python's ``parse`` reads (``4_0``), which the user may take for
    a number, it says how one is written (``example``)."""
    try:
        parse(text)
    except ValueError:
        return f"expected {what}, got {text!r}"
    return f"expected {what} in plain digits 0-9 ({example}), got {text!r}"


def _plain_number(text: str, parse: Any) -> Any:
    """``text`` (spaces around it allowed: a list item after a comma) as
    ``parse`` (``int`` or ``float``) reads it, if it is written as :func:`_int`
    and :func:`_float` take numbers; else ``ValueError``."""
    text = text.strip(" ")
    if (_PLAIN_INT if parse is int else _PLAIN_FLOAT).fullmatch(text):
        return _plain_int(text) if parse is int else parse(text)
    raise ValueError(text)


def _input_path(text: str) -> Path:
    """A file name to read: not empty (``Path("")`` is ``.``, and ``info ''``
    said "'.' is a directory", a name the user never gave) and one the file
    system can take (see :func:`_refuse_unencodable`)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file name, got ''")
    if text == "-" and not os.path.lexists(text):  # was "no file at '-'"
        raise argparse.ArgumentTypeError("expected a file path, got '-' (standard input, which is not read; ./- for a file named -)")
    _refuse_unencodable(text)
    return Path(text)


def _refuse_unencodable(text: str) -> None:
    """A name holding a lone surrogate (``main(["info", "m\\ud800"])``; a
    real command line cannot give one) is refused where it is parsed, naming
    its flag: every use of it raised a bare ``UnicodeEncodeError``, some
    only after the work (``demo --out``)."""
    from .io import unencodable

    why = unencodable(text)
    if why is not None:
        raise argparse.ArgumentTypeError(why)


def _output_file(text: str) -> Path:
    """An output file's name. ``Path`` drops a trailing separator: ``-o
    out/`` would write a file named ``out`` where the user named a folder.
    ``-`` (standard output, to most tools) is refused, not written as a file
    named ``-``: every output of this CLI is a file (.safetensors or .npy,
    binary; demo's JSON beside the table it prints), none for a terminal
    or a pipe."""
    _refuse_standard_output(text, "file")
    _refuse_unencodable(text)
    separators = tuple(sep for sep in (os.sep, os.altsep) if sep)
    if text in ("", ".") or text.endswith(separators + tuple(sep + "." for sep in separators)):
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r} (a folder)" if text else "expected a file name, got ''")
    return Path(text)


def _output_folder(text: str) -> Path:
    """An output folder's name; ``-`` (standard output, to most tools) is
    refused as :func:`_output_file` refuses it, not made a folder named ``-``,
    and so is ``""``: ``Path("")`` is ``.``, and ``demo --out ''`` (an unset
    shell variable) wrote its files into the working folder."""
    _refuse_standard_output(text, "folder")
    if not text:
        raise argparse.ArgumentTypeError("expected a folder name, got '' (give . for the working folder)")
    _refuse_unencodable(text)
    return Path(text)


def _refuse_standard_output(text: str, kind: str) -> None:
    """``-`` for an output ``kind`` ("file" or "folder"): every output of this
    CLI is written to the file system, none to standard output."""
    if text == "-":
        raise argparse.ArgumentTypeError(
            f"expected a {kind} path, got '-' (standard output): this option writes to a {kind}, not to standard "
            f"output; give a {kind} path (./- for a {kind} named -)"
        )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Learnable multimodal fusion and cross-modal binding (grapheme-multimodal).",
        epilog=EXIT_STATUSES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", epilog=EXIT_STATUSES, help="train on the UCI Multiple Features digits and measure beside anchors (exact CCA, the raw views)")
    demo.add_argument("--out", type=_output_folder, default=Path("runs/demo"), help="output folder (default: runs/demo)")
    demo.add_argument("--epochs", type=_int, default=None, help="at most this many epochs (default: the recipe's; it stops early on a held-out slice)")
    demo.add_argument("--seed", type=_int, default=0, help="training seed (default %(default)s)")
    demo.add_argument("--members", type=_int, default=1, metavar="K",
                      help="train and measure an ensemble of K models (as train --members; K times the training; "
                           "default %(default)s)")
    demo.add_argument("--json", type=_output_file, default=None, help="also write the table as JSON")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    _overwrite_arg(demo)
    demo.set_defaults(run=_demo)

    train = sub.add_parser("train", epilog=EXIT_STATUSES, help="train on your own files, one per modality (rows aligned)")
    _modality_args(train)
    train.add_argument("--output", "-o", type=_output_file, default=Path("model.safetensors"), help="checkpoint to write (default %(default)s)")
    _overwrite_arg(train)
    # The defaults are the package's recipe (uci.TrainingSettings).
    train.add_argument("--epochs", type=_int, default=_RECIPE.epochs,
                       help=f"at most (default {_RECIPE.epochs}; 0 trains nothing and saves the untrained model, as fit(epochs=0))")
    train.add_argument("--batch-size", type=_int, default=_RECIPE.batch_size, help="rows per step (default %(default)s)")
    train.add_argument("--embed-dim", type=_int, default=_RECIPE.embed_dim,
                       help="length of the modality and fused embeddings (default %(default)s)")
    train.add_argument("--hidden-dim", type=_int, default=_RECIPE.hidden_dim,
                       help="hidden width of the fusion network (default %(default)s)")
    train.add_argument("--heads", type=_int, default=_RECIPE.num_heads, help="attention heads (default %(default)s)")
    train.add_argument("--lr", type=_float, default=_RECIPE.learning_rate, help="Adam learning rate (default %(default)s)")
    train.add_argument("--weight-decay", type=_float, default=_RECIPE.weight_decay, metavar="L",
                       help="Adam's weight decay, decoupled (AdamW-style): each step multiplies every weight by "
                            f"1 - lr * L (default {_RECIPE.weight_decay:g}: off)")
    train.add_argument("--binder", choices=("additive", "bilinear"), default=_RECIPE.binder_kind,
                       help="the binder's form (default %(default)s)")
    train.add_argument("--objectives", default=None,
                       help="objective weights, each objective once, e.g. contrastive=1,binding=0.5 (default: the recipe's, "
                            + ",".join(f"{k}={v:g}" for k, v in _RECIPE.objectives.items()) + ")")
    train.add_argument("--fused-neighbors", type=_int, default=_RECIPE.fused_neighbors, metavar="K",
                       help="fused_contrastive counts each event's K nearest events of the batch as positives "
                            f"(default {_RECIPE.fused_neighbors}; 0: the event only)")
    train.add_argument("--fused-neighbor-space", choices=NEIGHBOR_SPACES, default=_RECIPE.fused_neighbor_space,
                       help="where those nearest events are found: by the inputs or by the modality embeddings "
                            f"(default {_RECIPE.fused_neighbor_space})")
    train.add_argument("--input-distance", choices=INPUT_DISTANCES, default=_RECIPE.input_distance,
                       help="how the inputs' distance that finds neighbours weighs the modalities: every input column "
                            f"the same, or every modality the same (default {_RECIPE.input_distance})")
    train.add_argument("--contrastive-neighbors", type=_int, default=_RECIPE.contrastive_neighbors, metavar="K",
                       help="the contrastive objective counts each row's K nearest rows of the batch by their inputs "
                            f"as partial positives (default {_RECIPE.contrastive_neighbors}; 0: off)")
    train.add_argument("--contrastive-neighbor-weight", type=_float, default=_RECIPE.contrastive_neighbor_weight,
                       help=f"the target mass those neighbours share (default {_RECIPE.contrastive_neighbor_weight})")
    train.add_argument("--neighborhood-neighbors", type=_int, default=_RECIPE.neighborhood_neighbors, metavar="K",
                       help="the neighborhood objective (when --objectives weights it, e.g. neighborhood=0.2) keeps "
                            "each event's K nearest events by their inputs near it in every modality's embedding "
                            f"(default {_RECIPE.neighborhood_neighbors})")
    train.add_argument("--neighborhood-temperature", type=_float, default=_RECIPE.neighborhood_temperature or 0.0,
                       metavar="TAU",
                       help="the neighborhood objective's temperature, fixed; 0: the contrastive objective's "
                            f"(default {_RECIPE.neighborhood_temperature or 0:g})")
    train.add_argument("--contrastive-pair-power", type=_float, default=_RECIPE.contrastive_pair_power, metavar="P",
                       help="the contrastive loss is the power mean of order P of its view pairs' losses: 1 their "
                            f"arithmetic mean, 0 their geometric mean (default {_RECIPE.contrastive_pair_power:g})")
    train.add_argument("--encoder-objectives", default=_names(_RECIPE.encoder_objectives), metavar="NAMES",
                       help="the objectives whose gradients train the encoders, e.g. contrastive,binding; 'all' "
                            f"(default {_names(_RECIPE.encoder_objectives)})")
    train.add_argument("--reconstruction-subsets", action=argparse.BooleanOptionalAction,
                       default=_RECIPE.reconstruction_subsets,
                       help="the reconstruction objective (when --objectives weights it, as the recipe's do) reads the "
                            "fused embedding of a random subset of each event's modalities, not of all of them "
                            f"(default: {'on' if _RECIPE.reconstruction_subsets else 'off'})")
    train.add_argument("--modality-dropout", type=_float, default=_RECIPE.modality_dropout,
                       help="probability of hiding each modality of a training row, never its last (default %(default)g)")
    train.add_argument("--ema-decay", type=_float, default=_RECIPE.ema_decay or 0.0, metavar="D",
                       help="keep an exponential moving average of the weights, one update per epoch with decay D "
                            "(warmed up), and save the average: the best epoch's with early stopping "
                            f"(default {_RECIPE.ema_decay or 0:g}; 0: off)")
    train.add_argument("--validation-split", type=_float, default=_RECIPE.validation_fraction,
                       help=f"fraction of rows held out for validation (default {_RECIPE.validation_fraction}; 0: none)")
    train.add_argument("--early-stopping", type=_int, default=None,
                       help="patience in epochs, watching the validation contrastive loss (the total loss with one modality file or "
                            "no contrastive weight); the best epoch is kept "
                            f"(default {_RECIPE.patience} with a validation split; 0: off)")
    train.add_argument("--min-validation-rows", type=_int, default=_RECIPE.min_validation_rows,
                       help="below this many held-out rows, cross-validation chooses the number of epochs and the "
                            f"model trains on all rows (default {_RECIPE.min_validation_rows})")
    train.add_argument("--cv-folds", type=_int, default=_RECIPE.cv_folds,
                       help=f"folds of that cross-validation (default {_RECIPE.cv_folds}; below 2: always hold out)")
    train.add_argument("--text-features", choices=("wl", "fingerprint"), default=None,  # None: not given (refused with no .txt)
                       help="how .txt lines become features (default wl: content-aware)")
    train.add_argument("--wl-dim", type=_int, default=None, metavar="D",
                       help=f"length of the WL features of .txt lines (default {WL_DEFAULT_DIM}; with --text-features wl)")
    capacity = train.add_argument_group(
        "model capacity (defaults: the recipe; the original model's is --encoder-hidden '' --encoder-output-dim 0 "
        "--shared-head '' --encoder-input-dropout 0 --encoder-hidden-dropout 0 --no-learnable-temperature "
        "--fusion-residual 0)")
    capacity.add_argument("--temperature", type=_float, default=_RECIPE.temperature,
                          help=f"of the contrastive objectives (default {_RECIPE.temperature})")
    capacity.add_argument("--learnable-temperature", action=argparse.BooleanOptionalAction,
                          default=_RECIPE.learnable_temperature,
                          help="learn the contrastive temperatures, starting at --temperature (default: on)")
    capacity.add_argument("--encoder-hidden", default=",".join(map(str, _RECIPE.encoder_hidden)), metavar="WIDTHS",
                          help="hidden layer widths of each modality's encoder, e.g. 256 or 256,128, '' for none "
                               f"(default {','.join(map(str, _RECIPE.encoder_hidden))})")
    capacity.add_argument("--encoder-output-dim", type=_int, default=None,
                          help="the encoders' output width when a shared head follows, 0: --embed-dim "
                               f"(default {_RECIPE.encoder_output_dim} with a head, else --embed-dim)")
    capacity.add_argument("--shared-head", default=None, metavar="WIDTHS",
                          help="layer widths of a projection head shared by all modalities, the last = --embed-dim, "
                               "e.g. 128,64; '' for none (default: 128,EMBED_DIM)")
    capacity.add_argument("--encoder-input-dropout", type=_float, default=_RECIPE.encoder_input_dropout,
                          help=f"dropout on encoder inputs in training (default {_RECIPE.encoder_input_dropout})")
    capacity.add_argument("--encoder-hidden-dropout", type=_float, default=_RECIPE.encoder_hidden_dropout,
                          help="dropout after hidden encoder layers in training "
                               f"(default {RECIPE_HIDDEN_DROPOUT} where there are hidden layers, else none)")
    capacity.add_argument("--encoder-skip", action=argparse.BooleanOptionalAction, default=None,
                          help="a linear path from each encoder's input to its output layer (needs hidden layers and "
                               "a shared head; default: on where the encoders have both)")
    capacity.add_argument("--fusion-residual", type=_float, default=_RECIPE.fusion_residual, metavar="C",
                          help="the fused embedding is the fusion network's output plus C x the mean of the present "
                               f"modality embeddings, normalised (default {_RECIPE.fusion_residual:g}; 0: none)")
    train.add_argument("--seed", type=_int, default=_RECIPE.seed,
                       help="seeds the weights, the held-out rows, shuffling and dropout (default %(default)s)")
    train.add_argument("--members", type=_int, default=1, metavar="K",
                       help="train an ensemble of K models, member j from seed SEED*K+j, saved in one file: embed "
                            "puts their embeddings side by side (K times as wide) and averages their binding "
                            "strengths; K times the training (default %(default)s: one model)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--workers", type=_int, default=None,
                       help="train data-parallel on N Ray workers (default: in this process)")
    _ray_address_arg(train)
    train.set_defaults(run=_train)

    embed = sub.add_parser("embed", epilog=EXIT_STATUSES, help="fused embeddings of your files from a checkpoint")
    embed.add_argument("checkpoint", type=_input_path, help="a model saved by train (or LearnableMultiModal.save)")
    _modality_args(embed)
    embed.add_argument("--output", "-o", type=_output_file, default=Path("embeddings.npy"), help="fused embeddings [N, E] (.npy; default %(default)s)")
    embed.add_argument("--bindings", type=_output_file, default=None, help="also write binding strengths [N, 7, 7] (.npy)")
    embed.add_argument("--hidden-features", type=_output_file, default=None,
                       help="also write the encoders' last hidden layer [N, 7, H] (.npy; zeros where a modality is "
                            "absent): the features before the aligned space, for a downstream classifier; of an "
                            "ensemble of K, the members' side by side [N, 7, K*H], each L2-normalised per row and "
                            "modality and divided by sqrt(K) (as evaluation.EnsembleEmbedder.hidden_features; of "
                            "one member, its own)")
    _overwrite_arg(embed)
    embed.add_argument("--ray", action="store_true", help="embed with a pool of Ray actors (Ray Data)")
    embed.add_argument("--workers", type=_int, default=None,
                       help="with --ray: actors in the pool (default: Ray Data scales it to the CPUs)")
    embed.add_argument("--batch-size", type=_int, default=None,
                       help=f"rows per model call, to bound memory on large files (default {EMBED_BATCH_SIZE}; "
                            f"with --ray {RAY_EMBED_BATCH_SIZE})")
    _ray_address_arg(embed)
    embed.set_defaults(run=_embed)

    info = sub.add_parser("info", epilog=EXIT_STATUSES, help="a checkpoint's config, size and training history")
    info.add_argument("checkpoint", type=_input_path, help="a model saved by train (or LearnableMultiModal.save)")
    info.set_defaults(run=_info)
    return parser


def _overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace output files that already exist (default: refuse them before any work)")


def _ray_address_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join this Ray cluster (e.g. auto or ray://host:10001) instead of starting a local one")


def _modality_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--modality", "-m", action="append", required=True, metavar="NAME=PATH",
        help="a modality's file: .npy/.npz (NAME=f.npz:key)/.csv/.parquet rows of numbers (a row all NaN or empty: "
             "the event lacks the modality), or .txt (one text per line); repeat per modality. NAME is one of visual, auditory, linguistic, tactile, proprioceptive, action, abstract "
             "(e.g. images: visual, sound: auditory, text: linguistic)",
    )
    p.add_argument(
        "--csv-header", action=argparse.BooleanOptionalAction, default=None,
        help="whether each .csv file's first row is a header of column names (--csv-header) or an event "
             "(--no-csv-header); default: it is a header when a cell of it is no number (nor a missing value, one of pandas' "
             "read_csv NA strings, such as '', NA or None), with a warning if others are",
    )


# ------------------------------------------------------------------ commands
def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoResult, demo_files, run_demo
    from .io import atomic_write_bytes, call_writing_together
    from .uci import TrainingSettings

    settings = TrainingSettings(seed=_seed(args.seed))
    if args.epochs is not None:
        settings = TrainingSettings(seed=args.seed, epochs=_positive(args.epochs, "--epochs"))
    member_seeds(args.seed, args.members, seed_arg="--seed", members_arg="--members")  # before any work
    # what would fail only after the training: the folder, its files, the JSON
    with removing_new_folders(Path(args.out)):  # a refused or failed run left the folder it had made
        files = demo_files(args.out, "--out")
        outputs = {**{f"--out's {what}": path for what, path in files.items()}, "--json": args.json}
        # --json out.npy wrote JSON text into a file named as a NumPy array (embed and train refuse such names)
        _check_outputs(outputs, {}, args.overwrite, writes={"--json": ".json"})
        # the folder's files and the JSON are one result, all or none: the JSON written after the folder, a
        # --json name taken meanwhile (or a full disk) left a run folder that looked complete beside no table
        def run_and_write() -> DemoResult:
            try:
                result = run_demo(args.out, settings, progress=not args.no_progress, members=args.members)
            except (GraphemeError, TypeError) as err:  # fit's refusal of an epoch count past Adam's step counter
                # named its argument "epochs", which the demo's user never typed
                raise renamed(err, {"epochs": "--epochs"}) from None
            if args.json is not None:
                rows = [{"measure": n, "ours": o, "anchor": a, "anchor_is": s} for n, o, a, s in result.rows]
                table = {"rows": rows, "notes": result.notes, "seconds": result.seconds}
                atomic_write_bytes(args.json, json.dumps(table, indent=2).encode())
            return result

        with _keeping_new(outputs, args.overwrite):
            result = call_writing_together(run_and_write)
    print()
    print(result.table())
    print()
    for what, path in result.files.items():
        print(f"{what:>10}: {shown_name(path)}")
    print(f"finished in {result.seconds:.1f} s")
    return 0


def _names(objectives: "tuple[str, ...] | None") -> str:
    return "all" if objectives is None else ",".join(objectives)


def _encoder_objectives(text: str) -> "tuple[str, ...] | None":
    """``--encoder-objectives``: 'all' or comma-separated objective names
    ('' for none), each once, as ``--objectives`` takes them: a name given
    twice is refused, not dropped without a word (a typo for another?)."""
    text = text.strip()
    if text == "all":
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise InvalidValueError(
            f"--encoder-objectives: {repeated!r} is given more than once in {text!r}; expected each objective once "
            "(comma-separated names, or 'all')", "--encoder-objectives",
        )
    return names


#: The model's and fit's arguments that ``train`` options of other names give
#: (argument -> the option's ``dest``); every other one is its option's dest.
_ARGUMENT_DESTS = {"learning_rate": "lr", "num_heads": "heads", "binder_kind": "binder", "validation_fraction": "validation_split",
                   "num_workers": "workers"}


@functools.lru_cache(maxsize=None)
def train_flags() -> Dict[str, str]:
    """The model's and fit's argument names -> the ``train`` flags that give
    them (``learning_rate`` -> ``--lr``), read off the parser."""
    train = _parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    flags = {a.dest: next(o for o in a.option_strings if o.startswith("--")) for a in train._actions if a.option_strings}
    return {**flags, **{argument: flags[dest] for argument, dest in _ARGUMENT_DESTS.items()}}


@contextlib.contextmanager
def _named_by_flags() -> Iterator[None]:
    """Errors about a model or fit argument name the flag the user typed,
    not the Python argument (``learning_rate``) they never saw."""
    try:
        yield
    except (GraphemeError, TypeError) as err:
        flags = train_flags()
        err = renamed(err, flags)
        # the settings it cites by name (``... embed_dim=64``, ``without a shared_head``) by their flags too
        # (``--embed-dim 64``); names without an underscore (``weights``) may be plain words
        text = re.sub(r"(?<![-\w'])([a-z]+_[a-z_]+)(=?)",
                      lambda m: (flags[m[1]] + (" " if m[2] else "")) if m[1] in flags else m[0], str(err))
        # early stopping's remedy, "or patience=0": fit_with_stopping's argument, --early-stopping here (a validation
        # fold of rows that lack a modality, which train takes now, is refused so)
        text = re.sub(r"(?<![-\w'])patience=0\b", "--early-stopping 0", text)
        if text != str(err):
            err = type(err)(text, err.arg) if isinstance(err, GraphemeError) else type(err)(text)
        raise err from None


@contextlib.contextmanager
def _grown_by_lr(lr: float) -> Iterator[None]:
    """Parameters grown past float32 in training blamed on ``--lr``, which
    grew them: the model names its ``parameters``, which no flag sets."""
    try:
        yield
    except NonFiniteError as err:
        raise grown_by_learning_rate(err, lr, "--lr", "a smaller --lr") from None


@contextlib.contextmanager
def _named_by_files(files: Sequence[Any]) -> Iterator[None]:
    """Errors training meets in a modality's rows (a row whose reconstruction
    overflows float32) name the file as the checks on reading do
    (``visual (images.npy): row 57 ...``), not ``inputs['visual']``, the
    Python argument the user never saw."""
    who = ", ".join(f"{f.modality}={shown_name(f.path)}" for f in files)

    def constant(rows: str, why: str) -> InvalidValueError:
        # fit's refusal of rows that standardise to 0, said where it is raised: fit's names its Python argument and
        # offers standardize=False, which train has no flag for (and fit_with_stopping renamed it inputs)
        return InvalidValueError(
            f"--modality: of the training rows of {who}, {rows}; train standardises each modality by its training "
            "rows' mean, so every input would be 0 and nothing could be learned; expected rows that differ",
            "--modality",
        )

    try:
        with constant_rows_refused_as({}, constant):
            yield
    except (GraphemeError, TypeError) as err:
        raise renamed(err, _names_of_files(files)) from None


def _names_of_files(files: Sequence[Any]) -> Dict[str, str]:
    """fit_with_stopping's name of each modality's rows -> the CLI's, by its file."""
    return {f"inputs[{str(f.modality)!r}]": f"{f.modality} ({shown_name(f.path)})" for f in files}


#: fit_with_stopping's words in its EarlyStoppingSkippedWarning -> the flags that set them here.
_STOPPING_FLAGS = {"validation_fraction": "--validation-split", "patience=0": "--early-stopping 0", "patience": "--early-stopping"}


@contextlib.contextmanager
def _stopping_skipped_by_flags(files: Sequence[Any] = ()) -> Iterator[None]:
    """fit_with_stopping's :class:`EarlyStoppingSkippedWarning` and the other
    warnings of training said once each, as one line by the flags' names (a
    Python warning named validation_fraction or batch_size, which the user
    never typed, showed a line of the package's source, once per fold), and
    the data by ``files`` (``linguistic (lines.txt)``, not ``inputs['linguistic']``).
    Held in this thread's context (:func:`holding_warnings`), not by
    ``warnings.catch_warnings()``, which put back the whole process's
    filters as it found them: a filter another thread set while
    :func:`main` trained in a thread was undone."""
    by_files = _names_of_files(files)
    holding = None
    try:
        with holding_warnings() as holding:
            yield
    finally:
        # said after the holding ends: a print that warns is said as ever
        said = set()
        for message, category in holding.held if holding is not None else ():
            if issubclass(category, EarlyStoppingSkippedWarning):
                words = re.compile("|".join(map(re.escape, _STOPPING_FLAGS)))
                line = words.sub(lambda m: _STOPPING_FLAGS[m.group()], message)
            else:  # "batch_size: 1; ...", once per fold: once, as one line, by the flag (--batch-size)
                line = _one_line(renamed(renamed(InvalidValueError(message, ""), by_files), train_flags()))
            if line not in said:
                said.add(line)
                print(f"{PROG}: warning: {line}", file=sys.stderr)


def _train(args: argparse.Namespace) -> int:
    from .model import LearnableMultiModal
    from .objectives import OBJECTIVES

    _check_outputs({"--output": args.output}, _input_files(args.modality), args.overwrite, writes=".safetensors")
    _seed(args.seed)
    seeds = member_seeds(args.seed, args.members, seed_arg="--seed", members_arg="--members")
    lost: List[str] = []  # columns float32 loses: said before training, one line each, as embed says its warnings
    files = _read_files(args.modality, lost, args.csv_header)
    n = len(files[0])
    text_features = "wl" if args.text_features is None else args.text_features
    if args.wl_dim is not None:  # was ignored without a word: the user's features were not the length asked for
        if text_features != "wl":
            raise InvalidValueError(f"--wl-dim: WL features only; got --text-features {text_features}", "--wl-dim")
        if not any(f.is_text for f in files):
            raise InvalidValueError("--wl-dim: no modality file is .txt, so no WL features are made", "--wl-dim")
    if args.text_features is not None and not any(f.is_text for f in files):  # was ignored without a word, as --wl-dim was
        raise InvalidValueError(
            f"--text-features: no modality file is .txt, so no text features are made; got --text-features {text_features}",
            "--text-features",
        )
    wl_dim = _positive(WL_DEFAULT_DIM if args.wl_dim is None else args.wl_dim, "--wl-dim")
    try:
        featurizer = GraphFeaturizer("wl", dim=wl_dim) if text_features == "wl" else GraphFeaturizer()
    except GraphemeError as err:  # "dim: expected an int in [1, 4194304]" named an argument the user never typed
        raise renamed(err, {"dim": "--wl-dim"}) from None
    inputs = {f.modality: (_text_features(featurizer, f) if f.is_text else f.values) for f in files}
    mask = _presence_mask(files)  # rows missing whole: trained on as MultimodalEmbedder trains on all-NaN rows
    embed_dim = _positive(args.embed_dim, "--embed-dim")
    # the recipe's helpers refuse widths beyond the model's as the config does, by its names (embed_dim, shared_head[0])
    with _named_by_flags():
        head = recipe_head(embed_dim) if args.shared_head is None else _widths(args.shared_head, "--shared-head")
        encoder_hidden = _widths(args.encoder_hidden, "--encoder-hidden")
        encoder_skip = recipe_skip(encoder_hidden, head) if args.encoder_skip is None else args.encoder_skip
    encoder_output_dim = args.encoder_output_dim
    if encoder_output_dim is None and head:
        encoder_output_dim = _RECIPE.encoder_output_dim
    # The recipe's settings with the flags' values: the model options are the ones uci.train and
    # MultimodalEmbedder build (TrainingSettings.model_options), not a list of its own to keep in step.
    weights = _objective_weights(args.objectives, OBJECTIVES)
    # else the settings' own name for them, weights, and a default ("None: ... RECIPE_OBJECTIVES") in Python's words
    check_weights(weights, "--objectives", "leave out --objectives for the recipe's")
    with _named_by_flags():  # the settings' own refusals name their fields, given here by flags
        settings = TrainingSettings(
            embed_dim=embed_dim,
            hidden_dim=_positive(args.hidden_dim, "--hidden-dim"),
            num_heads=_positive(args.heads, "--heads"),
            learning_rate=args.lr,
            weight_decay=args.weight_decay,
            binder_kind=args.binder,
            seed=args.seed,
            temperature=args.temperature,
            learnable_temperature=args.learnable_temperature,
            encoder_hidden=encoder_hidden,
            encoder_output_dim=encoder_output_dim or None,
            shared_head=head,
            encoder_input_dropout=args.encoder_input_dropout,
            encoder_hidden_dropout=args.encoder_hidden_dropout,
            encoder_skip=encoder_skip,
            fused_neighbors=args.fused_neighbors,
            fused_neighbor_space=args.fused_neighbor_space,
            input_distance=args.input_distance,
            contrastive_neighbors=args.contrastive_neighbors,
            contrastive_neighbor_weight=args.contrastive_neighbor_weight,
            neighborhood_neighbors=args.neighborhood_neighbors,
            neighborhood_temperature=_neighborhood_temperature(args.neighborhood_temperature),
            contrastive_pair_power=args.contrastive_pair_power,
            encoder_objectives=_encoder_objectives(args.encoder_objectives),
            fusion_residual=args.fusion_residual,
            reconstruction_subsets=args.reconstruction_subsets,
            weights=weights,
        )
    def new_model(seed: int) -> LearnableMultiModal:
        with _named_by_flags():  # the config's errors name its fields
            return LearnableMultiModal(
                input_dims={f.modality: inputs[f.modality].shape[1] for f in files if not f.is_text},
                graph_features={f.modality: featurizer for f in files if f.is_text},
                **dataclasses.replace(settings, seed=seed).model_options(),
            )

    first = new_model(seeds[0])
    # every member is held, trained, until the file is written: past memory, --members 100000 built models until
    # the process was killed, before a word
    patience = _RECIPE.patience if args.early_stopping is None else args.early_stopping
    folds = planned_folds(n, args.validation_split, args.min_validation_rows, args.cv_folds, patience, args.epochs)
    # one model: its own constructor's check; members: all held, and as many trained at once as memory holds
    at_once = members_within_memory(first.num_parameters(), len(seeds), "--members", folds, len(seeds)) if len(seeds) > 1 else 1
    models = [first] + [new_model(seed) for seed in seeds[1:]]  # every member's config checked before any training
    if not 0 <= args.validation_split < 1:
        raise InvalidValueError(f"--validation-split: expected a fraction in [0, 1), got {args.validation_split}", "--validation-split")
    if args.early_stopping is not None and args.early_stopping < 0:
        raise InvalidValueError(f"--early-stopping: expected an int >= 0 (a patience in epochs; 0: off), got {args.early_stopping}", "--early-stopping")
    if args.early_stopping and args.validation_split == 0:
        raise InvalidValueError("--early-stopping: needs --validation-split > 0 to watch a validation loss", "--early-stopping")
    n_val = int(round(n * args.validation_split))
    if n - n_val < 2:
        raise InvalidValueError(f"files: {counted(n, 'row')} {'leaves' if n == 1 else 'leave'} {n - n_val} for training; expected at least 2", "files")
    if args.early_stopping and n_val < 2:
        # nothing is held out (nor cross-validated): the patience given went unused, all epochs ran
        raise InvalidValueError(
            f"--early-stopping: {args.early_stopping} given, but --validation-split {args.validation_split:g} of {n} rows "
            f"holds out {n_val} (at least 2 are needed to stop on), so every epoch would run on all rows; expected a "
            "larger --validation-split, or no --early-stopping", "--early-stopping",
        )
    if args.workers is None and args.ray_address is not None:
        raise InvalidValueError("--ray-address: only used with --workers N (training on Ray)", "--ray-address")
    fit_options = dict(
        mask=mask,
        validation_fraction=args.validation_split,
        patience=patience,
        monitor=settings.monitor(len(files)),
        min_validation_rows=_non_negative(args.min_validation_rows, "--min-validation-rows"),
        cv_folds=_non_negative(args.cv_folds, "--cv-folds"),
        epochs=args.epochs,
        batch_size=_positive(args.batch_size, "--batch-size"),
        objectives=settings.objectives,
        modality_dropout=args.modality_dropout,
        ema_decay=_ema_decay(args.ema_decay),
        progress=not args.no_progress,
    )
    for message in lost:  # the files are float32 from here on: the model's own check finds nothing
        _say_warning(message, PrecisionLossWarning)
    histories = []
    if args.workers is None:
        # the members train all at once (three on 2 cores: 57 s against 84 s in turn; two at a time 69 s),
        # each bit for bit what it is trained alone (_parallel.py)
        for x in [*inputs.values(), *([] if mask is None else [mask])]:
            x.flags.writeable = False  # arrays this command made and no one else holds: fit reads them in place, no copy
        tasks = [functools.partial(fit_with_stopping, model, inputs, seed=seed, **fit_options) for model, seed in zip(models, seeds)]
        with _named_by_flags(), _named_by_files(files), _stopping_skipped_by_flags(files), _grown_by_lr(args.lr):
            histories = run_tasks(tasks, at_once)
    else:
        from . import distributed

        workers = _positive(args.workers, "--workers")
        with _ray_cluster(args.ray_address), _named_by_flags(), _named_by_files(files), _stopping_skipped_by_flags(files), \
                _grown_by_lr(args.lr):
            for model, seed in zip(models, seeds):
                fit = functools.partial(distributed.fit, model, num_workers=workers)
                histories.append(fit_with_stopping(model, inputs, fit=fit, seed=seed, **fit_options))
    # a CSV header's names, kept by each model: embed refuses a file of them in another order
    columns = {f.modality.index: f.columns for f in files if f.columns is not None and not f.is_text}
    for model in models:
        model._remember_columns(columns)
    with _keeping_new({"--output": args.output}, args.overwrite):
        try:
            if len(models) == 1:
                models[0].save(args.output, include_experience=False)
            else:
                save_ensemble(models, args.output)
        except GraphemeError as err:  # the save's name for the file (not enough memory to write it) is not a flag
            raise renamed(err, {"path": "--output", "models": "--members"}) from None
    for j, (history, seed) in enumerate(zip(histories, seeds)):
        who = f"member {j} (seed {seed}): " if len(models) > 1 else ""
        print(f"{who}{_training_summary(history, folds, n, n_val, len(files))}")
    print(f"saved {shown_name(args.output)}" + (f" (an ensemble of {len(models)} models)" if len(models) > 1 else ""))
    return 0


def _training_summary(history: "History", folds: int, n: int, n_val: int, n_files: int) -> str:
    """``train``'s line on one model's training: rows, epochs, last losses;
    ``folds``: the cross-validation folds that ran (``--cv-folds``, fewer
    where a fold would hold out fewer than 2 rows: "30-fold" was said of the
    12 folds 24 rows make)."""
    last = history.epochs[-1] if history.epochs else {}
    summary = f"loss {last['loss']:.4f}" if "loss" in last else "no epochs run"
    if history.cv_curve is not None:
        # the curve is of the monitor (the recipe's: the contrastive loss alone), not the total beside it: "loss
        # 9.9747, ... (mean validation 2.1004)" read as a validation total a fifth of the training one
        monitor = history.monitor or "val_total"
        what = ("validation loss" if monitor == "val_total"
                else f"validation {monitor[len('val_'):]} loss" if monitor.startswith("val_") else monitor)
        summary += (f", {counted(len(history.epochs), 'epoch')} chosen by {folds}-fold cross-validation "
                    f"(mean {what} {history.cv_curve[len(history.epochs) - 1]:.4f})")
    elif "val_total" in last:
        summary += f", validation {last['val_total']:.4f} (best epoch {history.best_epoch})"
    rows = n if history.cv_curve is not None or "val_total" not in last else n - n_val
    if not history.epochs:
        # "trained on 40 rows x 2 modalities for 0 epochs" of a model that learned nothing, not even its standardisation
        return (f"not trained (--epochs 0): read {counted(n, 'row')} x {counted(n_files, 'modality', 'modalities')}; "
                "the model saved keeps its initial weights, without input standardisation")
    return (f"trained on {counted(rows, 'row')} x {counted(n_files, 'modality', 'modalities')} for "
            f"{counted(len(history.epochs), 'epoch')}: {summary}")




def _embed(args: argparse.Namespace) -> int:
    from .types import Modality

    if not args.ray and (args.workers is not None or args.ray_address is not None):  # before loading and reading
        raise InvalidValueError("--workers/--ray-address: only used with --ray", "--workers")
    _check_outputs(
        {"--output": args.output, "--bindings": args.bindings, "--hidden-features": args.hidden_features},
        {"the checkpoint": args.checkpoint, **_input_files(args.modality)},
        args.overwrite,
        writes=".npy",
    )
    models = _load_checkpoint(args.checkpoint)
    model = models[0]  # the members take the same inputs (ensemble.load_ensemble checks it)
    if args.hidden_features is not None:
        for j, member in enumerate(models):
            if not member.config.encoder_hidden:
                # the model's own refusal said "(config.encoder_hidden is empty); expected a model built with
                # encoder_hidden, e.g. (256,)": Python words for what the command line sets with a flag
                who = "the checkpoint" if len(models) == 1 else (
                    f"member {j} of the ensemble of {len(models)} in {str(args.checkpoint)!r}")
                raise InvalidValueError(
                    f"--hidden-features: {who} has no hidden layers in its encoders (as train --encoder-hidden '' makes them), "
                    "so there are no hidden features to write; expected a checkpoint trained with hidden layers "
                    f"(train's --encoder-hidden, default {','.join(map(str, _RECIPE.encoder_hidden))}), or no "
                    "--hidden-features", "--hidden-features")
            member.hidden_width(arg="--hidden-features")
    files = _read_files(args.modality, csv_header=args.csv_header)
    inputs = {}
    for f in files:
        dim = model.config.input_dim(f.modality)
        if f.is_text:
            featurizer = model.config.graph_featurizer(f.modality)
            if featurizer.dim != dim:
                raise InvalidValueError(
                    f"{f.modality}: the checkpoint's {f.modality} encoder takes {dim} numeric features, not text ({shown_name(f.path)})",
                    str(f.modality),
                )
            inputs[f.modality] = _text_features(featurizer, f)
        else:
            _refuse_reordered_header(f, models)  # first: a header with a column added names it, where the width cannot
            if f.values.shape[1] != dim:
                raise ShapeError(
                    f"{f.modality}: {shown_name(f.path)} has {_width(f)} but the checkpoint's {f.modality} "
                    f"encoder takes {dim} ({_why_the_width_differs(model, f.modality)})", str(f.modality),
                )
            inputs[f.modality] = f.values
    mask = _presence_mask(files)
    _refuse_events_with_no_modality(mask, files)
    # An encoder no training step trained: said once, as one line, not as a Python warning per call.
    given = np.zeros((1, len(Modality)), dtype=bool)
    given[0, [Modality.parse(m).index for m in inputs]] = True
    # Every member's: members[0]'s alone said nothing of another member's untrained encoder, half the output.
    untrained: Dict[str, List[int]] = {}
    for j, member in enumerate(models):
        messages = [_NEVER_TRAINED] if _never_trained(member) else member._untrained_messages(given)
        for message in messages:
            untrained.setdefault(message, []).append(j)
    said_once_written: List[str] = []  # of the output itself: said once it is written, a failed command saying its error alone
    for message, who in untrained.items():
        line = message
        if len(who) < len(models):
            line = f"member{'s' * (len(who) > 1)} {', '.join(map(str, who))} of the ensemble of {len(models)}: {message}"
        if message is _NEVER_TRAINED:
            said_once_written.append(line)
        else:
            _say_warning(line, UntrainedModalityWarning)
    # said above: dropped here, in this thread's context (a warnings filter is the whole process's)
    with holding_warnings(dropped=(UntrainedModalityWarning,), hold=False), _named_by_embed_files(files):
        if args.ray:
            from . import distributed  # noqa: F401 - first: without Ray, its error names the extra to install

            _ray_embed_options(args)  # before Ray starts
            with _ray_cluster(args.ray_address):  # one cluster for every member
                fused, strengths, hidden = _ensemble_outputs([_embed_on_ray(args, m, inputs, mask) for m in models])
        else:
            fused, strengths, hidden = _ensemble_outputs([_embed_in_process(args, m, inputs, mask) for m in models])
    _check_finite_output(fused, "fused embeddings", args.checkpoint)  # before writing anything
    if strengths is not None:
        _check_finite_output(strengths, "binding strengths", args.checkpoint)
    with _keeping_new({"--output": args.output, "--bindings": args.bindings, "--hidden-features": args.hidden_features},
                      args.overwrite):
        # every file before any line: a print that fails (a terminal gone) loses no output; and every file
        # written before any replaces its target: a full disk at the second left the first replaced
        _save_npys([(args.output, fused), (args.bindings, strengths), (args.hidden_features, hidden)])
    print(f"wrote fused embeddings {fused.shape} to {shown_name(args.output)}")
    if strengths is not None:
        print(f"wrote binding strengths {strengths.shape} to {shown_name(args.bindings)} (S[n, i, j] for modalities i, j in slot order)")
    if hidden is not None:
        print(f"wrote hidden features {hidden.shape} to {shown_name(args.hidden_features)} (modalities in slot order)")
    for line in said_once_written:
        _say_warning(line, UntrainedModalityWarning)
    return 0


#: embed's line for a checkpoint that never took a training step (:func:`_never_trained`).
_NEVER_TRAINED = ("the checkpoint was never trained (it records no training step: saved as made, or by train --epochs 0); "
                  "its encoders have their initial random weights, so the embeddings written are of random weights")


def _never_trained(model: "LearnableMultiModal") -> bool:
    """Whether ``model`` is known to have taken no training step: its record
    of trained modalities is kept (``{}``, not None: not known, as after a
    ``load_state_dict`` of other encoder weights) and no step was recorded.
    Such a checkpoint embedded without a word: the model's own
    UntrainedModalityWarning is for a model that trained on other modalities."""
    return model.trained_modalities == {} and not model._core.has_trained()


@contextlib.contextmanager
def _named_by_embed_files(files: Sequence[Any]) -> Iterator[None]:
    """The model's refusal of a row it reads (one that overflows float32 in
    an encoder) named by the modality's file, as reading names a row it
    refuses, not as ``inputs['visual']``, the Python argument the user never saw."""
    try:
        yield
    except (GraphemeError, TypeError) as err:
        raise renamed(err, _names_of_files(files)) from None


def _ensemble_outputs(per_member: List[Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]]):
    """One model's ``(fused, strengths, hidden)`` from its members' (an
    ensemble of one: its member's, bit for bit): the fused embeddings side
    by side, each divided by sqrt(K) (unit rows stay unit rows: a cosine is
    the mean of the members'), the mean of the binding strengths, and the
    hidden features side by side on their last axis, each member's
    L2-normalised per row and modality and divided by sqrt(K), as
    ``evaluation.EnsembleEmbedder.hidden_features`` gives them (one code
    path; the members' raw features side by side weighed a member by the
    scale of its hidden layer)."""
    if len(per_member) == 1:
        return per_member[0]
    fused, strengths, hidden = zip(*per_member)
    mean = None
    if strengths[0] is not None:
        mean = np.mean(np.stack(strengths), axis=0, dtype=np.float64).astype(strengths[0].dtype)
    return side_by_side(list(fused)), mean, (unit_side_by_side_blocks(list(hidden)) if hidden[0] is not None else None)


def _embed_in_process(args: argparse.Namespace, model, inputs: Dict[str, np.ndarray], mask: Optional[np.ndarray]):
    """``(fused, strengths or None, hidden features or None)`` of ``inputs``
    (``mask``: :func:`_presence_mask`), ``--batch-size`` rows per model call
    (each row's outputs depend on that row alone, so the chunks give the
    bits one call gives)."""
    n = len(next(iter(inputs.values())))
    step = EMBED_BATCH_SIZE if args.batch_size is None else _positive(args.batch_size, "--batch-size")

    def embed(rows: slice):
        chunk = {m: x[rows] for m, x in inputs.items()}
        present = None if mask is None else mask[rows]
        try:
            emb, fused = model.encode_and_fuse(chunk, present)
            strengths = model.pair_strengths(emb, present) if args.bindings is not None else None
            hidden = model.hidden_features(chunk, present) if args.hidden_features is not None else None
        except NonFiniteError as err:  # a row of the chunk, numbered in the chunk: named as the file's row
            raise overflow_in_user_rows(err, {"inputs": np.arange(rows.start, rows.start + step)}, "inputs") from None
        return fused, strengths, hidden

    return in_row_chunks(n, step, embed)


#: How embed_dataset's actors name a row of a batch (Ray Data numbers no row); the command's own "row" column
#: holds the row's number in the files.
_BATCH_ROW = re.compile(r"a row of a batch of \d+ \(its row \d+; Ray Data does not number the dataset's rows\), "
                        r"whose other columns are \{'row': (\d+)\},")


def _numbered_by_row_column(message: str) -> str:
    """``message`` of an actor's refusal with its row named as without
    --ray, by the file's row (the dataset's "row" column): "row 7", not "a
    row of a batch of 60 (its row 7; ...), whose other columns are {'row': 7},"."""
    return _BATCH_ROW.sub(lambda found: f"row {found.group(1)}", message, count=1)


def _read_outputs(out, columns: List[str]) -> List[Dict[str, np.ndarray]]:
    """The ``columns`` of each block of ``out`` as numpy, selected here in
    the driver: ``out.select_columns`` was a Ray Data task step behind the
    embedding pool, and Ray Data can wait forever for such a step behind a
    pool of every CPU on larger data."""
    from ray.data.block import BlockAccessor

    return [
        BlockAccessor.for_block(BlockAccessor.for_block(native).select(columns)).to_batch_format("numpy")
        for native in out.iter_batches(batch_format=None, batch_size=None)  # as iter_batches(batch_format="numpy") does
    ]


def _embed_on_ray(args: argparse.Namespace, model, inputs: Dict[str, np.ndarray], mask: Optional[np.ndarray]):
    """``(fused, strengths or None, hidden features or None)`` of ``inputs``
    (``mask``: :func:`_presence_mask`) from a Ray actor pool, in row order."""
    from . import distributed  # first: without Ray, its error names the extra to install

    from ray.exceptions import RayTaskError

    workers, batch_size = _ray_embed_options(args)
    n = len(next(iter(inputs.values())))
    wanted = {"fused": True, "bindings": args.bindings is not None, "hidden_features": args.hidden_features is not None}
    outputs = tuple(name for name, asked in wanted.items() if asked)
    columns = {str(m): x for m, x in inputs.items()}
    # a row a modality lacks is null in its column, as embed_dataset reads an absent modality
    present = {} if mask is None else {str(m): mask[:, m.index] for m in inputs}
    with _ray_cluster(args.ray_address), _original_map_errors(), _quiet_ray_data():
        ds = distributed._arrays_dataset({"row": np.arange(n), **columns}, _rows_per_block(n, workers, batch_size), present)
        try:
            out = distributed.embed_dataset(
                ds, model, {m: m for m in columns}, batch_size=batch_size, num_actors=workers, outputs=outputs,
            )
        except (GraphemeError, TypeError) as err:  # "num_actors: 3 actors ... do not fit": the flag the user typed
            raise renamed(err, _EMBED_ARGUMENT_FLAGS) from None
        try:
            parts = _read_outputs(out, ["row", *outputs])
        except RayTaskError as err:  # the model's own error (inputs it refuses), as without --ray: one line
            cause = err.cause
            if not isinstance(cause, Exception):
                raise
            if cause.args and isinstance(cause.args[0], str):  # without the retry advice Ray Data appends as new lines
                cause.args = (_numbered_by_row_column(cause.args[0].split("\n", 1)[0]), *cause.args[1:])
            if isinstance(cause, (GraphemeError, TypeError)):
                # the dataset's columns are this command's own, one per modality: named as without --ray
                cause = renamed(cause, {f"column {m!r} ({m})": f"inputs[{m!r}]" for m in columns})
            raise cause from None
    order = np.argsort(np.concatenate([p["row"] for p in parts]), kind="stable")
    fused = np.concatenate([p["fused"] for p in parts])[order]
    strengths = np.concatenate([p["bindings"] for p in parts])[order] if args.bindings is not None else None
    hidden = np.concatenate([p["hidden_features"] for p in parts])[order] if args.hidden_features is not None else None
    return fused, strengths, hidden


def _rows_per_block(rows: int, workers: Optional[int], batch_size: int) -> int:
    """Rows per block of ``embed --ray``'s dataset: one block per actor at
    least (``workers``, else one per CPU of the cluster), of a batch at least,
    at most ``distributed.ROWS_PER_BLOCK``. Ray Data hands a block to one
    actor: a file of fewer rows than one such block was embedded by one actor
    while the others idled."""
    import ray

    from .distributed import ROWS_PER_BLOCK

    actors = workers if workers is not None else max(1, int(ray.cluster_resources().get("CPU", 1)))
    return max(1, min(ROWS_PER_BLOCK, max(batch_size, -(-rows // actors))))


def _ray_embed_options(args: argparse.Namespace) -> Tuple[Optional[int], int]:
    """``embed --ray``'s ``(actors or None, rows per batch)``, checked."""
    workers = None if args.workers is None else _positive(args.workers, "--workers")
    batch_size = RAY_EMBED_BATCH_SIZE if args.batch_size is None else _positive(args.batch_size, "--batch-size")
    return workers, batch_size


#: embed_dataset's arguments -> the ``embed --ray`` flags that give them.
_EMBED_ARGUMENT_FLAGS = {"num_actors": "--workers", "batch_size": "--batch-size"}


@contextlib.contextmanager
def _ray_cluster(address: Optional[str]) -> Iterator[None]:
    """Ray for one command: the cluster this process is already connected
    to (refused when ``address`` names another), else ``address``, else a
    new local one (on loopback only), shut down afterwards."""
    import ray

    from ._ray_address import _check_connected_cluster, _check_ray_address

    if ray.is_initialized():
        # a --ray-address naming another cluster was ignored without a word: the work ran on this one
        _check_connected_cluster(address, "--ray-address")
        yield
        return
    _check_ray_address(address, "--ray-address")  # an address nothing answers at: Ray would retry for many minutes
    # A local cluster's workers inherit this process's environment: each said at import the unreadable settings
    # main said once as its one-line warning (under PYTHONWARNINGS=error each failed, a worker's traceback for
    # the command's error). Blank there, read as the core reads them (passed over), said by none. Not another
    # cluster's: its workers have their own environment.
    blanked = blanked_unreadable_settings() if address is None else {}
    with _local_sockets_only() if address is None else contextlib.nullcontext():
        yield from _ray_started(address, blanked)


#: Ray's own setting that keeps every socket of a local cluster on 127.0.0.1.
_LOCAL_CLUSTER_SETTING = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _local_sockets_only() -> Iterator[None]:
    """:data:`_LOCAL_CLUSTER_SETTING` at "0" in the block, unless the user
    set it; taken out again after it: left set, a program that had called
    :func:`main` kept in its environment (and its subprocesses' ones) a
    variable it never set. Shared by calls of :func:`main` at once
    (:func:`_shared_change`): one ending did not take it from under another's
    cluster starting."""
    def make() -> bool:
        if _LOCAL_CLUSTER_SETTING in os.environ:
            return False  # the user's own: kept
        os.environ[_LOCAL_CLUSTER_SETTING] = "0"
        return True

    def undo(made: bool) -> None:
        if made and os.environ.get(_LOCAL_CLUSTER_SETTING) == "0":  # else the program set its own since: left to it
            del os.environ[_LOCAL_CLUSTER_SETTING]

    with _shared_change(_LOCAL_CLUSTER_SETTING, make, undo):
        yield


def _ray_started(address: Optional[str], blanked: Dict[str, str]) -> Iterator[None]:
    """:func:`_ray_cluster`'s ``ray.init`` (its workers' ``blanked``
    settings), the block, and its ``ray.shutdown``: a generator of one step."""
    import ray

    from ._ray_address import RAY_ACCELERATOR_TIP

    # Ray's own INFO/WARNING lines ("Started a local Ray instance", ...) would
    # come before the CLI's one-line error, or alone on Ctrl-C. So would Ray
    # 2.51's FutureWarning at every ray.init ("Tip: In future versions of Ray,
    # Ray will no longer override accelerator visible devices env var ...",
    # two lines on stderr), a tip to Ray's users about GPUs the CLI does not ask for: one filter, taken out
    # after (warnings.catch_warnings() put back the process's filters as it found them, undoing another thread's).
    ray_log_level = logging.getLogger("ray").level  # ray.init's logging_level sets it for the process: see below
    try:
        with _keeping_sigterm_handler(), ignoring_warning(RAY_ACCELERATOR_TIP, FutureWarning):
            try:
                ray.init(address=address, include_dashboard=False if address is None else None, log_to_driver=False,
                         logging_level=logging.ERROR, **({"runtime_env": {"env_vars": blanked}} if blanked else {}))
            except ConnectionError as err:
                raise _no_cluster_found(address, err) from None
        try:
            yield
        finally:
            try:
                ray.shutdown()
            except Exception as err:
                # Raised, it failed a command whose work was done: train --workers had trained, and
                # lost the model unsaved (the save comes after), or it replaced the command's own error.
                _say_warning(f"stopping the local Ray cluster failed ({type(err).__name__}: {err}); its processes may "
                             "still run (`ray status`)", RuntimeWarning)
    finally:
        _put_back_ray_log_level(ray_log_level)


def _put_back_ray_log_level(level: int) -> None:
    """The ``ray`` logger's ``level`` as it was before the command, unless
    the program set its own meanwhile: ``ray.init(logging_level=ERROR)``,
    which keeps Ray's INFO lines off the command's output, set it for the
    whole process and left it so, and a program that had called
    :func:`main` heard none of Ray's warnings afterwards."""
    ray_logger = logging.getLogger("ray")
    if ray_logger.level == logging.ERROR:
        ray_logger.setLevel(level)


@contextlib.contextmanager
def _keeping_sigterm_handler() -> Iterator[None]:
    """The SIGTERM handler there before the block (the CLI's, see
    :func:`_terminating_as_interrupted`, or that of a program calling
    :func:`main`) put back after it: ``ray.init`` replaces it with its own,
    ``sys.exit(15)``, which ended ``train --workers`` and ``embed --ray``
    with exit status 15, no line, after a stack dump from Ray's C++ side
    (its handler, chained before Python's; putting the CLI's back removes
    it too). Ray needs its handler only while it connects, and is shut down
    at exit either way (the CLI's ``ray.shutdown``, or Ray's own at exit).
    A SIGTERM that Ray's handler met while Ray started is handed on to the
    handler it replaced. Where no handler was set (SIG_DFL), Ray's stays:
    an exit that shuts Ray down beats being killed."""
    try:
        before = signal.getsignal(signal.SIGTERM)
    except (AttributeError, ValueError):  # no SIGTERM here
        before = None
    if before is None or before == signal.SIG_DFL:
        yield
        return
    # the program's own alarm (a watchdog of a program calling main), which abseil's replaces: see _disarm_failure_alarm
    timer = signal.getitimer(signal.ITIMER_REAL) if hasattr(signal, "setitimer") else None
    since = time.monotonic()
    try:
        yield
    except SystemExit as stop:
        # Ray's handler (set at the start of ray.init) met a SIGTERM while Ray started
        if stop.code != signal.SIGTERM or signal.getsignal(signal.SIGTERM) == before:
            raise
        signal.signal(signal.SIGTERM, before)
        _disarm_failure_alarm(timer, since)
        if callable(before):
            before(signal.SIGTERM, None)  # the CLI's raises KeyboardInterrupt: it ends as a SIGTERM at any other time
        raise
    finally:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) != before:
            signal.signal(signal.SIGTERM, before)


def _disarm_failure_alarm(timer: Optional[Tuple[float, float]], since: float) -> None:
    """Cancels the alarm Ray's C++ failure handler (abseil's) arms when it
    meets a signal: ``alarm(3)``, with a SIGALRM handler that aborts, in case
    the handler hangs. A SIGTERM while Ray started went through it, so a
    command whose stop (Ray's shutdown, the interpreter's exit) took more than
    3 s, as on a busy machine, ended by SIGABRT (status -6) after saying
    "terminated", instead of with 143. Python's own SIGALRM handler is put
    back in its place (abseil's replaced it below Python), and the program's
    own timer, ``timer`` (``getitimer(ITIMER_REAL)`` at ``since``, before
    Ray started; abseil's alarm replaced it, there is one per process), is
    put back as it was: it was re-armed to ring when abseil's would have, so
    a program calling :func:`main` with a watchdog of a minute, or with a
    SIGALRM handler and no alarm at all, had its handler run 3 s after the
    command returned, and one whose alarm kept SIGALRM's default lost it.
    A one-shot timer due before now is not re-armed: it rang already,
    unless due in the moments since the SIGTERM."""
    if not hasattr(signal, "SIGALRM"):
        return
    own = signal.getsignal(signal.SIGALRM)
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
    else:
        signal.alarm(0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL if own is None else own)
    if timer is None or timer[0] <= 0:
        return
    delay, interval = timer
    left = delay - (time.monotonic() - since)
    if left <= 0 and interval > 0:  # a repeating timer: its next ring, in step with those before
        left = interval - (-left) % interval
    if left > 0:
        signal.setitimer(signal.ITIMER_REAL, left, interval)


def _width(f: "ModalityFile") -> str:
    """How many features each row of the numeric file ``f`` gives: its
    columns, or the values of its rows flattened (an array of 2 x 2 rows)."""
    n = f.values.shape[1]
    if f.row_shape is None:
        return counted(n, "column")
    return f"{counted(n, 'value')} per row (rows of shape {f.row_shape}, flattened)"


def _why_the_width_differs(model: "LearnableMultiModal", modality: Any) -> str:
    """Why a file's width may not be what the checkpoint's encoder takes: a
    modality it never trained on (its encoder has the config's default
    width, whatever the file) reads otherwise as a config mismatch."""
    from .types import Modality

    trained = model.trained_modalities
    if trained and Modality.parse(modality) not in trained:
        names = ", ".join(str(m) for m in trained)
        return f"the checkpoint was never trained on {modality}: it was trained on {names}"
    return "a checkpoint from a different config?"


def _no_cluster_found(address: Optional[str], err: ConnectionError) -> Exception:
    """The error of a cluster to join that Ray did not find (``auto`` with no
    cluster running here): Ray's own message told the user to set an
    ``--address`` flag, which grapheme-mm does not have."""
    env = os.environ.get("RAY_ADDRESS")
    if address in (None, "auto") and env:  # as ray.init, the variable stands in for them
        label, arg, given = "RAY_ADDRESS (environment variable)", "RAY_ADDRESS", env
    elif address is not None:
        label, arg, given = "--ray-address", "--ray-address", address
    else:  # a new local cluster that did not start: Ray's error as it is
        return err
    why = str(err).split(". ")[0].rstrip(".")
    return InvalidValueError(
        f"{label}: Ray found no cluster to join at {given!r} ({why}); expected a running Ray cluster (`ray start "
        "--head` starts one) or its address, or no --ray-address and RAY_ADDRESS to start a local one", arg,
    )


#: Ray Data's loggers that print an actor's error with its traceback; the CLI
#: prints that error itself, as one line (their names are Ray's internals:
#: should they change, Ray's lines come back and nothing else).
_RAY_DATA_ERROR_LOGGERS = ("ray.data.exceptions", "ray.data._internal.execution.streaming_executor_state")


@contextlib.contextmanager
def _original_map_errors() -> Iterator[None]:
    """Ray Data raises an actor's own exception, not a ``UserCodeException``
    that keeps only its text (a traceback, not a line the CLI can print),
    and does not log it: the CLI reports it. The setting is the process's
    (Ray Data's current context): calls of :func:`main` at once share the
    change, and a value the program set meanwhile stays, as for
    :func:`_quiet_ray_data` (a call that began while another ran left it
    True for the program for good, and the first to end turned it off
    under the other, still running)."""
    import ray.data

    context = ray.data.DataContext.get_current()

    def original() -> bool:
        before = context.raise_original_map_exception
        context.raise_original_map_exception = True
        return before

    def put_back(before: bool) -> None:
        if context.raise_original_map_exception is True:  # else the program's own, set while the command ran
            context.raise_original_map_exception = before

    quiet = _BelowError()
    for name in _RAY_DATA_ERROR_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    try:
        with _shared_change("ray.data original map errors", original, put_back):
            yield
    finally:
        for name in _RAY_DATA_ERROR_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's INFO lines (its execution plan, progress logged line by
    line where stdout is not a terminal) off for a command that prints its
    own one-line result; warnings and errors still show. The logger's level
    is the process's: calls of :func:`main` at once share the change
    (:func:`_shared_change`), and a level the program set meanwhile stays
    (each call put back the level it found: another thread's setLevel was
    undone, and a call that began while another ran left WARNING for good)."""
    data_logger = logging.getLogger("ray.data")

    def quiet() -> int:
        before = data_logger.level
        data_logger.setLevel(logging.WARNING)
        return before

    def put_back(before: int) -> None:
        if data_logger.level == logging.WARNING:  # else the program's own, set while the command ran
            data_logger.setLevel(before)

    with _shared_change("ray.data log level", quiet, put_back):
        yield


class _BelowError(logging.Filter):
    """Drops errors (records at ERROR and above)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


def _info(args: argparse.Namespace) -> int:
    models = _load_checkpoint(args.checkpoint)
    print(f"checkpoint: {shown_name(args.checkpoint)}")
    if len(models) == 1:
        print("\n".join(_model_lines(models[0])))
        return 0
    print(f"ensemble of {len(models)} models: embed puts their fused embeddings side by side "
          f"({sum(m.config.embed_dim for m in models)} wide) and averages their binding strengths")
    for j, model in enumerate(models):
        print(f"member {j}:")
        print("\n".join("  " + line for line in _model_lines(model)))
    return 0


def _rows_seen(rows: int, epochs: int) -> str:
    """``info``'s count of the rows a modality's encoder trained on, said as
    what it is, each epoch's (and step's) rows summed: "trained on 120
    rows", of a 40-row file trained 3 epochs, read as the file's size."""
    over = ", summed over epochs" if epochs else ""
    return f", {counted(rows, 'row', grouped=True)} seen in training{over}"


def _model_lines(model: "LearnableMultiModal") -> List[str]:
    """``info``'s lines on one model."""
    from .types import Modality

    lines: List[str] = []
    c = model.config
    lines.append(f"parameters: {model.num_parameters():,}")
    lines.append(f"config: embed_dim={c.embed_dim} hidden_dim={c.hidden_dim} num_heads={c.num_heads} "
                 f"binder={c.binder_kind} learning_rate={c.learning_rate} seed={c.seed}"
                 # only when set: the line of every model trained without it stays as it was
                 + (f" weight_decay={c.weight_decay}" if c.weight_decay else ""))
    trained = model.trained_modalities  # None: not known (a file from before the record); {}: no encoder trained
    stepped = bool(model._core.has_trained())  # a step recorded: then {} is of steps that reached no encoder
    for m in Modality:
        norm = ", standardised" if model.normalization(m) is not None else ""
        feats = c.graph_featurizer(m)
        takes = f"vectors of {c.input_dim(m)}"
        if feats.dim == c.input_dim(m):
            takes += f" or graphs/text via {feats.kind}"
        if trained is not None and stepped:
            norm += _rows_seen(trained[m], model.epochs_trained) if m in trained else ", never trained"
        columns = model.input_columns(m)
        if columns is not None:  # what embed's CSV header must name in this order
            norm += f", columns {_shown_header(columns)}"
        lines.append(f"  {str(m):<15} {takes}{norm}")
    opt = model.optimizer_state()
    # "run": epochs early stopping rolled back are counted (115 run of which the weights are 95's: 190 Adam steps)
    lines.append(f"training: {counted(model.epochs_trained, 'epoch')} run, {counted(opt['step'], 'Adam step')}, "
                 f"{counted(model.num_experiences(), 'experience')} stored")
    average = model.weight_average
    if average is not None:
        lines.append(f"weights: exponential moving average over {counted(average.count, 'epoch')} (decay {average.decay:g})")
    records = [e for e in model.history if isinstance(e.get("loss"), (int, float))]
    if records:
        line = f"loss: first {records[0]['loss']:.4f}, last {records[-1]['loss']:.4f}"
        # not NaN's: it compares false with every number, and min() said "best nan" of a NaN first (a file loads with it)
        compared = [e for e in records if not math.isnan(e["loss"])]
        if compared:
            best = min(compared, key=lambda e: e["loss"])
            line += f", best {best['loss']:.4f} (epoch {best.get('epoch', '?')})"
        lines.append(line)
    if model.history and isinstance(model.history[-1].get("val_total"), (int, float)):
        lines.append(f"validation loss: last {model.history[-1]['val_total']:.4f}")
    return lines


# ------------------------------------------------------------------- helpers
def _refuse_reordered_header(f: Any, models: Sequence[LearnableMultiModal]) -> None:
    """InvalidValueError naming the modality when the header of its CSV file
    ``f`` (or the schema of its ``.parquet`` file) names the columns a model
    of the checkpoint was trained on (``train`` keeps them) in another
    order, or names some of them at other positions beside renamed ones
    (``b,a,x`` of ``a,b,c``): columns are read by position, and the file was
    embedded as other features, without a word. Other names only are read
    by position."""
    names = _what_names_columns(f.path)
    # a Parquet file has no header: its names are in its schema
    none_suits = ("no column order suits every member; a file without column names" if f.path.suffix.lower() == ".parquet"
                  else "no header suits every member; a file without one")
    for j, model in enumerate(models):
        fitted = model.input_columns(f.modality)
        # which member, of an ensemble whose members were trained on other orders (save_ensemble refuses such
        # members now; a file saved before loads): each order was refused by one member or the other, unsaid why
        who = "the checkpoint" if len(models) == 1 else f"member {j} of the ensemble of {len(models)}"
        extra = extra_names(fitted, f.columns)
        if extra is not None:
            assert fitted is not None  # extra_names: both known
            # was "has 7 columns but the checkpoint's encoder takes 6 (a checkpoint from a different config?)",
            # though the header said which column was new
            raise InvalidValueError(
                f"{f.modality}: {names} names the columns {who} was trained on "
                f"({_shown_header(fitted)}) and {_shown_header(extra)} beside them; expected only the columns it was "
                f"trained on, in that order: {_shown_header(fitted)}", str(f.modality),
            )
        if is_reordering(fitted, f.columns):
            clash = next((i for i, other in enumerate(models) if is_reordering(other.input_columns(f.modality), fitted)), None)
            note = "" if clash is None else (
                f" (member {clash} was trained on them in the order {_shown_header(models[clash].input_columns(f.modality))}: "
                f"{none_suits} is read by position)")
            raise InvalidValueError(
                f"{f.modality}: {names} names the columns {who} was trained on in "
                f"another order ({_shown_header(f.columns)}), and columns are read by position; expected them in the "
                f"order it was trained on: {_shown_header(fitted)}{note}", str(f.modality),
            )
        misplaced = misplaced_names(fitted, f.columns)
        if misplaced:
            # some columns renamed, others swapped (b,a,x of a,b,c): read by position as wrongly as a reordering
            moved = shown_misplaced(f.columns, misplaced, "trained on", first=1, show=lambda name: _shown_header([name]))
            raise InvalidValueError(
                f"{f.modality}: {names} ({_shown_header(f.columns)}) names columns {who} "
                f"was trained on at other positions: {moved}; columns are read by position, so each would be read as "
                f"another; expected them in the order it was trained on: {_shown_header(fitted)} (columns renamed "
                "in place are read as the column they replace)", str(f.modality),
            )


def _what_names_columns(path: Path) -> str:
    """Where a modality file's column names are, in a message: a CSV file's
    header, a ``.parquet`` file's schema (it has no header: "the header of
    a.parquet" sent the user looking for a first row)."""
    return f"the {'schema' if path.suffix.lower() == '.parquet' else 'header'} of {shown_name(path)}"


def _shown_header(columns: Sequence[str]) -> str:
    """Column names as a CSV header names them, comma-separated (the first 8
    of more): each as it is, or quoted (Python's repr) when it is empty or
    holds a comma or a character that does not print. A header's quoted
    names may: a newline broke ``info``'s line and the one-line error in
    two, a terminal's escape was printed raw, and "c,d" ran into its
    neighbours."""
    shown = [c if c and c.isprintable() and "," not in c else repr(c) for c in columns[:8]]
    return ",".join(shown) + (",..." if len(columns) > 8 else "")


def _load_checkpoint(path: Path) -> List[LearnableMultiModal]:
    """The models saved at ``path``, the ``checkpoint`` argument (one, or an
    ensemble's members): the loader's errors name it so (``checkpoint:
    'notes.txt' is not ...``), not by the Python argument ``path`` the
    command line has none of."""
    try:
        return load_models(path)
    except (GraphemeError, TypeError, FileNotFoundError, PermissionError) as err:
        raise renamed(err, {"path": "checkpoint"}) from None


def _text_features(featurizer: GraphFeaturizer, file: "ModalityFile") -> np.ndarray:
    """The features of a ``.txt`` file's texts, an error naming the modality
    and the file (and the line of a text), not featurize's ``items``, which
    the user never typed."""
    name = f"{file.modality} ({shown_name(file.path)})"  # as _names_of_files names the model's errors of its rows
    return featurized(featurizer, file.values, name, lambda k: f"{name}, line {k + 1}")


def _read_files(specs: List[str], notes: Optional[List[str]] = None, csv_header: Optional[bool] = None):
    """The ``--modality`` files, read and aligned; ``notes``: they are
    training data; ``csv_header``: ``--csv-header`` (see
    :func:`~grapheme_multimodal.files.read_modality_file`)."""
    from .files import check_aligned, parse_modality_spec, read_modality_file

    parsed, seen = [], set()
    for spec in specs:
        modality, path, key = parse_modality_spec(spec)
        if modality in seen:
            raise InvalidValueError(f"--modality: {modality} is given twice", "--modality")
        seen.add(modality)
        parsed.append((modality, path, key))
    if csv_header is not None and not any(path.suffix.lower() == ".csv" for _, path, _ in parsed):
        # refused before any file is read, as --wl-dim without a .txt file is: it was ignored without a
        # word (a .txt whose first line is a header was read as an event), then only warned of
        flag = "--csv-header" if csv_header else "--no-csv-header"
        raise InvalidValueError(
            f"{flag}: no modality file is .csv, so it has no effect (it applies to .csv files only)", flag
        )
    files = [read_modality_file(modality, path, key, notes, csv_header) for modality, path, key in parsed]
    check_aligned(files)
    for message in [m for f in files for m in f.notes + f.warnings] + _same_values_notes(files):
        _say_warning(message, UserWarning)  # what reading assumed: said before any output
    return files


def _presence_mask(files: Sequence["ModalityFile"]) -> Optional[np.ndarray]:
    """The ``[N, 7]`` mask of the modalities each event holds: False where a
    file's row is missing whole (``ModalityFile.present``), as
    ``MultimodalEmbedder`` masks a view's all-NaN rows; None when every file
    holds every row (the model's calls then take no mask, as before)."""
    from .types import Modality

    if all(f.present is None for f in files):
        return None
    mask = np.zeros((len(files[0]), len(Modality)), dtype=bool)
    for f in files:
        mask[:, f.modality.index] = True if f.present is None else f.present
    return mask


def _refuse_events_with_no_modality(mask: Optional[np.ndarray], files: Sequence["ModalityFile"]) -> None:
    """Refuses, naming the first, an event missing from every file: the model
    would embed each such event as the same vector, the fusion of nothing
    (``MultimodalEmbedder.transform`` and ``embed_dataset`` refuse it too)."""
    if mask is None or mask.any(axis=1).all():
        return
    row = int(np.argmin(mask.any(axis=1)))
    named = ", ".join(f"{f.modality}={shown_name(f.path)}" for f in files)
    raise InvalidValueError(
        f"files: row {row} is missing in every modality file ({named}), so that event holds no modality and has no "
        "embedding of its own (each such event's would be the same vector); expected at least one modality per event: "
        "leave the event out of every file", "files")


def _same_values_notes(files: Sequence["ModalityFile"]) -> List[str]:
    """A note for each two modality files that hold the same values (a name
    given twice, or a copy of one file): a model trained to match a view
    with itself learns nothing of either, and was trained without a word."""
    notes = []
    for i, f in enumerate(files):
        for g in files[i + 1:]:
            same = (f.values == g.values) if f.is_text and g.is_text else (
                not f.is_text and not g.is_text and np.array_equal(f.values, g.values, equal_nan=True))
            if same:
                notes.append(
                    f"{f.modality} ({shown_name(f.path)}) and {g.modality} ({shown_name(g.path)}) hold the same "
                    "values, one view given as two modalities (a file named twice?); each modality's file is "
                    "expected to hold its own view of the events")
    return notes


def _input_files(specs: List[str]) -> Dict[str, Path]:
    """``{"the visual input file": path, ...}`` of the ``--modality`` specs."""
    from .files import parse_modality_spec

    return {f"the {modality} input file": path for modality, path, _ in map(parse_modality_spec, specs)}


#: What a file of each suffix holds, for outputs whose name says another
#: format than the one written: ``embed -o out.csv`` wrote NumPy's binary
#: format into out.csv, and said it had written it there.
_OTHER_FORMATS = {
    ".npy": "a NumPy array (.npy)", ".npz": "NumPy arrays (.npz)", ".csv": "comma-separated text (.csv)",
    ".tsv": "tab-separated text (.tsv)", ".txt": "text (.txt)", ".json": "JSON (.json)",
    ".safetensors": "a checkpoint (.safetensors)", ".parquet": "a Parquet table (.parquet)",
    ".pkl": "a pickle (.pkl)", ".pickle": "a pickle (.pickle)", ".pt": "a PyTorch file (.pt)", ".pth": "a PyTorch file (.pth)",
    ".h5": "HDF5 (.h5)", ".hdf5": "HDF5 (.hdf5)",
}


def _check_outputs(
    outputs: Dict[str, Optional[Path]], inputs: Dict[str, Path], overwrite: bool,
    writes: Union[None, str, Dict[str, str]] = None,
) -> None:
    """Refuses, before any work, an output that cannot be written (a missing
    directory, a directory) or that names an input or another output: found
    only when it is written, after the work, it would lose the work, the
    user's data or the first output. A file that exists is refused too unless
    ``overwrite``: the defaults (model.safetensors, runs/demo/...) would
    otherwise replace an earlier run's checkpoint without a word. With
    ``writes`` (the suffix of the format written, or ``{flag: suffix}`` for
    the outputs it is known of), so is a name whose suffix is another
    format's."""
    from .io import check_write_target, file_key

    given = {flag: path for flag, path in outputs.items() if path is not None}
    written: Dict[Any, str] = {}  # by file_key: one file by two names (a link, a folder bind-mounted elsewhere) is one
    for flag, path in given.items():
        _check_can_create_in(check_write_target(path, flag, mounts=True), flag)
        for what, source in inputs.items():
            if _same_file(path, source):
                raise InvalidValueError(f"{flag}: {shown_name(path)} is {what}; expected a new file name (it would be overwritten)", flag)
        other = written.setdefault(file_key(path), flag)
        if other != flag:
            raise InvalidValueError(f"{flag}: {shown_name(path)} is also the file of {other}; expected a file of its own", flag)
        if not overwrite and path.exists():
            raise FileExistsError(f"{flag}: {shown_name(path)} already exists; pass --overwrite to replace it, or choose another name")
        _check_format(flag, path, writes.get(flag) if isinstance(writes, dict) else writes)


def _check_format(flag: str, path: Path, writes: Optional[str]) -> None:
    """Refuses an output whose suffix names another format than ``writes``
    (the suffix of the format the option writes; ``None``: not checked)."""
    suffix = path.suffix.lower()
    if writes is not None and suffix != writes and suffix in _OTHER_FORMATS:
        raise InvalidValueError(
            f"{flag}: {shown_name(path)} is named as {_OTHER_FORMATS[suffix]}, but this option writes "
            f"{_OTHER_FORMATS[writes]}; expected a name ending in {writes}", flag,
        )


def _check_can_create_in(directory: Path, flag: str) -> None:
    """Refuses a folder no file can be created in (read-only, another
    user's, a read-only filesystem): the save found it only after the work."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=directory):  # on Linux a file without a name (O_TMPFILE): nothing to see
            pass
    except OSError as exc:
        raise type(exc)(f"{flag}: no file can be created in the folder {str(directory)!r} ({exc.strerror or exc})") from None


def _keeping_new(outputs: Dict[str, Optional[Path]], overwrite: bool) -> "contextlib.AbstractContextManager[None]":
    """Without ``overwrite``, the outputs :func:`_check_outputs` found free
    are written only while they still are: a file created there during the
    run (another program, a second run with the same output) is kept and
    the write refused, where it was replaced without a word. Either way a
    write that fails (a full disk) is named by its flag."""
    from .io import keeping_existing, naming_outputs

    return naming_outputs(outputs) if overwrite else keeping_existing(outputs)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _objective_weights(text: Optional[str], known: Sequence[str]) -> Optional[Dict[str, float]]:
    if text is None:
        return None
    weights = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if name not in known:
            raise InvalidValueError(f"--objectives: unknown objective {name!r}; expected some of {', '.join(known)}", "--objectives")
        if name in weights:  # else the last of its weights, without a word
            raise InvalidValueError(
                f"--objectives: {name!r} is given more than once in {text!r}; expected each objective once "
                "(NAME=NUMBER, comma-separated)", "--objectives",
            )
        try:
            weights[name] = unsigned_zero(_plain_number(value, float)) if sep else 1.0
        except ValueError:
            raise InvalidValueError(f"--objectives: {item!r} is not NAME=NUMBER", "--objectives") from None
        misread = _beyond_float64(value.strip(" "), weights[name]) if sep else ""
        if misread:  # else "--objectives['contrastive']: ... got inf", a value never typed
            raise InvalidValueError(f"--objectives: {item!r} holds a number beyond float64's range ({misread}); expected "
                                    "NAME=NUMBER with a finite number >= 0", "--objectives")
    return weights


def _widths(text: str, flag: str) -> Tuple[int, ...]:
    """``"256,128"`` → ``(256, 128)``; empty → no layers."""
    if not text.strip():
        return ()
    try:
        widths = tuple(_plain_number(item, int) for item in text.split(","))
    except ValueError:
        raise InvalidValueError(f"{flag}: expected comma-separated layer widths such as 256,128, got {text!r}", flag) from None
    for w in widths:
        _positive(w, flag)
    return widths


def _seed(value: int) -> int:
    """``--seed``, checked before any work (the model's own check comes after the data is read)."""
    return as_seed(value, "--seed")


def _positive(value: int, flag: str) -> int:
    """An int flag's value (:func:`_int`) that must be >= 1. Said as
    ``--members`` and the library's own checks say it ("a positive int"):
    "a positive number" read as if 0.5 were taken."""
    if value <= 0:
        raise InvalidValueError(f"{flag}: expected a positive int, got {value}", flag)
    return value


def _ema_decay(value: float) -> Optional[float]:
    """``--ema-decay`` as fit's ``ema_decay`` (0: ``None``, no averaging)."""
    if not 0 <= value < 1:
        raise InvalidValueError(f"--ema-decay: expected a decay in [0, 1) (0: off), got {value}", "--ema-decay")
    return value or None


def _neighborhood_temperature(value: float) -> Optional[float]:
    """``--neighborhood-temperature`` as the settings' ``neighborhood_temperature``
    (0: ``None``, the contrastive objective's). Checked here: the config's
    refusal offered "None for the contrastive objective's", a value the flag
    cannot take (its way to say it is 0); as the config checks it (float32
    too: 1e-46 and 1e39 were refused offering None)."""
    if value == 0:
        return None
    return as_finite_float(value, "--neighborhood-temperature", lambda v: v > 0,
                           "a finite positive number, or 0 for the contrastive objective's", float32=True)


def _non_negative(value: int, flag: str) -> int:
    """An int flag's value (:func:`_int`) that must be >= 0, said as ``--epochs``' ("an int >= 0")."""
    if value < 0:
        raise InvalidValueError(f"{flag}: expected an int >= 0, got {value}", flag)
    return value


def _check_finite_output(values: np.ndarray, what: str, checkpoint: Path) -> None:
    """Refuses to write NaN/inf (a checkpoint whose standardisation or weights
    overflow float32 on these inputs) instead of handing them on."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise NonFiniteError(
            f"{checkpoint}: its model gives non-finite {what} for {int(bad.sum())} of {counted(len(values), 'row')} "
            f"(first: row {int(np.flatnonzero(bad)[0])}); its standardisation or weights overflow float32 "
            "on these inputs. Nothing was written", "checkpoint",
        )


def _save_npy(path: Path, array: np.ndarray) -> None:
    _save_npys([(path, array)])


def _save_npys(outputs: Sequence[Tuple[Path, Optional[np.ndarray]]]) -> None:
    """Each ``(path, array)`` (``None`` arrays skipped) as an ``.npy`` file,
    all or none: every file is written before any replaces its target
    (:func:`~grapheme_multimodal.io.atomic_write_all`)."""
    from .io import atomic_write_all

    # into the file itself: through a BytesIO the array was copied twice (its bytes, then getvalue)
    atomic_write_all([(path, functools.partial(_write_npy, array=array)) for path, array in outputs if array is not None])


def _write_npy(f: Any, array: np.ndarray) -> None:
    np.save(_WriteOnly(f), array)


class _WriteOnly:
    """A file's ``write`` alone. np.save gives a real file object to
    ``ndarray.tofile``, whose C stdio buffer dropped a failed write (a full
    disk, ``EFBIG``): the truncated file replaced the old output and the
    command succeeded. Through ``write`` numpy hands over the array in
    chunks of 16 MiB, and a failed write raises."""

    def __init__(self, f: Any) -> None:
        self.write = f.write


if __name__ == "__main__":
    sys.exit(main())
