"""A Ray cluster address nothing answers at (``grapheme-mm --ray-address``,
``RAY_ADDRESS`` for the CLI and for ``grapheme_multimodal.distributed``) is
refused within seconds, in one line naming where the address came from, what
it was and what was expected. Before, ``ray.init`` retried its connection for
many minutes (about 40 s per attempt, 20 attempts), printing warnings.

The end-to-end cases run in a subprocess: this test session's own Ray (other
tests start it) would be joined instead of the address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import grapheme_multimodal as gm

pytest.importorskip("ray", reason='needs Ray: pip install -e ".[test]"')
from grapheme_multimodal._ray_address import CONNECT_TIMEOUT_S, _check_ray_address  # noqa: E402

#: A refusal comes within CONNECT_TIMEOUT_S of the check; the rest is importing Ray and the package.
PROMPT_S = 45


def free_port() -> int:
    """A port nothing listens on (bound for a moment, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("address")
    rng = np.random.default_rng(0)
    np.save(d / "a.npy", rng.normal(size=(16, 6)).astype(np.float32))
    model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={"visual": 6}, seed=0)
    model.save(d / "m.safetensors")
    return d


def run_python(args, env_extra=None) -> "tuple[subprocess.CompletedProcess, float]":
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("RAY_ADDRESS", None)
    env.update(env_extra or {})
    start = time.monotonic()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=env)
    return done, time.monotonic() - start


