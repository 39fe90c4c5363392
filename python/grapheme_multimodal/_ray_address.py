"""Whether a Ray cluster address can be joined, checked before ``ray.init``:
an address where nothing answers, or where something other than Ray does,
is refused within seconds instead of the many minutes Ray itself retries.
Used by the command line (``--ray-address``) and by
:mod:`grapheme_multimodal.distributed` when it starts Ray."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import List, Optional, Tuple

from .exceptions import InvalidValueError

#: The start of Ray 2.51's FutureWarning at every ``ray.init`` ("Tip: In future versions of Ray, Ray will no
#: longer override accelerator visible devices env var ..."), which the library and the command line ignore:
#: a tip to Ray's users about GPUs, which they never ask for.
RAY_ACCELERATOR_TIP = "Tip: In future versions of Ray, Ray will no longer override accelerator"

#: Seconds a Ray cluster's address has to accept a connection and answer as
#: a gRPC server before joining it is refused (Ray itself would retry for
#: many minutes).
CONNECT_TIMEOUT_S = 5.0

#: What a gRPC (HTTP/2) client sends first: the connection preface and an
#: empty SETTINGS frame. A Ray GCS or Ray Client server answers with a
#: SETTINGS frame of its own (RFC 9113 §3.4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _check_ray_address(address: Optional[str], arg: str) -> None:
    """Refuses, within :data:`CONNECT_TIMEOUT_S`, a Ray cluster address that
    ``ray.init(address)`` would join but where nothing accepts a connection,
    or where the server that does is no gRPC server (a Ray GCS and a Ray
    Client server are; with ``RAY_USE_TLS`` set only the connection is
    checked): Ray retries its connection for many minutes (some 40 s per
    attempt, 20 attempts), printing warnings, before it fails. ``address`` is what
    ``ray.init`` is given (``arg`` names it); ``None`` or ``"auto"`` stand for
    the ``RAY_ADDRESS`` environment variable when it is set, else (and for
    ``RAY_ADDRESS=auto``) for the cluster ``ray start`` last recorded on
    this machine, which ``ray.init`` joins then (a record left by a cluster
    that ended without ``ray stop`` made it retry for minutes). A new local cluster (``None`` with neither,
    ``"local"``), ``"auto"`` with neither (Ray finds a cluster on this
    machine, or says it found none) and schemes other than ``ray://`` are
    left to Ray."""
    env = os.environ.get("RAY_ADDRESS")
    label, remedy = arg, ""
    if address in (None, "auto") and env:  # as ray.init: the variable stands in for no address or "auto"
        address, arg, label = env, "RAY_ADDRESS", "RAY_ADDRESS (environment variable)"
    if address in (None, "auto"):  # RAY_ADDRESS=auto too: Ray then joins the recorded cluster as well
        recorded = _recorded_cluster()
        if recorded is None:
            return
        given = "auto" if address == "auto" else "none given"
        address, record = recorded
        label = f"{label} ({given}: Ray joins the cluster `ray start` recorded in {record})"
        remedy = "; if that cluster has ended, `ray stop` removes its record"
    if address is None or address in ("auto", "local"):
        return
    if not isinstance(address, str):
        raise TypeError(f"{label}: expected a Ray cluster address (str), got {type(address).__name__}")
    client = address.startswith("ray://")
    if "://" in address and not client:  # another scheme (a Ray Client plugin, http): Ray's own checks
        return
    inner = address[len("ray://"):] if client else address
    host, sep, port = inner.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # [::1]:6379
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address without brackets: Ray cannot read it either
        host = ""
    if client and not sep and inner:  # ray://host: the Ray Client's default port
        return
    expected = ("expected the address of a running Ray cluster: its head node's host:port "
                "(e.g. 10.0.0.5:6379), ray://host:port (Ray Client), auto or local")
    if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 2**16:
        raise InvalidValueError(f"{label}: {expected}, got {address!r}{remedy}", arg)
    targets = [(host, int(port))]
    if not client:  # Ray joins a local address at this machine's own IP: either answering will do
        try:
            from ray._private.services import resolve_ip_for_localhost  # private: should it move, the given host alone

            local = resolve_ip_for_localhost(host)
            if local != host:
                targets.append((local, int(port)))
        except Exception:
            pass
    # With TLS the server expects a handshake, not the plain preface: only the connection is checked.
    speaks_grpc = None if os.environ.get("RAY_USE_TLS", "0").strip().lower() not in ("", "0", "false") else _HTTP2_PREFACE
    reason = _unreachable(targets, CONNECT_TIMEOUT_S, speaks_grpc)
    if reason is not None:
        what, why = reason
        if what == "other":
            raise InvalidValueError(f"{label}: {address} answers, but not as a Ray cluster ({why}); {expected}{remedy}", arg)
        raise InvalidValueError(f"{label}: nothing answers at {address} ({why}); {expected}{remedy}", arg)


def _recorded_cluster() -> Optional[Tuple[str, str]]:
    """The address ``ray start`` last recorded on this machine and the file
    that holds it (what ``ray.init`` joins when given no address), or
    ``None`` when there is none."""
    try:
        from ray._private.utils import get_ray_address_file  # private: should it move, Ray's own retries

        record = get_ray_address_file(None)
        # named: the locale's raised EncodingWarning (-X warn_default_encoding), an error under -W error
        # that the except below took for "no record"
        with open(record, encoding="utf-8") as f:
            address = f.read().strip()
    except Exception:  # no record (or no way to find it)
        return None
    return (address, record) if address else None


def _unreachable(targets: List[Tuple[str, int]], timeout: float, preface: Optional[bytes] = None) -> Optional[Tuple[str, str]]:
    """``None`` when one of ``targets`` (host, port) accepts a TCP connection
    within ``timeout`` seconds — and, with ``preface``, answers it with an
    HTTP/2 SETTINGS frame, as a gRPC server does — else why the first did
    not: ``("nothing", why)`` or, for a server that is not gRPC (an HTTP
    server, a database: Ray would retry it for many minutes too),
    ``("other", why)``. Each attempt runs in a thread of its own: a host
    name's lookup has no timeout."""
    results: "queue.Queue[Optional[Tuple[str, str]]]" = queue.Queue()
    deadline = time.monotonic() + timeout
    connected = threading.Event()  # an attempt got through: what is left of it ends at the deadline

    def attempt(host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout) as conn:
                connected.set()
                results.put(None if preface is None else _grpc_reply(conn, preface, deadline, timeout))
        except socket.gaierror as exc:
            results.put(("nothing", f"host {host!r} not found: {exc.strerror or exc}"))
        except UnicodeError as exc:  # the lookup's IDNA encoding: a label over 63 characters, an empty label
            results.put(("nothing", f"host {host!r} is not a valid host name ({exc})"))
        except socket.timeout:
            results.put(("nothing", f"no answer within {timeout:g} s"))
        except OSError as exc:
            results.put(("nothing", exc.strerror or str(exc) or type(exc).__name__))

    for target in targets:
        threading.Thread(target=attempt, args=target, daemon=True, name="gm-ray-address-check").start()
    reasons = []
    for _ in targets:
        try:
            reason = results.get(timeout=max(0.0, deadline - time.monotonic()) + 0.5)  # the attempt's own timeout first
        except queue.Empty:
            # A host name's lookup may never end: give up on it. An attempt that connected ends by itself
            # (its reads stop at the deadline), late only on a loaded machine: its verdict is worth the wait.
            try:
                if not connected.is_set():
                    raise queue.Empty from None
                reason = results.get(timeout=timeout)
            except queue.Empty:
                reasons.append(("nothing", f"no answer within {timeout:g} s"))
                break
        if reason is None:
            return None
        reasons.append(reason)
    return next((r for r in reasons if r[0] == "other"), reasons[0])  # a server that is not Ray says more


