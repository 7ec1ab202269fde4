"""Evaluation as DeepLabCut reports it: mean Euclidean error in original image pixels on the train and
test images of the run's saved split, with and without the p-cutoff, overall and per body part.
A multi-animal model is evaluated by train/evaluate_multianimal.py (errors after matching animals)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to storage, never shown
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from posecluster import storage  # noqa: E402
from posecluster.data.dataset import load_images  # noqa: E402
from posecluster.data.labels import LabeledDataset  # noqa: E402
from posecluster.data.split import Split, indices_of  # noqa: E402
from posecluster.infer.predictor import Predictor  # noqa: E402
from posecluster.train.checkpoint import load_model  # noqa: E402
from posecluster.train.evaluation import CUTOFF_EMPTY, Evaluation, pixels  # noqa: E402,F401 (their home before)
from posecluster.train.evaluate_multianimal import evaluate_multianimal  # noqa: E402


def pixel_errors(predictions: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(N,K,3) predictions vs (N,K,2) labels -> (N,K) Euclidean distances, NaN where unlabeled."""
    return np.linalg.norm(predictions[..., :2] - keypoints, axis=-1)


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def summarise(errors: np.ndarray, likelihood: np.ndarray, pcutoff: float) -> tuple[float, float]:
    confident = np.where(likelihood >= pcutoff, errors, np.nan)
    return _mean(errors), _mean(confident)


def evaluate(run_uri: str, labels: LabeledDataset, pcutoff: float | None = None,
             plot_images: int = 6) -> Evaluation:
    trained = load_model(run_uri)
    if trained.multianimal is not None:
        return evaluate_multianimal(trained, run_uri, labels, pcutoff, plot_images)
    pcutoff = trained.config.project.pcutoff if pcutoff is None else pcutoff
    split = Split.load(storage.join(run_uri, "split.json"))
    predictor = Predictor(trained)
    images = load_images(labels)
    predictions = predictor.predict_images(images)
    errors = pixel_errors(predictions, labels.keypoints)
    likelihood = predictions[..., 2]
    train_rows = indices_of(labels.images, split.train_images)
    test_rows = indices_of(labels.images, split.test_images)

    train_err, train_cut = summarise(errors[train_rows], likelihood[train_rows], pcutoff)
    test_err, test_cut = summarise(errors[test_rows], likelihood[test_rows], pcutoff)
    per_part = {}
    for k, part in enumerate(labels.bodyparts):
        tr, trc = summarise(errors[train_rows, k], likelihood[train_rows, k], pcutoff)
        te, tec = summarise(errors[test_rows, k], likelihood[test_rows, k], pcutoff)
        per_part[part] = {"train": tr, "test": te, "train_pcutoff": trc, "test_pcutoff": tec}

    folder = storage.join(run_uri, "evaluation")
    table = pd.DataFrame(
        {
            "images": [len(train_rows), len(test_rows)],
            "error_px": [train_err, test_err],
            "error_pcutoff_px": [train_cut, test_cut],
            **{f"{part}_px": [v["train"], v["test"]] for part, v in per_part.items()},
            **{f"{part}_pcutoff_px": [v["train_pcutoff"], v["test_pcutoff"]] for part, v in per_part.items()},
        },
        index=pd.Index(["train", "test"], name="split"),
    )
    outputs = {
        "results_csv": storage.join(folder, "results.csv"),
        "results_json": storage.join(folder, "results.json"),
        "predictions_csv": storage.join(folder, "predictions.csv"),
        "plot_png": storage.join(folder, "test_predictions.png"),
    }
    storage.atomic_write_bytes(outputs["results_csv"], table.to_csv().encode())
    storage.atomic_write_bytes(outputs["predictions_csv"], _predictions_table(labels, predictions, split).to_csv().encode())
    plot_rows = (test_rows or train_rows)[:plot_images]
    storage.atomic_write_bytes(
        outputs["plot_png"], _plot(images, labels, predictions, plot_rows, pcutoff)
    )
    result = Evaluation(
        train_error_px=train_err,
        test_error_px=test_err,
        train_error_pcutoff_px=train_cut,
        test_error_pcutoff_px=test_cut,
        pcutoff=pcutoff,
        train_images=len(train_rows),
        test_images=len(test_rows),
        per_bodypart=per_part,
        outputs=outputs,
    )
    storage.atomic_write_bytes(outputs["results_json"], json.dumps(asdict(result), indent=1).encode())
    return result


def _predictions_table(labels: LabeledDataset, predictions: np.ndarray, split: Split) -> pd.DataFrame:
    columns = pd.MultiIndex.from_product([labels.bodyparts, ["x", "y", "likelihood"]], names=["bodyparts", "coords"])
    frame = pd.DataFrame(predictions.reshape(len(labels), -1), index=pd.Index(labels.images, name="image"), columns=columns)
    test = set(split.test_images)
    frame.insert(0, ("split", ""), ["test" if img in test else "train" for img in labels.images])
    return frame


def _plot(images, labels: LabeledDataset, predictions: np.ndarray, rows: list[int], pcutoff: float) -> bytes:
    cols = min(3, max(len(rows), 1))
    nrows = max(1, -(-len(rows) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.5 * cols, 3.6 * nrows), squeeze=False)
    colors = plt.cm.jet(np.linspace(0, 1, len(labels.bodyparts)))
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows):
        ax.imshow(images[row])
        for k, part in enumerate(labels.bodyparts):
            lx, ly = labels.keypoints[row, k]
            px, py, p = predictions[row, k]
            ax.scatter([lx], [ly], s=40, marker="+", color=colors[k], label=f"{part} label")
            if p >= pcutoff:
                ax.scatter([px], [py], s=25, marker="o", facecolors="none", edgecolors=[colors[k]])
            else:
                ax.scatter([px], [py], s=25, marker="x", color=colors[k])
        ax.set_title(labels.images[row].rsplit("/", 1)[-1], fontsize=8)
    fig.suptitle(f"+ labels, o predictions (x: likelihood < p-cutoff {pcutoff})", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()
