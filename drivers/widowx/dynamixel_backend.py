"""The real WidowX 250 S: its Dynamixel chain behind a U2D2, through ROBOTIS' dynamixel-sdk (Protocol 2.0).

    backend = WidowXDynamixelBackend("/dev/ttyDXL", config=load_widowx_config())
    backend.connect(); backend.set_torque(True); backend.write(targets); reading = backend.read()

Servo IDs, models, shadows, directions, offsets and profile registers come from
robot_rl/configs/hardware/widowx.yaml. Units follow drivers/backend.py: arm joints in rad, the gripper as one
finger's slide in metres (half the pad distance, ticks mapped by robot_rl.sim.widowx.servos).

One read() is one Sync Read of Present Current..Present Position (126..135) from every servo, shadows
included (their answers are only checked: a shadow in overload or off the bus is a fault too). One
write() is one Sync Write of Goal Position to the master servos; the shadows follow through Secondary ID.

Fault detection is bounded: a read that gets no answer at all within the SDK's sync-read timeout (about
36 ms) listens ``LATE_ANSWERS_MS`` more (a loaded host's answers can be late; a silent bus stays silent),
then asks whether the port itself is gone (its device node vanished, or the tty reports a hang-up: an
unplugged U2D2) and says so at once. Any other failed transaction asks about the port first too. A read
that misses some servos or all of them (a whole silent bus: servo power lost, or one answer a loaded
host's USB path delivered late) is retried ``comm_retries`` times (2: a silent bus is reported within
about 160 ms, benchmarks/control_bench.py --only-faults; and a host stalled for up to ~100 ms, as a VM's vCPU is when the hypervisor takes it, is
not a power loss). Set-up and recovery transactions (pings, single register
reads and writes) are retried ``setup_retries`` times.

Effort is approximate: XM430-W350 Present Current x 2.69 mA x 1.78 N m/A (stall torque over stall current
at 12 V; the real curve is not linear), times the number of servos on the joint (a shadow carries an equal
share); the XL430-W250 reports Present Load in 0.1 % of full load, scaled by the joint's
``full_load_effort``. Gripper velocity is the horn's tick rate through the linear tick-to-width map.
"""
from __future__ import annotations

import math
import os
import select
import termios
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import dynamixel_sdk as dxl
import numpy as np

from robot_rl.drivers.backend import BackendFault, JointReading
from robot_rl.sim.widowx import robot as wx
from robot_rl.sim.widowx.servos import (
    TICKS_PER_REV,
    rad_to_ticks,
    ticks_to_rad,
    ticks_to_width,
    width_to_ticks,
)

MODEL_NUMBERS = {"XM430-W350": 1020, "XL430-W250": 1060}
MODEL_NAMES = {number: name for name, number in MODEL_NUMBERS.items()}

ADDR_DRIVE_MODE, ADDR_OPERATING_MODE, ADDR_SECONDARY_ID = 10, 11, 12
ADDR_TORQUE_ENABLE, ADDR_HARDWARE_ERROR = 64, 70
ADDR_PROFILE_ACCELERATION, ADDR_PROFILE_VELOCITY, ADDR_GOAL_POSITION = 108, 112, 116
ADDR_PRESENT_CURRENT, ADDR_PRESENT_VELOCITY, ADDR_PRESENT_POSITION = 126, 128, 132
READ_LENGTH = 10  # Present Current (2) + Present Velocity (4) + Present Position (4)
REVERSE_DRIVE_BIT = 0x01
ALERT_BIT = 0x80
NO_SECONDARY_ID = 255

RAD_PER_S_PER_VELOCITY_UNIT = 0.229 * 2 * math.pi / 60
XM430_AMP_PER_CURRENT_UNIT = 2.69e-3
XM430_NM_PER_AMP = 4.1 / 2.3
XL430_LOAD_FULL_SCALE = 1000  # Present Load is in 0.1 %
HARDWARE_ERROR_BITS = {0: "input voltage", 2: "overheating", 3: "motor encoder", 4: "electrical shock",
                       5: "overload"}
PORT_ERRORS = (OSError, termios.error)  # serial.SerialException is an OSError
LATE_ANSWERS_MS = 15.0  # after a sync read's timeout with no answer: how long more to listen
RETRY_PAUSE_S = 0.01    # between tries of a set-up transaction that got no answer


def load_widowx_config(path: str | Path | None = None) -> dict:
    """The robot config (robot_rl/configs/hardware/widowx.yaml unless ``path``) as a plain dict."""
    from omegaconf import OmegaConf

    source = Path(path) if path else resources.files("robot_rl.configs") / "hardware" / "widowx.yaml"
    return OmegaConf.to_container(OmegaConf.create(source.read_text()), resolve=True)