def _grpc_reply(conn: socket.socket, preface: bytes, deadline: float, timeout: float) -> Optional[Tuple[str, str]]:
    """``None`` when the server on ``conn`` answers ``preface`` with an
    HTTP/2 SETTINGS frame (a 9-byte header of type 4) before ``deadline``,
    else why it is not a gRPC server."""
    try:
        conn.sendall(preface)
        head = b""
        while len(head) < 9:
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = conn.recv(9 - len(head))
            if not chunk:
                break
            head += chunk
    except socket.timeout:
        return ("other", f"it accepted the connection but sent no gRPC reply within {timeout:g} s")
    except OSError as exc:
        return ("other", f"it dropped the connection: {exc.strerror or exc}")
    if len(head) == 9 and head[3] == 4:
        return None
    if not head:
        return ("other", "it closed the connection without a gRPC reply")
    return ("other", f"its reply began {head!r}, not with a gRPC (HTTP/2) frame")


def _check_connected_cluster(address: Optional[str], arg: str) -> None:
    """Refuses ``address`` (given as ``arg``) when this process is already
    connected to a Ray cluster (``ray.is_initialized()``) that ``address``
    does not name: Ray joins one cluster per process, and the command
    line's work ran on the cluster the process was connected to, the
    address ignored without a word. ``None`` names whatever cluster it is;
    ``"local"`` one this process started; ``"auto"`` the cluster
    ``RAY_ADDRESS`` or ``ray start``'s record names, else (neither) one on
    this machine; ``host:port`` and ``ray://host:port`` that cluster's
    address (the host by any of its names)."""
    if address is None:
        return
    if not isinstance(address, str):
        raise TypeError(f"{arg}: expected a Ray cluster address (str), got {type(address).__name__}")
    joined, started_here, through_client = _connected_cluster()
    if _names_connected(address, joined, started_here, through_client):
        return
    if through_client:
        where = f"a Ray cluster through Ray Client ({'ray://' + joined if joined else 'address unknown'})"
    elif started_here:
        where = f"the local Ray cluster it started (ray.init() without an address; its GCS at {joined})"
    else:
        where = f"the Ray cluster at {joined}"
    raise InvalidValueError(
        f"{arg}: got {address!r}, but this process is already connected to {where}; expected that cluster's "
        f"address or no {arg} (a process joins one Ray cluster: call ray.shutdown() first to join another)", arg)


