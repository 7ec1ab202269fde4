"""The labeler's comforts (napari-deeplabcut's, for people who label for hours), in a real browser
(Playwright + Debian's Chromium) on a local root: loop mode, next unlabeled frame, the frame list, names
and skeleton, marker size, brightness/contrast, undo and redo, the browser's draft, Space/Enter, a click
near a point, a 600 px window. Oracles: the stored table read back through posecluster's DeepLabCut
reader, and the canvas's own pixels. One page for the module (each test has its own folder)."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from posecluster.data.formats import dlc
from posecluster.serve import create_app
from tests.serve.conftest import TOKEN, browser_page, labels_of, needs_browser, labeling_root, running, screenshot, small_project

pytestmark = needs_browser
FOLDERS = ("loop", "unlabeled", "list", "drawing", "size", "light", "undo", "draft", "keys", "near", "narrow")
PROJECT = "lab/demo"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    """lab/demo (synthetic: four parts, a skeleton of four bones) with three unlabeled 96x80 frames per test."""
    return labeling_root(tmp_path_factory.mktemp("comforts-root"), FOLDERS)


@pytest.fixture(scope="module")
def page(browser, root):
    with running(create_app(root, TOKEN)) as base, browser_page(browser, base) as page:
        page.on("dialog", lambda dialog: dialog.accept())  # leaving a folder with a draft is fine here
        page.base = base
        yield page


def open_folder(page, folder: str) -> None:
    page.evaluate("localStorage.removeItem('posecluster-view')")  # every test starts from the default view
    page.goto(f"{page.base}/#/label?project={PROJECT}&folder={folder}")
    page.wait_for_function(f"() => window.labeler && labeler.data.folder === 'labeled-data/{folder}'")
    loaded(page)


def loaded(page) -> None:
    page.wait_for_function("() => { const c = document.querySelector('canvas'); "
                           "return c && window.labeler && c.dataset.loaded === labeler.image; }")


def screen_of(page, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y) is drawn, in page coordinates."""
    box = page.locator("canvas").bounding_box()
    sx, sy = page.evaluate(f"labeler.toScreen({x}, {y})")
    return box["x"] + sx, box["y"] + sy


def click_at(page, x: float, y: float) -> list[float]:
    """Click where image pixel (x, y) is drawn; returns where the click landed in image pixels."""
    sx, sy = (round(v) for v in screen_of(page, x, y))
    box = page.locator("canvas").bounding_box()
    landed = page.evaluate(f"labeler.toImage({sx - box['x']}, {sy - box['y']})")
    page.mouse.click(sx, sy)
    return landed


def save(page) -> None:
    page.evaluate("delete document.querySelector('canvas').dataset.saved")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => document.querySelector('canvas').dataset.saved !== undefined")
    assert page.get_attribute("canvas", "data-saved") == "200", page.inner_text("#status")


def stored(root: str, folder: str) -> dict[str, np.ndarray]:
    images, keypoints = labels_of(f"{root}/{PROJECT}", f"labeled-data/{folder}")
    return dict(zip(images, keypoints))


def image(folder: str, i: int) -> str:
    return f"labeled-data/{folder}/img{i}.png"


def pixels(page, x: float, y: float, w: int = 1, h: int = 1, dx: float = 0, dy: float = 0) -> np.ndarray:
    """RGB of the canvas from image pixel (x, y) moved by (dx, dy) CSS pixels: a w x h block (device pixels)."""
    block = page.evaluate(f"""(() => {{
        const [x0, y0] = labeler.toScreen({x}, {y}), d = labeler.dpr, sx = x0 + {dx}, sy = y0 + {dy};
        const data = labeler.ctx.getImageData(Math.round(sx * d), Math.round(sy * d), {w}, {h}).data;
        return Array.from(data); }})()""")
    return np.array(block, float).reshape(h, w, 4)[..., :3]


def part_rgb(k: int, n: int = 4) -> np.ndarray:
    hue = 270 - 270 * k / (n - 1)
    return np.array(colorsys.hls_to_rgb(hue / 360, 0.55, 0.9)) * 255


def test_loop_mode_goes_to_the_next_frame_after_the_last_part(page, root):
    open_folder(page, "loop")
    page.locator("#loop").check()
    first = [click_at(page, 15 + 20 * k, 20 + 10 * k) for k in range(4)]
    page.wait_for_function("() => labeler.frame === 1 && labeler.part === 0")
    loaded(page)
    second = click_at(page, 50, 50)
    assert page.evaluate("labeler.frame") == 1 and page.evaluate("labeler.part") == 1
    save(page)
    table = stored(root, "loop")
    np.testing.assert_allclose(table[image("loop", 0)], first, atol=0.01)
    np.testing.assert_allclose(table[image("loop", 1)][0], second, atol=0.01)
    assert np.isnan(table[image("loop", 1)][1:]).all() and np.isnan(table[image("loop", 2)]).all()


