"""How a decoded frame gets its index: one rule for the probe, the plan and every read.

A plain sequential decode numbers frames in the order the decoder hands them back. The reader keeps that
order without trusting the decoder around damage: before a packet is decoded its pts is replaced by a
*stamp*, a number on one increasing timeline that the frame carries out of the decoder (FFmpeg's decoders
give a frame the pts of its own packet, whatever order they emit it in). A frame's index is then found
from its stamp, never from how many frames came out before it, so a frame the decoder drops leaves a gap
(a missing row), never a shift, and a frame it emits out of order or twice is put back or dropped.

Stamps:
- `Clock` turns raw timestamps into stamps across clock jumps. A jump is the decode timestamp going back
  (two recordings joined with `cat`, a camera restarting) or forward by more than JUMP_THRESHOLD_S
  (FFmpeg's own threshold for formats with discontinuities). After a jump the new clock continues just
  after the highest stamp so far, so the frames of each run of the clock keep their place in decode
  order. The 33-bit MPEG wrap is unwrapped by FFmpeg itself; it is recorded, not corrected, here.
- Where timestamps cannot be trusted and the codec does not reorder frames, a packet's stamp is its
  position in decode order (display order = decode order then).

Numberings (stamp -> index): `KnownFrames` (the stamps of every frame known in advance: a probe or a
container's index), `FedFrames` (stamps learnt from the packets fed so far: a sequential pass or a span;
the decoder shows a frame only after every earlier-shown frame's packet went in) and `Counted` (decoder
order, the last resort for reordering streams without usable timestamps).
"""

from __future__ import annotations

import bisect
import heapq
from dataclasses import dataclass, field

import numpy as np

NO_PTS = np.iinfo(np.int64).min  # a packet without this timestamp (in packet tables)

JUMP_THRESHOLD_S = 10.0  # FFmpeg's dts_delta_threshold for AVFMT_TS_DISCONT formats
WRAP_BITS = 33  # MPEG-TS/PS timestamps
_WRAP_FORMATS = ("mpegts", "mpeg", "mpegvideo", "mpegtsraw")
JUMP, WRAP = 0, 1  # kinds in VideoInfo.jumps


@dataclass
class ClockRules:
    """What makes a jump, in the stream's time base."""

    step: int  # one frame's duration (ticks), at least 1
    threshold: int  # a forward step larger than this is a jump
    wraps: bool = False  # MPEG timestamps: record where FFmpeg unwrapped the 33-bit clock

    @classmethod
    def of(cls, stream, fmt: str) -> "ClockRules":
        base = stream.time_base
        rate = stream.average_rate or stream.guessed_rate
        ticks_per_s = float(1 / base) if base else 90000.0
        step = int(round(ticks_per_s / float(rate))) if rate else 1
        wraps = any(name in fmt.split(",") for name in _WRAP_FORMATS)
        return cls(step=max(step, 1), threshold=int(JUMP_THRESHOLD_S * ticks_per_s), wraps=wraps)

    def jumped(self, delta, by_pts):
        """Whether a step of the decode timestamp (decode order) is a jump. Where a packet (this one or the
        one before) has no dts the pts stands in, which goes back by a few frames wherever B-frames are:
        allow that."""
        back = np.where(by_pts, 64 * self.step, 0)
        return (delta < -back) | (delta > self.threshold)


def stamp_table(pts: np.ndarray, dts: np.ndarray, rules: ClockRules) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Stamps of a whole packet table (decode order): (stamps with NO_PTS where a packet has none, run of
    each packet, offset of each run, events [(packet, from, to, kind)]). The vectorised twin of `Clock`."""
    by_pts = dts == NO_PTS
    t = np.where(by_pts, pts, dts)
    valid = np.flatnonzero(t != NO_PTS)
    steps = np.diff(t[valid])
    jump_at = valid[1:][rules.jumped(steps, by_pts[valid[1:]] | by_pts[valid[:-1]])]
    runs = np.zeros(len(t), dtype=np.int64)
    runs[jump_at] = 1
    runs = np.cumsum(runs)
    own = np.where(pts != NO_PTS, pts, t)
    stamps = np.full(len(t), NO_PTS, dtype=np.int64)
    offsets, events, high = [0], [], None
    bounds = [0, *jump_at.tolist(), len(t)]
    for run, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        if run:
            offsets.append(high + rules.step - int(t[a]))
            previous = valid[np.searchsorted(valid, a) - 1]
            events.append((a, int(t[previous]), int(t[a]), JUMP))
        segment = own[a:b]
        known = segment != NO_PTS
        stamps[a:b][known] = segment[known] + offsets[run]
        if known.any():
            top = int(max(stamps[a:b][known].max(), t[a:b][t[a:b] != NO_PTS].max() + offsets[run]))
            high = top if high is None else max(high, top)
    if rules.wraps and len(valid) > 1:
        raw = t[valid] & ((1 << WRAP_BITS) - 1)
        wrapped = valid[1:][(np.diff(raw) < -(1 << (WRAP_BITS - 1))) & ~np.isin(valid[1:], jump_at)]
        for packet in wrapped.tolist():
            previous = valid[np.searchsorted(valid, packet) - 1]
            events.append((packet, int(t[previous]) & ((1 << WRAP_BITS) - 1), int(t[packet]) & ((1 << WRAP_BITS) - 1), WRAP))
        events.sort()
    return stamps, runs, np.asarray(offsets, dtype=np.int64), events


class Clock:
    """Stamps packet by packet, as `stamp_table` does for a whole table. Given the offsets a probe found
    (`offsets`, starting in run `run`), it replays them; beyond them (or without them) it finds its own."""

    def __init__(self, rules: ClockRules, offsets=(0,), run: int = 0):
        self.rules, self.offsets, self.run = rules, [int(o) for o in offsets], run
        self.last: int | None = None  # raw decode timestamp of the previous packet
        self.last_by_pts = False  # ... which was its pts (no dts)
        self.high: int | None = None  # highest stamp so far
        self.events: list[tuple[int, int, int]] = []  # (stamp of the first packet after it, from, to, kind)

    def stamp(self, pts: int | None, dts: int | None) -> int | None:
        by_pts = dts is None
        t = pts if by_pts else dts
        if t is None:
            return None
        if self.last is not None:
            if self.rules.jumped(t - self.last, by_pts or self.last_by_pts):
                self.run += 1
                if self.run >= len(self.offsets):
                    self.offsets.append((self.high if self.high is not None else self.last) + self.rules.step - t)
                self.events.append((t + self.offsets[self.run], self.last, t, JUMP))
            elif self.rules.wraps and (t & ((1 << WRAP_BITS) - 1)) - (self.last & ((1 << WRAP_BITS) - 1)) < -(1 << (WRAP_BITS - 1)):
                self.events.append((t + self.offsets[self.run], self.last & ((1 << WRAP_BITS) - 1),
                                    t & ((1 << WRAP_BITS) - 1), WRAP))
        self.last, self.last_by_pts = t, by_pts
        offset = self.offsets[self.run]
        stamp = (pts if pts is not None else t) + offset
        top = max(stamp, t + offset)
        self.high = top if self.high is None else max(self.high, top)
        return stamp


class KnownFrames:
    """Index = position of the stamp among every frame's stamp (ascending), known in advance."""

    def __init__(self, stamps: np.ndarray):
        self.stamps = stamps

    def fed(self, stamp: int) -> None:
        pass

    def place(self, stamp: int | None) -> int | None:
        if stamp is None:
            return None
        index = int(np.searchsorted(self.stamps, stamp))
        return index if index < len(self.stamps) and self.stamps[index] == stamp else None


