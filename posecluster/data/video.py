"""Videos streamed from storage with PyAV, through one seam (`VideoReader`) that decides frame numbering.

Frame i is the i-th frame a plain sequential decode of the whole file yields (what OpenCV, DeepLabCut and
`ffprobe -count_frames` count), after the container's edit list, in display orientation.

Probing demuxes packets without decoding them and picks one of two ways to number frames:

- by presentation timestamp ("pts"), where every packet carries a distinct pts (MP4, MOV, MKV, TS, PS
  with real timestamps): frame i is the i-th smallest pts among the frames the decoder will show (no
  packets the edit list discards, none before the first keyframe). A frame lost to a damaged packet leaves
  a gap (a missing row), never a shift.
- by decode order ("decoder"), where timestamps cannot be trusted (AVI and other containers whose pts are
  invented in decode order, missing pts, equal pts for distinct frames in a coarse time base): frames are
  counted as they leave the decoder, from a keyframe whose index is known.

A segment may start only at a keyframe whose frame index is exact and after which nothing decoded is shown
before it (closed GOP): `VideoInfo.keyframes` lists exactly those. Decode-order streams whose codec
reorders frames (B-frames) cannot prove that, so they get `keyframes == [0]`: decoded in one piece.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator

import av
import numpy as np

from posecluster import storage
from posecluster.data.container_rotation import matroska_video_rotation, mp4_track_rotation
from posecluster.errors import InputError


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".ts")

Source = Callable[[], IO[bytes]]  # returns a seekable binary file object holding the video

# Containers whose packet timestamps FFmpeg invents in decode order (B-frames come out misnumbered).
_INVENTED_PTS_FORMATS = ("avi",)


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
    frame_count: int  # frames the container declares (truncated files: more than are present)
    fps: float  # 0.0 when the container does not say
    width: int  # in display orientation (after rotation)
    height: int
    codec: str
    pts: np.ndarray  # timestamps of the present frames 0..present-1 in display order (numbering "pts")
    keyframes: np.ndarray  # frame indices where a segment may start (exact index, closed GOP); [0] at least
    rotation: int = 0  # degrees counter-clockwise applied to decoded frames (display matrix), 0/90/180/270
    numbering: str = "pts"  # "pts" or "decoder" (see the module docstring)
    present: int = -1  # frames actually in the file; frames present..frame_count-1 are missing
    seek_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per keyframe: seek target
    seek_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # per keyframe: byte pos, -1 unknown
    warnings: list[str] = field(default_factory=list)  # damage: a video read with these is done-with-warnings
    notes: list[str] = field(default_factory=list)  # how it is read (one piece, leading frames dropped)

    def __post_init__(self):
        if self.present < 0:
            self.present = self.frame_count

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0

    @property
    def absent(self) -> dict[int, str]:
        """Frames the container declares but the file does not hold (a truncated recording)."""
        if self.present >= self.frame_count:
            return {}
        reason = f"not in the file (truncated after {self.present} of {self.frame_count} frames)"
        return dict.fromkeys(range(self.present, self.frame_count), reason)

    # Bumped whenever a probe's meaning changes: a cached probe from an older reader (with its frame
    # numbering and segment starts) must be probed again, never trusted.
    CACHE_VERSION = 3

    def to_bytes(self) -> bytes:
        meta = {"version": self.CACHE_VERSION, "frame_count": self.frame_count, "fps": self.fps, "width": self.width, "height": self.height,
                "codec": self.codec, "rotation": self.rotation, "numbering": self.numbering,
                "present": self.present, "warnings": self.warnings, "notes": self.notes}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, pts=self.pts, keyframes=self.keyframes, seek_ts=self.seek_ts,
                            seek_pos=self.seek_pos, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, uri: str) -> "VideoInfo":
        with np.load(io.BytesIO(data)) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            if meta.pop("version", None) != cls.CACHE_VERSION:
                raise StaleProbeError(f"{uri}: cached probe written by an older reader; probe again")
            extra = {k: arrays[k] for k in ("seek_ts", "seek_pos") if k in arrays.files}
            return cls(uri=uri, pts=arrays["pts"], keyframes=arrays["keyframes"], **extra, **meta)


class StaleProbeError(ValueError):
    """A cached probe that this reader must not trust (written by an older version)."""


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


def _rotation(frame: av.VideoFrame) -> int:
    """The display matrix's rotation as OpenCV applies it: a multiple of 90 degrees counter-clockwise."""
    return int(round((frame.rotation or 0) / 90.0)) * 90 % 360


