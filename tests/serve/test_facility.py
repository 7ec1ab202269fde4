"""The facility mode: one server for many labs behind an authenticating proxy. The test plays the proxy
(as oauth2-proxy would: X-Forwarded-User/-Email/-Groups) from loopback, the one
trusted address; a request from another loopback address (127.0.0.2) is an untrusted client forging the
same headers. Each lab's root prefix holds a project and an archive job; the oracle is what each page and
endpoint shows or refuses, in a real browser and over HTTP."""

from __future__ import annotations

import httpx
import pytest

from posecluster import storage
from posecluster.serve import ProxyAccess, ServeOptions, create_app
from tests.serve.conftest import browser_page, made_up_records, needs_browser, running, small_project, write_job

ACCESS = {"trusted_proxies": ["127.0.0.1/32"],
          "groups": {"smith-lab": ["smith"], "jones-lab": ["jones/"], "facility-staff": ["*"]},
          "users": {"visitor@uni.example": ["shared/videos"]}}
SMITH = {"X-Forwarded-User": "alice", "X-Forwarded-Email": "alice@uni.example", "X-Forwarded-Groups": "smith-lab,students"}
JONES = {"X-Forwarded-User": "bob", "X-Forwarded-Email": "bob@uni.example", "X-Forwarded-Groups": "jones-lab"}
STAFF = {"X-Forwarded-User": "carol", "X-Forwarded-Groups": "facility-staff"}
JOBS = {"smith": "20261127-100000-aaaaaa", "jones": "20261127-110000-bbbbbb"}


@pytest.fixture(scope="module")
def facility(tmp_path_factory):
    root = tmp_path_factory.mktemp("facility")
    for lab, job in JOBS.items():
        small_project(str(root / lab / "projects" / f"{lab}-mice"), frames=2, seed=len(lab))
        write_job(storage.join(str(root), lab, "poses"), job, made_up_records(2), pending=0, flushes=1)
    options = ServeOptions(access=ProxyAccess.from_mapping(ACCESS, "test access"))
    with running(create_app(str(root), None, options)) as base:
        yield str(root), base


def seen(base: str, headers: dict, local_address: str = "127.0.0.1") -> tuple[int, list[str], list[str]]:
    """(status of /api/projects, project paths, job ids) as a client at `local_address` sees them."""
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(base_url=base, headers={"Host": "localhost", **headers}, transport=transport, timeout=30) as client:
        projects = client.get("/api/projects")
        if projects.status_code != 200:
            return projects.status_code, [], []
        jobs = client.get("/api/jobs").json()["jobs"]
        return 200, [p["path"] for p in projects.json()["projects"]], [j["job_id"] for j in jobs]


def test_each_lab_sees_only_its_own_projects_and_jobs(facility):
    _, base = facility
    assert seen(base, SMITH) == (200, ["smith/projects/smith-mice"], [JOBS["smith"]])
    assert seen(base, JONES) == (200, ["jones/projects/jones-mice"], [JOBS["jones"]])
    status, projects, jobs = seen(base, STAFF)
    assert status == 200 and len(projects) == 2 and sorted(jobs) == sorted(JOBS.values())


def test_a_lab_cannot_reach_into_another_labs_folder(facility):
    _, base = facility
    with httpx.Client(base_url=base, headers={"Host": "localhost", **SMITH}, timeout=30) as smith:
        for url in ("/api/labels?project=jones/projects/jones-mice&folder=arena0",
                    "/api/image?path=jones/projects/jones-mice/labeled-data/arena0/img0000.png",
                    "/api/file?path=jones/projects/jones-mice/config.yaml",
                    f"/api/jobs/videos?out=jones/poses&job={JOBS['jones']}", "/api/jobs/videos?out=&job=x"):
            response = smith.get(url)
            assert response.status_code == 400 and "your account may see" in response.json()["error"], (url, response.text)
        put = smith.put("/api/labels?project=jones/projects/jones-mice&folder=arena0", json={"version": "", "labels": {}},
                        headers={"Origin": "http://localhost"})
        assert put.status_code == 400
        mine = smith.get("/api/labels?project=smith/projects/smith-mice&folder=arena0")
        assert mine.status_code == 200 and len(mine.json()["images"]) == 2


