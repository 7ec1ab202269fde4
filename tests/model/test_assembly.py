"""Assembly against ground truth: maps rendered from known keypoints of three animals (two crossing, one
touching another) decode and assemble back into exactly those animals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posecluster.config import TargetConfig
from posecluster.model.multianimal_decode import decode_animals
from posecluster.model.multianimal_model import MultiAnimalSpec
from posecluster.model.paf_graph import complete_graph
from posecluster.model.paf_targets import make_multianimal_targets

PARTS = ("snout", "neck", "back", "tailbase")


def _line(start, end, parts=4) -> np.ndarray:
    start, end = np.asarray(start, float), np.asarray(end, float)
    return np.stack([start + (end - start) * t for t in np.linspace(0, 1, parts)])


# Pixel indices in a 256 x 256 image. A and B cross in an X (their neck-back segments intersect at the
# centre); C's snout touches A's tail base (20 px apart); the unique part is a landmark in a corner.
ANIMALS = np.stack([
    _line((20.3, 20.6), (180.2, 180.9)),
    _line((180.7, 20.1), (20.4, 180.3)),
    _line((198.1, 192.4), (240.5, 80.8)),
])
LANDMARK = np.array([[30.2, 230.7]])


def _rendered_outputs(animals, scale=1.0, kind="disk", graph=None, identity=False, unique=LANDMARK):
    """The maps a perfect network would output: targets from the keypoints, as logits."""
    size = int(256 * scale) // 8
    to_input = lambda points: torch.tensor((points + 0.5) * scale, dtype=torch.float32)[None]  # noqa: E731
    graph = complete_graph(len(PARTS)) if graph is None else graph
    t = make_multianimal_targets(to_input(animals), to_input(unique), torch.tensor([scale]), (size, size), 8.0,
                                 TargetConfig(kind=kind), graph, identity=identity)
    probability = t.parts.scoremap.clamp(1e-4, 1 - 1e-4)
    out = {"scoremap": torch.log(probability / (1 - probability)), "locref": t.parts.locref, "paf": t.paf}
    if identity:
        out["identity"] = torch.nn.functional.one_hot(t.identity, len(animals)).permute(0, 3, 1, 2).float() * 8
    spec = MultiAnimalSpec(PARTS, ("landmark",), tuple(f"mouse{i}" for i in range(len(animals))), tuple(graph),
                           identity=identity)
    return out, spec


def _match(found: np.ndarray, truth: np.ndarray) -> list[int]:
    """For each true animal the index of the found animal with its snout (NaN-safe), or -1."""
    order = []
    for animal in truth:
        distance = np.linalg.norm(found[:, 0, :2] - animal[0], axis=1)
        order.append(int(np.nanargmin(distance)) if np.nanmin(distance, initial=np.inf) < 1 else -1)
    return order


@pytest.mark.parametrize("kind,scale", [("disk", 1.0), ("gaussian", 1.0), ("disk", 0.5)])
def test_crossing_and_touching_animals_assemble_back_exactly(kind, scale):
    outputs, spec = _rendered_outputs(ANIMALS, scale, kind)
    result = decode_animals(outputs, spec, 8.0, 7.2801, factors=(scale, scale))[0]
    assert result.poses.shape == (3, 4, 3) and result.scores.shape == (3,)
    order = _match(result.poses, ANIMALS)
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(result.poses[order][..., :2], ANIMALS, atol=1e-3)
    assert (result.poses[..., 2] > 0.75).all()  # a Gaussian map is below 1 off its centre
    assert (result.scores > 0.5).all()
    np.testing.assert_allclose(result.unique[:, :2], LANDMARK, atol=1e-3)
    assert result.identity is None


def test_a_missing_part_is_nan_along_a_skeleton_chain():
    animals = ANIMALS.copy()
    animals[2, 3] = np.nan  # C's tail base hidden
    chain = [(0, 1), (1, 2), (2, 3)]
    outputs, spec = _rendered_outputs(animals, graph=chain)
    result = decode_animals(outputs, spec, 8.0, 7.2801)[0]
    order = _match(result.poses, animals)
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(result.poses[order][..., :2], animals, atol=1e-3)  # NaN where NaN


def test_identity_probabilities_name_each_animals_individual():
    outputs, spec = _rendered_outputs(ANIMALS, identity=True)
    result = decode_animals(outputs, spec, 8.0, 7.2801)[0]
    order = _match(result.poses, ANIMALS)
    assert result.identity.shape == (3, 3)
    np.testing.assert_allclose(result.identity.sum(axis=1), 1.0, rtol=1e-6)
    assert list(result.identity[order].argmax(axis=1)) == [0, 1, 2]


def test_an_empty_frame_has_no_animals_and_no_landmark():
    outputs, spec = _rendered_outputs(ANIMALS)
    empty = {name: torch.zeros_like(value) for name, value in outputs.items()}
    empty["scoremap"] -= 10
    result = decode_animals(empty, spec, 8.0, 7.2801)[0]
    assert result.poses.shape == (0, 4, 3) and result.scores.shape == (0,)
    assert np.isnan(result.unique).all()
