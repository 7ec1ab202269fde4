"""One identity contract, attacked through a proxy process that behaves as oauth2-proxy does
(oauth2_proxy_standin.py: it overwrites only the X-Forwarded-* headers it sets, sends no groups header for
an account in no group, forwards every other client header) in front of the real app on loopback. The
oracle is what each account is shown or refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from posecluster.serve import ProxyAccess, ServeOptions, create_app
from posecluster.serve.access import IdentityHeaders
from tests.serve.conftest import running, small_project

STANDIN = str(Path(__file__).with_name("oauth2_proxy_standin.py"))
ACCESS = {"trusted_proxies": ["127.0.0.1/32"],
          "groups": {"smith-lab": ["smith"], "jones-lab": ["jones"], "facility-staff": ["*"]},
          "users": {"visitor@uni.example": ["shared"]}}
SESSIONS = {
    "alice": {"user": "alice", "email": "alice@uni.example", "groups": ["smith-lab", "students"]},
    "mallory": {"user": "mallory", "email": "mallory@uni.example", "groups": []},  # signed in, in no group
    "ghost": {"user": "ghost", "groups": []},  # no e-mail claim, no group
}
FORGED_STAFF = [("X-Auth-Request-User", "carol"), ("X-Auth-Request-Email", "visitor@uni.example"),
                ("X-Auth-Request-Groups", "facility-staff"), ("X-Auth-Request-Preferred-Username", "carol")]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app over a root with smith/, jones/ and shared/ projects, trusting loopback (the proxy's address)."""
    root = tmp_path_factory.mktemp("identity")
    for lab in ("smith", "jones", "shared"):
        small_project(str(root / lab / "proj"), frames=1, seed=len(lab))
    options = ServeOptions(access=ProxyAccess.from_mapping(ACCESS, "test access"))
    with running(create_app(str(root), None, options)) as base:
        yield base


def start_standin(upstream: str, folder: Path, allowed_groups: tuple[str, ...] = ()):
    sessions = folder / "sessions.json"
    sessions.write_text(json.dumps(SESSIONS))
    args = [sys.executable, STANDIN, "--upstream", upstream, "--sessions", str(sessions)]
    for group in allowed_groups:
        args += ["--allowed-group", group]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("ready "), line
    return process, line.split()[1]


@pytest.fixture(scope="module")
def proxy(app_url, tmp_path_factory):
    process, base = start_standin(app_url, tmp_path_factory.mktemp("standin"))
    try:
        yield base
    finally:
        process.terminate()
        process.wait(10)


def me(base: str, account: str, extra: list[tuple[str, str]] = ()) -> tuple[int, dict]:
    """(status, body) of /api/me for `account`'s session cookie plus any extra (forged) header lines."""
    headers = [("Host", "localhost"), ("Cookie", f"_oauth2_proxy={account}"), *extra]
    response = httpx.get(f"{base}/api/me", headers=headers, timeout=30)
    return response.status_code, response.json()


def projects(base: str, account: str, extra: list[tuple[str, str]] = ()) -> tuple[int, list[str]]:
    headers = [("Host", "localhost"), ("Cookie", f"_oauth2_proxy={account}"), *extra]
    response = httpx.get(f"{base}/api/projects", headers=headers, timeout=30)
    return response.status_code, [p["path"] for p in response.json().get("projects", [])]


def test_through_the_proxy_a_lab_member_sees_only_the_lab(proxy):
    assert projects(proxy, "alice") == (200, ["smith/proj"])
    status, body = me(proxy, "alice")
    assert (status, body["user"], body["prefixes"], body["whole_root"]) == (200, "alice@uni.example", ["smith"], False)


def test_an_account_in_no_group_sees_nothing(proxy):
    for account in ("mallory", "ghost"):
        status, body = projects(proxy, account)
        assert (status, body) == (403, []), account
        image = httpx.get(f"{proxy}/api/image?path=smith/proj/labeled-data/arena0/img0000.png",
                          headers={"Host": "localhost", "Cookie": f"_oauth2_proxy={account}"}, timeout=30)
        assert image.status_code == 403 and not image.content.startswith(b"\x89PNG")


