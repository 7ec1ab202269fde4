"""Evaluation of a multi-animal (maDLC) model on its run's train/test split.

Every labeled image is predicted and assembled into animals (model.multianimal_decode); the scores are
train/multianimal_metrics.py's: predicted animals matched to labeled ones (Hungarian on the mean distance
over the body parts both have), the distance of every labeled part of a matched pair counted overall and
per body part, with and without the p-cutoff, as DeepLabCut reports its multi-animal "RMSE" (a mean
Euclidean error); OKS mAP/mAR and assembly purity beside it. Labeled animals left unmatched do not count
in the error; they show in the matched/labeled counts and in mAR. Unique body parts (one per image) are
compared directly.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to storage, never shown
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from posecluster import storage  # noqa: E402
from posecluster.data.augment import resize_batch  # noqa: E402
from posecluster.data.dataset import load_images  # noqa: E402
from posecluster.data.multianimal import MultiAnimalLabels  # noqa: E402
from posecluster.data.split import Split, indices_of  # noqa: E402
from posecluster.errors import InputError  # noqa: E402
from posecluster.model.artifact import MultiAnimalArtifact, TrainedModel, multianimal_from_trained  # noqa: E402
from posecluster.model.assembly import AnimalPoses  # noqa: E402
from posecluster.model.multianimal_decode import decode_animals  # noqa: E402
from posecluster.train.evaluation import CUTOFF_EMPTY, Evaluation, pixels  # noqa: E402
from posecluster.train.multianimal_metrics import MultiAnimalMetricsConfig, multianimal_scores  # noqa: E402

# Hungarian on mean keypoint distance (the metrics module's other choice is DeepLabCut 3.0's greedy OKS).
MATCHING = "distance"


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


@torch.no_grad()
def predict_animals(artifact: MultiAnimalArtifact, images: list[np.ndarray], batch_size: int = 8) -> list[AnimalPoses]:
    """Images of any sizes -> assembled animals in each image's pixel indices (fp32, CPU)."""
    results: list[AnimalPoses | None] = [None] * len(images)
    by_shape: dict[tuple, list[int]] = {}
    for i, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(i)
    for rows in by_shape.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = torch.from_numpy(np.stack([images[i] for i in chunk])).permute(0, 3, 1, 2).float() / 255.0
            batch, factors = resize_batch(batch, artifact.global_scale)
            animals = decode_animals(artifact.model(batch), artifact.spec, artifact.stride, artifact.locref_stdev,
                                     artifact.params, factors)
            for i, found in zip(chunk, animals):
                results[i] = found
    return results


@dataclass
class MultiAnimalEvaluation(Evaluation):
    """Evaluation's fields (the CLI prints either; per_bodypart holds animal and unique parts), plus the
    animal counts per split."""

    animals: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> labeled/predicted/matched
    # split -> map, mar (0..1, OKS), purity, unassembled_fraction (multianimal_metrics)
    assembly: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        counts = "; ".join(f"{split}: {c['matched']} of {c['labeled']} labeled animals matched, {c['predicted']} "
                           f"predicted, mAP {100 * self.assembly[split]['map']:.1f}%"
                           for split, c in self.animals.items())
        return (
            f"multi-animal error after matching: train {pixels(self.train_error_px, 'no train images')}, "
            f"test {pixels(self.test_error_px, 'no test images')}; "
            f"with p-cutoff {self.pcutoff}: train {pixels(self.train_error_pcutoff_px, CUTOFF_EMPTY)}, "
            f"test {pixels(self.test_error_pcutoff_px, CUTOFF_EMPTY)} "
            f"({self.train_images} train / {self.test_images} test images; {counts})"
        )


def _unique_errors(labels: MultiAnimalLabels, predicted: list[AnimalPoses], rows: list[int], pcutoff: float):
    """(rows, U) errors and likelihoods of the unique body parts."""
    errors = np.full((len(rows), len(labels.unique_bodyparts)), np.nan)
    likelihood = np.full_like(errors, np.nan)
    for n, row in enumerate(rows):
        unique = predicted[row].unique
        if len(unique):
            errors[n] = np.linalg.norm(unique[:, :2] - labels.unique_keypoints[row], axis=-1)
            likelihood[n] = unique[:, 2]
    return errors, np.where(likelihood >= pcutoff, errors, np.nan)


