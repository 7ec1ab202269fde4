"""What a video's probe or plan knows (`VideoInfo`, serialisable and compact: a few arrays, no per-frame
Python objects) and what a read observed (`DecodeReport`)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import numpy as np

from posecluster.data.numbering import ClockRules, WRAP

PLAN_KINDS = ("frames", "spans", "sequential")


def _ints(*shape) -> np.ndarray:
    return np.zeros(shape, dtype=np.int64)


@dataclass
class VideoInfo:
    """One video as the reader sees it. `plan` says what is known:

    - "frames": every frame's stamp (`pts`), where a segment may start (`keyframes`, frame indices, with
      `seek_ts`/`seek_pos`/`seek_run` per keyframe) and the frame count: any range can be read.
    - "spans": the container lists keyframes but not the frames between them (Matroska cues): span k
      starts at `seek_ts[k]`/`seek_pos[k]` (span 0 at the top of the file) and its frames are counted when
      it is decoded; `frame_count` is -1.
    - "sequential": no index; one pass from the top numbers every frame; `frame_count` is -1.
    """

    uri: str
    frame_count: int  # frames the container declares (truncated files: more than are present); -1 unknown
    fps: float  # 0.0 when the container does not say
    width: int  # of the first frame, in display orientation (after rotation); see `sizes`
    height: int
    codec: str
    pts: np.ndarray  # stamps of the present frames 0..present-1 in display order (numbering "pts")
    keyframes: np.ndarray  # frame indices where a segment may start (exact index, closed GOP); [0] at least
    rotation: int = 0  # degrees counter-clockwise applied to decoded frames (display matrix), 0/90/180/270
    numbering: str = "pts"  # "pts" or "decoder" (see posecluster.data.numbering)
    present: int = -1  # frames actually in the file; frames present..frame_count-1 are missing
    seek_ts: np.ndarray = field(default_factory=lambda: _ints(0))  # per keyframe (or span): seek target
    seek_pos: np.ndarray = field(default_factory=lambda: _ints(0))  # per keyframe (or span): byte pos, -1 unknown
    warnings: list[str] = field(default_factory=list)  # damage: a video read with these is done-with-warnings
    notes: list[str] = field(default_factory=list)  # how it is read (one piece, leading frames dropped)
    plan: str = "frames"  # "frames", "spans" or "sequential" (above)
    reorders: bool = False  # the codec shows frames in another order than it decodes them
    seek_run: np.ndarray = field(default_factory=lambda: _ints(0))  # per keyframe: run of the clock there
    clock_offsets: np.ndarray = field(default_factory=lambda: _ints(1))  # per run of the clock: stamp - pts
    clock_rules: tuple[int, int, bool] = (1, 1 << 62, False)  # ClockRules(step, threshold, wraps)
    jumps: np.ndarray = field(default_factory=lambda: _ints(0, 4))  # (frame, from ts, to ts, kind) per jump
    sizes: np.ndarray = field(default_factory=lambda: _ints(0, 3))  # (first frame, width, height) per size
    # What FFmpeg read to open the video when it was planned (ranges.py): later opens are served from it.
    index_ranges: np.ndarray = field(default_factory=lambda: _ints(0, 2))  # (offset, length) per range
    index_bytes: bytes = b""

    def __post_init__(self):
        if self.present < 0:
            self.present = self.frame_count
        if not len(self.sizes) and self.width:
            self.sizes = np.asarray([[0, self.width, self.height]], dtype=np.int64)

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps and self.frame_count > 0 else 0.0

    @property
    def absent(self) -> dict[int, str]:
        """Frames the container declares but the file does not hold (a truncated recording)."""
        if self.present >= self.frame_count:
            return {}
        reason = f"not in the file (truncated after {self.present} of {self.frame_count} frames)"
        return dict.fromkeys(range(self.present, self.frame_count), reason)

    @property
    def span_count(self) -> int:
        return len(self.seek_ts) if self.plan == "spans" else 0

    @property
    def rules(self) -> ClockRules:
        return ClockRules(*self.clock_rules)

    def clock_jumps(self) -> list[dict]:
        """Where the clock jumped (frame = first frame on the new clock), for _meta.json."""
        return [{"frame": int(f), "from_pts": int(a), "to_pts": int(b), "kind": "wrap" if k == WRAP else "jump"}
                for f, a, b, k in self.jumps.tolist()]

    def frame_sizes(self) -> list[dict]:
        """Each frame size and the first frame that has it, for _meta.json."""
        return [{"frame": int(f), "width": int(w), "height": int(h)} for f, w, h in self.sizes.tolist()]

    # Bumped whenever a probe's meaning changes: a cached probe from an older reader (with its frame
    # numbering and segment starts) must be probed again, never trusted.
    CACHE_VERSION = 5
    _ARRAYS = ("pts", "keyframes", "seek_ts", "seek_pos", "seek_run", "clock_offsets", "jumps", "sizes", "index_ranges")

    def to_bytes(self) -> bytes:
        meta = {"version": self.CACHE_VERSION, "frame_count": self.frame_count, "fps": self.fps, "width": self.width,
                "height": self.height, "codec": self.codec, "rotation": self.rotation, "numbering": self.numbering,
                "present": self.present, "warnings": self.warnings, "notes": self.notes, "plan": self.plan,
                "reorders": self.reorders, "clock_rules": list(self.clock_rules)}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                            index_bytes=np.frombuffer(self.index_bytes, dtype=np.uint8),
                            **{name: np.asarray(getattr(self, name), dtype=np.int64) for name in self._ARRAYS})
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, uri: str) -> "VideoInfo":
        with np.load(io.BytesIO(data)) as arrays:
            meta = json.loads(arrays["meta"].tobytes().decode())
            if meta.pop("version", None) != cls.CACHE_VERSION:
                raise StaleProbeError(f"{uri}: cached probe written by an older reader; probe again")
            meta["clock_rules"] = tuple(meta["clock_rules"])
            return cls(uri=uri, **{name: arrays[name] for name in cls._ARRAYS if name in arrays.files},
                       index_bytes=arrays["index_bytes"].tobytes(), **meta)


class StaleProbeError(ValueError):
    """A cached probe that this reader must not trust (written by an older version)."""


@dataclass
class DecodeReport:
    """What a read observed, in the read's own frame indices (a span's are local to the span):
    frames missing (frame -> why), decoder errors, how many frames the read covered, each frame size
    and where it starts, and where the clock jumped (passes that number frames as they go)."""

    missing: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    frame_count: int = -1  # frames the read covered, handed over or missing (a span's size)
    sizes: list[tuple[int, int, int]] = field(default_factory=list)  # (first frame, width, height)
    jumps: list[tuple[int, int, int, int]] = field(default_factory=list)  # (frame, from, to, kind)
