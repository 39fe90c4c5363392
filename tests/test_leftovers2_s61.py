"""Defects left by the auditors of s61, second round: each test says what a
user saw before the fix."""

from __future__ import annotations

import numpy as np
import pytest

import grapheme_multimodal as gm
from grapheme_multimodal.cli import main

from test_trust_cli import one_line_error


@pytest.fixture
def train_argv(tmp_path) -> list:
    """``train`` on a small file, writing into ``tmp_path`` (never reached by the refusals below)."""
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(24, 5)).astype(np.float32))
    return ["train", "-m", f"visual={tmp_path / 'a.npy'}", "-o", str(tmp_path / "m.safetensors"), "--epochs", "1",
            "--no-progress"]


# ------------------------------------------------------------------ 1. range errors show what was typed
@pytest.mark.parametrize("flags, shown", [
    (["--ema-decay", "0.99999999999999999"], "--ema-decay: expected a decay in [0, 1) (0: off), got 0.99999999999999999, "
                                             "which is 1.0 as a float"),
    (["--modality-dropout=0.99999999999999999"], "--modality-dropout: expected a number in [0, 1), got "
                                                 "0.99999999999999999, which is 1.0 as a float"),
    (["--validation-split", "1.00000000000000001"], "got 1.00000000000000001, which is 1.0 as a float"),
    (["--encoder-input-dropout", "0.99999999999999999"], "got 0.99999999999999999, which is 1.0 as a float"),
    # a message that goes on with its own "which is": the float read in brackets
    (["--lr", "1000000000000000000000000000000000000000000001"],
     "got 1000000000000000000000000000000000000000000001 (1e+45 as a float), which is too large for float32"),
    # the last of a flag given twice, as argparse takes it
    (["--ema-decay", "2", "--ema-decay", "1.00000000000000000001"], "got 1.00000000000000000001, which is 1.0 as a float"),
    # a weight of --objectives, named --objectives['NAME'] by its checks
    (["--objectives", "binding=1, contrastive=1000000000000000000000000000000000000001"],
     "--objectives['contrastive']: expected a finite number >= 0 that float32 holds, got "
     "1000000000000000000000000000000000000001, which is 1e+39 as a float"),
    (["--objectives", "contrastive=2e39", "--objectives=contrastive=1.00000000000000000001e-40"],
     "--objectives['contrastive']: got 1.00000000000000000001e-40, which is 1e-40 as a float, a subnormal float32"),
])
def test_a_range_error_shows_the_number_typed_beside_the_float_read(train_argv, capsys, flags, shown) -> None:
    """`--ema-decay 0.99999999999999999` (in [0, 1) as typed) was refused as
    "got 1.0", a value never typed; now as the Python API says it."""
    one_line_error(capsys, train_argv + flags, shown)


@pytest.mark.parametrize("flags, shown", [
    (["--ema-decay", "2"], "got 2.0"),  # the same number: as before
    (["--lr", "-0.000001"], "got -1e-06"),
    (["--ema-decay", "0.99999999999999999", "--ema-decay", "2"], "got 2.0"),
    (["--objectives", "contrastive=1.00000000000000000001e-40", "--objectives", "contrastive=1e-40"], "got 1e-40"),
])
def test_a_range_error_of_a_number_the_float_holds_is_unchanged(train_argv, capsys, flags, shown) -> None:
    line = one_line_error(capsys, train_argv + flags, shown)
    assert "as a float" not in line


@pytest.mark.parametrize("value, shown", [
    ("1e-46", "got 1e-46, which is 0 in float32"),
    ("1e39", "got 1e+39, which is too large for float32"),
])
def test_neighborhood_temperature_out_of_float32_offers_the_flag_s_0_not_none(train_argv, capsys, value, shown) -> None:
    """`--neighborhood-temperature 1e-46` passed the flag's own check and was
    refused by the settings' as "expected ..., or None for the contrastive
    objective's": None is no value the flag takes (0 is)."""
    line = one_line_error(capsys, train_argv + ["--neighborhood-temperature", value],
                          "--neighborhood-temperature: expected a finite positive number, or 0 for the contrastive "
                          "objective's", shown)
    assert "None" not in line


# ------------------------------------------------------------------ 2. a thread setting the library cannot read
ENVIRONMENT_SETTINGS = ("GRAPHEME_MM_NUM_THREADS", "RAYON_NUM_THREADS", "GRAPHEME_MM_PORTABLE", "GRAPHEME_MM_NO_AVX512")


