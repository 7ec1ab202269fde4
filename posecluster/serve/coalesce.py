"""Concurrent requests for the same expensive answer share one computation, and no request gets an answer
computed before it arrived: a request that comes while a run is under way waits for the next run, which
every request arriving meanwhile shares (at most two runs' time per request, however many requests)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Callable, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")


class Coalescer:
    def __init__(self):
        self._running: dict[str, asyncio.Future] = {}
        self._next: dict[str, asyncio.Future] = {}

    async def fresh(self, key: str, produce: Callable[[], T]) -> T:
        if key in self._next:  # a run that starts after the current one: share it
            return await asyncio.shield(self._next[key])
        mine = asyncio.get_running_loop().create_future()
        mine.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" noise
        if key in self._running:
            self._next[key] = mine
            with contextlib.suppress(Exception):
                await asyncio.shield(self._running[key])
            del self._next[key]
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
            if self._running.get(key) is mine:
                del self._running[key]
