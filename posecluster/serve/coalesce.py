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
    one run (Coalescer), later ones take its answer until it is `ttl` seconds old. An older answer, up to
    `stale_for` seconds, is still given at once while one run in the background replaces it (a slow
    listing never holds 200 waiting pages); older than that, or after invalidate() (a job was submitted),
    requests wait for a fresh run. A run that started before an invalidation is never kept."""

    def __init__(self, ttl: float, stale_for: float = 30.0, limit: int = 1000):
        self.ttl, self.stale_for, self.limit = ttl, stale_for, limit
        self.coalescer = Coalescer()
        self._generation = 0
        self._answers: dict[str, tuple[float, int, object]] = {}
        self._refreshing: dict[str, asyncio.Task] = {}  # held here: a task nobody references may be collected

    def invalidate(self) -> None:
        self._generation += 1
        self._answers.clear()

    async def get(self, key: str, produce: Callable[[], T]) -> T:
        return (await self.get_marked(key, produce))[0]

    async def get_marked(self, key: str, produce: Callable[[], T]) -> tuple[T, bool]:
        """(answer, stale): stale when an older answer is given while a fresh one is being made, so that a
        client can ask again shortly instead of taking it as the state of things."""
        kept = self._answers.get(key)
        if kept is not None and kept[1] == self._generation:
            age = time.monotonic() - kept[0]
            if age < self.ttl:
                return kept[2], False
            if age < self.stale_for:
                if key not in self._refreshing:
                    task = asyncio.ensure_future(self._run(key, produce))
                    self._refreshing[key] = task
                    task.add_done_callback(lambda done: self._refreshed(key, done))
                return kept[2], True
        return await self._run(key, produce), False

    def _refreshed(self, key: str, task: asyncio.Task) -> None:
        self._refreshing.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved; a failed refresh is tried again by the next request

    async def _run(self, key: str, produce: Callable[[], T]) -> T:
        generation, started = self._generation, time.monotonic()
        answer = await self.coalescer.shared(f"{generation}|{key}", produce)
        if generation == self._generation:
            if len(self._answers) >= self.limit:
                self._answers.clear()  # more scopes than labs: start over rather than grow
            self._answers[key] = (started, generation, answer)
        return answer
