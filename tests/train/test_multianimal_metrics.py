"""Hand-worked cases for the multi-animal metrics. Every animal is a 10 x 10 px square of four parts, so
its OKS area is 100 px^2 and with sigma 0.1 a part off by d px scores exp(-d^2 / (2 * 100 * 0.2^2)) =
exp(-d^2 / 8) (COCO's formula, written out here rather than taken from the module)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from posecluster.train.multianimal_metrics import MultiAnimalMetricsConfig, multianimal_scores

PARTS = ["nose", "left", "right", "tail"]
SQUARE = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
N_LEVELS = 101  # COCO's recall levels 0, 0.01, ..., 1


def animal(x: float, y: float) -> np.ndarray:
    return SQUARE + [x, y]


def labels(*animals: np.ndarray) -> np.ndarray:
    return np.stack(animals)


def predicted(*animals: np.ndarray, likelihood: float = 0.9) -> np.ndarray:
    return np.stack([np.concatenate([a, np.full((len(a), 1), likelihood)], axis=1) for a in animals])


def score(truth, poses, scores=None, **settings):
    scores = scores if scores is not None else [np.ones(len(p)) for p in poses]
    return multianimal_scores(truth, poses, scores, PARTS, MultiAnimalMetricsConfig(**settings))


def test_perfect_predictions_score_map_1_error_0_purity_1():
    a, b, c = animal(0, 0), animal(50, 0), animal(0, 50)
    truth = [labels(a, b), labels(a, b, c)]
    result = score(truth, [predicted(b, a), predicted(c, a, b)])
    assert result.map == pytest.approx(1.0) and result.mar == pytest.approx(1.0)
    assert result.error_px == 0.0 and result.error_pcutoff_px == 0.0
    assert result.purity == 1.0 and result.unassembled_fraction == 0.0 and result.purity_images == 2
    assert (result.labeled_animals, result.predicted_animals, result.matched_animals) == (5, 5, 5)


def test_a_false_positive_ranked_above_two_true_positives_gives_ap_two_thirds():
    # ranked FP, TP, TP: precision 0, 1/2, 2/3 at recall 0, 1/2, 1; made monotone, 2/3 at every recall
    # level, at every OKS threshold
    a, b = animal(0, 0), animal(50, 0)
    result = score([labels(a, b)], [predicted(animal(200, 200), a, b)], [np.array([0.9, 0.8, 0.7])], rank_by="score")
    assert result.map == pytest.approx(2 / 3, abs=1e-9)
    assert result.mar == pytest.approx(1.0)
    assert result.error_px == 0.0  # the false positive overlaps nothing, so it is matched to nothing


def test_a_false_positive_between_two_true_positives():
    # ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> monotone 1, 2/3, 2/3; recall levels
    # 0..0.50 (51 of them) read 1, levels 0.51..1 (50) read 2/3
    a, b = animal(0, 0), animal(50, 0)
    result = score([labels(a, b)], [predicted(a, animal(200, 200), b)], [np.array([0.9, 0.8, 0.7])], rank_by="score")
    assert result.map == pytest.approx((51 * 1 + 50 * 2 / 3) / N_LEVELS, abs=1e-9)


def test_the_oks_of_a_shifted_animal_decides_at_which_thresholds_it_counts():
    # every part off by d with exp(-d^2 / 8) = 0.72: a true positive at OKS 0.50 ... 0.70 (5 thresholds),
    # a false positive (and the label missed) at 0.75 ... 0.95 (5 thresholds)
    d = math.sqrt(-8 * math.log(0.72))
    a = animal(0, 0)
    result = score([labels(a)], [predicted(a + [d, 0])])
    assert result.map == pytest.approx(0.5) and result.mar == pytest.approx(0.5)
    assert result.error_px == pytest.approx(d)
    assert all(v["error_px"] == pytest.approx(d) for v in result.per_bodypart.values())


def test_a_missing_animal_lowers_recall_but_not_the_error():
    # one of two labeled animals predicted (1 px off, OKS 0.88 passes every threshold below 0.9):
    # precision 1 up to recall 1/2 (51 levels), nothing beyond
    a, b = animal(0, 0), animal(50, 0)
    result = score([labels(a, b)], [predicted(a + [1, 0])])
    one_px_oks = math.exp(-1 / 8)
    passed = int(sum(one_px_oks >= t for t in np.linspace(0.5, 0.95, 10)))
    assert passed == 8
    assert result.map == pytest.approx(passed / 10 * 51 / N_LEVELS)
    assert result.mar == pytest.approx(passed / 10 * 0.5)
    assert result.error_px == pytest.approx(1.0)
    assert (result.labeled_animals, result.matched_animals) == (2, 1)
    assert result.purity == 1.0 and result.unassembled_fraction == pytest.approx(0.5)


def test_swapping_one_part_between_two_animals_lowers_purity_to_three_quarters():
    a, b = animal(0, 0), animal(50, 0)
    swapped_a, swapped_b = a.copy(), b.copy()
    swapped_a[3], swapped_b[3] = b[3], a[3]  # each assembly holds the other animal's tail
    truth = [labels(a, b), labels(a, b), labels(a)]  # the one-animal image does not count for purity
    poses = [predicted(swapped_a, swapped_b), predicted(a, b), predicted(a)]
    result = score(truth, poses)
    # image 1: each assembly holds 3 of its own and 1 foreign part -> 6 / 8; image 2: 1
    assert result.purity == pytest.approx((6 / 8 + 1.0) / 2)
    assert result.purity_images == 2 and result.unassembled_fraction == 0.0
    # the swapped tails count as errors of the distance between the two tails (50 px), for both animals
    assert result.per_bodypart["tail"]["error_px"] == pytest.approx(50 * 2 / 5)
    assert result.per_bodypart["nose"]["error_px"] == 0.0


def test_unlabeled_parts_and_absent_animals_are_ignored():
    a, b = animal(0, 0), animal(50, 0)
    label_a = a.copy()
    label_a[1] = np.nan  # the left part of a was not labeled
    absent = np.full((4, 2), np.nan)  # an individual of the project not in this image
    guess = a + [[0.6, 0.8], [90, 90], [0, 0], [0, 0]]  # 1 px off on the nose, far off on the unlabeled part
    result = score([labels(label_a, absent, b)], [predicted(guess, b)])
    assert result.labeled_animals == 2 and result.matched_animals == 2
    # OKS of the guess over a's 3 labeled parts: (exp(-1/8) + 2) / 3 = 0.96, recalled at every threshold;
    # the absent individual is not a label to recall
    assert result.mar == pytest.approx(1.0) and result.map == pytest.approx(1.0)
    assert result.per_bodypart["nose"]["error_px"] == pytest.approx(1 / 2)
    assert result.per_bodypart["left"]["error_px"] == 0.0  # only b's left part is labeled
    assert result.error_px == pytest.approx(1 / 7)  # 7 labeled parts
    assert result.purity == 1.0 and result.unassembled_fraction == 0.0


def test_the_pcutoff_drops_unsure_parts_from_the_cutoff_error():
    a = animal(0, 0)
    pose = predicted(a + [[2, 0], [4, 0], [0, 0], [0, 0]])
    pose[0, :, 2] = [0.95, 0.3, 0.8, 0.1]
    result = score([labels(a)], [pose], pcutoff=0.5)
    assert result.error_px == pytest.approx(6 / 4)
    assert result.error_pcutoff_px == pytest.approx(2 / 2)  # nose (2 px) and right (0 px) are sure
    assert result.per_bodypart["left"]["error_px"] == 4.0
    assert math.isnan(result.per_bodypart["left"]["error_pcutoff_px"])


def test_dlc_matching_leaves_a_prediction_unmatched_when_its_best_label_is_taken():
    # q (ranked first) is a shifted 4 px and takes a; r sits exactly on a but a is taken, and DeepLabCut
    # 3.0 does not fall back to r's second best (b), so only q's 4 px count. Hungarian on mean distance
    # pairs q-b (16 px) and r-a (0 px) instead: 16 + 0 < 4 + 20.
    a, b = animal(0, 0), animal(20, 0)
    q, r = a + [4, 0], a
    poses, scores = [predicted(q, r)], [np.array([0.9, 0.8])]
    dlc = score([labels(a, b)], poses, scores, rank_by="score")
    assert dlc.matched_animals == 1 and dlc.error_px == pytest.approx(4.0)
    hungarian = score([labels(a, b)], poses, scores, rank_by="score", matching="distance")
    assert hungarian.matched_animals == 2 and hungarian.error_px == pytest.approx((16 * 4 + 0) / 8)


def test_ranking_by_assembly_score_or_by_mean_likelihood():
    # the false positive is the least confident assembly but has the most confident parts
    a, b = animal(0, 0), animal(50, 0)
    poses = predicted(animal(200, 200), a, b)
    poses[0, :, 2] = 0.99
    scores = [np.array([0.1, 0.9, 0.8])]
    assert score([labels(a, b)], [poses], scores, rank_by="score").map == pytest.approx(1.0)
    assert score([labels(a, b)], [poses], scores, rank_by="likelihood").map == pytest.approx(2 / 3)


def test_predictions_are_ranked_across_images_not_image_by_image():
    # image 1: TP 0.8, FP 0.5; image 2: TP 0.9. Ranked over both: TP, TP, FP -> AP 1
    a = animal(0, 0)
    truth = [labels(a), labels(a)]
    poses = [predicted(a, animal(200, 200)), predicted(a)]
    result = score(truth, poses, [np.array([0.8, 0.5]), np.array([0.9])], rank_by="score")
    assert result.map == pytest.approx(1.0)


def test_no_predictions_at_all_score_zero():
    a = animal(0, 0)
    result = score([labels(a)], [np.zeros((0, 4, 3))], [np.zeros(0)])
    assert (result.map, result.mar, result.matched_animals) == (0.0, 0.0, 0)
    assert math.isnan(result.error_px)


def test_to_dict_is_strict_json_and_describe_names_the_figures():
    a = animal(0, 0)
    pose = predicted(a, likelihood=0.2)
    result = score([labels(a)], [pose], pcutoff=0.6)
    saved = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert saved["error_pcutoff_px"] is None and saved["map"] == pytest.approx(1.0)
    assert saved["settings"] == {"oks_sigma": 0.1, "oks_margin_px": 0.0, "matching": "oks", "rank_by": "likelihood"}
    line = result.describe()
    assert "mAP 100.0%" in line and "error 0.00 px" in line and "p-cutoff 0.6: none" in line


def test_shapes_that_do_not_fit_name_the_image():
    a = animal(0, 0)
    with pytest.raises(ValueError, match="image 1: 2 predicted animals but 1 scores"):
        score([labels(a), labels(a)], [predicted(a), predicted(a, a)], [np.ones(1), np.ones(1)])
    with pytest.raises(ValueError, match=r"image 0: labels have shape \(1, 3, 2\)"):
        score([labels(a[:3])], [predicted(a)])
    with pytest.raises(ValueError, match="matching must be one of"):
        MultiAnimalMetricsConfig(matching="hungarian")


def test_an_animal_with_one_labeled_part_is_not_a_label_to_recall():
    # OKS needs a box: DeepLabCut leaves out labeled animals with fewer than two parts
    a, b = animal(0, 0), animal(50, 0)
    nose_only = np.full((4, 2), np.nan)
    nose_only[0] = b[0]
    result = score([labels(a, nose_only)], [predicted(a)])
    assert result.map == pytest.approx(1.0) and result.mar == pytest.approx(1.0)
    assert result.labeled_animals == 2 and result.matched_animals == 1


def test_a_sigma_per_body_part_weighs_each_part_by_its_own():
    # the tail 2 px off: with sigma 0.1 OKS = (3 + exp(-4/8)) / 4 = 0.90 (passes 0.50 ... 0.90, 9 of 10);
    # with the tail's sigma 0.05, (3 + exp(-4 / (2 * 100 * 0.1^2))) / 4 = 0.78 (passes 0.50 ... 0.75, 6)
    a = animal(0, 0)
    pose = predicted(a + [[0, 0], [0, 0], [0, 0], [2, 0]])
    assert score([labels(a)], [pose]).map == pytest.approx(0.9)
    assert score([labels(a)], [pose], oks_sigma=(0.1, 0.1, 0.1, 0.05)).map == pytest.approx(0.6)
    with pytest.raises(ValueError, match="one per body part"):
        score([labels(a)], [pose], oks_sigma=(0.1, 0.1))
