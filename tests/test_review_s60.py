"""Defects found reviewing the changes of s60 (ee464ba..main)."""

import sys
import threading

import pytest

from grapheme_multimodal.io import atomic_write_bytes, writing_together


def test_writing_together_still_decorates_a_function_with_a_block_per_call(tmp_path):
    # contextlib's writing_together was a ContextDecorator: as a class, @writing_together() was "not callable"
    seen_inside = []

    @writing_together()
    def save(name: str) -> None:
        atomic_write_bytes(tmp_path / name, b"x")
        seen_inside.append((tmp_path / name).exists())

    save("a")
    save("b")
    assert seen_inside == [False, False]  # staged in the block while the call ran
    assert (tmp_path / "a").read_bytes() == b"x" and (tmp_path / "b").read_bytes() == b"x"


def test_writing_together_decorated_function_in_two_threads_keeps_each_block(tmp_path):
    # one decorator instance, two calls at once: each gets a block of its own, both written at their ends
    both_inside = threading.Barrier(2)

    @writing_together()
    def save(name: str) -> None:
        atomic_write_bytes(tmp_path / name, b"x")
        both_inside.wait(timeout=10)
        assert not (tmp_path / name).exists()

    threads = [threading.Thread(target=save, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (tmp_path / "a").exists() and (tmp_path / "b").exists()


def test_writing_together_instance_entered_twice_is_refused_not_written_early(tmp_path):
    # the inner with's end committed the outer block's files (and closed it) while the outer block was open
    block = writing_together()
    with pytest.raises(RuntimeError, match="open already"):
        with block:
            atomic_write_bytes(tmp_path / "a", b"x")
            with block:
                pass
    assert not (tmp_path / "a").exists()  # the block ended by the error: its staged file discarded
    with writing_together():  # and the thread's next block works
        atomic_write_bytes(tmp_path / "b", b"x")
    assert (tmp_path / "b").exists()


def _interrupting_at(function, line_text: str):
    """A tracer raising KeyboardInterrupt once at the first line of
    ``function`` that reads ``line_text``: where Python 3.9 and 3.10 raise
    a Ctrl-C that lands as the line before ends (they check for signals
    after most instructions; 3.11+ at calls only)."""
    import inspect

    code = function.__code__
    lines, first = inspect.getsourcelines(function)
    target = first + next(i for i, text in enumerate(lines) if line_text in text)
    fired = []

    def local(frame, event, arg):
        if event == "line" and frame.f_lineno == target and not fired:
            fired.append(True)
            raise KeyboardInterrupt
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code is code else None

    return tracer, fired


@pytest.mark.parametrize("line_text", ["if together is None", "_TOGETHER.set(None)"])
def test_ctrl_c_after_exit_took_the_block_never_swallows_a_save_in_its_handler(tmp_path, line_text):
    # __exit__ had taken self._together (its first line) when the Ctrl-C landed: _open_block looked for the block
    # on self alone, found None there, and a save in the interrupt's handler was staged into the dead block,
    # reported written, and removed when the interrupt was dropped
    from grapheme_multimodal import io

    tracer, fired = _interrupting_at(io.writing_together.__exit__, line_text)
    _assert_a_save_in_the_handler_is_written(tmp_path, tracer, fired)


def _assert_a_save_in_the_handler_is_written(tmp_path, tracer, fired) -> None:
    """A ``writing_together`` block run under ``tracer``, which raises a
    KeyboardInterrupt once (noting it in ``fired``): a save in the
    interrupt's handler is written, and no block is left open."""
    from grapheme_multimodal import io

    rescue = tmp_path / "rescue.bin"
    previous = sys.gettrace()
    try:
        with pytest.raises(KeyboardInterrupt):
            sys.settrace(tracer)
            try:
                with io.writing_together():
                    io.atomic_write_bytes(tmp_path / "inside.bin", b"x")
            except KeyboardInterrupt:
                sys.settrace(previous)
                io.atomic_write_bytes(rescue, b"rescue")  # the program's own handler saves what it can
                assert rescue.read_bytes() == b"rescue"
                assert io._TOGETHER.get() is None
                raise
    finally:
        sys.settrace(previous)
        io._TOGETHER.set(None)
    assert fired == [True]
    assert rescue.read_bytes() == b"rescue"


def test_ctrl_c_before_call_writing_together_resets_its_block_leaves_no_block_open(tmp_path):
    # a Ctrl-C past call_writing_together's try, before its finally's reset, left the block in the context:
    # every later save of the thread (the CLI's, a notebook's) was staged into it, reported written, never written
    import sys

    from grapheme_multimodal import io

    tracer, fired = _interrupting_at(io.call_writing_together, "_TOGETHER.set(None)")
    previous = sys.gettrace()
    try:
        with pytest.raises(KeyboardInterrupt):
            sys.settrace(tracer)
            io.call_writing_together(lambda: io.atomic_write_bytes(tmp_path / "inside.bin", b"x"))
        sys.settrace(previous)
        left_open = io._TOGETHER.get() is not None
        io.atomic_write_bytes(tmp_path / "later.bin", b"later")
    finally:
        sys.settrace(previous)
        io._TOGETHER.set(None)
    assert fired == [True]
    assert not left_open
    assert (tmp_path / "later.bin").read_bytes() == b"later"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["later.bin"]  # no temporary file left


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="3.11+ checks for signals at calls and backward jumps only: "
                    "no Ctrl-C lands between __enter__'s last store and its return (nor can a tracer stand for one)")
def test_ctrl_c_as_writing_together_enter_returns_never_swallows_a_save_in_its_handler(tmp_path):
    # Python 3.9/3.10 raise a Ctrl-C after __enter__'s try ended (POP_BLOCK), before it returned: the block was
    # open, its __exit__ never to run, and a save in the interrupt's handler was staged into it and then removed
    from grapheme_multimodal import io

    code = io.writing_together.__enter__.__code__
    fired = []

    def local(frame, event, arg):
        if event == "return" and not fired and frame.f_locals.get("together") is not None:
            fired.append(True)
            frame = None  # noqa: F841 - the interrupt's traceback holds this frame: not the block's with it
            raise KeyboardInterrupt
        return local

    _assert_a_save_in_the_handler_is_written(tmp_path, lambda frame, event, arg: local if frame.f_code is code else None,
                                             fired)
