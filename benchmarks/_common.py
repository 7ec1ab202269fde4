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
