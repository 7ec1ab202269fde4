"""An ensemble's tables (the smoothed track, its variances and each member's; named in infer.ensemble's
docstring) from its members' poses: written by `analyze` and by an archive job's join, which runs without
torch (the members' poses come from segments).
"""

from __future__ import annotations

import numpy as np

from posecluster.analysis.ensemble_smoothing import smooth_ensemble, variance_frame
from posecluster.data.formats.dlc import write_hdf
from posecluster.data.formats.poses import write_track
from posecluster.data.tracks import PoseTrack
from posecluster.infer.segments import Joined, read_segments

VARIANCE_SUFFIX = "_ensemble_variance.h5"


def write_ensemble_outputs(base: str, scorer: str, bodyparts: list[str], members: np.ndarray,
                           formats: tuple[str, ...] = (), smooth_param: float | None = None) -> tuple[dict, list, str]:
    """Smooth the members and write the tables named in the module docstring; returns (outputs, params,
    the h5 table's sha256)."""
    smoothed = smooth_ensemble(members, smooth_param=smooth_param)
    outputs = {"h5": f"{base}.h5"}
    outputs.update({fmt: f"{base}.{fmt}" for fmt in formats})
    digests = {uri: write_track(PoseTrack(scorer, list(bodyparts), smoothed.poses), uri) for uri in outputs.values()}
    outputs["ensemble_variance"] = f"{base}{VARIANCE_SUFFIX}"
    write_hdf(variance_frame(scorer, bodyparts, smoothed.ensemble_var, smoothed.posterior_var),
              outputs["ensemble_variance"])
    for k, member in enumerate(members):
        outputs[f"member{k}"] = f"{base}_member{k}.h5"
        write_track(PoseTrack(scorer, list(bodyparts), member), outputs[f"member{k}"])
    return outputs, smoothed.smooth_params, digests[outputs["h5"]]


def smoothing_meta(members: list[dict], params) -> dict:
    """The `ensemble` record of an ensemble's `_meta.json` (analyze and archive alike)."""
    return {"members": members, "smoother": "ensemble-kalman-smoother (singlecam)", "smooth_params": params,
            "likelihood": "mean of the members' likelihoods"}


def join_ensemble_segments(segment_uris: list[str], scorer: str, bodyparts: list[str], frame_count: int | None,
                           base_uri: str, formats: tuple[str, ...] = ()) -> tuple[Joined, list]:
    """An archive video's ensemble segments -> the smoothed, variance and member tables (as analyze
    writes them); returns what the join found and the smoothing parameters. The smoother needs the whole
    track, so the members' poses are held in memory: frames x members x body parts x 3 float32 (72 MB
    for 100,000 frames, 3 members, 20 parts)."""
    chunks, joined = [], Joined()
    for poses, result in read_segments(segment_uris, frame_count, base_uri):
        chunks.append(poses)
        joined.add(result)
    if not chunks:
        raise ValueError(f"{base_uri}: a video without frames cannot be smoothed")
    members = np.concatenate(chunks).transpose(1, 0, 2, 3)  # (members, frames, body parts, 3)
    joined.outputs, params, joined.table_sha256 = write_ensemble_outputs(base_uri, scorer, bodyparts, members, formats)
    return joined, params
