"""Path planning in the known arena: hybrid A* over the car's pose, guided by a 2-D grid search.

A* over (x, y, heading) of the rear axle, with short constant-steer arcs forward and backward as moves
(the bicycle model, so every path is drivable: a car facing a wall backs up first), the 2-D
``CostToGo`` as its heuristic, and the body box kept ``margin`` m clear of walls and obstacles.
The result is a list of ``Segment``s, one per driving direction, for pure pursuit.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from robot_rl.sim.rc_car.arena import OUTLINE_SLACK, body_outline
from robot_rl.sim.rc_car.constants import BODY_HALF_WIDTH, STEER_LIMIT, WHEELBASE
from robot_rl.sim.rc_car.grid import ClearanceGrid, CostToGo

SPACING = 0.05  # m between the points of a planned segment


@dataclass(frozen=True)
class SearchSettings:
    step: float = 0.3              # m of arc per move
    steer_fraction: float = 0.75   # of the steering limit: leaves the path follower room to correct
    tight_steer_fraction: float = 0.9  # for manoeuvres out of a tight spot, at low speed
    headings: int = 24             # heading bins
    cell: float = 0.1              # m, position bins
    margin: float = 0.12           # m, least gap between the body and walls or obstacles on the path
    start_margin: float = 0.03     # m, the least gap in the first metres if ``margin`` finds no path
    start_distance: float = 2.0    # m
    prefer: float = 0.4            # m, gap below which driving costs more
    squeeze_cost: float = 6.0      # extra cost per metre at zero gap, relative to driving in the open
    reverse_cost: float = 3.0      # per metre backwards, relative to forwards
    switch_cost: float = 0.6       # per change of direction
    steer_cost: float = 0.05       # per change of steering
    goal_tolerance: float = 0.2    # m, body centre to goal
    max_expansions: int = 20000
    greed: float = 1.5             # heuristic weight (weighted A*): a little longer paths, found faster
    # What CostToGo should block: where the body centre can never be (closer than the body's half-width).
    centre_clearance: float = BODY_HALF_WIDTH

    def cost_to_go(self, grid: ClearanceGrid, goal) -> CostToGo:
        """The heuristic for a search toward ``goal``, on the same costs as the search."""
        return CostToGo(grid, goal, clearance=self.centre_clearance, prefer=BODY_HALF_WIDTH + self.prefer,
                        squeeze_cost=self.squeeze_cost)


@dataclass(frozen=True)
class Segment:
    points: np.ndarray   # (N, 2) rear-axle positions, SPACING apart
    headings: np.ndarray  # (N,) rad
    direction: float     # +1 forward, -1 reverse
    gaps: np.ndarray     # (N,) m between the body and the nearest wall or obstacle at each point


def body_gap(grid: ClearanceGrid, rear_poses) -> np.ndarray:
    """Gap (m) between the body box and the nearest wall or obstacle for rear-axle poses (..., 3)."""
    poses = np.asarray(rear_poses, dtype=float)
    centres = poses.copy()
    centres[..., 0] += 0.5 * WHEELBASE * np.cos(poses[..., 2])
    centres[..., 1] += 0.5 * WHEELBASE * np.sin(poses[..., 2])
    return grid(body_outline(centres)).min(-1) - OUTLINE_SLACK


def plan_path(grid: ClearanceGrid, cost_to_go: CostToGo, pose, goal,
              settings: SearchSettings = SearchSettings()) -> list[Segment] | None:
    """Drivable segments from ``pose`` = (x, y, yaw) of the body centre to ``goal``, or None.

    The path keeps ``margin`` everywhere if it can; if not (the car starts boxed in, or noise pushed
    it close to something), its first ``start_distance`` metres may pass as close as ``start_margin``
    and turn more sharply.
    """
    gentle = np.array([-1.0, 0.0, 1.0]) * settings.steer_fraction * STEER_LIMIT
    path = _search(grid, cost_to_go, pose, goal, settings, settings.margin, gentle)
    if path is None:
        tight = np.concatenate([gentle, np.array([-1.0, 1.0]) * settings.tight_steer_fraction * STEER_LIMIT])
        path = _search(grid, cost_to_go, pose, goal, settings, settings.start_margin, tight)
    return path


class _Moves:
    """Every move's arc in the frame of the rear axle it starts from: end poses, body outlines along it."""

    def __init__(self, steers: np.ndarray, step: float, samples: int = 3):
        self.direction = np.repeat([1.0, -1.0], len(steers))
        self.steer = np.tile(np.arange(len(steers)), 2)
        curvature = np.tile(np.tan(steers) / WHEELBASE, 2)[:, None]
        s = self.direction[:, None] * step * np.arange(1, samples + 1) / samples          # (M, S)
        heading = curvature * s
        bent = np.abs(curvature) > 1e-9
        k = np.where(bent, curvature, 1.0)
        x = np.where(bent, np.sin(heading) / k, s)
        y = np.where(bent, (1 - np.cos(heading)) / k, 0.0)
        poses = np.stack([x, y, heading], -1)                                             # (M, S, 3)
        self.end = poses[:, -1]
        centres = poses.copy()
        centres[..., 0] += 0.5 * WHEELBASE * np.cos(heading)
        centres[..., 1] += 0.5 * WHEELBASE * np.sin(heading)
        self.end_centre = centres[:, -1, :2]                                              # (M, 2)
        self.outline = body_outline(centres).reshape(len(self.direction), -1, 2)          # (M, S*K, 2)


