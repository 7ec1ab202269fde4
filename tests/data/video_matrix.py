"""Small videos of the kinds labs record, each frame carrying its own index as a barcode, and the oracle
that says which frame a plain sequential decode gives at each index.

The barcode: BITS blocks of BLOCK x BLOCK pixels across the top of the frame, white for 1, black for 0,
big enough that every lossy codec here keeps them. Below it a moving square gives a model something to
respond to. Everything is rendered with PyAV alone (never posecluster's reader).
"""

from __future__ import annotations

import io
import struct
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
    size: tuple[int, int] = (WIDTH, HEIGHT)
    first: int = 0  # the index drawn into the first frame
    faststart: bool = True  # mp4/mov: the index (moov) before the media data
    seekable: bool = True  # False: written through a pipe, as a live recording (Matroska: no cues)


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


class _Pipe(io.RawIOBase):
    """A file that cannot seek: muxers write as to a pipe (no index written back at the end)."""

    def __init__(self, handle):
        self.handle = handle

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        return self.handle.write(data)


def encode(spec: Spec, path: str) -> str:
    """Render spec's frames into path (mp4s with the index first, as our own writer makes them, unless
    spec.faststart is off)."""
    if not spec.seekable:
        with open(path, "wb") as handle:
            _encode(spec, _Pipe(handle))
        return path
    return _encode(spec, path)


def _encode(spec: Spec, target) -> str:
    faststart = spec.faststart and spec.container in ("mp4", "mov")
    with av.open(target, mode="w", format=spec.fmt or (None if isinstance(target, str) else "matroska"),
                 options={"movflags": "+faststart"} if faststart else {}) as container:
        stream = container.add_stream(spec.codec, rate=spec.fps)
        width, height = spec.size
        stream.width, stream.height, stream.pix_fmt = width, height, spec.pix_fmt
        stream.options = dict(spec.options)
        if spec.vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        clock = 0
        for index in range(spec.frames):
            frame = av.VideoFrame.from_ndarray(barcode_frame(spec.first + index, width, height), format="rgb24")
            if spec.vfr:
                frame.pts, frame.time_base = clock, Fraction(1, 1000)
                clock += (20, 40, 33, 70)[index % 4]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return target


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


def remux_ts(source: str, path: str, shift: int = 0) -> str:
    """Copy source's video packets (an MPEG-TS) into another MPEG-TS with pts/dts moved by `shift` (90 kHz
    ticks); the muxer writes them modulo 2^33, as a camera's clock does."""
    with av.open(source) as src, av.open(path, mode="w", format="mpegts") as dst:
        in_stream = src.streams.video[0]
        out_stream = dst.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.size:
                packet.pts += shift
                packet.dts += shift
                packet.stream = out_stream
                dst.mux(packet)
    return path


def join(parts: list[str], path: str) -> str:
    """Recordings joined byte by byte, as `cat a.ts b.ts > c.ts` joins them."""
    Path(path).write_bytes(b"".join(Path(part).read_bytes() for part in parts))
    return path


def trim_like_stream_copy(source: str, path: str) -> str:
    """What `ffmpeg -ss T -i source -c copy path` makes of an mp4 with B-frames: the packets from the
    keyframe before T on, with an edit list whose first shown frame (T) is a B-frame decoded after a
    later-shown P-frame (T chosen as the first such frame)."""
    order = [pts for _, _, pts, _ in packet_layout(source)]
    cut = next(pts for i, pts in enumerate(order) if pts > 0 and any(p > pts for p in order[:i]))
    return remux(source, path, shift=-cut)


def damage_middle(source: str, path: str, seed: int = 0) -> tuple[str, int, int]:
    """Random bytes over the middle fifth of an mp4's media data: (path, first, end) damaged bytes."""
    layout = packet_layout(source)
    start, end = layout[0][0], layout[-1][0] + layout[-1][1]
    low, high = start + 2 * (end - start) // 5, start + 3 * (end - start) // 5
    data = bytearray(Path(source).read_bytes())
    data[low:high] = np.random.default_rng(seed).integers(0, 256, high - low, dtype=np.uint8).tobytes()
    Path(path).write_bytes(bytes(data))
    return path, low, high


