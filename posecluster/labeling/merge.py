"""merge: fold the refined outlier frames into the dataset as a new iteration (DLC's merge_datasets).

Every folder with proposals for the current iteration is checked: a row whose labels differ from what
was proposed was corrected by a person; a row left exactly as proposed was accepted as is (DLC keeps
both) unless `refined_only`, which drops untouched rows from the table. config.yaml's `iteration` goes up
by one; the next `posecluster train` reads the tables and so trains on the new labels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from posecluster import storage
from posecluster.data.formats import dlc
from posecluster.errors import InputError
from posecluster.labeling.folder_kinds import folder_kind
from posecluster.labeling.outliers import proposals_name


@dataclass
class FolderMerge:
    folder: str
    proposed: int = 0
    corrected: int = 0
    accepted: int = 0
    dropped: int = 0


@dataclass
class MergeReport:
    iteration: int  # the new iteration
    folders: list[FolderMerge] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.corrected + f.accepted for f in self.folders)


def _same(labels: np.ndarray, proposed: list) -> bool:
    expected = np.array([[np.nan if v is None else v for v in point] for point in proposed], dtype=np.float64)
    return bool(np.allclose(labels, expected, atol=1e-6, equal_nan=True))


def merge(project_uri: str, refined_only: bool = False) -> MergeReport:
    config_uri = storage.join(project_uri, "config.yaml")
    project = dlc.read_project_config(config_uri)
    iteration = project.iteration
    report = MergeReport(iteration=iteration + 1)
    labeled = storage.join(project_uri, "labeled-data")
    records = [uri for uri in storage.list_files(labeled, suffixes=(".json",))
               if storage.basename(uri) == proposals_name(iteration)] if storage.exists(labeled) else []
    if not records:
        raise InputError(project_uri, f"nothing to merge: no labeled-data/*/outliers-iter{iteration}.json "
                                      "(run `posecluster outliers` for this iteration first)")
    # A proposal lists a row's points in the table's column order (a multi-animal row: every animal's, then
    # the unique ones): the folder kind reads, compares and writes them.
    kind = folder_kind(project)
    for record_uri in sorted(records):
        record = json.loads(storage.read_bytes(record_uri))
        if record.get("merged"):
            continue
        folder = f"labeled-data/{storage.basename(storage.parent(record_uri))}"
        labels = kind.labels(project_uri, project, folder)
        row_of = {image: i for i, image in enumerate(labels.images)}
        summary = FolderMerge(folder=folder, proposed=len(record["frames"]))
        drop = set()
        for image, proposal in record["frames"].items():
            if image not in row_of:
                summary.dropped += 1  # deleted by the labeler: respected
                continue
            if _same(kind.points(labels, row_of[image]), proposal["proposed"]):
                if refined_only:
                    drop.add(row_of[image])
                    summary.dropped += 1
                else:
                    summary.accepted += 1
            else:
                summary.corrected += 1
        if drop and len(drop) == len(labels):  # nothing left in this folder: no table at all
            for suffix in ("h5", "csv"):
                storage.remove(dlc.table_uri(project_uri, folder, project.scorer, suffix))
        elif drop:
            kind.write(labels.subset([i for i in range(len(labels)) if i not in drop]), project_uri)
        record["merged"] = {"into_iteration": iteration + 1, **asdict(summary)}
        storage.atomic_write_bytes(record_uri, json.dumps(record, indent=1).encode())
        report.folders.append(summary)
    dlc.update_project_config(config_uri, {"iteration": iteration + 1})
    return report
