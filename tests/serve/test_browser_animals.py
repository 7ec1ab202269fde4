"""Multi-animal projects in a real browser (Playwright + Debian's Chromium): labeling individuals (choose
the animal, then its parts; copy the previous labeled frame's animals) and watching tracks frame by frame,
and another lab kept out of both. Oracles: the CollectedData files read by pandas alone, compared with
where the test clicked; the tracked table read by pandas, compared with what the page lists and with the
colour of the canvas at each marker. Refining proposed frames: the outliers record, machine labels and
CollectedData read by json and pandas."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from posecluster.cli.main import main
from posecluster.serve import ProxyAccess, ServeOptions, create_app
from tests.serve.conftest import (
    ANIMAL_FRESH, TOKEN, animal_project, browser_page, needs_browser, running, screenshot, write_job,
)

pytestmark = needs_browser
PROJECT = "lab/ma"
SCORER = "synthetic"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("animals-root"))
    animal_project(f"{root}/{PROJECT}")
    return root


@pytest.fixture(scope="module")
def server(root):
    with running(create_app(root, TOKEN)) as base:
        yield base


def click_at(page, x: float, y: float) -> list[float]:
    """Click where image pixel (x, y) is drawn; returns where the click landed in image pixels."""
    box = page.locator("canvas").bounding_box()
    state = page.evaluate("({zoom: labeler.zoom, ox: labeler.offsetX, oy: labeler.offsetY})")
    sx = round(box["x"] + state["ox"] + (x + 0.5) * state["zoom"])
    sy = round(box["y"] + state["oy"] + (y + 0.5) * state["zoom"])
    page.mouse.click(sx, sy)
    return [(sx - box["x"] - state["ox"]) / state["zoom"] - 0.5, (sy - box["y"] - state["oy"]) / state["zoom"] - 0.5]


def canvas_colour(page, sx: float, sy: float) -> list[int]:
    """The RGB the canvas shows at CSS pixel (sx, sy) of its box."""
    return page.evaluate("""([sx, sy]) => { const c = document.querySelector('canvas'), d = window.devicePixelRatio || 1;
        return Array.from(c.getContext('2d').getImageData(Math.floor(sx * d), Math.floor(sy * d), 1, 1).data).slice(0, 3); }""",
                         [sx, sy])


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


def choose(page, individual: str) -> None:
    page.click(f"#animals button[data-individual='{individual}']")


def test_a_person_labels_each_animal_and_copies_them_to_a_later_frame(browser, server, root):
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/label?project={PROJECT}&folder={ANIMAL_FRESH}")
        page.wait_for_selector("canvas[data-loaded]")
        assert page.eval_on_selector_all("#animals button", "bs => bs.map((b) => b.dataset.individual)") == [
            "animal1", "animal2", "single"]
        clicks: dict[tuple[str, str], list[float]] = {}
        choose(page, "animal2")  # the animal first, then its parts in config order
        clicks["animal2", "nose"] = click_at(page, 40, 10)
        clicks["animal2", "head"] = click_at(page, 36, 14)
        clicks["animal2", "body"] = click_at(page, 30, 20)
        choose(page, "animal1")
        clicks["animal1", "nose"] = click_at(page, 10, 30)
        page.keyboard.press("ArrowDown")  # head not visible: the next part
        clicks["animal1", "body"] = click_at(page, 14, 38)
        choose(page, "single")
        clicks["single", "landmark"] = click_at(page, 52, 9)
        assert page.locator("#parts li").count() == 1  # the parts list is the chosen animal's

        # Each animal in its own colour; skeleton lines only within an animal.
        colours = dict(page.eval_on_selector_all("#animals button", "bs => bs.map((b) => [b.dataset.individual, b.dataset.color])"))
        assert len(set(colours.values())) == 3
        state = page.evaluate("({zoom: labeler.zoom, ox: labeler.offsetX, oy: labeler.offsetY})")
        for (animal, _), (x, y) in clicks.items():
            at = [state["ox"] + (x + 0.5) * state["zoom"], state["oy"] + (y + 0.5) * state["zoom"]]
            assert canvas_colour(page, *at) == rgb(colours[animal]), animal
        assert page.evaluate("labeler.bones.every(([a, b]) => labeler.slotGroup[a] === labeler.slotGroup[b])")
        assert page.evaluate("labeler.bones.length") == 2 * 3  # the project's 3 pairs, once per individual

        # Frame 2 (frame 1 stays unlabeled): one placed point, then the animals of frame 0 copied around it.
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => labeler.frame === 2 && document.querySelector('canvas').dataset.loaded === labeler.image")
        choose(page, "animal1")
        own = click_at(page, 20, 33)  # animal1's nose, placed before the copy: the copy leaves it
        page.click("#copy-previous")
        assert "from img0.png" in page.inner_text("#status")
        screenshot(page, "animals-labeling")
        page.keyboard.press("Control+s")
        page.wait_for_function("() => document.querySelector('canvas').dataset.saved !== undefined")
        assert page.get_attribute("canvas", "data-saved") == "200", page.inner_text("#status")

    folder = f"{root}/{PROJECT}/labeled-data/{ANIMAL_FRESH}"
    h5 = pd.read_hdf(f"{folder}/CollectedData_{SCORER}.h5")
    csv = pd.read_csv(f"{folder}/CollectedData_{SCORER}.csv", header=[0, 1, 2, 3], index_col=[0, 1, 2])
    assert list(h5.columns.names) == ["scorer", "individuals", "bodyparts", "coords"]
    assert [c[1:3] for c in h5.columns[::2]] == [(a, p) for a in ("animal1", "animal2") for p in ("nose", "head", "body", "tailbase")] + [
        ("single", "landmark")]
    for table in (h5, csv):
        rows = {index[2]: row for index, row in table.iterrows()}
        assert sorted(rows) == ["img0.png", "img2.png"]  # the unlabeled frame gets no row
        expected = {"img0.png": dict(clicks), "img2.png": {**clicks, ("animal1", "nose"): own}}
        for image, points in expected.items():
            for animal, part in [c[1:3] for c in h5.columns[::2]]:
                got = [rows[image][(SCORER, animal, part, "x")], rows[image][(SCORER, animal, part, "y")]]
                if (animal, part) in points:
                    np.testing.assert_allclose(got, points[animal, part], atol=1e-3, err_msg=f"{image} {animal} {part}")
                else:
                    assert np.isnan(got).all(), (image, animal, part, got)


def listed_points(page) -> dict[tuple[str, str], dict]:
    return {(p["individual"], p["part"]): p for p in page.eval_on_selector_all("#track-points tr.point", "rs => rs.map((r) => ({...r.dataset}))")}


def check_frame(page, table: pd.DataFrame, frame: int, pcutoff: float) -> int:
    """The page's points of `frame` against the table's row; the canvas colour at each drawn marker
    against its individual's legend colour. Returns how many markers were checked on the canvas."""
    page.wait_for_function(f"() => document.querySelector('canvas').dataset.frame === '{frame}'")
    listed = listed_points(page)
    legend = dict(page.eval_on_selector_all("#legend li", "ls => ls.map((l) => [l.dataset.individual, l.dataset.color])"))
    state = page.evaluate("({zoom: tracks.zoom, ox: tracks.offsetX, oy: tracks.offsetY})")
    row = table.loc[frame]
    pairs = list(dict.fromkeys(c[1:3] for c in table.columns))
    assert sorted(listed) == sorted(pairs)
    drawn = []
    for animal, part in pairs:
        x, y, p = (row[(SCORER, animal, part, coord)] for coord in ("x", "y", "likelihood"))
        shown = listed[animal, part]
        if np.isnan(x):
            assert "x" not in shown and shown["drawn"] == "false", (frame, animal, part, shown)
            continue
        assert float(shown["x"]) == pytest.approx(x, abs=1e-9) and float(shown["y"]) == pytest.approx(y, abs=1e-9)
        assert shown["drawn"] == str(bool(p >= pcutoff)).lower(), (frame, animal, part, p)
        if p >= pcutoff:
            drawn.append((animal, state["ox"] + (x + 0.5) * state["zoom"], state["oy"] + (y + 0.5) * state["zoom"]))
    checked = 0
    for animal, sx, sy in drawn:
        if any((a, b) != (sx, sy) and np.hypot(a - sx, b - sy) < 12 for _, a, b in drawn):
            continue  # another marker overlaps this one
        assert canvas_colour(page, sx, sy) == rgb(legend[animal]), (frame, animal, sx, sy)
        checked += 1
    return checked