def uncertain_frames(damaged: str) -> set[int]:
    """Frames (display order) of the GOPs whose packets overlap the bytes damage_middle changed: what a
    decoder gives there is its own guess. Read from the undamaged source beside the file."""
    source = damaged.replace("damaged_mp4.mp4", "damaged_src.mp4")
    changed = np.flatnonzero(np.frombuffer(Path(source).read_bytes(), np.uint8) !=
                             np.frombuffer(Path(damaged).read_bytes(), np.uint8))
    low, high = int(changed[0]), int(changed[-1]) + 1
    layout = packet_layout(source)
    hit = [i for i, (pos, size, _, _) in enumerate(layout) if pos < high and pos + size > low]
    keys = [i for i, (_, _, _, key) in enumerate(layout) if key]
    first = max(k for k in keys if k <= hit[0])
    after = [k for k in keys if k > hit[-1]]
    stop = after[0] if after else len(layout)
    rank = {pts: i for i, pts in enumerate(sorted(p for _, _, p, _ in layout))}
    return {rank[layout[i][2]] for i in range(first, stop)}


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
    paths.update(render_camera_cases(folder))
    return paths


CAMERA_CASES = ("trimmed_bf_mp4", "moov_last_mp4", "damaged_mp4", "reset_ts", "wrap_ts", "resized_ts", "nocues_mkv",
                "opendml_avi")


def render_camera_cases(folder: str) -> dict[str, str]:
    """Streams as cameras and their tools write them (issue 19): name -> path."""
    paths = {}
    base = encode(Spec("trim_src", "mp4", options=H264_BF), f"{folder}/trim_src.mp4")
    paths["trimmed_bf_mp4"] = trim_like_stream_copy(base, f"{folder}/trimmed_bf_mp4.mp4")
    paths["moov_last_mp4"] = encode(Spec("moov_last_mp4", "mp4", options=H264_BF, faststart=False),
                                    f"{folder}/moov_last_mp4.mp4")
    clean = encode(Spec("damaged_src", "mp4", options=H264_BF, frames=120), f"{folder}/damaged_src.mp4")
    paths["damaged_mp4"] = damage_middle(clean, f"{folder}/damaged_mp4.mp4")[0]
    # two recordings joined with cat: the second camera's clock 20 s behind the first's
    ts = dict(fmt="mpegts", options=H264_BF, frames=60)
    first = remux_ts(encode(Spec("a", "ts", **ts), f"{folder}/reset_a0.ts"), f"{folder}/reset_a.ts", 20 * 90000)
    second = encode(Spec("b", "ts", first=60, **ts), f"{folder}/reset_b.ts")
    paths["reset_ts"] = join([first, second], f"{folder}/reset_ts.ts")
    # the 33-bit clock wraps one second in
    paths["wrap_ts"] = remux_ts(encode(Spec("w", "ts", **ts), f"{folder}/wrap_src.ts"), f"{folder}/wrap_ts.ts",
                                (1 << 33) - 90000)
    # a camera restarted at another resolution (its clock from zero again)
    small = encode(Spec("s", "ts", **{**ts, "frames": 30}), f"{folder}/resized_a.ts")
    large = encode(Spec("l", "ts", size=(192, 80), first=30, **{**ts, "frames": 30}), f"{folder}/resized_b.ts")
    paths["resized_ts"] = join([small, large], f"{folder}/resized_ts.ts")
    # a live recording: no cues (the muxer could not go back to write them)
    paths["nocues_mkv"] = encode(Spec("nocues_mkv", "mkv", options=H264_BF, seekable=False), f"{folder}/nocues_mkv.mkv")
    # an AVI indexed the OpenDML way (files over 1 GB), made from a small one
    odml_src = encode(Spec("odml_src", "avi", options=H264_NO_BF), f"{folder}/odml_src.avi")
    paths["opendml_avi"] = opendml(odml_src, f"{folder}/opendml_avi.avi")
    return paths


