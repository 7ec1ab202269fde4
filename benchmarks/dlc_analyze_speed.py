"""DeepLabCut 3.0.2's own `analyze_videos` timed on this machine now, so that posecluster's speed is compared
with DeepLabCut's measured in the same session (a shared machine's speed changes from day to day: a bare
torchvision ResNet-50 ran 0.86 images/s on 2026-11-23, when DeepLabCut's 1.09 frames/s was measured, and
2.32 on 2026-12-05).

Runs in a DeepLabCut venv (not posecluster's): it copies the openfield project to a scratch folder, creates
shuffle 1 (PyTorch engine, resnet_50), writes a snapshot of randomly initialised weights (analysis speed does
not depend on the weights, and ImageNet weights cannot be downloaded here; DeepLabCut's train_network always
fetches them), cuts the first --frames frames of m3v1mp4.mp4 into a clip and times analyze_videos on it at
each --batch-sizes, with a bare torchvision ResNet-50 forward beside it as the machine's speed that day.

  /work/dlc-venv/bin/python benchmarks/dlc_analyze_speed.py --frames 300 --batch-sizes 1
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2  # noqa: E402  (DeepLabCut reads videos with OpenCV)
import torch  # noqa: E402
import torchvision  # noqa: E402
import yaml  # noqa: E402

from _common import require_openfield, save  # noqa: E402


def clip(source: str, dest: str, frames: int) -> int:
    reader = cv2.VideoCapture(source)
    fps = reader.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    written = 0
    while written < frames:
        ok, image = reader.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(dest, cv2.VideoWriter_fourcc(*"mp4v"), fps, (image.shape[1], image.shape[0]))
        writer.write(image)
        written += 1
    writer.release()
    return written


def bare_resnet50(seconds: float = 20.0) -> float:
    model = torchvision.models.resnet50().eval()
    batch = torch.rand(8, 3, 480, 640)
    with torch.inference_mode():
        model(batch)
        began, images = time.perf_counter(), 0
        while time.perf_counter() - began < seconds:
            model(batch)
            images += 8
    return images / (time.perf_counter() - began)


def main() -> None:
    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.models.model import PoseModel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    parser.add_argument("--name", default="dlc_analyze_speed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = shutil.copytree(require_openfield(), f"{scratch}/openfield")
        config = f"{project}/config.yaml"
        with open(config) as f:
            settings = yaml.safe_load(f)
        settings["project_path"] = project
        with open(config, "w") as f:
            yaml.safe_dump(settings, f)
        deeplabcut.create_training_dataset(config, Shuffles=[1], net_type="resnet_50", engine=deeplabcut.Engine.PYTORCH)
        (train,) = glob.glob(f"{project}/dlc-models-pytorch/iteration-0/*shuffle1/train")
        with open(f"{train}/pytorch_config.yaml") as f:
            model_cfg = yaml.safe_load(f)["model"]
        torch.manual_seed(0)
        model = PoseModel.build(model_cfg, pretrained_backbone=False)
        torch.save({"model": model.state_dict(), "metadata": {"epoch": 1}}, f"{train}/snapshot-001.pt")
        video = f"{scratch}/clip.mp4"
        frames = clip(f"{project}/videos/m3v1mp4.mp4", video, args.frames)
        figures = {"deeplabcut": deeplabcut.__version__, "frames": frames, "video": "m3v1mp4.mp4 (640x480), first frames",
                   "bare_torchvision_resnet50_batch8_images_per_s": bare_resnet50(), "analyze_videos_fps": {}}
        for size in args.batch_sizes:
            began = time.perf_counter()
            deeplabcut.analyze_videos(config, [video], shuffle=1, batch_size=size, destfolder=f"{scratch}/out-{size}")
            figures["analyze_videos_fps"][f"batch_{size}"] = frames / (time.perf_counter() - began)
            print(f"DeepLabCut {deeplabcut.__version__} analyze_videos, batch {size}, {frames} frames: "
                  f"{figures['analyze_videos_fps'][f'batch_{size}']:.2f} frames/s (model loading included)", flush=True)
        print(f"bare torchvision ResNet-50 forward, batch 8, 480x640: "
              f"{figures['bare_torchvision_resnet50_batch8_images_per_s']:.2f} images/s", flush=True)
    save(args.name, figures)


if __name__ == "__main__":
    main()
