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


def make_split(images: list[str], training_fraction: float, shuffle: int) -> Split:
    """DLC's rule: permute with the shuffle index as seed, first round(n*fraction) are training."""
    n = len(images)
    order = np.random.RandomState(shuffle).permutation(n)
    n_train = int(round(n * training_fraction))
    n_train = min(max(n_train, 1), n)
    train = sorted(order[:n_train].tolist())
    test = sorted(order[n_train:].tolist())
    return Split(
        training_fraction=training_fraction,
        shuffle=shuffle,
        train_images=[images[i] for i in train],
        test_images=[images[i] for i in test],
    )


def indices_of(images: list[str], wanted: list[str]) -> list[int]:
    where = {img: i for i, img in enumerate(images)}
    missing = [w for w in wanted if w not in where]
    if missing:
        raise KeyError(f"split names images that are not in the dataset: {missing[:3]}")
    return [where[w] for w in wanted]
