"""extract-frames for one video: choose frames (uniform or k-means) and write them into the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from posecluster import storage
from posecluster.data.formats import dlc
from posecluster.data.video import VideoInfo, probe
from posecluster.labeling.frames import frame_range, kmeans_indices, read_selected, thumbnails, uniform_indices
from posecluster.labeling.folder_kinds import folder_kind
from posecluster.labeling.project_frames import claim_folder, image_name, labeled_folder
from posecluster.storage.scope import check as check_scope


@dataclass(frozen=True)
class ExtractOptions:
    method: Literal["kmeans", "uniform"] = "kmeans"
    n: int = 20  # DLC's numframes2pick
    start: float = 0.0  # fractions of the video, as DLC's config start/stop
    stop: float = 1.0
    seed: int = 0
    max_cluster_frames: int = 20000  # longer videos are subsampled before clustering


@dataclass
class ExtractedFrames:
    video: str
    folder: str
    indices: list[int] = field(default_factory=list)
    new_images: list[str] = field(default_factory=list)
    width: int = 0
    height: int = 0


def choose_frames(info: VideoInfo, options: ExtractOptions) -> list[int]:
    first, last = frame_range(info, options.start, options.stop)
    if options.method == "uniform":
        return uniform_indices(first, last, options.n)
    if options.method != "kmeans":
        raise ValueError(f"unknown frame selection method {options.method!r} (kmeans, uniform)")
    indices, features = thumbnails(info, first, last, options.max_cluster_frames)
    return kmeans_indices(indices, features, options.n, options.seed)


def extract_video(video_uri: str, project_uri: str, options: ExtractOptions) -> ExtractedFrames:
    project = dlc.read_project_config(storage.join(project_uri, "config.yaml"))
    folder = labeled_folder(video_uri)
    claim_folder(project_uri, folder, video_uri)
    info = probe(video_uri)
    indices = choose_frames(info, options)
    frames = {image_name(folder, index, info.frame_count): rgb for index, rgb in read_selected(info, indices)}
    new = folder_kind(project).add_frames(project_uri, project, folder, frames)
    return ExtractedFrames(video=video_uri, folder=folder, indices=indices, new_images=new,
                           width=info.width, height=info.height)


def check_video_sets(project_uri: str) -> dict:
    """config.yaml's video_sets, every absolute location in it within the job's scope (refused naming the
    file): a project must not point this job, or a DeepLabCut tool run on it later, at another lab's
    videos. DLC's placeholders and relative names are no locations and pass."""
    config_uri = storage.join(project_uri, "config.yaml")
    video_sets = dict(dlc.read_raw_project_config(config_uri).get("video_sets") or {})
    for video in video_sets:
        if isinstance(video, str) and ("://" in video or video.startswith(("/", "~"))):
            check_scope(video, "read", named_by=config_uri)
    return video_sets


def register_videos(project_uri: str, sizes: dict[str, tuple[int, int]]) -> None:
    """Add the videos ({URI: (width, height)}) to config.yaml's video_sets as DLC does, keeping
    everything else in the file; the file is rewritten only when something was added."""
    config_uri = storage.join(project_uri, "config.yaml")
    video_sets = check_video_sets(project_uri)
    added = {video: {"crop": f"0, {width}, 0, {height}"} for video, (width, height) in sizes.items()
             if video not in video_sets}
    if added:
        dlc.update_project_config(config_uri, {"video_sets": {**video_sets, **added}})
