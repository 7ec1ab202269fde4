"""The web app attacked over HTTP, on a local root with symbolic links (what a lab member who can write
under the root can plant): the oracle is the filesystem itself (what exists outside the root afterwards)
and the raw responses. A real uvicorn server where the transport matters (streamed bodies, sockets)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from starlette.testclient import TestClient

from posecluster import storage
from posecluster.serve import create_app
from tests.serve.conftest import LOCAL, TOKEN, labels_of, made_up_records, running, small_project, write_job

AUTH = {"X-Posecluster-Token": TOKEN}
SECRET_CONFIG = "Task: SECRET-TASK\nscorer: thief\nbodyparts: [secretpart]\n"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """root/projects/demo (a real project) with planted links: labeled-data/linkdir -> a folder outside,
    projects/linked/config.yaml -> a config outside; and an outside folder holding a secret."""
    base = tmp_path_factory.mktemp("planted")
    root, outside = base / "root", base / "outside"
    small_project(str(root / "projects" / "demo"))
    (outside / "frames").mkdir(parents=True)
    (outside / "frames" / "img0000.png").write_bytes((root / "projects/demo/labeled-data/arena0/img0000.png").read_bytes())
    (outside / "config.yaml").write_text(SECRET_CONFIG)
    (root / "projects/demo/labeled-data/linkdir").symlink_to(outside / "frames")
    linked = root / "projects" / "linked"
    (linked / "labeled-data" / "v").mkdir(parents=True)
    (linked / "labeled-data" / "v" / "img0.png").write_bytes((root / "projects/demo/labeled-data/arena0/img0000.png").read_bytes())
    (linked / "config.yaml").symlink_to(outside / "config.yaml")
    return root, outside


@pytest.fixture(scope="module")
def client(planted):
    root, _ = planted
    with TestClient(create_app(str(root), TOKEN), base_url=LOCAL, headers=AUTH) as c:
        yield c


def loaded(client, folder: str = "arena0") -> dict:
    response = client.get(f"/api/labels?project=projects/demo&folder={folder}")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_save_into_a_symlinked_folder_writes_nothing_outside_the_root(client, planted):
    root, outside = planted
    for folder in ("linkdir", "labeled-data/linkdir"):
        url = f"/api/labels?project=projects/demo&folder={folder}"
        got = client.get(url)
        assert got.status_code == 400 and "symbolic link" in got.json()["error"], got.text
        put = client.put(url, json={"version": "", "labels": {"labeled-data/linkdir/img0000.png": [[1, 1]] * 4}})
        assert put.status_code == 400, put.text
    assert sorted(p.name for p in (outside / "frames").iterdir()) == ["img0000.png"]  # no CollectedData written
    assert str(outside) not in json.dumps(client.get("/api/projects").json())


def test_a_symlinked_config_is_not_read_from_outside_the_root(client, planted):
    projects = {p["path"]: p for p in client.get("/api/projects").json()["projects"]}
    assert "SECRET" not in json.dumps(projects) and "secretpart" not in json.dumps(projects)
    assert "outside the served root" in projects["projects/linked"]["error"]
    labels = client.get("/api/labels?project=projects/linked&folder=v")
    assert labels.status_code == 400 and "SECRET" not in labels.text and "secretpart" not in labels.text


@pytest.mark.parametrize("key", ["labeled-data/arena0/..", "labeled-data/arena0/.", "labeled-data/arena0/CollectedData_synthetic.h5",
                                 "labeled-data/arena0/nope.png", "labeled-data/other/img0000.png", "../img0000.png"])
def test_a_save_accepts_only_frames_that_exist_in_the_folder(client, planted, key):
    root, _ = planted
    before = labels_of(str(root / "projects/demo"), "labeled-data/arena0")
    data = loaded(client)
    response = client.put("/api/labels?project=projects/demo&folder=arena0",
                          json={"version": data["version"], "labels": {key: [[1.0, 2.0]] * 4}})
    assert response.status_code == 422 and "not a frame of" in response.json()["error"], response.text
    after = labels_of(str(root / "projects/demo"), "labeled-data/arena0")
    assert before[0] == after[0]


@pytest.mark.parametrize("point, message", [([-5, 10], "outside the 96x80 image"), ([10, 80], "outside the 96x80 image"),
                                            ([1e308, 1], "outside"), ([96, 1], "outside"), ([1, "2"], "expected [x, y]")])
def test_coordinates_outside_the_image_are_refused(client, point, message):
    data = loaded(client)
    image = data["images"][0]
    response = client.put("/api/labels?project=projects/demo&folder=arena0",
                          json={"version": data["version"], "labels": {image: [point, None, None, None]}})
    assert response.status_code == 422 and message in response.json()["error"] and "body part 0 (snout)" in response.json()["error"]
    assert loaded(client)["version"] == data["version"]


@pytest.mark.parametrize("body", [
    b'{"version": "", "labels": {"labeled-data/arena0/img0000.png": [[' + b"9" * 401 + b', 1], null, null, null]}}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"version": "", "labels": {"labeled-data/arena0/img0000.png": [[1e999, 1], null, null, null]}}',
    b'{"version": "", "labels": {"labeled-data/arena0/img0000.png": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}",
    b"\xff\xfe not utf-8",
])
def test_hostile_json_gets_a_4xx_never_a_5xx(client, body):
    body = body.replace(b'"version": ""', f'"version": "{loaded(client)["version"]}"'.encode())
    response = client.put("/api/labels?project=projects/demo&folder=arena0", content=body,
                          headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])


def test_a_huge_body_is_refused_before_it_is_read(planted):
    """Content-Length over the bound: refused at once, the body never sent; chunked without a length: the
    server stops reading past 8 MB (the client sees the answer while it still has most of 200 MB to send)."""
    root, _ = planted
    with running(create_app(str(root), TOKEN)) as base:
        host, port = base[len("http://"):].split(":")
        head = (f"PUT /api/labels?project=projects/demo&folder=arena0 HTTP/1.1\r\nHost: localhost\r\n"
                f"X-Posecluster-Token: {TOKEN}\r\nContent-Type: application/json\r\n")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((head + "Content-Length: 200000000\r\n\r\n").encode())
            answer = sock.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 413"), answer[:200]

        sent, answer = 0, b""
        chunk = b"[" * (1 << 20)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            sock.settimeout(0.05)
            while sent < 200 << 20 and not answer:
                try:
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
                except socket.timeout:
                    pass  # the server stopped reading: its answer is on the way
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    answer = sock.recv(4096)
                except socket.timeout:
                    pass
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert sent < 32 << 20, f"the server read {sent >> 20} MB before refusing"


def test_every_response_carries_the_browser_hardening_headers(client):
    for url in ("/", "/static/app.js", "/api/projects", "/api/image?path=../x.png", "/healthz"):
        headers = client.get(url).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, url
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", url
        assert headers["cross-origin-resource-policy"] == "same-origin", url


def test_another_host_name_or_another_site_is_refused(planted):
    root, _ = planted
    app = create_app(str(root), TOKEN)
    with TestClient(app, base_url="http://evil.example", headers=AUTH) as rebound:  # DNS rebinding
        assert rebound.get("/api/projects").status_code == 400
    with TestClient(app, base_url=LOCAL, headers=AUTH) as c:
        data = c.get("/api/labels?project=projects/demo&folder=arena0").json()
        put = {"version": data["version"], "labels": {data["images"][0]: [[1, 1]] * 4}}
        url = "/api/labels?project=projects/demo&folder=arena0"
        assert c.put(url, json=put, headers={"Origin": "http://localhost:9999"}).status_code == 403  # another port
        assert c.put(url, json=put, headers={"Origin": "null"}).status_code == 403
        assert c.put(url, json=put, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
        image = "/api/image?path=projects/demo/labeled-data/arena0/img0000.png"
        assert c.get(image, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403  # <img> on another port
        assert c.get(image, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        assert c.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # a link to the app still opens it
        assert c.put(url, json=put, headers={"Origin": "http://localhost"}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1:8766, evil.example", "evil.example", "localhost evil.example",
                                  "user@localhost", "localhost:80x", "localhost:", "[::1]x", "::1", "localhost.evil.example",
                                  "127.0.0.1.nip.io", ""])
def test_a_host_header_that_is_not_exactly_an_allowed_name_is_refused(planted, host):
    """Over a raw socket (clients normalise Host): a list, a suffix, junk after the port, an empty name."""
    root, _ = planted
    with running(create_app(str(root), TOKEN)) as base:
        address, port = base[len("http://"):].split(":")
        with socket.create_connection((address, int(port)), timeout=10) as sock:
            sock.sendall(f"GET /api/projects HTTP/1.1\r\nHost: {host}\r\nX-Posecluster-Token: {TOKEN}\r\n"
                         "Connection: close\r\n\r\n".encode())
            answer = sock.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 400"), (host, answer[:200])
        for good in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", "LOCALHOST"):
            with socket.create_connection((address, int(port)), timeout=10) as sock:
                sock.sendall(f"GET /api/projects HTTP/1.1\r\nHost: {good}\r\nX-Posecluster-Token: {TOKEN}\r\n"
                             "Connection: close\r\n\r\n".encode())
                assert sock.recv(4096).decode().startswith("HTTP/1.1 200"), good


def test_two_host_headers_are_refused(planted):
    root, _ = planted
    with running(create_app(str(root), TOKEN)) as base:
        address, port = base[len("http://"):].split(":")
        with socket.create_connection((address, int(port)), timeout=10) as sock:
            sock.sendall(f"GET /api/projects HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
                         f"X-Posecluster-Token: {TOKEN}\r\nConnection: close\r\n\r\n".encode())
            assert sock.recv(4096).decode().startswith("HTTP/1.1 400")


def test_a_write_from_another_scheme_is_refused(planted):
    """An https page may not write to an http app (nor the reverse behind TLS): the scheme is part of the origin."""
    from posecluster.serve import ServeOptions

    root, _ = planted
    url = "/api/labels?project=projects/demo&folder=arena0"
    for app, base, good, bad in ((create_app(str(root), TOKEN), LOCAL, "http://localhost", "https://localhost"),
                                 (create_app(str(root), TOKEN, ServeOptions(secure_cookies=True)), LOCAL,
                                  "https://localhost", "http://localhost")):
        with TestClient(app, base_url=base, headers=AUTH) as c:
            data = c.get(url).json()
            put = {"version": data["version"], "labels": {data["images"][0]: [[1, 1]] * 4}}
            for origin in (bad, f"{good}/", f"{good}:1", "http://localhost@evil.example", "http://[::1"):
                refused = c.put(url, json=put, headers={"Origin": origin})
                assert refused.status_code == 403 and "origin" in refused.json()["error"], (origin, refused.text)
            assert c.put(url, json=put, headers={"Origin": good}).status_code == 200, good


@pytest.mark.parametrize("path", ["//evil.example/", "/\\evil.example/", "/%2F%2Fevil.example/", "/api/../x"])
def test_the_token_url_redirects_only_to_the_app_itself(planted, path):
    root, _ = planted
    with TestClient(create_app(str(root), TOKEN), base_url=LOCAL) as c:
        response = c.get(f"{LOCAL}{path}?token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/", response.headers.get("location")


def test_the_cookie_is_secure_behind_tls(planted):
    root, _ = planted
    with TestClient(create_app(str(root), TOKEN), base_url="https://localhost") as direct:
        assert "secure" in direct.get(f"/?token={TOKEN}", follow_redirects=False).headers["set-cookie"].lower()
    from posecluster.serve import ServeOptions

    behind = create_app(str(root), TOKEN, ServeOptions(secure_cookies=True))
    with TestClient(behind, base_url=LOCAL) as c:  # TLS ends at the Ingress; the app sees plain HTTP
        cookie = c.get(f"/?token={TOKEN}", follow_redirects=False).headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_errors_name_paths_relative_to_the_root_and_hide_the_rest(client, planted):
    root, outside = planted
    for url in ("/api/labels?project=projects/nope&folder=arena0", "/api/labels?project=projects/demo&folder=nope",
                "/api/image?path=projects/demo/labeled-data/arena0/none.png", "/api/labels?project=projects/linked&folder=v",
                "/api/jobs/frame?table=projects/demo/x.h5"):
        response = client.get(url)
        assert 400 <= response.status_code < 500
        assert str(root) not in response.text and str(outside) not in response.text, response.text
    unknown = client.get("/api/labels?project=projects/demo&folder=nope")
    assert unknown.status_code == 404 and "no folder labeled-data/nope" in unknown.json()["error"]


def test_a_bad_summary_among_good_ones_is_one_broken_row(tmp_path):
    root = str(tmp_path)
    good = ["20261126-100000-aaaaaa", "20261126-120000-cccccc"]
    for job in good:
        write_job(storage.join(root, "poses", job[-1]), job, made_up_records(3), pending=0, flushes=1)
    bad = {"20261126-110000-bbbbbb": {"job_id": "x", "counts": [], "seconds": "abc", "fps": {"a": 1}, "workers": "<b>",
                                      "model": [1], "videos_total": "many", "first_table_s": "soon", "started": None},
           "20261126-113000-dddddd": [1, 2, 3],
           "20261126-114000-eeeeee": {"counts": {"done": "7", "failed": -3, "pending": 1e400}, "status": {"x": 1}}}
    for job, summary in bad.items():
        storage.atomic_write_bytes(storage.join(root, "bad", job[-6:], ".posecluster", "jobs", job, "summary.json"),
                                   json.dumps(summary).encode())
    with TestClient(create_app(root, TOKEN), base_url=LOCAL, headers=AUTH) as c:
        response = c.get("/api/jobs")
        assert response.status_code == 200, response.text
        jobs = {j["job_id"]: j for j in response.json()["jobs"]}
        assert all(jobs[job]["videos_done"] == 3 and jobs[job]["videos_failed"] == 0 for job in good), jobs
        odd = [j for j in response.json()["jobs"] if j["job_id"] not in good]
        assert len(odd) == 3
        for job in odd:
            assert isinstance(job.get("workers", 0), int) and isinstance(job.get("counts", {}), dict)


def test_binding_beyond_loopback_needs_tls_in_front(tmp_path):
    from posecluster.serve import Listen, exposure_warning

    assert exposure_warning(Listen(host="127.0.0.1")) is None
    with pytest.raises(ValueError, match="plain HTTP beyond this machine"):
        exposure_warning(Listen(host="0.0.0.0"))
    assert "WARNING" in exposure_warning(Listen(host="0.0.0.0", allow_remote=True))
    refused = subprocess.run([sys.executable, "-m", "posecluster", "serve", str(tmp_path), "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr


def test_the_printed_url_with_allow_remote_warns(tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "posecluster", "serve", str(tmp_path), "--host", "0.0.0.0",
                                "--allow-remote"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("WARNING" in line for line in lines):
            lines.append(process.stdout.readline())
        assert any("WARNING: serving plain HTTP" in line for line in lines), lines
    finally:
        process.terminate()
        process.wait(10)
