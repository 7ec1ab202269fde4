"""Ray actors and tasks: one SegmentWorker per GPU (or CPU slot) holding the model; probing as tasks."""

from __future__ import annotations

import time

import ray
import torch

from posecluster import metrics
from posecluster.cluster.sharding import Segment, load_probe, save_probe
from posecluster.data.video import VideoInfo, probe
from posecluster.infer.ensemble import load_predictor
from posecluster.infer.segments import SegmentResult, predict_segment, write_segment


@ray.remote
def probe_video(video_uri: str, probe_uri: str) -> VideoInfo:
    """Demux one video (no decoding) and cache the result beside the job's other state."""
    info = probe(video_uri)
    save_probe(probe_uri, info)
    return info


@ray.remote
class SegmentWorker:
    """Loads the model once, then predicts segments streamed straight from storage."""

    def __init__(self, model_uri: str, infer_overrides: dict, threads: int):
        torch.set_num_threads(max(1, threads))
        metrics.use(metrics.RayExporter())  # scraped from this node's metrics endpoint
        # A run or an ensemble folder (then K members on each decoded batch).
        self.predictor = load_predictor(model_uri, infer_overrides)
        self._probes: dict[str, VideoInfo] = {}

    def ready(self) -> str:
        return self.predictor.trained.identity

    def run(self, segment: Segment, probe_uri: str, output_uri: str) -> SegmentResult:
        info = self._probes.get(segment.video_key)
        if info is None:
            info = load_probe(probe_uri, segment.video_uri)
            self._probes = {segment.video_key: info}  # segments of one video tend to come together
        poses, result = predict_segment(self.predictor, info, segment.start, segment.stop)
        written = time.perf_counter()
        write_segment(output_uri, poses, result)
        exporter = metrics.current()
        exporter.observe(metrics.WRITE_TIME, time.perf_counter() - written)
        exporter.set(metrics.FPS, result.fps)
        if self.predictor.device.type == "cuda":
            exporter.set(metrics.ACCELERATOR_MEMORY, torch.cuda.memory_allocated(self.predictor.device))
        return result
