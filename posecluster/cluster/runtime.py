"""Connecting to Ray: the cluster in RAY_ADDRESS (set inside `ray job submit`), else a local instance; and
`remote`, Ray's decorator for posecluster's tasks and actors with the job's scope carried into each call."""

from __future__ import annotations

import inspect
import logging
import os

import ray

from posecluster.storage import scope as job_scope

log = logging.getLogger(__name__)


def connect(num_cpus: int | None = None) -> str:
    """Use the running Ray, the cluster named by RAY_ADDRESS, or start a local one; returns which."""
    if ray.is_initialized():
        return "already connected"
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return f"cluster at {address}"
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
    return "local Ray"


def cluster_slots(cpus_per_worker: float, gpus_per_worker: float) -> int:
    """How many workers of this shape the cluster can hold right now."""
    resources = ray.cluster_resources()
    if gpus_per_worker > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // max(cpus_per_worker, 1e-9)))


def remote(*function_or_class, **options):
    """ray.remote for posecluster's tasks and actors, carrying the caller's scope (storage/scope.py) with
    every call: `.remote(...)` sends the scope current where it is called, and the task (or each actor
    method) installs it before it runs, so a worker checks every read and write as the job's driver does.
    Used as `@remote` or `@remote(num_cpus=0, ...)`; `.options(...)` works as Ray's does."""
    if function_or_class and not options:
        return _scoped(function_or_class[0], {})
    return lambda target: _scoped(target, options)


def _scoped(target, options: dict):
    entry = _actor_entry(target) if inspect.isclass(target) else _function_entry(target)
    return _ScopedHandle(ray.remote(**options)(entry) if options else ray.remote(entry))


class _ScopedHandle:
    """A Ray remote function or actor class whose calls prepend the current scope to their arguments."""

    def __init__(self, handle):
        self._handle = handle

    def options(self, **options) -> "_ScopedHandle":
        return _ScopedHandle(self._handle.options(**options))

    def remote(self, *args, **kwargs):
        return self._handle.remote(job_scope.current(), *args, **kwargs)


def _named_like(entry, original):
    # Not functools.wraps: Ray reads the entry's own signature (job_scope first), which __wrapped__ would hide.
    entry.__name__, entry.__qualname__, entry.__doc__ = original.__name__, original.__qualname__, original.__doc__
    return entry


def _function_entry(function):
    def entry(scope, *args, **kwargs):
        job_scope.install(scope)
        return function(*args, **kwargs)

    return _named_like(entry, function)


def _method_entry(method):
    if inspect.isgeneratorfunction(method):
        def generator(self, *args, **kwargs):
            steps = method(self, *args, **kwargs)
            while True:  # installed again at every step: Ray may resume a generator in another context
                job_scope.install(self._job_scope)
                try:
                    item = next(steps)
                except StopIteration as stop:
                    return stop.value
                yield item

        return _named_like(generator, method)

    def plain(self, *args, **kwargs):
        job_scope.install(self._job_scope)
        return method(self, *args, **kwargs)

    return _named_like(plain, method)


def _actor_entry(cls):
    class Scoped(cls):
        def __init__(self, scope, *args, **kwargs):
            job_scope.install(scope)
            self._job_scope = scope
            super().__init__(*args, **kwargs)

    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if not name.startswith("_"):
            setattr(Scoped, name, _method_entry(member))
    Scoped.__name__, Scoped.__qualname__, Scoped.__doc__ = cls.__name__, cls.__qualname__, cls.__doc__
    return Scoped