def test_the_tracks_page_draws_each_individual_where_the_table_puts_it(browser, server, root):
    table_uri = f"{root}/{PROJECT}/videos/arena0{SCORER}_el.h5"
    table = pd.read_hdf(table_uri)  # the oracle: pandas alone
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/projects")
        page.click(f"a[data-table='{PROJECT}/videos/arena0{SCORER}_el.h5']")  # the project lists its tracks
        page.wait_for_selector("canvas[data-frame='0']")
        assert page.eval_on_selector_all("#legend li", "ls => ls.map((l) => l.dataset.individual)") == ["animal1", "animal2", "single"]
        pcutoff = page.evaluate("tracks.pcutoff")
        assert pcutoff == 0.4  # the project's, from the analysis's _meta.json
        assert table.loc[0, (SCORER, "animal2", "tailbase", "likelihood")] < pcutoff  # listed, not drawn
        checked = check_frame(page, table, 0, pcutoff)
        screenshot(page, "animals-tracks")
        page.locator("canvas").focus()
        page.keyboard.press("ArrowRight")
        checked += check_frame(page, table, 1, pcutoff)
        page.keyboard.press("End")
        checked += check_frame(page, table, len(table) - 1, pcutoff)
        assert checked >= 12
        assert page.inner_text("#frame-count").startswith(f"frame {len(table) - 1} ")

        # An archive job's multi-animal output opens the same page from the Jobs page.
        write_job(f"{root}/lab/poses", "20261205-120000-dddddd", [{
            "uri": f"{root}/{PROJECT}/videos/arena0.mp4", "status": "done", "key": "k0", "frames": len(table),
            "cuts": [0, len(table)], "computed": 1, "outputs": {"h5": table_uri}}], pending=0, flushes=1)
        page.click("#nav-jobs")
        page.click("table.videos a:text('tracks')")
        page.wait_for_selector("canvas[data-frame='0']")
        check_frame(page, table, 0, pcutoff)


