"""Small videos of the kinds labs record, each frame carrying its own index as a barcode, and the oracle
that says which frame a plain sequential decode gives at each index.

The barcode: BITS blocks of BLOCK x BLOCK pixels across the top of the frame, white for 1, black for 0,
big enough that every lossy codec here keeps them. Below it a moving square gives a model something to
respond to. Everything is rendered with PyAV alone (never posecluster's reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT = 160, 64
BLOCK, BITS = 16, 10


def barcode_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    image = np.full((height, width, 3), 90, np.uint8)
    for bit in range(BITS):
        value = 235 if (index >> bit) & 1 else 20
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    # something that moves, so that neighbouring frames look different to a model as well
    x = 8 + (index * 7) % (width - 32)
    y = BLOCK + 4 + (index * 3) % (height - BLOCK - 20)
    image[y : y + 16, x : x + 16] = (200, 60, 40)
    return image


def read_barcode(rgb: np.ndarray, rotation: int = 0) -> int:
    """The index drawn into a frame; `rotation` (the display rotation applied) is undone first."""
    upright = np.rot90(rgb, k=-(rotation // 90)) if rotation else rgb
    gray = upright[: BLOCK, : BITS * BLOCK].mean(axis=2)
    value = 0
    for bit in range(BITS):
        block = gray[4 : BLOCK - 4, bit * BLOCK + 4 : (bit + 1) * BLOCK - 4]
        value |= int(block.mean() > 128) << bit
    return value


def display_rotation(frame: av.VideoFrame) -> int:
    """Degrees counter-clockwise, as OpenCV's autorotate applies them (multiples of 90)."""
    return int(round((frame.rotation or 0) / 90.0)) * 90 % 360


def upright(frame: av.VideoFrame) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    rotation = display_rotation(frame)
    return np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb


def oracle(path: str) -> list[np.ndarray]:
    """Every frame of a plain sequential decode of the whole file, in display orientation; a packet the
    decoder rejects is skipped, as OpenCV's reader skips it."""
    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError:
                    continue
                frames += [upright(f) for f in decoded]
        except av.error.FFmpegError:
            pass  # a truncated file: what was decoded so far
    return frames


@dataclass(frozen=True)
class Spec:
    name: str
    container: str  # file suffix
    codec: str = "libx264"
    options: tuple[tuple[str, str], ...] = ()
    frames: int = 48
    fps: int = 25
    fmt: str | None = None  # muxer name where the suffix is not enough
    pix_fmt: str = "yuv420p"
    rotation: int = 0
    vfr: bool = False
    time_base: Fraction | None = None


H264_BF = (("g", "12"), ("bf", "2"), ("crf", "23"), ("preset", "veryfast"))
H264_NO_BF = (("g", "12"), ("bf", "0"), ("crf", "23"), ("preset", "veryfast"))
H264_OPEN = (("g", "12"), ("bf", "2"), ("crf", "23"), ("preset", "veryfast"), ("x264-params", "open-gop=1:scenecut=0"))

MATRIX = [
    Spec("h264_nobf_mp4", "mp4", options=H264_NO_BF),
    Spec("h264_bf_mp4", "mp4", options=H264_BF),
    Spec("h264_open_mkv", "mkv", options=H264_OPEN),
    Spec("h264_bf_mov", "mov", options=H264_BF),
    Spec("h264_bf_avi", "avi", options=H264_BF),
    Spec("h264_bf_ts", "ts", options=H264_BF, fmt="mpegts"),
    Spec("hevc_mp4", "mp4", codec="libx265", options=(("x265-params", "keyint=12:min-keyint=12:bframes=2:log-level=error"),)),
    Spec("mpeg4_bf_avi", "avi", codec="mpeg4", options=(("g", "12"), ("bf", "2"), ("qscale", "4"))),
    Spec("mpeg2_bf_mpg", "mpg", codec="mpeg2video", options=(("g", "12"), ("bf", "2"), ("qscale", "4")), fmt="vob"),
    Spec("mjpeg_avi", "avi", codec="mjpeg", pix_fmt="yuvj420p"),
    Spec("rotated_mp4", "mp4", options=H264_BF, rotation=90),
    Spec("vfr_mkv", "mkv", options=H264_BF, vfr=True),
    Spec("highfps_mkv", "mkv", options=H264_NO_BF, fps=2000, frames=60),
]


