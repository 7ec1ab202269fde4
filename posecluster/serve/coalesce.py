"""Concurrent requests for the same expensive answer share one computation (single flight): a request that
arrives while a run is under way takes that run's answer, so 200 simultaneous page loads cost one listing,
not 200. The answer a request gets is at most one run old (a listing started just before it arrived)."""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class Coalescer:
    def __init__(self):
        self._running: dict[str, asyncio.Future] = {}

    async def shared(self, key: str, produce: Callable[[], T]) -> T:
        if key in self._running:
            return await asyncio.shield(self._running[key])
        mine = asyncio.get_running_loop().create_future()
        mine.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" noise
        self._running[key] = mine
        try:
            result = await run_in_threadpool(produce)
        except BaseException as exc:  # a cancelled leader must not leave its followers waiting forever
            mine.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the shared run was cancelled"))
            raise
        else:
            mine.set_result(result)
            return result
        finally:
            del self._running[key]