def render_long(path: str, frames: int, faststart: bool = True, fmt: str | None = None, bframes: int = 2,
                seekable: bool = True) -> str:
    """A long recording at a camera's bitrate in tiny frames: 64x48 noise encoded near-losslessly (about
    4-5 kB per frame), so that a container's index and its media data are in a real proportion.
    `seekable=False` writes as through a pipe (a live Matroska recording: no cues)."""
    if not seekable:
        with open(path, "wb") as handle:
            _render_long(_Pipe(handle), frames, False, fmt or "matroska", bframes)
        return path
    return _render_long(path, frames, faststart, fmt, bframes)


def _render_long(target, frames: int, faststart: bool, fmt: str | None, bframes: int):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mp4 = isinstance(target, str) and target.endswith((".mp4", ".mov"))
    options = {"movflags": "+faststart"} if faststart and mp4 else {}
    with av.open(target, mode="w", format=fmt, options=options) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "30", "bf": str(bframes), "crf": "0", "preset": "ultrafast"}
        for _ in range(frames):
            image = base ^ (rng.integers(0, 256, base.shape, dtype=np.uint8) & 0x3F)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return target


def _riff_chunks(data: bytes, start: int, end: int):
    """(fourcc, chunk start, payload start, payload end) of the RIFF chunks in [start, end); lists too."""
    position = start
    while position + 8 <= end:
        kind, size = bytes(data[position : position + 4]), struct.unpack("<I", data[position + 4 : position + 8])[0]
        yield kind, position, position + 8, position + 8 + size
        position += 8 + size + (size & 1)


def opendml(source: str, path: str) -> str:
    """The AVI `source` (as FFmpeg writes one below 1 GB: legacy idx1 index) with an OpenDML index instead:
    an `indx` super index in the stream header (in the space FFmpeg reserves there) pointing at one `ix00`
    standard index where idx1 was (idx1 itself becomes JUNK), as writers of files over 1 GB make them."""
    data = bytearray(Path(source).read_bytes())
    chunks = {}
    for kind, at, start, stop in _riff_chunks(data, 12, len(data)):
        chunks[kind if kind != b"LIST" else bytes(data[start : start + 4])] = (at, start, stop)
    hdrl, movi, idx1 = chunks[b"hdrl"], chunks[b"movi"], chunks[b"idx1"]
    strl = next((start, stop) for kind, _, start, stop in _riff_chunks(data, hdrl[1] + 4, hdrl[2])
                if kind == b"LIST" and data[start : start + 4] == b"strl")
    junk = next((at, stop) for kind, at, _, stop in _riff_chunks(data, strl[0] + 4, strl[1]) if kind == b"JUNK")
    entries = np.frombuffer(bytes(data[idx1[1] : idx1[2]]), dtype="<u4").reshape(-1, 4)  # ckid, flags, offset, size
    movi_fourcc = movi[1]  # idx1 offsets count from the 'movi' fourcc
    data_pos = movi_fourcc + entries[:, 2].astype(np.int64) + 8
    sizes = entries[:, 3].astype(np.int64) | np.where(entries[:, 1] & 0x10, 0, 1 << 31)  # bit 31: not a keyframe
    std = struct.pack("<HBBI4sQI", 2, 0, 1, len(entries), b"00dc", 0, 0) + np.column_stack(
        [data_pos, sizes]).astype("<u4").tobytes()
    ix00 = b"ix00" + struct.pack("<I", len(std)) + std
    space = idx1[2] - idx1[0]
    data[idx1[0] : idx1[2]] = ix00 + b"JUNK" + struct.pack("<I", space - len(ix00) - 8) + bytes(space - len(ix00) - 8)
    indx_body = struct.pack("<HBBI4s12x", 4, 0, 0, 1, b"00dc") + struct.pack("<QII", idx1[0], len(ix00), len(entries))
    indx = b"indx" + struct.pack("<I", len(indx_body)) + indx_body
    room = junk[1] - junk[0]
    data[junk[0] : junk[1]] = indx + b"JUNK" + struct.pack("<I", room - len(indx) - 8) + bytes(room - len(indx) - 8)
    Path(path).write_bytes(bytes(data))
    return path
