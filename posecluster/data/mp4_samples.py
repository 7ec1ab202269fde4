"""An MP4/MOV track's sample table, read from `moov` by range reads: where each sample lies and its
composition offset (pts - dts), which FFmpeg's index (PyAV's `index_entries`: decode timestamps, byte
positions, keyframe and discard flags) does not carry. Media data is never read.

Only the boxes needed (ISO/IEC 14496-12 8.6-8.7: stsz, stsc, stco/co64, ctts) are parsed; a fragmented
file (`mvex`/`moof`: samples described outside `moov`) or a layout this walk does not follow gives None,
and the caller reads the video another way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import IO

import numpy as np

from posecluster.data.container_rotation import boxes, first_child, mp4_track


@dataclass
class SampleTable:
    pos: np.ndarray  # byte position of each sample (sample order = decode order)
    composition: np.ndarray  # pts - dts of each sample, in the track's time base


def _payload(handle: IO[bytes], start: int, stop: int) -> bytes:
    handle.seek(start)
    return handle.read(stop - start)


def _full_box_entries(data: bytes, fmt: str, fields: int = 1) -> np.ndarray:
    """The entries (count x fields values) of a full box whose payload is version/flags, count, entries."""
    count = struct.unpack(">I", data[4:8])[0]
    width = np.dtype(fmt).itemsize * fields
    body = data[8 : 8 + count * width]
    if len(body) < count * width:
        raise ValueError("box shorter than its entry count")
    return np.frombuffer(body, dtype=fmt).reshape(count, fields)


def moov_extent(head: bytes) -> tuple[int, int] | None:
    """(start, end) of the top-level `moov` box if its header lies in `head`, the first bytes of an
    MP4/MOV; None for other containers, or when `moov` comes after the media data (at the end)."""
    position = 0
    while position + 8 <= len(head):
        size, kind = struct.unpack(">I4s", head[position : position + 8])
        if size == 1:
            if position + 16 > len(head):
                return None
            size = struct.unpack(">Q", head[position + 8 : position + 16])[0]
        if size < 8 or not all(32 <= c < 127 for c in kind):
            return None  # not a box (another container), or a size 0 box running to the end
        if kind == b"moov":
            return position, position + size
        if kind == b"mdat":
            return None
        position += size
    return None


def mp4_sample_table(handle: IO[bytes], track_id: int) -> SampleTable | None:
    """The sample table of track `track_id`, or None (fragmented, or not a layout this walk follows)."""
    position = handle.tell()  # PyAV reads on from where it left the handle: put it back
    try:
        return _read(handle, track_id)
    except (OSError, IndexError, struct.error, ValueError):
        return None
    finally:
        handle.seek(position)


def _read(handle: IO[bytes], track_id: int) -> SampleTable | None:
    handle.seek(0, 2)
    end = handle.tell()
    top = []
    try:
        for kind, start, stop in boxes(handle, 0, end):
            if kind == b"moof":
                return None  # fragments: samples described outside moov
            top.append((kind, start, stop))
    except ValueError:
        pass  # a truncated recording: its media data runs past the end; moov came before it or not at all
    moov = first_child(top, b"moov")
    if moov is None:
        return None
    if first_child(boxes(handle, *moov), b"mvex") is not None:
        return None
    found = mp4_track(handle, moov, track_id)
    stbl = None if found is None else _descend(handle, found[0], (b"mdia", b"minf", b"stbl"))
    return None if stbl is None else _samples(handle, {k: (a, b) for k, a, b in boxes(handle, *stbl)})


def _descend(handle: IO[bytes], box: tuple[int, int], path: tuple[bytes, ...]) -> tuple[int, int] | None:
    for kind in path:
        box = first_child(boxes(handle, *box), kind)
        if box is None:
            return None
    return box


def _samples(handle: IO[bytes], children: dict) -> SampleTable | None:
    if b"stsz" not in children or b"stsc" not in children:
        return None  # stz2 (compact sizes) is not read here
    stsz = _payload(handle, *children[b"stsz"])
    uniform, count = struct.unpack(">II", stsz[4:12])
    sizes = (np.full(count, uniform, dtype=np.int64) if uniform else
             np.frombuffer(stsz[12 : 12 + 4 * count], dtype=">u4").astype(np.int64))
    if len(sizes) != count:
        return None
    if b"co64" in children:
        offsets = _full_box_entries(_payload(handle, *children[b"co64"]), ">u8")[:, 0].astype(np.int64)
    elif b"stco" in children:
        offsets = _full_box_entries(_payload(handle, *children[b"stco"]), ">u4")[:, 0].astype(np.int64)
    else:
        return None
    runs = _full_box_entries(_payload(handle, *children[b"stsc"]), ">u4", 3).astype(np.int64)
    first_chunk = runs[:, 0] - 1
    per_chunk = np.zeros(len(offsets), dtype=np.int64)
    for j, (first, samples) in enumerate(zip(first_chunk, runs[:, 1])):
        last = first_chunk[j + 1] if j + 1 < len(runs) else len(offsets)
        per_chunk[first:last] = samples
    if per_chunk.sum() < count:
        return None
    chunk_of = np.repeat(np.arange(len(offsets)), per_chunk)[:count]
    ends = np.cumsum(sizes)
    chunk_start = np.concatenate([[0], np.cumsum(per_chunk)])[chunk_of]  # first sample of the chunk
    before = ends - sizes - np.concatenate([[0], ends])[chunk_start]  # bytes of earlier samples in the chunk
    pos = offsets[chunk_of] + before
    composition = np.zeros(count, dtype=np.int64)
    if b"ctts" in children:
        entries = _full_box_entries(_payload(handle, *children[b"ctts"]), ">u4", 2)
        # version 1 offsets are signed; FFmpeg reads version 0 ones as signed too
        values = np.repeat(entries[:, 1].astype(np.uint32).view(np.int32).astype(np.int64), entries[:, 0])
        composition[: min(count, len(values))] = values[:count]
    return SampleTable(pos=pos, composition=composition)
