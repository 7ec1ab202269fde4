"""Videos streamed from storage with PyAV: probe cheaply, then decode just a frame range.

Probing demuxes packets without decoding (milliseconds for a typical behaviour video) to get the exact
frame count, every frame's timestamp and the keyframes. Reading seeks to the keyframe at or before the
range and decodes packet by packet, so a corrupt packet costs its frames (reported) and not the video.
Frame indices come from timestamps, so frames lost to errors leave gaps rather than shift later frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Callable, Iterator

import av
import numpy as np

from posecluster import storage
from posecluster.errors import InputError


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm")


def find_videos(inputs: list[str]) -> list[str]:
    """Video URIs from video URIs, folders/prefixes (searched recursively), and .txt lists of URIs."""
    videos: list[str] = []
    for item in inputs:
        if item.endswith(".txt"):
            lines = storage.read_bytes(item).decode().splitlines()
            videos += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        elif item.lower().endswith(VIDEO_SUFFIXES):
            videos.append(item)
        else:
            videos += storage.list_files(item, suffixes=VIDEO_SUFFIXES)
    return list(dict.fromkeys(videos))


@dataclass
class VideoInfo:
    uri: str
    frame_count: int
    fps: float
    width: int
    height: int
    codec: str
    pts: np.ndarray  # presentation timestamps of frames 0..n-1, ascending
    keyframes: np.ndarray  # frame indices where decoding can start

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0


@dataclass
class DecodeReport:
    """What went wrong while decoding a range: frame -> message, and decoder errors by packet."""

    missing: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _open(uri: str, handle) -> av.container.InputContainer:
    try:
        return av.open(handle, mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise InputError(uri, f"not a readable video ({exc})") from None


def _source(uri: str, source: Callable[[], IO] | None) -> IO:
    """`source()` when given (e.g. bytes already in memory), else the object streamed from storage."""
    return source() if source is not None else storage.open_uri(uri, "rb")


def probe(uri: str, source: Callable[[], IO] | None = None) -> VideoInfo:
    """Frame count, timestamps and keyframes by demuxing (no decoding)."""
    with _source(uri, source) as handle, _open(uri, handle) as container:
        if not container.streams.video:
            raise InputError(uri, "no video stream")
        stream = container.streams.video[0]
        pts, keyframe_pts = [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # flush packet
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    raise InputError(uri, "packets carry no timestamps; remux the video (e.g. to mp4)")
                pts.append(stamp)
                if packet.is_keyframe:
                    keyframe_pts.append(stamp)
        except av.error.FFmpegError as exc:
            if not pts:
                raise InputError(uri, f"cannot demux video ({exc})") from None
            # A truncated file: keep what was readable; missing frames show up when decoding.
        if not pts:
            raise InputError(uri, "video has no frames")
        declared = stream.frames  # from the container's index, where it has one (0 otherwise)
        if declared and len(pts) < declared:
            raise InputError(uri, f"truncated: the container declares {declared} frames, only {len(pts)} are present")
        pts_sorted = np.sort(np.asarray(pts, dtype=np.int64))
        keyframes = np.searchsorted(pts_sorted, np.asarray(sorted(keyframe_pts), dtype=np.int64))
        if len(keyframes) == 0 or keyframes[0] != 0:
            keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            uri=uri,
            frame_count=len(pts_sorted),
            fps=float(rate) if rate else 0.0,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            codec=stream.codec_context.name,
            pts=pts_sorted,
            keyframes=np.unique(keyframes),
        )


def keyframe_at_or_before(info: VideoInfo, frame: int) -> int:
    position = int(np.searchsorted(info.keyframes, frame, side="right")) - 1
    return int(info.keyframes[max(position, 0)])


def read_frames(
    info: VideoInfo,
    start: int,
    stop: int,
    report: DecodeReport,
    threads: int = 0,
    convert: Callable[[av.VideoFrame], np.ndarray] | None = None,
    source: Callable[[], IO] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, RGB uint8 (H,W,3)) for frames in [start, stop), ascending; `convert` turns
    each decoded frame into something else instead (e.g. a small grayscale thumbnail, done in FFmpeg).

    Frames that could not be decoded are absent from the output and listed in `report.missing`.
    """
    wanted = info.pts[start:stop]
    index_of = {int(p): start + i for i, p in enumerate(wanted)}
    last_pts = int(wanted[-1]) if len(wanted) else None
    produced: set[int] = set()
    with _source(info.uri, source) as handle, _open(info.uri, handle) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        seek_frame = keyframe_at_or_before(info, start)
        if seek_frame > 0:
            _prime_decoder(container, stream)
            container.seek(int(info.pts[seek_frame]), stream=stream, backward=True, any_frame=False)
        done = False
        for packet in _packets(container, stream, report):
            try:
                frames = stream.decode(packet)
            except av.error.FFmpegError as exc:
                report.errors.append(f"decode error near pts {packet.pts}: {exc}")
                continue
            for frame in frames:
                stamp = frame.pts
                if stamp is not None and last_pts is not None and stamp > last_pts:
                    done = True  # the decoder emits frames in presentation order: the range is over
                    break
                index = index_of.get(stamp) if stamp is not None else None
                if index is None or index in produced:
                    continue
                produced.add(index)
                yield index, convert(frame) if convert else frame.to_ndarray(format="rgb24")
            if done or len(produced) == len(wanted):
                break
    if len(produced) < len(wanted):
        reason = report.errors[-1] if report.errors else "frame not produced by the decoder"
        for index in range(start, stop):
            if index not in produced:
                report.missing[index] = reason


def _prime_decoder(container, stream) -> None:
    """Feed the stream's first packet to the decoder before seeking.

    Decoders keep stream-level facts that only the first packet carries: FFmpeg's H.264 decoder reads the
    x264 build from an SEI there and works around old x264 bugs (4:4:4 intra prediction, as in
    DeepLabCut's own example video). A decoder that starts at a later IDR misses it and emits garbage.
    """
    for packet in container.demux(stream):
        if packet.size:
            try:
                stream.decode(packet)
            except av.error.FFmpegError:
                pass  # a broken first packet: decoding from the seek point reports its own errors
            return


def _packets(container, stream, report: DecodeReport):
    """Demux packets, then a flush packet; a demuxer error ends the stream (recorded)."""
    try:
        for packet in container.demux(stream):
            yield packet
    except av.error.FFmpegError as exc:
        report.errors.append(f"demux error: {exc}")
        yield av.Packet()  # flush what the decoder holds
