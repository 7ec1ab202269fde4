"""Videos streamed from storage with PyAV, through one seam (`VideoReader`) that decides frame numbering.

Frame i is the i-th frame a plain sequential decode of the whole file yields (what OpenCV, DeepLabCut and
`ffprobe -count_frames` count), after the container's edit list, in display orientation. The rules
(packets.py: which packets become frames; numbering.py: stamps across clock resets and wraps, and how a
decoded frame finds its index even when the decoder drops, repeats or reorders frames around damage)
are the same for every way in:

    reader = VideoReader(uri)              # or VideoReader(uri, source, info) with a plan made elsewhere
    plan = reader.plan()                   # what the container's index proves, by range reads:
      plan.plan == "frames"                #   MP4/MOV (moov first or last), AVI (idx1/OpenDML): every frame,
                                           #   plan.frame_count, plan.keyframes (safe segment starts)
      plan.plan == "spans"                 #   Matroska/WebM cues: plan.span_count spans between keyframes,
                                           #   their sizes known once decoded
      plan.plan == "sequential"            #   no index (MPEG-TS/PS, Matroska without cues, raw streams,
                                           #   fragmented MP4): only the header's facts
    reader.read(start, stop, report)       # (index, frame) for frames [start, stop) ("frames" plans; any
                                           #   other plan is read by a pass from the top)
    reader.read_span(k, report)            # (local index, frame) of span k; report.frame_count = its size,
                                           #   so span k's frame i is frame (sizes of spans < k) + i
    reader.read_all(report)                # (index, frame) of the whole video in one pass; afterwards
                                           #   reader.info holds what a probe would have said (frame count,
                                           #   clock jumps, sizes, warnings; no per-frame stamps)
    reader.info                            # every frame's facts: the plan where it is of kind "frames",
                                           #   else a full demux of the packets (no decoding)

A plan keeps what FFmpeg read to open the video (the index, the first packets: `index_ranges`,
`index_bytes`; ranges.py), and every read given that plan opens the video from it: a segment reads media
data from its keyframe on, never the index again.

A span that cannot be decoded on its own (an open GOP at its keyframe, timestamps that repeat) raises
`SpansUnsound` from read_span: read that video with read_all instead. Every read hands frames over
ascending and once each; frames that cannot be decoded are absent and listed in `report.missing`, and each
frame size with the first frame that has it in `report.sizes` (resolution changes mid-stream).
"""

from __future__ import annotations

from typing import IO, Callable, Iterator

import av
import numpy as np

from posecluster import storage
from posecluster.data.container_index import index_table, matroska_spans
from posecluster.data.container_rotation import matroska_video_rotation, mp4_track_rotation
from posecluster.data.decoding import (Feed, PositionStamps, PtsStamps, SpansUnsound, learning_numbering,
                                       numbered_frames, packets_of, seek_to)
from posecluster.data.mp4_samples import moov_extent
from posecluster.data.numbering import Clock, ClockRules, Counted, InOrder, KnownFrames
from posecluster.data.packets import INVENTED_PTS_FORMATS, Header, demux_table, number_frames
from posecluster.data.ranges import Overlay, Recorder
from posecluster.data.video_info import DecodeReport, StaleProbeError, VideoInfo
from posecluster.errors import InputError
from posecluster.storage.scope import check as check_scope

