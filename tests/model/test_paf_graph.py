"""PAF graphs: from the skeleton, all pairs, and the data-driven graph of the most rigid pairs."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from posecluster.model.paf_graph import complete_graph, data_driven_graph, distance_variation, skeleton_graph

PARTS = ["snout", "leftear", "rightear", "tailbase"]


def test_skeleton_names_become_sorted_index_pairs_without_duplicates():
    skeleton = [["leftear", "snout"], ["snout", "rightear"], ["snout", "leftear"], ["tailbase", "rightear"]]
    assert skeleton_graph(skeleton, PARTS) == [(0, 1), (0, 2), (2, 3)]


def test_a_skeleton_naming_an_unknown_part_is_refused_with_its_name():
    with pytest.raises(ValueError, match="tailtip"):
        skeleton_graph([["snout", "tailtip"]], PARTS)


def test_complete_graph_has_every_pair_once():
    assert complete_graph(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _rigid_head_floppy_tail(frames: int = 40) -> np.ndarray:
    """(frames, 2 animals, 4 parts, 2): the head parts keep their distances, the tail wanders."""
    rng = np.random.default_rng(0)
    out = np.empty((frames, 2, 4, 2))
    for f in range(frames):
        for a in range(2):
            center = rng.uniform(50, 400, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            head = np.array([[0.0, 0.0], [-10.0, -8.0], [10.0, -8.0]]) @ rotate.T + center
            tail = center + rng.uniform(20, 80) * np.array([np.sin(angle), -np.cos(angle)])
            out[f, a] = np.vstack([head, tail])
    out[3, 1, 2] = np.nan  # an unlabeled part is left out, not a NaN in the statistics
    return out


def test_data_driven_graph_takes_the_rigid_pairs_first_and_stays_connected():
    keypoints = _rigid_head_floppy_tail()
    variation = distance_variation(keypoints)
    assert np.isfinite(variation[0, 2]) and variation[0, 1] < 1e-9
    graph = data_driven_graph(keypoints, average_degree=1.5)  # ceil(4 * 1.5 / 2) = 3 edges: a tree
    assert len(graph) == 3
    assert set(graph[:2]) <= {(0, 1), (0, 2), (1, 2)}  # the head's pairs, whose distances never change
    assert sum(3 in edge for edge in graph) == 1  # the floppy tail joins by a single edge
    assert nx.is_connected(nx.Graph(graph))
    assert data_driven_graph(keypoints, average_degree=6.0) == sorted(
        data_driven_graph(keypoints, average_degree=6.0), key=lambda e: (variation[e], e))
    assert len(data_driven_graph(keypoints, average_degree=6.0)) == 6  # capped at every pair
