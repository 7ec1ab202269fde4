"""Stitch a whole video's tracklets into the project's individuals (once per video, on the summaries).

A min-cost flow carries n_individuals units of flow through time. At any moment a unit is either inside
a tracklet (earning detection_reward_px per detection it covers), on a direct link from one tracklet's
end to a later tracklet's start (costing the distance between the pose predicted across the gap and the
pose found, plus the gap and any identity disagreement), or absent, waiting on a chain of "idle" nodes
(leaving costs nothing, entering a tracklet from there costs enter_px). Because the units are
conserved, at most n_individuals tracklets are taken at any frame; the optimum takes the long, mutually
consistent tracklets and leaves out short false positives. An animal that was absent and enters again
is given to the absent individual whose last pose is nearest (identity included where trained).

The flow is solved in windows of stitch_window_frames along the video (each seeing on to the end of the
tracklets it decides, at most stitch_lookahead_frames further, and handing on where the units are), so its
graph, and memory, do not grow with the video's length; with a window longer than the video it is the one
global optimum.

Costs are whole hundredths of a pixel, the graph is built in key order, and networkx's network simplex
is deterministic for a given graph, so the same tracklets give the same individuals in every process.
"""

from __future__ import annotations

import gc

import networkx as nx
import numpy as np
from scipy.optimize import linear_sum_assignment

from posecluster.config import TrackingConfig
from posecluster.tracking.costs import identity_disagreement, paired_distances, valid_parts
from posecluster.tracking.tracklets import IDENTITY_UNITS, Tracklets

_SCALE = 100  # costs in hundredths of a pixel, as integers
_COLLECT_AFTER = 500  # tracklets through the flow between collections of its garbage (a few MiB)


def stitch(tracklets: Tracklets, n_individuals: int, config: TrackingConfig | None = None) -> np.ndarray:
    """(m,) the individual (0 .. n_individuals-1) each tracklet belongs to, -1 where it is left out.

    With an identity head of n_individuals columns, individual i is the identity head's column i;
    otherwise individuals are numbered in the order they first appear (nearest first at a tie)."""
    config = config or TrackingConfig()
    if n_individuals < 1:
        raise ValueError(f"n_individuals must be >= 1, got {n_individuals}")
    m = len(tracklets)
    if m == 0:
        return np.zeros(0, np.int64)
    ends = _Ends(tracklets, config)
    decided = _solve_windows(tracklets, ends, n_individuals, config)
    unit_of = _units(tracklets, ends, decided.successor, decided.entered, n_individuals, config)
    if tracklets.identity.shape[1] == n_individuals:
        unit_of = _units_to_identities(tracklets, unit_of, n_individuals)
    return unit_of


class _Ends:
    """Per tracklet: its first and last pose (with usable-part masks), velocities at both ends, mean
    identity."""

    def __init__(self, t: Tracklets, config: TrackingConfig):
        n_head = (t.head_frames >= 0).sum(axis=1)
        n_tail = (t.tail_frames >= 0).sum(axis=1)
        rows = np.arange(len(t))
        self.first = t.head_poses[:, 0]
        self.first_ok = valid_parts(self.first, config.min_likelihood)
        self.last = t.tail_poses[rows, n_tail - 1]
        self.last_ok = valid_parts(self.last, config.min_likelihood)
        self.head_velocity = _velocity(t.head_poses[:, 0], t.head_frames[:, 0], t.head_poses[rows, n_head - 1],
                                       t.head_frames[rows, n_head - 1], config)
        self.tail_velocity = _velocity(t.tail_poses[:, 0], t.tail_frames[:, 0], self.last,
                                       t.tail_frames[rows, n_tail - 1], config)
        self.identity = t.identity / (t.detections[:, None] * float(IDENTITY_UNITS)) if t.identity.shape[1] else None


def _velocity(early, early_frame, late, late_frame, config) -> np.ndarray:
    """(m, K, 2) mean step per frame between two detections, 0 for parts not usable in both."""
    both = valid_parts(early, config.min_likelihood) & valid_parts(late, config.min_likelihood)
    frames = np.maximum(late_frame - early_frame, 1).astype(np.float64)
    step = (late[..., :2] - early[..., :2]) / frames[:, None, None]
    return np.where(both[..., None] & (late_frame > early_frame)[:, None, None], step, 0.0)