def assert_prompt_one_line(done, seconds, *words, prefix="grapheme-mm: error: ") -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(prefix), done.stderr[-3000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert seconds < PROMPT_S, f"took {seconds:.1f} s"
    return lines[0]


@pytest.mark.timeout(300)
def test_cli_refuses_an_address_nothing_answers_at_within_seconds(files) -> None:
    address = f"127.0.0.1:{free_port()}"
    data = ["-m", f"visual={files / 'a.npy'}"]
    embed = ["-m", "grapheme_multimodal", "embed", str(files / "m.safetensors"), *data, "--ray", "-o", str(files / "never.npy")]
    train = ["-m", "grapheme_multimodal", "train", *data, "--workers", "1", "--epochs", "1", "--no-progress",
             "-o", str(files / "never.safetensors")]
    for argv in (embed + ["--ray-address", address], train + ["--ray-address", address]):
        done, seconds = run_python(argv)
        assert_prompt_one_line(done, seconds, f"--ray-address: nothing answers at {address}", "expected the address of a running Ray cluster")
    # without --ray-address, Ray joins RAY_ADDRESS when it is set
    done, seconds = run_python(embed, {"RAY_ADDRESS": address})
    assert_prompt_one_line(done, seconds, f"RAY_ADDRESS (environment variable): nothing answers at {address}")
    assert not (files / "never.npy").exists() and not (files / "never.safetensors").exists()


@pytest.mark.timeout(300)
def test_distributed_fit_refuses_an_unreachable_ray_address_within_seconds() -> None:
    """distributed.fit starts Ray itself (ray.init(), which joins RAY_ADDRESS) when it is not running."""
    address = f"127.0.0.1:{free_port()}"
    script = (
        "import sys, numpy as np, grapheme_multimodal as gm\n"
        "from grapheme_multimodal import distributed\n"
        "model = gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, input_dims={'visual': 6}, seed=0)\n"
        "rng = np.random.default_rng(0)\n"
        "data = {'visual': rng.normal(size=(16, 6)), 'auditory': rng.normal(size=(16, 18))}\n"
        "before = model.state_dict()\n"
        "try:\n"
        "    distributed.fit(model, data, num_workers=1, epochs=1, progress=False)\n"
        "except gm.InvalidValueError as err:\n"
        "    assert err.arg == 'RAY_ADDRESS', err.arg\n"
        "    assert all((before[k] == v).all() for k, v in model.state_dict().items())\n"
        "    assert model.epochs_trained == 0 and model.normalization('visual') is None\n"
        "    print(f'refused: {err}', file=sys.stderr)\n"
        "    raise SystemExit(2)\n"
    )
    done, seconds = run_python(["-c", script], {"RAY_ADDRESS": address})
    assert_prompt_one_line(done, seconds, f"RAY_ADDRESS (environment variable): nothing answers at {address}", prefix="refused: ")


@pytest.mark.parametrize(
    "address, words",
    [
        ("foo", "got 'foo'"),  # Ray: "Invalid address format: foo", naming no flag
        ("", "got ''"),
        ("host:0", "got 'host:0'"),
        ("host:65536", "got 'host:65536'"),
        ("host:port", "got 'host:port'"),
        ("::1:6379", "got '::1:6379'"),  # IPv6 needs brackets, as Ray reads it
        ("nosuchhost.invalid:6379", "host 'nosuchhost.invalid' not found"),
        # The lookup's IDNA encoding raised UnicodeError in the check's thread: a traceback
        # on stderr, then "no answer within 5 s" after waiting for it.
        ("x" * 64 + ".example:6379", "is not a valid host name"),
        ("a..b:6379", "host 'a..b' is not a valid host name"),
        ("ray://", "got 'ray://'"),  # it passed, as a Ray Client address on its default port
    ],
)
def test_malformed_or_unknown_addresses_name_the_flag(address, words, capfd) -> None:
    start = time.monotonic()
    with pytest.raises(gm.InvalidValueError, match="expected the address of a running Ray cluster") as err:
        _check_ray_address(address, "--ray-address")
    assert err.value.arg == "--ray-address" and str(err.value).startswith("--ray-address: ")
    assert words in str(err.value)
    assert time.monotonic() - start < CONNECT_TIMEOUT_S and capfd.readouterr().err == ""


def test_a_ray_client_address_is_checked_too_and_other_addresses_are_left_to_ray(monkeypatch) -> None:
    port = free_port()
    start = time.monotonic()
    with pytest.raises(gm.InvalidValueError, match=f"nothing answers at ray://127.0.0.1:{port}"):
        _check_ray_address(f"ray://127.0.0.1:{port}", "address")
    with pytest.raises(gm.InvalidValueError, match=rf"nothing answers at \[::1\]:{port}"):
        _check_ray_address(f"[::1]:{port}", "address")
    assert time.monotonic() - start < 2 * CONNECT_TIMEOUT_S
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    import ray._private.utils  # no record of `ray start` on this machine, whatever it holds

    monkeypatch.setattr(ray._private.utils, "get_ray_address_file", lambda temp_dir: os.devnull + ".none")
    for left_to_ray in (None, "auto", "local", "http://127.0.0.1:8265", "ray://somewhere"):  # Ray's own answers
        _check_ray_address(left_to_ray, "address")
    with pytest.raises(TypeError, match="address: expected a Ray cluster address"):
        _check_ray_address(6379, "address")


@pytest.mark.ray
def test_a_running_cluster_passes_the_check(ray_session) -> None:
    """The check must not refuse a cluster Ray can join: the session's own,
    by its GCS address, and as localhost (Ray joins it at this machine's IP)."""
    address = ray_session.get_runtime_context().gcs_address
    _check_ray_address(address, "--ray-address")
    _check_ray_address("localhost:" + address.rpartition(":")[2], "--ray-address")


def serve(reply, stop):
    """A TCP server on a free loopback port that answers each connection
    with ``reply(conn)`` (in a thread); returns the port."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)

    def loop():
        held = []
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            held.append(conn)
            reply(conn)
        for conn in held:
            conn.close()
        server.close()

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1]


def test_a_server_that_is_not_ray_is_refused_within_seconds(monkeypatch) -> None:
    """An address where something else answers (a web server, a server that
    accepts and stays silent or hangs up) passed the connection check, and
    ray.init then retried it for many minutes (over 10 measured with an HTTP
    server); now refused: a Ray GCS or Ray Client server answers HTTP/2's
    preface with a SETTINGS frame, these do not."""
    import threading

    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    stop = threading.Event()
    try:
        http = serve(lambda c: (c.recv(64), c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"), c.close()), stop)
        silent = serve(lambda c: None, stop)
        hangs_up = serve(lambda c: c.close(), stop)
        start = time.monotonic()
        with pytest.raises(gm.InvalidValueError, match=rf"127.0.0.1:{http} answers, but not as a Ray cluster \(its reply began b'HTTP/1.0") as err:
            _check_ray_address(f"127.0.0.1:{http}", "--ray-address")
        assert err.value.arg == "--ray-address" and "expected the address of a running Ray cluster" in str(err.value)
        with pytest.raises(gm.InvalidValueError, match=rf"ray://127.0.0.1:{hangs_up} answers, but not as a Ray cluster \(it (closed|dropped) the connection"):
            _check_ray_address(f"ray://127.0.0.1:{hangs_up}", "address")
        assert time.monotonic() - start < CONNECT_TIMEOUT_S
        # A silent server is refused once the wait for its reply runs out: a wait of 1 s here, not the
        # 5 s of CONNECT_TIMEOUT_S (the same code path and message, 4 s less of a test spent sleeping)
        from grapheme_multimodal import _ray_address

        monkeypatch.setattr(_ray_address, "CONNECT_TIMEOUT_S", 1.0)
        with pytest.raises(gm.InvalidValueError, match=r"127.0.0.1:\d+ answers, but not as a Ray cluster \(it accepted "
                                                       r"the connection but sent no gRPC reply within 1 s\)"):
            _check_ray_address(f"127.0.0.1:{silent}", "address")
        assert time.monotonic() - start < 2 * CONNECT_TIMEOUT_S + 1
        monkeypatch.setattr(_ray_address, "CONNECT_TIMEOUT_S", CONNECT_TIMEOUT_S)
        # With TLS the server expects a handshake: only the connection is checked, Ray does the rest.
        monkeypatch.setenv("RAY_USE_TLS", "1")
        _check_ray_address(f"127.0.0.1:{http}", "address")
    finally:
        stop.set()


def test_a_server_that_is_not_ray_is_named_even_when_the_check_reports_late(monkeypatch) -> None:
    """On a loaded machine (CI running three test suites on 2 cores) the
    probe of a silent server reported after the wait for it had ended, and a
    server that accepts and stays silent was called one where nothing answers."""
    import threading

    from grapheme_multimodal import _ray_address

    reply = _ray_address._grpc_reply

    def late(*args):
        verdict = reply(*args)
        time.sleep(0.75)  # a thread scheduled late, past the 0.5 s of grace after the deadline
        return verdict

    monkeypatch.setattr(_ray_address, "_grpc_reply", late)
    stop = threading.Event()
    try:
        silent = serve(lambda c: None, stop)
        kind, why = _ray_address._unreachable([("127.0.0.1", silent)], 0.5, _ray_address._HTTP2_PREFACE)
        assert (kind, why) == ("other", "it accepted the connection but sent no gRPC reply within 0.5 s")
    finally:
        stop.set()


def test_a_grpc_server_passes_the_check() -> None:
    """What a Ray GCS sends after the preface (a SETTINGS frame, as any gRPC
    server): the check lets it through to ray.init."""
    import threading

    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
    stop = threading.Event()
    try:
        port = serve(lambda c: (c.recv(64), c.sendall(settings)), stop)
        _check_ray_address(f"127.0.0.1:{port}", "address")
        _check_ray_address(f"ray://127.0.0.1:{port}", "address")
    finally:
        stop.set()


def test_a_stale_record_of_ray_start_is_refused_within_seconds(monkeypatch, tmp_path) -> None:
    """Given no address, ray.init joins the cluster `ray start` recorded in
    Ray's temp folder; a record left by a cluster that ended without `ray
    stop` made grapheme-mm train --workers (and distributed.fit) wait in
    ray.init for minutes (a test timed out at 150 s). Now the recorded
    address is checked like a given one, and the refusal says where it came from."""
    import ray._private.utils

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    record = tmp_path / "ray_current_cluster"
    monkeypatch.setattr(ray._private.utils, "get_ray_address_file", lambda temp_dir: str(record))
    _check_ray_address(None, "--ray-address")  # no record: a new local cluster, left to Ray
    stale = f"127.0.0.1:{free_port()}"
    record.write_text(stale + "\n")
    for given, words in ((None, "none given"), ("auto", "auto")):
        with pytest.raises(gm.InvalidValueError, match=rf"nothing answers at {stale} ") as err:
            _check_ray_address(given, "--ray-address")
        assert str(err.value).startswith(f"--ray-address ({words}: Ray joins the cluster `ray start` recorded in {record})")
        assert "`ray stop` removes its record" in str(err.value) and err.value.arg == "--ray-address"
    _check_ray_address("local", "--ray-address")  # a new local cluster whatever the record says
    monkeypatch.setenv("RAY_ADDRESS", "local")  # the variable comes first, as in ray.init
    _check_ray_address(None, "--ray-address")


def test_ray_address_auto_in_the_environment_checks_the_record_too(monkeypatch, tmp_path) -> None:
    """RAY_ADDRESS=auto makes ray.init join the cluster `ray start`
    recorded, as address="auto" does; the check took the variable's "auto"
    for "left to Ray" and skipped the record, so a stale one made Ray retry
    for minutes again. Now it is checked, and the refusal names the variable."""
    import ray._private.utils

    record = tmp_path / "ray_current_cluster"
    monkeypatch.setattr(ray._private.utils, "get_ray_address_file", lambda temp_dir: str(record))
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    _check_ray_address(None, "--ray-address")  # no record: Ray looks for a cluster, or says it found none
    stale = f"127.0.0.1:{free_port()}"
    record.write_text(stale + "\n")
    for given in (None, "auto"):
        with pytest.raises(gm.InvalidValueError, match=rf"nothing answers at {stale} ") as err:
            _check_ray_address(given, "--ray-address")
        assert str(err.value).startswith(f"RAY_ADDRESS (environment variable) (auto: Ray joins the cluster `ray start` "
                                         f"recorded in {record})")
        assert err.value.arg == "RAY_ADDRESS"


# Ray's own words when `auto` finds no cluster on the machine (ray._private.services).
_RAY_NONE_FOUND = ("Could not find any running Ray instance. Please specify the one to connect to by setting "
                   "`--address` flag or `RAY_ADDRESS` environment variable.")


@pytest.mark.parametrize("flag, env, named", [(["--ray-address", "auto"], None, "--ray-address: "),
                                              ([], "auto", "RAY_ADDRESS (environment variable): ")])
def test_a_cluster_ray_does_not_find_is_named_by_the_flag_grapheme_mm_has(files, monkeypatch, capsys, flag, env, named):
    """``--ray-address auto`` with no cluster running printed Ray's advice to
    set an ``--address`` flag, which grapheme-mm does not have."""
    import ray
    import ray._private.utils

    from grapheme_multimodal.cli import main

    def not_found(*args, **kwargs):
        raise ConnectionError(_RAY_NONE_FOUND)

    monkeypatch.setattr(ray._private.utils, "get_ray_address_file", lambda temp_dir: os.devnull + ".none")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # this session's own Ray would be joined instead
    monkeypatch.setattr(ray, "init", not_found)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env is not None:
        monkeypatch.setenv("RAY_ADDRESS", env)
    out = files / "never.npy"
    assert main(["embed", str(files / "m.safetensors"), "-m", f"visual={files / 'a.npy'}", "--ray", "-o", str(out), *flag]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"grapheme-mm: error: {named}Ray found no cluster to join at 'auto' (Could not find any "
                           "running Ray instance)") and "--address flag" not in line and "\n" not in line, line
    assert not out.exists()
