"""The multi-animal model: head shapes, its loss (NaN labels masked, identity), and a tiny training run."""

from __future__ import annotations

import numpy as np
import torch

from posecluster.config import AugmentConfig, BackboneConfig, ModelConfig
from posecluster.data.multianimal_dataset import MultiAnimalTrainingDataset
from posecluster.model.family import MultiAnimalFamily, train_step
from posecluster.model.multianimal_model import MultiAnimalPoseModel, MultiAnimalSpec, multianimal_loss
from posecluster.model.paf_targets import make_multianimal_targets

NAN = float("nan")
SCRATCH = ModelConfig(backbone=BackboneConfig(name="resnet18", weights="none"), global_scale=1.0)
SPEC = MultiAnimalSpec(("snout", "neck", "tail"), ("feeder",), ("m1", "m2", "m3"), ((0, 1), (1, 2)), identity=True)


def test_heads_give_parts_then_unique_parts_two_fields_per_edge_and_one_logit_per_individual():
    model = MultiAnimalPoseModel(SCRATCH, SPEC).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert model.stride == 8
    assert out["scoremap"].shape == (2, 4, 8, 12) and out["locref"].shape == (2, 8, 8, 12)
    assert out["paf"].shape == (2, 4, 8, 12) and out["identity"].shape == (2, 3, 8, 12)
    plain = MultiAnimalPoseModel(SCRATCH, MultiAnimalSpec(("a", "b"), graph=((0, 1),)))
    assert "identity" not in plain.eval()(torch.rand(1, 3, 64, 64))


def _targets(keypoints, grid=(8, 8)):
    kp = torch.tensor(keypoints, dtype=torch.float32)
    unique = torch.full((kp.shape[0], 1, 2), NAN)
    return make_multianimal_targets(kp, unique, torch.ones(len(kp)), grid, 8.0, SCRATCH.target, SPEC.edges,
                                    identity=True)


def test_loss_ignores_predictions_where_an_unlabeled_part_may_be_and_counts_them_elsewhere():
    # Animal 0 lacks its tail label; its box is cells within 17 px of x in [12, 28], y in [12, 20].
    targets = _targets([[[[12.0, 12.0], [28.0, 20.0], [NAN, NAN]], [[NAN, NAN]] * 3, [[NAN, NAN]] * 3]])
    torch.manual_seed(0)
    outputs = {"scoremap": torch.randn(1, 4, 8, 8), "locref": torch.randn(1, 8, 8, 8),
               "paf": torch.randn(1, 4, 8, 8), "identity": torch.randn(1, 3, 8, 8)}
    loss, parts = multianimal_loss(outputs, targets, SCRATCH)
    assert torch.isfinite(loss) and set(parts) == {"scoremap", "locref", "paf", "identity", "total"}
    inside, outside = dict(outputs), dict(outputs)
    inside["scoremap"] = outputs["scoremap"].clone()
    inside["scoremap"][0, 2, 2, 2] += 5.0  # tail channel at (20, 20): inside animal 0's box
    inside["paf"] = outputs["paf"].clone()
    inside["paf"][0, 2:4, 1, 1] += 5.0  # the neck-tail field at (12, 12)
    outside["scoremap"] = outputs["scoremap"].clone()
    outside["scoremap"][0, 2, 7, 7] += 5.0  # tail channel at (60, 60): far from any animal
    assert multianimal_loss(inside, targets, SCRATCH)[0] == loss
    assert multianimal_loss(outside, targets, SCRATCH)[0] != loss


def test_identity_loss_is_lower_for_the_right_individual():
    targets = _targets([[[[12.0, 12.0], [28.0, 20.0], [44.0, 28.0]], [[NAN, NAN]] * 3,
                         [[60.0, 60.0], [44.0, 60.0], [28.0, 60.0]]]])
    base = {"scoremap": torch.zeros(1, 4, 8, 8), "locref": torch.zeros(1, 8, 8, 8), "paf": torch.zeros(1, 4, 8, 8)}
    right = torch.nn.functional.one_hot(targets.identity, 3).permute(0, 3, 1, 2).float() * 5
    swapped = right[:, [2, 1, 0]]
    assert (multianimal_loss({**base, "identity": right}, targets, SCRATCH)[1]["identity"]
            < 0.1 < multianimal_loss({**base, "identity": swapped}, targets, SCRATCH)[1]["identity"])


def rendered_images(count: int, rng: np.random.Generator):
    """64x64 uint8 images of two 3-part animals, a coloured dot per part (red snout, green neck, blue
    tail), and their keypoints (count, 2, 3, 2) in pixel indices."""
    images = np.zeros((count, 64, 64, 3), dtype=np.uint8)
    keypoints = np.full((count, 2, 3, 2), np.nan)
    ys, xs = np.mgrid[0:64, 0:64]
    for i in range(count):
        for animal in range(2):
            start = rng.uniform(10, 54, size=2)
            step = rng.normal(size=2)
            step = 9 * step / np.linalg.norm(step)
            for part in range(3):
                point = np.clip(start + part * step, 2, 61)
                keypoints[i, animal, part] = point
                images[i][(xs - point[0]) ** 2 + (ys - point[1]) ** 2 <= 9, part] = 255
    return list(images), keypoints


def test_a_few_training_steps_from_scratch_lower_the_loss():
    torch.manual_seed(0)
    spec = MultiAnimalSpec(("snout", "neck", "tail"), individuals=("m1", "m2"), graph=((0, 1), (1, 2)))
    family = MultiAnimalFamily(SCRATCH, spec)
    model = family.build_model().train()
    images, keypoints = rendered_images(4, np.random.default_rng(0))
    dataset = MultiAnimalTrainingDataset(images, keypoints, None, AugmentConfig(enabled=False, crop_size=None), 1.0, 0)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = [train_step(family, model, optimizer, batch, model.stride)["total"] for _ in range(8)]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