def link_costs(t: Tracklets, ends: _Ends, config: TrackingConfig, sources: np.ndarray, targets: np.ndarray):
    """Direct links worth considering from each of `sources` to `targets` (indices, targets in key order):
    (i, j, cost) with j starting 1..max_gap_frames after i ends and a cost below enter_px (above it,
    leaving and entering again is cheaper). In the order of sources, then of targets."""
    starts = t.first_frame[targets]
    links = []
    for i in sources:
        lo = np.searchsorted(starts, t.last_frame[i] + 1, side="left")
        hi = np.searchsorted(starts, t.last_frame[i] + config.max_gap_frames, side="right")
        if lo == hi:
            continue
        js = targets[lo:hi]
        gap = (t.first_frame[js] - t.last_frame[i]).astype(np.float64)
        carried = np.minimum(gap, config.velocity_horizon_frames)[:, None, None]
        forward = np.repeat(ends.last[i:i + 1], len(js), axis=0)
        forward[..., :2] = forward[..., :2] + ends.tail_velocity[i] * carried
        backward = ends.first[js].copy()
        backward[..., :2] = backward[..., :2] - ends.head_velocity[js] * carried
        last_ok = np.repeat(ends.last_ok[i:i + 1], len(js), axis=0)
        cost = np.minimum(paired_distances(forward, last_ok, ends.first[js], ends.first_ok[js]),
                          paired_distances(np.repeat(ends.last[i:i + 1], len(js), axis=0), last_ok, backward, ends.first_ok[js]))
        cost = cost + config.gap_px_per_frame * (gap - 1)
        if ends.identity is not None and config.identity_weight_px > 0:
            cost = cost + config.identity_weight_px * identity_disagreement(ends.identity[i:i + 1], ends.identity[js])[0]
        for j, c in zip(js, cost):
            if c < config.enter_px:
                links.append((int(i), int(j), c))
    return links


class _Decisions:
    """What the windows decided so far: which tracklets entered from absence, which one continues which,
    and the tracklets taken whose continuation is still open (each holds an individual at the boundary)."""

    def __init__(self, m: int):
        self.successor = np.full(m, -1, np.int64)
        self.entered = np.zeros(m, bool)
        self.open: list[int] = []


def _solve_windows(t: Tracklets, ends: _Ends, n_individuals: int, config: TrackingConfig) -> _Decisions:
    """The flow solved window by window along the video: window k takes the tracklets starting in
    [kW, (k+1)W + lookahead) with the units where the earlier windows left them, and commits what it
    decides before (k+1)W. The lookahead reaches past the end of every tracklet the window commits (so a
    long tracklet is weighed against every later one it would keep out) and max_gap_frames further (so a
    tracklet is closed, left with no continuation, only by a window that saw every tracklet it could
    continue into), but at least W and at most stitch_lookahead_frames. The boundaries are frame numbers,
    so however the video was cut into segments the same windows decide the same things."""
    width = config.stitch_window_frames
    least = max(width, config.max_gap_frames)
    most = max(config.stitch_lookahead_frames, least)
    order = np.lexsort((t.first_index, t.first_frame))  # key order
    starts = t.first_frame[order]
    decided = _Decisions(len(t))
    lo = solved = 0
    while lo < len(order):
        begin = int(starts[lo]) // width * width  # the window of the first tracklet not decided yet
        commit_before = begin + width
        mid = int(np.searchsorted(starts, commit_before, side="left"))
        reach = int(t.last_frame[order[lo:mid]].max()) + 1 + config.max_gap_frames - commit_before
        hi = int(np.searchsorted(starts, commit_before + min(max(reach, least), most), side="left"))
        flow_out, entered = _solve_flow(t, ends, order[lo:hi], decided.open, begin, n_individuals, config)
        solved += hi - lo
        if solved >= _COLLECT_AFTER:  # networkx's views and network simplex leave reference cycles, and a
            gc.collect()  # full collection costs ~0.1 s in a worker's heap: after so many tracklets solved
            solved = 0
        committed = order[lo:mid]
        still_open = []
        for i in [*decided.open, *(int(j) for j in committed if int(j) in flow_out)]:
            target = flow_out[i]
            if target >= 0 and t.first_frame[target] < commit_before:
                decided.successor[i] = target
            elif target >= 0 or t.last_frame[i] + 1 >= commit_before:
                still_open.append(i)  # continues into the next window, or is still there at its start
        for j in committed:
            decided.entered[j] = entered[int(j)]
        decided.open = still_open
        lo = mid
    return decided


