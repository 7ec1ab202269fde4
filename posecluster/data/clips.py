"""Short clips of consecutive frames from unlabeled videos (local or S3), for the unsupervised losses.

Each draw picks a video and a start frame at random (seeded per worker), and decodes the clip through
posecluster.data.video (the one seam that numbers frames). A clip the decoder cannot give whole (damaged
stretch, too short a video) is skipped and another is drawn.
"""

from __future__ import annotations

import numpy as np

from posecluster.data.video import DecodeReport, VideoInfo, find_videos, probe, read_frames
from posecluster.errors import InputError


class ClipSampler:
    def __init__(self, videos: list[str], clip_frames: int, seed: int = 0):
        if not videos:
            raise InputError("<no videos>", "no videos to draw unlabeled clips from (set unsupervised.videos)")
        try:
            uris = find_videos(videos)
        except InputError as exc:
            raise InputError(exc.source, f"{exc.detail}; no videos to draw unlabeled clips from "
                                         "(set unsupervised.videos)") from None
        self.infos: list[VideoInfo] = [info for info in map(probe, uris) if info.frame_count >= clip_frames]
        if not self.infos:
            raise InputError(uris[0], f"no video has the {clip_frames} frames a clip needs")
        self.clip_frames = clip_frames
        self.rng = np.random.default_rng(seed)

    def sample(self, attempts: int = 8) -> np.ndarray:
        """uint8 (clip_frames, H, W, 3) consecutive frames."""
        for _ in range(attempts):
            info = self.infos[int(self.rng.integers(len(self.infos)))]
            start = int(self.rng.integers(0, info.frame_count - self.clip_frames + 1))
            report = DecodeReport()
            frames = [frame for _, frame in read_frames(info, start, start + self.clip_frames, report)]
            if len(frames) == self.clip_frames:
                return np.stack(frames)
        raise InputError(self.infos[0].uri, f"no whole clip of {self.clip_frames} frames in {attempts} draws")


def spread_frames(videos: list[str], count: int) -> list[np.ndarray]:
    """Up to `count` frames spread evenly over the videos (folders searched as find_videos does), for
    checks that should see the frames inference will see, not only the labeled ones. Videos that cannot
    be read are passed over: the check then rests on fewer frames."""
    infos = []
    try:
        found = find_videos(videos)
    except (InputError, FileNotFoundError):  # no video there (or no videos/ folder, as DeepLabCut's examples
        found = []                            # ship): the check rests on the labeled images alone
    for uri in found:
        try:
            info = probe(uri)
        except InputError:
            continue
        if info.frame_count:
            infos.append(info)
    frames: list[np.ndarray] = []
    for n, info in enumerate(infos):
        share = count // len(infos) + (n < count % len(infos))
        for index in np.linspace(0, info.frame_count - 1, num=min(share, info.frame_count)).round().astype(int):
            frames += [frame for _, frame in read_frames(info, int(index), int(index) + 1, DecodeReport())]
    return frames
