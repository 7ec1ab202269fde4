"""The seeded train/test split ("shuffle"), saved with each run so evaluation uses the same one."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from posecluster import storage


@dataclass
class Split:
    training_fraction: float
    shuffle: int
    train_images: list[str]
    test_images: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def load(cls, uri: str) -> "Split":
        return cls(**json.loads(storage.read_bytes(uri)))

    def save(self, uri: str) -> None:
        storage.atomic_write_bytes(uri, self.to_json().encode())


def training_size(n: int, training_fraction: float) -> int:
    """DeepLabCut's count (SplitTrials): int(n * round(fraction, 2)), float rounding included (100 images at
    0.29 -> 28). Where that leaves no test image although the fraction is below 1 (tiny projects), one image
    is kept for testing; at least one image is always trained on."""
    n_train = int(n * round(training_fraction, 2))
    if training_fraction < 1 and n_train >= n > 1:
        n_train = n - 1
    return min(max(n_train, 1), n)


def make_split(images: list[str], training_fraction: float, shuffle: int) -> Split:
    """DeepLabCut's split: the images in DLC's order (CollectedData rows sorted by path, as
    merge_annotateddatasets sorts them), a random permutation, the first training_size(n) for training.

    DeepLabCut draws that permutation from numpy's unseeded global generator, so its own shuffle 1 differs
    from run to run and no other tool can reproduce its images; here the shuffle index seeds the
    permutation (RandomState(shuffle)), so the same shuffle always picks the same images. The counts are
    DeepLabCut's exactly.
    """
    ordered = sorted(images)
    order = np.random.RandomState(shuffle).permutation(len(ordered))
    n_train = training_size(len(ordered), training_fraction)
    return Split(
        training_fraction=training_fraction,
        shuffle=shuffle,
        train_images=sorted(ordered[i] for i in order[:n_train]),
        test_images=sorted(ordered[i] for i in order[n_train:]),
    )


def indices_of(images: list[str], wanted: list[str]) -> list[int]:
    where = {img: i for i, img in enumerate(images)}
    missing = [w for w in wanted if w not in where]
    if missing:
        raise KeyError(f"split names images that are not in the dataset: {missing[:3]}")
    return [where[w] for w in wanted]
