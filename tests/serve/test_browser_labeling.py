"""Labeling that respects work, in a real browser (Playwright + Debian's Chromium) on a local root: a
prompt before unsaved labels are lost, two tabs' saves merged frame by frame, a canvas that follows the
window and the screen's resolution, the browser's own shortcuts and focus left alone. The oracle for
labels is the stored table read back through posecluster's DeepLabCut reader, compared with where the
test clicked (mapped through the page's zoom and pan)."""

from __future__ import annotations

import numpy as np
import pytest

from posecluster.serve import create_app
from tests.serve.conftest import TOKEN, browser_page, labels_of, needs_browser, labeling_root, running, screenshot

pytestmark = needs_browser
FOLDERS = ("merge", "prompt", "resize", "keys")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    """lab/demo with one folder of three unlabeled 96x80 frames per test (tests never share labels)."""
    return labeling_root(tmp_path_factory.mktemp("labeling-root"), FOLDERS)


@pytest.fixture(scope="module")
def server(root):
    with running(create_app(root, TOKEN)) as base:
        yield base


def open_folder(page, server: str, folder: str) -> None:
    page.goto(f"{server}/#/label?project=lab/demo&folder={folder}")
    page.wait_for_selector("canvas[data-loaded]")


def click_at(page, x: float, y: float) -> list[float]:
    """Click where image pixel (x, y) is drawn; returns where the click landed in image pixels."""
    box = page.locator("canvas").bounding_box()
    state = page.evaluate("({zoom: labeler.zoom, ox: labeler.offsetX, oy: labeler.offsetY})")
    sx = round(box["x"] + state["ox"] + (x + 0.5) * state["zoom"])
    sy = round(box["y"] + state["oy"] + (y + 0.5) * state["zoom"])
    page.mouse.click(sx, sy)
    return [(sx - box["x"] - state["ox"]) / state["zoom"] - 0.5, (sy - box["y"] - state["oy"]) / state["zoom"] - 0.5]


def go_to_frame(page, index: int) -> None:
    while page.evaluate("labeler.frame") != index:
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('canvas').dataset.loaded === labeler.image")


def save(page) -> str:
    page.evaluate("delete document.querySelector('canvas').dataset.saved")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => document.querySelector('canvas').dataset.saved !== undefined")
    return page.get_attribute("canvas", "data-saved")


def stored(root: str, folder: str) -> dict[str, np.ndarray]:
    images, keypoints = labels_of(f"{root}/lab/demo", f"labeled-data/{folder}")
    return dict(zip(images, keypoints))


def test_leaving_with_unsaved_labels_asks_first(browser, server):
    with browser_page(browser, server) as page:
        open_folder(page, server, "prompt")
        click_at(page, 20, 30)
        assert page.evaluate("labeler.dirty.size") == 1
        dialogs = []
        page.once("dialog", lambda d: (dialogs.append((d.type, d.message)), d.dismiss()))
        page.click("#nav-jobs")
        page.wait_for_timeout(300)
        assert dialogs and dialogs[0][0] == "confirm" and "not saved" in dialogs[0][1]
        assert "#/label" in page.url and page.locator("canvas").count() == 1 and page.evaluate("labeler.dirty.size") == 1

        page.once("dialog", lambda d: (dialogs.append((d.type, d.message)), d.dismiss()))
        page.close(run_before_unload=True)  # closing the tab (or reloading) asks too
        page.wait_for_timeout(500)
        assert dialogs[-1][0] == "beforeunload" and not page.is_closed()

        page.once("dialog", lambda d: d.accept())
        page.click("#nav-jobs")
        page.wait_for_function("() => document.body.dataset.page === '/jobs'")


