"""The VESC UART packet protocol: framing, CRC, and the payloads the RC car uses. Pure Python, no I/O.

Both sides use it: the driver (robot_rl.drivers.rc_car.vesc) and the protocol twin (robot_rl.sim.vesc).
tests/test_vesc_protocol.py pins it to byte strings worked out by hand from the public description, so a
mistake here cannot hide by being the same on both sides.

Facts, from the VESC firmware (vedderb/bldc: comm/packet.c, comm/commands.c, util/buffer.c, datatypes.h):
- a frame is 0x02, a 1-byte payload length, the payload, CRC16 of the payload (big-endian), 0x03; a payload
  of 256 bytes or more uses 0x03 and a 2-byte length (0x04 and 3 bytes above 65535: never needed here).
- the CRC is CRC16-CCITT as XMODEM computes it: polynomial 0x1021, initial value 0, no reflection.
- the payload's first byte is the command ID; numbers are big-endian; ``float16(x, s)`` is int16(x * s),
  ``float32(x, s)`` is int32(x * s); ``float32_auto`` is the IEEE-754 single's bit layout (the firmware
  builds it with frexpf, truncating the mantissa).
- COMM_SET_RPM: int32 ERPM; COMM_SET_CURRENT_BRAKE: int32 mA; COMM_SET_SERVO_POS: float16 x 1000;
  COMM_SET_DUTY: int32 x 1e5; COMM_SET_CURRENT: int32 mA; COMM_ALIVE: no argument (resets the timeout).
- COMM_GET_VALUES' reply, in order: temp FET float16/10, temp motor float16/10, avg motor current float32/100,
  avg input current float32/100, avg id float32/100, avg iq float32/100, duty float16/1000, ERPM float32/1,
  input voltage float16/10, amp hours, amp hours charged, watt hours, watt hours charged (float32/1e4 each),
  tachometer int32, tachometer abs int32, fault code uint8, PID position float32/1e6, controller ID uint8.
- COMM_GET_IMU_DATA takes a uint16 mask and answers the mask then, per set bit in order, a float32_auto:
  roll, pitch, yaw (rad), acc x, y, z (g), gyro x, y, z (deg/s), mag x, y, z, quaternion w, x, y, z.
- fault codes (mc_fault_code): 0 none, 1 over voltage, 2 under voltage, 3 DRV, 4 abs over current,
  5 over temp FET, 6 over temp motor (later firmware adds more; their numbers are shown as such).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

START_SHORT, START_LONG, END = 0x02, 0x03, 0x03
MAX_PAYLOAD = 512  # the firmware's PACKET_MAX_PL_LEN: a longer length byte is line noise, not a packet

COMM_GET_VALUES = 4
COMM_SET_DUTY = 5
COMM_SET_CURRENT = 6
COMM_SET_CURRENT_BRAKE = 7
COMM_SET_RPM = 8
COMM_SET_SERVO_POS = 12
COMM_ALIVE = 30
COMM_GET_IMU_DATA = 65

IMU_MASK_ALL = 0xFFFF
IMU_FIELDS = ("roll", "pitch", "yaw", "acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z",
              "mag_x", "mag_y", "mag_z", "q_w", "q_x", "q_y", "q_z")
IMU_MASK_ACC_GYRO = sum(1 << IMU_FIELDS.index(n) for n in ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"))

FAULT_NAMES = {0: "none", 1: "over voltage", 2: "under voltage", 3: "DRV (gate driver)", 4: "absolute over current",
               5: "FET over temperature", 6: "motor over temperature"}


def fault_name(code: int) -> str:
    return FAULT_NAMES.get(code, f"fault code {code}")


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM): polynomial 0x1021, initial 0, MSB first."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(payload: bytes) -> bytes:
    """One packet on the wire."""
    if not payload:
        raise ValueError("a VESC packet needs a payload (at least the command ID)")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a VESC payload is at most {MAX_PAYLOAD} bytes; found {len(payload)}")
    head = bytes([START_SHORT, len(payload)]) if len(payload) < 256 else bytes([START_LONG]) + struct.pack(">H", len(payload))
    return head + payload + struct.pack(">H", crc16(payload)) + bytes([END])


class FrameParser:
    """Bytes in, payloads out. A frame with a wrong CRC, a wrong end byte or an impossible length is dropped
    and counted in ``corrupt``; the parser then resynchronizes on the next start byte after the bad one.
    Bytes outside any frame (line noise before a start byte) are counted in ``stray_bytes``."""

    def __init__(self):
        self._buffer = bytearray()
        self.corrupt = 0
        self.stray_bytes = 0

    def clear(self) -> None:
        self._buffer.clear()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        payloads = []
        buffer = self._buffer
        while buffer:
            if buffer[0] not in (START_SHORT, START_LONG):
                skip = next((i for i, b in enumerate(buffer) if b in (START_SHORT, START_LONG)), len(buffer))
                self.stray_bytes += skip
                del buffer[:skip]
                continue
            header = 2 if buffer[0] == START_SHORT else 3
            if len(buffer) < header:
                break
            length = buffer[1] if header == 2 else struct.unpack_from(">H", buffer, 1)[0]
            if length == 0 or length > MAX_PAYLOAD:
                self._drop_start()
                continue
            end = header + length + 3
            if len(buffer) < end:
                break
            payload = bytes(buffer[header:header + length])
            crc = struct.unpack_from(">H", buffer, header + length)[0]
            if buffer[end - 1] != END or crc != crc16(payload):
                self._drop_start()
                continue
            payloads.append(payload)
            del buffer[:end]
        return payloads

    def _drop_start(self) -> None:
        self.corrupt += 1
        del self._buffer[:1]


# --- commands (driver -> VESC) --------------------------------------------------------------------
def set_rpm(erpm: float) -> bytes:
    return struct.pack(">Bi", COMM_SET_RPM, _int32(erpm, 1.0))


def set_current_brake(amps: float) -> bytes:
    return struct.pack(">Bi", COMM_SET_CURRENT_BRAKE, _int32(amps, 1e3))


def set_current(amps: float) -> bytes:
    return struct.pack(">Bi", COMM_SET_CURRENT, _int32(amps, 1e3))


def set_duty(duty: float) -> bytes:
    return struct.pack(">Bi", COMM_SET_DUTY, _int32(duty, 1e5))


def set_servo_pos(position: float) -> bytes:
    return struct.pack(">Bh", COMM_SET_SERVO_POS, _int16(position, 1e3))


def alive() -> bytes:
    return bytes([COMM_ALIVE])


def get_values() -> bytes:
    return bytes([COMM_GET_VALUES])


def get_imu_data(mask: int = IMU_MASK_ALL) -> bytes:
    return struct.pack(">BH", COMM_GET_IMU_DATA, mask)


@dataclass(frozen=True)
class Command:
    """A decoded command payload, in SI units (ERPM, A, servo 0..1, duty -1..1)."""
    id: int
    value: float | None = None


_COMMAND_SCALES = {COMM_SET_RPM: (">i", 1.0), COMM_SET_CURRENT_BRAKE: (">i", 1e3), COMM_SET_CURRENT: (">i", 1e3),
                   COMM_SET_DUTY: (">i", 1e5), COMM_SET_SERVO_POS: (">h", 1e3), COMM_GET_IMU_DATA: (">H", 1.0)}


def parse_command(payload: bytes) -> Command:
    """A payload as the VESC reads it. Raises ValueError on a short argument (the firmware would read past
    the packet; the twin refuses it)."""
    command = payload[0]
    if command in _COMMAND_SCALES:
        form, scale = _COMMAND_SCALES[command]
        if len(payload) - 1 < struct.calcsize(form):
            raise ValueError(f"command {command}: argument of {len(payload) - 1} bytes, expected {struct.calcsize(form)}")
        return Command(command, struct.unpack_from(form, payload, 1)[0] / scale)
    return Command(command)


# --- replies (VESC -> driver) ---------------------------------------------------------------------
# (field, struct code, scale), in the firmware's order for COMM_GET_VALUES.
_VALUES_LAYOUT = (("temp_fet", "h", 1e1), ("temp_motor", "h", 1e1), ("motor_current", "i", 1e2),
                  ("input_current", "i", 1e2), ("current_d", "i", 1e2), ("current_q", "i", 1e2),
                  ("duty", "h", 1e3), ("erpm", "i", 1.0), ("input_voltage", "h", 1e1), ("amp_hours", "i", 1e4),
                  ("amp_hours_charged", "i", 1e4), ("watt_hours", "i", 1e4), ("watt_hours_charged", "i", 1e4),
                  ("tachometer", "i", None), ("tachometer_abs", "i", None), ("fault_code", "B", None),
                  ("pid_position", "i", 1e6), ("controller_id", "B", None))
_VALUES_FORMAT = ">B" + "".join(code for _, code, _ in _VALUES_LAYOUT)
VALUES_PAYLOAD_SIZE = struct.calcsize(_VALUES_FORMAT)


@dataclass(frozen=True)
class Values:
    """COMM_GET_VALUES: degC, A, duty -1..1, ERPM, V, Ah, Wh, tachometer counts (6 per electrical turn)."""
    temp_fet: float = 25.0
    temp_motor: float = 25.0
    motor_current: float = 0.0
    input_current: float = 0.0
    current_d: float = 0.0
    current_q: float = 0.0
    duty: float = 0.0
    erpm: float = 0.0
    input_voltage: float = 0.0
    amp_hours: float = 0.0
    amp_hours_charged: float = 0.0
    watt_hours: float = 0.0
    watt_hours_charged: float = 0.0
    tachometer: int = 0
    tachometer_abs: int = 0
    fault_code: int = 0
    pid_position: float = 0.0
    controller_id: int = 0


def encode_values(values: Values) -> bytes:
    numbers = []
    for name, code, scale in _VALUES_LAYOUT:
        value = getattr(values, name)
        numbers.append(int(value) if scale is None else (_int16 if code == "h" else _int32)(value, scale))
    return struct.pack(_VALUES_FORMAT, COMM_GET_VALUES, *numbers)


def decode_values(payload: bytes) -> Values:
    if len(payload) < VALUES_PAYLOAD_SIZE or payload[0] != COMM_GET_VALUES:
        raise ValueError(f"not a COMM_GET_VALUES reply of {VALUES_PAYLOAD_SIZE} bytes: {payload[:4].hex()}... "
                         f"({len(payload)} bytes)")
    raw = struct.unpack_from(_VALUES_FORMAT, payload)[1:]
    return Values(**{name: (number if scale is None else number / scale)
                     for (name, _, scale), number in zip(_VALUES_LAYOUT, raw)})


@dataclass(frozen=True)
class Imu:
    """COMM_GET_IMU_DATA in the firmware's units: rad, g, deg/s; fields the mask left out are None."""
    roll: float | None = None
    pitch: float | None = None
    yaw: float | None = None
    acc_x: float | None = None
    acc_y: float | None = None
    acc_z: float | None = None
    gyro_x: float | None = None
    gyro_y: float | None = None
    gyro_z: float | None = None
    mag_x: float | None = None
    mag_y: float | None = None
    mag_z: float | None = None
    q_w: float | None = None
    q_x: float | None = None
    q_y: float | None = None
    q_z: float | None = None


