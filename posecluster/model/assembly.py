"""Detections -> animals: part affinity field costs along the graph, then greedy assembly (maDLC's way).

1. Cost of linking a source peak to a target peak of an edge: the line integral of that edge's field
   along the segment between them, i.e. the mean over `n_points` samples of the field . unit direction
   (1 when the field runs straight along the segment, ~0 between two animals).
2. Per edge, greedy bipartite matching by affinity (each peak used once, at most max_individuals links,
   links below min_affinity dropped), as maDLC's Assembler does with greedy=True.
3. All kept links, best first, grow animals: a link to a free peak adds it to the animal of its other
   end unless that animal already has the part; a link between two animals with no part in common merges
   them. The animals with most parts (then best mean affinity) are kept, up to max_individuals.
Ties are broken by index (edge, then peak order), so the result is a function of the maps alone.
Unique body parts are not linked: each takes its map's single best peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from posecluster.model.multi_peaks import Peaks
from posecluster.model.paf_graph import Graph


@dataclass(frozen=True)
class AssemblyParams:
    min_affinity: float = 0.05  # DLC 3's default for the PAF predictor
    n_points: int = 10  # samples along a segment for the line integral
    min_links: int = 1  # an animal of several parts needs at least this many links


@dataclass
class AnimalPoses:
    """One image's animals, in network-input or image coordinates depending on who made it."""

    poses: np.ndarray  # (n, K, 3): x, y, likelihood; NaN for parts not found
    scores: np.ndarray  # (n,): mean affinity of the animal's links (its likelihood when K == 1)
    unique: np.ndarray  # (U, 3): x, y, likelihood; NaN where not found
    identity: np.ndarray | None = None  # (n, n_individuals) probabilities, when the identity head is on


def edge_affinities(xy: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, edge: torch.Tensor,
                    paf: torch.Tensor, stride: float, n_points: int) -> torch.Tensor:
    """Line integrals for candidate links: xy (P,2) peak positions (network-input edge coordinates),
    src/dst/edge (L,) peak and edge indices, paf (2E,h,w) one image's fields -> (L,) affinities."""
    height, width = paf.shape[-2:]
    start, end = xy[src], xy[dst]  # (L,2)
    segment = end - start
    length = segment.norm(dim=-1, keepdim=True)
    unit = segment / length.clamp(min=1e-6)
    steps = torch.linspace(0, 1, n_points, device=xy.device)
    samples = start[:, None] + steps[None, :, None] * segment[:, None]  # (L,n,2)
    col = (samples[..., 0] / stride).floor().long().clamp(0, width - 1)
    row = (samples[..., 1] / stride).floor().long().clamp(0, height - 1)
    fields = paf.float().view(-1, 2, height, width)[edge[:, None], :, row, col]  # (L,n,2)
    return (fields * unit[:, None]).sum(-1).mean(-1)


def _greedy_links(edge: np.ndarray, src: np.ndarray, dst: np.ndarray, affinity: np.ndarray,
                  min_affinity: float, max_links: int) -> np.ndarray:
    """Indices of the candidate links kept: per edge, best affinity first, each peak used once."""
    order = np.lexsort((dst, src, -affinity, edge))  # by edge, then affinity descending, then peaks
    kept, used, per_edge, current = [], set(), 0, -1
    for i in order:
        if affinity[i] < min_affinity:
            continue
        if edge[i] != current:
            current, per_edge = edge[i], 0
            used = set()
        if per_edge >= max_links or src[i] in used or dst[i] in used:
            continue
        used.update((src[i], dst[i]))
        per_edge += 1
        kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def _grow_animals(part: np.ndarray, links: list[tuple[int, int, float]], num_parts: int):
    """Links (src peak, dst peak, affinity), best first -> list of (peak index per part (-1: none),
    affinities of its links)."""
    owner: dict[int, int] = {}
    animals: dict[int, tuple[np.ndarray, list[float]]] = {}
    next_id = 0
    for a, b, affinity in links:
        in_a, in_b = owner.get(a), owner.get(b)
        if in_a is None and in_b is None:
            slots = np.full(num_parts, -1, dtype=np.int64)
            slots[part[a]], slots[part[b]] = a, b
            animals[next_id] = (slots, [affinity])
            owner[a] = owner[b] = next_id
            next_id += 1
        elif in_a is not None and in_b is not None:
            if in_a == in_b:
                continue
            slots_a, aff_a = animals[in_a]
            slots_b, aff_b = animals[in_b]
            if ((slots_a >= 0) & (slots_b >= 0)).any():
                continue  # both have some part: two animals, not one
            keep, gone = min(in_a, in_b), max(in_a, in_b)
            merged = np.where(slots_a >= 0, slots_a, slots_b)
            animals[keep] = (merged, aff_a + aff_b + [affinity])
            del animals[gone]
            for peak in merged[merged >= 0]:
                owner[int(peak)] = keep
        else:
            known, free = (a, b) if in_a is not None else (b, a)
            animal = owner[known]
            slots, affinities = animals[animal]
            if slots[part[free]] >= 0:
                continue
            slots[part[free]] = free
            affinities.append(affinity)
            owner[free] = animal
    return [animals[key] for key in sorted(animals)]