def test_next_unlabeled_frame_skips_frames_with_labels_stored_or_new(page, root):
    open_folder(page, "unlabeled")
    page.keyboard.press("ArrowRight")
    loaded(page)
    on_1 = click_at(page, 30, 30)
    save(page)
    page.reload()  # frame 1's labels now come from the stored table
    loaded(page)
    assert page.evaluate("labeler.frame") == 0
    page.keyboard.press("u")
    page.wait_for_function("() => labeler.frame === 2")  # frame 1 is skipped
    loaded(page)
    on_2 = click_at(page, 40, 40)
    page.locator("#next-unlabeled").click()
    page.wait_for_function("() => labeler.frame === 0")  # wraps round
    loaded(page)
    on_0 = click_at(page, 50, 50)
    page.keyboard.press("u")
    assert page.evaluate("labeler.frame") == 0 and "every frame has labels" in page.inner_text("#status")
    save(page)
    table = stored(root, "unlabeled")
    for i, point in enumerate([on_0, on_1, on_2]):
        np.testing.assert_allclose(table[image("unlabeled", i)][0], point, atol=0.01)


def frame_states(page) -> list[list[str]]:
    return page.evaluate("[...document.querySelectorAll('#frames li')].map(li => [li.dataset.state, li.className])")


def test_the_frame_list_shows_labeled_and_unsaved_frames_and_goes_to_a_frame(page, root):
    open_folder(page, "list")
    assert [s for s, _ in frame_states(page)] == ["unlabeled"] * 3
    on_0 = click_at(page, 20, 20)
    states = frame_states(page)
    assert states[0][0] == "labeled" and "unsaved" in states[0][1] and [s for s, _ in states[1:]] == ["unlabeled"] * 2
    assert page.inner_text("#frames li >> nth=0").endswith("1/4 \u2022")
    page.locator("#frames li >> nth=2").click()
    page.wait_for_function("() => labeler.frame === 2")
    loaded(page)
    on_2 = click_at(page, 60, 30)
    save(page)
    states = frame_states(page)
    assert [s for s, _ in states] == ["labeled", "unlabeled", "labeled"] and not any("unsaved" in c for _, c in states)
    table = stored(root, "list")
    assert [not np.isnan(table[image("list", i)]).all() for i in range(3)] == [True, False, True]
    np.testing.assert_allclose(table[image("list", 0)][0], on_0, atol=0.01)
    np.testing.assert_allclose(table[image("list", 2)][0], on_2, atol=0.01)


def test_part_names_and_the_projects_skeleton_are_drawn_on_the_canvas(page, root):
    open_folder(page, "drawing")
    config = dlc.read_project_config(f"{root}/{PROJECT}/config.yaml")
    assert page.evaluate("labeler.data.skeleton") == [list(pair) for pair in config.skeleton] and config.skeleton
    assert list(config.skeleton[0]) == ["snout", "leftear"]
    click_at(page, 10, 60)  # snout
    click_at(page, 80, 60)  # leftear: one bone, snout-leftear, along y = 60
    page.locator("#view-brightness").fill("0.3")  # a dark picture: the light line and the names stand out
    middle = pixels(page, 45, 60, 1, 3)
    names = pixels(page, 10, 60, 30, 12, dx=7, dy=-17)  # right of and above the snout (marker radius 5): its name
    page.locator("#show-skeleton").uncheck()
    page.locator("#show-names").uncheck()
    without = pixels(page, 45, 60, 1, 3), pixels(page, 10, 60, 30, 12, dx=7, dy=-17)
    assert middle.max(axis=0).sum() > without[0].max(axis=0).sum() + 300  # a light line where there was none
    assert (np.abs(names - without[1]).sum(axis=2) > 60).sum() >= 20  # the letters of "snout"
    page.locator("#show-skeleton").check()
    np.testing.assert_allclose(pixels(page, 45, 60, 1, 3), middle)


