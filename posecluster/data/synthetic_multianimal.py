"""A rendered multi-animal (maDLC) project and videos with known tracks, for tests and benchmarks.

N animals seen from above (a body ellipse, a head, a nose, a tail) move over the textured arena of
`synthetic.Renderer` on smooth looping paths that cross one another, so animals touch and pass over each
other; one animal's path reaches past the frame's edge, so it leaves and comes back. By default every animal
looks the same (identity: false): only position and motion tell them apart. With `identity=True` each has
its own colour. An optional unique body part (a fixed landmark in the arena) is labeled under "single".

Paths are a closed-form function of the frame number, so any stretch of frames renders alike, memory
stays flat in video length, and the labeled frames come from a stretch of time the videos never show.
Keypoints are exact (pixel-index coordinates, as DLC labels are); a point outside the image is NaN, and an
animal with no point inside is absent (all NaN) in labels and ground truth alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.data.formats import dlc, madlc
from posecluster.data.images import write_png
from posecluster.data.multianimal import AnimalTracks, MultiAnimalLabels
from posecluster.data.synthetic import Renderer, Scene, encode_video

BODYPARTS = ["nose", "head", "body", "tailbase"]
UNIQUE_BODYPARTS = ["landmark"]
SKELETON = [["nose", "head"], ["head", "body"], ["body", "tailbase"]]
SCORER = "synthetic"
# Where each keypoint sits along the animal's heading, in body lengths from the body's centre.
_OFFSETS = {"nose": 0.55, "head": 0.33, "body": 0.0, "tailbase": -0.5}
# Distinct animal colours (identity: true); with identity: false every animal has the first.
_COLOURS = [(45, 40, 48), (170, 40, 40), (40, 110, 190), (40, 150, 60), (190, 140, 30), (120, 50, 160)]
# The labeled frames are drawn from this far into the animals' paths: no video frame shows them.
_LABEL_TIME_OFFSET = 100_000


@dataclass
class MultiAnimalScene:
    width: int = 128
    height: int = 96
    animals: int = 3
    seed: int = 0
    identity: bool = False  # animals in distinct colours
    landmark: bool = True  # a fixed unique body part
    leaves_frame: bool = True  # the first animal's path reaches past the left and right edges
    body_length: float = 0.3  # relative to the shorter image side
    loop_frames: float = 90.0  # roughly how many frames an animal takes to go round its path
    noise_sigma: float = 2.0
    palette: int = 0

    def __post_init__(self) -> None:
        if self.animals < 1:
            raise ValueError("a multi-animal scene needs at least one animal")
        if self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even (H.264 4:2:0)")

    @property
    def individuals(self) -> list[str]:
        return [f"animal{i + 1}" for i in range(self.animals)]


class MultiAnimalRenderer:
    def __init__(self, scene: MultiAnimalScene):
        self.scene = scene
        # The arena and drawing primitives are the single-animal renderer's; noise is added here, once.
        self.canvas = Renderer(Scene(width=scene.width, height=scene.height, seed=scene.seed, noise_sigma=0,
                                     palette=scene.palette))
        self.rng = np.random.default_rng(scene.seed + 7919)
        self.length = scene.body_length * min(scene.width, scene.height)
        self.paths = self._paths()

    def _paths(self) -> np.ndarray:
        """(animals, 6): per axis centre amplitude, angular speed and phase of a Lissajous loop."""
        s, rng, L = self.scene, self.rng, self.length
        paths = np.zeros((s.animals, 6))
        for a in range(s.animals):
            amp_x = rng.uniform(0.22, 0.36) * s.width
            if a == 0 and s.leaves_frame:
                amp_x = s.width / 2 + 0.7 * L  # its whole body goes past the edge at each end
            amp_y = rng.uniform(0.2, 0.34) * s.height
            speed = 2 * math.pi / s.loop_frames
            paths[a] = [amp_x, speed * rng.uniform(0.7, 1.3), rng.uniform(0, 2 * math.pi),
                        amp_y, speed * rng.uniform(0.7, 1.3), rng.uniform(0, 2 * math.pi)]
        return paths

    def states(self, frames: np.ndarray) -> np.ndarray:
        """(len(frames), animals, 3): centre x, y and heading (direction of motion) at those frames."""
        t = np.asarray(frames, dtype=np.float64)[:, None]
        ax, wx, px, ay, wy, py = (self.paths[:, i][None, :] for i in range(6))
        x = self.scene.width / 2 + ax * np.sin(wx * t + px)
        y = self.scene.height / 2 + ay * np.sin(wy * t + py)
        heading = np.arctan2(ay * wy * np.cos(wy * t + py), ax * wx * np.cos(wx * t + px))
        return np.stack([x, y, heading], axis=-1)

    def keypoints(self, states: np.ndarray) -> np.ndarray:
        """(frames, animals, bodyparts, 2); NaN for points outside the image's pixel extent."""
        fwd = np.stack([np.cos(states[..., 2]), np.sin(states[..., 2])], axis=-1)
        offsets = np.array([_OFFSETS[b] for b in BODYPARTS]) * self.length
        points = states[..., None, :2] + offsets[:, None] * fwd[..., None, :]
        s = self.scene
        outside = ((points[..., 0] < -0.5) | (points[..., 0] > s.width - 0.5)
                   | (points[..., 1] < -0.5) | (points[..., 1] > s.height - 0.5))
        points[outside] = np.nan
        return points

    def landmark(self) -> np.ndarray:
        """(unique bodyparts, 2): the fixed landmark, or none."""
        if not self.scene.landmark:
            return np.zeros((0, 2))
        return np.array([[round(0.82 * self.scene.width), round(0.18 * self.scene.height)]], dtype=np.float64)

    def render(self, state: np.ndarray) -> np.ndarray:
        """One frame (animals, 3) as RGB uint8; later animals are drawn over earlier ones."""
        c, L = self.canvas, self.length
        image = c.background.copy()
        for x, y in self.landmark():
            c.disk(image, (x, y), 0.12 * L, (240, 240, 240))
            c.disk(image, (x, y), 0.05 * L, (20, 20, 20))
        for a, (x, y, heading) in enumerate(state):
            colour = np.array(_COLOURS[a % len(_COLOURS)] if self.scene.identity else _COLOURS[0], dtype=np.float32)
            fwd = np.array([math.cos(heading), math.sin(heading)])
            centre = np.array([x, y])
            for i in range(1, 8):  # the tail: a tapering chain of disks behind the tail base
                c.disk(image, centre - fwd * (0.5 + 0.08 * i) * L, max(1.0, 0.06 * L * (1 - i / 9)), colour + 25)
            c.ellipse(image, centre, 0.5 * L, 0.24 * L, heading, colour)
            c.ellipse(image, centre + fwd * 0.36 * L, 0.2 * L, 0.15 * L, heading, colour + 12)
            c.disk(image, centre + fwd * _OFFSETS["nose"] * L, 0.06 * L, (225, 160, 170))
        if self.scene.noise_sigma:
            image += self.rng.normal(0, self.scene.noise_sigma, image.shape).astype(np.float32)
        return np.clip(image, 0, 255).astype(np.uint8)

    def tracks(self, frames: int, start: int = 0) -> AnimalTracks:
        """Ground truth for frames start..start+frames-1: likelihood 1 where a point is visible."""
        points = self.keypoints(self.states(np.arange(start, start + frames)))
        poses = np.concatenate([points, np.where(np.isnan(points[..., :1]), np.nan, 1.0)], axis=-1)
        unique = np.broadcast_to(np.concatenate([self.landmark(), np.ones((len(self.landmark()), 1))], axis=1),
                                 (frames, len(self.landmark()), 3))
        return AnimalTracks(SCORER, self.scene.individuals, list(BODYPARTS), self.unique_bodyparts, poses, unique)

    @property
    def unique_bodyparts(self) -> list[str]:
        return list(UNIQUE_BODYPARTS) if self.scene.landmark else []


