"""plot writes DLC's four PNGs per analysed video, to a folder or to S3."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from posecluster import storage
from posecluster.cli.main import main
from posecluster.viz.plots import PLOTS


def test_the_four_plots_are_written_per_video(analysed_video, storage_root, capsys):
    video, poses = analysed_video
    assert main(["plot", poses, "--out", storage_root]) == 0
    video_folder = video.uri.rsplit("/", 1)[0].lstrip("/")  # the video's own folder, mirrored under --out
    for name in PLOTS:
        uri = storage.join(storage_root, "plot-poses", video_folder, "trial7", name)
        with Image.open(io.BytesIO(storage.read_bytes(uri))) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
            assert len(np.unique(np.asarray(image.convert("L")))) > 20  # something was drawn


def test_a_missing_analysis_record_is_reported_by_name(tmp_path, capsys):
    missing = str(tmp_path / "nothing_meta.json")
    assert main(["plot", missing, "--out", str(tmp_path / "plots")]) == 2
    assert missing in capsys.readouterr().err
