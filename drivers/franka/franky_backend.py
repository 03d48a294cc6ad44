"""The Franka (Panda or FR3) through franky-control 2.x, which ships libfranka: a joint-position Backend
(robot_rl.drivers.backend) for the CommandArbiter.

Motion type: joint position targets, from the project's IK (robot_rl.drivers.franka.ee_controller, which
steps the twin's Cartesian target with the same scaling, safety box and orientation limits), sent as franky
``JointMotion``s that replace each other asynchronously (``asynchronous=True``, ``return_when_finished=False``):
franky's Ruckig trajectory blends from the running motion into the new target without stopping, at
``relative_dynamics_factor`` (default 0.6) of the arm's velocity, acceleration and jerk limits: above the
safety filter's velocity bound (half the limits), so the arm tracks what the filter allows, and well below
the limits, for smooth blends between 10 Hz targets. Why not
Cartesian impedance (SERL's choice, the twin's controller): it is a torque motion, and franky-sim, the
protocol twin these tests run against, serves no torque control, so the impedance path could not be tested
through the real protocol; and through the arbiter every target passes the same joint, velocity and
workspace limits, watchdog and e-stop as the WidowX's. Compliance then comes from libfranka's collision
reflexes (``set_collision_behavior``), not from the controller: keep humans and fixtures clear.

Faults: a motion that died (a libfranka reflex or collision: ControlException; a lost connection:
NetworkException) is found on the next ``read`` (the arbiter's bus tick) and raised as BackendFault, as is
any franky error in a read or a write. libfranka notices a silent robot only after its 1 s UDP receive
timeout; while a motion runs the backend does not wait for it: a robot state whose clock (``state.time``,
1 ms per control cycle) has not moved for ``stale_after`` (0.1 s on an arm; 0.5 s on a loopback address, as
franky-sim's Python loop stalls under load) is a lost connection. With no
motion running (torque off) a read waits for the next state, so a lost robot is found after libfranka's 1 s. ``clear_fault`` runs franky's
automatic error recovery, or reconnects after a lost connection; the next target starts from the measured
pose (the arbiter re-anchors there). Torque off stops the running motion (the arm holds under its own
controller with the brakes open, as Franka's idle mode does).

The gripper is one "joint": one finger's slide in metres, half the Franka Hand's width. A changed target
starts ``Gripper.move_async`` once the previous gripper command has finished (the hand runs one command at a
time).

Real time: on a loopback host (the protocol twin) libfranka's real-time check is skipped; any other host
needs a PREEMPT_RT kernel (libfranka refuses to control otherwise). Faults and Ctrl-C stop the motion.
"""
from __future__ import annotations

import ipaddress
import threading
import time

import numpy as np

from robot_rl.drivers.backend import BackendFault, JointReading
from robot_rl.sim.franka import panda

JOINT_NAMES = (*panda.JOINT_NAMES, "finger")
GRIPPER_SPEED = 0.1  # m/s of width: the Franka Hand's top speed (Franka's datasheet)
GRIPPER_DEADBAND = 0.002  # m of width: smaller changes are not worth a gripper command
TARGET_DEADBAND = 1e-6  # rad: a resent target this close to the running one is not a new motion
STALE_AFTER = 0.1  # s without a new robot state during a motion: the arm's 1 kHz loop has stopped answering
# franky-sim's loop is Python: on a loaded 2-core machine it stalls for 100-300 ms now and then (measured by
# benchmarks/control_bench.py), which the arm's real-time loop never does
STALE_AFTER_LOOPBACK = 0.5


