"""The paper's learning-curve experiment (Fig. 2) as one job: training fractions x shuffles as parallel
trials on the cluster, then a table and a plot of train/test error against the number of labeled frames."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402

from posecluster import storage  # noqa: E402
from posecluster.cluster.runtime import remote  # noqa: E402
from posecluster.config import PoseclusterConfig  # noqa: E402
from posecluster.data.project import read_project  # noqa: E402
from posecluster.train.evaluate import evaluate  # noqa: E402
from posecluster.train.loop import train  # noqa: E402


@dataclass
class SweepResult:
    table: pd.DataFrame
    table_uri: str
    plot_uri: str


@remote
def _trial(config_yaml: str, project_uri: str, run_uri: str, threads: int) -> dict:
    torch.set_num_threads(max(1, threads))
    config = PoseclusterConfig.from_yaml_text(config_yaml)
    labels = read_project(project_uri).labels
    result = train(config, labels, run_uri)
    evaluation = evaluate(run_uri, labels)
    return {
        "training_fraction": config.split.training_fraction,
        "shuffle": config.split.shuffle,
        "train_images": evaluation.train_images,
        "test_images": evaluation.test_images,
        "train_error_px": evaluation.train_error_px,
        "test_error_px": evaluation.test_error_px,
        "train_error_pcutoff_px": evaluation.train_error_pcutoff_px,
        "test_error_pcutoff_px": evaluation.test_error_pcutoff_px,
        "train_seconds": result.seconds,
        "run": run_uri,
    }


def run_sweep(config: PoseclusterConfig, project_uri: str, out_uri: str, fractions: list[float],
              shuffles: list[int], cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0) -> SweepResult:
    from posecluster.cluster.runtime import connect

    connect()
    refs = []
    for fraction in fractions:
        for shuffle in shuffles:
            trial = config.with_overrides({"split": {"training_fraction": fraction, "shuffle": shuffle},
                                           "train": {"progress": False}})
            run = storage.join(out_uri, "trials", f"fraction{fraction:.2f}-shuffle{shuffle}")
            refs.append(_trial.options(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial).remote(
                trial.to_yaml(), project_uri, run, int(max(1, cpus_per_trial))))
    table = pd.DataFrame(ray.get(refs)).sort_values(["training_fraction", "shuffle"]).reset_index(drop=True)
    table_uri = storage.join(out_uri, "learning_curve.csv")
    plot_uri = storage.join(out_uri, "learning_curve.png")
    storage.atomic_write_bytes(table_uri, table.to_csv(index=False).encode())
    storage.atomic_write_bytes(plot_uri, _plot(table))
    return SweepResult(table=table, table_uri=table_uri, plot_uri=plot_uri)


def _plot(table: pd.DataFrame) -> bytes:
    grouped = table.groupby("train_images")[["train_error_px", "test_error_px"]].agg(["mean", "std"]).fillna(0.0)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for column, label, style in (("train_error_px", "train", "o--"), ("test_error_px", "test", "s-")):
        ax.errorbar(grouped.index, grouped[(column, "mean")], yerr=grouped[(column, "std")], fmt=style,
                    capsize=3, label=label)
    ax.set_xlabel("labeled training frames")
    ax.set_ylabel("mean error (px)")
    ax.set_title(f"Learning curve ({table['shuffle'].nunique()} shuffles per point)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