def assemble_image(
    peaks: Peaks,
    image: int,
    paf: torch.Tensor,
    graph: Graph,
    num_parts: int,
    num_unique: int,
    max_individuals: int,
    stride: float,
    params: AssemblyParams = AssemblyParams(),
    identity: torch.Tensor | None = None,
) -> AnimalPoses:
    """One image's animals from the batch's peaks (parts 0..K-1 animal parts, K..K+U-1 unique parts),
    that image's fields paf (2E,h,w) and optionally its identity logits (n_individuals,h,w)."""
    mine = (peaks.image == image).nonzero().squeeze(1)
    part = peaks.part[mine]
    xy, likelihood = peaks.xy[mine], peaks.likelihood[mine]
    part_np = part.cpu().numpy()
    xyl = torch.cat([xy, likelihood[:, None]], dim=1).cpu().numpy()

    unique = np.full((num_unique, 3), np.nan)
    for u in range(num_unique):
        found = np.flatnonzero(part_np == num_parts + u)
        if found.size:
            unique[u] = xyl[found[np.argmax(xyl[found, 2])]]  # argmax: first of equals

    if num_parts == 1:
        singles = np.flatnonzero(part_np == 0)
        singles = singles[np.argsort(-xyl[singles, 2], kind="stable")][:max_individuals]
        groups = [(np.array([peak]), [float(xyl[peak, 2])]) for peak in singles]
    else:
        groups = _link_and_grow(part, part_np, xy, paf, graph, num_parts, max_individuals, stride, params)

    count = len(groups)
    poses = np.full((count, num_parts, 3), np.nan)
    scores = np.zeros(count)
    for n, (slots, affinities) in enumerate(groups):
        found = slots >= 0
        poses[n, found] = xyl[slots[found]]
        scores[n] = float(np.mean(affinities))
    probabilities = None
    if identity is not None:
        probabilities = _identity(identity, peaks.row[mine], peaks.col[mine], groups)
    return AnimalPoses(poses, scores, unique, probabilities)


def _link_and_grow(part, part_np, xy, paf, graph, num_parts, max_individuals, stride, params):
    source = torch.tensor([s for s, _ in graph], dtype=torch.long, device=part.device)
    target = torch.tensor([t for _, t in graph], dtype=torch.long, device=part.device)
    # Every (edge, source peak, target peak) candidate at once: (E,P,P) masks of small P.
    pairs = (part[None, :, None] == source[:, None, None]) & (part[None, None, :] == target[:, None, None])
    edge, src, dst = pairs.nonzero(as_tuple=True)
    if edge.numel() == 0:
        return []
    affinity = edge_affinities(xy, src, dst, edge, paf, stride, params.n_points).cpu().numpy()
    edge, src, dst = edge.cpu().numpy(), src.cpu().numpy(), dst.cpu().numpy()
    kept = _greedy_links(edge, src, dst, affinity, params.min_affinity, max_individuals)
    if kept.size == 0:
        return []
    best_first = kept[np.lexsort((dst[kept], src[kept], edge[kept], -affinity[kept]))]
    links = [(int(src[i]), int(dst[i]), float(affinity[i])) for i in best_first]
    groups = [g for g in _grow_animals(part_np, links, num_parts) if len(g[1]) >= params.min_links]
    # Most parts first, then best mean affinity, then the lowest peak index.
    groups.sort(key=lambda g: (-(g[0] >= 0).sum(), -np.mean(g[1]), int(g[0][g[0] >= 0].min())))
    return groups[:max_individuals]


def _identity(logits: torch.Tensor, row: torch.Tensor, col: torch.Tensor, groups) -> np.ndarray:
    """Per animal, the mean over its parts of the softmax over individuals at each part's cell."""
    per_peak = torch.softmax(logits.float()[:, row, col].T, dim=-1).cpu().numpy()  # (P_image, n_individuals)
    out = np.zeros((len(groups), logits.shape[0]))
    for n, (slots, _) in enumerate(groups):
        out[n] = per_peak[slots[slots >= 0]].mean(axis=0)
    return out