class FrankyBackend:
    joint_names = JOINT_NAMES

    def __init__(self, host: str, relative_dynamics_factor: float = 0.6, realtime: bool | None = None,
                 stale_after: float | None = None):
        if not 0.0 < relative_dynamics_factor <= 1.0:
            raise ValueError(f"relative_dynamics_factor: expected a fraction in (0, 1], found {relative_dynamics_factor}")
        self.host = host
        self.relative_dynamics_factor = relative_dynamics_factor
        self.realtime = not _is_loopback(host) if realtime is None else realtime
        self.robot = None
        self.gripper = None
        self._sent: np.ndarray | None = None   # the arm target of the running motion
        self._moving = False
        self._width_sent: float | None = None
        self._gripper_future = None
        self._lost = False                     # the connection is gone: clear_fault reconnects
        self.stale_after = stale_after if stale_after is not None else (
            STALE_AFTER_LOOPBACK if _is_loopback(host) else STALE_AFTER)
        self._robot_time, self._fresh_at = None, 0.0  # the state's clock, and when it last moved (monotonic)
        self._width, self._width_at, self._gripper_error = 0.0, 0.0, None
        self._gripper_stop = threading.Event()
        self._gripper_thread: threading.Thread | None = None

    def connect(self) -> None:
        import franky

        from robot_rl.datasets.formats.video import caller_scheduling_kept

        config = franky.RealtimeConfig.Enforce if self.realtime else franky.RealtimeConfig.Ignore
        try:
            # libfranka makes the constructing thread SCHED_FIFO 99; its control loop runs in franky's own thread
            with caller_scheduling_kept():
                self.robot = franky.Robot(self.host, realtime_config=config)
            self.robot.relative_dynamics_factor = self.relative_dynamics_factor
            self.gripper = franky.Gripper(self.host)
        except Exception as err:  # franky raises its own exception types, none derived from one base
            self.robot = self.gripper = None
            raise BackendFault(f"franky: no Franka answers at {self.host} ({type(err).__name__}: {err}); check the "
                               "robot's IP, that FCI is activated in Desk and the brakes are open") from None
        self._lost, self._sent, self._moving, self._width_sent, self._gripper_future = False, None, False, None, None
        self._width, self._width_at, self._gripper_error = self.gripper.width, time.monotonic(), None
        self._gripper_stop.clear()
        self._gripper_thread = threading.Thread(target=self._read_gripper, name="franka-gripper", daemon=True)
        self._gripper_thread.start()

    def read(self) -> JointReading:
        robot = self._connected()
        self._check_motion()
        try:
            state = robot.state
        except Exception as err:
            self._lost = True
            raise BackendFault(f"franky: reading the state failed ({type(err).__name__}: {err})") from None
        now = time.monotonic()
        self._check_fresh(state.time.to_msec(), now)
        if self._gripper_error is not None or now - self._width_at > self.stale_after + 1.0:
            self._lost = True
            raise BackendFault(f"franky: the gripper stopped answering ({self._gripper_error or 'no state'})")
        position = np.append(np.asarray(state.q, dtype=float), 0.5 * self._width)
        velocity = np.append(np.asarray(state.dq, dtype=float), 0.0)
        effort = np.append(np.asarray(state.tau_J, dtype=float), 0.0)
        return JointReading(position, velocity, effort, now)

    def write(self, targets: np.ndarray) -> None:
        import franky

        targets = np.asarray(targets, dtype=float)
        if targets.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(targets)):
            raise ValueError(f"targets: expected {len(JOINT_NAMES)} finite values ({', '.join(JOINT_NAMES)}), "
                             f"found {targets}")
        robot = self._connected()
        arm = targets[:7]
        try:
            if not self._moving or self._sent is None or np.max(np.abs(arm - self._sent)) > TARGET_DEADBAND:
                robot.move(franky.JointMotion(arm, return_when_finished=False), asynchronous=True)
                self._sent, self._moving = arm.copy(), True
            self._command_gripper(2.0 * float(targets[7]))
        except Exception as err:
            raise BackendFault(f"franky: sending the motion failed ({type(err).__name__}: {err})") from None

    def set_torque(self, enabled: bool) -> None:
        if not enabled:
            self._stop_motion()

    def clear_fault(self) -> None:
        if self._lost or self.robot is None:
            self.close()
            self.connect()
            return
        try:
            self._stop_motion()
            if not self.robot.recover_from_errors():
                raise BackendFault("franky: the automatic error recovery did not succeed; release the arm in Desk")
        except BackendFault:
            raise
        except Exception as err:
            raise BackendFault(f"franky: error recovery failed ({type(err).__name__}: {err})") from None
        self._sent, self._moving = None, False

    def close(self) -> None:
        if self.robot is not None and not self._lost:
            try:
                self._stop_motion()
            except BackendFault:
                pass
        self._gripper_stop.set()
        if self._gripper_thread is not None:
            self._gripper_thread.join()
            self._gripper_thread = None
        if self._gripper_future is not None and not self._lost:
            self._gripper_future.wait(2.0)  # a gripper freed under its running command crashes the process
        self.robot = None
        self.gripper = None
        self._sent, self._moving, self._gripper_future = None, False, None

    # --- helpers ---------------------------------------------------------------------------------------

    def _connected(self):
        if self.robot is None:
            raise BackendFault(f"franky: not connected to {self.host}; clear the fault to reconnect")
        return self.robot

    def _check_motion(self) -> None:
        """A running motion that ended means the robot stopped it: surface why (a reflex, a lost link)."""
        if not self._moving or self.robot.is_in_control:
            return
        self._moving, self._sent = False, None
        try:
            self.robot.join_motion(0.0)
        except Exception as err:
            name = type(err).__name__
            self._lost = name == "NetworkException"
            raise BackendFault(f"franky: the motion stopped ({name}: {err})") from None
        raise BackendFault("franky: the motion stopped without an error (preempted by Desk or the user stop)")

    def _check_fresh(self, robot_time: int, now: float) -> None:
        """While a motion runs the state comes from the 1 kHz control loop: a frozen clock is a lost link."""
        if robot_time != self._robot_time or not self._moving:
            self._robot_time, self._fresh_at = robot_time, now
        elif now - self._fresh_at > self.stale_after:
            self._lost = True
            raise BackendFault(f"franky: no robot state for {now - self._fresh_at:.2f} s during a motion "
                               f"(the connection to {self.host} is lost)")

    def _read_gripper(self) -> None:
        gripper = self.gripper
        while not self._gripper_stop.wait(0.02):
            try:
                self._width, self._width_at = gripper.width, time.monotonic()
            except Exception as err:
                self._gripper_error = f"{type(err).__name__}: {err}"
                return

    def _command_gripper(self, width: float) -> None:
        if self._width_sent is not None and abs(width - self._width_sent) < GRIPPER_DEADBAND:
            return
        if self._gripper_future is not None and not self._gripper_future.wait(0.0):
            return  # the hand is busy: the next write retries
        self._gripper_future = self.gripper.move_async(width, GRIPPER_SPEED)
        self._width_sent = width

    def _stop_motion(self) -> None:
        if self.robot is None:
            return
        try:
            if self.robot.is_in_control:
                self.robot.stop()
                self.robot.join_motion(1.0)
        except Exception as err:
            name = type(err).__name__
            if name == "NetworkException":
                self._lost = True
            if name != "ControlException":  # a preempted motion reports as a ControlException: expected
                raise BackendFault(f"franky: stopping the motion failed ({name}: {err})") from None
        finally:
            self._sent, self._moving = None, False


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
