"""The web app in a real browser: Playwright drives Debian's headless Chromium against a uvicorn server
on a moto S3 root. The oracle for labels is the saved table read back through posecluster's DeepLabCut
reader, compared with where the test clicked (mapped through the page's zoom and pan).

Screenshots of each page go to $POSECLUSTER_SCREENSHOTS when set (docs/screenshots in the repo)."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster import api
from posecluster.serve import create_app
from tests.serve.conftest import (FRESH, REFINE, TOKEN, browser_page, copy_project, labels_of, needs_browser, running,
                                  screenshot)

pytestmark = needs_browser


@pytest.fixture(scope="module")
def server(site):
    """A real uvicorn server on a free port, in a thread, serving the site's bucket."""
    with running(create_app(site, TOKEN)) as base:
        yield base


@pytest.fixture(scope="module")
def project(site) -> str:
    return copy_project(site, "browser")


@pytest.fixture
def page(browser, server, project):
    with browser_page(browser, server) as page:
        yield page


def wait_saved(page) -> None:
    """Wait for the save to answer; fail with what the page said."""
    page.wait_for_function("() => document.querySelector('canvas').dataset.saved !== undefined")
    assert page.get_attribute("canvas", "data-saved") == "200", page.inner_text("#status")


def open_labeler(page, server, mode: str, project: str, folder: str) -> None:
    page.goto(f"{server}/#/{mode}?project={project}&folder={folder}")
    page.wait_for_selector("canvas[data-loaded]")


def view(page) -> dict:
    return page.evaluate("({zoom: labeler.zoom, ox: labeler.offsetX, oy: labeler.offsetY, image: labeler.image})")


def test_projects_page_lists_the_projects_folders_and_counts(page, server, project):
    page.goto(f"{server}/#/projects")
    page.wait_for_selector("table.folders")
    text = page.inner_text("main")
    assert "projects/browser" in text and "iteration 0" in text and "snout, leftear, rightear, tailbase" in text
    assert page.locator("a", has_text="refine").count() >= 1
    screenshot(page, "projects")


def test_labeling_three_frames_by_clicking_saves_what_was_clicked(page, server, site, project):
    open_labeler(page, server, "label", project, "fresh")
    page.keyboard.press("+")  # zoom in about the centre: clicks must be mapped through zoom and pan
    box = page.locator("canvas").bounding_box()
    expected: dict[str, np.ndarray] = {}
    for frame in range(3):
        state = view(page)
        points = np.full((4, 2), np.nan)
        for part in range(4):
            if frame == 1 and part == 2:
                page.keyboard.press("x")  # not visible
                continue
            target = (25 + 30 * part + 7 * frame, 30 + 15 * part)  # image pixels, inside the 160x120 frame
            sx = round(box["x"] + state["ox"] + (target[0] + 0.5) * state["zoom"])
            sy = round(box["y"] + state["oy"] + (target[1] + 0.5) * state["zoom"])
            page.mouse.click(sx, sy)
            # Where the click landed in image pixels (DLC's convention: pixel centres at integers).
            points[part] = [(sx - box["x"] - state["ox"]) / state["zoom"] - 0.5,
                            (sy - box["y"] - state["oy"]) / state["zoom"] - 0.5]
        expected[state["image"]] = points
        if frame < 2:
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"() => document.querySelector('canvas').dataset.loaded !== {state['image']!r}")
    assert state["zoom"] > 1.25 * min(box["width"] / 160, box["height"] / 120) - 1e-6
    screenshot(page, "label")
    page.keyboard.press("Control+s")
    wait_saved(page)

    images, keypoints = labels_of(f"{site}/{project}", FRESH)
    assert sorted(expected) == images
    for image, points in expected.items():
        saved = keypoints[images.index(image)]
        assert np.array_equal(np.isnan(saved), np.isnan(points)), (image, saved)
        assert np.nanmax(np.abs(saved - points)) < 0.5, (image, saved, points)

    page.reload()
    page.wait_for_selector("canvas[data-loaded]")
    shown = page.evaluate("labeler.labels")
    for image, points in expected.items():
        got = np.array([[np.nan, np.nan] if p is None else p for p in shown[image]])
        np.testing.assert_allclose(got, points, atol=0.01)
    assert "not visible" not in page.inner_text("#parts")  # frame 1 (all four placed) is shown again
    page.keyboard.press("ArrowRight")
    # The part list is redrawn when the frame's image has loaded, not when the frame number changes.
    page.wait_for_function("() => labeler.frame === 1 && document.querySelector('canvas').dataset.loaded === labeler.image")
    assert page.inner_text("#coords-2") == "not visible"


def test_refining_an_outlier_frame_by_dragging_gives_merge_a_correction(page, server, site):
    project = copy_project(site, "browser-refine")
    open_labeler(page, server, "refine", project, "trial7")
    state = view(page)
    labels = page.evaluate("labeler.points")
    assert page.evaluate("labeler.images.length") == 2 and "p=" in page.inner_text("#parts")
    part = next(k for k, p in enumerate(labels) if p is not None)
    box = page.locator("canvas").bounding_box()
    x, y = labels[part]
    sx = box["x"] + state["ox"] + (x + 0.5) * state["zoom"]
    sy = box["y"] + state["oy"] + (y + 0.5) * state["zoom"]
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 10, sy + 5, steps=4)
    page.mouse.move(sx + 20, sy + 10, steps=4)
    page.mouse.up()
    screenshot(page, "refine")
    page.click("#save")
    wait_saved(page)
    images, keypoints = labels_of(f"{site}/{project}", REFINE)
    moved = keypoints[images.index(state["image"])][part]
    np.testing.assert_allclose(moved, [x + 20 / state["zoom"], y + 10 / state["zoom"]], atol=0.5)
    (folder,) = api.merge_labels(f"{site}/{project}").folders
    assert (folder.corrected, folder.accepted) == (1, 1)


def test_jobs_page_shows_a_finished_and_a_failed_video_with_poses_and_trajectory(page, server):
    page.goto(f"{server}/#/jobs")
    page.wait_for_selector("table.videos tr.video-failed")  # the rows come a page at a time, after the summary
    assert "1 done" in page.inner_text("div.job") and "1 failed" in page.inner_text("div.job")
    assert page.locator("tr.video-done").count() == 1 and page.locator("tr.video-failed").count() == 1
    assert "not a readable video" in page.inner_text("tr.video-failed")
    assert "good.mp4" in page.inner_text("tr.video-done")
    page.wait_for_function("() => [...document.querySelectorAll('.preview img')].length === 2 && "
                           "[...document.querySelectorAll('.preview img')].every(i => i.complete && i.naturalWidth > 0)")
    sizes = page.evaluate("[...document.querySelectorAll('.preview img')].map(i => [i.naturalWidth, i.naturalHeight])")
    assert sizes[0] == [96, 80] and sizes[1][0] > 200
    screenshot(page, "jobs")