def test_a_person_refines_a_tracked_videos_proposed_frames_animal_by_animal_and_merge_counts_it(browser, server, root, capsys):
    """`posecluster outliers` on a tracked table proposes frames into the maDLC project; the refine page
    shows the model's points per individual (likelihoods in the chosen animal's parts list, dashed
    markers in its colour), a point the model was unsure of is placed, and merge counts that frame as
    corrected. Oracles: the outliers record, machinelabels and CollectedData read by json and pandas."""
    made = animal_project(f"{root}/lab/ma-refine", seed=2)
    meta = Path(made["table"][:-len(".h5")] + "_meta.json")  # as an analysis writes it: with the model's record
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "model": {"uri": f"{root}/lab/models/m/model.pt"}}))
    assert main(["outliers", made["table"], "--project", f"{root}/lab/ma-refine", "--algorithm", "uncertain",
                 "--p-bound", "1.01", "--n", "6"]) == 0  # every frame: each has likelihoods below 1.01
    folder = Path(root) / "lab" / "ma-refine" / "labeled-data" / "arena0"
    proposed = sorted(json.loads((folder / "outliers-iter0.json").read_text())["frames"])
    assert proposed == [f"labeled-data/arena0/img{i}.png" for i in range(6)]
    machine = pd.read_hdf(folder / "machinelabels-iter0.h5")
    before = pd.read_hdf(folder / f"CollectedData_{SCORER}.h5")
    first = machine.loc[proposed[0]]
    unsure = [first[(SCORER, "animal2", "tailbase", c)] for c in ("x", "y", "likelihood")]
    assert unsure[2] == pytest.approx(0.2) and not np.isnan(unsure[0])  # below the p-cutoff: not proposed
    with browser_page(browser, server) as page:
        page.goto(f"{server}/#/projects")
        page.click("section[data-project='lab/ma-refine'] a:text('refine')")
        page.wait_for_selector("canvas[data-loaded]")
        assert page.evaluate("labeler.images") == proposed
        pcutoff = page.evaluate("labeler.data.pcutoff")
        for individual in ("animal1", "animal2", "single"):
            choose(page, individual)
            shown = page.eval_on_selector_all("#parts li", "ls => ls.map((l) => [l.querySelector('.part-name').textContent, "
                                                            "l.querySelector('.coords').textContent])")
            parts = [c[2] for c in machine.columns if c[1] == individual and c[3] == "x"]
            assert [name for name, _ in shown] == parts
            for name, text in shown:
                x, y, p = (first[(SCORER, individual, name, c)] for c in ("x", "y", "likelihood"))
                label = f"{x:.1f}, {y:.1f}" if p >= pcutoff else "not visible"
                assert text == label + ("" if np.isnan(p) else f" p={p:.2f}"), (individual, name, text)

        # The model's unsure point, drawn dashed in animal2's colour where no label is drawn.
        colour = rgb(page.get_attribute("#animals button[data-individual='animal2']", "data-color"))
        state = page.evaluate("({zoom: labeler.zoom, ox: labeler.offsetX, oy: labeler.offsetY, r: labeler.view.markerSize})")
        cx, cy = (state["ox"] + (unsure[0] + 0.5) * state["zoom"], state["oy"] + (unsure[1] + 0.5) * state["zoom"])
        ring = state["r"] + 4
        pixels = [canvas_colour(page, cx + ring * np.cos(a), cy + ring * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 48)]
        near = sum(np.abs(np.subtract(p, colour)).max() < 60 for p in pixels)
        assert near >= 6, (near, pixels)  # a dashed ring: about half of it drawn

        choose(page, "animal2")
        page.click("#parts li:has-text('tailbase')")
        clicked = click_at(page, unsure[0], unsure[1])
        page.keyboard.press("Control+s")
        page.wait_for_function("() => document.querySelector('canvas').dataset.saved !== undefined")
        assert page.get_attribute("canvas", "data-saved") == "200", page.inner_text("#status")

    after = pd.read_hdf(folder / f"CollectedData_{SCORER}.h5")
    row = ("labeled-data", "arena0", "img0.png")
    placed = [(SCORER, "animal2", "tailbase", c) for c in "xy"]
    np.testing.assert_allclose(after.loc[row, placed].to_numpy(dtype=float), clicked, atol=1e-3)
    expected = before.copy()
    expected.loc[row, placed] = after.loc[row, placed].to_numpy()
    pd.testing.assert_frame_equal(after, expected)  # nothing else changed
    capsys.readouterr()
    assert main(["merge", f"{root}/lab/ma-refine"]) == 0
    assert "labeled-data/arena0: 6 proposed, 1 corrected, 5 accepted as predicted" in capsys.readouterr().out