def test_a_forged_header_from_an_untrusted_address_is_ignored(facility):
    _, base = facility
    status, projects, jobs = seen(base, STAFF, local_address="127.0.0.2")
    assert (status, projects, jobs) == (401, [], [])
    with httpx.Client(base_url=base, headers={"Host": "localhost", **STAFF},
                      transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as forger:
        assert forger.get("/api/image?path=smith/projects/smith-mice/labeled-data/arena0/img0000.png").status_code == 401
        assert forger.get("/healthz").status_code == 200


def test_an_account_in_no_mapped_group_sees_nothing(facility):
    _, base = facility
    stranger = {"X-Forwarded-User": "mallory", "X-Forwarded-Groups": "students"}
    assert seen(base, stranger)[0] == 403
    assert seen(base, {"X-Forwarded-Groups": "smith-lab"})[0] == 401  # the proxy named no user
    assert seen(base, {"X-Forwarded-Email": "visitor@uni.example"}) == (200, [], [])  # mapped to shared/videos only


@needs_browser
def test_two_labs_in_the_browser_each_see_their_own(browser, facility):
    _, base = facility
    for lab, headers in (("smith", SMITH), ("jones", JONES)):
        other = "jones" if lab == "smith" else "smith"
        with browser_page(browser, base, token=None, extra_http_headers=headers) as page:
            page.goto(f"{base}/#/projects")
            page.wait_for_selector("table.folders")
            text = page.inner_text("body")
            assert f"{lab}/projects/{lab}-mice" in text and other not in text
            page.click("#nav-jobs")
            page.wait_for_selector("table.videos")
            text = page.inner_text("main")
            assert JOBS[lab] in text and JOBS[other] not in text


def test_the_example_access_file_is_one_the_app_reads():
    from tests.deploy.tooling import REPO

    access = ProxyAccess.load(str(REPO / "deploy" / "serve" / "access.example.yaml"))
    assert access.trusts("127.0.0.1") and access.groups["facility-staff"] == ("",)
    with pytest.raises(ValueError, match="relative to the served root"):
        ProxyAccess.from_mapping({"trusted_proxies": ["127.0.0.1"], "groups": {"x": ["../other"]}}, "bad")
    with pytest.raises(ValueError, match="trusted_proxies"):
        ProxyAccess.from_mapping({"groups": {"x": ["lab"]}}, "bad")


def test_job_cards_show_a_lab_only_paths_under_its_own_folders(tmp_path):
    """A smith job whose manifest names smith's, jones's and the server's locations (as a job fed a list
    naming other labs' files would write): smith's card shows its own as paths under the root, nothing of
    the others, and never the server's root."""
    from posecluster.cluster.manifest import ManifestWriter

    root = str(tmp_path)
    job = "20261205-100000-cccccc"
    writer = ManifestWriter(storage.join(root, "smith", "poses"), job)
    inside, other, server = f"{root}/smith/videos/a.mp4", f"{root}/jones/videos/b.mp4", "/srv/private/c.mp4"
    for uri in (inside, other, server):
        writer.add({"uri": uri, "status": "failed", "key": uri, "frames": 0, "error": f"{uri}: unreadable"})
    writer.flush({"job_id": job, "status": "finished", "model": {"uri": f"{root}/jones/models/m"}, "started": 1.7e9,
                  "videos_total": 3, "counts": {"failed": 3}}, force=True)
    options = ServeOptions(access=ProxyAccess.from_mapping(ACCESS, "test access"))
    with running(create_app(root, None, options)) as base, \
            httpx.Client(base_url=base, headers={"Host": "localhost", **SMITH}, timeout=30) as smith:
        listing = smith.get("/api/jobs")
        (card,) = listing.json()["jobs"]
        assert (card["out_path"], card["model"]) == ("smith/poses", "(outside your folders)")
        page = smith.get(f"/api/jobs/videos?out=smith/poses&job={job}")
        rows = page.json()["videos"]
        assert [r["video"] for r in rows] == ["smith/videos/a.mp4", "(outside your folders)", "(outside your folders)"]
        assert rows[0]["error"] == "smith/videos/a.mp4: unreadable"
        for text in (listing.text, page.text):
            assert root not in text and "/srv/private" not in text and "jones" not in text, text


def test_concurrent_labs_never_get_each_others_shared_job_list(facility):
    """/api/jobs is shared per scope: labs asking at the same moment each get their own answer."""
    from concurrent.futures import ThreadPoolExecutor

    _, base = facility
    expected = {"smith": [JOBS["smith"]], "jones": [JOBS["jones"]], "staff": sorted(JOBS.values())}
    accounts = {"smith": SMITH, "jones": JONES, "staff": STAFF}

    def ask(lab: str) -> tuple[str, list[str]]:
        response = httpx.get(f"{base}/api/jobs", headers={"Host": "localhost", **accounts[lab]}, timeout=60)
        return lab, sorted(j["job_id"] for j in response.json()["jobs"])

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, list(accounts) * 20))
    assert all(jobs == expected[lab] for lab, jobs in answers), answers
