"""The server's limits and batching settings: one declaration each (`transferkit.params.declare`),
shared by the CLI (`transferkit serve`'s flags are generated from them) and the Python API."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transferkit.jsontypes import JSONObject
from transferkit.params import FLAG, Between, check_declared, declare

_POSITIVE_MB = Between(0, None, closed="neither", expected="a positive number of megabytes")
_POSITIVE_PIXELS = Between(0, None, integer=True, closed="neither", expected="a positive number of pixels")
_POSITIVE_SECONDS = Between(0, None, closed="neither", expected="a positive number of seconds")
_AT_LEAST_1 = Between(1, None, integer=True, closed="left", expected="at least 1")
_WINDOW = Between(0, 10_000, expected="between 0 and 10000 milliseconds")


@dataclass(frozen=True)
class ServeOptions:
    """How much one request may hold, and how requests are batched on the model.

    Every field is a `transferkit serve` flag of the same name (`--max-body-mb`, …), but
    `micro_batching` (`--no-micro-batching`).
    """

    max_body_mb: float = declare(16.0, "Largest request body, in MB (413 above it; checked before the body is "
                                 "read).", "--max-body-mb", rules=_POSITIVE_MB)
    max_pixels: int = declare(40_000_000, "Largest image, in pixels (width × height, read from the header before "
                              "decoding).", "--max-pixels", rules=_POSITIVE_PIXELS)
    max_audio_s: float = declare(60.0, "Longest audio clip, in seconds (read from the header before decoding).",
                                 "--max-audio-s", rules=_POSITIVE_SECONDS)
    max_batch: int = declare(32, "Most inputs per request and per model batch.", "--max-batch", rules=_AT_LEAST_1)
    batch_window_ms: float = declare(5.0, "How long a request waits for others to share its batch, in ms.",
                                     "--batch-window-ms", rules=_WINDOW)
    max_queue: int = declare(256, "Requests waiting at most; more get 503 + Retry-After.", "--max-queue",
                             rules=_AT_LEAST_1)
    timeout_s: float = declare(30.0, "Longest a request waits for its result, in seconds (503 + Retry-After after "
                               "it).", "--timeout-s", rules=_POSITIVE_SECONDS)
    #: (the CLI's flag is `--no-micro-batching`)
    micro_batching: bool = declare(True, "Batch requests together on the model (False: each request runs alone, for "
                                   "comparison).", rules=FLAG)
    idle_timeout_s: float = declare(10.0, "Drop a client that sends nothing for this long mid-request (408), in "
                                    "seconds.", "--idle-timeout-s", rules=_POSITIVE_SECONDS)
    request_timeout_s: float = declare(60.0, "Answer every request within this long of its first byte (408/503 "
                                       "after it), in seconds.", "--request-timeout-s", rules=_POSITIVE_SECONDS)

    def validate(self) -> ServeOptions:
        """Every setting meets its declared rule; else a `ConfigError` naming its flag."""
        check_declared(self, flag_names=True)
        return self

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def to_dict(self) -> JSONObject:
        return asdict(self)
