"""The control tables of the X-series servos on the WidowX (XM430-W350, XL430-W250) and a `Servo` that holds one.

A `Servo` is the register memory of one servo plus the rules a real one enforces on a write: only
writable registers, whole registers only, the EEPROM area (addresses below 64) locked while torque is
on, value ranges, and Goal Position within the position limits in position mode. Each read and write
returns the protocol's result error number (0 when accepted; a refused write changes nothing).

Emulator choices where the e-Manual leaves room: enabling torque copies Present Position into Goal
Position (the servo holds where it is instead of jumping); with a hardware error set, writing Torque
Enable = 1 is refused with a result-fail error until a REBOOT clears the error.
"""
from __future__ import annotations

from dataclasses import dataclass

from robot_rl.sim.dynamixel.protocol import (
    ALERT_BIT,
    ERR_ACCESS,
    ERR_DATA_LENGTH,
    ERR_DATA_LIMIT,
    ERR_DATA_RANGE,
    ERR_NONE,
    ERR_RESULT_FAIL,
)

EEPROM_END = 64  # addresses below this are EEPROM: writable only with torque off
TABLE_SIZE = 148  # through Present Temperature (146); the indirect-address area is not emulated

POSITION_MODE, EXTENDED_POSITION_MODE, CURRENT_POSITION_MODE, PWM_MODE = 3, 4, 5, 16
OVERLOAD_ERROR_BIT = 0x20  # Hardware Error Status bit 5


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    size: int
    writable: bool
    default: int = 0
    signed: bool = False
    valid: tuple[int, int] | frozenset[int] | None = None  # accepted written values

    @property
    def eeprom(self) -> bool:
        return self.address < EEPROM_END

    def accepts(self, value: int) -> bool:
        if self.valid is None:
            return True
        if isinstance(self.valid, frozenset):
            return value in self.valid
        return self.valid[0] <= value <= self.valid[1]


