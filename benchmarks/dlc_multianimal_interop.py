"""DeepLabCut 3.0.2 reads posecluster's multi-animal files: labels and a tracked pose table.

Part 1 (posecluster's venv) renders a 3-animal maDLC project (config.yaml, labeled-data with
CollectedData_synthetic .h5/.csv, a video) and writes the video's ground truth as a tracked pose table
named as DeepLabCut names an ellipse-tracked one (`<video>DLC_<model>_el.h5`).
Part 2 runs in a separate venv holding deeplabcut==3.0.2 (pandas 2.3) and calls DeepLabCut's own functions
on those files: check_labels, create_multianimaltraining_dataset (then its PyTorch data loader on the
result), load_analyzed_data and create_labeled_video, checking what each returns or writes against the
rendered truth. The result is saved as results/dlc_multianimal_interop.json.

    ../.venv/bin/python dlc_multianimal_interop.py --dlc-python /work/dlc-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODEL = "resnet50_syntheticJan1shuffle1_snapshot_000"  # the DLC scorer is "DLC_" + this
VIDEO = "arena0"


def write_files(root: str) -> dict:
    """Part 1: posecluster writes the project and the tracked table; returns what part 2 should find."""
    import numpy as np

    from posecluster.data import synthetic_multianimal as sm
    from posecluster.data.formats import madlc
    from posecluster.data.formats.dlc_metadata import metadata_uri, video_metadata, write_video_metadata

    project = sm.write_project(root, labeled_frames=20, video_frames=60, video_name=VIDEO)
    truth = project.videos[0].truth
    truth.scorer = f"DLC_{MODEL}"
    tracked = f"{root}/videos/{VIDEO}DLC_{MODEL}_el.h5"
    madlc.write_tracks(truth, tracked)
    madlc.write_tracks(truth, tracked.replace(".h5", ".csv"))
    scene = sm.MultiAnimalScene()
    write_video_metadata(metadata_uri(tracked), video_metadata(
        truth.scorer, 30, scene.width, scene.height, len(truth), truth.individuals, truth.bodyparts,
        truth.unique_bodyparts))
    return {
        "config": f"{root}/config.yaml",
        "video": project.videos[0].uri,
        "tracked": tracked,
        "labeled_images": len(project.labels),
        "individuals": project.config.individuals,
        "bodyparts": project.config.bodyparts,
        "unique_bodyparts": project.config.unique_bodyparts,
        "labels_sum": float(np.nansum(project.labels.keypoints)),
        "labeled_points": int((~np.isnan(project.labels.keypoints[..., 0])).sum()),
        # one annotation per animal present in an image, plus one for the image's unique body parts
        "annotations": int(project.labels.animals_present().sum()) + len(project.labels),
        "frames": len(truth),
        "animal_frames_present": int(truth.animals_present().sum()),
    }


def dlc_side(files: dict) -> dict:
    """Part 2, in DeepLabCut's venv: no posecluster import here."""
    import warnings

    import cv2
    import numpy as np
    import pandas as pd

    warnings.filterwarnings("ignore")
    import deeplabcut
    from deeplabcut.utils import auxiliaryfunctions

    config = files["config"]
    root = Path(config).parent
    out: dict = {"deeplabcut": deeplabcut.__version__, "pandas": pd.__version__}

    def step(name, fn):
        try:
            out[name] = {"ok": True, **fn()}
        except Exception as exc:  # a failing DLC call is the finding: record it, go on with the others
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:800]}

    def check_labels():
        deeplabcut.check_labels(config, visualizeindividuals=True)
        drawn = sorted((root / "labeled-data" / f"{VIDEO}_labeled").glob("*.png"))
        return {"drawn_images": len(drawn), "expected": files["labeled_images"],
                "all_drawn": len(drawn) == files["labeled_images"]}

    def training_dataset():
        deeplabcut.create_multianimaltraining_dataset(config, num_shuffles=1, net_type="resnet_50",
                                                      userfeedback=False)
        merged = sorted((root / "training-datasets").rglob("CollectedData_synthetic.h5"))
        frame = pd.read_hdf(merged[0])
        individuals = frame.columns.get_level_values("individuals").unique().tolist()
        multi = frame.drop(columns="single", level="individuals")
        values = multi.to_numpy(dtype=float)
        # DLC reads images through the folder names in its row index: they must be the project's.
        from deeplabcut.pose_estimation_pytorch.data import DLCLoader

        loader = DLCLoader(config, shuffle=1, trainset_index=0)
        data = {mode: loader.load_data(mode) for mode in ("train", "test")}
        annotations = sum(len(d["annotations"]) for d in data.values())
        images = sum(len(d["images"]) for d in data.values())
        return {
            "merged_table": str(merged[0].relative_to(root)),
            "header_levels": list(frame.columns.names),
            "individuals": individuals,
            "rows": len(frame),
            "labels_sum_matches": bool(abs(np.nansum(values) - files["labels_sum"]) < 0.01 * values.size),
            "labeled_points": int((~np.isnan(values[:, ::2])).sum()),
            "expected_labeled_points": files["labeled_points"],
            "loader_images": images,
            "loader_annotations": annotations,
            "expected_annotations": files["annotations"],
        }

    def load_analyzed():
        df, path, scorer, _ = auxiliaryfunctions.load_analyzed_data(str(root / "videos"), VIDEO, f"DLC_{MODEL}",
                                                                    track_method="ellipse")
        ours = pd.read_csv(files["tracked"].replace(".h5", ".csv"), header=[0, 1, 2, 3], index_col=0)
        present = 0
        for animal in files["individuals"]:
            present += int(df.xs(animal, axis=1, level="individuals").notna().any(axis=1).sum())
        return {
            "file": Path(path).name,
            "scorer": scorer,
            "shape": list(df.shape),
            "individuals": df.columns.get_level_values("individuals").unique().tolist(),
            "coords": df.columns.get_level_values("coords").unique().tolist(),
            "values_equal_the_csv": bool(np.allclose(df.to_numpy(), ours.to_numpy(), equal_nan=True)),
            "animal_frames_present": present,
            "expected_animal_frames_present": files["animal_frames_present"],
        }

    def labeled_video():
        deeplabcut.create_labeled_video(config, [files["video"]], video_extensions=".mp4", track_method="ellipse",
                                        init_weights=f"/nowhere/{MODEL}.pt", color_by="individual",
                                        draw_skeleton=True, plot_bboxes=False)
        made = sorted((root / "videos").glob(f"{VIDEO}DLC_{MODEL}*labeled*.mp4"))
        capture = cv2.VideoCapture(str(made[0]))
        frames = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(image)
        capture.release()
        # DLC draws each individual in its own colour: pixels that differ from the source video show it drew.
        source = cv2.VideoCapture(files["video"])
        changed = 0
        for image in frames:
            ok, plain = source.read()
            changed += bool(ok and np.abs(image.astype(int) - plain.astype(int)).max() > 100)
        source.release()
        return {"video": made[0].name, "frames": len(frames), "expected_frames": files["frames"],
                "frames_with_drawn_markers": changed}

    step("check_labels", check_labels)
    step("create_multianimaltraining_dataset", training_dataset)
    step("load_analyzed_data", load_analyzed)
    step("create_labeled_video", labeled_video)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dlc-python", default="/work/dlc-venv/bin/python",
                        help="a Python whose environment has deeplabcut==3.0.2")
    parser.add_argument("--dlc-side", help=argparse.SUPPRESS)  # part 2, run by part 1 in DLC's venv
    args = parser.parse_args()
    if args.dlc_side:
        print(json.dumps(dlc_side(json.loads(Path(args.dlc_side).read_text()))))
        return

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent)]  # this checkout's posecluster, whichever venv runs it
    from _common import machine, save

    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(f"{tmp}/synthetic-ma")
        request = Path(tmp) / "files.json"
        request.write_text(json.dumps(files))
        run = subprocess.run([args.dlc_python, __file__, "--dlc-side", str(request)], capture_output=True,
                             text=True, timeout=1800, env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin",
                                                            "HOME": tmp})
        if run.returncode != 0:
            sys.exit(f"DeepLabCut side failed ({run.returncode}):\n{run.stderr[-4000:]}")
        dlc = json.loads(run.stdout.strip().splitlines()[-1])
    result = {"machine": machine(), "command": "python benchmarks/dlc_multianimal_interop.py",
              "written_by_posecluster": {k: v for k, v in files.items() if k not in ("config", "video", "tracked")},
              "deeplabcut": dlc}
    print(json.dumps(result, indent=2))
    save("dlc_multianimal_interop", result)


if __name__ == "__main__":
    main()
