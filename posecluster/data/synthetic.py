"""Rendered behaviour data with known keypoints: a DLC-layout project and videos of any number and length.

A "mouse" seen from above (body ellipse, a head that turns relative to the body, two ears, a tail) walks
over a static textured arena. The four body parts match the openfield project: snout, leftear, rightear,
tailbase. Keypoints are exact (pixel-index coordinates, as DLC labels are), so tests and benchmarks can
compare predictions with the truth. Everything is deterministic given the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import av
import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc
from posecluster.data.images import write_png
from posecluster.data.labels import LabeledDataset

BODYPARTS = ["snout", "leftear", "rightear", "tailbase"]
SCORER = "synthetic"


@dataclass
class Scene:
    width: int = 160
    height: int = 128
    seed: int = 0
    # Sizes relative to the shorter image side.
    body_length: float = 0.26
    noise_sigma: float = 2.0
    palette: int = 0  # picks the arena's colours; distinct palettes make visually distinct scenes


class Renderer:
    def __init__(self, scene: Scene):
        if scene.width % 2 or scene.height % 2:
            raise ValueError("width and height must be even (H.264 4:2:0)")
        self.scene = scene
        self.rng = np.random.default_rng(scene.seed)
        self.background = self._background()
        self.ys, self.xs = np.mgrid[0 : scene.height, 0 : scene.width].astype(np.float32)
        side = min(scene.width, scene.height)
        self.length = scene.body_length * side

    def _background(self) -> np.ndarray:
        s, rng = self.scene, self.rng
        coarse = rng.random((s.height // 16 + 2, s.width // 16 + 2))
        ys = np.linspace(0, coarse.shape[0] - 1.001, s.height)
        xs = np.linspace(0, coarse.shape[1] - 1.001, s.width)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        smooth = (
            coarse[y0][:, x0] * (1 - fy) * (1 - fx)
            + coarse[y0 + 1][:, x0] * fy * (1 - fx)
            + coarse[y0][:, x0 + 1] * (1 - fy) * fx
            + coarse[y0 + 1][:, x0 + 1] * fy * fx
        )
        palettes = [(190, 185, 175), (120, 160, 200), (200, 150, 110), (140, 190, 130), (215, 215, 225)]
        base = np.array(palettes[s.palette % len(palettes)], dtype=np.float32)
        texture = (smooth[..., None] - 0.5) * 60 + rng.normal(0, 6, (s.height, s.width, 1))
        return np.clip(base + texture, 0, 255).astype(np.float32)

    def trajectory(self, frames: int) -> np.ndarray:
        """(frames, 4): centre x, y, body heading, head angle relative to the body (radians)."""
        s, rng = self.scene, self.rng
        margin = self.length * 0.9
        pos = np.array([rng.uniform(margin, s.width - margin), rng.uniform(margin, s.height - margin)])
        heading = rng.uniform(-math.pi, math.pi)
        turn, head, out = 0.0, 0.0, np.zeros((frames, 4))
        speed = self.length * 0.06
        for t in range(frames):
            turn = 0.85 * turn + rng.normal(0, 0.06)
            heading += turn
            step = speed * (0.6 + 0.4 * math.sin(t / 9.0))
            nxt = pos + step * np.array([math.cos(heading), math.sin(heading)])
            if not (margin <= nxt[0] <= s.width - margin and margin <= nxt[1] <= s.height - margin):
                heading += math.pi * rng.uniform(0.5, 1.0)  # turn away from the wall
                nxt = np.clip(pos, margin, [s.width - margin, s.height - margin])
            pos = nxt
            head = 0.8 * head + rng.normal(0, 0.12)
            head = float(np.clip(head, -0.6, 0.6))
            out[t] = [pos[0], pos[1], heading, head]
        return out

    def geometry(self, state: np.ndarray) -> dict[str, np.ndarray]:
        cx, cy, heading, head = state
        L = self.length
        fwd = np.array([math.cos(heading), math.sin(heading)])
        neck = np.array([cx, cy]) + fwd * 0.38 * L
        head_dir = np.array([math.cos(heading + head), math.sin(heading + head)])
        head_side = np.array([-head_dir[1], head_dir[0]])
        head_centre = neck + head_dir * 0.16 * L
        return {
            "centre": np.array([cx, cy]),
            "heading": np.array([heading]),
            "head_centre": head_centre,
            "snout": head_centre + head_dir * 0.22 * L,
            # Image y points down, so the animal's left is -head_side when seen from above.
            "leftear": neck - head_side * 0.15 * L,
            "rightear": neck + head_side * 0.15 * L,
            "tailbase": np.array([cx, cy]) - fwd * 0.5 * L,
            "fwd": fwd,
            "head_dir": head_dir,
        }

    def keypoints(self, state: np.ndarray) -> np.ndarray:
        g = self.geometry(state)
        return np.stack([g[b] for b in BODYPARTS])

    def blend(self, image, alpha, color) -> None:
        a = alpha[..., None]
        image *= 1 - a
        image += a * np.asarray(color, dtype=np.float32)

    def disk(self, image, centre, radius, color) -> None:
        d = np.hypot(self.xs - centre[0], self.ys - centre[1])
        self.blend(image, np.clip(radius - d + 0.5, 0, 1), color)

    def ellipse(self, image, centre, a, b, angle, color) -> None:
        dx, dy = self.xs - centre[0], self.ys - centre[1]
        u = dx * math.cos(angle) + dy * math.sin(angle)
        v = -dx * math.sin(angle) + dy * math.cos(angle)
        d = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        self.blend(image, np.clip((1 - d) * min(a, b) + 0.5, 0, 1), color)

    def render(self, state: np.ndarray) -> np.ndarray:
        g, L = self.geometry(state), self.length
        image = self.background.copy()
        tail_dir = -g["fwd"]
        for i in range(1, 12):  # the tail: a tapering chain of disks, gently curved
            bend = 0.25 * math.sin(i / 3.0 + float(g["heading"][0]))
            d = np.array([tail_dir[0] - bend * tail_dir[1], tail_dir[1] + bend * tail_dir[0]])
            self.disk(image, g["tailbase"] + d * i * 0.07 * L, max(1.0, 0.05 * L * (1 - i / 14)), (70, 60, 60))
        self.ellipse(image, g["centre"], 0.5 * L, 0.26 * L, float(g["heading"][0]), (45, 40, 48))
        self.ellipse(image, g["head_centre"], 0.24 * L, 0.15 * L, math.atan2(g["head_dir"][1], g["head_dir"][0]), (55, 50, 58))
        for ear in ("leftear", "rightear"):
            self.disk(image, g[ear], 0.08 * L, (205, 135, 150))
        self.disk(image, g["snout"], 0.035 * L, (225, 160, 170))
        if self.scene.noise_sigma:
            image += self.rng.normal(0, self.scene.noise_sigma, image.shape).astype(np.float32)
        return np.clip(image, 0, 255).astype(np.uint8)


def encode_video(uri: str, frames, width: int, height: int, fps: int = 30, crf: int = 18, gop: int = 60) -> None:
    """Encode RGB frames (an iterable) to H.264 mp4, streamed to a local file and published atomically."""
    with storage.scratch_dir() as scratch:
        local = f"{scratch}/video.mp4"
        # faststart: the index comes first, so readers can stream the file from object storage.
        with av.open(local, mode="w", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": str(crf), "g": str(gop), "preset": "veryfast"}
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        storage.atomic_upload(local, uri)


@dataclass
class RenderedVideo:
    uri: str
    truth: np.ndarray  # (frames, 4, 2) pixel-index coordinates


def render_video(uri: str, scene: Scene, frames: int, fps: int = 30, gop: int = 60) -> RenderedVideo:
    renderer = Renderer(scene)
    states = renderer.trajectory(frames)
    truth = np.stack([renderer.keypoints(s) for s in states])
    encode_video(uri, (renderer.render(s) for s in states), scene.width, scene.height, fps=fps, gop=gop)
    return RenderedVideo(uri=uri, truth=truth)


@dataclass
class SyntheticProject:
    uri: str
    videos: list[RenderedVideo] = field(default_factory=list)
    labeled_frames: int = 0


def write_project(
    uri: str,
    labeled_frames: int = 60,
    scene: Scene | None = None,
    video_frames: int = 150,
    missing_fraction: float = 0.03,
) -> SyntheticProject:
    """A DLC project: config.yaml, labeled-data/<video>/img*.png + CollectedData, videos/<video>.mp4.

    Labeled frames come from their own stretch of the animal's walk (not the video's frames), and a few
    labels are blanked (NaN), as in real projects where a body part is hidden.
    """
    scene = scene or Scene()
    uri = uri.rstrip("/")
    renderer = Renderer(Scene(**{**scene.__dict__, "seed": scene.seed + 1000}))
    states = renderer.trajectory(labeled_frames * 5)[::5]
    folder = "labeled-data/arena0"
    images, keypoints = [], []
    rng = np.random.default_rng(scene.seed)
    for i, state in enumerate(states):
        name = f"{folder}/img{i:04d}.png"
        write_png(storage.join(uri, name), renderer.render(state))
        points = renderer.keypoints(state)
        points[rng.random(len(BODYPARTS)) < missing_fraction] = np.nan
        images.append(name)
        keypoints.append(points)
    project = ProjectConfig(task="synthetic", scorer=SCORER, date="Jan1", bodyparts=BODYPARTS, pcutoff=0.4,
                            skeleton=[["snout", "leftear"], ["snout", "rightear"], ["leftear", "tailbase"], ["rightear", "tailbase"]])
    dlc.write_project_config(storage.join(uri, "config.yaml"), project)
    labels = LabeledDataset(root=uri, scorer=SCORER, bodyparts=BODYPARTS, images=images,
                            keypoints=np.stack(keypoints), index_styles={folder: "path"})
    dlc.write_tables(labels)
    video = render_video(storage.join(uri, "videos", "arena0.mp4"), scene, video_frames)
    return SyntheticProject(uri=uri, videos=[video], labeled_frames=len(images))
