"""What an evaluation found, and how errors read in a summary (single- and multi-animal share both)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Evaluation:
    train_error_px: float
    test_error_px: float
    train_error_pcutoff_px: float
    test_error_pcutoff_px: float
    pcutoff: float
    train_images: int
    test_images: int
    per_bodypart: dict[str, dict[str, float]]
    outputs: dict[str, str]

    def summary(self) -> str:
        return (
            f"train error {pixels(self.train_error_px, 'no train images')}, "
            f"test error {pixels(self.test_error_px, 'no test images')}; "
            f"with p-cutoff {self.pcutoff}: train {pixels(self.train_error_pcutoff_px, CUTOFF_EMPTY)}, "
            f"test {pixels(self.test_error_pcutoff_px, CUTOFF_EMPTY)} "
            f"({self.train_images} train / {self.test_images} test images)"
        )


CUTOFF_EMPTY = "none (no prediction at or above the p-cutoff)"


def pixels(value: float, when_missing: str) -> str:
    """An error in pixels, or what it means when there is nothing to average (never "nan px")."""
    return f"{value:.2f} px" if np.isfinite(value) else when_missing
