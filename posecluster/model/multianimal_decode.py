"""The multi-animal model's outputs -> animals per image, in original image pixels.

Peaks of every map (multi_peaks), assembled into animals along the PAF graph (assembly), unique parts as
their best peak, then mapped back as the single-animal predictor does: divide by the resize factors and
go from edge coordinates to DeepLabCut's pixel indices (- 0.5).
"""

from __future__ import annotations

import torch

from posecluster.model.assembly import AnimalPoses, assemble_image
from posecluster.model.multi_peaks import find_peaks
from posecluster.model.multianimal_model import MultiAnimalParams, MultiAnimalSpec


def _to_image_pixels(animals: AnimalPoses, factors: tuple[float, float]) -> AnimalPoses:
    sx, sy = factors
    for array in (animals.poses, animals.unique):
        array[..., 0] = array[..., 0] / sx - 0.5
        array[..., 1] = array[..., 1] / sy - 0.5
    return animals


@torch.no_grad()
def decode_animals(
    outputs: dict[str, torch.Tensor],
    spec: MultiAnimalSpec,
    stride: float,
    locref_stdev: float,
    params: MultiAnimalParams = MultiAnimalParams(),
    factors: tuple[float, float] = (1.0, 1.0),
) -> list[AnimalPoses]:
    """One AnimalPoses per image of the batch: poses (n,K,3), scores (n,), unique (U,3) and, with the
    identity head, identity (n, n_individuals); coordinates in the original image's pixel indices
    (`factors`: the (sx, sy) the image was resized by before the network)."""
    scoremap = outputs["scoremap"]
    peaks = find_peaks(scoremap, outputs.get("locref"), stride, locref_stdev, params.peaks)
    max_individuals = max(1, len(spec.individuals))
    results = []
    for image in range(scoremap.shape[0]):
        identity = outputs["identity"][image] if "identity" in outputs else None
        animals = assemble_image(peaks, image, outputs["paf"][image], spec.edges, spec.num_parts,
                                 spec.num_unique, max_individuals, stride, params.assembly, identity)
        results.append(_to_image_pixels(animals, factors))
    return results
