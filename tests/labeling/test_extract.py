"""extract-frames into DeepLabCut projects, locally and on S3, one video or an archive on Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from posecluster import storage
from posecluster.cli.main import main
from posecluster.config import ProjectConfig
from posecluster.data import synthetic
from posecluster.data.formats import dlc
from posecluster.data.images import image_size, read_image
from posecluster.errors import InputError
from posecluster.labeling.extract import ExtractOptions, extract_video
from posecluster.labeling.project_frames import folder_labels

BODYPARTS = ["snout", "leftear", "rightear", "tailbase"]


def empty_project(uri: str) -> str:
    config = ProjectConfig(task="lab", scorer="Ann", date="Nov24", bodyparts=BODYPARTS)
    dlc.write_project_config(storage.join(uri, "config.yaml"), config)
    return uri


def test_an_archive_on_s3_is_extracted_in_parallel_and_a_broken_video_fails_alone(ray_local, s3_bucket, tmp_path, capsys):
    project = empty_project(f"{s3_bucket}/projects/lab")
    for name, seed in (("cage1/mouseA.mp4", 1), ("cage2/mouseB.mp4", 2)):
        local = str(tmp_path / name.replace("/", "_"))
        synthetic.render_video(local, synthetic.Scene(width=96, height=80, seed=seed), 120, gop=20)
        storage.atomic_upload(local, f"{s3_bucket}/videos/{name}")
    storage.atomic_write_bytes(f"{s3_bucket}/videos/cage3/broken.mp4", b"\x00\x00\x00\x18ftypmp42 not a video")

    code = main(["extract-frames", f"{s3_bucket}/videos/", "--project", project, "--n", "6"])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out and "broken.mp4" in out
    for stem in ("mouseA", "mouseB"):
        table = dlc.read_table(f"{project}/labeled-data/{stem}/CollectedData_Ann.h5")
        assert table.columns.names == ["scorer", "bodyparts", "coords"] and len(table) == 6
        assert table.isna().all().all()  # empty: waiting for a labeler
        images = [str(i) for i in table.index]
        assert all(i.startswith(f"labeled-data/{stem}/img") and len(i.rsplit("img", 1)[1]) == len("000.png")
                   for i in images), images  # DLC's zero padding: 120 frames -> 3 digits
        assert image_size(f"{project}/{images[0]}") == (96, 80)
    config = yaml.safe_load(storage.read_bytes(f"{project}/config.yaml"))
    assert set(config["video_sets"]) == {f"{s3_bucket}/videos/cage1/mouseA.mp4", f"{s3_bucket}/videos/cage2/mouseB.mp4"}
    assert config["video_sets"][f"{s3_bucket}/videos/cage1/mouseA.mp4"] == {"crop": "0, 96, 0, 80"}
    assert config["Task"] == "lab" and config["bodyparts"] == BODYPARTS  # the rest of the file untouched


def test_openfield_frames_are_extracted_as_full_resolution_pngs(openfield_video, tmp_path):
    project = empty_project(str(tmp_path / "project"))
    result = extract_video(openfield_video, project, ExtractOptions(method="kmeans", n=4, start=0.0, stop=0.25))
    assert len(result.indices) == 4 and max(result.indices) < 2330 // 4 + 1
    for image in result.new_images:
        assert image.startswith("labeled-data/m3v1mp4/img") and len(image.rsplit("img", 1)[1]) == len("0000.png")
        assert read_image(f"{project}/{image}").shape == (480, 640, 3)


def test_rerunning_keeps_labels_already_made(synthetic_project, tmp_path):
    project = empty_project(str(tmp_path / "p"))
    video = synthetic_project.videos[0].uri
    first = extract_video(video, project, ExtractOptions(method="uniform", n=4))
    config = dlc.read_project_config(f"{project}/config.yaml")
    labels = folder_labels(project, config, first.folder)
    labels.keypoints[0] = [[10, 11], [12, 13], [14, 15], [16, 17]]  # a labeler's work
    dlc.write_tables(labels, project)
    second = extract_video(video, project, ExtractOptions(method="uniform", n=8))
    after = folder_labels(project, config, first.folder)
    row = after.images.index(labels.images[0])
    np.testing.assert_array_equal(after.keypoints[row], labels.keypoints[0])
    assert len(after) == len(set(first.indices) | set(second.indices))


def test_two_videos_with_one_name_cannot_share_a_folder(synthetic_project, tmp_path):
    project = empty_project(str(tmp_path / "p"))
    extract_video(synthetic_project.videos[0].uri, project, ExtractOptions(method="uniform", n=2))
    other = str(tmp_path / "elsewhere" / "arena0.mp4")
    synthetic.render_video(other, synthetic.Scene(width=96, height=80, seed=9), 20)
    with pytest.raises(InputError, match="already holds frames of .*arena0.mp4"):
        extract_video(other, project, ExtractOptions(method="uniform", n=2))
    assert isinstance(pd.read_hdf(f"{project}/labeled-data/arena0/CollectedData_Ann.h5"), pd.DataFrame)


def test_concurrent_claims_of_one_folder_have_exactly_one_winner(storage_root):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from posecluster.labeling.project_frames import claim_folder

    videos = [f"s3://lab/day{i}/mouse.mp4" for i in range(6)]
    start = Barrier(len(videos))

    def claim(video: str) -> str:
        start.wait()  # every claimant reaches the check at the same moment
        try:
            claim_folder(storage_root, "labeled-data/mouse", video)
            return "won"
        except InputError:
            return "refused"

    with ThreadPoolExecutor(len(videos)) as pool:
        outcomes = list(pool.map(claim, videos))
    assert outcomes.count("won") == 1


def test_same_named_videos_extracted_in_parallel_lose_no_rows(ray_local, tmp_path):
    from posecluster import api

    project = empty_project(str(tmp_path / "p"))
    for day, seed in (("day1", 4), ("day2", 5)):
        synthetic.render_video(str(tmp_path / "videos" / day / "mouse.mp4"), synthetic.Scene(width=96, height=80, seed=seed), 30)
    outcomes = api.extract_frames([str(tmp_path / "videos")], project, ExtractOptions(method="uniform", n=4))
    won = [o for o in outcomes if not o.error]
    lost = [o for o in outcomes if o.error]
    assert len(won) == 1 and len(lost) == 1 and "already holds frames of" in lost[0].error
    table = dlc.read_table(f"{project}/labeled-data/mouse/CollectedData_Ann.h5")
    assert sorted(str(i) for i in table.index) == sorted(won[0].outputs["new_images"])
    owner = storage.read_bytes(f"{project}/labeled-data/mouse/posecluster-source.json").decode()
    assert won[0].source in owner
