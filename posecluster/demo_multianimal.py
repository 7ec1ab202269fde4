"""The multi-animal demo (`posecluster demo --animals 3`): a rendered maDLC project of N look-alike animals
that cross, touch and leave the frame, a small bottom-up model trained from scratch on this machine's CPU,
and its evaluation after matching predicted to labeled animals.

Then the rendered video (animals crossing; its ground truth known) is analysed as `posecluster analyze`
does it (detect, assemble, track, stitch into the individuals), and the tracks are scored against the
truth: identity switches per 1,000 frames, IDF1, MOTA (tracking.metrics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from posecluster import storage
from posecluster.config import PoseclusterConfig
from posecluster.data.project import read_project
from posecluster.data.formats import madlc
from posecluster.data.synthetic_multianimal import MultiAnimalScene, RenderedAnimals, write_project
from posecluster.infer.ensemble import load_predictor
from posecluster.infer.multianimal_analyze import analyze_animals_video
from posecluster.tracking.metrics import tracking_scores
from posecluster.train.evaluate import evaluate, pixels
from posecluster.train.loop import train


@dataclass
class MultiAnimalDemoReport:
    project_uri: str
    run_uri: str
    animals: int
    train_seconds: float
    train_images_per_second: float
    train_error_px: float
    test_error_px: float
    test_error_pcutoff_px: float
    per_bodypart_test_px: dict[str, float]
    matched: dict[str, dict[str, int]]
    body_length_px: float
    test_map: float = float("nan")  # OKS mAP, 0..1
    tracking: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        test = self.matched.get("test", {})
        out = [
            f"project (rendered):   {self.project_uri} ({self.animals} animals, crossing, one leaves the frame)",
            f"model:                {self.run_uri}",
            f"training:             {self.train_seconds:.0f} s, {self.train_images_per_second:.1f} images/s",
            f"error after matching: train {pixels(self.train_error_px, 'n/a')}, test {pixels(self.test_error_px, 'n/a')}"
            f" (test with p-cutoff: {pixels(self.test_error_pcutoff_px, 'n/a')}; an animal is "
            f"{self.body_length_px:.0f} px long)",
            f"test animals found:   {test.get('matched', 0)} of {test.get('labeled', 0)} labeled "
            f"({test.get('predicted', 0)} assembled); test mAP (OKS) {100 * self.test_map:.1f}%",
            "test error per part:  " + ", ".join(f"{part} {pixels(value, 'n/a')}"
                                                  for part, value in self.per_bodypart_test_px.items()),
        ]
        return out + self.tracking


def multianimal_demo_config(base: PoseclusterConfig, epochs: int = 50) -> PoseclusterConfig:
    """A small from-scratch ResNet-18 on the whole small rendered frames."""
    return base.with_overrides({
        "model": {"backbone": {"name": "resnet18", "weights": "none"}, "global_scale": 1.0},
        "augment": {"crop_size": None, "scale_range": [0.9, 1.1]},
        "train": {"epochs": epochs, "batch_size": 8, "checkpoint_every_epochs": 10,
                  "optimizer": {"schedule": [{"from_fraction": 0.0, "lr": 2e-3},
                                             {"from_fraction": 0.8, "lr": 4e-4}]}},
        "split": {"training_fraction": 0.8},
    })


def track_rendered_video(run_uri: str, video: RenderedAnimals, out: str, body_length_px: float,
                         progress: bool = True) -> list[str]:
    """Analyse the rendered video with the trained model and score its tracks against the truth (an animal
    corresponds to a true one within half a body length)."""
    result = analyze_animals_video(load_predictor(run_uri), video.uri, storage.join(out, "poses"), progress=progress)
    tracks = madlc.read_tracks(result.outputs["h5"])
    scores = tracking_scores(tracks.poses, video.truth.poses, threshold_px=0.5 * body_length_px)
    return [f"tracked video:        {scores.frames} frames at {result.fps:.1f} frames/s: "
            f"{scores.id_switches_per_1000_frames:.1f} identity switches per 1,000 frames, IDF1 {scores.idf1:.3f}, "
            f"MOTA {scores.mota:.3f}",
            f"tracks:               {result.outputs['h5']}"]


def run_multianimal_demo(out: str, animals: int = 3, labeled_frames: int = 48, epochs: int = 50,
                         video_frames: int = 150, progress: bool = True, seed: int = 0,
                         scene: MultiAnimalScene | None = None) -> MultiAnimalDemoReport:
    out = out.rstrip("/")
    project_uri, run_uri = storage.join(out, "project"), storage.join(out, "model")
    scene = scene or MultiAnimalScene(animals=animals, seed=seed)
    rendered = write_project(project_uri, labeled_frames=labeled_frames, scene=scene, video_frames=video_frames)
    project = read_project(project_uri)
    config = multianimal_demo_config(PoseclusterConfig(project=project.config, project_uri=project_uri), epochs)
    config = config.with_overrides({"train": {"progress": progress}})
    trained = train(config, project.labels, run_uri)
    evaluation = evaluate(run_uri, project.labels)
    body_length = scene.body_length * min(scene.width, scene.height)
    return MultiAnimalDemoReport(
        project_uri=project_uri, run_uri=run_uri, animals=scene.animals, train_seconds=trained.seconds,
        train_images_per_second=trained.images_per_second, train_error_px=evaluation.train_error_px,
        test_error_px=evaluation.test_error_px, test_error_pcutoff_px=evaluation.test_error_pcutoff_px,
        per_bodypart_test_px={part: errors["test"] for part, errors in evaluation.per_bodypart.items()},
        matched=evaluation.animals, test_map=evaluation.assembly["test"]["map"], body_length_px=body_length,
        tracking=track_rendered_video(run_uri, rendered.videos[0], out, body_length, progress))
