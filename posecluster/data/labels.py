"""The labels model: labeled images with keypoints, independent of any file format."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from posecluster import storage


@dataclass
class LabeledDataset:
    """Labeled frames of one project.

    `images` are paths relative to the project root as DeepLabCut writes them
    (``labeled-data/<video>/img0001.png``); `keypoints` is (frames, bodyparts, 2) in original image
    pixels with NaN where a body part is not labeled (normal, masked in the loss).
    """

    root: str
    scorer: str
    bodyparts: list[str]
    images: list[str]
    keypoints: np.ndarray
    # How each labeled-data folder's table indexed its rows ("path" or "tuple"), kept for lossless writes.
    index_styles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64)
        expected = (len(self.images), len(self.bodyparts), 2)
        if self.keypoints.shape != expected:
            raise ValueError(f"keypoints shape {self.keypoints.shape} != {expected}")

    def __len__(self) -> int:
        return len(self.images)

    def image_uri(self, index: int) -> str:
        return storage.join(self.root, self.images[index])

    def labeled_points(self, index: int) -> list[tuple[list[str], np.ndarray]]:
        """One frame's points as (names, writable (n, 2) view) groups (the multi-animal model has two)."""
        return [(list(self.bodyparts), self.keypoints[index])]

    def subset(self, indices) -> "LabeledDataset":
        indices = list(indices)
        return LabeledDataset(
            root=self.root,
            scorer=self.scorer,
            bodyparts=list(self.bodyparts),
            images=[self.images[i] for i in indices],
            keypoints=self.keypoints[indices],
            index_styles=dict(self.index_styles),
        )

    def folders(self) -> list[str]:
        """The labeled-data folders (relative), in first-seen order."""
        seen: dict[str, None] = {}
        for image in self.images:
            seen.setdefault(folder_of(image), None)
        return list(seen)

    def rows_in(self, folder: str) -> list[int]:
        return [i for i, image in enumerate(self.images) if folder_of(image) == folder]

    @staticmethod
    def concat(parts: list["LabeledDataset"]) -> "LabeledDataset":
        first = parts[0]
        styles: dict[str, str] = {}
        for p in parts:
            styles.update(p.index_styles)
        return LabeledDataset(
            root=first.root,
            scorer=first.scorer,
            bodyparts=list(first.bodyparts),
            images=[img for p in parts for img in p.images],
            keypoints=np.concatenate([p.keypoints for p in parts], axis=0)
            if parts
            else np.zeros((0, len(first.bodyparts), 2)),
            index_styles=styles,
        )


def folder_of(image: str) -> str:
    return image.rsplit("/", 1)[0] if "/" in image else ""
