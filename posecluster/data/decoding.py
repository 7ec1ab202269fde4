"""The decode loop every read shares: feed packets with stamps for pts (numbering.py), place the frames that
come out, hand them over in order. Where to start (a seek, the top of the file, a span) and how frames are
numbered (known stamps, stamps learnt on the way, decoder order) are the caller's; the rules are here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import av

from posecluster.data.numbering import Clock, Counted, FedFrames, InOrder, StampCollision
from posecluster.data.video_info import DecodeReport


class SpansUnsound(ValueError):
    """A span cannot be decoded on its own (frames shown across its keyframe: an open GOP, or timestamps
    that cannot tell frames apart): read the video in one sequential pass instead."""


class PtsStamps:
    """A packet's stamp from its timestamps (clock jumps folded in); every packet goes through the clock,
    shown or not, so that it sees the same timestamps as the probe did."""

    def __init__(self, clock: Clock):
        self.clock = clock

    @property
    def run(self) -> int:
        return self.clock.run

    def __call__(self, packet, shown: bool) -> int | None:
        return self.clock.stamp(packet.pts, packet.dts)


class PositionStamps:
    """A shown packet's stamp is its position in decode order (frames the codec never reorders)."""

    run = 0

    def __init__(self, first: int = 0):
        self.next = first

    def __call__(self, packet, shown: bool) -> int | None:
        if not shown:
            return None
        stamp, self.next = self.next, self.next + 1
        return stamp


@dataclass
class Feed:
    """How a run of packets is fed. `from_top`: packets start at the top of the file (those before the
    first keyframe are never shown; in a pass that learns stamps, neither are the leading pictures
    shown before that keyframe). `span_key`: packets start at this span's keyframe; a frame shown before
    it makes spans unsound. `ends(packet, stamp)`: this packet is past the range (not fed)."""

    from_top: bool
    ends: Callable | None = None
    span_key: bool = False
    learn: bool = False  # the numbering learns stamps from the packets (FedFrames)
    jumps: list = field(default_factory=list)  # (frame, from, to, kind) where the clock jumped (learning passes)


def numbered_frames(stream, packets, stamps, numbering, out: InOrder, report: DecodeReport,
                    feed: Feed) -> Iterator[tuple[int, av.VideoFrame]]:
    """(index, frame) ascending and once each, as `out` orders them; gaps are `out.gaps`."""
    seen_key, key_stamp, key_run = not feed.from_top, None, 0
    events = len(stamps.clock.events) if isinstance(stamps, PtsStamps) else 0
    for packet in packets:
        if packet.size:
            first_key = not seen_key and packet.is_keyframe or key_stamp is None and not feed.from_top
            seen_key = seen_key or packet.is_keyframe
            shown = seen_key and not packet.is_discard
            stamp = stamps(packet, shown)
            if first_key and feed.learn and isinstance(stamps, PtsStamps):
                key_stamp, key_run = stamp, stamps.run  # the start of the numbering, shown or pre-roll
            if feed.ends is not None and feed.ends(packet, stamp):
                break
            if isinstance(stamps, PtsStamps) and len(stamps.clock.events) > events:
                events = len(stamps.clock.events)
                _, before, after, kind = stamps.clock.events[-1]
                feed.jumps.append((getattr(numbering, "total", 0), before, after, kind))
            if shown and stamp is None and not isinstance(numbering, Counted):
                if feed.span_key:
                    raise SpansUnsound("a packet without a timestamp")
                numbering = _count_from_here(numbering, out, report, "a packet without a timestamp")
            if shown and feed.learn and key_stamp is not None and stamp is not None and stamps.run == key_run \
                    and stamp < key_stamp:
                if feed.span_key:
                    raise SpansUnsound("frames after a span's keyframe are shown before it (open GOP)")
                if feed.from_top:
                    shown = False  # a leading picture at the very start: never shown
            if shown:
                try:
                    numbering.fed(stamp)
                except StampCollision as exc:
                    if feed.span_key:
                        raise SpansUnsound(str(exc)) from None
                    numbering = _count_from_here(numbering, out, report, str(exc))
            packet.pts = stamp if shown else None  # what the frame carries out of the decoder
        for frame in _decode(stream, packet, report):
            index = numbering.place(frame.pts)
            if index is not None:
                yield from out.push(index, frame)
        if out.done:
            return
    for frame in _decode(stream, None, report):  # drain what the decoder holds
        index = numbering.place(frame.pts)
        if index is not None:
            yield from out.push(index, frame)
    end = None
    if feed.learn:  # the pass has seen every packet: the frames it covered are known now
        report.frame_count = numbering.total
        end = min(out.stop, numbering.total)
    yield from out.finish(end)


def _count_from_here(numbering, out: InOrder, report: DecodeReport, why: str) -> Counted:
    """Timestamps stopped telling frames apart: count the decoder's frames from the last one placed."""
    report.errors.append(f"{why}: frames from here on are numbered in decoder order")
    counted = Counted(first=out.last + 1)
    counted.total = getattr(numbering, "total", out.last + 1)
    return counted


def _decode(stream, packet, report: DecodeReport) -> list[av.VideoFrame]:
    try:
        return stream.decode(packet)
    except av.error.EOFError:
        return []  # drained already (the demuxer's own flush packet at the end)
    except av.error.FFmpegError as exc:
        where = f" near pts {packet.pts}" if packet is not None and packet.pts is not None else ""
        report.errors.append(f"decode error{where}: {exc}")
        return []


def prime_decoder(container, stream) -> None:
    """Feed the stream's first packet to the decoder before seeking.

    Decoders keep stream-level facts that only the first packet carries: FFmpeg's H.264 decoder reads the
    x264 build from an SEI there and works around old x264 bugs (4:4:4 intra prediction, as in
    DeepLabCut's own example video). A decoder that starts at a later IDR misses it and emits garbage.
    """
    for packet in container.demux(stream):
        if packet.size:
            packet.pts = packet.dts = None  # never mistaken for a frame of the range
            try:
                stream.decode(packet)
            except av.error.FFmpegError:
                pass  # a broken first packet: decoding from the seek point reports its own errors
            return


def packets_of(container, stream, report: DecodeReport):
    """Demux packets; a demuxer error ends the stream (recorded)."""
    try:
        yield from container.demux(stream)
    except av.error.FFmpegError as exc:
        report.errors.append(f"demux error: {exc}")


def seek_to(container, stream, timestamp: int, found: Callable, report: DecodeReport):
    """Packets from the one `found(packet)` accepts on, after seeking to `timestamp`; None when the seek
    fails or lands past it (then the index of what follows would not be known)."""
    prime_decoder(container, stream)
    try:
        container.seek(int(timestamp), stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError as exc:
        report.errors.append(f"seek failed ({exc}); decoding from the start")
        return None
    packets = packets_of(container, stream, report)
    for packet in packets:  # skip (without decoding) packets before the keyframe when the seek landed early
        if not packet.size:
            return None
        verdict = found(packet)
        if verdict is None:
            continue
        return _chain(packet, packets) if verdict else None
    return None


def _chain(first, rest):
    yield first
    yield from rest


def learning_numbering(reorders: bool, timestamps_usable: bool, clock: Clock, first: int = 0):
    """(stamps, numbering) for a pass that learns frames as it goes: decode positions where the codec
    never reorders; timestamps where it does and they are real; decoder order otherwise."""
    if not reorders:
        return PositionStamps(first), FedFrames(first)
    if timestamps_usable:
        return PtsStamps(clock), FedFrames(first)
    return PositionStamps(first), Counted(first)
