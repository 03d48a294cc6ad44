"""The RC car's VESC over its USB serial port (115200 baud), in pure Python over pyserial.

    vesc = VescSerial("/dev/ttyACM0"); vesc.connect()
    vesc.send_action((steering, throttle))   # the twin's normalized action: ERPM + servo position
    state = vesc.poll()                      # COMM_GET_VALUES + COMM_GET_IMU_DATA, answered together
    vesc.send_brake(); vesc.close()

Packets are robot_rl.sim.vesc.protocol's (the VESC firmware's framing and payloads). A reply frame whose CRC,
length or end byte is wrong is dropped and counted (``corrupt_frames``), never decoded; a reply of another
command is counted in ``unexpected_replies``. ``poll()`` sends both requests in one write and waits for
both answers (about 10 ms of wire time at 115200 baud); when one is missing after ``timeout_s`` (50 ms) it
asks again (``retries``: 2) before it raises, so a VESC that went silent is named within about 150 ms and
a host that stalls the reply for a few tens of ms is not a fault.

Faults are BackendFault naming the port and what to do: an unplugged cable is named at once (the tty's read
or write fails with EIO, or its device node is gone), a silent VESC after the retries.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import serial

from robot_rl.drivers.backend import BackendFault
from robot_rl.sim.rc_car.constants import action_to_vesc
from robot_rl.sim.vesc import protocol as p

BAUDRATE = 115200
# acc, gyro and the attitude quaternion: what sensor_msgs/Imu carries (roll/pitch/yaw and mag are left out).
IMU_MASK = p.IMU_MASK_ACC_GYRO | sum(1 << p.IMU_FIELDS.index(n) for n in ("q_w", "q_x", "q_y", "q_z"))
PORT_ERRORS = (OSError, serial.SerialException)


@dataclass(frozen=True)
class VescState:
    values: p.Values
    imu: p.Imu
    stamp: float  # time.monotonic() when the last of the two replies arrived


class VescSerial:
    def __init__(self, port: str, *, baudrate: int = BAUDRATE, timeout_s: float = 0.05, retries: int = 2):
        self.port, self.baudrate = port, int(baudrate)
        self.timeout_s, self.retries = float(timeout_s), int(retries)
        self.parser = p.FrameParser()
        self.unexpected_replies = 0
        self.missed_replies = 0
        self.bytes_sent = self.bytes_received = 0
        self.last_write_at = 0.0
        self._serial: serial.Serial | None = None
        self._lost: str | None = None

    @property
    def corrupt_frames(self) -> int:
        return self.parser.corrupt

    # --- life cycle ---------------------------------------------------------------------------
    def connect(self) -> VescState:
        """Open the port and ask the VESC for its values: raises BackendFault when it does not answer."""
        self.close()
        try:
            self._serial = serial.Serial(self.port, self.baudrate, timeout=0, write_timeout=0.1, exclusive=True)
        except PORT_ERRORS as error:
            raise BackendFault(f"cannot open the VESC's port {self.port} at {self.baudrate} baud ({error}): check "
                               f"the USB cable, and the udev rule / permissions of {self.port} (dialout group)") from error
        self._lost = None
        self.parser.clear()
        return self.poll()

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except PORT_ERRORS:
                pass
            self._serial = None

    @property
    def connected(self) -> bool:
        return self._serial is not None and self._lost is None

    # --- commands -----------------------------------------------------------------------------
    def send_rpm(self, erpm: float) -> None:
        self._write(p.frame(p.set_rpm(erpm)))

    def send_servo(self, position: float) -> None:
        self._write(p.frame(p.set_servo_pos(position)))

    def send_brake(self, amps: float = 0.0) -> None:
        """Brake current (A): 0 releases the motor to brake on its own back-EMF only as the firmware does."""
        self._write(p.frame(p.set_current_brake(amps)))

    def send_alive(self) -> None:
        self._write(p.frame(p.alive()))

    def send_drive(self, erpm: float, servo: float) -> None:
        """Speed and servo in one write (one system call: the two packets leave back to back)."""
        self._write(p.frame(p.set_rpm(erpm)) + p.frame(p.set_servo_pos(servo)))

    def send_action(self, action) -> tuple[float, float]:
        """A normalized (steering, throttle) action through the F1TENTH gains; returns (ERPM, servo)."""
        erpm, servo = action_to_vesc(action)
        self.send_drive(erpm, servo)
        return erpm, servo

    # --- state --------------------------------------------------------------------------------
    def poll(self) -> VescState:
        wanted = {p.COMM_GET_VALUES: p.get_values(), p.COMM_GET_IMU_DATA: p.get_imu_data(IMU_MASK)}
        got: dict[int, bytes] = {}
        for _ in range(1 + self.retries):
            self._write(b"".join(p.frame(wanted[c]) for c in wanted if c not in got))
            deadline = time.monotonic() + self.timeout_s
            while len(got) < len(wanted) and time.monotonic() < deadline:
                for payload in self._read(deadline):
                    if payload[0] in wanted:
                        got[payload[0]] = payload
                    else:
                        self.unexpected_replies += 1
            if len(got) == len(wanted):
                try:
                    return VescState(p.decode_values(got[p.COMM_GET_VALUES]), p.decode_imu(got[p.COMM_GET_IMU_DATA]),
                                     time.monotonic())
                except ValueError as error:  # a well-framed reply of the wrong size: another firmware's layout
                    raise BackendFault(f"the VESC on {self.port} answered in a layout this driver does not read "
                                       f"({error}): check its firmware version") from error
            self.missed_replies += len(wanted) - len(got)
            self._raise_if_port_gone()
        missing = " and ".join("COMM_GET_VALUES" if c == p.COMM_GET_VALUES else "COMM_GET_IMU_DATA"
                               for c in wanted if c not in got)
        raise BackendFault(f"the VESC on {self.port} did not answer {missing} ({1 + self.retries} tries of "
                           f"{self.timeout_s * 1000:.0f} ms; {self.corrupt_frames} corrupt frames so far): check its "
                           "battery and power switch, then reconnect")

    # --- the port -----------------------------------------------------------------------------
    def _require(self) -> serial.Serial:
        if self._serial is None:
            raise BackendFault(f"the VESC's port {self.port} is not open: call connect() first")
        if self._lost is not None:
            raise BackendFault(self._lost)
        return self._serial

    def _lose(self, error) -> BackendFault:
        self._lost = (f"lost the VESC's serial port {self.port} ({error}): the USB cable is unplugged or the VESC "
                      "lost power; plug it back in and reconnect")
        return BackendFault(self._lost)

    def _write(self, data: bytes) -> None:
        port = self._require()
        try:
            port.write(data)
        except PORT_ERRORS as error:
            raise self._lose(error) from error
        self.last_write_at = time.monotonic()
        self.bytes_sent += len(data)

    def _read(self, deadline: float) -> list[bytes]:
        port = self._require()
        try:
            port.timeout = max(0.0, deadline - time.monotonic())
            data = port.read(max(1, port.in_waiting))
        except PORT_ERRORS as error:
            raise self._lose(error) from error
        self.bytes_received += len(data)
        return self.parser.feed(data)

    def _raise_if_port_gone(self) -> None:
        if not os.path.exists(self.port):
            raise self._lose(f"{self.port} no longer exists")
