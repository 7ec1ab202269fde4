#!/usr/bin/env bash
# DeepLabCut's analyze_videos, posecluster's whole openfield video (default vs fp32, global_scale 1.0), then
# DeepLabCut again, back to back on a quiet machine; same_session_vs_dlc.py prints and saves the ratios.
#   DLC_PYTHON=/path/to/deeplabcut-venv/bin/python MODEL=/path/to/trained-run bash benchmarks/same_session_vs_dlc.sh
set -euo pipefail
cd "$(dirname "$0")"
: "${DLC_PYTHON:?set DLC_PYTHON to a python with DeepLabCut 3.0.2 installed}"
: "${MODEL:?set MODEL to a trained ResNet-50 run folder (posecluster train)}"
PYTHON=${PYTHON:-python}
uptime
"$DLC_PYTHON" dlc_analyze_speed.py --frames 300 --batch-sizes 1 --name dlc_analyze_speed
uptime
"$PYTHON" inference_speed.py --model "$MODEL" --whole-video --scales 1.0 --name inference_whole_video_default_vs_fp32
uptime
"$DLC_PYTHON" dlc_analyze_speed.py --frames 300 --batch-sizes 1 --name dlc_analyze_speed_after
uptime
"$PYTHON" same_session_vs_dlc.py
