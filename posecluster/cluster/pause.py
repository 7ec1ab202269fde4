"""A job's pauses: while storage is away, and while no worker can be placed.

Neither is any video's fault, so neither fails a video: the job stops dispatching, asks again with
backoff, and resumes when storage answers (or a worker is placed). Past the job's limit it stops cleanly
(JobStopped): what was done is recorded, and a rerun resumes from there.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from posecluster.storage.retry import is_transient

log = logging.getLogger(__name__)


class JobStopped(RuntimeError):
    """The job stopped cleanly before finishing (storage away or no workers for longer than allowed);
    what was done is recorded, and a rerun resumes from there."""


class StoragePause:
    """Paused while storage is away: `down(why)` starts a pause; `check()` asks storage (`probe`, one call,
    no retries) with backoff, ends the pause when it answers and raises JobStopped past `limit_s`."""

    def __init__(self, probe: Callable[[], object], limit_s: float, clock: Callable[[], float] = time.time):
        self.probe, self.limit_s, self.clock = probe, limit_s, clock
        self.since: float | None = None
        self.total_s = 0.0  # every pause of the job so far, ended ones
        self._next = 0.0

    @property
    def paused(self) -> bool:
        return self.since is not None

    def seconds(self) -> float:
        return self.total_s + (self.clock() - self.since if self.since else 0.0)

    def down(self, why: str) -> None:
        if self.since is None:
            self.since, self._next = self.clock(), self.clock() + 1.0
            log.warning("storage unavailable (%s); pausing dispatch for up to %.0f s", why, self.limit_s)

    def check(self) -> None:
        if self.since is None or self.clock() < self._next:
            return
        try:
            self.probe()
        except Exception as exc:
            if not is_transient(exc):
                raise
            down = self.clock() - self.since
            if down > self.limit_s:
                raise JobStopped(f"storage unavailable for {down:.0f} s (outage limit {self.limit_s:.0f} s); "
                                 "the job stopped cleanly: run it again to resume") from None
            self._next = self.clock() + min(30.0, max(1.0, down / 4))
            return
        paused = self.clock() - self.since
        self.total_s += paused
        self.since = None
        log.warning("storage is back after %.0f s; dispatch resumes", paused)


class CapacityWait:
    """Work waits and no worker is ready (all still being placed or loading the model): after `limit_s`
    the job stops cleanly; a pool whose every worker refused the pinned model stops it at once."""

    def __init__(self, limit_s: float, clock: Callable[[], float] = time.time):
        self.limit_s, self.clock = limit_s, clock
        self.since: float | None = None

    def check(self, waiting: bool, slots: int, alive: int, model: str) -> None:
        if not waiting:
            self.since = None
            return
        if slots and alive == 0:
            raise JobStopped(f"{model}: every worker refused the pinned model (its file changed); the job stopped")
        self.since = self.since or self.clock()
        waited = self.clock() - self.since
        if waited > self.limit_s:
            raise JobStopped(f"no worker could be placed for {waited:.0f} s (capacity limit {self.limit_s:.0f} s); "
                             "the job stopped cleanly: run it again to resume")