@dataclass(frozen=True)
class JointServo:
    """One joint as the config describes it."""
    joint: str
    id: int
    model: str
    shadow_id: int | None
    direction: int
    offset: float
    limits: tuple[float, float]
    operating_mode: int
    profile_velocity: int
    profile_acceleration: int
    full_load_effort: float

    @property
    def gripper(self) -> bool:
        return self.joint == "gripper"

    @property
    def servo_ids(self) -> tuple[int, ...]:
        return (self.id,) if self.shadow_id is None else (self.id, self.shadow_id)


def _parse_joints(config: dict) -> list[JointServo]:
    joints = config.get("joints") or {}
    missing = [name for name in wx.JOINT_NAMES if name not in joints]
    if missing:
        raise ValueError(f"robot config: joints.{missing[0]} is missing; expected entries for {', '.join(wx.JOINT_NAMES)}")
    parsed = []
    for name in wx.JOINT_NAMES:
        entry = joints[name]
        if entry["model"] not in MODEL_NUMBERS:
            raise ValueError(f"robot config: joints.{name}.model is {entry['model']!r}; expected one of "
                             f"{', '.join(MODEL_NUMBERS)}")
        direction = int(entry.get("direction", 1))
        if direction not in (1, -1) or (name == "gripper" and direction != 1):
            raise ValueError(f"robot config: joints.{name}.direction is {direction}; expected +1 or -1 "
                             "(+1 for the gripper)")
        parsed.append(JointServo(
            joint=name, id=int(entry["id"]), model=entry["model"], shadow_id=entry.get("shadow_id"),
            direction=direction, offset=float(entry.get("offset", 0.0)),
            limits=tuple(float(v) for v in entry["limits"]), operating_mode=int(entry.get("operating_mode", 3)),
            profile_velocity=int(entry.get("profile_velocity", 0)),
            profile_acceleration=int(entry.get("profile_acceleration", 0)),
            full_load_effort=float(entry.get("full_load_effort", 0.0))))
    return parsed


def _signed(raw: list[int] | bytes, start: int, size: int) -> int:
    return int.from_bytes(bytes(raw[start:start + size]), "little", signed=True)


def describe_hardware_error(status: int) -> str:
    names = [label for bit, label in HARDWARE_ERROR_BITS.items() if status & (1 << bit)]
    return ", ".join(names) or f"unknown bits 0x{status:02x}"


