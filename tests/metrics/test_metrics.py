"""Metrics: declared once with Prometheus naming; a real endpoint scraped during and after a run."""

from __future__ import annotations

import math
import time
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


@pytest.fixture
def pushgateway():
    """A real HTTP endpoint speaking the Pushgateway's PUT API, recording what it receives."""
    import http.server
    import threading

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
    yield f"127.0.0.1:{server.server_port}", received
    server.shutdown()
    metrics.use(metrics.NullExporter())


def pushed_samples(body: str) -> dict[str, float]:
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items()) if k != "le"): s.value
            for f in text_string_to_metric_families(body) for s in f.samples}


def test_a_batch_job_pushes_its_final_counts_to_a_pushgateway(trained_run, synthetic_project, tmp_path, pushgateway):
    from posecluster.cli.main import main

    address, received = pushgateway
    code = main(["analyze", synthetic_project.videos[0].uri, "--model", trained_run[0], "--out", str(tmp_path),
                 "--quiet", "--pushgateway", address])
    assert code == 0 and received["path"] == "/metrics/job/posecluster_analyze"
    assert pushed_samples(received["body"])["posecluster_frames_processed_total"] == 64


def test_an_archive_job_pushes_its_summary_from_the_driver(ray_local, trained_run, synthetic_project, tmp_path, pushgateway):
    """Workers hand their counts back with each segment: the driver's push carries the whole job."""
    from posecluster.cli.main import main

    address, received = pushgateway
    before = time.time()
    code = main(["infer", synthetic_project.videos[0].uri, "--model", trained_run[0], "--out", str(tmp_path),
                 "--workers", "1", "--quiet", "--pushgateway", address])
    samples = pushed_samples(received["body"])
    assert code == 0 and received["path"] == "/metrics/job/posecluster_infer"
    assert samples["posecluster_videos_total{status=done}"] == 1
    assert samples["posecluster_segments_total{status=done}"] >= 1
    assert samples["posecluster_frames_processed_total"] == 64
    assert samples["posecluster_last_success_timestamp_seconds"] >= before
