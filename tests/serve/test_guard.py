"""Clients that stall are dropped on time while the server answers others; the OpenAPI schema,
fuzzed by Schemathesis on 127.0.0.1, never gets a 5xx or a hang."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.serve.conftest import running

from transferkit.serve import ServeOptions

IDLE_S, DEADLINE_S = 1.0, 3.0
OPTIONS = ServeOptions(max_batch=4, max_body_mb=1, max_pixels=1_000_000, idle_timeout_s=IDLE_S,
                       request_timeout_s=DEADLINE_S)


@pytest.fixture(scope="module")
def port(image_run: Path) -> Iterator[int]:
    with running(image_run, OPTIONS, log_level="critical") as app:
        yield app.port


def _health(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    finally:
        conn.close()


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the socket (True), or `limit_s` passes (False)."""
    sock.settimeout(limit_s)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got, True
            got += chunk
    except TimeoutError:
        return got, False
    except ConnectionResetError:
        return got, True


def test_stalled_clients_are_dropped_while_others_are_answered(port: int) -> None:
    stalls = {
        "mid-headers": b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
        "mid-body": (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: 1000\r\n\r\n" + b"x" * 10),
        "nothing": b"",
    }
    sockets = []
    for kind, data in stalls.items():
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(data)
            sockets.append((kind, sock))
    # a slowloris: one header byte at a time, each well within the idle clock; only the deadline ends it
    slow = socket.create_connection(("127.0.0.1", port))
    stop = threading.Event()

    def trickle() -> None:
        for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
            if stop.wait(IDLE_S / 3):
                return
            try:
                slow.send(bytes([byte]))
            except OSError:
                return

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        assert _health(port) == 200  # answered while 30 stalled sockets are open
        for kind, sock in sockets:
            got, closed = _read_until_closed(sock, IDLE_S + 10)
            assert closed, f"a client stalled {kind} was not dropped"
            if kind != "nothing":
                assert got.startswith(b"HTTP/1.1 408"), got[:200]
        got, closed = _read_until_closed(slow, DEADLINE_S + 10)
        assert closed and got.startswith(b"HTTP/1.1 408") and b"request-timeout-s" in got, got[:300]
        assert _health(port) == 200
    finally:
        stop.set()
        for _, sock in sockets:
            sock.close()
        slow.close()


def test_schemathesis_finds_no_server_error_or_hang(port: int) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    sent: list[int] = []
    failures: list[str] = []
    def fuzzer(op: Any) -> Any:
        @settings(max_examples=40, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE_S + 10)
            sent.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{op.method.upper()} {op.path} -> {response.status_code}: {response.text[:200]}")

        return fuzz

    for operation in schema.get_all_operations():
        fuzzer(operation.ok())()
    print(f"schemathesis: {len(sent)} generated requests, {sum(s >= 500 for s in sent)} server errors")
    assert sent and not failures, failures[:5]
    assert _health(port) == 200