R, RW = False, True
# name, address, size, writable, XM430-W350 default, signed, valid range.
_COMMON = [
    ("model_number", 0, 2, R, 1020, False, None),
    ("model_information", 2, 4, R, 0, False, None),
    ("firmware_version", 6, 1, R, 46, False, None),
    ("id", 7, 1, RW, 1, False, (0, 252)),
    ("baud_rate", 8, 1, RW, 1, False, frozenset({0, 1, 2, 3, 4, 5, 6, 7})),
    ("return_delay_time", 9, 1, RW, 250, False, (0, 254)),
    ("drive_mode", 10, 1, RW, 0, False, (0, 13)),
    ("operating_mode", 11, 1, RW, POSITION_MODE, False, None),
    ("secondary_id", 12, 1, RW, 255, False, (0, 255)),
    ("protocol_type", 13, 1, RW, 2, False, frozenset({1, 2})),
    ("homing_offset", 20, 4, RW, 0, True, (-1044479, 1044479)),
    ("moving_threshold", 24, 4, RW, 10, False, (0, 1023)),
    ("temperature_limit", 31, 1, RW, 80, False, (0, 100)),
    ("max_voltage_limit", 32, 2, RW, 160, False, (60, 160)),
    ("min_voltage_limit", 34, 2, RW, 95, False, (60, 160)),
    ("pwm_limit", 36, 2, RW, 885, False, (0, 885)),
    ("current_limit", 38, 2, RW, 1193, False, (0, 1193)),
    ("velocity_limit", 44, 4, RW, 200, False, (0, 1023)),
    ("max_position_limit", 48, 4, RW, 4095, False, (0, 4095)),
    ("min_position_limit", 52, 4, RW, 0, False, (0, 4095)),
    ("shutdown", 63, 1, RW, 52, False, (0, 255)),
    ("torque_enable", 64, 1, RW, 0, False, (0, 1)),
    ("led", 65, 1, RW, 0, False, (0, 1)),
    ("status_return_level", 68, 1, RW, 2, False, (0, 2)),
    ("registered_instruction", 69, 1, R, 0, False, None),
    ("hardware_error_status", 70, 1, R, 0, False, None),
    ("velocity_i_gain", 76, 2, RW, 1920, False, (0, 16383)),
    ("velocity_p_gain", 78, 2, RW, 100, False, (0, 16383)),
    ("position_d_gain", 80, 2, RW, 0, False, (0, 16383)),
    ("position_i_gain", 82, 2, RW, 0, False, (0, 16383)),
    ("position_p_gain", 84, 2, RW, 800, False, (0, 16383)),
    ("feedforward_2nd_gain", 88, 2, RW, 0, False, (0, 16383)),
    ("feedforward_1st_gain", 90, 2, RW, 0, False, (0, 16383)),
    ("bus_watchdog", 98, 1, RW, 0, False, (0, 127)),
    ("goal_pwm", 100, 2, RW, 0, True, (-885, 885)),
    ("goal_current", 102, 2, RW, 0, True, (-1193, 1193)),
    ("goal_velocity", 104, 4, RW, 0, True, (-1023, 1023)),
    ("profile_acceleration", 108, 4, RW, 0, False, (0, 32767)),
    ("profile_velocity", 112, 4, RW, 0, False, (0, 32767)),
    ("goal_position", 116, 4, RW, 2048, True, (-1048575, 1048575)),
    ("realtime_tick", 120, 2, R, 0, False, None),
    ("moving", 122, 1, R, 0, False, None),
    ("moving_status", 123, 1, R, 0, False, None),
    ("present_pwm", 124, 2, R, 0, True, None),
    ("present_current", 126, 2, R, 0, True, None),  # Present Load (0.1 %) on the XL430
    ("present_velocity", 128, 4, R, 0, True, None),
    ("present_position", 132, 4, R, 2048, True, None),
    ("velocity_trajectory", 136, 4, R, 0, True, None),
    ("position_trajectory", 140, 4, R, 0, True, None),
    ("present_input_voltage", 144, 2, R, 120, False, None),
    ("present_temperature", 146, 1, R, 35, False, None),
]


@dataclass(frozen=True)
class ServoModel:
    name: str
    number: int
    operating_modes: frozenset[int]
    registers: tuple[Register, ...]

    def register(self, name: str) -> Register:
        return self._by_name[name]

    def __post_init__(self):
        object.__setattr__(self, "_by_name", {r.name: r for r in self.registers})
        owner = [None] * TABLE_SIZE
        for reg in self.registers:
            for address in range(reg.address, reg.address + reg.size):
                owner[address] = reg
        object.__setattr__(self, "owner", tuple(owner))  # the register each address belongs to


def _model(name: str, number: int, modes: set[int], without: set[str], defaults: dict[str, int]) -> ServoModel:
    registers = []
    for reg_name, address, size, writable, default, signed, valid in _COMMON:
        if reg_name in without:
            continue
        default = defaults.get(reg_name, default)
        if reg_name == "operating_mode":
            valid = frozenset(modes)
        registers.append(Register(reg_name, address, size, writable, default, signed, valid))
    return ServoModel(name, number, frozenset(modes), tuple(registers))


XM430_W350 = _model("XM430-W350", 1020, {0, 1, 3, 4, 5, 16}, set(), {})
XL430_W250 = _model("XL430-W250", 1060, {1, 3, 4, 16}, {"current_limit", "goal_current"}, {
    "model_number": 1060, "max_voltage_limit": 140, "min_voltage_limit": 60, "temperature_limit": 72,
    "velocity_limit": 265, "velocity_i_gain": 1000, "position_p_gain": 850})
MODELS = {m.number: m for m in (XM430_W350, XL430_W250)}


