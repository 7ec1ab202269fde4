"""The graph of body-part pairs that part affinity fields are learned along (maDLC's "PAF graph").

Three ways to get one, as maDLC offers: the project's skeleton, every pair of body parts, or a data-driven
graph of the pairs whose labeled distances vary least within an animal (a rigid pair is the safest link
between two detections). A graph is a list of (source, target) body-part indices with source < target,
over the multi-animal body parts only (unique body parts are never linked).
"""

from __future__ import annotations

from itertools import combinations

import networkx as nx
import numpy as np

Graph = list[tuple[int, int]]


def skeleton_graph(skeleton: list[list[str]] | list[tuple[str, str]], bodyparts: list[str]) -> Graph:
    """A DLC config's `skeleton` (pairs of names) as index pairs; pairs naming a part that is not a
    multi-animal body part (a unique part, a typo) are refused, duplicates dropped, order kept."""
    index = {name: i for i, name in enumerate(bodyparts)}
    graph: Graph = []
    for pair in skeleton:
        if len(pair) != 2:
            raise ValueError(f"skeleton entry {pair!r} is not a pair of body parts")
        unknown = [name for name in pair if name not in index]
        if unknown:
            raise ValueError(f"skeleton entry {list(pair)} names {unknown}, not among the multi-animal "
                             f"body parts {bodyparts}")
        edge = tuple(sorted((index[pair[0]], index[pair[1]])))
        if edge[0] != edge[1] and edge not in graph:
            graph.append(edge)
    return graph


def complete_graph(num_bodyparts: int) -> Graph:
    """Every pair of body parts (maDLC's default graph before pruning)."""
    return list(combinations(range(num_bodyparts), 2))


def distance_variation(keypoints: np.ndarray) -> np.ndarray:
    """keypoints (N, n_individuals, K, 2) with NaN for unlabeled -> (K, K) coefficient of variation of
    each pair's distance within an animal over every labeled animal (std / mean; +inf where a pair is
    labeled together fewer than twice)."""
    points = np.asarray(keypoints, dtype=np.float64).reshape(-1, keypoints.shape[-2], 2)
    distances = np.linalg.norm(points[:, :, None] - points[:, None, :], axis=-1)  # (animals, K, K), NaN kept
    labeled = np.isfinite(distances)
    count = labeled.sum(axis=0)
    filled = np.where(labeled, distances, 0.0)
    mean = filled.sum(axis=0) / np.maximum(count, 1)
    var = (np.where(labeled, distances - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count - 1, 1)
    variation = np.sqrt(var) / np.maximum(mean, 1e-9)
    return np.where(count >= 2, variation, np.inf)


def data_driven_graph(keypoints: np.ndarray, average_degree: float = 6.0) -> Graph:
    """The pairs whose labeled distances vary least: a minimum spanning tree of the distance variation
    (so every body part is reached), then the next most rigid pairs until the graph has
    ceil(K * average_degree / 2) edges (maDLC's size for pruned graphs) or every pair. Deterministic:
    ties go to the lower index pair."""
    num_bodyparts = keypoints.shape[-2]
    if num_bodyparts < 2:
        return []
    variation = distance_variation(keypoints)
    pairs = complete_graph(num_bodyparts)
    # Rank pairs (rigid first, never-labeled pairs last), ties by index, so the tree below is unique.
    rank = {pair: order for order, pair in enumerate(sorted(pairs, key=lambda p: (variation[p], p)))}
    tree = nx.Graph()
    tree.add_nodes_from(range(num_bodyparts))
    tree.add_weighted_edges_from((a, b, rank[(a, b)]) for a, b in pairs)
    chosen = {tuple(sorted(edge)) for edge in nx.minimum_spanning_edges(tree, algorithm="kruskal", data=False)}
    wanted = min(len(pairs), max(num_bodyparts - 1, int(np.ceil(num_bodyparts * average_degree / 2))))
    for pair in sorted(pairs, key=rank.get):
        if len(chosen) >= wanted:
            break
        chosen.add(pair)
    return sorted(chosen, key=rank.get)
