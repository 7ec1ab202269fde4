"""The Helm chart: lints, renders valid Kubernetes and KubeRay objects, and means what its values say."""

from __future__ import annotations

import json
import shlex

import jsonschema
import kubernetes_validate
import pytest
import referencing
from kubernetes_validate.utils import schema_contents

from posecluster.cli.main import build_parser
from tests.deploy.conftest import CHART
from tests.deploy.tooling import REPO

VALUES = [(), ("cpu-values.yaml",), ("gpu-job-values.yaml",), ("serve-values.yaml",)]
KUBERNETES = "1.35"
CRD_SCHEMAS = {
    ("ray.io/v1", "RayCluster"): "raycluster-ray-v1.json",
    ("ray.io/v1", "RayJob"): "rayjob-ray-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
}


def crd_validator(schema_file: str) -> jsonschema.Draft202012Validator:
    """Our KubeRay / Prometheus Operator schemas, whose pod templates refer to Kubernetes' own (strict)."""
    definitions = schema_contents("kubernetes-json-schema/v1.35.0-local-strict/_definitions.json", KUBERNETES)
    schema = json.loads((REPO / "deploy" / "schemas" / schema_file).read_text())
    registry = referencing.Registry().with_resources([
        (definitions["$id"], referencing.Resource.from_contents(definitions)),
        (schema["$id"], referencing.Resource.from_contents(schema)),
    ])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate(doc: dict) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        crd_validator(CRD_SCHEMAS[key]).validate(doc)
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def pod_templates(docs: list[dict]) -> list[dict]:
    templates = []
    for doc in docs:
        specs = [doc["spec"]] if doc["kind"] == "RayCluster" else [doc["spec"]["rayClusterSpec"]] if doc["kind"] == "RayJob" else []
        for spec in specs:
            templates.append(spec["headGroupSpec"]["template"])
            templates += [group["template"] for group in spec["workerGroupSpecs"]]
        if doc["kind"] == "RayJob":
            templates.append(doc["spec"]["submitterPodTemplate"])
    return templates


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v[0] if v else "default")
def test_the_chart_lints_strictly(helm, values):
    args = ["lint", "--strict", str(CHART)]
    for name in values:
        args += ["-f", str(CHART / "ci" / name)]
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES, ids=lambda v: v[0] if v else "default")
def test_every_rendered_object_matches_the_kubernetes_and_kuberay_schemas(render, values):
    docs = render(*values)
    assert by_kind(docs, "RayCluster") and by_kind(docs, "ConfigMap")
    for doc in docs:
        validate(doc)


def test_the_schema_check_rejects_a_misspelled_kuberay_field(render):
    cluster = by_kind(render(), "RayCluster")[0]
    cluster["spec"]["workerGroupSpec"] = cluster["spec"].pop("workerGroupSpecs")
    with pytest.raises(jsonschema.ValidationError, match="workerGroupSpec"):
        validate(cluster)
    cluster = by_kind(render(), "RayCluster")[0]
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate(cluster)