def _search(grid: ClearanceGrid, cost_to_go: CostToGo, pose, goal, s: SearchSettings,
            start_margin: float, steers: np.ndarray) -> list[Segment] | None:
    moves = _Moves(steers, s.step)
    goal = np.asarray(goal, dtype=float)
    x, y, yaw = (float(v) for v in pose)
    start = (x - 0.5 * WHEELBASE * math.cos(yaw), y - 0.5 * WHEELBASE * math.sin(yaw), yaw)
    heading_bin = 2 * math.pi / s.headings

    def key(state):
        return (math.floor(state[0] / s.cell), math.floor(state[1] / s.cell),
                round(state[2] / heading_bin) % s.headings)

    nodes = [(start, -1, 0.0, -1, 0.0)]  # (state, parent, direction of the move into it, steer, metres)
    best = {key(start): 0.0}
    frontier = [(0.0, 0.0, 0)]
    found = None
    for _ in range(s.max_expansions):
        if not frontier:
            break
        _, cost, index = heapq.heappop(frontier)
        state, _, last_dir, last_steer, travelled = nodes[index]
        rx, ry, ryaw = state
        c, si = math.cos(ryaw), math.sin(ryaw)
        centre = (rx + 0.5 * WHEELBASE * c, ry + 0.5 * WHEELBASE * si)
        if math.hypot(centre[0] - goal[0], centre[1] - goal[1]) <= s.goal_tolerance:
            found = index
            break
        if cost > best.get(key(state), math.inf) + 1e-9:
            continue
        rotation = np.array([[c, si], [-si, c]])
        outline = moves.outline @ rotation + (rx, ry)
        gaps = grid(outline).min(1) - OUTLINE_SLACK
        ok = gaps >= (start_margin if travelled < s.start_distance else s.margin)
        to_go = cost_to_go(moves.end_centre @ rotation + (rx, ry))
        ends = moves.end[:, :2] @ rotation + (rx, ry)
        for m in np.flatnonzero(ok & np.isfinite(to_go)):
            direction, steer = moves.direction[m], moves.steer[m]
            penalty = 1.0 + s.squeeze_cost * max(0.0, (s.prefer - gaps[m]) / s.prefer)
            new = cost + s.step * penalty * (1.0 if direction > 0 else s.reverse_cost)
            if last_dir and direction != last_dir:
                new += s.switch_cost
            if steer != last_steer:
                new += s.steer_cost
            child = (float(ends[m, 0]), float(ends[m, 1]), ryaw + float(moves.end[m, 2]))
            k = key(child)
            if new < best.get(k, math.inf):
                best[k] = new
                nodes.append((child, index, direction, steer, travelled + s.step))
                heapq.heappush(frontier, (new + s.greed * float(to_go[m]), new, len(nodes) - 1))
    if found is None:
        return None
    return [Segment(points, headings, direction, body_gap(grid, np.column_stack([points, headings])))
            for points, headings, direction in _split(nodes, found)]


def _split(nodes, last: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The chain of nodes ending at ``last`` as evenly resampled pieces of one driving direction."""
    chain = []
    while last >= 0:
        chain.append(nodes[last])
        last = nodes[last][1]
    chain.reverse()
    pieces, current = [], [chain[0][0]]
    direction = chain[1][2] if len(chain) > 1 else 1.0
    for state, _, move_dir, _, _ in chain[1:]:
        if move_dir != direction:
            pieces.append(_resample(current, direction))
            current, direction = [current[-1]], move_dir
        current.append(state)
    pieces.append(_resample(current, direction))
    return pieces


def _resample(states, direction: float) -> tuple[np.ndarray, np.ndarray, float]:
    states = np.array(states)
    if len(states) == 1:
        return states[:, :2], states[:, 2], direction
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(states[:, :2], axis=0), axis=1))])
    stations = np.linspace(0.0, along[-1], max(2, int(np.ceil(along[-1] / SPACING)) + 1))
    points = np.stack([np.interp(stations, along, states[:, 0]), np.interp(stations, along, states[:, 1])], 1)
    headings = np.interp(stations, along, np.unwrap(states[:, 2]))
    return points, headings, direction


