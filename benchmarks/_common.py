"""Helpers shared by the benchmark scripts: where the shared data is, and how results are recorded."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OPENFIELD = ROOT.parent / "shared" / "data" / "openfield"
RESULTS = ROOT / "benchmarks" / "results"


def require_openfield() -> str:
    if not (OPENFIELD / "config.yaml").exists():
        sys.exit(f"benchmark needs DeepLabCut's openfield example at {OPENFIELD} (../shared beside the checkout)")
    return str(OPENFIELD)


def random_multianimal_model(run_uri: str, scene, global_scale: float = 0.5, peak_threshold: float = 0.1,
                             min_affinity: float = -1.0, seed: int = 0) -> dict:
    """`<run_uri>/model.pt`: a multi-animal ResNet-18 with random weights (speed and memory do not depend on
    them) for the project of a rendered scene (data.synthetic_multianimal), its PAF graph the skeleton's, as
    training saves it. `peak_threshold` (MultiAnimalParams.peaks) and `min_affinity` (.assembly): what a
    peak and a link need; a random network's fields are near 0, so its links pass only below DLC's 0.05
    (the default here, -1, takes any link: 1-3 animals a frame from noise peaks, which jump frame to frame).
    Returns what the model is."""
    from posecluster.config import PoseclusterConfig
    from posecluster.data.synthetic_multianimal import project_config
    from posecluster.model.assembly import AssemblyParams
    from posecluster.model.multi_peaks import PeakParams
    from posecluster.model.multianimal_artifact import save_multianimal_model, spec_of
    from posecluster.model.multianimal_model import MultiAnimalParams, MultiAnimalPoseModel
    from posecluster.model.paf_graph import skeleton_graph

    project = project_config(scene)
    config = PoseclusterConfig(project=project).with_overrides(
        {"model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": global_scale}})
    graph = skeleton_graph(project.skeleton, project.bodyparts)
    torch.manual_seed(seed)
    state = MultiAnimalPoseModel(config.model, spec_of(config, graph)).state_dict()
    save_multianimal_model(run_uri, config, graph, state, MultiAnimalParams(
        peaks=PeakParams(threshold=peak_threshold), assembly=AssemblyParams(min_affinity=min_affinity)))
    return {"backbone": f"resnet18 (random init, seed {seed})", "global_scale": global_scale,
            "individuals": len(project.individuals), "bodyparts": list(project.bodyparts),
            "unique_bodyparts": list(project.unique_bodyparts), "graph": graph, "peak_threshold": peak_threshold,
            "min_affinity": min_affinity}


def machine() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=1, default=float) + "\n")
    print(f"saved {path}")
    return path