def project_config(scene: MultiAnimalScene, task: str = "synthetic") -> ProjectConfig:
    return ProjectConfig(task=task, scorer=SCORER, date="Jan1", bodyparts=list(BODYPARTS), skeleton=SKELETON,
                         pcutoff=0.4, multianimal=True, individuals=scene.individuals, identity=scene.identity,
                         unique_bodyparts=list(UNIQUE_BODYPARTS) if scene.landmark else [])


@dataclass
class RenderedAnimals:
    uri: str
    truth_uri: str  # the ground truth as a maDLC pose table
    truth: AnimalTracks


def render_video(uri: str, scene: MultiAnimalScene, frames: int, truth_uri: str | None = None, fps: int = 30,
                 gop: int = 60) -> RenderedAnimals:
    """An H.264 mp4 of `frames` frames and its ground-truth tracks (default: `<video>.truth.h5` beside it)."""
    renderer = MultiAnimalRenderer(scene)
    chunk = 256  # states are computed a chunk at a time: memory stays flat in video length

    def images():
        for start in range(0, frames, chunk):
            for state in renderer.states(np.arange(start, min(frames, start + chunk))):
                yield renderer.render(state)

    encode_video(uri, images(), scene.width, scene.height, fps=fps, gop=gop)
    truth = renderer.tracks(frames)
    truth_uri = truth_uri or uri.rsplit(".", 1)[0] + ".truth.h5"
    madlc.write_tracks(truth, truth_uri)
    return RenderedAnimals(uri=uri, truth_uri=truth_uri, truth=truth)


