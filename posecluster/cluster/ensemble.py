"""`posecluster train --ensemble K`: K members trained as parallel Ray trials (the sweep's trial machinery),
each an ordinary run folder `<out>/member-<k>/`, then `<out>/ensemble.json` naming them.

Members differ in their seed (initialisation, augmentation, batch order) and, with vary_shuffles, in
their train/test split too (Lightning Pose's ensembles vary the seed; DeepLabCut's shuffles vary the split).
The manifest is written last, so an ensemble folder with ensemble.json is complete.
"""

from __future__ import annotations

import ray

from posecluster.cluster.sweep import _trial
from posecluster.config import PoseclusterConfig
from posecluster.model.ensemble import member_uri, write_manifest


def member_config(config: PoseclusterConfig, k: int, vary_shuffles: bool) -> PoseclusterConfig:
    overrides: dict = {"train": {"seed": config.train.seed + k, "progress": False}}
    if vary_shuffles:
        overrides["split"] = {"shuffle": config.split.shuffle + k}
    return config.with_overrides(overrides)


def train_ensemble(config: PoseclusterConfig, project_uri: str, out_uri: str, members: int,
                   vary_shuffles: bool = False, cpus_per_member: float = 1.0,
                   gpus_per_member: float = 0.0) -> list[dict]:
    """Train and evaluate the members in parallel; returns one record per member (as in ensemble.json)."""
    from posecluster.cluster.runtime import connect

    if members < 1:
        raise ValueError(f"--ensemble must be at least 1, got {members}")
    connect()
    refs = []
    for k in range(members):
        trial = member_config(config, k, vary_shuffles)
        refs.append(_trial.options(num_cpus=cpus_per_member, num_gpus=gpus_per_member).remote(
            trial.to_yaml(), project_uri, member_uri(out_uri, k), int(max(1, cpus_per_member))))
    records = []
    for k, row in enumerate(ray.get(refs)):
        trial = member_config(config, k, vary_shuffles)
        records.append({"folder": f"member-{k}", "seed": trial.train.seed, "shuffle": trial.split.shuffle,
                        "test_error_px": row["test_error_px"], "train_error_px": row["train_error_px"],
                        "train_seconds": row["train_seconds"]})
    write_manifest(out_uri, records)
    return records
