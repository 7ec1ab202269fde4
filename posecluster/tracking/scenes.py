"""Rendered multi-animal scenes with ground truth, for tests, benchmarks and demos of tracking.

Animals are five-point bodies (nose, ears, centre, tail base) that face where they go. Two pace to and
fro along nearly the same line and pass each other touching; a third runs a figure of eight through the
middle that takes it out of the frame on both sides. The detections are what an assembler might hand
over: noisy parts, parts missing, whole animals missed, false positives, in a shuffled order, and
optionally identity-head probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posecluster.tracking.linking import FrameDetections

BODYPARTS = ("nose", "left_ear", "right_ear", "centre", "tail_base")
# (forward, left) offsets in pixels from the centre, in the animal's own frame
_BODY = np.array([[14.0, 0.0], [8.0, 5.0], [8.0, -5.0], [0.0, 0.0], [-14.0, 0.0]])


@dataclass
class SceneConfig:
    frames: int = 600
    width: int = 320
    height: int = 240
    seed: int = 0
    noise_px: float = 1.5
    missing_part: float = 0.05  # probability that a part of a detected animal is missing
    missed_animal: float = 0.03  # probability that a present animal is not detected at all
    false_positives: float = 0.03  # probability per frame of one spurious animal
    identity: bool = False
    identity_accuracy: float = 0.8  # probability mass the identity head puts on the right individual


def ground_truth(scene: SceneConfig) -> np.ndarray:
    """(frames, 3, K, 2) keypoints, NaN where a part is outside the frame (an animal absent when all are)."""
    t = np.arange(scene.frames + 1, dtype=np.float64)
    rng = np.random.default_rng(scene.seed)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    cx, cy = scene.width / 2, scene.height / 2
    wobble = [4.0 * np.sin(2 * np.pi * t / 90 + p) for p in phase]
    swing = 2 * np.pi * t / 240
    centres = [
        np.stack([cx + 0.35 * scene.width * np.sin(swing), cy - 6 + wobble[0] * 0.5], axis=-1),
        np.stack([cx - 0.35 * scene.width * np.sin(swing), cy + 6 + wobble[1] * 0.5], axis=-1),
    ]
    theta = 2 * np.pi * t / 330 + 0.4
    centres.append(np.stack([cx + 0.62 * scene.width * np.cos(theta) + wobble[2],
                             cy + 0.38 * scene.height * np.sin(2 * theta)], axis=-1))
    poses = []
    for centre in centres:
        heading = centre[1:] - centre[:-1]  # the direction it moves towards
        heading /= np.maximum(np.linalg.norm(heading, axis=-1, keepdims=True), 1e-9)
        left = np.stack([-heading[:, 1], heading[:, 0]], axis=-1)
        points = (centre[:-1, None, :] + _BODY[None, :, :1] * heading[:, None, :] + _BODY[None, :, 1:] * left[:, None, :])
        poses.append(points)
    gt = np.stack(poses, axis=1)
    outside = (gt[..., 0] < 0) | (gt[..., 0] >= scene.width) | (gt[..., 1] < 0) | (gt[..., 1] >= scene.height)
    gt[outside] = np.nan
    return gt


def detections(gt: np.ndarray, scene: SceneConfig, first_frame: int = 0) -> list[FrameDetections]:
    """What an assembler would report for each frame of `gt`, whose first row is frame `first_frame`.
    Each frame draws from its own seeded generator, so any slice of a video gets the same detections
    as the whole video (a segment's worker can make its own)."""
    n_animals, n_parts = gt.shape[1], gt.shape[2]
    out = []
    for number, frame in enumerate(gt, first_frame):
        rng = np.random.default_rng([scene.seed, number])
        animals, identities = [], []
        for a in range(n_animals):
            present = np.isfinite(frame[a, :, 0])
            if not present.any() or rng.random() < scene.missed_animal:
                continue
            pose = np.full((n_parts, 3), np.nan)
            pose[:, :2] = frame[a] + rng.normal(0, scene.noise_px, size=(n_parts, 2))
            pose[:, 2] = rng.uniform(0.5, 1.0, size=n_parts)
            pose[~present | (rng.random(n_parts) < scene.missing_part)] = np.nan
            animals.append(pose)
            identities.append(_identity(rng, a, n_animals, scene.identity_accuracy))
        if rng.random() < scene.false_positives:
            animals.append(_false_positive(rng, scene))
            identities.append(np.full(n_animals, 1.0 / n_animals))
        order = rng.permutation(len(animals))
        poses = np.array([animals[i] for i in order]).reshape(len(animals), n_parts, 3)
        identity = np.array([identities[i] for i in order]).reshape(len(animals), n_animals)
        out.append(FrameDetections(poses, identity if scene.identity else None))
    return out


def _identity(rng, animal: int, n_animals: int, accuracy: float) -> np.ndarray:
    scores = rng.uniform(0, 1, size=n_animals)
    scores *= (1 - accuracy) / scores.sum()
    scores[animal] += accuracy
    return scores


def _false_positive(rng, scene: SceneConfig) -> np.ndarray:
    centre = rng.uniform([20, 20], [scene.width - 20, scene.height - 20])
    angle = rng.uniform(0, 2 * np.pi)
    heading = np.array([np.cos(angle), np.sin(angle)])
    left = np.array([-heading[1], heading[0]])
    pose = np.empty((len(_BODY), 3))
    pose[:, :2] = centre + _BODY[:, :1] * heading + _BODY[:, 1:] * left
    pose[:, 2] = rng.uniform(0.2, 0.7, size=len(_BODY))
    return pose
