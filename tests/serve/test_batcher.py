"""The micro-batcher alone (`serve.batcher`): requests gathered within the window, batches capped, a full
queue refused."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from transferkit.serve.batcher import MicroBatcher, Overloaded


def test_micro_batcher_gathers_requests_within_its_window_and_caps_batches() -> None:
    batches: list[int] = []

    def run(inputs: list[Any]) -> list[Any]:
        batches.append(len(inputs))
        return [x * 10 for x in inputs]

    async def main(enabled: bool) -> list[list[Any]]:
        batcher = MicroBatcher(run, max_batch=8, window_s=0.2, max_queue=64, timeout_s=10, enabled=enabled)
        await batcher.start()
        try:
            return list(await asyncio.gather(*(batcher.submit([i, i + 100, i + 200]) for i in range(5))))
        finally:
            await batcher.close()

    results = asyncio.run(main(True))
    assert results == [[i * 10, (i + 100) * 10, (i + 200) * 10] for i in range(5)]  # each gets its own outputs
    assert max(batches) <= 8 and len(batches) == 3  # 15 inputs in batches of 2 requests (6), 6 and 3
    batches.clear()
    asyncio.run(main(False))
    assert batches == [3] * 5  # without micro-batching every request runs alone


def test_micro_batcher_refuses_when_full() -> None:
    async def main() -> Any:
        def run(inputs: list[Any]) -> list[Any]:
            time.sleep(0.3)
            return inputs

        batcher = MicroBatcher(run, max_batch=1, window_s=0, max_queue=1, timeout_s=10)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit([1]))
            await asyncio.sleep(0.05)  # the first runs; the queue is empty again
            second = asyncio.ensure_future(batcher.submit([2]))
            await asyncio.sleep(0)
            with pytest.raises(Overloaded) as refused:
                await batcher.submit([3])
            return await first, await second, refused.value.retry_after
        finally:
            await batcher.close()

    first, second, retry_after = asyncio.run(main())
    assert (first, second) == ([1], [2]) and retry_after >= 1
