"""Metrics: declared once with Prometheus naming; a real endpoint scraped during and after a run."""

from __future__ import annotations

import math
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from posecluster import metrics
from posecluster.infer.analyze import analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model


def test_every_metric_follows_prometheus_conventions():
    names = [spec.name for spec in metrics.ALL]
    assert len(names) == len(set(names))
    for spec in metrics.ALL:
        assert spec.name.startswith("posecluster_")
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        if spec.kind == "histogram":
            assert spec.name.endswith("_seconds"), spec.name
        assert not {"uri", "video", "path", "file"} & set(spec.labels), spec.name  # bounded cardinality


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items()) if k != "le")
            if "le" not in sample.labels:
                values[key] = sample.value
    return values


@pytest.fixture
def endpoint():
    exporter = metrics.PrometheusExporter()
    port = exporter.serve(0, address="127.0.0.1")
    metrics.use(exporter)
    yield port
    metrics.use(metrics.NullExporter())


def test_the_endpoint_counts_frames_during_and_after_an_analysis(endpoint, trained_run, synthetic_project, tmp_path):
    predictor = Predictor(load_model(trained_run[0]))
    batch = predictor.infer.batch_size
    during, calls = [], []
    predict = predictor.predict

    def predict_and_scrape(frames):
        calls.append(len(frames))
        if len(calls) == 2:
            during.append(scrape(endpoint))  # mid-run: exactly the first batch has been counted
        return predict(frames)

    predictor.predict = predict_and_scrape
    before = scrape(endpoint)
    result = analyze_video(predictor, synthetic_project.videos[0].uri, str(tmp_path), progress=False)
    after = scrape(endpoint)
    assert before["posecluster_frames_processed_total"] == 0
    assert during[0]["posecluster_frames_processed_total"] == batch
    assert after["posecluster_frames_processed_total"] == result.frames == 64
    batches = math.ceil(64 / batch)
    assert after["posecluster_infer_seconds_count"] == batches
    assert after["posecluster_decode_wait_seconds_count"] == batches
    assert after["posecluster_infer_seconds_sum"] > 0
