"""Micro-batching: requests that arrive within a short window run together on the model.

The first request of a batch waits at most `window_s` for others; a batch holds at most
`max_batch` inputs (a request that would overflow it starts the next one). The queue of waiting
requests is bounded: a request that finds it full is refused at once (`Overloaded`, answered 503
with Retry-After), and a request waits at most `timeout_s` for its result — so under any load a
client gets an answer, never a hang. The model runs on one worker thread, so the event loop keeps
accepting, parsing and refusing requests while a batch computes.

Closing finishes every request already accepted, then stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

#: one input of a batch (a request's prepared sample)
InT = TypeVar("InT")
#: one output (a row of class probabilities)
OutT = TypeVar("OutT")


class Overloaded(Exception):
    """The server cannot take (or finish) this request now; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Job(Generic[InT, OutT]):
    items: list[InT]
    future: asyncio.Future[list[OutT]]
    queued_at: float = field(default_factory=time.perf_counter)


class _Stop(enum.Enum):
    STOP = "stop"


_STOP: Final = _Stop.STOP


@dataclass
class BatchStats:
    """Counters for `/health` and the benchmark."""

    batches: int = 0
    inputs: int = 0
    requests: int = 0
    refused: int = 0
    timed_out: int = 0
    largest_batch: int = 0


class MicroBatcher(Generic[InT, OutT]):
    """Runs `run(inputs) -> outputs` (one output per input) on batches gathered from requests."""

    def __init__(self, run: Callable[[list[InT]], Sequence[OutT]], *, max_batch: int, window_s: float,
                 max_queue: int, timeout_s: float, enabled: bool = True) -> None:
        self.run = run
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.enabled = enabled
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job[InT, OutT] | _Stop] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        #: seconds one recent batch took, to suggest a Retry-After
        self._batch_seconds = 0.05

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transferkit-model")
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="transferkit-batcher")

    async def submit(self, items: list[InT]) -> list[OutT]:
        """The outputs for `items`, once their batch has run; `Overloaded` when refused or late."""
        if self._queue is None or self._closing:
            raise Overloaded("the server is shutting down; retry on another instance or after it restarts", 1)
        future: asyncio.Future[list[OutT]] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Job(list(items), future))
        except asyncio.QueueFull:
            self.stats.refused += 1
            raise Overloaded(f"{self.max_queue} requests are already waiting for the model (--max-queue); "
                             "retry shortly", self._retry_after()) from None
        self.stats.requests += 1
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            future.cancel()  # the worker skips it if its batch has not started
            self.stats.timed_out += 1
            raise Overloaded(f"no result within {self.timeout_s:g} s (--timeout-s): the model is busy; retry "
                             "shortly", self._retry_after()) from None

    async def close(self) -> None:
        """Finish every accepted request, then stop the worker thread."""
        if self._queue is None or self._worker is None:
            return
        self._closing = True
        await self._queue.put(_STOP)
        await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _retry_after(self) -> int:
        """Whole seconds until the requests waiting now have likely run (at least 1)."""
        batches_ahead = 1 + self.queued / max(1, self.max_batch)
        return max(1, math.ceil(batches_ahead * self._batch_seconds))

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        carry: _Job[InT, OutT] | _Stop | None = None
        while True:
            job = carry if carry is not None else await self._queue.get()
            carry = None
            if job is _STOP:
                break
            jobs = [job]
            size = len(job.items)
            if self.enabled:
                deadline = loop.time() + self.window_s
                while size < self.max_batch:
                    remaining = deadline - loop.time()
                    try:
                        nxt = (self._queue.get_nowait() if remaining <= 0
                               else await asyncio.wait_for(self._queue.get(), remaining))
                    except (asyncio.QueueEmpty, TimeoutError):
                        break
                    if nxt is _STOP or size + len(nxt.items) > self.max_batch:
                        carry = nxt
                        break
                    jobs.append(nxt)
                    size += len(nxt.items)
            live = [j for j in jobs if not j.future.done()]  # skip requests that gave up waiting
            if not live:
                continue
            inputs = [x for j in live for x in j.items]
            start = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, self.run, inputs)
            except Exception as exc:  # a failing batch fails its requests, never the server
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            finally:
                self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.perf_counter() - start)
            self.stats.batches += 1
            self.stats.inputs += len(inputs)
            self.stats.largest_batch = max(self.stats.largest_batch, len(inputs))
            offset = 0
            for j in live:
                part = list(outputs[offset: offset + len(j.items)])
                offset += len(j.items)
                if not j.future.done():
                    with contextlib.suppress(asyncio.InvalidStateError):
                        j.future.set_result(part)
