"""Independent per-video work (extract-frames, filter, outliers, label-video, plot) as one Ray task per video."""

from __future__ import annotations

from typing import Callable

import ray

from posecluster.cluster.runtime import connect, remote
from posecluster.errors import PER_INPUT_ERRORS


@remote(num_cpus=1)
def _run(call: Callable[[], dict]) -> tuple[dict, str]:
    try:
        return call(), ""
    except PER_INPUT_ERRORS as exc:  # bad input: reported, the others go on
        return {}, str(exc)


def run_each(calls: list[Callable[[], dict]]) -> list[tuple[dict, str]]:
    """(outputs, error) per call, in order, on Ray (RAY_ADDRESS, or a local Ray)."""
    connect()
    return ray.get([_run.remote(call) for call in calls])
