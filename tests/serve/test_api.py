"""The web app's JSON endpoints against a root on the moto S3 server; oracles are pandas/boto3/PyAV
reading the stored objects directly, and posecluster's own train/merge commands taking the results."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from urllib.parse import quote

import av
import boto3
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from starlette.testclient import TestClient

from posecluster import api, storage
from posecluster.data.project import read_project
from posecluster.serve import create_app
from tests.serve.conftest import FRESH, LOCAL, REFINE, TOKEN, copy_project, labels_of

AUTH = {"X-Posecluster-Token": TOKEN}
PARTS = 4


@pytest.fixture(scope="module")
def client(site):
    with TestClient(create_app(site + "/", TOKEN), base_url=LOCAL, headers=AUTH) as c:
        yield c


@pytest.fixture(scope="module")
def project(site) -> str:
    return copy_project(site, "api")


def s3_object(uri: str) -> bytes:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).get_object(Bucket=bucket, Key=key)["Body"].read()


def pandas_table(site: str, project: str, folder: str) -> pd.DataFrame:
    """The stored CollectedData .h5, read by pandas alone (not posecluster)."""
    local = f"/tmp/serve-test-{os.getpid()}.h5"
    (key,) = [u for u in storage.list_files(f"{site}/{project}/{folder}") if "CollectedData_" in u and u.endswith(".h5")]
    with open(local, "wb") as fh:
        fh.write(s3_object(key))
    try:
        with pd.HDFStore(local, mode="r") as store:
            assert store.keys() == ["/df_with_missing"]  # DeepLabCut's key
        return pd.read_hdf(local)
    finally:
        os.remove(local)


ENDPOINTS = [("GET", "/"), ("GET", "/static/app.js"), ("GET", "/api/projects"), ("GET", "/api/labels?project=projects/mice&folder=fresh"),
             ("PUT", "/api/labels?project=projects/mice&folder=fresh"), ("GET", "/api/image?path=projects/mice/labeled-data/fresh/img00.png"),
             ("GET", "/api/jobs"), ("GET", "/api/jobs/frame?table=x.h5"), ("GET", "/api/jobs/plot?table=x.h5"), ("GET", "/api/file?path=x"),
             ("GET", "/api/jobs/videos?out=poses&job=x")]


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_every_endpoint_refuses_a_request_without_the_right_token(site, method, path):
    with TestClient(create_app(site, TOKEN), base_url=LOCAL) as anonymous:
        assert anonymous.request(method, path).status_code == 401
        wrong = anonymous.request(method, path, headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401 and "token" in wrong.json()["error"]
        anonymous.cookies.set("posecluster_token", TOKEN[:-1])
        assert anonymous.request(method, path).status_code == 401
        assert anonymous.get("/healthz").text == "ok"  # the probe Kubernetes needs, and nothing else


def test_the_printed_url_sets_a_cookie_and_leaves_the_token_out_of_the_address(site):
    with TestClient(create_app(site, TOKEN), base_url=LOCAL) as browser:
        first = browser.get(f"/?token={TOKEN}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert "httponly" in first.headers["set-cookie"].lower() and "samesite=strict" in first.headers["set-cookie"].lower()
        browser.cookies.set("posecluster_token", first.cookies["posecluster_token"])
        page = browser.get("/")
        assert page.status_code == 200 and "<canvas" not in page.text and "app.js" in page.text
        assert browser.get("/api/projects").status_code == 200


OUTSIDE = ["../outside/secret.png", "/etc/hostname", "s3://{outside}/secret.png", "{outside_name}/secret.png",
           "projects/../../{outside_name}/secret.png", "%2e%2e/secret.png", "projects/%2e%2e/%2e%2e/x.png",
           "..\\secret.png", "projects//mice", "./projects", "file:///etc/hostname"]


@pytest.mark.parametrize("raw", OUTSIDE)
def test_paths_outside_the_root_are_refused_before_anything_is_read(client, site, outside, raw, monkeypatch):
    path = raw.format(outside=outside[5:], outside_name=outside[5:])
    touched: list[str] = []
    real = storage.filesystem
    monkeypatch.setattr(storage, "filesystem", lambda uri, **kw: (touched.append(uri), real(uri, **kw))[1])
    for url in (f"/api/image?path={quote(path, safe='')}", f"/api/file?path={quote(path, safe='')}",
                f"/api/labels?project={quote(path, safe='')}&folder=fresh",
                f"/api/labels?project=projects/mice&folder={quote(path, safe='')}",
                f"/api/jobs/frame?table={quote(path, safe='')}&frame=0", f"/api/jobs/plot?table={quote(path, safe='')}",
                f"/api/jobs/videos?out={quote(path, safe='')}&job=x"):
        response = client.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
        assert b"SECRET" not in response.content and "error" in response.json()
    assert not [u for u in touched if not u.startswith(site + "/")], touched


def test_projects_show_labeled_counts_per_video_folder_and_the_iteration(client, site, project):
    listed = {p["path"]: p for p in client.get("/api/projects").json()["projects"]}
    mice = listed[project]
    assert mice["iteration"] == 0 and mice["bodyparts"] == ["snout", "leftear", "rightear", "tailbase"]
    folders = {f["name"]: f for f in mice["folders"]}
    assert set(folders) == {"arena0", "fresh", "trial7"}
    arena = pandas_table(site, project, "labeled-data/arena0")
    assert folders["arena0"]["frames"] == 6 and folders["arena0"]["labeled"] == int(arena.notna().any(axis=1).sum())
    assert (folders["fresh"]["frames"], folders["fresh"]["labeled"]) == (3, 0)
    assert folders["trial7"]["proposed"] == 2
    assert "runs" not in " ".join(listed)  # a run's resolved config.yaml is not a project


def test_labels_come_in_config_order_with_the_tables_values(client, site, project):
    data = client.get(f"/api/labels?project={project}&folder=arena0").json()
    table = pandas_table(site, project, "labeled-data/arena0")
    assert data["bodyparts"] == table.columns.get_level_values("bodyparts").unique().tolist()
    assert data["images"] == sorted(table.index.tolist()) and data["version"]
    for image, row in table.iterrows():
        got = np.array([[np.nan, np.nan] if p is None else p for p in data["labels"][image]])
        np.testing.assert_allclose(got, row.to_numpy().reshape(PARTS, 2))


def test_a_save_writes_deeplabcut_tables_that_training_accepts(client, site, project):
    loaded = client.get(f"/api/labels?project={project}&folder=fresh").json()
    assert loaded["images"] == [f"{FRESH}/img00.png", f"{FRESH}/img01.png", f"{FRESH}/img02.png"]
    labels = {loaded["images"][0]: [[10.25, 20.5], None, [30, 40], [50.5, 60]],
              loaded["images"][2]: [[1, 2], [3, 4], [5, 6], [7, 8]]}
    saved = client.put(f"/api/labels?project={project}&folder=fresh", json={"version": loaded["version"], "labels": labels})
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] != loaded["version"]
    table = pandas_table(site, project, FRESH)  # pandas alone
    assert table.columns.names == ["scorer", "bodyparts", "coords"]
    first = table.loc[f"{FRESH}/img00.png"].to_numpy().reshape(PARTS, 2)
    np.testing.assert_allclose(first, [[10.25, 20.5], [np.nan, np.nan], [30, 40], [50.5, 60]])
    assert table.loc[f"{FRESH}/img01.png"].isna().all()  # untouched frame stays unlabeled
    csv = s3_object(f"{site}/{project}/{FRESH}/CollectedData_{loaded['scorer']}.csv").decode().splitlines()
    assert [line.split(",")[0] for line in csv[:3]] == ["scorer", "bodyparts", "coords"]
    assert csv[3].startswith(f"{FRESH}/img00.png,10.25,20.5,,,30.0,40.0")
    dataset = read_project(f"{site}/{project}").labels  # what `posecluster train` reads
    assert f"{FRESH}/img02.png" in dataset.images


def test_a_save_over_a_table_changed_since_loading_is_refused_and_both_versions_survive(client, site, project):
    url = f"/api/labels?project={project}&folder=arena0"
    loaded = client.get(url).json()
    image = loaded["images"][1]
    first = client.put(url, json={"version": loaded["version"], "labels": {image: [[1, 1], [2, 2], [3, 3], [4, 4]]}})
    assert first.status_code == 200
    stored = s3_object(f"{site}/{project}/labeled-data/arena0/CollectedData_{loaded['scorer']}.h5")
    second = client.put(url, json={"version": loaded["version"], "labels": {image: [[9, 9], [9, 9], [9, 9], [9, 9]]}})
    assert second.status_code == 409 and "someone else" in second.json()["error"]
    assert second.json()["current_version"] == first.json()["version"]
    assert s3_object(f"{site}/{project}/labeled-data/arena0/CollectedData_{loaded['scorer']}.h5") == stored
    images, keypoints = labels_of(f"{site}/{project}", "labeled-data/arena0")
    np.testing.assert_allclose(keypoints[images.index(image)], [[1, 1], [2, 2], [3, 3], [4, 4]])


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "expected"),
    (b'{"version": "", "labels": []}', 400, "expected"),
    (json.dumps({"version": "", "labels": {f"{FRESH}/img00.png": [[1, 2]]}}).encode(), 422, "img00.png"),
    (json.dumps({"version": "", "labels": {f"{FRESH}/img00.png": [[1, "a"], None, None, None]}}).encode(), 422, "body part 0"),
    (b'{"version": "", "labels": {"labeled-data/fresh/img00.png": [[NaN, 1], null, null, null]}}', 422, "finite"),
    (json.dumps({"version": "", "labels": {"labeled-data/arena0/img0000.png": [None] * 4}}).encode(), 422, "not a frame of"),
])
def test_malformed_saves_are_refused_with_a_message_and_write_nothing(client, site, body, status, message):
    project = copy_project(site, "malformed")
    version = client.get(f"/api/labels?project={project}&folder=fresh").json()["version"]
    body = body.replace(b'"version": ""', f'"version": "{version}"'.encode())
    response = client.put(f"/api/labels?project={project}&folder=fresh", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == status and message in response.json()["error"], response.text
    assert client.get(f"/api/labels?project={project}&folder=fresh").json()["version"] == version


def test_frames_are_served_as_images_with_caching_headers(client, site, project):
    path = f"{project}/{FRESH}/img01.png"
    response = client.get(f"/api/image?path={path}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content == s3_object(f"{site}/{path}")
    assert "max-age" in response.headers["cache-control"] and response.headers["etag"]
    again = client.get(f"/api/image?path={path}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content
    assert client.get(f"/api/image?path={project}/config.yaml").status_code == 400  # images only
    assert client.get(f"/api/image?path={project}/{FRESH}/nope.png").status_code == 404


def job_videos(client, job: dict, **params) -> dict:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in {"out": job["out_path"], "job": job["job_id"], **params}.items())
    response = client.get(f"/api/jobs/videos?{query}")
    assert response.status_code == 200, response.text
    return response.json()


def test_jobs_show_a_finished_and_a_failed_video_from_the_manifest(client, site):
    (job,) = client.get("/api/jobs").json()["jobs"]
    manifest = json.loads(s3_object(f"{site}/poses/posecluster-manifest.json"))
    assert job["job_id"] == manifest["job_id"] and job["status"] == "finished" and job["out_path"] == "poses"
    assert (job["videos_total"], job["videos_done"], job["videos_failed"], job["videos_pending"]) == (2, 1, 1, 0)
    page = job_videos(client, job)
    assert page["total"] == 2
    videos = {v["video"].rsplit("/", 1)[1]: v for v in page["videos"]}
    assert videos["broken.mp4"]["status"] == "failed" and "not a readable video" in videos["broken.mp4"]["error"]
    good = videos["good.mp4"]
    assert good["status"] == "done" and good["frames"] == 24 and job["fps"] > 0 and good["missing_frames"] == 0
    # The video's own folder mirrored under the job's --out (infer.naming).
    assert good["outputs"]["h5"]["path"].startswith(f"poses/{site.removeprefix('s3://')}/videos/good")
    assert good["segments"] == 1
    (failed,) = job_videos(client, job, status="failed")["videos"]
    assert failed["video"] == videos["broken.mp4"]["video"]
    download = client.get(f"/api/file?path={good['outputs']['h5']['path']}")
    assert download.status_code == 200 and download.content == s3_object(f"{site}/{good['outputs']['h5']['path']}")
    for bad in ("job=../x", "job=a/b", f"job={job['job_id']}&out=../x", f"job={job['job_id']}&out=s3://other",
                f"job={job['job_id']}&status=bogus", f"job={job['job_id']}&limit=100000"):
        assert client.get(f"/api/jobs/videos?{bad}").status_code == 400, bad


def test_a_finished_videos_frame_has_its_poses_drawn_and_a_trajectory_plot(client, site):
    (job,) = client.get("/api/jobs").json()["jobs"]
    table = job_videos(client, job, status="done")["videos"][0]["outputs"]["h5"]["path"]
    response = client.get(f"/api/jobs/frame?table={table}&frame=12&pcutoff=0")
    assert response.status_code == 200 and response.headers["etag"]
    drawn = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
    with av.open(io.BytesIO(s3_object(f"{site}/videos/good.mp4"))) as container:  # plain sequential decode
        plain = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][12].astype(int)
    assert drawn.shape == plain.shape == (80, 96, 3)
    changed = np.abs(drawn - plain).sum(axis=2) > 60
    assert 8 < changed.sum() < drawn.shape[0] * drawn.shape[1] / 2  # markers drawn on the real frame
    assert client.get(f"/api/jobs/frame?table={table}&frame=12&pcutoff=0",
                      headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    assert client.get(f"/api/jobs/frame?table={table}&frame=99").status_code == 422
    plot = client.get(f"/api/jobs/plot?table={table}")
    assert plot.status_code == 200 and Image.open(io.BytesIO(plot.content)).size[0] > 200


def test_a_refined_outlier_frame_is_what_merge_counts_as_corrected(client, site):
    project = copy_project(site, "refine")
    url = f"/api/labels?project={project}&folder=trial7"
    data = client.get(url).json()
    assert len(data["proposed"]) == 2 and set(data["proposed"]) <= set(data["images"])
    image = data["proposed"][0]
    machine = np.array(data["machine"][image], dtype=float)
    assert machine.shape == (PARTS, 3) and ((machine[:, 2] >= 0) & (machine[:, 2] <= 1)).all()
    fixed = [[p[0] + 3, p[1]] if p else [5.0, 5.0] for p in data["labels"][image]]
    assert client.put(url, json={"version": data["version"], "labels": {image: fixed}}).status_code == 200
    report = api.merge_labels(f"{site}/{project}")
    (folder,) = report.folders
    assert (folder.folder, folder.proposed, folder.corrected, folder.accepted) == (REFINE, 2, 1, 1)


def test_serve_prints_one_url_with_a_random_token_and_answers_on_it(site):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    env.pop("POSECLUSTER_SERVE_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "posecluster", "serve", site], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = [process.stdout.readline() for _ in range(2)]
        while "?token=" not in lines[-1] and lines[-1]:
            lines.append(process.stdout.readline())
        url = lines[-1].strip()
        assert url.startswith("http://127.0.0.1:") and "?token=" in url, lines
        base, token = url.split("/?token=")
        assert len(token) >= 24
        import httpx

        for _ in range(50):
            try:
                response = httpx.get(f"{base}/static/app.js", headers={"Authorization": f"Bearer {token}"}, timeout=30)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert response.status_code == 200 and httpx.get(f"{base}/static/app.js", timeout=30).status_code == 401
    finally:
        process.terminate()
        process.wait(10)


def test_a_save_keeps_a_tuple_indexed_table_tuple_indexed(client, site):
    """DLC >= 2.2 (napari-deeplabcut) indexes rows by (labeled-data, video, image): a save keeps that style."""
    from posecluster.data.formats import dlc

    project = copy_project(site, "tuple")
    config = dlc.read_project_config(f"{site}/{project}/config.yaml")
    images, keypoints = labels_of(f"{site}/{project}", "labeled-data/arena0")
    from posecluster.data.labels import LabeledDataset

    dlc.write_tables(LabeledDataset(root=f"{site}/{project}", scorer=config.scorer, bodyparts=list(config.bodyparts),
                                    images=images, keypoints=keypoints, index_styles={"labeled-data/arena0": "tuple"}))
    url = f"/api/labels?project={project}&folder=arena0"
    loaded = client.get(url).json()
    assert loaded["images"] == images
    assert client.put(url, json={"version": loaded["version"], "labels": {images[0]: [[7, 8]] * PARTS}}).status_code == 200
    table = pandas_table(site, project, "labeled-data/arena0")
    assert isinstance(table.index, pd.MultiIndex) and table.index.nlevels == 3
    assert table.index[0] == tuple(images[0].split("/"))
    np.testing.assert_allclose(table.iloc[0].to_numpy(), [7, 8] * PARTS)


def test_a_meta_file_naming_a_video_outside_the_root_cannot_make_the_server_read_it(client, site, outside, monkeypatch):
    """A _meta.json under the root is user-writable data: the video it names is read only under the root."""
    (job,) = client.get("/api/jobs").json()["jobs"]
    table = next(v["outputs"]["h5"]["path"] for v in job_videos(client, job, status="done")["videos"])
    meta = json.loads(storage.read_bytes(f"{site}/{table[:-3]}_meta.json"))
    forged = f"{site}/poses/forged/{table.rsplit('/', 1)[1]}"
    storage.atomic_write_bytes(forged, storage.read_bytes(f"{site}/{table}"))
    storage.atomic_write_bytes(forged[:-3] + "_meta.json", json.dumps({**meta, "video": f"{outside}/secret.mp4"}).encode())
    touched: list[str] = []
    real = storage.filesystem
    monkeypatch.setattr(storage, "filesystem", lambda uri, **kw: (touched.append(uri), real(uri, **kw))[1])
    response = client.get(f"/api/jobs/frame?table={quote(forged[len(site) + 1:], safe='')}&frame=0&pcutoff=0")
    assert response.status_code == 400 and "outside the served root" in response.json()["error"]
    assert not [u for u in touched if u.startswith(outside)], touched


def test_a_symbolic_link_under_a_local_root_does_not_lead_outside_it(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "labeled-data" / "v").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.png").write_bytes(b"SECRET")
    (root / "labeled-data" / "v" / "img0.png").symlink_to(elsewhere / "secret.png")
    with TestClient(create_app(str(root), TOKEN), base_url=LOCAL, headers=AUTH) as local:
        for url in ("/api/image?path=labeled-data/v/img0.png", "/api/file?path=labeled-data/v/img0.png"):
            response = local.get(url)
            assert response.status_code == 400 and b"SECRET" not in response.content, (url, response.text)
