"""The arena map on grids: clearance look-ups, and a 2-D cost-to-go that guides the path search."""
from __future__ import annotations

import heapq

import numpy as np

from robot_rl.sim.rc_car.arena import Arena

_MOVES = [(di, dj, float(np.hypot(di, dj))) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]


class ClearanceGrid:
    """``Arena.clearance`` sampled once on a grid, for fast nearest-cell look-ups."""

    def __init__(self, arena: Arena, resolution: float = 0.05):
        if not 0 < resolution < 1:
            raise ValueError(f"resolution={resolution}: expected a cell size in metres between 0 and 1")
        self.arena, self.resolution = arena, resolution
        xmin, xmax, ymin, ymax = arena.bounds
        self.origin = np.array([xmin, ymin])
        self.shape = (int(round((xmax - xmin) / resolution)), int(round((ymax - ymin) / resolution)))
        centres = self.origin + (np.indices(self.shape).transpose(1, 2, 0) + 0.5) * resolution
        self.values = arena.clearance(centres)

    def cells(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Cell indices of points (..., 2); points off the map go to the nearest edge cell."""
        points = np.asarray(points)
        i = ((points[..., 0] - self.origin[0]) / self.resolution).astype(int)
        j = ((points[..., 1] - self.origin[1]) / self.resolution).astype(int)
        rows, cols = self.shape
        return np.minimum(np.maximum(i, 0), rows - 1), np.minimum(np.maximum(j, 0), cols - 1)

    def __call__(self, points) -> np.ndarray:
        """Clearance (m) at each point (..., 2)."""
        return self.values[self.cells(points)]


class CostToGo:
    """Cost of the cheapest 8-connected grid path from every cell to ``goal`` (inf where cut off).

    Cells where the body centre cannot be (clearance below ``clearance``) are blocked; a metre costs
    1 in the open and up to 1 + ``squeeze_cost`` as the clearance falls below ``prefer``.
    """

    def __init__(self, grid: ClearanceGrid, goal, *, clearance: float, prefer: float, squeeze_cost: float,
                 stride: int = 2):
        self.grid, self.stride = grid, stride
        # A coarse cell is as clear as its clearest fine cell, so every point the fine grid lets the
        # car reach has a finite cost here.
        n, m = grid.shape[0] // stride * stride, grid.shape[1] // stride * stride
        values = grid.values[:n, :m].reshape(n // stride, stride, m // stride, stride).max(axis=(1, 3))
        step = grid.resolution * stride
        free = values >= clearance
        weight = step * (1.0 + squeeze_cost * np.clip((prefer - values) / prefer, 0.0, None))
        self.cost = np.full(values.shape, np.inf)
        i, j = grid.cells(goal)
        start = (min(int(i) // stride, values.shape[0] - 1), min(int(j) // stride, values.shape[1] - 1))
        self.cost[start] = 0.0
        frontier = [(0.0, start)]
        rows, cols = values.shape
        while frontier:
            cost, (i, j) = heapq.heappop(frontier)
            if cost > self.cost[i, j]:
                continue
            for di, dj, length in _MOVES:
                a, b = i + di, j + dj
                if 0 <= a < rows and 0 <= b < cols and free[a, b]:
                    new = cost + length * weight[a, b]
                    if new < self.cost[a, b]:
                        self.cost[a, b] = new
                        heapq.heappush(frontier, (new, (a, b)))

    def __call__(self, points) -> np.ndarray:
        i, j = self.grid.cells(points)
        return self.cost[np.minimum(i // self.stride, self.cost.shape[0] - 1),
                         np.minimum(j // self.stride, self.cost.shape[1] - 1)]
