"""The family a project trains, chosen once from its config; the PAF graph it gets."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from posecluster.config import ProjectConfig
from posecluster.errors import InputError
from posecluster.train.families import paf_graph

PARTS = ["nose", "head", "body", "tail"]


def project(skeleton, identity=False, individuals=("m1", "m2")):
    return ProjectConfig(task="t", scorer="s", date="Jan1", bodyparts=PARTS, skeleton=skeleton, multianimal=True,
                         individuals=list(individuals), unique_bodyparts=["feeder"], identity=identity)


def keypoints(count=6):
    """Animals along a line: nose-head-body rigid, tail on a wagging stick."""
    rng = np.random.default_rng(0)
    points = np.zeros((count, 2, 4, 2))
    for i in range(count):
        for a in range(2):
            start = rng.uniform(0, 50, 2)
            points[i, a, :3] = start + np.array([[0, 0], [5, 0], [10, 0]])
            points[i, a, 3] = start + [10 + rng.uniform(3, 20), rng.uniform(-10, 10)]
    return points


def test_a_skeleton_that_connects_every_part_is_the_graph_and_pairs_with_unique_parts_are_left_out():
    skeleton = [["nose", "head"], ["head", "body"], ["tail", "body"], ["feeder", "nose"]]
    graph, source = paf_graph(project(skeleton), keypoints())
    assert (graph, source) == ([(0, 1), (1, 2), (2, 3)], "skeleton")


def test_a_skeleton_leaving_a_part_out_gives_a_data_driven_graph_that_reaches_every_part():
    graph, source = paf_graph(project([["nose", "head"]]), keypoints())
    assert source.startswith("data-driven")
    connected = nx.Graph(graph)
    assert set(connected.nodes) == {0, 1, 2, 3} and nx.is_connected(connected)
    # the rigid pairs (fixed distances) come first; a pair with the wagging tail cannot
    assert set(graph[:3]) == {(0, 1), (1, 2), (0, 2)}


def test_an_identity_head_for_a_single_individual_is_refused_naming_the_config(tmp_path):
    from posecluster.config import PoseclusterConfig
    from posecluster.data.multianimal import MultiAnimalLabels
    from posecluster.train.families import training_family

    config = PoseclusterConfig(project=project([["nose", "head"]], identity=True, individuals=("m1",)),
                               project_uri=str(tmp_path))
    labels = MultiAnimalLabels(str(tmp_path), "s", ["m1"], PARTS, ["feeder"], ["a.png", "b.png"],
                               keypoints()[:2, :1])
    with pytest.raises(InputError, match="config.yaml.*identity head needs at least two individuals"):
        training_family(config, labels, [0, 1])