def test_marker_size_sets_the_drawn_markers_and_is_kept(page):
    open_folder(page, "size")
    click_at(page, 48, 40)
    page.locator("#show-names").uncheck()
    zoom = page.evaluate("labeler.zoom")
    off = 10 / zoom  # 10 CSS pixels right of the point's centre
    page.locator("#view-markerSize").fill("14")
    assert np.abs(pixels(page, 48 + off, 40) - part_rgb(0)).max() < 12
    page.locator("#view-markerSize").fill("3")
    assert np.abs(pixels(page, 48 + off, 40) - part_rgb(0)).max() > 40
    assert np.abs(pixels(page, 48, 40) - part_rgb(0)).max() < 12
    page.locator("#view-markerSize").fill("14")
    page.reload()
    loaded(page)
    assert page.evaluate("labeler.view.markerSize") == 14 and page.input_value("#view-markerSize") == "14"


def picture_stats(page) -> np.ndarray:
    """[mean, standard deviation] of the canvas's pixels over the drawn picture (every 3rd pixel)."""
    return np.array(page.evaluate("""(() => {
        const d = labeler.dpr, [x0, y0] = labeler.toScreen(-0.5, -0.5), [x1, y1] = labeler.toScreen(95.5, 79.5);
        const w = Math.floor((x1 - x0) * d) - 2, h = Math.floor((y1 - y0) * d) - 2;
        const data = labeler.ctx.getImageData(Math.ceil(x0 * d) + 1, Math.ceil(y0 * d) + 1, w, h).data;
        let sum = 0, squares = 0, n = 0;
        for (let i = 0; i < data.length; i += 12) {
            for (let c = 0; c < 3; c++) { sum += data[i + c]; squares += data[i + c] ** 2; n++; }
        }
        const mean = sum / n; return [mean, Math.sqrt(squares / n - mean * mean)]; })()"""))


def test_brightness_and_contrast_change_the_picture_not_the_markers(page):
    open_folder(page, "light")
    click_at(page, 48, 40)
    page.locator("#show-names").uncheck()
    plain, marker = picture_stats(page), pixels(page, 48, 40)
    page.locator("#view-brightness").fill("0.5")
    darker = picture_stats(page)
    assert darker[0] < plain[0] * 0.6, (darker, plain)
    np.testing.assert_allclose(pixels(page, 48, 40), marker, atol=2)
    page.locator("#view-brightness").fill("1")
    page.locator("#view-contrast").fill("3")
    assert picture_stats(page)[1] > plain[1] * 1.5
    page.locator("#view-contrast").fill("0.2")
    assert picture_stats(page)[1] < plain[1] * 0.5
    np.testing.assert_allclose(pixels(page, 48, 40), marker, atol=2)
    page.locator("#view-reset").click()
    np.testing.assert_allclose(picture_stats(page), plain, atol=0.5)


def test_undo_and_redo_give_back_each_edit_and_a_new_edit_ends_redo(page, root):
    open_folder(page, "undo")
    placed = [click_at(page, 15 + 25 * k, 30) for k in range(3)]
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    assert page.evaluate("labeler.points")[1:] == [None, None, None]
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate("labeler.points")[1] == pytest.approx(placed[1], abs=0.01)
    page.locator("#redo").click()
    assert page.evaluate("labeler.points")[2] == pytest.approx(placed[2], abs=0.01)
    page.keyboard.press("Control+z")
    assert page.evaluate("labeler.points")[2] is None and page.evaluate("labeler.part") == 2
    other = click_at(page, 70, 60)  # a new edit: what was undone cannot come back over it
    page.keyboard.press("Control+y")
    assert "nothing to redo" in page.inner_text("#status")
    save(page)
    saved = stored(root, "undo")[image("undo", 0)]
    np.testing.assert_allclose(saved[:3], [placed[0], placed[1], other], atol=0.01)
    assert np.isnan(saved[3]).all()


def test_a_draft_is_kept_in_the_browser_restored_on_reload_and_cleared_by_saving(page, root):
    open_folder(page, "draft")
    key = f"posecluster-draft|token|{PROJECT}|labeled-data/draft"  # per account: the token's caller is "token"
    assert page.evaluate("labeler.draft.key") == key
    placed = [click_at(page, 20, 20), click_at(page, 60, 50)]
    assert page.evaluate(f"localStorage.getItem({key!r})") is not None
    page.reload()  # the leave prompt is accepted: the labels are still only in this browser
    loaded(page)
    assert np.isnan(stored(root, "draft")[image("draft", 0)]).all()
    assert page.evaluate("labeler.dirty.size") == 1 and "restored unsaved labels of 1 frame" in page.inner_text("#status")
    np.testing.assert_allclose(page.evaluate("labeler.points")[:2], placed, atol=0.01)
    save(page)
    np.testing.assert_allclose(stored(root, "draft")[image("draft", 0)][:2], placed, atol=0.01)
    assert page.evaluate(f"localStorage.getItem({key!r})") is None
    page.reload()
    loaded(page)
    assert page.evaluate("labeler.dirty.size") == 0 and "restored" not in page.inner_text("#status")


