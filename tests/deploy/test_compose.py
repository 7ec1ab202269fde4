"""deploy/compose.yaml: one facility host, every secret from the environment, configs that exist."""

from __future__ import annotations

import re

import yaml

from tests.deploy.tooling import REPO

COMPOSE = REPO / "deploy" / "compose.yaml"


def test_the_host_runs_storage_ray_and_monitoring_from_the_project_image():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"minio", "ray-head", "ray-gpu-worker", "prometheus", "grafana", "pushgateway"} <= set(services)
    assert "--metrics-export-port=8080" in services["ray-head"]["command"]
    assert services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (COMPOSE.parent / source).exists(), source


def test_no_secret_is_written_into_the_compose_file():
    text = COMPOSE.read_text()
    for key in ("AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD", "RAY_AUTH_TOKEN", "GF_SECURITY_ADMIN_PASSWORD"):
        for value in re.findall(rf"{key}: (\S+)", text):
            assert value.startswith("${"), f"{key} must come from deploy/.env, not the file"
    assert ".env" in (REPO / ".gitignore").read_text()
