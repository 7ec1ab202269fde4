"""The Python entry points; the CLI only parses arguments and calls these."""

from __future__ import annotations

import logging

import yaml

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.infer.analyze import AnalysisResult, analyze_video
from posecluster.infer.predictor import Predictor
from posecluster.train.checkpoint import load_model
from posecluster.train.evaluate import Evaluation, evaluate
from posecluster.train.loop import TrainResult, train

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".m4v", ".webm")


def parse_overrides(pairs: list[str]) -> dict:
    """["train.epochs=5", "model.backbone.name=resnet18"] -> nested dict (values parsed as YAML scalars)."""
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r} must look like section.field=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def resolve_config(project_uri: str, config_uri: str | None = None, overrides: dict | None = None) -> PoseclusterConfig:
    """Defaults (or a posecluster YAML), with the DLC project's own settings and then the overrides."""
    config = PoseclusterConfig.load(config_uri) if config_uri else PoseclusterConfig()
    project = read_project(project_uri, check_images=False).config
    fraction = project.training_fractions[0] if project.training_fractions else config.split.training_fraction
    config = config.model_copy(update={"project": project, "project_uri": project_uri})
    config = config.with_overrides({"split": {"training_fraction": fraction}})
    return config.with_overrides(overrides or {})


def train_project(project_uri: str, run_uri: str, config: PoseclusterConfig) -> TrainResult:
    project = read_project(project_uri)
    return train(config, project.labels, run_uri)


def evaluate_run(run_uri: str, project_uri: str | None = None) -> Evaluation:
    trained = load_model(run_uri)
    project_uri = project_uri or trained.config.project_uri
    if not project_uri:
        raise ValueError(f"{run_uri}: say which project to evaluate on (--project)")
    return evaluate(run_uri, read_project(project_uri).labels)


def expand_videos(inputs: list[str]) -> list[str]:
    """Video URIs from files, folders/prefixes, and manifest files (.txt: one URI per line)."""
    videos: list[str] = []
    for item in inputs:
        if item.endswith(".txt"):
            lines = storage.read_bytes(item).decode().splitlines()
            videos += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        elif item.lower().endswith(VIDEO_SUFFIXES):
            videos.append(item)
        else:
            videos += storage.list_files(item, suffixes=VIDEO_SUFFIXES)
    return list(dict.fromkeys(videos))


def analyze(videos: list[str], model_uri: str, out_folder: str, formats: tuple[str, ...] = (),
            overrides: dict | None = None, progress: bool = True) -> list[AnalysisResult]:
    trained = load_model(model_uri)
    infer = trained.config.infer.model_validate({**trained.config.infer.model_dump(), **(overrides or {})})
    predictor = Predictor(trained, infer)
    results = []
    for video in expand_videos(videos):
        result = analyze_video(predictor, video, out_folder, formats=formats, progress=progress)
        log.info("%s: %d frames at %.1f frames/s -> %s", video, result.frames, result.fps, result.outputs["h5"])
        results.append(result)
    return results
