"""The arena's 2-D map, read from the MJCF: every world geom that the car's body can hit.

Walls and obstacles are boxes (with a yaw) or upright cylinders; ``clearance`` gives the distance from
points on the floor to the nearest of them (negative inside), the one geometric query the task's
start/goal sampling and the expert's planner both use.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robot_rl.sim.rc_car.constants import BODY_HALF_LENGTH, BODY_HALF_WIDTH

OBSTACLE_BIT = 2  # conaffinity bit of walls and obstacles (see arena.xml)


@dataclass(frozen=True)
class Arena:
    box_centers: np.ndarray    # (B, 2) m
    box_halves: np.ndarray     # (B, 2) m, half extents along the box's own x and y
    box_yaws: np.ndarray       # (B,) rad
    cyl_centers: np.ndarray    # (C, 2) m
    cyl_radii: np.ndarray      # (C,) m
    bounds: tuple[float, float, float, float]  # (xmin, xmax, ymin, ymax) of the walled floor, m

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> Arena:
        boxes, cylinders = [], []
        for g in range(model.ngeom):
            if model.geom_bodyid[g] != 0 or not model.geom_conaffinity[g] & OBSTACLE_BIT:
                continue
            w, x, y, z = model.geom_quat[g]
            yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
            pos, size = model.geom_pos[g, :2], model.geom_size[g]
            if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX:
                boxes.append((*pos, *size[:2], yaw))
            elif model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CYLINDER:
                cylinders.append((*pos, size[0]))
            else:
                raise ValueError(f"obstacle geom {model.geom(g).name!r}: only boxes and cylinders are mapped")
        boxes, cylinders = np.array(boxes).reshape(-1, 5), np.array(cylinders).reshape(-1, 3)
        return cls(boxes[:, :2], boxes[:, 2:4], boxes[:, 4], cylinders[:, :2], cylinders[:, 2],
                   _walled_bounds(model, boxes))

    def clearance(self, points) -> np.ndarray:
        """Distance (m) from each point (..., 2) to the nearest wall or obstacle; negative inside one."""
        points = np.asarray(points, dtype=np.float64)
        flat = points.reshape(-1, 2)
        rel = flat[:, None, :] - self.box_centers[None]                      # (N, B, 2)
        cos, sin = np.cos(self.box_yaws), np.sin(self.box_yaws)
        local = np.stack([rel[..., 0] * cos + rel[..., 1] * sin, -rel[..., 0] * sin + rel[..., 1] * cos], -1)
        excess = np.abs(local) - self.box_halves[None]
        outside = np.linalg.norm(np.maximum(excess, 0.0), axis=-1)
        inside = np.minimum(excess.max(-1), 0.0)
        nearest = (outside + inside).min(1)
        if len(self.cyl_radii):
            to_cyl = np.linalg.norm(flat[:, None, :] - self.cyl_centers[None], axis=-1) - self.cyl_radii[None]
            nearest = np.minimum(nearest, to_cyl.min(1))
        return nearest.reshape(points.shape[:-1])

    def body_clearance(self, pose) -> float:
        """Least clearance (m) of the car's body box at ``pose`` = (x, y, yaw) of its centre."""
        return float(self.clearance(body_outline(np.asarray(pose, dtype=float)[None])).min())

    def sample_free(self, rng: np.random.Generator, clearance: float, count: int = 1) -> np.ndarray:
        """``count`` points drawn uniformly from the floor at least ``clearance`` m from everything."""
        xmin, xmax, ymin, ymax = self.bounds
        found = np.empty((0, 2))
        while len(found) < count:
            candidates = rng.uniform((xmin, ymin), (xmax, ymax), size=(4 * count, 2))
            found = np.concatenate([found, candidates[self.clearance(candidates) >= clearance]])
        return found[:count]


def _outline(spacing: float = 0.1) -> np.ndarray:
    """Points around the body box (body frame, origin at its centre), at most ``spacing`` apart."""
    xs = np.linspace(-BODY_HALF_LENGTH, BODY_HALF_LENGTH, int(np.ceil(2 * BODY_HALF_LENGTH / spacing)) + 1)
    ys = np.linspace(-BODY_HALF_WIDTH, BODY_HALF_WIDTH, int(np.ceil(2 * BODY_HALF_WIDTH / spacing)) + 1)[1:-1]
    sides = [np.stack([xs, np.full_like(xs, y)], 1) for y in (-BODY_HALF_WIDTH, BODY_HALF_WIDTH)]
    ends = [np.stack([np.full_like(ys, x), ys], 1) for x in (-BODY_HALF_LENGTH, BODY_HALF_LENGTH)]
    return np.concatenate(sides + ends)


OUTLINE = _outline()
# How far a wall corner or an obstacle can reach in between two outline points 0.1 m apart.
OUTLINE_SLACK = 0.05


def body_outline(poses) -> np.ndarray:
    """The outline points (..., K, 2) of the body box at poses (..., 3) = (x, y, yaw) of its centre."""
    poses = np.asarray(poses, dtype=float)
    cos, sin = np.cos(poses[..., 2])[..., None], np.sin(poses[..., 2])[..., None]
    xs = poses[..., 0, None] + OUTLINE[:, 0] * cos - OUTLINE[:, 1] * sin
    ys = poses[..., 1, None] + OUTLINE[:, 0] * sin + OUTLINE[:, 1] * cos
    return np.stack([xs, ys], -1)


def _walled_bounds(model: mujoco.MjModel, boxes: np.ndarray) -> tuple[float, float, float, float]:
    """The inner faces of the walls: axis-aligned boxes as long as the floor, one per side."""
    floors = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE]
    if not floors:
        raise ValueError("the arena has no floor plane: add a plane geom to the worldbody")
    floor_half = model.geom_size[floors[0], :2].min()
    faces = {"xmin": [], "xmax": [], "ymin": [], "ymax": []}
    for cx, cy, hx, hy, _ in boxes[np.maximum(boxes[:, 2], boxes[:, 3]) >= 0.9 * floor_half]:
        if hy > hx:  # runs along y: an east or west wall
            faces["xmax" if cx > 0 else "xmin"].append(cx - hx if cx > 0 else cx + hx)
        else:
            faces["ymax" if cy > 0 else "ymin"].append(cy - hy if cy > 0 else cy + hy)
    missing = [side for side, found in faces.items() if not found]
    if missing:
        raise ValueError(f"the arena has no wall on side(s) {missing}: the floor must be walled in")
    return (max(faces["xmin"]), min(faces["xmax"]), max(faces["ymin"]), min(faces["ymax"]))
