"""The web app attacked from a real browser (Playwright + Debian's Chromium), on a local root where a lab
member planted what anyone who can write under the root can plant: symbolic links leading out, and
markup in every stored field a page shows. Oracles: the filesystem outside the root, and a flag that any
payload which ran as script would set (checked with the app's CSP on and, to test the page's own
escaping, with it bypassed)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import numpy as np
import pytest

from posecluster import storage
from posecluster.config import ProjectConfig
from posecluster.labeling.project_frames import add_frames
from posecluster.serve import create_app
from tests.serve.conftest import TOKEN, browser_page, made_up_records, needs_browser, running, small_project, write_job

pytestmark = needs_browser

# Each sets a flag if it ever runs; none contains "/", so each can also be a file or folder name.
PAYLOADS = ['<img src=x onerror="window.__pwned=(window.__pwned||0)+1">',
            "\"><svg onload=window.__pwned=1><b x='",
            "javascript:window.__pwned=1"]
XSS = PAYLOADS[0]


def plant_xss(root: str) -> None:
    """Markup in every stored field: a project's path, task, scorer, body parts, folder and frame names;
    a job's folder (its id), every summary field and every record field; a config that does not parse."""
    project = storage.join(root, f"lab/{XSS}")
    config = ProjectConfig(task=PAYLOADS[1], scorer=XSS, date="Jan1", bodyparts=[XSS, PAYLOADS[2]])
    from posecluster.data.formats import dlc

    dlc.write_project_config(storage.join(project, "config.yaml"), config)
    add_frames(project, config, f"labeled-data/{XSS}", {f"labeled-data/{XSS}/{XSS}.png": np.zeros((40, 48, 3), np.uint8)})
    broken = storage.join(root, "lab/broken")
    storage.atomic_write_bytes(storage.join(broken, "config.yaml"), f"Task: [{XSS}\n".encode())
    storage.atomic_write_bytes(storage.join(broken, "labeled-data/v/img0.png"), b"not a png")

    out = storage.join(root, "lab/poses")
    record = {"uri": XSS, "status": "done", "frames": XSS, "computed": PAYLOADS[1], "error": XSS, "missing": XSS,
              "cuts": [0, 1], "outputs": {XSS: PAYLOADS[2], "h5": storage.join(out, f"{XSS}.h5")}}
    write_job(out, XSS, [record, {**record, "status": PAYLOADS[1]}], pending=0, flushes=1)
    summary = {"job_id": XSS, "status": XSS, "model": {"uri": XSS}, "workers": XSS, "segments_computed": XSS,
               "segments_cached": XSS, "fps": XSS, "seconds": XSS, "first_table_s": XSS, "started": XSS,
               "videos_total": XSS, "counts": {"done": XSS, "failed": PAYLOADS[1]}, "frames_computed": XSS}
    storage.atomic_write_bytes(storage.join(out, ".posecluster/jobs", XSS, "summary.json"), json.dumps(summary).encode())


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser-planted")
    root, outside = base / "root", base / "outside"
    small_project(str(root / "lab" / "demo"))
    (outside / "frames").mkdir(parents=True)
    (outside / "frames" / "img0000.png").write_bytes((root / "lab/demo/labeled-data/arena0/img0000.png").read_bytes())
    (outside / "config.yaml").write_text("Task: SECRET-TASK\nscorer: thief\nbodyparts: [secretpart]\n")
    (root / "lab/demo/labeled-data/linkdir").symlink_to(outside / "frames")
    (root / "lab/linked/labeled-data/v").mkdir(parents=True)
    (root / "lab/linked/labeled-data/v/img0.png").write_bytes((outside / "frames" / "img0000.png").read_bytes())
    (root / "lab/linked/config.yaml").symlink_to(outside / "config.yaml")
    plant_xss(str(root))
    good = ["20261126-100000-aaaaaa", "20261126-120000-cccccc"]
    for job in good:
        write_job(str(root / "jobs" / job[-1]), job, made_up_records(3), pending=0, flushes=1)
    bad = root / "jobs/bad/.posecluster/jobs/20261126-110000-bbbbbb/summary.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"job_id": "x", "counts": [], "seconds": "abc", "fps": {"a": 1}, "videos_total": "many"}))
    return root, outside


