"""Connecting to Ray: the cluster in RAY_ADDRESS (set inside `ray job submit`), else a local instance."""

from __future__ import annotations

import logging
import os

import ray

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