@dataclass
class SyntheticMultiAnimalProject:
    uri: str
    config: ProjectConfig
    labels: MultiAnimalLabels
    videos: list[RenderedAnimals] = field(default_factory=list)


def write_project(uri: str, labeled_frames: int = 30, scene: MultiAnimalScene | None = None,
                  video_frames: int = 150, missing_fraction: float = 0.03,
                  video_name: str = "arena0") -> SyntheticMultiAnimalProject:
    """A maDLC project: config.yaml, labeled-data/<video>/img*.png + CollectedData_synthetic (.h5, .csv),
    videos/<video>.mp4 and its ground truth videos/<video>.truth.h5.

    Labeled frames come from their own stretch of the animals' paths, every 5th frame; a few visible
    points are blanked (NaN), as a labeler skips a hidden part. Individuals are labeled in a fixed order.
    """
    scene = scene or MultiAnimalScene()
    uri = uri.rstrip("/")
    renderer = MultiAnimalRenderer(scene)
    times = _LABEL_TIME_OFFSET + 5 * np.arange(labeled_frames)
    states = renderer.states(times)
    keypoints = renderer.keypoints(states)
    rng = np.random.default_rng(scene.seed)
    keypoints[rng.random(keypoints.shape[:3]) < missing_fraction] = np.nan
    folder = f"labeled-data/{video_name}"
    images = []
    for i, state in enumerate(states):
        images.append(f"{folder}/img{int(times[i]):06d}.png")
        write_png(storage.join(uri, images[-1]), renderer.render(state))
    config = project_config(scene)
    unique = np.broadcast_to(renderer.landmark(), (labeled_frames, *renderer.landmark().shape))
    labels = MultiAnimalLabels(root=uri, scorer=SCORER, individuals=config.individuals, bodyparts=config.bodyparts,
                               unique_bodyparts=config.unique_bodyparts, images=images, keypoints=keypoints,
                               unique_keypoints=unique, index_styles={folder: "tuple"})
    config_uri = storage.join(uri, "config.yaml")
    dlc.write_project_config(config_uri, config)
    video_uri = storage.join(uri, "videos", f"{video_name}.mp4")
    # DeepLabCut finds labeled-data folders through video_sets; project_path as DLC writes it.
    dlc.update_project_config(config_uri, {"project_path": uri, "video_sets": {
        video_uri: {"crop": f"0, {scene.width}, 0, {scene.height}"}}})
    madlc.write_label_tables(labels)
    video = render_video(video_uri, scene, video_frames)
    return SyntheticMultiAnimalProject(uri=uri, config=config, labels=labels, videos=[video])


def scene_events(truth: AnimalTracks, body_length: float) -> dict[str, int]:
    """What makes tracking hard in these tracks: frames where two animals' bodies are within one body
    length (`close_frames`) or overlap (centres within half a body length: `touching_frames`), times a pair
    passes over or beside each other (`crossings`: their left-right order flips while both are close), and
    frames with an animal absent (`frames_with_absent_animal`)."""
    centre = truth.xy[:, :, truth.bodyparts.index("body")]
    n, animals = centre.shape[:2]
    close = np.zeros(n, dtype=bool)
    touching = np.zeros(n, dtype=bool)
    crossings = 0
    for a in range(animals):
        for b in range(a + 1, animals):
            distance = np.linalg.norm(centre[:, a] - centre[:, b], axis=-1)
            near = distance < body_length  # NaN (one absent) compares False
            close |= near
            touching |= distance < 0.5 * body_length
            side = np.sign(centre[:, a, 0] - centre[:, b, 0])
            flips = (side[1:] * side[:-1] < 0) & near[1:] & near[:-1]
            crossings += int(flips.sum())
    return {"close_frames": int(close.sum()), "touching_frames": int(touching.sum()), "crossings": crossings,
            "frames_with_absent_animal": int((~truth.animals_present()).any(axis=1).sum())}