@pytest.fixture
def no_settings(monkeypatch):
    for name in ENVIRONMENT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch

def _run_python(code: list, env: dict) -> "subprocess.CompletedProcess[str]":
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if k not in ENVIRONMENT_SETTINGS}, **env}
    return subprocess.run([sys.executable, *code], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("start", [
    ["-m", "grapheme_multimodal"],
    # the console script's way: it imports the cli module, then runs main (its argv[0] is its path, grapheme-mm;
    # a program of another name that imports the cli module hears the warning at import: test_leftovers2_s62.py)
    ["-c", "import sys; sys.argv[0] = 'bin/grapheme-mm'; from grapheme_multimodal.cli import main; sys.exit(main())"],
])
def test_the_command_line_says_an_unreadable_thread_setting_as_its_one_line_warning(start) -> None:
    """`GRAPHEME_MM_NUM_THREADS=abc grapheme-mm ...` printed Python's two-line
    warning at import (a line of threads.py), and under PYTHONWARNINGS=error
    a traceback (exit status 1) before the command began; an unreadable
    RAYON_NUM_THREADS, read in its place, was passed over without a word.
    Now each is the command line's one-line warning, as its other warnings
    are (under -W error too), and the command runs on."""
    done = _run_python([*start, "info", "no-such.safetensors"],
                       {"GRAPHEME_MM_NUM_THREADS": "abc", "RAYON_NUM_THREADS": "x1", "PYTHONWARNINGS": "error"})
    assert done.stderr.splitlines() == [
        "grapheme-mm: warning: GRAPHEME_MM_NUM_THREADS='abc' is not a positive int and is ignored; expected e.g. "
        "GRAPHEME_MM_NUM_THREADS=4 (RAYON_NUM_THREADS, else the number of CPUs, applies instead)",
        "grapheme-mm: warning: RAYON_NUM_THREADS='x1' is not an int >= 0 and is ignored; expected e.g. "
        "RAYON_NUM_THREADS=4 (0: the number of CPUs, which applies instead)",
        "grapheme-mm: error: checkpoint: no file at 'no-such.safetensors'",
    ], done.stderr
    assert done.returncode == 2


@pytest.mark.parametrize("env, said", [
    ({"RAYON_NUM_THREADS": "abc"}, ["RAYON_NUM_THREADS='abc' is not an int >= 0"]),
    ({"RAYON_NUM_THREADS": "-1"}, ["RAYON_NUM_THREADS='-1' is not an int >= 0"]),
    # a count, but past what the library reads: said so, not "not an int"
    ({"RAYON_NUM_THREADS": str(2**64)}, [f"RAYON_NUM_THREADS='{2**64}' is a count beyond 2**64 - 1 (the largest the library reads)"]),
    ({"RAYON_NUM_THREADS": "0"}, []),  # Rayon's own way to say "the CPUs", as the library reads it
    ({"RAYON_NUM_THREADS": " +3 "}, []),
    # a character str.strip() takes off but Rust's trim keeps: the core passes over it, and it was said to be read
    ({"GRAPHEME_MM_NUM_THREADS": "\x1c3"}, ["GRAPHEME_MM_NUM_THREADS='\\x1c3' is not a positive int"]),
    ({"GRAPHEME_MM_NUM_THREADS": "\u30003\u2029"}, []),  # Unicode's spaces, which both take off
    ({"RAYON_NUM_THREADS": ""}, []),
    # the library reads GRAPHEME_MM_NUM_THREADS, not RAYON_NUM_THREADS: nothing of the latter to say
    ({"GRAPHEME_MM_NUM_THREADS": "2", "RAYON_NUM_THREADS": "abc"}, []),
    ({"GRAPHEME_MM_NUM_THREADS": "0", "RAYON_NUM_THREADS": "abc"},
     ["GRAPHEME_MM_NUM_THREADS='0' is not a positive int", "RAYON_NUM_THREADS='abc' is not an int >= 0"]),
])
def test_an_unreadable_rayon_num_threads_is_named_where_the_library_reads_it(no_settings, env, said) -> None:
    from grapheme_multimodal._environment import unreadable_settings

    for name, value in env.items():
        no_settings.setenv(name, value)
    messages = unreadable_settings()
    assert len(messages) == len(said) and all(m.startswith(s) for m, s in zip(messages, said)), messages


def test_importing_the_library_still_warns_of_an_unreadable_rayon_num_threads(no_settings) -> None:
    """A program's import is told as before, by Python's RuntimeWarning (the
    command line's is its one-line warning): the module's import run again."""
    import importlib

    from grapheme_multimodal import _environment

    no_settings.setenv("RAYON_NUM_THREADS", "abc")
    with pytest.warns(RuntimeWarning, match="RAYON_NUM_THREADS='abc' is not an int >= 0"):
        importlib.reload(_environment)


@pytest.mark.parametrize("name", ["GRAPHEME_MM_PORTABLE", "GRAPHEME_MM_NO_AVX512"])
@pytest.mark.parametrize("value, warns", [("y", True), ("2", True), ("enable", True), ("1", False), (" On ", False),
                                          ("YES", False), ("0", False), ("off", False), ("", False)])
def test_a_kernel_setting_the_core_cannot_read_is_named(no_settings, name, value, warns) -> None:
    """`GRAPHEME_MM_PORTABLE=y` (or 2, enable) was read as off without a
    word: the AVX2 kernels ran, whose results differ from the portable ones
    by float rounding. Now named, as an unreadable thread count is (at
    import, or in grapheme-mm's one-line warning)."""
    from grapheme_multimodal._environment import unreadable_settings

    no_settings.setenv(name, value)
    said = unreadable_settings()
    assert len(said) == warns, said
    if warns:
        assert said[0].startswith(f"{name}={value!r} is neither on (1, true, yes, on) nor off (0, false, no, off) and "
                                  "is ignored as off: ") and said[0].endswith(f"; expected e.g. {name}=1"), said


# ------------------------------------------------------------------ 3. objective weights too small to train
SUBNORMAL = r"got 1e-\d+, a subnormal float32 \(below 1.18e-38, the smallest normal one\)"


@pytest.mark.parametrize("weight", [1e-45, 1e-40, np.float32(1e-39), 1.1754942e-38])
def test_a_subnormal_objective_weight_is_refused_as_a_subnormal_grad_clip_is(weight) -> None:
    """`objectives={"contrastive": 1e-45}` (a typo for 1e-4?) was taken by
    fit, train_step, TrainingSettings and `train --objectives`, while
    grad_clip=1e-45 was refused: weighed by it, the objective's loss and
    gradients are 0 or subnormal in float32 and train nothing. Now refused
    naming the weight, and the model is left as it was."""
    from test_trust_training_second import data, small, snapshot

    from grapheme_multimodal.uci import TrainingSettings

    shown = SUBNORMAL.replace(r"1e-\d+", r"1\.?\d*e-\d+")
    model = small()
    before = snapshot(model)
    with pytest.raises(gm.InvalidValueError, match=rf"^objectives\['contrastive'\]: {shown}"):
        model.fit(data(), epochs=1, batch_size=8, progress=False, objectives={"contrastive": weight, "binding": 1.0})
    with pytest.raises(gm.InvalidValueError, match=rf"^weights\['contrastive'\]: {shown}"):
        model.train_step(data(), weights={"contrastive": weight})
    assert snapshot(model) == before
    with pytest.raises(gm.InvalidValueError, match=rf"^weights\['contrastive'\]: {shown}.*expected 0 to leave the "
                                                   r"objective out, or a weight >= 1.18e-38"):
        TrainingSettings(weights={"contrastive": weight})


def test_the_command_line_refuses_a_subnormal_objective_weight(train_argv, capsys) -> None:
    one_line_error(capsys, train_argv + ["--objectives", "contrastive=1e-40"],
                   "--objectives['contrastive']: got 1e-40, a subnormal float32")


@pytest.mark.parametrize("weight", [1.1754944e-38, 1e-30, 0.0])
def test_small_normal_weights_and_0_are_taken_as_before(weight) -> None:
    from grapheme_multimodal.uci import TrainingSettings

    assert TrainingSettings(weights={"contrastive": weight, "binding": 1.0}).weights["contrastive"] == weight


# ------------------------------------------------------------------ 4. embed --ray's quiet Ray Data logger
def logger_at(name: str, level: int):
    """The logger ``name`` at ``level``, its own level put back after the test."""
    import logging

    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    yield logger
    logger.setLevel(before)


@pytest.fixture
def ray_data_logger():
    import logging

    yield from logger_at("ray.data", logging.NOTSET)


@pytest.fixture
def ray_logger():
    import logging

    yield from logger_at("ray", logging.INFO)  # as Ray's import sets it


def test_a_level_the_program_sets_while_embed_runs_stays(ray_data_logger) -> None:
    """`embed --ray` run from a thread put back the `ray.data` level it had
    found when it ended, undoing the DEBUG another thread set meanwhile.
    (No Ray needed: the block changes the logger alone.)"""
    import logging

    from grapheme_multimodal import cli

    with cli._quiet_ray_data():
        assert ray_data_logger.level == logging.WARNING
        ray_data_logger.setLevel(logging.DEBUG)  # the program's, as another thread of it would
    assert ray_data_logger.level == logging.DEBUG


def test_two_embeds_at_once_put_the_level_back_as_found(ray_data_logger) -> None:
    """Two calls whose blocks overlapped (one in, the other in, the first
    out, the second out): the second had found the first's WARNING and put
    it back, so Ray Data's INFO lines stayed off for good; and the first's
    end turned them on under the second, still running."""
    import logging

    from grapheme_multimodal import cli

    first, second = cli._quiet_ray_data(), cli._quiet_ray_data()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert ray_data_logger.level == logging.WARNING  # the second still runs
    second.__exit__(None, None, None)
    assert ray_data_logger.level == logging.NOTSET


@pytest.fixture
def ray_data_context(monkeypatch):
    """Ray Data's current context, faked (``import ray.data`` finds it): the
    setting the block changes, without importing Ray."""
    import sys
    import types

    context = types.SimpleNamespace(raise_original_map_exception=False)
    data = types.ModuleType("ray.data")
    data.DataContext = types.SimpleNamespace(get_current=lambda: context)
    ray = types.ModuleType("ray")
    ray.data = data
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.data", data)
    return context


def test_embeds_at_once_share_ray_data_s_original_errors_setting(ray_data_context) -> None:
    """`_original_map_errors` (embed --ray) put back the value it had found:
    a call that began while another ran found the other's True and left it
    for the program for good, and the first to end turned it off under the
    second (its actors' errors then a traceback's text, not a line)."""
    from grapheme_multimodal import cli

    first, second = cli._original_map_errors(), cli._original_map_errors()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert ray_data_context.raise_original_map_exception is True  # the second still runs
    second.__exit__(None, None, None)
    assert ray_data_context.raise_original_map_exception is False
    with cli._original_map_errors():
        ray_data_context.raise_original_map_exception = "the program's"
    assert ray_data_context.raise_original_map_exception == "the program's"


# ------------------------------------------------------------------ 5. Graph.to_networkx beyond memory
def test_to_networkx_of_a_graph_beyond_memory_is_refused_before_building(monkeypatch) -> None:
    """`Graph.from_sequence` of 100M values made a graph the core holds in a
    few GB, and `to_networkx()` of it built Python dicts until the OOM
    killer came. Now refused first, naming the graph's size (here against a
    budget of 1 MB: a graph of 5,000 nodes takes more in networkx)."""
    pytest.importorskip("networkx")
    from grapheme_multimodal import _validation

    monkeypatch.setattr(_validation, "memory_budget", lambda: 1_000_000)
    big = gm.Graph.from_sequence(np.arange(5_000.0))
    with pytest.raises(gm.TooLargeError, match=r"^graph: to_networkx of its 5,000 nodes and 4,999 edges takes at least "
                                               r"[\d,]+ bytes of Python objects, more than this machine's memory "
                                               r"\(1,000,000 bytes\); expected a smaller graph"):
        big.to_networkx()
    small = gm.Graph.from_sequence(np.arange(100.0))
    assert small.to_networkx().number_of_nodes() == 100


def test_the_ray_log_level_ray_init_sets_is_put_back_after_the_command(monkeypatch, ray_logger) -> None:
    """`ray.init(logging_level=ERROR)`, with which `train --workers` and
    `embed --ray` keep Ray's INFO lines off their output, sets the `ray`
    logger's level for the whole process, and it stayed ERROR after the
    command: a program that had called main heard none of Ray's warnings.
    (Ray faked: its init sets the level as Ray's own does.)"""
    import logging
    import sys
    import types

    from grapheme_multimodal import _ray_address, cli

    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: False
    ray.init = lambda **options: ray_logger.setLevel(options["logging_level"])
    ray.shutdown = lambda: None
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setattr(_ray_address, "_check_ray_address", lambda address, arg: None)
    with cli._ray_cluster(None):
        assert ray_logger.level == logging.ERROR
    assert ray_logger.level == logging.INFO
    with cli._ray_cluster(None):
        ray_logger.setLevel(logging.DEBUG)  # the program's own, set while the command ran: it stays
    assert ray_logger.level == logging.DEBUG