def test_space_and_enter_never_press_the_last_clicked_control_again(page):
    open_folder(page, "keys")
    page.locator("#next").click()
    loaded(page)
    page.keyboard.press("Enter")
    page.keyboard.press(" ")
    assert page.evaluate("labeler.frame") == 1
    page.locator("#occluded").click()
    page.keyboard.press("Enter")
    page.keyboard.press(" ")
    assert page.evaluate("[labeler.part, labeler.history.length]") == [1, 1]
    page.locator("#loop").click()
    page.keyboard.press(" ")
    assert page.locator("#loop").is_checked()
    page.locator("#undo").click()
    page.keyboard.press("Enter")
    assert page.evaluate("labeler.redoable.length") == 1
    assert page.evaluate("document.activeElement === canvas") and page.evaluate("window.scrollY") == 0
    page.keyboard.press("ArrowRight")  # the labeler's keys work again at once
    assert page.evaluate("labeler.frame") == 2


def test_a_click_near_a_point_places_the_current_part_and_alt_drag_moves_that_point(page, root):
    open_folder(page, "near")
    snout = click_at(page, 40, 40)
    zoom = page.evaluate("labeler.zoom")
    near = click_at(page, 40 + 3 / zoom, 40 + 2 / zoom)  # 3.6 screen pixels away: inside its marker
    points = page.evaluate("labeler.points")
    assert points[0] == pytest.approx(snout, abs=0.01) and points[1] == pytest.approx(near, abs=0.01)
    assert page.evaluate("labeler.part") == 2
    sx, sy = screen_of(page, *near)
    tx, ty = screen_of(page, 70, 55)
    page.keyboard.down("Alt")
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(tx, ty, steps=4)
    page.mouse.up()
    page.keyboard.up("Alt")
    points = page.evaluate("labeler.points")
    assert points[0] == pytest.approx(snout, abs=0.01) and points[1] == pytest.approx([70, 55], abs=0.6)
    assert points[2] is None and page.evaluate("labeler.part") == 2  # moving a point does not skip a part
    save(page)
    saved = stored(root, "near")[image("near", 0)]
    np.testing.assert_allclose(saved[:2], [points[0], points[1]], atol=0.01)


def test_labeling_in_a_600_px_window_keeps_every_control_inside_it(page, root):
    page.set_viewport_size({"width": 600, "height": 560})
    try:
        open_folder(page, "narrow")
        assert page.evaluate("document.documentElement.scrollWidth") <= 600
        controls = page.locator("aside button, aside input, aside label, #parts li, #frames, canvas, header a")
        for k in range(controls.count()):
            box = controls.nth(k).bounding_box()
            shown = controls.nth(k).evaluate("e => e.outerHTML.slice(0, 80)")
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 600 + 0.5, (shown, box)
        canvas, aside = page.locator("canvas").bounding_box(), page.locator("aside").bounding_box()
        assert canvas["x"] + canvas["width"] <= aside["x"] and canvas["width"] >= 300
        placed = click_at(page, 30, 40)
        click_at(page, 60, 40)
        screenshot(page, "label-narrow")
        page.locator("#save").click()
        page.wait_for_function("() => document.querySelector('canvas').dataset.saved === '200'")
        np.testing.assert_allclose(stored(root, "narrow")[image("narrow", 0)][0], placed, atol=0.01)
    finally:
        page.set_viewport_size({"width": 1100, "height": 640})


def test_the_labeler_gets_the_skeleton_pairs_that_name_known_parts(tmp_path):
    """config.yaml is stored content: a pair naming a part the project lacks, or not a pair, is left out."""
    from starlette.testclient import TestClient

    from tests.serve.conftest import LOCAL

    project = small_project(str(tmp_path / "lab" / "odd"), frames=1)
    dlc.update_project_config(f"{project}/config.yaml", {"skeleton": [["snout", "tailbase"], ["snout", "wing"],
                                                                      ["snout", "leftear", "rightear"], ["leftear", "rightear"]]})
    with TestClient(create_app(str(tmp_path), TOKEN), base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as client:
        answer = client.get("/api/labels?project=lab/odd&folder=arena0")
    assert answer.status_code == 200, answer.text
    assert answer.json()["skeleton"] == [["snout", "tailbase"], ["leftear", "rightear"]]