def _connected_cluster() -> Tuple[str, bool, bool]:
    """The cluster this process is connected to: its address (the GCS's
    ``host:port``; a Ray Client connection's ``host:port``, ``""`` when
    Ray does not say), whether this process started it, whether through Ray Client."""
    import ray

    try:
        from ray.util.client import ray as client

        if client.is_connected():
            worker = getattr(client.get_context(), "client_worker", None)  # private: should it move, "unknown"
            return str(getattr(worker, "_conn_str", "") or ""), False, True
    except Exception:  # Ray Client unavailable (no grpc): not connected through it
        pass
    from ray._private import worker  # private: should it move, the node counts as joined, not started here

    node = getattr(worker, "_global_node", None)
    return ray.get_runtime_context().gcs_address, bool(getattr(node, "head", False)), False


def _names_connected(address: str, joined: str, started_here: bool, through_client: bool) -> bool:
    """Whether ``address`` names the cluster :func:`_connected_cluster` describes."""
    if address == "local":
        return started_here
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS")
        recorded = _recorded_cluster()
        named = env if env and env != "auto" else (recorded[0] if recorded else None)
        if named is None:  # Ray looks for a cluster on this machine: the one joined, if it is here
            return not through_client and bool(_addresses(joined.rpartition(":")[0]) & _addresses("localhost"))
        return _names_connected(named, joined, started_here, through_client)
    client = address.startswith("ray://")
    if client != through_client or not joined:
        return False
    return _same_endpoint(address[len("ray://"):] if client else address, joined)


def _same_endpoint(given: str, joined: str) -> bool:
    """Whether the ``host:port`` ``given`` and ``joined`` are one endpoint:
    the same port, and hosts that resolve to one address (``localhost``,
    ``127.0.0.1`` and this machine's own IP being one)."""
    given_host, _, given_port = given.rpartition(":")
    joined_host, _, joined_port = joined.rpartition(":")
    if given_port != joined_port:  # first: no name is looked up for another port (a lookup has no timeout)
        return False
    return given_host == joined_host or bool(_addresses(given_host) & _addresses(joined_host))


def _addresses(host: str) -> "set[str]":
    """The IP addresses ``host`` stands for; a loopback one stands for this
    machine's own IP too (where a local Ray cluster listens), as Ray reads it."""
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    found = {host}
    try:
        found |= {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):  # a name that does not resolve: itself only
        pass
    if any(ip.startswith("127.") or ip == "::1" for ip in found):
        try:
            from ray._private.services import get_node_ip_address  # private: should it move, loopback only

            found.add(get_node_ip_address())
        except Exception:
            pass
    return found
