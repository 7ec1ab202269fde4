"""extract-outlier-frames for one analysed video: find suspicious frames, keep at most n per video
(k-means over their thumbnails, so they are diverse), and write them into the project with the network's
predictions as initial labels, ready to be corrected in any DLC-compatible labeling tool.

Beside the frames, as DeepLabCut does, `machinelabels-iter<N>.h5` holds the raw predictions (with
likelihood); `outliers-iter<N>.json` records what was proposed, so `merge` can tell corrected rows from
untouched ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from posecluster import storage
from posecluster.analysis.ensemble_smoothing import read_ensemble_variance
from posecluster.analysis.outliers import OutlierOptions, find_outliers
from posecluster.data.formats import dlc
from posecluster.data.formats.poses import pose_frame, read_pose_table, read_track
from posecluster.data.tracks import PoseTrack
from posecluster.data.video import VideoInfo, probe
from posecluster.errors import InputError
from posecluster.labeling.frames import kmeans_indices, read_selected, thumbnails
from posecluster.labeling.project_frames import add_frames, claim_folder, image_name, labeled_folder


@dataclass
class OutlierFrames:
    video: str
    folder: str
    candidates: int = 0
    indices: list[int] = field(default_factory=list)
    reasons: dict[int, list[str]] = field(default_factory=dict)
    new_images: list[str] = field(default_factory=list)
    error: str = ""


def proposals_name(iteration: int) -> str:
    return f"outliers-iter{iteration}.json"


def proposals_uri(project_uri: str, folder: str, iteration: int) -> str:
    return storage.join(project_uri, folder, proposals_name(iteration))


def extract_outliers(video_uri: str, table_uri: str, project_uri: str, options: OutlierOptions, n: int = 20,
                     seed: int = 0, variance_uri: str | None = None) -> OutlierFrames:
    """`variance_uri`: an ensemble analysis's variance table, read for the "ensemble" criterion."""
    return extract_track_outliers(video_uri, table_uri, read_track(table_uri), project_uri, options, n, seed,
                                  variance_uri)


def extract_track_outliers(video_uri: str, table_uri: str, track: PoseTrack, project_uri: str,
                           options: OutlierOptions, n: int = 20, seed: int = 0,
                           variance_uri: str | None = None) -> OutlierFrames:
    """extract_outliers for the single-animal table at `table_uri`, already read as `track`."""
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    if project.multianimal:
        raise InputError(table_uri, f"a single-animal pose table, but {project_uri} is a multi-animal project: "
                                    "analyze the video with the project's multi-animal model")
    if list(track.bodyparts) != list(project.bodyparts):
        raise InputError(table_uri, f"body parts {track.bodyparts} differ from the project's {project.bodyparts}")
    info = video_of_table(video_uri, table_uri, len(track))
    folder = labeled_folder(video_uri)
    result = OutlierFrames(video=video_uri, folder=folder)
    ensemble_var = None
    if "ensemble" in options.algorithms:
        if not variance_uri or not storage.exists(variance_uri):
            raise InputError(table_uri, f"the ensemble criterion needs {variance_uri or 'a variance table'} "
                                        "beside it: analyze the video with an ensemble model")
        ensemble_var = read_ensemble_variance(read_pose_table(variance_uri), list(project.bodyparts))
        if len(ensemble_var) != len(track):
            raise InputError(variance_uri, f"{len(ensemble_var)} rows but the pose table has {len(track)}")
    frames = propose_frames(result, find_outliers(track, options, ensemble_var), info, n, seed, project_uri)
    if frames is None:
        return result
    names = list(frames)
    proposed = track.poses[result.indices]
    initial = proposed[..., :2].copy()
    initial[proposed[..., 2] < project.pcutoff] = np.nan  # below p-cutoff: left for the labeler to place
    result.new_images = add_frames(project_uri, project, folder, frames, initial)
    machine = pose_frame(track.scorer, list(track.bodyparts), 0, track.poses[result.indices])
    add_machine_labels(project_uri, folder, project.iteration, machine, names, read_pose_table)
    record_proposals(project_uri, folder, project.iteration, result, names, list(initial))
    return result


