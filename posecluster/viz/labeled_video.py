"""The video with the predicted body parts drawn on it, decoded and re-encoded in one streaming pass
(memory flat in video length) and published whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import av
import numpy as np
from PIL import Image, ImageDraw

from posecluster import storage
from posecluster.data.tracks import PoseTrack
from posecluster.data.video import DecodeReport, probe, read_frames
from posecluster.errors import InputError
from posecluster.viz.colors import bodypart_colors


@dataclass(frozen=True)
class LabelOptions:
    pcutoff: float = 0.6  # parts below this likelihood are not drawn
    radius: int = 0  # marker radius in pixels; 0: 1% of the frame diagonal, at least 2
    skeleton: tuple[tuple[str, str], ...] = ()  # body-part pairs joined by a line
    trail: int = 0  # also draw each part's last `trail` positions
    colormap: str = "rainbow"
    crf: int = 20


# Written when the source does not say its frame rate (the frames and their count are what matter).
FALLBACK_FPS = 30


@dataclass
class LabeledVideo:
    uri: str
    frames: int
    missing_frames: list[int] = field(default_factory=list)  # written as the previous frame (or blank)
    fps: float = 0.0
    notes: list[str] = field(default_factory=list)


class FrameLabeler:
    """Draws one frame's parts, skeleton and trail (kept small and separate from the video plumbing).

    It draws points (frames, P, 3) with a colour each and pairs of point indices joined by a line; a
    single-animal track gives one point per body part, coloured by body part (multi-animal tables make
    their points in viz.animal_video)."""

    def __init__(self, track: PoseTrack, options: LabelOptions, width: int, height: int):
        index = {part: k for k, part in enumerate(track.bodyparts)}
        unknown = [p for pair in options.skeleton for p in pair if p not in index]
        if unknown:
            raise ValueError(f"skeleton names body parts not in the table: {sorted(set(unknown))}")
        self.setup(track.poses, bodypart_colors(len(track.bodyparts), options.colormap),
                   [(index[a], index[b]) for a, b in options.skeleton], options, width, height)

    def setup(self, points: np.ndarray, colors: np.ndarray, pairs: list[tuple[int, int]], options: LabelOptions,
              width: int, height: int) -> None:
        self.points, self.options, self.pairs = points, options, pairs
        self.colors = [tuple(int(v) for v in c) for c in colors]
        self.radius = options.radius or max(2, round(0.01 * float(np.hypot(width, height))))

    def __len__(self) -> int:
        return len(self.points)

    def visible(self, frame: int) -> np.ndarray:
        points = self.points[frame]
        return (points[:, 2] >= self.options.pcutoff) & ~np.isnan(points[:, :2]).any(axis=1)

    def draw(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        image = Image.fromarray(rgb)
        draw = ImageDraw.Draw(image)
        points, shown = self.points[frame], self.visible(frame)
        for a, b in self.pairs:
            if shown[a] and shown[b]:
                draw.line([tuple(points[a, :2]), tuple(points[b, :2])], fill=(255, 255, 255), width=max(1, self.radius // 2))
        for past in range(max(0, frame - self.options.trail), frame):
            past_shown = self.visible(past)
            for k, (x, y) in enumerate(self.points[past, :, :2]):
                if past_shown[k]:
                    r = max(1, self.radius // 3)
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=self.colors[k])
        r = self.radius
        for k, (x, y) in enumerate(points[:, :2]):
            if shown[k]:
                draw.ellipse([x - r, y - r, x + r, y + r], fill=self.colors[k], outline=(0, 0, 0))
        return np.asarray(image)


def label_video(video_uri: str, track: PoseTrack, out_uri: str, options: LabelOptions) -> LabeledVideo:
    return write_labeled_video(video_uri, out_uri, options, lambda width, height: FrameLabeler(
        track, options, width, height))


def write_labeled_video(video_uri: str, out_uri: str, options: LabelOptions,
                        labeler_for: Callable[[int, int], FrameLabeler]) -> LabeledVideo:
    """The video with what `labeler_for(width, height)` draws on each frame (one row per frame)."""
    info = probe(video_uri)
    labeler = labeler_for(info.width, info.height)
    if len(labeler) != info.frame_count:
        raise InputError(video_uri, f"has {info.frame_count} frames but its pose table has {len(labeler)} rows")
    # libx264 with yuv420p needs even sizes: odd frames get one replicated edge row/column.
    width, height = info.width + info.width % 2, info.height + info.height % 2
    report = DecodeReport()
    notes = []
    fps = info.fps
    if not fps or not np.isfinite(fps):
        fps = FALLBACK_FPS
        notes.append(f"{video_uri}: frame rate unknown; written at {FALLBACK_FPS} frames/s")
    written = 0
    with storage.scratch_dir() as scratch:
        local = f"{scratch}/labeled.mp4"
        with av.open(local, mode="w", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(options.crf), "preset": "veryfast"}

            def write(rgb: np.ndarray) -> None:
                if rgb.shape[:2] != (height, width):
                    rgb = np.pad(rgb, ((0, height - rgb.shape[0]), (0, width - rgb.shape[1]), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)

            # Frame i of the output is frame i of the source: a frame that cannot be decoded is written as
            # the previous one (blank at the start), never dropped, so the counts stay equal.
            previous = np.zeros((info.height, info.width, 3), np.uint8)
            for index, rgb in read_frames(info, 0, info.frame_count, report):
                while written < index:
                    write(previous)
                    written += 1
                previous = rgb
                write(labeler.draw(rgb, index))
                written += 1
            while written < info.frame_count:
                write(previous)
                written += 1
            for packet in stream.encode():
                container.mux(packet)
        storage.atomic_upload(local, out_uri)
    return LabeledVideo(uri=out_uri, frames=written, missing_frames=sorted(report.missing), fps=fps, notes=notes)