ACCESS = {"trusted_proxies": ["127.0.0.1/32"], "groups": {"smith-lab": ["smith"], "jones-lab": ["jones"]}}
SMITH = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "smith-lab"}
JONES = {"X-Forwarded-User": "bob", "X-Forwarded-Groups": "jones-lab"}


def test_another_lab_reaches_neither_the_animals_labels_nor_their_tracks(browser, tmp_path):
    """Smith's maDLC project and tracks, tried by jones through every door: the label, image, file and
    tracks routes, a PUT, jones's own tracked table whose _meta.json names smith's video, and the pages."""
    root = str(tmp_path)
    smith = animal_project(f"{root}/smith/ma")
    mine = animal_project(f"{root}/jones/ma", seed=1)
    meta = json.loads(open(mine["table"][:-3] + "_meta.json").read())
    with open(mine["table"][:-3] + "_meta.json", "w") as fh:  # jones's table, pointing at smith's video
        json.dump({**meta, "video": smith["video"]}, fh)
    table = "smith/ma/videos/arena0synthetic_el.h5"
    options = ServeOptions(access=ProxyAccess.from_mapping(ACCESS, "test access"))
    with running(create_app(root, None, options)) as base:
        with httpx.Client(base_url=base, headers={"Host": "localhost", **JONES}, timeout=30) as jones, \
                httpx.Client(base_url=base, headers={"Host": "localhost", **SMITH}, timeout=30) as owner:
            doors = [f"/api/labels?project=smith/ma&folder={ANIMAL_FRESH}", "/api/labels?project=smith/ma&folder=arena0",
                     f"/api/image?path=smith/ma/labeled-data/{ANIMAL_FRESH}/img0.png", f"/api/file?path={table}",
                     "/api/file?path=smith/ma/labeled-data/arena0/CollectedData_synthetic.h5", f"/api/tracks?table={table}",
                     f"/api/tracks/frame?table={table}&frame=0", f"/api/tracks/image?table={table}&frame=0",
                     "/api/tracks/image?table=jones/ma/videos/arena0synthetic_el.h5&frame=0"]
            for url in doors:
                assert owner.get(url.replace("jones/", "smith/")).status_code == 200, url  # the doors exist
                response = jones.get(url)
                assert response.status_code == 400 and "your account may see" in response.json()["error"], (url, response.text)
                assert root not in response.text and "smith/ma/videos/arena0.mp4" not in response.text
            put = jones.put(f"/api/labels?project=smith/ma&folder={ANIMAL_FRESH}", headers={"Origin": "http://localhost"},
                            json={"version": "", "labels": {f"labeled-data/{ANIMAL_FRESH}/img0.png": {"animal1": {"nose": [5, 5]}}}})
            assert put.status_code == 400
            assert not (tmp_path / "smith" / "ma" / "labeled-data" / ANIMAL_FRESH / "CollectedData_synthetic.h5").exists()
            assert [p["path"] for p in jones.get("/api/projects").json()["projects"]] == ["jones/ma"]
            assert jones.get("/api/tracks?table=jones/ma/videos/arena0synthetic_el.h5").status_code == 200
        for hash_ in (f"#/tracks?table={table}", f"#/label?project=smith/ma&folder={ANIMAL_FRESH}"):
            with browser_page(browser, base, token=None, extra_http_headers=JONES) as page:
                page.goto(f"{base}/{hash_}")
                page.wait_for_selector("#page-error")
                assert "your account may see" in page.inner_text("#page-error") and not page.locator("canvas").count()
