"""Concurrent requests for the same expensive answer share one computation (single flight): a request that
arrives while a run is under way takes that run's answer, so 200 simultaneous page loads cost one listing,
not 200. The answer a request gets is at most one run old (a listing started just before it arrived).
SharedAnswers adds a short memory on top: one run per change (or per few seconds) however many ask."""

from __future__ import annotations

import asyncio
import time
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


class SharedAnswers:
    """An answer per key (a caller's scope) computed once per change and shared: concurrent requests take
    one run (Coalescer), later ones take its answer until it is `ttl` seconds old or invalidate() says
    something changed (a job was submitted). A run that started before an invalidation is never kept."""

    def __init__(self, ttl: float, limit: int = 1000):
        self.ttl, self.limit = ttl, limit
        self.coalescer = Coalescer()
        self._generation = 0
        self._answers: dict[str, tuple[float, int, object]] = {}

    def invalidate(self) -> None:
        self._generation += 1
        self._answers.clear()

    async def get(self, key: str, produce: Callable[[], T]) -> T:
        generation = self._generation
        kept = self._answers.get(key)
        if kept is not None and kept[1] == generation and time.monotonic() - kept[0] < self.ttl:
            return kept[2]
        started = time.monotonic()
        answer = await self.coalescer.shared(f"{generation}|{key}", produce)
        if generation == self._generation:
            if len(self._answers) >= self.limit:
                self._answers.clear()  # more scopes than labs: start over rather than grow
            self._answers[key] = (started, generation, answer)
        return answer