def test_forged_x_auth_request_headers_change_no_identity(proxy):
    """oauth2-proxy forwards X-Auth-Request-* from the client untouched; the app never reads that family."""
    assert projects(proxy, "mallory", FORGED_STAFF)[0] == 403
    assert projects(proxy, "ghost", FORGED_STAFF)[0] == 403  # no e-mail claim: cannot claim visitor's e-mail
    status, body = me(proxy, "alice", FORGED_STAFF)
    assert (status, body["prefixes"], body["whole_root"], body["user"]) == (200, ["smith"], False, "alice@uni.example")


def test_identity_headers_a_client_sends_are_overwritten_by_the_proxy(proxy):
    forged = [("X-Forwarded-Groups", "facility-staff"), ("X-Forwarded-Groups", "jones-lab"),
              ("X-Forwarded-User", "carol"), ("X-Forwarded-User", "carol"), ("X-Forwarded-Email", "visitor@uni.example")]
    status, body = me(proxy, "alice", forged)
    assert (status, body["prefixes"], body["user"]) == (200, ["smith"], "alice@uni.example")
    assert projects(proxy, "mallory", forged)[0] == 403
    assert projects(proxy, "ghost", forged)[0] == 403


def test_duplicated_identity_headers_reaching_the_app_are_refused(app_url):
    """A proxy that appends rather than replaces (or a second hop) delivers two lines: neither is believed."""
    one = [("Host", "localhost"), ("X-Forwarded-User", "alice"), ("X-Forwarded-Groups", "smith-lab")]
    assert httpx.get(f"{app_url}/api/me", headers=one, timeout=30).status_code == 200
    for duplicated in ([*one, ("X-Forwarded-Groups", "facility-staff")],
                       [("Host", "localhost"), ("X-Forwarded-User", "carol"), *one[1:]],
                       [*one, ("X-Forwarded-Email", "a@uni.example"), ("X-Forwarded-Email", "visitor@uni.example")]):
        response = httpx.get(f"{app_url}/api/projects", headers=duplicated, timeout=30)
        assert response.status_code == 400 and "times" in response.json()["error"], response.text


def test_a_proxy_with_allowed_groups_refuses_accounts_outside_the_mapped_groups(app_url, tmp_path):
    process, base = start_standin(app_url, tmp_path, allowed_groups=tuple(ACCESS["groups"]))
    try:
        assert projects(base, "alice") == (200, ["smith/proj"])
        for account in ("mallory", "ghost"):
            response = httpx.get(f"{base}/api/me", headers={"Host": "localhost", "Cookie": f"_oauth2_proxy={account}"},
                                 timeout=30)
            assert response.status_code == 403 and response.text == "not in an allowed group"
    finally:
        process.terminate()
        process.wait(10)


def test_only_the_configured_header_names_carry_identity(tmp_path):
    access = ProxyAccess.from_mapping({**ACCESS, "headers": {"user": "X-Remote-User", "groups": "X-Remote-Groups",
                                                             "email": "X-Remote-Email"}}, "test access")
    assert access.headers == IdentityHeaders("X-Remote-User", "X-Remote-Email", "X-Remote-Groups")
    small_project(str(tmp_path / "smith" / "proj"), frames=1)
    with running(create_app(str(tmp_path), None, ServeOptions(access=access))) as base:
        default_names = {"Host": "localhost", "X-Forwarded-User": "carol", "X-Forwarded-Groups": "facility-staff"}
        assert httpx.get(f"{base}/api/me", headers=default_names, timeout=30).status_code == 401
        mine = {"Host": "localhost", "X-Remote-User": "alice", "X-Remote-Groups": "smith-lab"}
        assert httpx.get(f"{base}/api/me", headers=mine, timeout=30).json()["prefixes"] == ["smith"]
    for bad in ({"user": "X Remote"}, {"user": "X-A", "email": "x-a"}, {"role": "X-Role"}):
        with pytest.raises(ValueError, match="headers"):
            ProxyAccess.from_mapping({**ACCESS, "headers": bad}, "bad")
