"""The Grafana dashboard and Prometheus configs in deploy/ speak about metrics that exist."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from posecluster import metrics
from tests.deploy.tooling import REPO

DECLARED = {spec.name: spec for spec in metrics.ALL}
SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bposecluster_[a-z_]+", expr))


def declared(name: str) -> bool:
    if name in DECLARED:
        return True
    base = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), None)
    return base in DECLARED and DECLARED[base].kind == "histogram"


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((REPO / "deploy/grafana/posecluster.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_uses_declared_metrics_and_labels():
    exprs = dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used and all(declared(n) for n in used), sorted(n for n in used if not declared(n))
    for expr in exprs:
        for label in re.findall(r"(\w+)=\"", expr):
            assert any(label in spec.labels for spec in metrics.ALL), f"{label} is not a declared label: {expr}"


def test_the_dashboard_covers_throughput_failures_queues_nodes_and_training():
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    wanted = {metrics.FRAMES, metrics.VIDEOS, metrics.SEGMENTS, metrics.QUEUE_DEPTH, metrics.TRAINING_LOSS,
              metrics.TRAINING_RATE, metrics.STEP_TIME, metrics.LAST_SUCCESS, metrics.INFER_TIME}
    for spec in wanted:
        assert any(n == spec.name or n.startswith(spec.name + "_") for n in used), spec.name
    assert any("by (instance)" in e and "frames_processed" in e for e in dashboard_exprs()), "per-node fps"


def prometheus_relabel(config: dict) -> tuple[str, str]:
    (rule,) = [r for job in config["scrape_configs"] if job["job_name"] == "ray" for r in job["metric_relabel_configs"]]
    return rule["regex"], rule["replacement"]


@pytest.mark.parametrize("raw, expected", [
    ("ray_posecluster_frames_processed_total", "posecluster_frames_processed_total"),
    ("ray_node_cpu_utilization", "ray_node_cpu_utilization"),  # Ray's own metrics keep their names
    ("posecluster_frames_processed_total", "posecluster_frames_processed_total"),
])
def test_the_scrape_config_gives_ray_exported_metrics_the_cli_names(raw, expected):
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    regex, replacement = prometheus_relabel(config)
    match = re.fullmatch(regex, raw)  # Prometheus anchors relabel regexes at both ends
    renamed = re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))), replacement) if match else raw
    assert renamed == expected


def test_alert_rules_refer_to_declared_metrics():
    rules = yaml.safe_load((REPO / "deploy/prometheus/rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs and all(declared(n) for e in exprs for n in metric_names(e))