def upright(array: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(array, k=rotation // 90)) if rotation else array


_NO_PTS = np.iinfo(np.int64).min  # a packet without a presentation timestamp


@dataclass
class _Demuxed:
    """The packets of a probe, in decode order: pts (_NO_PTS where absent), keyframe and discard flags
    (pre-roll an edit list cuts away: decoded, never shown) for all; dts and byte position (-1 unknown)
    only where they are used, for keyframes and packets without pts."""

    pts: np.ndarray
    key: np.ndarray
    discard: np.ndarray
    extra: dict[int, tuple[int | None, int]]

    def seek_stamp(self, i: int) -> int:
        dts = self.extra[i][0]
        candidates = [s for s in (None if self.pts[i] == _NO_PTS else int(self.pts[i]), dts) if s is not None]
        return min(candidates) if candidates else 0

    def pos(self, i: int) -> int:
        return self.extra[i][1]


class VideoReader:
    """One video: probe it once, then read any frame range with the numbering described above.

    `source`, when given, is a zero-argument callable returning a seekable binary file object with the
    video's bytes (used instead of opening `uri` from storage, e.g. for bytes already in memory).
    """

    def __init__(self, uri: str, source: Source | None = None, info: VideoInfo | None = None):
        self.uri, self.source, self._info = uri, source, info

    def _handle(self) -> IO[bytes]:
        return self.source() if self.source is not None else storage.open_uri(self.uri, "rb")

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            self._info = self._probe()
        return self._info

    # -- probing ---------------------------------------------------------------------------------------

    def _probe(self) -> VideoInfo:
        uri = self.uri
        with self._handle() as handle, _open(uri, handle) as container:
            if not container.streams.video:
                raise InputError(uri, "no video stream")
            stream = container.streams.video[0]
            fmt = container.format.name
            rotation = _header_rotation(handle, fmt, stream)
            stamps, keys, discards, extra = [], [], [], {}  # keys, discards: packet indices (few)
            demux_error, first_frame = None, None
            stream.thread_count = 1  # one frame to decode: starting and joining a thread pool costs more
            try:
                for packet in container.demux(stream):  # the hot loop of a probe: read only what is used
                    if packet.size:
                        key, stamp = packet.is_keyframe, packet.pts
                        if key or stamp is None:
                            extra[len(stamps)] = (packet.dts, -1 if packet.pos is None else packet.pos)
                            if key:
                                keys.append(len(stamps))
                                if rotation is None and first_frame is None:
                                    # The container may hold a display matrix the header walk could not
                                    # read: PyAV shows it on decoded frames, so decode this keyframe.
                                    first_frame = _first_frame(stream, packet)
                        if packet.is_discard:
                            discards.append(len(stamps))
                        stamps.append(_NO_PTS if stamp is None else stamp)
            except av.error.FFmpegError as exc:
                demux_error = str(exc)  # truncated or damaged: keep what was readable
            # The container's own index says how many frames there should be; read it only when the
            # demuxed packets fall short of the header's count (a truncated file).
            declared = _declared_frames(container, stream) if len(stamps) < (stream.frames or 0) else 0
            if not stamps:
                raise InputError(uri, f"video has no frames{f' ({demux_error})' if demux_error else ''}")
            packets = _Demuxed(np.asarray(stamps, dtype=np.int64), _flags(len(stamps), keys),
                               _flags(len(stamps), discards), extra)
            first_key = int(np.argmax(packets.key)) if packets.key.any() else None
            rotation, size = _display_facts(rotation, first_frame, stream)
            reorders = bool(stream.codec_context.has_b_frames)
            rate = stream.average_rate or stream.guessed_rate
            codec = stream.codec_context.name
        warnings, notes = [], []
        unflagged = first_key is None
        if unflagged:
            # No keyframe flags at all (some AVI writers): nothing is known about where decoding may
            # start, so count what the decoder gives from the top, in one piece.
            first_key = 0
            notes.append("no packet is flagged as a keyframe: decoded in one piece")
        before_key = int(np.count_nonzero(~packets.discard[:first_key]))
        if before_key:
            notes.append(f"the first {first_key} packets precede the first keyframe and cannot be decoded; "
                            "frame 0 is the first keyframe, as in OpenCV")
        # Packets before the first keyframe never leave the decoder, nor do those the edit list discards.
        shown = first_key + np.flatnonzero(~packets.discard[first_key:])  # packet indices, decode order
        if declared:
            declared -= before_key
        stamps = packets.pts[shown]
        trusted = not unflagged and (not any(name in fmt.split(",") for name in _INVENTED_PTS_FORMATS)
                   and not (stamps == _NO_PTS).any() and bool(np.all(np.diff(np.sort(stamps)))))
        if trusted:
            numbering = "pts"
            # Leading pictures of an open GOP at the very start (shown before the first keyframe) are dropped.
            kept = shown[stamps >= stamps[0]]
            pts = np.sort(packets.pts[kept])
            if declared > len(kept):
                # Truncated mid-GOP: frames shown before some lost packet's frame may be present while it
                # is not. Keep the leading run without a hole in the frame grid; the rest are missing.
                pts = _contiguous_prefix(pts)
                kept = kept[packets.pts[kept] <= pts[-1]]
            keyframes, seek_ts, seek_pos = _safe_starts_by_pts(packets, kept, pts)
        else:
            numbering = "decoder"
            stamps = np.asarray([s if s != _NO_PTS else (packets.extra[i][0] or 0) for i, s in zip(shown, stamps)],
                                dtype=np.int64)
            pts = np.sort(stamps)
            starts = np.flatnonzero(packets.key[shown])  # positions in decode order = frame indices
            if unflagged or reorders or any(packets.pos(shown[j]) < 0 for j in starts):
                keyframes, seek_ts, seek_pos = [0], [0], [-1]  # no exact index after a seek: one piece
            else:
                # No reordering: a keyframe's index is its position in decode order.
                keyframes = starts.tolist()
                seek_ts = [packets.seek_stamp(shown[j]) for j in starts]
                seek_pos = [packets.pos(shown[j]) for j in starts]
            if reorders:
                notes.append("timestamps cannot be trusted and frames are reordered: decoded in one piece")
        present = len(pts)
        frame_count = max(present, declared)
        if frame_count > present:
            warnings.append(f"truncated: the container declares {frame_count} frames, only {present} are present")
        elif demux_error:
            warnings.append(f"the container ends early ({demux_error})")
        width, height = size
        return VideoInfo(
            uri=uri, frame_count=frame_count, fps=float(rate) if rate else 0.0, width=width, height=height,
            codec=codec, pts=pts, keyframes=np.asarray(keyframes, dtype=np.int64), rotation=rotation,
            numbering=numbering, present=present, seek_ts=np.asarray(seek_ts, dtype=np.int64),
            seek_pos=np.asarray(seek_pos, dtype=np.int64), warnings=warnings, notes=notes,
        )

    # -- reading ---------------------------------------------------------------------------------------

    def read(self, start: int, stop: int, report: DecodeReport, threads: int = 0,
             convert: Callable[[av.VideoFrame], np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame index, RGB uint8 (H,W,3) in display orientation) for frames in [start, stop),
        ascending and each once; `convert` turns each decoded frame into something else instead (e.g. a
        small grayscale thumbnail, done in FFmpeg), rotated the same way.

        Frames that could not be decoded (or are not in the file) are absent and listed in `report.missing`.
        """
        info = self.info
        stop = min(stop, info.frame_count)
        if start >= stop:
            return
        produced: set[int] = set()
        readable_stop = min(stop, info.present)
        if start < readable_stop:
            for index, frame in self._decode(start, readable_stop, report, threads):
                if index in produced or not start <= index < readable_stop:
                    continue
                produced.add(index)
                out = convert(frame) if convert else frame.to_ndarray(format="rgb24")
                yield index, upright(out, info.rotation)
        absent = info.absent
        for index in range(start, stop):
            if index not in produced:
                if index in absent:
                    report.missing[index] = absent[index]
                else:
                    report.missing[index] = report.errors[-1] if report.errors else "frame not produced by the decoder"

    def _decode(self, start: int, stop: int, report: DecodeReport, threads: int):
        """(index, av frame) pairs covering [start, stop), possibly a few outside it; ascending."""
        info = self.info
        position = int(np.searchsorted(info.keyframes, start, side="right")) - 1
        first = int(info.keyframes[max(position, 0)])
        for attempt in ("seek", "from the start") if first > 0 else ("from the start",):
            with self._handle() as handle, _open(info.uri, handle) as container:
                stream = container.streams.video[0]
                # Frame threading can drop frames around a damaged packet without a word: fine where
                # frames are numbered by timestamp and a healthy file, not where they are counted.
                healthy = info.numbering == "pts" and not info.warnings
                stream.thread_type = "AUTO" if healthy else "SLICE"
                if threads:
                    stream.thread_count = threads
                if attempt == "seek":
                    packets = self._seek(container, stream, position, report)
                    if packets is None:
                        continue  # the seek did not land on the keyframe: decode from the start instead
                else:
                    first, packets = 0, _packets(container, stream, report)
                if info.numbering == "pts":
                    yield from self._number_by_pts(stream, packets, start, stop, report)
                else:
                    yield from self._number_by_order(stream, packets, first, stop, report)
                return

    def _seek(self, container, stream, key_position: int, report: DecodeReport):
        """Packets from the keyframe at `key_position` on, or None when the seek cannot be verified."""
        info = self.info
        _prime_decoder(container, stream)
        try:
            container.seek(int(info.seek_ts[key_position]), stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            report.errors.append(f"seek failed ({exc}); decoding from the start")
            return None
        target = int(info.seek_pos[key_position]) if len(info.seek_pos) > key_position else -1
        packets = _packets(container, stream, report)
        if target < 0:
            return packets
        # Skip (without decoding) packets before the keyframe when the seek landed early; give up when it
        # landed past it, since then the index of what follows would not be known.
        for packet in packets:
            if packet.size == 0:
                return None
            if packet.pos == target:
                return _chain(packet, packets)
            if packet.pos is not None and packet.pos > target:
                return None
        return None

    def _number_by_pts(self, stream, packets, start, stop, report):
        info = self.info
        wanted = info.pts[start:stop]
        index_of = {int(p): start + i for i, p in enumerate(wanted)}
        last_pts = int(wanted[-1])
        for packet in packets:
            for frame in _decode_packet(stream, packet, report):
                stamp = frame.pts
                if stamp is not None and stamp > last_pts:
                    return  # frames leave the decoder in presentation order: the range is over
                index = index_of.get(stamp) if stamp is not None else None
                if index is not None:
                    yield index, frame

    def _number_by_order(self, stream, packets, first, stop, report):
        index, seen_key = first, first > 0
        reorders = bool(stream.codec_context.has_b_frames)
        for packet in packets:
            seen_key = seen_key or packet.is_keyframe
            errors = len(report.errors)
            frames = _decode_packet(stream, packet, report)
            if len(report.errors) > errors and seen_key and packet.size and not reorders:
                # An intra-ordered stream lost this packet's frame: keep later frames on their index.
                index += 1
            for frame in frames:
                if index >= stop:
                    return
                yield index, frame
                index += 1


def _declared_frames(container, stream) -> int:
    """Frames the container's own index declares (MP4/MOV sample tables, AVI idx1; read at open, no
    demuxing), 0 where it has no per-frame index (MKV cues list keyframes only)."""
    formats = set(container.format.name.split(","))
    if formats & {"mov", "mp4", "avi"}:
        entries = stream.index_entries
        if entries is not None and len(entries):
            # zero-size entries are placeholders (an AVI's dropped frames): the decoder never sees them
            return sum(1 for entry in entries if entry.size > 0 and not entry.is_discard)
    return stream.frames or 0


def _first_frame(stream, packet) -> av.VideoFrame | None:
    """The frame of a keyframe packet: decoded, then the decoder drained (it holds frames back when it
    reorders), which ends its use for this probe."""
    try:
        frames = stream.decode(packet) or stream.decode(None)
    except av.error.FFmpegError:
        return None
    return frames[0] if frames else None


def _header_rotation(handle, fmt: str, stream) -> int | None:
    """The display rotation known without decoding, or None: decode a frame to learn it.

    Only the container's display matrix counts (what OpenCV, and so DeepLabCut, applies). MP4/MOV and
    Matroska carry it in their track headers, read here directly (container_rotation); the other
    containers (AVI, MPEG-PS/TS, ...) have none.
    """
    formats = set(fmt.split(","))
    if not stream.codec_context.width:
        return None  # the size, too, is only known from a frame
    mp4 = bool(formats & {"mov", "mp4"})
    if not mp4 and not formats & {"matroska", "webm"}:
        return 0
    position = handle.tell()  # PyAV reads on from where it left the handle: put it back
    try:
        # FFmpeg's stream id in MP4 is the track ID; in Matroska it is not the track number.
        return mp4_track_rotation(handle, stream.id) if mp4 else matroska_video_rotation(handle)
    finally:
        handle.seek(position)


def _display_facts(rotation: int | None, frame: av.VideoFrame | None, stream) -> tuple[int, tuple[int, int]]:
    """Rotation and display size: from the header when it said, else from the first decoded frame, else
    the stream's coded size unrotated."""
    if rotation is None:
        rotation = _rotation(frame) if frame is not None else 0
    width, height = (frame.width, frame.height) if frame is not None else (stream.codec_context.width,
                                                                             stream.codec_context.height)
    return rotation, ((height, width) if rotation in (90, 270) else (width, height))


def _flags(count: int, indices: list[int]) -> np.ndarray:
    flags = np.zeros(count, dtype=bool)
    flags[indices] = True
    return flags


def _contiguous_prefix(pts: np.ndarray) -> np.ndarray:
    if len(pts) < 3:
        return pts
    steps = np.diff(pts)
    holes = np.flatnonzero(steps > 1.5 * np.median(steps))
    return pts[: holes[0] + 1] if len(holes) else pts


def _safe_starts_by_pts(packets: _Demuxed, kept: np.ndarray, pts: np.ndarray):
    """Keyframes (frame index, seek timestamp, byte position) after which every decoded frame is shown
    after them and before which every frame is shown before them: there a decoder can start cold and
    the frame index is exact. `kept`: the packets that become frames, in decode order."""
    order_pts = packets.pts[kept]
    later_min = np.minimum.accumulate(order_pts[::-1])[::-1]  # min pts from here on, in decode order
    earlier_max = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], order_pts[:-1]]))
    safe = packets.key[kept] & (later_min == order_pts) & (earlier_max < order_pts)
    safe[:1] = False  # the first frame is always a start, listed below
    chosen = kept[safe]
    keyframes = [0, *np.searchsorted(pts, packets.pts[chosen]).tolist()]
    return keyframes, [0, *(packets.seek_stamp(i) for i in chosen)], [-1, *(packets.pos(i) for i in chosen)]


def _decode_packet(stream, packet, report: DecodeReport) -> list[av.VideoFrame]:
    try:
        return stream.decode(packet)
    except av.error.FFmpegError as exc:
        report.errors.append(f"decode error near pts {packet.pts}: {exc}")
        return []


def _chain(first, rest):
    yield first
    yield from rest


def probe(uri: str, source: Source | None = None) -> VideoInfo:
    """Frame count, numbering, safe segment starts, rotation (demuxing; decodes one frame only where the
    container's header walk could not tell the rotation)."""
    return VideoReader(uri, source).info


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
    source: Source | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames [start, stop) of a probed video: see VideoReader.read."""
    return VideoReader(info.uri, source, info).read(start, stop, report, threads=threads, convert=convert)


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
