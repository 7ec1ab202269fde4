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


def test_a_batch_job_pushes_its_final_counts_to_a_pushgateway(trained_run, synthetic_project, tmp_path):
    """--pushgateway: the end-of-job push reaches the gateway's HTTP API with the job's counts."""
    import http.server
    import threading

    from posecluster.cli.main import main

    received = {}

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self):
            received["path"] = self.path
            received["body"] = self.rfile.read(int(self.headers["Content-Length"])).decode()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["analyze", synthetic_project.videos[0].uri, "--model", trained_run[0], "--out", str(tmp_path),
                     "--quiet", "--pushgateway", f"127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
        metrics.use(metrics.NullExporter())
    assert code == 0 and received["path"] == "/metrics/job/posecluster_analyze"
    samples = {s.name: s.value for f in text_string_to_metric_families(received["body"]) for s in f.samples}
    assert samples["posecluster_frames_processed_total"] == 64
