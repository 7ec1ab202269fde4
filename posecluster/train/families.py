"""What training does per kind of project, chosen once from the project config (`training_family`).

The loop (train/loop.py) asks the chosen family for its network (model.family: build_model, targets,
loss), its augmented dataset, its unlabeled-frames term, and what its checkpoints and model.pt record;
it never asks which kind it trains. Single-animal training is exactly what the loop always did. For a
maDLC project the PAF graph is the project's skeleton when that connects every animal body part, else
the data-driven graph of the training labels (maDLC's choice); the identity head is on when the
project says `identity: true`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import networkx as nx
import numpy as np

from posecluster import storage
from posecluster.config import PoseclusterConfig, ProjectConfig
from posecluster.data.dataset import TrainingDataset, load_images
from posecluster.data.labels import LabeledDataset
from posecluster.data.multianimal import MultiAnimalLabels
from posecluster.data.multianimal_dataset import MultiAnimalTrainingDataset
from posecluster.errors import InputError
from posecluster.model.artifact import SPEC_KEY, multianimal_fields, save_model
from posecluster.model.family import MultiAnimalFamily, SingleAnimalFamily
from posecluster.model.multianimal_model import MultiAnimalParams, MultiAnimalSpec
from posecluster.model.paf_graph import Graph, data_driven_graph, skeleton_graph
from posecluster.model.precision import ReducedPrecision
from posecluster.train.unlabeled import UnlabeledTerm

log = logging.getLogger(__name__)


def _rows_images(labels, rows: list[int], images: list | None) -> list[np.ndarray]:
    """The images of `rows` (from the already-loaded images of every row, else read now)."""
    if images is not None:
        return [images[i] for i in rows]
    return load_images(labels.subset(rows))


@dataclass
class SingleAnimalTraining:
    family: SingleAnimalFamily
    bodyparts: list[str]
    calibrates = True  # model.pt carries an int8 version and bf16/int8 pose checks

    def dataset(self, config: PoseclusterConfig, labels: LabeledDataset, rows: list[int], images: list | None):
        subset_images = [images[i] for i in rows] if images is not None else None
        return TrainingDataset(labels.subset(rows), config.augment, config.model.global_scale, config.train.seed,
                               subset_images)

    def unlabeled_term(self, config: PoseclusterConfig, labels: LabeledDataset, rows: list[int], rank: int):
        return UnlabeledTerm.maybe(config, labels.keypoints[rows], rank)

    def record(self) -> dict:
        return {"bodyparts": list(self.bodyparts)}

    def check_resumed(self, state: dict, source: str) -> None:
        pass

    def save(self, run_uri: str, config: PoseclusterConfig, state_dict: dict,
             reduced: ReducedPrecision | None) -> str:
        return save_model(run_uri, config, self.bodyparts, state_dict, reduced)


@dataclass
class MultiAnimalTraining:
    family: MultiAnimalFamily
    calibrates = False  # multi-animal models run in fp32 for now

    @property
    def spec(self) -> MultiAnimalSpec:
        return self.family.spec

    def dataset(self, config: PoseclusterConfig, labels: MultiAnimalLabels, rows: list[int], images: list | None):
        return MultiAnimalTrainingDataset(_rows_images(labels, rows, images), labels.keypoints[rows],
                                          labels.unique_keypoints[rows], config.augment, config.model.global_scale,
                                          config.train.seed)

    def unlabeled_term(self, config: PoseclusterConfig, labels: MultiAnimalLabels, rows: list[int], rank: int):
        if config.unsupervised.losses:
            raise InputError(config.project_uri or "the config", "unsupervised losses (unsupervised.losses) are "
                             "available for single-animal projects only; this is a multi-animal (maDLC) project")
        return None

    def record(self) -> dict:
        return multianimal_fields(self.spec, self.family.params)

    def check_resumed(self, state: dict, source: str) -> None:
        """A run resumed on changed labels could get another data-driven graph: refuse, naming both."""
        section = state.get(SPEC_KEY)
        saved = section.get("graph") if isinstance(section, dict) else None
        if saved != [list(edge) for edge in self.spec.graph]:
            raise InputError(source, f"the checkpoint's PAF graph {saved} differs from this project's "
                                     f"{list(self.spec.graph)} (labels or skeleton changed); train into a new --out")

    def save(self, run_uri: str, config: PoseclusterConfig, state_dict: dict,
             reduced: ReducedPrecision | None) -> str:
        return save_model(run_uri, config, [*self.spec.bodyparts, *self.spec.unique_bodyparts], state_dict, None,
                          self.record())


TrainingFamily = SingleAnimalTraining | MultiAnimalTraining


def paf_graph(project: ProjectConfig, keypoints: np.ndarray) -> tuple[Graph, str]:
    """The PAF graph and where it came from: the skeleton's pairs of animal body parts when they connect
    every animal body part (pairs naming unique parts are left out: those are never linked), else the
    data-driven graph of `keypoints` (labeled animals of the training images, (N, individuals, K, 2))."""
    parts = list(project.bodyparts)
    pairs = [pair for pair in project.skeleton if len(pair) == 2 and all(name in parts for name in pair)]
    graph = skeleton_graph(pairs, parts) if pairs else []
    connected = nx.Graph()
    connected.add_nodes_from(range(len(parts)))
    connected.add_edges_from(graph)
    if graph and nx.is_connected(connected):
        return graph, "skeleton"
    return data_driven_graph(keypoints), "data-driven (the skeleton does not connect every body part)"


def training_family(config: PoseclusterConfig, labels, train_rows: list[int]) -> TrainingFamily:
    """The family for this project, chosen once: multi-animal exactly when the project config says so."""
    project = config.project
    if not project.multianimal:
        return SingleAnimalTraining(SingleAnimalFamily(config.model, len(labels.bodyparts)), list(labels.bodyparts))
    if not isinstance(labels, MultiAnimalLabels):
        raise InputError(config.project_uri or "the project", "a multi-animal project config with single-animal labels")
    graph, source = paf_graph(project, labels.keypoints[train_rows])
    where = storage.join(config.project_uri, "config.yaml") if config.project_uri else "the project config"
    try:
        spec = MultiAnimalSpec(tuple(labels.bodyparts), tuple(labels.unique_bodyparts), tuple(labels.individuals),
                               tuple(graph), bool(project.identity))
    except ValueError as exc:
        raise InputError(where, str(exc)) from None
    log.info("multi-animal model: %d body parts, %d unique, %d individuals, PAF graph %s (%d edges), identity "
             "head %s", spec.num_parts, spec.num_unique, len(spec.individuals), source, len(graph),
             "on" if spec.identity else "off")
    return MultiAnimalTraining(MultiAnimalFamily(config.model, spec, MultiAnimalParams()))