def test_two_tabs_editing_different_frames_both_keep_their_labels(browser, server, root):
    with browser_page(browser, server) as first, browser_page(browser, server) as second:
        open_folder(first, server, "merge")
        open_folder(second, server, "merge")
        mine = click_at(first, 20, 30)
        assert save(first) == "200"
        go_to_frame(second, 1)
        theirs = click_at(second, 60, 40)
        assert save(second) == "200", second.inner_text("#status")  # merged: no conflict, different frames
        table = stored(root, "merge")
        np.testing.assert_allclose(table["labeled-data/merge/img0.png"][0], mine, atol=0.01)
        np.testing.assert_allclose(table["labeled-data/merge/img1.png"][0], theirs, atol=0.01)
        assert second.evaluate("labeler.labels['labeled-data/merge/img0.png'][0]") == pytest.approx(mine, abs=0.01)

        # The same frame changed in both tabs: the second save shows both and lets the person choose.
        go_to_frame(first, 2)
        go_to_frame(second, 2)
        click_at(first, 10, 10)
        assert save(first) == "200"
        chosen = click_at(second, 80, 70)
        assert save(second) == "409"
        conflict = second.locator(".conflict[data-image='labeled-data/merge/img2.png']")
        assert conflict.count() == 1 and "changed by someone else" in conflict.inner_text()
        screenshot(second, "conflict")
        conflict.locator("button.keep-mine").click()
        second.wait_for_function("() => document.querySelector('canvas').dataset.saved === '200'")
        np.testing.assert_allclose(stored(root, "merge")["labeled-data/merge/img2.png"][0], chosen, atol=0.01)
        np.testing.assert_allclose(stored(root, "merge")["labeled-data/merge/img0.png"][0], mine, atol=0.01)


def test_the_canvas_follows_the_window_and_draws_at_the_screens_resolution(browser, server, root):
    with browser_page(browser, server, device_scale_factor=2) as page:
        open_folder(page, server, "resize")
        wide = page.evaluate("[canvas.clientWidth, canvas.width]")
        assert wide[1] == 2 * wide[0]  # a backing store at devicePixelRatio: sharp markers on HiDPI
        page.set_viewport_size({"width": 560, "height": 460})
        page.wait_for_function(f"() => canvas.clientWidth < {wide[0]}")
        for selector in ("#save", "#parts", "canvas"):
            box = page.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 560 + 0.5, (selector, box)
        canvas, parts = page.locator("canvas").bounding_box(), page.locator("#parts").bounding_box()
        assert canvas["x"] + canvas["width"] <= parts["x"]  # side by side, nothing hidden under the canvas
        assert page.evaluate("canvas.width") == 2 * page.evaluate("canvas.clientWidth")
        clicked = click_at(page, 70, 20)
        page.locator("#save").click()
        page.wait_for_function("() => document.querySelector('canvas').dataset.saved === '200'")
        np.testing.assert_allclose(stored(root, "resize")["labeled-data/resize/img0.png"][0], clicked, atol=0.01)


def test_browser_shortcuts_and_focus_stay_the_browsers(browser, server):
    with browser_page(browser, server) as page:
        open_folder(page, server, "keys")
        page.evaluate("""window.__keys = []; window.addEventListener("keydown",
            (e) => window.__keys.push([e.key, e.ctrlKey, e.defaultPrevented]))""")
        page.locator("canvas").focus()
        for key in ("Control+x", "Control+0", "Control+=", "Control+-"):
            page.keyboard.press(key)
        assert [k for k in page.evaluate("window.__keys") if k[2]] == []  # none taken from the browser
        assert page.evaluate("labeler.points") == [None, None, None, None] and page.evaluate("labeler.part") == 0
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement !== canvas")  # focus leaves the canvas
        page.locator("canvas").focus()
        page.keyboard.press("x")  # the labeler's own key still works
        assert page.evaluate("labeler.part") == 1 and page.evaluate("labeler.dirty.size") == 1


def test_an_unknown_folder_says_so(browser, server):
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/label?project=lab/demo&folder=nope")
        page.wait_for_selector("#page-error, canvas")
        assert not page.locator("canvas").count()
        assert "no folder labeled-data/nope" in page.inner_text("#page-error")