def encode(spec: Spec, path: str) -> str:
    """Render spec's frames into path (mp4s with the index first, as our own writer makes them)."""
    options = {"movflags": "+faststart"} if spec.container in ("mp4", "mov") else {}
    with av.open(path, mode="w", format=spec.fmt, options=options) as container:
        stream = container.add_stream(spec.codec, rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, spec.pix_fmt
        stream.options = dict(spec.options)
        if spec.vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        clock = 0
        for index in range(spec.frames):
            frame = av.VideoFrame.from_ndarray(barcode_frame(index), format="rgb24")
            if spec.vfr:
                frame.pts, frame.time_base = clock, Fraction(1, 1000)
                clock += (20, 40, 33, 70)[index % 4]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def remux(source: str, path: str, keep=lambda i, packet: True, shift: int = 0) -> str:
    """Copy source's video packets into an mp4 at path: `keep(decode position, packet)` picks packets,
    `shift` moves pts/dts (in stream time base) -- below zero it makes an edit list."""
    with av.open(source) as src, av.open(path, mode="w") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        position = 0
        for packet in src.demux(in_stream):
            if packet.size == 0:
                continue
            if keep(position, packet):
                if packet.pts is not None:
                    packet.pts += shift
                if packet.dts is not None:
                    packet.dts += shift
                packet.stream = out_stream
                dst.mux(packet)
            position += 1
    return path


def packet_layout(path: str) -> list[tuple[int, int, int, bool]]:
    """(pos, size, pts, keyframe) of every video packet in decode order."""
    with av.open(path) as container:
        return [(p.pos, p.size, p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]


def render_matrix(folder: str) -> dict[str, str]:
    """Every spec of MATRIX plus the derived damage cases; name -> path."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    paths = {spec.name: encode(spec, f"{folder}/{spec.name}.{spec.container}") for spec in MATRIX}
    base = paths["h264_bf_mp4"]
    with av.open(base) as container:
        stream = container.streams.video[0]
        frame_ticks = int(1 / (stream.average_rate * stream.time_base))
    # a trim as `ffmpeg -ss` with stream copy makes: the first 5 frames are pre-roll, discarded on decode
    paths["editlist_mp4"] = remux(base, f"{folder}/editlist_mp4.mp4", shift=-5 * frame_ticks)
    # a stream cut mid-GOP: starts with 3 packets that cannot be decoded on their own
    paths["nokey_start_mkv"] = remux(encode(Spec("nokey_src", "mkv", options=H264_NO_BF), f"{folder}/nokey_src.mkv"),
                                     f"{folder}/nokey_start_mkv.mkv", keep=lambda i, p: i >= 3)
    # the camera died: the last 40% of the bytes are gone
    full = Path(base).read_bytes()
    Path(f"{folder}/truncated_mp4.mp4").write_bytes(full[: int(len(full) * 0.6)])
    paths["truncated_mp4"] = f"{folder}/truncated_mp4.mp4"
    # one packet in the middle overwritten with garbage (intra-only codec: it costs that frame only)
    corrupt = encode(Spec("corrupt_mjpeg_mp4", "mp4", codec="mjpeg", pix_fmt="yuvj420p"), f"{folder}/corrupt_mjpeg_mp4.mp4")
    pos, size, _, _ = packet_layout(corrupt)[20]
    data = bytearray(Path(corrupt).read_bytes())
    data[pos + 2 : pos + size] = bytes(np.random.default_rng(0).integers(0, 256, size - 2, dtype=np.uint8))
    Path(corrupt).write_bytes(bytes(data))
    paths["corrupt_mjpeg_mp4"] = corrupt
    return paths
