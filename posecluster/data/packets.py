"""A video's packets as a table (decode order), from a full demux or from the container's own index, and
the one rule that turns such a table into frame numbering (`number_frames`).

Which packets become frames, as a plain sequential decode shows them:
- none before the first keyframe (a decoder cannot start there), none the edit list discards (pre-roll of
  a trim: decoded, never shown);
- with trustworthy timestamps ("pts"), none shown before the first keyframe in the first run of the
  clock (leading pictures of an open GOP at the very start); frame i is the i-th smallest stamp (see
  numbering.py: stamps stay increasing across clock resets and jumps);
- otherwise ("decoder"), frame i is the i-th packet in decode order from the first keyframe.

A segment may start only at a keyframe whose index is exact and after which nothing decoded is shown
before it (closed GOP); decode-order streams whose codec reorders frames cannot prove that: [0] only.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import av
import numpy as np

from posecluster.data.numbering import NO_PTS, ClockRules, stamp_table
from posecluster.data.video_info import VideoInfo
from posecluster.errors import InputError

# Containers whose packet timestamps FFmpeg invents in decode order (B-frames come out misnumbered).
INVENTED_PTS_FORMATS = ("avi",)


@dataclass
class Header:
    """Facts of the open stream that numbering needs."""

    fmt: str
    codec: str
    fps: float
    width: int  # display orientation
    height: int
    rotation: int
    reorders: bool
    rules: ClockRules

    @property
    def invented_pts(self) -> bool:
        return any(name in self.fmt.split(",") for name in INVENTED_PTS_FORMATS)


@dataclass
class PacketTable:
    """Video packets in decode order (zero-size placeholders left out). `present` packets are in the file;
    an index may list more (a truncated recording). `declared`: frames the container claims, 0 unknown."""

    pts: np.ndarray
    dts: np.ndarray
    key: np.ndarray
    discard: np.ndarray
    pos: np.ndarray
    present: int
    declared: int = 0

    def __len__(self) -> int:
        return len(self.pts)


class _Columns:
    """Growing columns for a demux (compact: no Python object per packet)."""

    def __init__(self):
        self.pts, self.dts, self.pos = array("q"), array("q"), array("q")
        self.key, self.discard = array("b"), array("b")

    def add(self, pts, dts, key, discard, pos) -> None:
        self.pts.append(NO_PTS if pts is None else pts)
        self.dts.append(NO_PTS if dts is None else dts)
        self.key.append(key)
        self.discard.append(discard)
        self.pos.append(-1 if pos is None else pos)

    def table(self, declared: int = 0) -> PacketTable:
        arrays = [np.frombuffer(column, dtype=np.int64) if column.typecode == "q" else
                  np.frombuffer(column, dtype=np.int8).astype(bool) for column in
                  (self.pts, self.dts, self.key, self.discard, self.pos)]
        return PacketTable(*arrays, present=len(self.pts), declared=declared)


def demux_table(container, stream, on_keyframe=None) -> tuple[PacketTable, str | None]:
    """Every video packet of the file (no decoding); `on_keyframe(packet)` sees each keyframe packet.
    A demuxer error ends the table (truncated or damaged file): (table, the error)."""
    columns = _Columns()
    try:
        for packet in container.demux(stream):  # the hot loop of a probe: read only what is used
            if packet.size:
                if packet.is_keyframe and on_keyframe is not None:
                    on_keyframe(packet)
                columns.add(packet.pts, packet.dts, packet.is_keyframe, packet.is_discard, packet.pos)
    except av.error.FFmpegError as exc:
        return columns.table(), str(exc)
    return columns.table(), None


def number_frames(uri: str, table: PacketTable, head: Header, demux_error: str | None = None) -> VideoInfo:
    """The frames a plain sequential decode shows, their numbering and safe segment starts (module doc)."""
    if not len(table):
        raise InputError(uri, f"video has no frames{f' ({demux_error})' if demux_error else ''}")
    warnings, notes = [], []
    keys = np.flatnonzero(table.key)
    unflagged = not len(keys)
    first_key = int(keys[0]) if len(keys) else 0
    if unflagged:
        # No keyframe flags at all (some AVI writers): nothing is known about where decoding may start,
        # so count what the decoder gives from the top, in one piece.
        notes.append("no packet is flagged as a keyframe: decoded in one piece")
    before_key = int(np.count_nonzero(~table.discard[:first_key]))
    if before_key:
        notes.append(f"the first {first_key} packets precede the first keyframe and cannot be decoded; "
                     "frame 0 is the first keyframe, as in OpenCV")
    stamps, runs, offsets, events = stamp_table(table.pts, table.dts, head.rules)
    shown = first_key + np.flatnonzero(~table.discard[first_key:])  # packet indices, decode order
    trusted = (not unflagged and not head.invented_pts and bool(np.all(stamps[shown] != NO_PTS))
               and bool(np.all(np.diff(np.sort(stamps[shown])))))
    numbering = "pts" if trusted else "decoder"
    if trusted:
        # Leading pictures of an open GOP at the very start (shown before the first keyframe) are dropped.
        lead = (runs[shown] == runs[first_key]) & (stamps[shown] < stamps[first_key])
        shown = shown[~lead]
        order = np.argsort(stamps[shown], kind="stable")
        frame_stamps = stamps[shown][order]
        in_file = shown[order] < table.present  # per frame, display order
    else:
        frame_stamps = np.arange(len(shown), dtype=np.int64)  # a packet's stamp: its position
        in_file = shown < table.present
    declared = max(len(shown), table.declared - before_key)
    present = int(np.argmin(in_file)) if not in_file.all() else len(shown)
    if trusted and table.declared > len(shown):
        # Truncated mid-GOP with no index to say which frames were lost: keep the leading run without a
        # hole in the frame grid; the rest are missing.
        present = len(_contiguous_prefix(frame_stamps[:present]))
    frame_count = declared
    if frame_count > present:
        warnings.append(f"truncated: the container declares {frame_count} frames, only {present} are present")
    elif demux_error:
        warnings.append(f"the container ends early ({demux_error})")
    if trusted:
        starts = _safe_starts_by_pts(table, stamps, shown[shown < table.present])
    elif unflagged or head.reorders:
        starts = np.asarray([first_key])
        if head.reorders:
            notes.append("timestamps cannot be trusted and frames are reordered: decoded in one piece")
    else:
        starts = shown[table.key[shown] & (shown < table.present)]  # decode order = display order
    if not trusted and (unflagged or head.reorders or np.any(table.pos[starts] < 0)):
        starts = np.asarray([first_key])
    keyframes = _frame_index(starts, shown, stamps, frame_stamps, trusted)
    keep = (keyframes > 0) & (keyframes < present)
    starts, keyframes = starts[keep], keyframes[keep]
    # A jump's frame: the frames shown before its packet in decode order (a reset starts a new GOP)
    jumps = [(int(np.searchsorted(shown, p)), a, b, kind) for p, a, b, kind in events]
    return VideoInfo(
        uri=uri, frame_count=frame_count, fps=head.fps, width=head.width, height=head.height, codec=head.codec,
        pts=frame_stamps[:present], keyframes=np.asarray([0, *keyframes.tolist()], dtype=np.int64),
        rotation=head.rotation, numbering=numbering, present=present,
        seek_ts=np.asarray([0, *(_seek_stamp(table, p) for p in starts)], dtype=np.int64),
        seek_pos=np.asarray([-1, *table.pos[starts].tolist()], dtype=np.int64),
        seek_run=np.asarray([0, *runs[starts].tolist()], dtype=np.int64),
        warnings=warnings, notes=notes, reorders=head.reorders, clock_offsets=offsets,
        clock_rules=(head.rules.step, head.rules.threshold, head.rules.wraps),
        jumps=np.asarray(jumps, dtype=np.int64).reshape(-1, 4),
    )


def _frame_index(packets: np.ndarray, shown: np.ndarray, stamps: np.ndarray, frame_stamps: np.ndarray,
                 trusted: bool) -> np.ndarray:
    """The frame index of each packet (or of the first frame at or after it)."""
    if trusted:
        return np.searchsorted(frame_stamps, stamps[packets]).astype(np.int64)
    return np.searchsorted(shown, packets).astype(np.int64)


def _seek_stamp(table: PacketTable, packet: int) -> int:
    """What to hand FFmpeg's seek for this keyframe: the smaller of its pts and dts."""
    candidates = [int(v) for v in (table.pts[packet], table.dts[packet]) if v != NO_PTS]
    return min(candidates) if candidates else 0


def _contiguous_prefix(pts: np.ndarray) -> np.ndarray:
    if len(pts) < 3:
        return pts
    steps = np.diff(pts)
    holes = np.flatnonzero(steps > 1.5 * np.median(steps))
    return pts[: holes[0] + 1] if len(holes) else pts


def _safe_starts_by_pts(table: PacketTable, stamps: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Keyframe packets after which every decoded frame is shown after them and before which every frame
    is shown before them: there a decoder can start cold and the frame index is exact. `kept`: the
    packets that become frames, in decode order. The first frame is always a start (not listed)."""
    order_stamps = stamps[kept]
    later_min = np.minimum.accumulate(order_stamps[::-1])[::-1]  # min stamp from here on, in decode order
    earlier_max = np.maximum.accumulate(np.concatenate([[np.iinfo(np.int64).min], order_stamps[:-1]]))
    safe = table.key[kept] & (later_min == order_stamps) & (earlier_max < order_stamps)
    safe[:1] = False
    return kept[safe]