def video_of_table(video_uri: str, table_uri: str, rows: int) -> VideoInfo:
    """The video's facts, once its frame count is checked to be the table's row count."""
    info = probe(video_uri)
    if rows != info.frame_count:
        raise InputError(table_uri, f"{rows} rows but {video_uri} has {info.frame_count} frames: "
                                    "not this video's table?")
    return info


def pick_frames(info: VideoInfo, flagged: dict[int, list[str]], n: int, seed: int) -> list[int]:
    """The flagged frames, or n of them chosen by k-means over their thumbnails (diverse ones)."""
    candidates = np.asarray(sorted(flagged))
    if len(candidates) <= n:
        return [int(i) for i in candidates]
    indices, features = thumbnails(info, int(candidates[0]), int(candidates[-1]) + 1, only={int(c) for c in candidates})
    return kmeans_indices(indices, features, n, seed)


def propose_frames(result: OutlierFrames, flagged: dict[int, list[str]], info: VideoInfo, n: int, seed: int,
                   project_uri: str) -> dict[str, np.ndarray] | None:
    """Up to `n` of the flagged frames picked into `result` (candidates, indices, reasons), the video's
    labeled-data folder claimed for them, and those frames by their image names (None when none flagged)."""
    result.candidates = len(flagged)
    if not flagged:
        return None
    result.indices = pick_frames(info, flagged, n, seed)
    result.reasons = {i: flagged[i] for i in result.indices}
    claim_folder(project_uri, result.folder, result.video)
    return named_frames(info, result.folder, result.indices)


def named_frames(info: VideoInfo, folder: str, indices: list[int]) -> dict[str, np.ndarray]:
    """{DLC's image path: RGB} of the frames at `indices`."""
    return {image_name(folder, index, info.frame_count): rgb for index, rgb in read_selected(info, indices)}


def add_machine_labels(project_uri: str, folder: str, iteration: int, machine: pd.DataFrame, names: list[str],
                       read_previous) -> None:
    """machinelabels-iter<N>.h5 (DLC's file of raw predictions, rows = image paths): `machine` (a pose
    table of the proposed frames, in the table's own layout) with rows named `names`. Reruns add rows;
    existing rows are kept."""
    machine_uri = storage.join(project_uri, folder, f"machinelabels-iter{iteration}.h5")
    machine.index = pd.Index(names)
    if storage.exists(machine_uri):
        previous = read_previous(machine_uri)
        scorer = machine.columns.get_level_values("scorer")[0]
        # One scorer per file, as DeepLabCut's readers and refine expect: rows an earlier run's model
        # proposed keep their values under this run's scorer (concatenated as they were, the file would
        # hold two scorers' columns, each NaN on the other's rows).
        previous.columns = pd.MultiIndex.from_tuples([(scorer, *rest) for _, *rest in previous.columns],
                                                     names=previous.columns.names)
        machine = pd.concat([previous, machine[~machine.index.isin(previous.index)]])
    dlc.write_hdf(machine, machine_uri)


def record_proposals(project_uri: str, folder: str, iteration: int, result: OutlierFrames, names: list[str],
                     proposed: list[np.ndarray]) -> None:
    """The proposals that merge compares the corrected labels with: per image, its frame, the reasons and
    the proposed points (P, 2) in the order of the folder's table columns. Reruns keep earlier entries."""
    record_uri = proposals_uri(project_uri, folder, iteration)
    record = json.loads(storage.read_bytes(record_uri)) if storage.exists(record_uri) else {
        "video": result.video, "iteration": iteration, "frames": {}}
    for name, index, labels in zip(names, result.indices, proposed):
        record["frames"].setdefault(name, {"frame": index, "reasons": result.reasons[index],
                                           "proposed": np.where(np.isnan(labels), None, labels).tolist()})
    storage.atomic_write_bytes(record_uri, json.dumps(record, indent=1).encode())