def _solve_flow(t: Tracklets, ends: _Ends, members: np.ndarray, open_ends: list[int], begin: int,
                n_individuals: int, config: TrackingConfig) -> tuple[dict[int, int], dict[int, bool]]:
    """One window's min-cost flow. The n units start at `begin`: one at the end of each open tracklet
    (continuing it or leaving), the rest absent. Returns, for every open tracklet and every member taken,
    the tracklet it continues into (-1: it ends, its unit leaves), and for every member whether it was
    entered from absence."""
    late = [max(int(t.last_frame[i]) + 1, begin) for i in open_ends]
    times = sorted({begin, *t.first_frame[members].tolist(), *(t.last_frame[members] + 1).tolist(), *late})
    graph = nx.DiGraph()
    for time in times:
        graph.add_node(("idle", time), demand=0)
    graph.nodes[("idle", begin)]["demand"] = -(n_individuals - len(open_ends))
    graph.nodes[("idle", times[-1])]["demand"] += n_individuals
    for a, b in zip(times, times[1:]):
        graph.add_edge(("idle", a), ("idle", b), capacity=n_individuals, weight=0)
    for i, leave in zip(open_ends, late):
        graph.add_node(("out", i), demand=-1)
        graph.add_edge(("out", i), ("idle", leave), capacity=1, weight=0)
    enter = int(round(config.enter_px * _SCALE))
    for i in members:
        i = int(i)
        reward = int(round(config.detection_reward_px * _SCALE)) * int(t.detections[i])
        graph.add_edge(("idle", int(t.first_frame[i])), ("in", i), capacity=1, weight=enter)
        graph.add_edge(("in", i), ("out", i), capacity=1, weight=-reward)
        graph.add_edge(("out", i), ("idle", int(t.last_frame[i]) + 1), capacity=1, weight=0)
    sources = np.array([*open_ends, *members.tolist()], np.int64)
    for i, j, cost in link_costs(t, ends, config, sources, members):
        graph.add_edge(("out", i), ("in", j), capacity=1, weight=int(round(cost * _SCALE)))
    flow = nx.min_cost_flow(graph)
    graph.clear()  # the nodes and edges now, not when the cycle collector gets to the graph's views
    entered = {int(j): flow[("idle", int(t.first_frame[j]))][("in", int(j))] > 0 for j in members}
    flow_out = {}
    for i in [*open_ends, *(int(j) for j in members if flow[("in", int(j))][("out", int(j))] > 0)]:
        flow_out[i] = -1
        for target, amount in flow[("out", i)].items():  # one unit leaves a tracklet: on a link or away
            if amount > 0 and target[0] == "in":
                flow_out[i] = target[1]
    return flow_out, entered


def _units(t: Tracklets, ends: _Ends, successor: np.ndarray, entered: np.ndarray, n_individuals: int,
           config: TrackingConfig) -> np.ndarray:
    """Give each chain of directly linked tracklets a unit (an individual), in order of the chains'
    starts: chains starting on the same frame are assigned together to the free units, nearest first."""
    unit_of = np.full(len(t), -1, np.int64)
    chains = []
    for head in np.flatnonzero(entered):
        chain = [int(head)]
        while successor[chain[-1]] >= 0:
            chain.append(int(successor[chain[-1]]))
        chains.append(chain)
    chains.sort(key=lambda c: (int(t.first_frame[c[0]]), int(t.first_index[c[0]])))
    free_from = np.zeros(n_individuals, np.int64)
    last_pose: list[int | None] = [None] * n_individuals  # the tracklet each unit was last seen in
    identity_sum = np.zeros((n_individuals, t.identity.shape[1]), np.int64)
    k = 0
    while k < len(chains):
        frame = int(t.first_frame[chains[k][0]])
        group = []
        while k < len(chains) and int(t.first_frame[chains[k][0]]) == frame:
            group.append(chains[k])
            k += 1
        free = [u for u in range(n_individuals) if free_from[u] <= frame]
        if len(free) < len(group):  # the flow keeps at most n_individuals chains at once
            raise AssertionError(f"{len(group)} tracks start at frame {frame} with {len(free)} individuals free")
        cost = np.zeros((len(group), len(free)))
        heads = np.array([c[0] for c in group])
        for col, u in enumerate(free):
            if last_pose[u] is None:
                cost[:, col] = config.new_individual_px + 1e-6 * u  # fresh individuals in index order
                continue
            seen = last_pose[u]
            cost[:, col] = paired_distances(np.repeat(ends.last[seen:seen + 1], len(heads), axis=0),
                                            np.repeat(ends.last_ok[seen:seen + 1], len(heads), axis=0),
                                            ends.first[heads], ends.first_ok[heads])
            if ends.identity is not None and config.identity_weight_px > 0 and identity_sum[u].sum() > 0:
                mean = identity_sum[u][None, :] / float(identity_sum[u].sum())
                cost[:, col] += config.identity_weight_px * identity_disagreement(ends.identity[heads], mean)[:, 0]
        cost = np.where(np.isfinite(cost), cost, 1e9)
        for r, c in zip(*linear_sum_assignment(cost)):
            u = free[c]
            chain = group[r]
            unit_of[chain] = u
            free_from[u] = int(t.last_frame[chain[-1]]) + 1
            last_pose[u] = chain[-1]
            identity_sum[u] += t.identity[chain].sum(axis=0)
    return unit_of


def _units_to_identities(t: Tracklets, unit_of: np.ndarray, n_individuals: int) -> np.ndarray:
    """Rename units to identity-head columns, maximising the identity scores their tracklets gathered."""
    evidence = np.zeros((n_individuals, n_individuals), np.int64)
    for u in range(n_individuals):
        evidence[u] = t.identity[unit_of == u].sum(axis=0)
    units, columns = linear_sum_assignment(-evidence)
    rename = np.full(n_individuals, -1, np.int64)
    rename[units] = columns
    return np.where(unit_of >= 0, rename[np.maximum(unit_of, 0)], -1)
