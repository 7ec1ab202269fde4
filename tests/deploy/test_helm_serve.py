"""The chart's web app in the facility mode: oauth2-proxy in the pod in front of the app, the groups ->
prefixes mapping as the app's access file, jobs submitted to the release's RayCluster. Rendered by helm
and read back by the app's own parsers (the CLI's argument parser, the access file loader)."""

from __future__ import annotations

import pytest
import yaml

from posecluster.cli.main import build_parser
from posecluster.serve.access import ProxyAccess
from tests.deploy.conftest import CHART
from tests.deploy.test_helm_chart import by_kind, validate

PROXY = "serve-proxy-values.yaml"


def test_the_facility_values_lint_and_render_valid_objects(helm, render):
    result = helm("lint", "--strict", str(CHART), "-f", str(CHART / "ci" / PROXY), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for doc in render(PROXY):
        validate(doc)


def test_oauth2_proxy_is_the_only_way_into_the_app(render):
    docs = render(PROXY)
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-serve")]
    spec = deployment["spec"]["template"]["spec"]
    app, proxy = spec["containers"]
    args = build_parser().parse_args(app["args"])
    assert (args.host, args.port, args.allow_remote, args.secure_cookies) == ("127.0.0.1", 8888, False, True)
    assert "ports" not in app and args.allowed_host == ["pose.uni.example"]
    assert proxy["name"] == "oauth2-proxy" and "--upstream=http://127.0.0.1:8888/" in proxy["args"]
    assert "--pass-user-headers=true" in proxy["args"] and "--cookie-secure=true" in proxy["args"]
    assert not [a for a in proxy["args"] if a.startswith("--set-xauthrequest")]  # that family is not the app's
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in proxy["env"]} == {
        "OAUTH2_PROXY_CLIENT_ID": "pose-oauth2-proxy", "OAUTH2_PROXY_CLIENT_SECRET": "pose-oauth2-proxy",
        "OAUTH2_PROXY_COOKIE_SECRET": "pose-oauth2-proxy"}
    (service,) = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == deployment["metadata"]["name"]]
    assert service["spec"]["ports"][0]["targetPort"] == "http" and proxy["ports"][0]["name"] == "http"
    env = {e["name"]: e for e in app["env"]}
    assert "POSECLUSTER_SERVE_TOKEN" not in env and not [s for s in by_kind(docs, "Secret") if "serve-token" in s["metadata"]["name"]]


def test_the_groups_mapping_is_the_apps_access_file_trusting_only_the_sidecar(render):
    docs = render(PROXY)
    (config,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-serve-access")]
    access = ProxyAccess.from_mapping(yaml.safe_load(config["data"]["access.yaml"]), "rendered access.yaml")
    assert access.trusts("127.0.0.1") and not access.trusts("10.0.0.7")
    assert access.groups == {"smith-lab": ("smith",), "jones-lab": ("jones", "shared/videos"), "facility-staff": ("",)}
    assert access.users == {"visitor@uni.example": ("shared/videos",)}
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-serve")]
    app = deployment["spec"]["template"]["spec"]["containers"][0]
    assert build_parser().parse_args(app["args"]).access == "/etc/posecluster-serve/access.yaml"
    assert {"name": "access", "mountPath": "/etc/posecluster-serve", "readOnly": True} in app["volumeMounts"]


def test_browser_jobs_go_to_the_releases_ray_head_with_its_token(render):
    docs = render(PROXY)
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-serve")]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    (cluster,) = by_kind(docs, "RayCluster")
    assert env["RAY_ADDRESS"]["value"] == f"http://{cluster['metadata']['name']}-head-svc.pose.svc:8265"
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": f"{cluster['metadata']['name']}-ray-token",
                                                                 "key": "auth_token"}


