from __future__ import annotations

import json

import numpy as np

from posecluster import storage
from posecluster.data.project import read_project
from posecluster.data.split import Split
from posecluster.demo import chance_error
from posecluster.train.evaluate import evaluate, pixel_errors, summarise


def test_pixel_errors_skip_unlabeled_parts_and_pcutoff_drops_unsure_ones():
    predictions = np.array([[[3.0, 4.0, 0.9], [0.0, 0.0, 0.1], [5.0, 5.0, 0.8]]])
    labels = np.array([[[0.0, 0.0], [6.0, 8.0], [np.nan, np.nan]]])
    errors = pixel_errors(predictions, labels)
    np.testing.assert_allclose(errors[0, :2], [5.0, 10.0])
    assert np.isnan(errors[0, 2])
    assert summarise(errors, predictions[..., 2], pcutoff=0.5) == (7.5, 5.0)


def test_the_trained_detector_is_far_better_than_chance(trained_run, synthetic_project):
    run, _ = trained_run
    labels = read_project(synthetic_project.uri).labels
    result = evaluate(run, labels)
    chance = chance_error(labels, Split.load(storage.join(run, "split.json")))
    assert result.test_error_px < chance / 3, (result.summary(), chance)
    assert result.train_images == 24 and result.test_images == 8
    assert set(result.per_bodypart) == {"snout", "leftear", "rightear", "tailbase"}
    saved = json.loads(storage.read_bytes(result.outputs["results_json"]))
    assert saved["test_error_px"] == result.test_error_px
    assert storage.read_bytes(result.outputs["plot_png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "error_pcutoff_px" in storage.read_bytes(result.outputs["results_csv"]).decode()
