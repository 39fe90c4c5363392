"""Defects found reviewing the changes of s60 (ee464ba..main)."""

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