class StampCollision(ValueError):
    """Two packets shown with the same stamp: frames cannot be told apart by timestamp."""


class FedFrames:
    """Index = `first` + rank of the stamp among the shown packets fed so far. Exact once the frame leaves
    the decoder, which shows a frame only after every packet shown before it went in. Stamps far behind
    the newest frame placed (`horizon`) are forgotten: memory stays flat in video length."""

    def __init__(self, first: int = 0, horizon: int = 256):
        self.forgotten, self.kept, self.horizon = first, [], horizon
        self.total = first  # first + shown packets fed

    def fed(self, stamp: int) -> None:
        at = bisect.bisect_left(self.kept, stamp)
        if at < len(self.kept) and self.kept[at] == stamp:
            raise StampCollision(f"two packets carry timestamp {stamp}")
        self.kept.insert(at, stamp)
        self.total += 1
        if len(self.kept) > 8 * self.horizon:  # the decoder stopped showing frames: those are missing
            drop = len(self.kept) - 4 * self.horizon
            del self.kept[:drop]
            self.forgotten += drop

    def place(self, stamp: int | None) -> int | None:
        if stamp is None:
            return None
        at = bisect.bisect_left(self.kept, stamp)
        if at >= len(self.kept) or self.kept[at] != stamp:
            return None
        index = self.forgotten + at
        drop = at - self.horizon
        if drop > 0:
            del self.kept[:drop]
            self.forgotten += drop
        return index


class Counted:
    """Index = `first` + frames the decoder handed back before this one (decoder order)."""

    def __init__(self, first: int = 0):
        self.next = first
        self.total = first

    def fed(self, stamp) -> None:
        self.total += 1

    def place(self, stamp) -> int:
        index, self.next = self.next, self.next + 1
        return index


@dataclass
class InOrder:
    """Hands frames over ascending and once each, within [start, stop). A frame that comes early (after a
    gap) waits, up to `window` frames, for the ones before it; a frame older than the last one handed
    over, or a repeat, is dropped. Gaps are the caller's missing frames (`gaps`)."""

    start: int
    stop: int
    window: int = 8
    last: int = -1
    _waiting: list = field(default_factory=list)
    _indices: set = field(default_factory=set)
    gaps: list = field(default_factory=list)  # (first, stop) ranges never handed over

    def __post_init__(self):
        self.last = self.start - 1

    @property
    def done(self) -> bool:
        return self.last >= self.stop - 1

    def push(self, index: int, item) -> list:
        if not self.start <= index < self.stop or index <= self.last or index in self._indices:
            return []
        if index == self.last + 1 and not self._waiting:
            return [self._hand(index, item)]
        heapq.heappush(self._waiting, (index, id(item), item))
        self._indices.add(index)
        ready = []
        while self._waiting and (self._waiting[0][0] == self.last + 1 or len(self._waiting) > self.window):
            index, _, item = heapq.heappop(self._waiting)
            self._indices.discard(index)
            ready.append(self._hand(index, item))
        return ready

    def finish(self, stop: int | None = None) -> list:
        """The frames still waiting, in order; the range ends at `stop` (default: the range's own)."""
        ready = []
        while self._waiting:
            index, _, item = heapq.heappop(self._waiting)
            ready.append(self._hand(index, item))
        self._indices.clear()
        end = self.stop if stop is None else stop
        if self.last + 1 < end:
            self.gaps.append((self.last + 1, end))
        return ready

    def _hand(self, index: int, item):
        if index > self.last + 1:
            self.gaps.append((self.last + 1, index))
        self.last = index
        return index, item
