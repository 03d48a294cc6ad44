"""RCCarGoalExpert: hybrid A* in the known arena, then pure pursuit with a speed controller.

The path (forward and reverse segments, see planner.py) is planned once per episode, and again only
if the car strays from it. Each step the expert steers toward a point a look-ahead distance down the
current segment (pure pursuit on the bicycle model about the rear axle, mirrored when reversing), and
sets the target speed (the throttle action; the VESC's speed loop tracks it) from a profile that keeps
lateral acceleration low, slows for large heading errors and tight gaps, and comes to a stop at each
change of direction.
"""
from __future__ import annotations

import numpy as np

from robot_rl.sim.expert import ScriptedExpert
from robot_rl.sim.rc_car.constants import MAX_SPEED, STEER_LIMIT, WHEELBASE
from robot_rl.sim.rc_car.goal import RCCarGoal
from robot_rl.sim.rc_car.grid import ClearanceGrid
from robot_rl.sim.rc_car.planner import SPACING, SearchSettings, Segment, plan_path

CRUISE_SPEED = 2.0      # m/s
REVERSE_SPEED = 0.8     # m/s
TIGHT_SPEED = 0.6       # m/s, where the body passes within a few centimetres of something
LATERAL_ACCEL = 3.0     # m/s^2, well inside the tyres' ~0.9 g
BRAKING = 1.5           # m/s^2, planned deceleration into a change of direction
MOTOR_LAG = 0.2         # s, from a speed command to braking in earnest (motor filter, a step of latency)
REPLAN_DISTANCE = 0.5   # m off the path before planning again
SETTINGS = SearchSettings()


class RCCarGoalExpert(ScriptedExpert):
    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        super().__init__(env, noise, seed)
        if not isinstance(self.env, RCCarGoal):
            raise ValueError(f"RCCarGoalExpert drives an RCCarGoal env, found {type(self.env).__name__}")
        self.grid = ClearanceGrid(self.env.arena)
        self.reset()

    def reset(self) -> None:
        self.segments: list[Segment] | None = None
        self.segment, self.index = 0, 0
        self.cost_to_go = None
        self.goal: np.ndarray | None = None

    def plan(self) -> np.ndarray:
        env = self.env
        x, y, yaw = env.pose()
        rear = np.array([x, y]) - 0.5 * WHEELBASE * np.array([np.cos(yaw), np.sin(yaw)])
        if self.goal is None or not np.array_equal(self.goal, env.goal):
            self.goal = env.goal.copy()
            self.cost_to_go = SETTINGS.cost_to_go(self.grid, self.goal)
            self._replan()
        elif self.segments is None or self._off_path(rear):
            self._replan()
        if self.segments is None:  # boxed in, no drivable path from here: stand still rather than crash
            return np.zeros(2)
        self._advance(rear, env.speed())

        segment = self.segments[self.segment]
        speed = abs(env.speed())
        ahead = float(np.clip(0.6 + 0.3 * speed, 0.6, 1.2))
        target = _point_along(segment, self.index, ahead)
        remaining = (len(segment.points) - 1 - self.index) * SPACING
        limit = CRUISE_SPEED if segment.direction > 0 else REVERSE_SPEED
        # Slow where the path squeezes past something (a tight start): tracking errors grow with speed.
        gap = float(segment.gaps[self.index:self.index + int(1.0 / SPACING)].min())
        limit = min(limit, np.interp(gap, (SETTINGS.start_margin, SETTINGS.margin), (TIGHT_SPEED, limit)))
        if self.segment < len(self.segments) - 1:  # stop at the cusp, allowing for the motor's lag
            braking_room = remaining - 0.05 - MOTOR_LAG * speed
            limit = min(limit, max(np.sqrt(2 * BRAKING * max(braking_room, 0.0)), 0.2))
        return self._pursue(rear, yaw, target, segment.direction, limit, self._curvature(segment))

    # --- tracking ------------------------------------------------------------------------------
    def _pursue(self, rear, yaw, target, direction: float, limit: float, path_curvature: float):
        """Pure pursuit toward ``target``, driving forward (direction +1) or backward (-1)."""
        motion_heading = yaw if direction > 0 else yaw + np.pi
        offset = np.asarray(target) - rear
        distance = max(float(np.linalg.norm(offset)), 0.3)
        alpha = float(_wrap(np.arctan2(offset[1], offset[0]) - motion_heading))
        steer = direction * np.arctan2(2 * WHEELBASE * np.sin(alpha), distance)
        curvature = max(abs(np.tan(steer)) / WHEELBASE, path_curvature)
        speed = min(limit, np.sqrt(LATERAL_ACCEL / max(curvature, 1e-3)),
                    np.interp(abs(alpha), (0.3, 1.2), (limit, 0.5)))
        return np.array([np.clip(steer / STEER_LIMIT, -1, 1), np.clip(direction * speed / MAX_SPEED, -1, 1)])

    def _advance(self, rear: np.ndarray, speed: float) -> None:
        """Move the progress index along the segment; step to the next segment past a cusp."""
        while True:
            segment = self.segments[self.segment]
            window = segment.points[self.index:self.index + 30]
            self.index += int(np.argmin(np.linalg.norm(window - rear, axis=1)))
            if self.segment == len(self.segments) - 1:
                return
            end, heading = segment.points[-1], segment.headings[-1]
            along = segment.direction * np.dot(rear - end, [np.cos(heading), np.sin(heading)])
            close = np.linalg.norm(rear - end) < 0.15
            if not (along > -0.05 or (close and abs(speed) < 0.15)):
                return
            self.segment, self.index = self.segment + 1, 0

    def _off_path(self, rear: np.ndarray) -> bool:
        points = self.segments[self.segment].points[self.index:self.index + 30]
        return float(np.min(np.linalg.norm(points - rear, axis=1))) > REPLAN_DISTANCE

    def _replan(self) -> None:
        self.segments = plan_path(self.grid, self.cost_to_go, self.env.pose(), self.goal, SETTINGS)
        self.segment, self.index = 0, 0

    def _curvature(self, segment: Segment, span: float = 1.0) -> float:
        """Mean curvature (1/m) of the next ``span`` metres: heading change over distance."""
        stop = self.index + max(2, int(span / SPACING))
        headings = segment.headings[self.index:stop + 1]
        if len(headings) < 2:
            return 0.0
        return float(np.abs(np.diff(headings)).sum() / ((len(headings) - 1) * SPACING))


def _point_along(segment: Segment, index: int, distance: float) -> np.ndarray:
    """The point ``distance`` m down the segment from ``index``, carried on straight past its end."""
    steps = int(round(distance / SPACING))
    last = len(segment.points) - 1
    if index + steps <= last:
        return segment.points[index + steps]
    beyond = (index + steps - last) * SPACING
    heading = segment.headings[-1] + (0.0 if segment.direction > 0 else np.pi)
    return segment.points[-1] + beyond * np.array([np.cos(heading), np.sin(heading)])


def _wrap(angle):
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi
