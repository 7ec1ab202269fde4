"""The job's scope travels with every Ray call (cluster/runtime.remote): a task, an actor's methods (plain
and streaming) and the threads they start check reads and writes in the worker process, not only in the
driver; a call made unconfined stays unconfined in the same worker processes afterwards."""

from __future__ import annotations

import pytest
import ray

from posecluster import storage
from posecluster.cluster.runtime import remote
from posecluster.cluster.tasks import run_each
from posecluster.storage.scope import OutOfScopeError, Scope, confined, start_thread


@remote(num_cpus=0)
def read_task(uri: str) -> bytes:
    return storage.read_bytes(uri)


@remote(num_cpus=0)
class Reader:
    def __init__(self, probe: str):
        self.probe = probe

    def read(self, uri: str) -> bytes:
        return storage.read_bytes(uri)

    def stream(self, uri: str):
        yield b"started"
        yield storage.read_bytes(uri)

    def on_a_thread(self, uri: str) -> str:
        seen = []

        def read():
            try:
                seen.append(storage.read_bytes(uri).decode())
            except OutOfScopeError as exc:
                seen.append(type(exc).__name__)

        start_thread(read, "test-reader").join()
        return seen[0]


@pytest.fixture
def labs(tmp_path):
    for lab in ("a", "b"):
        (tmp_path / lab).mkdir()
        (tmp_path / lab / "f.txt").write_bytes(f"lab {lab}".encode())
    return tmp_path


def test_tasks_and_actors_enforce_the_scope_they_were_sent(labs, ray_local):
    a, b = str(labs / "a"), str(labs / "b" / "f.txt")
    with confined(Scope.of([a])):
        assert ray.get(read_task.remote(f"{a}/f.txt")) == b"lab a"
        with pytest.raises(OutOfScopeError, match="outside this job's scope"):
            ray.get(read_task.options(num_cpus=0).remote(b))
        actor = Reader.remote(a)
        with pytest.raises(OutOfScopeError):
            ray.get(actor.read.remote(b))
        steps = actor.stream.remote(b)
        assert ray.get(next(steps)) == b"started"
        with pytest.raises(OutOfScopeError):
            ray.get(next(steps))
        assert ray.get(actor.on_a_thread.remote(b)) == "OutOfScopeError"
        outcomes = run_each([lambda: {"n": len(storage.read_bytes(b))}])  # extract-frames' per-video tasks
        assert outcomes[0][0] == {} and "outside this job's scope" in outcomes[0][1]
    # Unconfined callers (a person's own command line) are not held to an earlier job's scope.
    assert ray.get(read_task.remote(b)) == b"lab b"
    assert ray.get(Reader.remote(a).read.remote(b)) == b"lab b"


def test_ray_train_workers_enforce_the_drivers_scope(ray_local, synthetic_project, tmp_path):
    """The workers read the project themselves: one outside the job's scope is refused in the worker."""
    from posecluster.cluster.training import train_distributed
    from posecluster.data.formats.dlc import read_project_config
    from tests.conftest import tiny_config

    config = tiny_config(read_project_config(f"{synthetic_project.uri}/config.yaml"), synthetic_project.uri, epochs=1)
    with confined(Scope.of([str(tmp_path)])):
        with pytest.raises(Exception) as caught:
            train_distributed(config, synthetic_project.uri, str(tmp_path / "run"), workers=1, max_failures=0)
    assert "outside this job's scope" in str(caught.value) and synthetic_project.uri in str(caught.value)
    assert not (tmp_path / "run" / "model.pt").exists()