@pytest.fixture(scope="module")
def server(planted):
    with running(create_app(str(planted[0]), TOKEN)) as base:
        yield base


def fetch(page, method: str, url: str, body=None) -> dict:
    """A request made by the page itself (its cookie, its origin), as a script on it would."""
    return page.evaluate("""async ([method, url, body]) => {
        const r = await fetch(url, {method, headers: {"Content-Type": "application/json"},
                                    body: body === null ? undefined : JSON.stringify(body)});
        return {status: r.status, body: await r.text()};
    }""", [method, url, body])


def test_a_save_into_a_symlinked_folder_from_the_page_writes_nothing_outside(browser, server, planted):
    _, outside = planted
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/label?project=lab/demo&folder=linkdir")
        page.wait_for_selector("#page-error, canvas[data-loaded]")
        assert not page.locator("canvas").count() and "symbolic link" in page.inner_text("#page-error")
        for folder in ("linkdir", "labeled-data/linkdir"):
            answer = fetch(page, "PUT", f"/api/labels?project=lab/demo&folder={folder}",
                           {"version": "", "labels": {"labeled-data/linkdir/img0000.png": [[1, 1]] * 4}})
            assert answer["status"] == 400, answer
    assert sorted(p.name for p in (outside / "frames").iterdir()) == ["img0000.png"]


def test_a_symlinked_config_shows_as_an_error_not_its_content(browser, server):
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/projects")
        page.wait_for_selector("main h2")
        text = page.inner_text("main")
        assert "lab/linked" in text and "outside the served root" in text
        assert "SECRET" not in text and "secretpart" not in text
        page.goto(f"{server}/#/label?project=lab/linked&folder=v")
        page.wait_for_selector("main .error, canvas")
        assert "SECRET" not in page.inner_text("main")


def test_frames_that_are_not_frames_and_points_outside_the_image_are_refused_from_the_page(browser, server, planted):
    root, _ = planted
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/label?project=lab/demo&folder=arena0")
        page.wait_for_selector("canvas[data-loaded]")
        version = page.evaluate("labeler.version")
        url = "/api/labels?project=lab/demo&folder=arena0"
        for key, point in [("labeled-data/arena0/..", [1, 1]), ("labeled-data/arena0/.", [1, 1]),
                           ("labeled-data/arena0/CollectedData_synthetic.h5", [1, 1]),
                           ("labeled-data/arena0/img0000.png", [-5, 10]), ("labeled-data/arena0/img0000.png", [1e308, 1]),
                           ("labeled-data/arena0/img0000.png", [10, 80])]:
            answer = fetch(page, "PUT", url, {"version": version, "labels": {key: [point, None, None, None]}})
            assert answer["status"] == 422, (key, point, answer)
        assert json.loads(fetch(page, "GET", url)["body"])["version"] == version  # nothing was written
    assert [p.name for p in (root / "lab/demo").rglob("CollectedData_*.h5")] == ["CollectedData_synthetic.h5"]


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "page-escaping-alone"])
def test_no_stored_value_runs_as_script_on_any_page(browser, server, bypass_csp):
    with browser_page(browser, server, bypass_csp=bypass_csp) as page:
        shown = []
        for route, ready in [("#/projects", "table.folders"),
                             ("#/label?" + urlencode({"project": f"lab/{XSS}", "folder": XSS}), "canvas[data-loaded]"),
                             ("#/jobs", "table.videos")]:
            page.goto(f"{server}/{route}")
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            for button in page.locator("button[data-show]").all():
                button.click()
            page.wait_for_load_state("networkidle")
            assert page.evaluate("window.__pwned") is None, route
            shown.append(page.inner_text("body"))
        text = "\n".join(shown)
        for payload in PAYLOADS:
            assert payload in text, payload  # shown as the text it is
        assert page.evaluate("document.querySelectorAll('main img:not(.frame):not([alt=trajectory]), main svg').length") == 0


def test_a_bad_summary_among_good_ones_shows_as_one_broken_row(browser, server):
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/jobs")
        page.wait_for_selector("div.job[data-job='20261126-100000-aaaaaa'] table.videos")
        assert page.locator("div.job[data-job='20261126-120000-cccccc']").count() == 1
        cards = page.locator("div.job").all_inner_texts()
        assert len([c for c in cards if "20261126-" in c]) == 3