def evaluate_multianimal(trained: TrainedModel, run_uri: str, labels: MultiAnimalLabels,
                         pcutoff: float | None = None, plot_images: int = 6) -> MultiAnimalEvaluation:
    if not isinstance(labels, MultiAnimalLabels):
        raise InputError(trained.uri, "a multi-animal model; evaluate it on its multi-animal (maDLC) project")
    artifact = multianimal_from_trained(trained)
    if list(labels.bodyparts) != list(artifact.spec.bodyparts) or \
            list(labels.unique_bodyparts) != list(artifact.spec.unique_bodyparts):
        raise InputError(trained.uri, f"body parts {list(artifact.spec.bodyparts)} + unique "
                                      f"{list(artifact.spec.unique_bodyparts)} differ from the project's")
    pcutoff = trained.config.project.pcutoff if pcutoff is None else pcutoff
    split = Split.load(storage.join(run_uri, "split.json"))
    images = load_images(labels)
    predicted = predict_animals(artifact, images)
    rows = {"train": indices_of(labels.images, split.train_images), "test": indices_of(labels.images, split.test_images)}
    per_split, unique = {}, {}
    for name, chosen in rows.items():
        per_split[name] = multianimal_scores([labels.keypoints[r] for r in chosen], [predicted[r].poses for r in chosen],
                                             [predicted[r].scores for r in chosen], labels.bodyparts,
                                             MultiAnimalMetricsConfig(pcutoff=pcutoff, matching=MATCHING))
        unique[name] = _unique_errors(labels, predicted, chosen, pcutoff)
    per_part = {part: {key: per_split[name].per_bodypart[part][metric]
                       for name in rows for key, metric in ((name, "error_px"), (f"{name}_pcutoff", "error_pcutoff_px"))}
                for part in labels.bodyparts}
    for u, part in enumerate(labels.unique_bodyparts):
        per_part[part] = {key: _mean(unique[name][which][:, u]) for name in rows
                          for key, which in ((name, 0), (f"{name}_pcutoff", 1))}
    folder = storage.join(run_uri, "evaluation")
    outputs = {name: storage.join(folder, file) for name, file in (
        ("results_csv", "results.csv"), ("results_json", "results.json"), ("predictions_csv", "predictions.csv"),
        ("plot_png", "test_predictions.png"))}
    result = MultiAnimalEvaluation(
        train_error_px=per_split["train"].error_px, test_error_px=per_split["test"].error_px,
        train_error_pcutoff_px=per_split["train"].error_pcutoff_px,
        test_error_pcutoff_px=per_split["test"].error_pcutoff_px, pcutoff=pcutoff,
        train_images=len(rows["train"]), test_images=len(rows["test"]), per_bodypart=per_part, outputs=outputs,
        animals={name: {"labeled": m.labeled_animals, "predicted": m.predicted_animals, "matched": m.matched_animals}
                 for name, m in per_split.items()},
        assembly={name: {"map": m.map, "mar": m.mar, "purity": m.purity, "unassembled_fraction": m.unassembled_fraction}
                  for name, m in per_split.items()})
    table = pd.DataFrame(
        {"images": [len(rows["train"]), len(rows["test"])],
         "error_px": [result.train_error_px, result.test_error_px],
         "error_pcutoff_px": [result.train_error_pcutoff_px, result.test_error_pcutoff_px],
         **{f"{c}_animals": [result.animals["train"][c], result.animals["test"][c]]
            for c in ("labeled", "predicted", "matched")},
         **{key: [result.assembly["train"][key], result.assembly["test"][key]] for key in ("map", "mar", "purity")},
         **{f"{part}_px": [v["train"], v["test"]] for part, v in per_part.items()},
         **{f"{part}_pcutoff_px": [v["train_pcutoff"], v["test_pcutoff"]] for part, v in per_part.items()}},
        index=pd.Index(["train", "test"], name="split"))
    storage.atomic_write_bytes(outputs["results_csv"], table.to_csv().encode())
    storage.atomic_write_bytes(outputs["predictions_csv"], _predictions_table(labels, predicted, split).to_csv().encode())
    storage.atomic_write_bytes(outputs["plot_png"], _plot(images, labels, predicted, (rows["test"] or rows["train"])[:plot_images], pcutoff))
    storage.atomic_write_bytes(outputs["results_json"], json.dumps(asdict(result), indent=1).encode())
    return result


def _predictions_table(labels: MultiAnimalLabels, predicted: list[AnimalPoses], split: Split) -> pd.DataFrame:
    """One row per image: the assembled animals in assembly order (not identities), then unique parts."""
    most = max([len(p.poses) for p in predicted] + [1])
    animal_cols = [(f"animal{j + 1}", part, c) for j in range(most) for part in labels.bodyparts
                   for c in ("x", "y", "likelihood")]
    unique_cols = [("single", part, c) for part in labels.unique_bodyparts for c in ("x", "y", "likelihood")]
    values = np.full((len(predicted), len(animal_cols) + len(unique_cols)), np.nan)
    for i, found in enumerate(predicted):
        flat = found.poses.reshape(-1)
        values[i, :flat.size] = flat
        values[i, len(animal_cols):] = found.unique.reshape(-1)
    columns = pd.MultiIndex.from_tuples(animal_cols + unique_cols, names=["individuals", "bodyparts", "coords"])
    frame = pd.DataFrame(values, index=pd.Index(labels.images, name="image"), columns=columns)
    test = set(split.test_images)
    frame.insert(0, ("split", "", ""), ["test" if image in test else "train" for image in labels.images])
    return frame


def _plot(images, labels: MultiAnimalLabels, predicted: list[AnimalPoses], rows: list[int], pcutoff: float) -> bytes:
    cols = min(3, max(len(rows), 1))
    nrows = max(1, -(-len(rows) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.6 * nrows), squeeze=False)
    colors = plt.cm.tab10(np.arange(10))
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        ax.imshow(images[row])
        labeled = labels.keypoints[row].reshape(-1, 2)
        ax.scatter(labeled[:, 0], labeled[:, 1], s=40, marker="+", color="white")
        for j, animal in enumerate(predicted[row].poses):
            sure = animal[:, 2] >= pcutoff
            ax.scatter(animal[sure, 0], animal[sure, 1], s=25, marker="o", facecolors="none",
                       edgecolors=[colors[j % 10]])
            ax.scatter(animal[~sure, 0], animal[~sure, 1], s=25, marker="x", color=colors[j % 10])
        ax.set_title(labels.images[row].rsplit("/", 1)[-1], fontsize=8)
    fig.suptitle(f"+ labels, o assembled animals (a colour each; x: likelihood < p-cutoff {pcutoff})", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
