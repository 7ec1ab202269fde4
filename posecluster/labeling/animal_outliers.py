"""extract-outlier-frames for a video analysed by a multi-animal model (its tracked `_el` table): each
animal's track judged alone (analysis.animals), at most n frames chosen as for single-animal tables, and
written into the maDLC project's labeled-data with the tracked animals as initial labels, in the
project's CollectedData layout (scorer / individuals / bodyparts / coords, unique parts under "single").

Beside the frames, as DeepLabCut does for multi-animal projects, `machinelabels-iter<N>.h5` holds the
tracked table's rows of those frames (every individual, with likelihood), and `outliers-iter<N>.json`
the proposed points in the order of the CollectedData columns (every individual's parts, then unique).
"""

from __future__ import annotations

import numpy as np

from posecluster import storage
from posecluster.analysis.animals import find_animal_outliers
from posecluster.analysis.outliers import OutlierOptions
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc, madlc
from posecluster.data.multianimal import AnimalTracks
from posecluster.errors import InputError
from posecluster.labeling.animal_frames import add_animal_frames
from posecluster.labeling.outliers import (
    OutlierFrames, add_machine_labels, propose_frames, record_proposals, video_of_table,
)
from posecluster.labeling.project_frames import labeled_folder


def _check_names(tracks: AnimalTracks, table_uri: str, project: ProjectConfig, project_uri: str) -> None:
    if not project.multianimal:
        raise InputError(table_uri, f"a multi-animal (tracked) table, but {project_uri} is a single-animal project")
    for what, found, expected in (("individuals", tracks.individuals, project.individuals),
                                  ("body parts", tracks.bodyparts, project.bodyparts),
                                  ("unique body parts", tracks.unique_bodyparts, project.unique_bodyparts)):
        if list(found) != list(expected):
            raise InputError(table_uri, f"{what} {list(found)} differ from the project's {list(expected)}")


def extract_animal_outliers(video_uri: str, table_uri: str, tracks: AnimalTracks, project_uri: str,
                            options: OutlierOptions, n: int = 20, seed: int = 0,
                            variance_uri: str | None = None) -> OutlierFrames:
    """Outlier frames of the tracked table at `table_uri` (read as `tracks`) into the project.
    `variance_uri` is unused: multi-animal models are not run as ensembles."""
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    _check_names(tracks, table_uri, project, project_uri)
    if "ensemble" in options.algorithms:
        raise InputError(table_uri, "the ensemble criterion needs an ensemble's variance; multi-animal models "
                                    "are not run as ensembles (choose jump, uncertain or fitting)")
    info = video_of_table(video_uri, table_uri, len(tracks))
    folder = labeled_folder(video_uri)
    result = OutlierFrames(video=video_uri, folder=folder)
    frames = propose_frames(result, find_animal_outliers(tracks, options), info, n, seed, project_uri)
    if frames is None:
        return result
    names = list(frames)
    chosen = tracks.with_poses(tracks.poses[result.indices], tracks.unique_poses[result.indices])
    # Below the p-cutoff (or absent): left for the labeler to place.
    keypoints = np.where((chosen.likelihood >= project.pcutoff)[..., None], chosen.xy, np.nan)
    unique = np.where((chosen.unique_poses[..., 2] >= project.pcutoff)[..., None], chosen.unique_poses[..., :2], np.nan)
    result.new_images = add_animal_frames(project_uri, project, folder, frames, keypoints, unique)
    add_machine_labels(project_uri, folder, project.iteration, madlc.tracks_to_table(chosen), names,
                       lambda uri: madlc.read_table(uri, what="machine labels"))
    flat = [np.concatenate([k.reshape(-1, 2), u]) for k, u in zip(keypoints, unique)]
    record_proposals(project_uri, folder, project.iteration, result, names, flat)
    return result
