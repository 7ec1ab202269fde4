"""extract-frames over an archive: one Ray task per video; a bad video fails alone."""

from __future__ import annotations

import ray

from posecluster.cluster.runtime import connect
from posecluster.errors import InputError
from posecluster.labeling.extract import ExtractedFrames, ExtractOptions, extract_video, register_videos


@ray.remote(num_cpus=1, max_retries=2, retry_exceptions=False)
def _extract(video: str, project_uri: str, options: ExtractOptions) -> ExtractedFrames:
    try:
        return extract_video(video, project_uri, options)
    except (InputError, ValueError, OSError) as exc:  # bad input: reported, never fatal to the others
        return ExtractedFrames(video=video, folder="", error=str(exc))


def extract_archive(videos: list[str], project_uri: str, options: ExtractOptions) -> list[ExtractedFrames]:
    """Frames from every video in parallel on Ray (RAY_ADDRESS, or a local Ray); config.yaml's video_sets
    is updated once at the end by this driver, so tasks never write the same file."""
    connect()
    results = ray.get([_extract.remote(video, project_uri, options) for video in videos])
    register_videos(project_uri, [r.video for r in results if not r.error])
    return results