__all__ = ["VIDEO_SUFFIXES", "DecodeReport", "SpansUnsound", "StaleProbeError", "VideoInfo", "VideoReader",
           "find_videos", "keyframe_at_or_before", "probe", "read_frames", "upright"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm", ".ts")

Source = Callable[[], IO[bytes]]  # returns a seekable binary file object holding the video

# How the reader opens objects itself (no `source`; callers that build their own sources may use the same
# options): planning reads an index by small ranges, going back and forth between the file's head and its
# index (blocks kept, not one window that each jump refetches); decoding streams media data forward.
PLAN_READS = {"block_size": 32 * 1024, "cache_type": "blockcache"}
DECODE_READS = {"block_size": 1024 * 1024, "cache_type": "readahead"}
# Every open: PyAV reads in small pieces, and FFmpeg does not read ~20 frames ahead to guess a frame rate
# the header already states (fpsprobesize): an index is read by ranges, not the media data. Plans and
# later reads open alike, so that a read finds in the plan's recorded ranges (ranges.py) all FFmpeg
# reads to open the video.
_OPEN = {"buffer_size": 8 * 1024, "options": {"fpsprobesize": "0"}}
_NO_END = 1 << 62  # the stop of a range whose end is unknown until the pass ends


def is_video_uri(uri: str) -> bool:
    """A video's URI by its suffix, read on the object's path: a presigned or query-string URL
    (`https://host/v/mouse.mp4?X-Amz-...`) is a video too."""
    return storage.object_path(uri).lower().endswith(VIDEO_SUFFIXES)


def is_list_uri(uri: str) -> bool:
    return storage.object_path(uri).lower().endswith(".txt")


def find_videos(inputs: list[str]) -> list[str]:
    """Video URIs from video URIs, folders/prefixes (searched recursively), and .txt lists of URIs.

    Inputs that name no video at all are an InputError saying what each one held (an empty folder, a
    folder of other files, an empty list): a typo in a path must not look like a finished job."""
    videos: list[str] = []
    held: list[str] = []
    for item in inputs:
        if is_list_uri(item):
            lines = storage.read_bytes(item).decode().splitlines()
            listed = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
            for video in listed:  # a list may name anything: refused here, naming the list, when out of scope
                check_scope(video, "read", named_by=item)
            held.append(f"{item}: a list naming {len(listed)} URIs")
            videos += listed
        elif is_video_uri(item):
            videos.append(item)
        else:
            files = storage.list_files(item)
            found = [f for f in files if is_video_uri(f)]
            held.append(f"{item}: {len(files)} files, {len(found)} of them videos" if files else f"{item}: empty")
            videos += found
    if not videos:
        raise InputError(", ".join(inputs), f"no video found (looked for {', '.join(VIDEO_SUFFIXES)}): "
                                            + "; ".join(held))
    return list(dict.fromkeys(videos))


HEAD_BYTES = 64 << 10


def _prefetch_index(stored: IO[bytes]) -> None:
    """An MP4 with `moov` first: have a reader that can fetch ranges (storage.pinned) get the whole box in
    one request after the head, where PyAV would read it in growing pieces (3 requests, 4.2 MB for a 2-hour
    recording's ~1 MB box)."""
    prefetch = getattr(stored, "prefetch", None)
    if prefetch is None:
        return
    head = stored.read(HEAD_BYTES)
    stored.seek(0)
    extent = moov_extent(head)
    if extent is not None and extent[1] > len(head):
        prefetch(extent[0], extent[1] + HEAD_BYTES)  # and the first media packet after it


def _open(uri: str, handle) -> av.container.InputContainer:
    try:
        return av.open(handle, mode="r", **_OPEN)
    except (av.error.FFmpegError, ValueError) as exc:
        raise InputError(uri, f"not a readable video ({exc})") from None


def _rotation(frame: av.VideoFrame) -> int:
    """The display matrix's rotation as OpenCV applies it: a multiple of 90 degrees counter-clockwise."""
    return int(round((frame.rotation or 0) / 90.0)) * 90 % 360


def upright(array: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(array, k=rotation // 90)) if rotation else array


class VideoReader:
    """One video: plan or probe it once, then read frame ranges, spans or the whole of it (module doc).

    `source`, when given, is a zero-argument callable returning a seekable binary file object with the
    video's bytes (used instead of opening `uri` from storage, e.g. for bytes already in memory or a
    reader that counts and retries). `info`, when given, is a plan or probe made before (any kind).
    """

    def __init__(self, uri: str, source: Source | None = None, info: VideoInfo | None = None):
        self.uri, self.source = uri, source
        self._plan = info
        self._info = info if info is not None and info.plan == "frames" else None

    def _handle(self, reads: dict, info: VideoInfo | None = None) -> IO[bytes]:
        """The video's bytes; with `info`, the ranges its plan recorded come from memory (ranges.py)."""
        handle = self.source() if self.source is not None else storage.open_uri(self.uri, "rb", **reads)
        return Overlay(handle, info.index_ranges, info.index_bytes) if info is not None and len(info.index_ranges) else handle

    def plan(self) -> VideoInfo:
        """What the container's index proves, read by ranges (see the module doc)."""
        if self._plan is None:
            self._plan = self._make_plan()
            if self._plan.plan == "frames":
                self._info = self._plan
        return self._plan

    @property
    def info(self) -> VideoInfo:
        """Every frame's facts: the plan where it has them, else a demux of every packet."""
        if self._info is None:
            self._info = self.plan() if self.plan().plan == "frames" else self._demux_probe()
        return self._info

    # -- planning and probing --------------------------------------------------------------------------

    def _make_plan(self) -> VideoInfo:
        with self._handle(PLAN_READS) as stored:
            _prefetch_index(stored)
            handle = Recorder(stored)
            with _open(self.uri, handle) as container:
                stream = _video_stream(self.uri, container)
                first = next((packet for packet in container.demux(stream) if packet.size), None)
                if first is None:
                    raise InputError(self.uri, "video has no frames")
                head = _header(handle, container, stream, first)
                table = index_table(container, stream, handle, first)
                if table is not None:
                    plan = number_frames(self.uri, table, head)
                else:
                    cues = matroska_spans(container, stream, handle)
                    plan = _header_only(self.uri, head, "spans" if cues is not None else "sequential", cues)
        if plan.plan != "sequential":  # a pass from the top opens the video once: nothing to keep
            plan.index_ranges, plan.index_bytes = handle.ranges()
        return plan

    def _demux_probe(self) -> VideoInfo:
        with self._handle(DECODE_READS) as handle, _open(self.uri, handle) as container:
            stream = _video_stream(self.uri, container)
            stream.thread_count = 1  # at most one frame to decode: a thread pool costs more
            first_key: list = []
            table, error = demux_table(container, stream, lambda packet: first_key or first_key.append(packet))
            head = _header(handle, container, stream, first_key[0] if first_key else None)
            table.declared = _declared_frames(container, stream) if len(table) < (stream.frames or 0) else 0
        return number_frames(self.uri, table, head, error)

    # -- reading ---------------------------------------------------------------------------------------

    def read(self, start: int, stop: int, report: DecodeReport, threads: int = 0,
             convert: Callable[[av.VideoFrame], np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (frame index, RGB uint8 (H,W,3) in display orientation) for frames in [start, stop),
        ascending and each once; `convert` turns each decoded frame into something else instead (e.g. a
        small grayscale thumbnail, done in FFmpeg), rotated the same way.

        Frames that could not be decoded (or are not in the file) are absent and listed in `report.missing`.
        """
        if self._info is None and self.plan().plan != "frames":
            yield from self._pass(report, threads, convert, start, stop)
            return
        info = self.info
        stop = min(stop, info.frame_count)
        if start >= stop:
            return
        report.frame_count = stop - start
        readable_stop = min(stop, info.present)
        out = InOrder(start, readable_stop)
        if start < readable_stop:
            frames = self._decode_range(out, report, threads)
            yield from self._hand_over(frames, report, info.rotation, convert)
        absent = info.absent
        for first, end in [*out.gaps, (readable_stop, stop)]:
            for index in range(first, end):
                report.missing[index] = absent.get(index) or _why(report)

    def read_span(self, k: int, report: DecodeReport, threads: int = 0,
                  convert: Callable[[av.VideoFrame], np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index within span k, frame) of a "spans" plan; `report.frame_count` is the span's size once
        the generator is exhausted. Raises SpansUnsound where spans cannot be decoded on their own."""
        plan = self.plan()
        if plan.plan != "spans" or not 0 <= k < plan.span_count:
            raise ValueError(f"{self.uri}: no span {k} in a plan of kind {plan.plan!r}")
        next_ts = int(plan.seek_ts[k + 1]) if k + 1 < plan.span_count else None
        with self._handle(DECODE_READS, plan) as handle, _open(self.uri, handle) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO" if not plan.reorders else "SLICE"
            if threads:
                stream.thread_count = threads
            if k == 0:
                packets = packets_of(container, stream, report)
            else:
                ts = int(plan.seek_ts[k])
                packets = seek_to(container, stream, ts, lambda p: _is_key_at(p, ts), report)
                if packets is None:
                    raise SpansUnsound(f"{self.uri}: seeking to span {k} (timestamp {ts}) missed its keyframe")
            clock = Clock(plan.rules)
            stamps, numbering = learning_numbering(plan.reorders, not _invented(container), clock)
            if isinstance(numbering, Counted) and k:
                raise SpansUnsound(f"{self.uri}: frames are reordered and timestamps cannot be trusted")
            ends = _SpanEnd(next_ts, stamps, self.uri)
            feed = Feed(from_top=k == 0, ends=ends, span_key=k > 0, learn=True)
            out = InOrder(0, _NO_END)
            frames = numbered_frames(stream, packets, stamps, numbering, out, report, feed)
            yield from self._hand_over(frames, report, plan.rotation, convert)
            ends.check_after(packets)
        report.jumps += feed.jumps
        _list_gaps(out, report)

    def read_all(self, report: DecodeReport, threads: int = 0,
                 convert: Callable[[av.VideoFrame], np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) of every frame, in one pass from the top, numbered as it goes; afterwards
        `self.info` holds the facts of the pass (kind "sequential", frame count known)."""
        yield from self._pass(report, threads, convert, 0, _NO_END)

    def _pass(self, report, threads, convert, start, stop):
        plan = self.plan()
        with self._handle(DECODE_READS) as handle, _open(self.uri, handle) as container:
            stream = container.streams.video[0]
            clock = Clock(plan.rules)
            stamps, numbering = learning_numbering(plan.reorders, not _invented(container), clock)
            stream.thread_type = "SLICE" if isinstance(numbering, Counted) else "AUTO"
            if threads:
                stream.thread_count = threads
            feed = Feed(from_top=True, learn=True)
            out = InOrder(start, stop)
            frames = numbered_frames(stream, packets_of(container, stream, report), stamps, numbering, out,
                                     report, feed)
            yield from self._hand_over(frames, report, plan.rotation, convert)
        report.jumps += feed.jumps
        _list_gaps(out, report)
        if stop == _NO_END:
            self._info = _facts_of_pass(plan, report, numbering)
        else:  # a range of a pass: it ended at the range's end, or at the video's (frame_count known)
            report.frame_count = max(min(stop, report.frame_count if report.frame_count >= 0 else stop) - start, 0)

    def _decode_range(self, out: InOrder, report: DecodeReport, threads: int):
        """(index, av frame) covering out's range, ascending; from the safe keyframe at or before its start."""
        info = self.info
        position = int(np.searchsorted(info.keyframes, out.start, side="right")) - 1
        position = max(position, 0)
        after = int(np.searchsorted(info.keyframes, out.stop, side="left"))
        end_stamp = int(info.pts[info.keyframes[after]]) if after < len(info.keyframes) else None
        counted = info.numbering == "decoder" and info.reorders
        for attempt in ("seek", "from the start") if info.keyframes[position] > 0 else ("from the start",):
            with self._handle(DECODE_READS, info) as handle, _open(info.uri, handle) as container:
                stream = container.streams.video[0]
                # Frame threading drops frames around damage without a word (stamps show a gap, never a
                # shift, but fewer frames decode): where the probe saw damage, slice threads only.
                stream.thread_type = "SLICE" if counted or info.warnings else "AUTO"
                if threads:
                    stream.thread_count = threads
                if attempt == "seek":
                    target = int(info.seek_pos[position]) if len(info.seek_pos) > position else -1
                    packets = seek_to(container, stream, int(info.seek_ts[position]),
                                      lambda p: _is_at(p, target), report)
                    if packets is None:
                        continue  # the seek did not land on the keyframe: decode from the start instead
                    first, run = int(info.keyframes[position]), int(info.seek_run[position])
                else:
                    packets, first, run = packets_of(container, stream, report), 0, 0
                if counted:
                    stamps, numbering = PositionStamps(first), Counted(first)
                elif info.numbering == "decoder":
                    stamps, numbering = PositionStamps(first), KnownFrames(info.pts)
                else:
                    stamps, numbering = PtsStamps(Clock(info.rules, info.clock_offsets, run)), KnownFrames(info.pts)
                ends = None if end_stamp is None else (lambda p, s: p.is_keyframe and s == end_stamp)
                feed = Feed(from_top=attempt != "seek", ends=ends)
                yield from numbered_frames(stream, packets, stamps, numbering, out, report, feed)
                return

    @staticmethod
    def _hand_over(frames, report: DecodeReport, rotation: int, convert):
        """Convert and rotate each frame; note where the frame size changes."""
        for index, frame in frames:
            out = convert(frame) if convert else frame.to_ndarray(format="rgb24")
            shape = (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
            if not report.sizes or tuple(report.sizes[-1][1:]) != shape:
                report.sizes.append((index, *shape))
            yield index, upright(out, rotation)


class _SpanEnd:
    """Where a span ends (the next span's keyframe, not fed), and the check that the packets after it show
    nothing before it (else that keyframe's GOP is open and spans are unsound)."""

    def __init__(self, next_ts: int | None, stamps, uri: str):
        self.next_ts, self.stamps, self.uri = next_ts, stamps, uri
        self.stamp: int | None = None

    def __call__(self, packet, stamp) -> bool:
        if self.next_ts is not None and _is_key_at(packet, self.next_ts):
            self.stamp = stamp if isinstance(self.stamps, PtsStamps) else None
            return True
        return False

    def check_after(self, packets, look: int = 64) -> None:
        if self.stamp is None:
            return
        for count, packet in enumerate(packets):
            if not packet.size or count >= look or packet.is_keyframe:
                return
            stamp = self.stamps(packet, True)
            if stamp is not None and stamp < self.stamp:
                raise SpansUnsound(f"{self.uri}: frames after the keyframe at {self.next_ts} are shown before it "
                                   "(open GOP): read the video in one pass")
            if stamp is not None and stamp > self.stamp:
                return


def _is_key_at(packet, ts: int) -> bool | None:
    """For a seek to a cue: True on its keyframe, False past it, None before it."""
    if packet.pts is None:
        return None
    if packet.is_keyframe and packet.pts == ts:
        return True
    return False if packet.pts > ts and packet.is_keyframe else None


def _is_at(packet, target: int) -> bool | None:
    """For a seek to a keyframe at byte `target` (-1: unknown, take the first packet)."""
    if target < 0:
        return True
    if packet.pos == target:
        return True
    return False if packet.pos is not None and packet.pos > target else None


def _why(report: DecodeReport) -> str:
    return report.errors[-1] if report.errors else "frame not produced by the decoder"


def _list_gaps(out: InOrder, report: DecodeReport) -> None:
    for first, end in out.gaps:
        for index in range(first, end):
            report.missing[index] = _why(report)


def _invented(container) -> bool:
    return any(name in container.format.name.split(",") for name in INVENTED_PTS_FORMATS)


def _video_stream(uri: str, container):
    if not container.streams.video:
        raise InputError(uri, "no video stream")
    return container.streams.video[0]


def _header(handle, container, stream, key_packet) -> Header:
    """Stream facts; decodes `key_packet` only where the header does not say the rotation or size."""
    fmt = container.format.name
    rotation = _header_rotation(handle, fmt, stream)
    frame = _first_frame(stream, key_packet) if rotation is None and key_packet is not None else None
    rotation, (width, height) = _display_facts(rotation, frame, stream)
    rate = stream.average_rate or stream.guessed_rate
    return Header(fmt=fmt, codec=stream.codec_context.name, fps=float(rate) if rate else 0.0, width=width,
                  height=height, rotation=rotation, reorders=bool(stream.codec_context.has_b_frames),
                  rules=ClockRules.of(stream, fmt))


def _header_only(uri: str, head: Header, kind: str, cues) -> VideoInfo:
    ts, pos = cues if cues is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return VideoInfo(uri=uri, frame_count=-1, fps=head.fps, width=head.width, height=head.height, codec=head.codec,
                     pts=np.zeros(0, np.int64), keyframes=np.zeros(1, np.int64), rotation=head.rotation,
                     numbering="decoder" if head.invented_pts or not head.reorders else "pts", plan=kind,
                     reorders=head.reorders, seek_ts=ts, seek_pos=pos,
                     clock_rules=(head.rules.step, head.rules.threshold, head.rules.wraps))


def _facts_of_pass(plan: VideoInfo, report: DecodeReport, numbering) -> VideoInfo:
    """What a probe would have said, from a pass over the whole video."""
    count = max(report.frame_count, 0)
    sizes = np.asarray(report.sizes or [(0, plan.width, plan.height)], dtype=np.int64).reshape(-1, 3)
    damaged = [e for e in report.errors if e.startswith("demux error")]
    return VideoInfo(uri=plan.uri, frame_count=count, fps=plan.fps, width=int(sizes[0, 1]), height=int(sizes[0, 2]),
                     codec=plan.codec, pts=np.zeros(0, np.int64), keyframes=np.zeros(1, np.int64),
                     rotation=plan.rotation, numbering="decoder" if isinstance(numbering, Counted) or any(
                         "decoder order" in error for error in report.errors) else plan.numbering,
                     plan="sequential", reorders=plan.reorders, clock_rules=plan.clock_rules,
                     jumps=np.asarray(report.jumps, dtype=np.int64).reshape(-1, 4), sizes=sizes,
                     warnings=[f"the container ends early ({damaged[-1][len('demux error: '):]})"] if damaged else [],
                     notes=["read in one sequential pass (no index)"])


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


def probe(uri: str, source: Source | None = None) -> VideoInfo:
    """Frame count, numbering, safe segment starts, rotation: from the container's index where it has one
    for every frame (MP4/MOV/AVI), else by demuxing (no decoding; one frame only where the header walk
    could not tell the rotation)."""
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