class WidowXDynamixelBackend:
    joint_names = wx.JOINT_NAMES

    def __init__(self, port: str | None = None, baudrate: int | None = None, config: dict | None = None):
        self.config = config if config is not None else load_widowx_config()
        self.port_name = str(port or self.config.get("port", "/dev/ttyDXL"))
        self.baudrate = int(baudrate or self.config.get("baudrate", 1_000_000))
        self.joints = _parse_joints(self.config)
        self.limits = np.array([j.limits for j in self.joints])
        self.comm_retries = int(self.config.get("comm_retries", 2))
        self.setup_retries = int(self.config.get("setup_retries", 3))
        self.reboot_timeout_s = float(self.config.get("reboot_timeout_s", 2.0))
        self._servo_label = {}
        for j in self.joints:
            self._servo_label[j.id] = f"servo ID {j.id} ({j.joint})"
            if j.shadow_id is not None:
                self._servo_label[j.shadow_id] = f"servo ID {j.shadow_id} ({j.joint} shadow)"
        self.servo_ids = tuple(sorted(self._servo_label))
        self._packets = dxl.PacketHandler(2.0)
        self._port: dxl.PortHandler | None = None
        self._port_lost = False
        self._lock = threading.RLock()

    # --- life cycle ---------------------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            self._open_port()
            try:
                self._identify()
                self._configure()
            except BackendFault:
                self._close_port()  # a failed connect leaves nothing open
                raise

    def close(self) -> None:
        with self._lock:
            if self._port is None:
                return
            if not self._port_lost:
                try:
                    self._sync_write(ADDR_TORQUE_ENABLE, 1, {i: 0 for i in self.servo_ids})
                except BackendFault:
                    pass  # best effort: the port is closed either way
            self._close_port()

    # --- Backend ------------------------------------------------------------------------------
    def read(self) -> JointReading:
        with self._lock:
            raw = self._sync_read_present()
            stamp = time.monotonic()
        position, velocity, effort = (np.empty(len(self.joints)) for _ in range(3))
        for k, joint in enumerate(self.joints):
            data = raw[joint.id]
            current, speed, ticks = _signed(data, 0, 2), _signed(data, 2, 4), _signed(data, 6, 4)
            position[k] = self._ticks_to_joint(joint, ticks)
            velocity[k] = self._speed_to_joint(joint, speed)
            effort[k] = self._current_to_effort(joint, current)
        return JointReading(position, velocity, effort, stamp)

    def write(self, targets: np.ndarray) -> None:
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (len(self.joints),):
            raise ValueError(f"targets: expected {len(self.joints)} values ({', '.join(self.joint_names)}), "
                             f"found shape {targets.shape}")
        goals = {j.id: self._joint_to_ticks(j, q) for j, q in zip(self.joints, targets)}
        with self._lock:
            self._sync_write(ADDR_GOAL_POSITION, 4, goals)

    def set_torque(self, enabled: bool) -> None:
        with self._lock:
            if enabled:  # hold where the joints are: Goal Position = Present Position, then torque
                raw = self._sync_read_present()
                self._sync_write(ADDR_GOAL_POSITION, 4, {j.id: _signed(raw[j.id], 6, 4) for j in self.joints})
            self._sync_write(ADDR_TORQUE_ENABLE, 1, {i: int(enabled) for i in self.servo_ids})

    def clear_fault(self) -> None:
        """Reopen a lost port, reboot servos with a hardware error or no answer, re-apply the configuration."""
        with self._lock:
            if self._port is None or self._port_lost:
                self._close_port()
                self._open_port()
            troubled = [i for i in self.servo_ids if self._needs_reboot(i)]
            for servo_id in troubled:
                self._call(f"reboot {self._servo_label[servo_id]}", self._packets.reboot, self._port, servo_id)
            still_wrong = [self._servo_label[i] for i in troubled if not self._wait_for(i)]
            if still_wrong:
                raise BackendFault(f"{', '.join(still_wrong)} did not come back within {self.reboot_timeout_s} s "
                                   f"of a reboot on {self.port_name}: check its cable and power")
            self._identify()
            self._configure()

    # --- units --------------------------------------------------------------------------------
    @staticmethod
    def _ticks_to_joint(joint: JointServo, ticks: int) -> float:
        if joint.gripper:
            return ticks_to_width(ticks) / 2 + joint.offset
        return joint.direction * ticks_to_rad(ticks) + joint.offset

    @staticmethod
    def _joint_to_ticks(joint: JointServo, value: float) -> int:
        if joint.gripper:
            ticks = width_to_ticks(2 * (value - joint.offset))
        else:
            ticks = rad_to_ticks(joint.direction * (value - joint.offset))
        return int(np.clip(round(ticks), 0, TICKS_PER_REV - 1))  # the register's range in position mode

    @staticmethod
    def _speed_to_joint(joint: JointServo, speed: int) -> float:
        rad_per_s = speed * RAD_PER_S_PER_VELOCITY_UNIT
        if joint.gripper:
            ticks_per_s = rad_per_s * TICKS_PER_REV / (2 * math.pi)
            return (ticks_to_width(ticks_per_s) - ticks_to_width(0)) / 2
        return joint.direction * rad_per_s

    @staticmethod
    def _current_to_effort(joint: JointServo, current: int) -> float:
        if joint.model == "XM430-W350":
            torque = current * XM430_AMP_PER_CURRENT_UNIT * XM430_NM_PER_AMP
        else:
            torque = current / XL430_LOAD_FULL_SCALE * joint.full_load_effort
        return joint.direction * torque * len(joint.servo_ids)

    # --- the bus ------------------------------------------------------------------------------
    def _open_port(self) -> None:
        port = dxl.PortHandler(self.port_name)
        try:
            opened = port.openPort() and port.setBaudRate(self.baudrate)
        except PORT_ERRORS as error:
            opened, reason = False, str(error)
        else:
            reason = "openPort/setBaudRate failed"
        if not opened:
            if port.ser is not None:
                port.ser.close()
            raise BackendFault(f"cannot open {self.port_name} at {self.baudrate} baud ({reason}): check the U2D2 "
                               f"cable, or the udev rule / permissions of {self.port_name} (dialout group)")
        self._port, self._port_lost = port, False

    def _close_port(self) -> None:
        if self._port is not None and self._port.ser is not None:
            try:
                self._port.ser.close()
            except PORT_ERRORS:
                pass
        self._port = None

    def _require_port(self) -> dxl.PortHandler:
        if self._port is None:
            raise BackendFault(f"{self.port_name} is not open: call connect() first")
        if self._port_lost:
            raise BackendFault(f"lost the serial port {self.port_name} (U2D2 unplugged?): plug it back in and "
                               "call clear_fault()")
        return self._port

    def _call(self, what: str, function, *args):
        """One SDK call; an unplugged adapter (OSError / termios.error from the tty) becomes a BackendFault."""
        port = self._require_port()
        try:
            return function(*args)
        except PORT_ERRORS as error:
            self._port_lost = True
            port.is_using = False  # the SDK leaves the port marked busy when the tty call raises
            raise BackendFault(f"lost the serial port {self.port_name} during {what} ({error}): check the U2D2 "
                               "cable, then call clear_fault()") from error
        except KeyboardInterrupt:  # Ctrl-C inside a transaction: free the port for the torque-off that follows
            port.is_using = False
            port.clearPort()
            raise

    def _check(self, what: str, result: int, error: int = 0) -> None:
        if result != dxl.COMM_SUCCESS:
            if self._port is not None and not self._port_lost:
                self._raise_if_port_gone()  # a failed transaction on a vanished port: say the port
            raise BackendFault(f"{what} failed on {self.port_name}: {self._packets.getTxRxResult(result)}")
        if error & ~ALERT_BIT:
            raise BackendFault(f"{what} refused: {self._packets.getRxPacketError(error)}")

    def _sync_write(self, address: int, size: int, values: dict[int, int]) -> None:
        writer = dxl.GroupSyncWrite(self._require_port(), self._packets, address, size)
        for servo_id, value in values.items():
            writer.addParam(servo_id, list(int(value).to_bytes(size, "little", signed=True)))
        self._check(f"sync write of address {address}", self._call("a sync write", writer.txPacket))

    def _sync_read_present(self) -> dict[int, list[int]]:
        """Present Current..Position of every servo, retried ``comm_retries`` times for missing answers
        (all of them missing included: one late answer of a loaded host is not a power loss)."""
        tries = 0
        while True:
            answers, errors = self._call("a sync read", self._sync_read_once)
            missing = [i for i in self.servo_ids if i not in answers]
            tries += 1
            if not answers:
                self._raise_if_port_gone()
            if not missing or tries > self.comm_retries:
                break
        if not answers:
            raise BackendFault(f"no servo answered a sync read on {self.port_name} (the port is there; {tries} "
                               "tries): check the servos' power supply and the cable from the U2D2, then call "
                               "clear_fault()")
        if missing:
            names = ", ".join(self._servo_label[i] for i in missing)
            raise BackendFault(f"{names} did not answer a sync read on {self.port_name} "
                               f"({tries} tries): check the servo's cable and power, then call clear_fault()")
        alerts = [i for i, error in errors.items() if error & ALERT_BIT]
        if alerts:
            raise BackendFault("; ".join(self._hardware_error_message(i) for i in alerts))
        return answers

    def _raise_if_port_gone(self) -> None:
        """An unplugged adapter: its device node is gone, or its tty reads as hung up (EIO). Asked first
        whenever a transaction fails or nothing answers, so a lost port is never reported as servos."""
        port = self._port
        reason = None if os.path.exists(self.port_name) else f"{self.port_name} no longer exists"
        if reason is None:
            try:
                fd = port.ser.fileno()
                if select.select([fd], [], [], 0)[0]:
                    os.read(fd, 1)  # a late byte of a failed read at worst: the next transaction clears it
            except PORT_ERRORS as error:
                reason = str(error)
        if reason is not None:
            self._port_lost = True
            port.is_using = False
            raise BackendFault(f"lost the serial port {self.port_name} during a sync read ({reason}): check the "
                               "U2D2 cable, then call clear_fault()")

    def _sync_read_once(self) -> tuple[dict[int, list[int]], dict[int, int]]:
        # GroupSyncRead's own receive drops the status error byte (the alert bit) and cannot say which servo
        # was silent: send through it, then take the status packets one by one.
        reader = dxl.GroupSyncRead(self._port, self._packets, ADDR_PRESENT_CURRENT, READ_LENGTH)
        for servo_id in self.servo_ids:
            reader.addParam(servo_id)
        self._check("sync read", reader.txPacket())
        answers, errors, extended = {}, {}, False
        while len(answers) < len(self.servo_ids):
            packet, result = self._packets.rxPacket(self._port, False)
            if result != dxl.COMM_SUCCESS:
                if answers or extended:
                    break
                extended = True  # nothing yet: late answers of a loaded host, or a silent bus
                self._port.setPacketTimeoutMillis(LATE_ANSWERS_MS)
                continue
            servo_id = packet[4]
            if servo_id in self._servo_label:
                answers[servo_id], errors[servo_id] = packet[9:9 + READ_LENGTH], packet[8]
        self._port.is_using = False
        return answers, errors

    def _hardware_error_message(self, servo_id: int) -> str:
        status, result, _ = self._call("a hardware error read", self._packets.read1ByteTxRx, self._port,
                                       servo_id, ADDR_HARDWARE_ERROR)
        label = self._servo_label[servo_id]
        if result != dxl.COMM_SUCCESS:
            return f"{label} reports a hardware error (Hardware Error Status unreadable): call clear_fault()"
        return (f"{label} reports a hardware error: {describe_hardware_error(status)} "
                f"(Hardware Error Status 0x{status:02x}); torque is off on it, call clear_fault() to reboot it")

    def _single(self, what: str, function, *args):
        """One single-servo transaction (ping, register read or write: set-up and recovery, none of them in the
        control loop), repeated up to ``setup_retries`` times while no status packet comes back: a packet lost
        on the bus, or an answer later than the SDK's ~34 ms on a host that stalled. Register writes are
        idempotent. A short pause lets a late answer land before the SDK flushes the port for the next try."""
        for _ in range(self.setup_retries):
            outcome = self._call(what, function, *args)
            if outcome[-2] != dxl.COMM_RX_TIMEOUT:  # result is second to last: (value,) result, error
                return outcome
            time.sleep(RETRY_PAUSE_S)
        return self._call(what, function, *args)

    def _read_byte(self, servo_id: int, address: int, what: str) -> int:
        value, result, error = self._single(what, self._packets.read1ByteTxRx, self._port, servo_id, address)
        self._check(f"{what} of {self._servo_label[servo_id]}", result, error)
        return value

    def _write(self, servo_id: int, address: int, size: int, value: int, what: str) -> None:
        write = {1: self._packets.write1ByteTxRx, 4: self._packets.write4ByteTxRx}[size]
        result, error = self._single(what, write, self._port, servo_id, address, value)
        self._check(f"{what} of {self._servo_label[servo_id]}", result, error)

    # --- identification and configuration ----------------------------------------------------
    def _identify(self) -> None:
        for joint in self.joints:
            for servo_id in joint.servo_ids:
                model, result, _ = self._single("a ping", self._packets.ping, self._port, servo_id)
                label = self._servo_label[servo_id]
                if result != dxl.COMM_SUCCESS:
                    raise BackendFault(f"{label} did not answer a ping on {self.port_name} "
                                       f"({self._packets.getTxRxResult(result)}): check its cable, power and ID")
                if model != MODEL_NUMBERS[joint.model]:
                    found = MODEL_NAMES.get(model, "an unknown model")
                    raise BackendFault(f"{label} is model number {model} ({found}); the config expects "
                                       f"{joint.model} ({MODEL_NUMBERS[joint.model]}): check joints.{joint.joint} "
                                       "in the robot config or the servo's ID")

    def _configure(self) -> None:
        """Torque off, then the EEPROM registers where they differ, then the profiles (RAM)."""
        for servo_id in self.servo_ids:
            self._write(servo_id, ADDR_TORQUE_ENABLE, 1, 0, "torque off")
        for joint in self.joints:
            for servo_id in joint.servo_ids:
                shadow = servo_id == joint.shadow_id
                wanted = {ADDR_OPERATING_MODE: joint.operating_mode,
                          ADDR_DRIVE_MODE: REVERSE_DRIVE_BIT if shadow else 0}
                if shadow:
                    wanted[ADDR_SECONDARY_ID] = joint.id
                for address, value in wanted.items():
                    if self._read_byte(servo_id, address, f"register {address}") != value:
                        self._write(servo_id, address, 1, value, f"register {address}")
                self._write(servo_id, ADDR_PROFILE_ACCELERATION, 4, joint.profile_acceleration,
                            "Profile Acceleration")
                self._write(servo_id, ADDR_PROFILE_VELOCITY, 4, joint.profile_velocity, "Profile Velocity")

    # --- recovery -----------------------------------------------------------------------------
    def _needs_reboot(self, servo_id: int) -> bool:
        _, result, error = self._call("a ping", self._packets.ping, self._port, servo_id)
        return result != dxl.COMM_SUCCESS or bool(error & ALERT_BIT)

    def _wait_for(self, servo_id: int) -> bool:
        deadline = time.monotonic() + self.reboot_timeout_s
        while time.monotonic() < deadline:
            _, result, error = self._call("a ping", self._packets.ping, self._port, servo_id)
            if result == dxl.COMM_SUCCESS and not error & ALERT_BIT:
                return True
            time.sleep(0.05)
        return False

