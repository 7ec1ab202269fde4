"""posecluster's whole-video speed against DeepLabCut's measured in the same session: a shared machine's
speed changes from day to day (a bare ResNet-50 ran 0.86 images/s the day DeepLabCut's quoted 1.09 frames/s
was measured, 2.3-2.6 later), so a ratio means something only between figures taken back to back.

Reads what the three runs of same_session_vs_dlc.sh saved (DeepLabCut before, posecluster's whole video,
DeepLabCut after), prints the ratios and saves them with the runs' own dates beside them:

  bash benchmarks/same_session_vs_dlc.sh   # ~25 minutes; then runs this script
"""

from __future__ import annotations

import argparse
import json

from _common import RESULTS, save


def load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dlc-before", default="dlc_analyze_speed")
    parser.add_argument("--dlc-after", default="dlc_analyze_speed_after")
    parser.add_argument("--posecluster", default="inference_whole_video_default_vs_fp32")
    parser.add_argument("--name", default="same_session_vs_dlc")
    args = parser.parse_args()
    before, after, ours = load(args.dlc_before), load(args.dlc_after), load(args.posecluster)
    dlc = [run["analyze_videos_fps"]["batch_1"] for run in (before, after)]
    dlc_mean = sum(dlc) / len(dlc)
    figures = {"dates": {"deeplabcut_before": before["machine"]["date"], "posecluster": ours["machine"]["date"],
                         "deeplabcut_after": after["machine"]["date"]},
               "deeplabcut": {"version": before["deeplabcut"], "analyze_videos_fps_batch_1": dlc,
                              "frames": before["frames"],
                              "bare_resnet50_images_per_s": [run["bare_torchvision_resnet50_batch8_images_per_s"]
                                                             for run in (before, after)]},
               "posecluster": {}}
    print(f"DeepLabCut {before['deeplabcut']} analyze_videos, batch 1 (its fastest here), first {before['frames']} "
          f"frames: {dlc[0]:.2f} before, {dlc[1]:.2f} after (mean {dlc_mean:.2f} frames/s)")
    for label, row in ours["whole_video"].items():
        entry = {"frames": row["frames"], "default_fps": row["default_fps"], "fp32_fps": row["fp32_fps"],
                 "path_that_ran": row["default_path_that_ran"], "default_vs_fp32": row["default_vs_fp32"],
                 "default_over_deeplabcut": row["default_fps"] / dlc_mean,
                 "fp32_over_deeplabcut": row["fp32_fps"] / dlc_mean}
        figures["posecluster"][label] = entry
        print(f"{label}: default {row['default_fps']:.2f} frames/s = {entry['default_over_deeplabcut']:.2f}x "
              f"DeepLabCut's; fp32 {row['fp32_fps']:.2f} = {entry['fp32_over_deeplabcut']:.2f}x")
    save(args.name, figures)


if __name__ == "__main__":
    main()
