"""Which frames of a video to label: uniform in time, or DeepLabCut's k-means on tiny grayscale frames.

k-means follows DLC's KmeansbasedFrameselection: frames downsampled to 30 px width, grayscale, flattened,
mean-subtracted, clustered with MiniBatchKMeans into n clusters, one frame per cluster. We take the frame
nearest each centroid (DLC draws a random member) so a rerun picks the same, most typical frames.
"""

from __future__ import annotations

import math

import av
import numpy as np

from posecluster.data.video import DecodeReport, VideoInfo, read_frames
from posecluster.errors import InputError

THUMBNAIL_WIDTH = 30


def frame_range(info: VideoInfo, start: float, stop: float) -> tuple[int, int]:
    """[start, stop) as fractions of the video (DLC's config start/stop) -> frame indices."""
    if not 0.0 <= start < stop <= 1.0:
        raise ValueError(f"need 0 <= start < stop <= 1, got start={start}, stop={stop}")
    first, last = int(round(start * info.frame_count)), int(round(stop * info.frame_count))
    return first, max(last, first + 1)


def uniform_indices(first: int, last: int, n: int) -> list[int]:
    """n frames evenly spread over [first, last): the middle of n equal stretches."""
    span = last - first
    if n >= span:
        return list(range(first, last))
    return sorted({first + int((i + 0.5) * span / n) for i in range(n)})


def thumbnails(info: VideoInfo, first: int, last: int, max_frames: int = 20000,
               width: int = THUMBNAIL_WIDTH, only: set[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices, float32 (N, h*w) grayscale thumbnails) of [first, last): every `step`-th frame so
    that at most max_frames are kept, or exactly the frames in `only`. FFmpeg does the scaling, so memory
    is tiny even for hour-long videos."""
    height = max(1, round(width * info.height / info.width))
    step = max(1, math.ceil((last - first) / max_frames))
    # The reader turns what `convert` returns upright: scale the stored (unrotated) frame accordingly.
    coded = (height, width) if info.rotation in (90, 270) else (width, height)

    def small_gray(frame: av.VideoFrame) -> np.ndarray:
        return frame.reformat(width=coded[0], height=coded[1], format="gray").to_ndarray()

    indices, rows = [], []
    for index, gray in read_frames(info, first, last, DecodeReport(), convert=small_gray):
        if (index in only) if only is not None else (index - first) % step == 0:
            indices.append(index)
            rows.append(gray.reshape(-1).astype(np.float32))
    return np.asarray(indices, dtype=np.int64), np.stack(rows) if rows else np.zeros((0, width * height), np.float32)


def kmeans_indices(indices: np.ndarray, features: np.ndarray, n: int, seed: int = 0) -> list[int]:
    """One frame per k-means cluster of `features` (rows aligned with `indices`): the member nearest
    its centroid. Fewer candidates than n -> all of them."""
    from sklearn.cluster import MiniBatchKMeans

    if len(indices) <= n:
        return sorted(int(i) for i in indices)
    data = features - features.mean(axis=0)
    kmeans = MiniBatchKMeans(n_clusters=n, batch_size=max(100, 3 * n), max_iter=50, tol=1e-3,
                             n_init=3, random_state=seed).fit(data)
    chosen = set()
    distances = ((data - kmeans.cluster_centers_[kmeans.labels_]) ** 2).sum(axis=1)
    for cluster in range(n):
        members = np.flatnonzero(kmeans.labels_ == cluster)
        if len(members):
            chosen.add(int(indices[members[np.argmin(distances[members])]]))
    return sorted(chosen)


def read_selected(info: VideoInfo, indices: list[int]):
    """Yield (index, RGB frame) for the chosen frames, seeking to each (decoding only its GOP)."""
    report = DecodeReport()
    for index in indices:
        yield from read_frames(info, index, index + 1, report)
    if report.missing:
        first = min(report.missing)
        raise InputError(info.uri, f"could not be decoded ({report.missing[first]})", frame=first)
