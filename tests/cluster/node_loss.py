"""Node loss on a real multi-node Ray cluster on one machine (ray.cluster_utils.Cluster): a head with no
CPUs for work and three one-CPU worker nodes, each a raylet with its own object store.

Run by tests/cluster/test_node_loss.py in a process of its own (a test session holds one Ray; this needs
another), with the S3 endpoint and credentials in the environment:

    python -m tests.cluster.node_loss archive ROOT      (ROOT holds models/tiny and videos/)
    python -m tests.cluster.node_loss train PROJECT RUN

Prints one JSON line with what happened, for the test to check.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import ray
from ray.cluster_utils import Cluster


def start_cluster(worker_nodes: int = 3) -> tuple[Cluster, list]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(worker_nodes)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR")
    return cluster, nodes


def node_of(nodes: list, node_id: str):
    return next((n for n in nodes if n.node_id == node_id), None)


def archive(root: str) -> dict:
    from posecluster.cluster.archive import ArchiveOptions, run_archive

    cluster, nodes = start_cluster(worker_nodes=2)  # no spare: the cluster shrinks below --workers
    removed: dict = {}

    def remove_a_node(run) -> None:
        """After a few segments: remove the node of a busy worker (its raylet, object store and actor)."""
        if removed or run.report.segments_computed < 3:
            return
        # Where each worker lives, from the cluster's actor table (a call to a busy actor would wait
        # behind the items it is running, and the node would be removed once the work was over).
        busy = [s for s in run.pool.slots if s.state == "ready" and s.items]
        where = sorted(ray._private.state.actors(s.actor._actor_id.hex())["Address"]["NodeID"] for s in busy)
        target = node_of(nodes, where[0]) if where else None
        if target is None:
            return
        removed.update(node=target.node_id, busy_items=sum(len(s.items) for s in busy))
        cluster.remove_node(target, allow_graceful=False)

    options = ArchiveOptions(model=f"{root}/models/tiny", out=f"{root}/poses-node-loss", workers=2,
                             segment_frames=12, progress=False, small_video_bytes=0,
                             infer_overrides={"batch_size": 4})
    report = run_archive([f"{root}/videos/"], options, on_progress=remove_a_node)
    ray.shutdown()
    cluster.shutdown()
    return {"removed": removed, "status": report.status, "workers_lost": report.workers_lost,
            "videos": {v.uri: {"status": v.status, "error": v.error, "h5": v.outputs.get("h5", "")}
                       for v in report.videos}}


def train(project_uri: str, run: str) -> dict:
    from ray.util.state import list_actors

    from posecluster import storage
    from posecluster.cluster.training import train_distributed
    from posecluster.config import PoseclusterConfig
    from posecluster.data.project import read_project

    cluster, nodes = start_cluster()
    project = read_project(project_uri)
    config = PoseclusterConfig(project=project.config, project_uri=project_uri).with_overrides({
        "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 1.0},
        "augment": {"crop_size": [64, 64]},
        "train": {"epochs": 4, "batch_size": 2, "progress": False, "checkpoint_every_epochs": 1},
        "split": {"training_fraction": 0.75},
    })
    removed: dict = {}

    def remove_a_training_node() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not storage.exists(f"{run}/checkpoints/epoch-0001/state.pt"):
            time.sleep(0.5)
        alive = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
        train_nodes = sorted({a.node_id for a in alive if "TrainWorker" in (a.class_name or "")})
        if train_nodes:
            target = node_of(nodes, train_nodes[0])
            removed.update(node=target.node_id, after_checkpoint=1)
            cluster.remove_node(target, allow_graceful=False)

    chaos = threading.Thread(target=remove_a_training_node, daemon=True)
    chaos.start()
    result = train_distributed(config, project_uri, run, workers=2)
    chaos.join(timeout=5)
    ray.shutdown()
    cluster.shutdown()
    return {"removed": removed, "epochs": result.epochs, "model": result.model_uri}


if __name__ == "__main__":
    scenario, *args = sys.argv[1:]
    outcome = archive(*args) if scenario == "archive" else train(*args)
    print("RESULT " + json.dumps(outcome))
