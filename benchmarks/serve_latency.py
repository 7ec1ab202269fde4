"""The web app on a 1,000-frame labeled-data folder (64x48 PNGs), in headless Chromium (Playwright) against
a real uvicorn server, on a local folder and on an S3 bucket (moto on loopback):

  page load       opening the Label page until the first frame is drawn (GET /api/labels: list the folder,
                  read the table, hash it; then the first image)
  next frame      a key press until the next frame is drawn (one cached-header image GET)
  click -> saved  a click on the canvas, Ctrl+S, until the server answered that CollectedData .h5 + .csv of
                  1,000 rows are written (through posecluster.data.formats.dlc)

Medians of several repetitions, measured in one run; the machine is shared, so compare the two storages
with the ratio rather than the absolute figures.  Usage: ../.venv/bin/python serve_latency.py [--frames 1000]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import save  # noqa: E402

from posecluster import storage  # noqa: E402
from posecluster.config import ProjectConfig  # noqa: E402
from posecluster.data.formats import dlc  # noqa: E402
from posecluster.labeling.project_frames import add_frames  # noqa: E402
from posecluster.serve import create_app  # noqa: E402

TOKEN = "benchmark-token"
PARTS = ["snout", "leftear", "rightear", "tailbase"]


def make_project(root: str, frames: int) -> None:
    project = ProjectConfig(task="bench", scorer="bench", date="Jan1", bodyparts=PARTS)
    dlc.write_project_config(storage.join(root, "config.yaml"), project)
    rng = np.random.default_rng(0)
    images = {f"labeled-data/v/img{i:04d}.png": rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for i in range(frames)}
    add_frames(root, project, "labeled-data/v", images)


def start_server(root: str):
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(root, TOKEN), access_log=False, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def measure(browser, base: str, repeats: int) -> dict:
    context = browser.new_context(viewport={"width": 1100, "height": 640})
    page = context.new_page()
    page.goto(f"{base}/?token={TOKEN}")
    loads, steps, saves = [], [], []
    for _ in range(repeats):
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(f"{base}/#/label?project=proj&folder=v")
        page.wait_for_selector("canvas[data-loaded]")
        loads.append(time.perf_counter() - started)
        for _ in range(3):
            before = page.get_attribute("canvas", "data-loaded")
            started = time.perf_counter()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(f"() => document.querySelector('canvas').dataset.loaded !== {before!r}")
            steps.append(time.perf_counter() - started)
        box = page.locator("canvas").bounding_box()
        page.evaluate("delete document.querySelector('canvas').dataset.saved")
        started = time.perf_counter()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.keyboard.press("Control+s")
        page.wait_for_selector("canvas[data-saved='200']")
        saves.append(time.perf_counter() - started)
    context.close()
    median = lambda values: round(statistics.median(values) * 1000, 1)  # noqa: E731
    return {"page_load_ms": median(loads), "next_frame_ms": median(steps), "click_to_saved_ms": median(saves),
            "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chromium", default=os.environ.get("POSECLUSTER_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer
    from playwright.sync_api import sync_playwright

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
    results = {"frames": args.frames, "frame_size": "64x48 PNG"}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"], headless=True)
        for name, root in (("local", tmp), ("s3_moto", f"s3://{bucket}")):
            started = time.perf_counter()
            make_project(storage.join(root, "proj"), args.frames)
            print(f"{name}: wrote {args.frames} frames + table in {time.perf_counter() - started:.1f} s")
            server, base = start_server(root)
            results[name] = measure(browser, base, args.repeats)
            server.should_exit = True
            print(f"{name}: {results[name]}")
        browser.close()
    moto.stop()
    for key in ("page_load_ms", "next_frame_ms", "click_to_saved_ms"):
        results[f"{key}_s3_over_local"] = round(results["s3_moto"][key] / results["local"][key], 2)
    print({k: v for k, v in results.items() if k.endswith("over_local")})
    save("serve_latency", results)


if __name__ == "__main__":
    main()
