"""The pool of SegmentWorker actors: placement, readiness, replacement, and whose fault a death was.

Why our own pool rather than `ray.util.ActorPool`: an item must go back to the queue when storage is away
(uncounted), a worker that refuses the pinned model leaves the pool for good, a dead worker is replaced
while the others go on, and a death is charged to the one item the worker was running, never to the items
queued behind it. Ray still does placement (resources), restarts nothing by itself (`max_restarts=0`: a
video that kills its worker must not loop), and moves objects.

Each slot holds one actor at a time; `generation` counts its replacements, so the errors that a dead
actor's queued items raise afterwards are recognised as that death's. A slot is dispatched to only once
its actor answered `ready` (placed and holding the model): when the cluster shrinks below the pool's size,
the replacement waits for capacity and the items go to the workers that remain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import ray

log = logging.getLogger(__name__)


@dataclass
class Slot:
    actor: Any
    generation: int = 0
    state: str = "starting"  # starting (placing, loading the model), ready, refused
    items: list = field(default_factory=list)  # (generation, item, weight) in the order they were dispatched


def died_with_node(exc: BaseException) -> bool:
    """A worker lost with its node (spot reclaim, node drain, raylet gone): not the item's fault. Ray says
    so as an unreachable actor (its node's raylet is gone), a preemption, or a death "because its node
    has died"; a worker process that crashed on its own ("its worker process has died": a decoder's
    segfault, the OOM killer) is the item's doing."""
    if getattr(exc, "preempted", False) or isinstance(exc, ray.exceptions.ActorUnavailableError):
        return True
    text = str(exc).lower()
    return "node has died" in text or "node died" in text


class WorkerPool:
    def __init__(self, make_actor: Callable[[], Any]):
        self.make_actor = make_actor
        self.slots: list[Slot] = []
        self.lost = 0
        self.refused = 0

    def grow(self, size: int) -> list[tuple[Any, int, int]]:
        """Add slots up to `size`; (ready ref, slot, generation) of each new one, for the caller's wait
        loop to watch. Slots start on demand: a job that only skips or rejoins needs no worker, and one
        that began so may find work later (a rejoin whose cached segments are gone)."""
        first = len(self.slots)
        self.slots += [Slot(self.make_actor()) for _ in range(size - first)]
        return [(self.slots[i].actor.ready.remote(), i, 0) for i in range(first, len(self.slots))]

    def on_ready(self, index: int, generation: int, error: BaseException | None) -> tuple | None:
        """A slot's readiness answered; returns a new readiness watch when its actor had to be replaced."""
        slot = self.slots[index]
        if generation != slot.generation:
            return None
        if error is None:
            slot.state = "ready"
            return None
        if "ModelMismatchError" in str(error):
            log.error("worker %d refused to start: %s", index, str(error).splitlines()[-1])
            slot.state, slot.actor = "refused", None  # never replaced: the pinned file changed
            self.refused += 1
            return None
        return self.replace(index, generation, error)

    def replace(self, index: int, generation: int, error: BaseException) -> tuple | None:
        """The slot's actor of `generation` died: start another (once per death)."""
        slot = self.slots[index]
        if generation != slot.generation or slot.state == "refused":
            return None
        self.lost += 1
        log.warning("worker %d died%s; replacing it", index, " with its node" if died_with_node(error) else "")
        try:
            ray.kill(slot.actor)
        except Exception:  # already gone
            pass
        slot.actor, slot.generation, slot.state = self.make_actor(), slot.generation + 1, "starting"
        return slot.actor.ready.remote(), index, slot.generation

    def free(self, per_worker: int) -> list[int]:
        """Ready slots with room for another item, least loaded first."""
        ready = [i for i, s in enumerate(self.slots) if s.state == "ready" and self.load(i) < per_worker]
        return sorted(ready, key=self.load)

    def _current(self, slot: Slot) -> list:
        return [(item, weight) for generation, item, weight in slot.items if generation == slot.generation]

    def load(self, index: int) -> int:
        """How much the slot's current actor has been given and not finished (an item weighs 1, a long
        one as much as a worker holds)."""
        return sum(weight for _, weight in self._current(self.slots[index]))

    def dispatch(self, index: int, call: Callable[[Any], Any], item, weight: int = 1) -> tuple[Any, int]:
        slot = self.slots[index]
        slot.items.append((slot.generation, item, weight))
        return call(slot.actor), slot.generation

    def finished(self, index: int, item) -> None:
        slot = self.slots[index]
        slot.items = [(g, other, w) for g, other, w in slot.items if other is not item]

    @property
    def alive(self) -> int:
        return sum(slot.state != "refused" for slot in self.slots)

    @property
    def ready(self) -> int:
        return sum(slot.state == "ready" for slot in self.slots)

    def shutdown(self) -> None:
        for slot in self.slots:
            if slot.actor is not None:
                try:
                    ray.kill(slot.actor)
                except Exception:  # already gone
                    pass
