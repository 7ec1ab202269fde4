"""Planning from the container's own index, by range reads, without reading media data.

- MP4/MOV: FFmpeg reads `moov` at open (at the start or the end of the file) and PyAV shows it as
  `stream.index_entries` (decode timestamps, byte positions, sizes, keyframe and discard flags after the
  edit list); the composition offsets come from the sample table (mp4_samples). Every frame is known.
- AVI: `idx1` or OpenDML's `indx`/`ix##`, read by FFmpeg at open: the same entries; timestamps there are
  frame counters in decode order (numbered "decoder").
- Matroska/WebM: cues list keyframes only (timestamp, cluster position): a plan of spans between them.
Anything else, or an index that does not agree with the first packet, returns None: read without one.
"""

from __future__ import annotations

import numpy as np

from posecluster.data.container_rotation import elements, first_child
from posecluster.data.mp4_samples import mp4_sample_table
from posecluster.data.packets import PacketTable

_MP4 = {"mov", "mp4"}


def index_table(container, stream, handle, first) -> PacketTable | None:
    """Every packet of an MP4/MOV/AVI video from its index, or None (no index, fragmented, unexpected).
    `first`: the first packet the demuxer gave (from its buffer: no further reads), which ties index and
    packets together: FFmpeg adds a constant shift to MP4 pts (negative composition offsets), and AVI
    index positions point at the chunk header, packets at its data."""
    formats = set(container.format.name.split(","))
    mp4, avi = bool(formats & _MP4), "avi" in formats
    entries = stream.index_entries
    if not (mp4 or avi) or entries is None or not len(entries):
        return None
    samples = mp4_sample_table(handle, stream.id) if mp4 else None
    if mp4 and samples is None:
        return None
    rows = np.asarray([(e.timestamp, e.pos, e.size, e.is_keyframe, e.is_discard) for e in entries if e.size > 0],
                      dtype=np.int64).reshape(-1, 5)
    if not len(rows):
        return None
    dts, pos, size, key, discard = rows.T
    if mp4:
        order = np.argsort(samples.pos, kind="stable")
        at = np.minimum(np.searchsorted(samples.pos[order], pos), len(order) - 1)
        if np.any(samples.pos[order][at] != pos):
            return None
        pts = dts + samples.composition[order][at]
    else:
        pts = dts.copy()
    if first is None or first.dts != dts[0] or first.pos is None:
        return None
    if first.pts is not None:
        pts = pts + (first.pts - int(pts[0]))
    pos = pos + (first.pos - int(pos[0]))
    position = handle.tell()
    handle.seek(0, 2)
    file_size = handle.tell()
    handle.seek(position)
    beyond = np.flatnonzero(pos + size > file_size)
    present = int(beyond[0]) if len(beyond) else len(pos)
    return PacketTable(pts=pts, dts=dts, key=key.astype(bool), discard=discard.astype(bool), pos=pos, present=present)


# Matroska element IDs (RFC 9559)
_SEGMENT, _SEEK_HEAD, _SEEK, _SEEK_ID, _CUES = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x1C53BB6B
_CLUSTER = 0x1F43B675


def matroska_has_cues(handle) -> bool:
    """Whether the segment's SeekHead points at a Cues element (where FFmpeg looks for cues)."""
    position = handle.tell()
    try:
        handle.seek(0, 2)
        end = handle.tell()
        segment = first_child(elements(handle, 0, end), _SEGMENT)
        if segment is None:
            return False
        for kind, start, stop in elements(handle, *segment):
            if kind == _CUES:
                return True
            if kind == _CLUSTER:
                return False
            if kind == _SEEK_HEAD:
                for seek_kind, a, b in elements(handle, start, stop):
                    if seek_kind == _SEEK:
                        seek_id = first_child(elements(handle, a, b), _SEEK_ID)
                        if seek_id is not None:
                            handle.seek(seek_id[0])
                            if int.from_bytes(handle.read(seek_id[1] - seek_id[0]), "big") == _CUES:
                                return True
        return False
    except (OSError, IndexError, ValueError):
        return False
    finally:
        handle.seek(position)


def matroska_spans(container, stream, handle) -> tuple[np.ndarray, np.ndarray] | None:
    """(timestamp, cluster position) of each cue keyframe in file order, or None (no cues, cues that are
    not in file order: a clock that went back)."""
    if not set(container.format.name.split(",")) & {"matroska", "webm"} or not matroska_has_cues(handle):
        return None
    container.seek(0, stream=stream, backward=True)  # FFmpeg reads the cues on the first seek
    entries = [(e.timestamp, e.pos) for e in stream.index_entries if e.is_keyframe]
    if len(entries) < 2:
        return None
    ts, pos = np.asarray(entries, dtype=np.int64).T
    if np.any(np.diff(ts) <= 0) or np.any(np.diff(pos) < 0):
        return None
    return ts, pos