class Servo:
    """One servo's control table with the access rules of the real firmware."""

    def __init__(self, model: ServoModel, servo_id: int, **eeprom: int):
        self.model = model
        self.memory = bytearray(TABLE_SIZE)
        self._eeprom_settings = {"id": servo_id, **eeprom}
        self.power_on()

    def power_on(self) -> None:
        """Factory defaults, then the EEPROM settings this servo was configured with."""
        for reg in self.model.registers:
            self.set(reg.name, reg.default)
        for name, value in self._eeprom_settings.items():
            self.set(name, value)

    def reboot(self) -> None:
        """RAM back to defaults (hardware errors cleared, torque off); EEPROM kept as written."""
        kept = {r.name: self.get(r.name) for r in self.model.registers if r.eeprom and r.writable}
        present = self.get("present_position")
        self._eeprom_settings = kept
        self.power_on()
        self.set("present_position", present)
        self.set("goal_position", present)

    # --- raw register access (no rules: the emulator's own side) ------------------------------
    def get(self, name: str) -> int:
        reg = self.model.register(name)
        raw = self.memory[reg.address:reg.address + reg.size]
        return int.from_bytes(raw, "little", signed=reg.signed)

    def set(self, name: str, value: int) -> None:
        reg = self.model.register(name)
        value = int(value)
        if not reg.signed:
            value &= (1 << (8 * reg.size)) - 1
        else:
            limit = 1 << (8 * reg.size - 1)
            value = max(-limit, min(limit - 1, value))
        self.memory[reg.address:reg.address + reg.size] = value.to_bytes(reg.size, "little", signed=reg.signed)

    @property
    def id(self) -> int:
        return self.memory[7]

    @property
    def torque_enabled(self) -> bool:
        return bool(self.memory[64])

    @property
    def alert(self) -> bool:
        return self.get("hardware_error_status") != 0

    def error_byte(self, result: int) -> int:
        """The status packet's error byte: the result error number plus the alert bit."""
        return result | (ALERT_BIT if self.alert else 0)

    def set_hardware_error(self, bits: int) -> None:
        """A hardware error latches until reboot and turns the torque off."""
        self.set("hardware_error_status", self.get("hardware_error_status") | bits)
        self.set("torque_enable", 0)

    # --- the protocol's side ------------------------------------------------------------------
    def read(self, address: int, length: int) -> tuple[int, bytes]:
        if length < 1:
            return ERR_DATA_LENGTH, b""
        if address < 0 or address + length > TABLE_SIZE:
            return ERR_ACCESS, b""
        return ERR_NONE, bytes(self.memory[address:address + length])

    def write(self, address: int, data: bytes) -> int:
        end = address + len(data)
        if not data or address < 0 or end > TABLE_SIZE:
            return ERR_ACCESS if data else ERR_DATA_LENGTH
        registers = []
        for a in range(address, end):
            reg = self.model.owner[a]
            if reg is None or not reg.writable:
                return ERR_ACCESS
            if not registers or registers[-1] is not reg:
                registers.append(reg)
        if registers[0].address < address or registers[-1].address + registers[-1].size > end:
            return ERR_DATA_LENGTH  # only part of a register
        if self.torque_enabled and any(r.eeprom for r in registers):
            return ERR_ACCESS
        values = {}
        for reg in registers:
            chunk = data[reg.address - address:reg.address - address + reg.size]
            value = int.from_bytes(chunk, "little", signed=reg.signed)
            if not reg.accepts(value):
                return ERR_DATA_RANGE
            values[reg.name] = value
        if "goal_position" in values and self.get("operating_mode") == POSITION_MODE:
            if not self.get("min_position_limit") <= values["goal_position"] <= self.get("max_position_limit"):
                return ERR_DATA_LIMIT
        if values.get("torque_enable") == 1:
            if self.alert:
                return ERR_RESULT_FAIL
            if not self.torque_enabled and "goal_position" not in values:
                self.set("goal_position", self.get("present_position"))
        for name, value in values.items():
            self.set(name, value)
        return ERR_NONE
