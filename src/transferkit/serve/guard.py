"""Connections that stall are dropped: uvicorn's HTTP protocol with two clocks of its own.

uvicorn times out a connection only between requests (keep-alive); a client that stops sending
mid-headers or mid-body (`Content-Length: 1000`, 10 bytes, then silence) holds its socket, and a
few hundred such clients exhaust the server. Here every connection has:

- an **idle clock**: while the server waits on the client (for the headers, for the rest of the
  body, or for the next request), `idle_timeout_s` without a byte closes the connection;
- a **deadline**: a request must be answered within `request_timeout_s` of its first byte, however
  slowly its bytes trickle in (one header byte a second never times out the idle clock).

A request dropped before its answer began gets `408` (waiting on the client) or `503` (the
answer was late) as JSON, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from transferkit.serve.limits import ServeOptions


def _base_protocol() -> type[Any]:
    """The protocol uvicorn's "auto" would choose: httptools where installed, else h11."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def guarded_protocol(options: ServeOptions) -> type[Any]:
    """An HTTP protocol class for `uvicorn.Config(http=...)` that enforces `options`' two clocks."""
    base = _base_protocol()
    idle_s, deadline_s = float(options.idle_timeout_s), float(options.request_timeout_s)
    tick = min(1.0, max(0.05, min(idle_s, deadline_s) / 4))

    class GuardedProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._last_byte = self.loop.time()
            self._request_began: float | None = None
            self._guard = self.loop.call_later(tick, self._check)

        def data_received(self, data: bytes) -> None:
            now = self.loop.time()
            self._last_byte = now
            if self._request_began is None:
                self._request_began = now
            super().data_received(data)

        def on_response_complete(self) -> None:
            self._request_began = None
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._guard.cancel()
            super().connection_lost(exc)

        def _waiting_on_client(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or bool(cycle.response_complete) or bool(cycle.more_body)

        def _check(self) -> None:
            if self.transport.is_closing():
                return
            now = self.loop.time()
            waiting = self._waiting_on_client()
            if waiting and now - self._last_byte > idle_s:
                self._drop(408, f"the client sent nothing for {idle_s:g} s while the server waited for the rest "
                                "of its request (--idle-timeout-s)")
                return
            if self._request_began is not None and now - self._request_began > deadline_s:
                self._drop(408 if waiting else 503, f"the request was not answered within {deadline_s:g} s of its "
                                                     "first byte (--request-timeout-s)")
                return
            self._guard = self.loop.call_later(tick, self._check)

        def _drop(self, status: int, message: str) -> None:
            cycle = getattr(self, "cycle", None)
            answering = cycle is not None and cycle.response_started and not cycle.response_complete
            if not answering and self._request_began is not None:  # an answer, when one can still be given
                body = json.dumps({"error": message, "status": status}).encode()
                reason = "Request Timeout" if status == 408 else "Service Unavailable"
                head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
                try:
                    self.transport.write(head + body)
                except Exception:  # the socket is going anyway
                    pass
            self.transport.close()

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
    return GuardedProtocol
