"""The server's limits and batching settings: one declaration, shared by the CLI and the Python API."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from transferkit.errors import ConfigError


@dataclass(frozen=True)
class ServeOptions:
    """How much one request may hold, and how requests are batched on the model.

    Every field is a `transferkit serve` flag of the same name (`--max-body-mb`, …).
    """

    #: largest request body, in megabytes (413 above it; checked before the body is read)
    max_body_mb: float = 16.0
    #: largest image, in pixels (width × height, read from the header before decoding)
    max_pixels: int = 40_000_000
    #: longest audio clip, in seconds (read from the header before decoding)
    max_audio_s: float = 60.0
    #: most inputs in one request, and in one batch on the model
    max_batch: int = 32
    #: how long the first request of a batch waits for others to join it, in milliseconds
    batch_window_ms: float = 5.0
    #: requests waiting for the model at most; more get 503 with Retry-After
    max_queue: int = 256
    #: longest a request waits for its result, in seconds (503 with Retry-After after it)
    timeout_s: float = 30.0
    #: batch requests together on the model (False: each request runs alone, for comparison)
    micro_batching: bool = True
    #: a client that sends nothing for this long while the server waits on it (mid-headers,
    #: mid-body, or between requests) is dropped, in seconds (408, then the connection is closed)
    idle_timeout_s: float = 10.0
    #: every request is answered within this many seconds of its first byte, however slowly it
    #: arrives (408 or 503 after it, then the connection is closed)
    request_timeout_s: float = 60.0

    def validate(self) -> ServeOptions:
        checks: list[tuple[str, bool, str]] = [
            ("max_body_mb", self.max_body_mb > 0, "a positive number of megabytes"),
            ("max_pixels", self.max_pixels > 0, "a positive number of pixels"),
            ("max_audio_s", self.max_audio_s > 0, "a positive number of seconds"),
            ("max_batch", self.max_batch >= 1, "at least 1"),
            ("batch_window_ms", 0 <= self.batch_window_ms <= 10_000, "between 0 and 10000 milliseconds"),
            ("max_queue", self.max_queue >= 1, "at least 1"),
            ("timeout_s", self.timeout_s > 0, "a positive number of seconds"),
            ("idle_timeout_s", self.idle_timeout_s > 0, "a positive number of seconds"),
            ("request_timeout_s", self.request_timeout_s > 0, "a positive number of seconds"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} must be {expected}; got {getattr(self, name)!r}")
        return self

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