def test_gpu_values_give_workers_gpus_and_autoscaling_bounds(render):
    docs = render("gpu-job-values.yaml")
    for cluster_spec in [by_kind(docs, "RayCluster")[0]["spec"], by_kind(docs, "RayJob")[0]["spec"]["rayClusterSpec"]]:
        assert cluster_spec["enableInTreeAutoscaling"] is True
        (group,) = cluster_spec["workerGroupSpecs"]
        assert (group["minReplicas"], group["maxReplicas"]) == (0, 8)
        resources = group["template"]["spec"]["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 2
        assert group["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        head = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]
        assert "nvidia.com/gpu" not in head["limits"]
    cpu_group = by_kind(render("cpu-values.yaml"), "RayCluster")[0]["spec"]["workerGroupSpecs"][0]
    assert "nvidia.com/gpu" not in json.dumps(cpu_group["template"]["spec"]["containers"][0]["resources"])


def test_the_rayjob_runs_one_archive_run_that_the_cli_accepts_and_then_shuts_down(render):
    job = by_kind(render("gpu-job-values.yaml"), "RayJob")[0]["spec"]
    assert job["shutdownAfterJobFinishes"] is True and job["ttlSecondsAfterFinished"] == 3600
    argv = shlex.split(job["entrypoint"])
    assert argv[0] == "posecluster"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "infer" and args.inputs == ["s3://lab/videos/2026/"]
    assert (args.model, args.out, args.gpus_per_worker, args.format) == (
        "s3://lab/models/openfield-r50", "s3://lab/poses/2026/", 1.0, ["csv"])


def test_credentials_reach_pods_only_through_secret_references(render):
    created = render("cpu-values.yaml")
    (secret,) = [s for s in by_kind(created, "Secret") if s["metadata"]["name"].endswith("-s3")]
    assert secret["stringData"]["AWS_SECRET_ACCESS_KEY"] == "minioadmin"
    for template in pod_templates(created):
        for container in template["spec"]["containers"]:
            for var in container.get("env", []):
                if var["name"] in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RAY_AUTH_TOKEN"):
                    assert "value" not in var and var["valueFrom"]["secretKeyRef"]["name"]
    existing = render("gpu-job-values.yaml")
    assert not [s for s in by_kind(existing, "Secret")], "existing Secrets must not be re-created"
    refs = {v["valueFrom"]["secretKeyRef"]["name"] for t in pod_templates(existing)
            for c in t["spec"]["containers"] for v in c.get("env", []) if "valueFrom" in v}
    assert refs == {"lab-s3", "lab-ray-token"}


def test_ray_token_auth_is_left_to_kuberay_or_passed_by_hand_for_older_operators(render):
    managed = render()
    (secret,) = [s for s in by_kind(managed, "Secret") if s["metadata"]["name"].endswith("-ray-token")]
    assert set(secret["data"]) == {"auth_token"}  # KubeRay's key name
    cluster = by_kind(managed, "RayCluster")[0]["spec"]
    assert cluster["authOptions"] == {"mode": "token", "secretName": secret["metadata"]["name"]}
    names = {v["name"] for t in pod_templates(managed) for c in t["spec"]["containers"] for v in c.get("env", [])}
    assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} & names  # the operator injects them; no duplicates

    by_hand = render("gpu-job-values.yaml")
    assert "authOptions" not in by_kind(by_hand, "RayCluster")[0]["spec"]
    for template in pod_templates(by_hand):
        env = {v["name"]: v for v in template["spec"]["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "lab-ray-token", "key": "auth_token"}

    disabled = render("cpu-values.yaml")
    assert not [s for s in by_kind(disabled, "Secret") if s["metadata"]["name"].endswith("-ray-token")]
    for template in pod_templates(disabled):
        env = {v["name"]: v for v in template["spec"]["containers"][0]["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "disabled" and "RAY_AUTH_TOKEN" not in env


def test_every_pod_runs_as_a_non_root_user_with_the_config_mounted(render):
    docs = render("gpu-job-values.yaml")
    templates = pod_templates(docs)
    assert len(templates) == 5  # cluster head + workers, job head + workers, submitter
    for template in templates:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"] and container["resources"]["limits"]
    config = by_kind(docs, "ConfigMap")[0]
    assert "batch_size: 16" in config["data"]["config.yaml"]
    head = by_kind(docs, "RayCluster")[0]["spec"]["headGroupSpec"]["template"]["spec"]
    assert {"name": "POSECLUSTER_CONFIG", "value": "/etc/posecluster/config.yaml"} in head["containers"][0]["env"]


def test_monitors_scrape_the_ray_metrics_port_and_strip_rays_prefix(render):
    docs = render("gpu-job-values.yaml")
    (pod_monitor,) = by_kind(docs, "PodMonitor")
    (service_monitor,) = by_kind(docs, "ServiceMonitor")
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert endpoint["metricRelabelings"][0]["regex"] == "ray_(posecluster_.*)"
    worker = by_kind(docs, "RayCluster")[0]["spec"]["workerGroupSpecs"][0]
    assert {"name": "metrics", "containerPort": 8080} in worker["template"]["spec"]["containers"][0]["ports"]
    assert worker["rayStartParams"]["metrics-export-port"] == "8080"
    assert not by_kind(render(), "PodMonitor")  # off by default: not every cluster runs the operator


@pytest.mark.parametrize("pair, message", [
    ("worker.gpus=-1", "minimum"),
    ("job.enabled=true", "job.inputs"),
    ("rayAuth.mode=open", "token"),
    ("s3.createSecret=true", "accessKeyId"),
    ("serve.enabled=true", "/serve/root"),
    ("serve.root=lab-bucket", "pattern"),
])
def test_bad_values_are_refused_with_the_field_named(helm, pair, message):
    result = helm("template", "lab", str(CHART), "--set", pair, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_web_app_runs_posecluster_serve_with_its_token_and_s3_credentials_from_secrets(render):
    assert not [d for d in render() if d["metadata"]["name"].endswith("-serve")], "off by default"
    docs = render("serve-values.yaml")
    (deployment,) = by_kind(docs, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = build_parser().parse_args(container["args"])
    assert (args.command, args.root, args.host, args.port) == ("serve", "s3://lab/", "0.0.0.0", 8888)
    env = {v["name"]: v for v in container["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "lab-s3"
    token_ref = env["POSECLUSTER_SERVE_TOKEN"]["valueFrom"]["secretKeyRef"]
    (token_secret,) = [s for s in by_kind(docs, "Secret") if s["metadata"]["name"] == token_ref["name"]]
    assert len(token_secret["data"][token_ref["key"]]) > 20
    assert not {"RAY_AUTH_TOKEN", "POSECLUSTER_CONFIG"} & set(env)  # the app needs storage, not Ray
    assert all("value" not in v for k, v in env.items() if k.startswith("AWS_") and "KEY" in k)
    assert spec["securityContext"]["runAsNonRoot"] is True and container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == deployment["metadata"]["name"]]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (ingress,) = by_kind(docs, "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "pose.lab.example.org"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == service["metadata"]["name"]
