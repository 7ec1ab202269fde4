"""What a save of a multi-animal folder may contain: names the project has, finite points inside the
image, frames of the folder. Every refusal names the frame and writes nothing (the oracle: the folder's
files on disk)."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from posecluster.serve import create_app
from tests.serve.conftest import ANIMAL_FRESH, LOCAL, TOKEN, animal_project

IMAGE = f"labeled-data/{ANIMAL_FRESH}/img1.png"
URL = f"/api/labels?project=lab/ma&folder={ANIMAL_FRESH}"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("animals-api")
    animal_project(str(root / "lab" / "ma"))
    return root


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(str(root), TOKEN), base_url=LOCAL, headers={"X-Posecluster-Token": TOKEN}) as c:
        yield c


def body(frame, image: str = IMAGE) -> bytes:
    return json.dumps({"version": "", "labels": {image: frame}}).encode()


@pytest.mark.parametrize("raw, message", [
    (body({"animal9": {"nose": [1, 2]}}), "individual 'animal9' is not one of the project's (animal1, animal2, single)"),
    (body({"animal1": {"tail": [1, 2]}}), "individual 'animal1': 'tail' is not one of the project's body parts"),
    (body({"animal1": {"landmark": [1, 2]}}), "'landmark' is not one of the project's body parts"),
    (body({"single": {"nose": [1, 2]}}), "individual 'single': 'nose' is not one of the project's unique body parts"),
    (body({"animal2": {"head": [64, 10]}}), "individual 'animal2', body part 'head': (64, 10) lies outside the 64x48 image"),
    (body({"animal2": {"head": [3, -0.5]}}), "lies outside the 64x48 image"),
    (body({"animal1": {"nose": [1, "a"]}}), "individual 'animal1', body part 'nose': expected [x, y] numbers or null"),
    (body({"animal1": {"nose": [1, 2]}}).replace(b"[1, 2]", b"[NaN, 2]"), "coordinates must be finite"),
    (body([[1, 2], None, None, None]), 'expected {"<individual>": {"<body part>": [x, y] or null}}'),
    (body({"animal1": [[1, 2]]}), "individual 'animal1': expected"),
    (body({"animal1": {"nose": [1, 2]}}, image="labeled-data/arena0/img100000.png"), "is not a frame of"),
])
def test_a_save_naming_what_the_project_lacks_is_refused_with_the_frame_and_nothing_is_written(client, root, raw, message):
    response = client.put(URL, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert message in error and error.startswith("labeled-data/"), error
    assert not list((root / "lab" / "ma" / "labeled-data" / ANIMAL_FRESH).glob("CollectedData_*"))


def test_a_frame_may_leave_out_animals_and_parts_that_are_not_visible(client, root):
    import pandas as pd

    saved = client.put(URL, json={"version": "", "labels": {IMAGE: {"animal2": {"body": [10.5, 20.25]}}}})
    assert saved.status_code == 200, saved.text
    assert saved.json()["labels"][IMAGE]["animal2"] == {"nose": None, "head": None, "body": [10.5, 20.25], "tailbase": None}
    table = pd.read_hdf(root / "lab" / "ma" / "labeled-data" / ANIMAL_FRESH / "CollectedData_synthetic.h5")
    row = table.loc[("labeled-data", ANIMAL_FRESH, "img1.png")]
    body_xy = [row[("synthetic", "animal2", "body", coord)] for coord in ("x", "y")]
    assert row.notna().sum() == 2 and body_xy == [10.5, 20.25]