def encode_imu(imu: Imu, mask: int = IMU_MASK_ALL) -> bytes:
    out = struct.pack(">BH", COMM_GET_IMU_DATA, mask)
    for bit, name in enumerate(IMU_FIELDS):
        if mask & (1 << bit):
            out += struct.pack(">f", getattr(imu, name) or 0.0)
    return out


def decode_imu(payload: bytes) -> Imu:
    if len(payload) < 3 or payload[0] != COMM_GET_IMU_DATA:
        raise ValueError(f"not a COMM_GET_IMU_DATA reply: {payload[:4].hex()}... ({len(payload)} bytes)")
    mask = struct.unpack_from(">H", payload, 1)[0]
    names = [name for bit, name in enumerate(IMU_FIELDS) if mask & (1 << bit)]
    if len(payload) < 3 + 4 * len(names):
        raise ValueError(f"COMM_GET_IMU_DATA reply: mask {mask:#06x} needs {3 + 4 * len(names)} bytes, found {len(payload)}")
    numbers = struct.unpack_from(f">{len(names)}f", payload, 3)
    return Imu(**dict(zip(names, numbers)))


def _int32(value: float, scale: float) -> int:
    return max(-2**31, min(2**31 - 1, round(value * scale)))


def _int16(value: float, scale: float) -> int:
    return max(-2**15, min(2**15 - 1, round(value * scale)))
