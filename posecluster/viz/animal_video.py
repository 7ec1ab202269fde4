"""Labeled videos of multi-animal (tracked) tables, as DeepLabCut draws them with color_by="individual":
every body part of one individual in that individual's colour, the unique body parts ("single") in a
colour of their own (the last of the colormap), the skeleton drawn within each animal, never between two.
The video plumbing is labeled_video's."""

from __future__ import annotations

import numpy as np

from posecluster.data.multianimal import AnimalTracks
from posecluster.viz.colors import bodypart_colors
from posecluster.viz.labeled_video import FrameLabeler, LabeledVideo, LabelOptions, write_labeled_video


def individual_colors(tracks: AnimalTracks, colormap: str = "rainbow") -> np.ndarray:
    """(individuals [+ 1 for "single" when there are unique parts], 3) uint8 RGB, in the table's order."""
    return bodypart_colors(len(tracks.individuals) + bool(tracks.unique_bodyparts), colormap)


class AnimalFrameLabeler(FrameLabeler):
    """Points are every individual's body parts in table order, then the unique parts."""

    def __init__(self, tracks: AnimalTracks, options: LabelOptions, width: int, height: int):
        n, parts = len(tracks), len(tracks.bodyparts)
        known = set(tracks.bodyparts) | set(tracks.unique_bodyparts)
        unknown = [p for pair in options.skeleton for p in pair if p not in known]
        if unknown:
            raise ValueError(f"skeleton names body parts not in the table: {sorted(set(unknown))}")
        index = {part: k for k, part in enumerate(tracks.bodyparts)}
        # An edge to a unique part would join it to every animal: DeepLabCut's skeleton is within animals.
        edges = [(index[a], index[b]) for a, b in options.skeleton if a in index and b in index]
        pairs = [(i * parts + a, i * parts + b) for i in range(len(tracks.individuals)) for a, b in edges]
        palette = individual_colors(tracks, options.colormap)
        owner = np.concatenate([np.repeat(np.arange(len(tracks.individuals)), parts),
                                np.full(len(tracks.unique_bodyparts), len(tracks.individuals))]).astype(np.int64)
        points = np.concatenate([tracks.poses.reshape(n, -1, 3), tracks.unique_poses], axis=1)
        self.setup(points, palette[owner] if len(owner) else np.zeros((0, 3), np.uint8), pairs, options, width, height)


def label_animals_video(video_uri: str, tracks: AnimalTracks, out_uri: str, options: LabelOptions) -> LabeledVideo:
    return write_labeled_video(video_uri, out_uri, options, lambda width, height: AnimalFrameLabeler(
        tracks, options, width, height))