def oauth2_proxy_args(docs: list[dict]) -> list[str]:
    (deployment,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-serve")]
    (proxy,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "oauth2-proxy"]
    return proxy["args"]


def test_the_proxy_signs_in_only_members_of_the_mapped_groups(render):
    """With single users mapped too (the CI values map visitor@uni.example), every mapped group is an
    --allowed-group: no account of the identity provider outside them signs in, whatever --email-domain."""
    args = oauth2_proxy_args(render(PROXY))
    assert [a for a in args if a.startswith("--allowed-group=")] == [
        "--allowed-group=facility-staff", "--allowed-group=jones-lab", "--allowed-group=smith-lab"]
    assert "--email-domain=*" in args
    extra = oauth2_proxy_args(render(PROXY, sets=("serve.auth.oauth2Proxy.allowedGroups[0]=visitors",
                                                  "serve.auth.oauth2Proxy.allowedGroups[1]=smith-lab")))
    assert sorted(a for a in extra if a.startswith("--allowed-group=")) == [
        "--allowed-group=facility-staff", "--allowed-group=jones-lab", "--allowed-group=smith-lab",
        "--allowed-group=visitors"]


def test_configured_identity_header_names_reach_the_apps_access_file(render):
    """A proxy of the facility's own (no sidecar) that sets other names: the app reads exactly those."""
    own = ("serve.auth.oauth2Proxy.enabled=false", "serve.auth.trustedProxies[0]=10.0.0.0/8",
           "serve.auth.headers.user=X-Remote-User", "serve.auth.headers.groups=X-Remote-Groups")
    docs = render(PROXY, sets=own)
    (config,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-serve-access")]
    access = ProxyAccess.from_mapping(yaml.safe_load(config["data"]["access.yaml"]), "rendered access.yaml")
    assert (access.headers.user, access.headers.email, access.headers.groups) == (
        "X-Remote-User", "X-Forwarded-Email", "X-Remote-Groups")
    (plain,) = [c for c in by_kind(render(PROXY), "ConfigMap") if c["metadata"]["name"].endswith("-serve-access")]
    assert "headers" not in yaml.safe_load(plain["data"]["access.yaml"])


def test_other_header_names_with_the_oauth2_proxy_sidecar_are_refused(helm):
    """The sidecar replaces only X-Forwarded-*: an app reading X-Remote-Groups behind it would believe
    whatever a signed-in client wrote there (X-Remote-Groups: facility-staff -> the whole root)."""
    result = helm("template", "lab", str(CHART), "-f", str(CHART / "ci" / PROXY), "--set",
                  "serve.auth.headers.groups=X-Remote-Groups", check=False)
    assert result.returncode != 0 and "serve.auth.headers" in result.stderr and "X-Forwarded" in result.stderr


def test_the_rendered_proxy_and_access_file_refuse_strangers_and_forgeries(render, tmp_path):
    """The chart's own --allowed-group list and access file, through the oauth2-proxy stand-in process in
    front of the real app: an account in no mapped group is refused by the proxy; a lab member who forges
    the X-Auth-Request-* family or X-Forwarded-Groups keeps the lab's folders only."""
    import httpx

    from posecluster.serve import ServeOptions, create_app
    from tests.serve.conftest import running, small_project
    from tests.serve.test_identity import start_standin

    docs = render(PROXY)
    (config,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-serve-access")]
    access = ProxyAccess.from_mapping(yaml.safe_load(config["data"]["access.yaml"]), "rendered access.yaml")
    allowed = [a.split("=", 1)[1] for a in oauth2_proxy_args(docs) if a.startswith("--allowed-group=")]
    for lab in ("smith", "jones"):
        small_project(str(tmp_path / "root" / lab / "proj"), frames=1)
    with running(create_app(str(tmp_path / "root"), None, ServeOptions(access=access))) as app:
        process, base = start_standin(app, tmp_path, allowed_groups=tuple(allowed))
        try:
            def get(account: str, *forged) -> httpx.Response:
                headers = [("Host", "localhost"), ("Cookie", f"_oauth2_proxy={account}"), *forged]
                return httpx.get(f"{base}/api/me", headers=headers, timeout=30)

            assert get("mallory", ("X-Auth-Request-Groups", "facility-staff")).status_code == 403
            assert get("ghost", ("X-Forwarded-Groups", "facility-staff")).status_code == 403
            me = get("alice", ("X-Auth-Request-Groups", "facility-staff"), ("X-Forwarded-Groups", "facility-staff"),
                     ("X-Forwarded-Groups", "jones-lab")).json()
            assert (me["prefixes"], me["whole_root"]) == (["smith"], False)
        finally:
            process.terminate()
            process.wait(10)


@pytest.mark.parametrize("sets, message", [
    (("serve.auth.mode=proxy",), "serve.auth.groups"),
    (("serve.auth.mode=proxy", "serve.auth.groups.lab[0]=lab"), "trustedProxies"),
    (("serve.auth.mode=proxy", "serve.auth.groups.lab[0]=lab", "serve.auth.oauth2Proxy.enabled=true"), "existingSecret"),
    (("serve.auth.mode=proxy", "serve.auth.users.a@uni\\.example[0]=lab", "serve.auth.oauth2Proxy.enabled=true",
      "serve.auth.oauth2Proxy.existingSecret=s"), "--allowed-group"),
    (("serve.auth.headers.user=X Remote",), "pattern"),
    (("serve.jobs.enabled=true", "cluster.enabled=false"), "cluster.enabled"),
    (("serve.auth.mode=sso",), "token"),
    (("serve.auth.trustedProxies[0]=everyone",), "pattern"),
])
def test_incomplete_facility_values_are_refused_with_the_field_named(helm, sets, message):
    args = ["template", "lab", str(CHART), "--set", "serve.enabled=true", "--set", "serve.root=s3://facility/"]
    for pair in sets:
        args += ["--set", pair]
    result = helm(*args, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
