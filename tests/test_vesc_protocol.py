"""The VESC packet codec against byte strings worked out by hand from the firmware's public description
(robot_rl.sim.vesc.protocol's docstring), so the driver and the twin cannot share a mistake unseen."""
from __future__ import annotations

import struct
from dataclasses import fields

import pytest

from robot_rl.sim.vesc import protocol as p


def test_crc_is_xmodem():
    assert p.crc16(b"123456789") == 0x31C3  # the CRC-16/XMODEM check value
    assert p.crc16(bytes([0x04])) == 0x4084  # entry 4 of the CCITT table


def test_frames_by_hand():
    assert p.frame(p.get_values()) == bytes.fromhex("02 01 04 4084 03")
    assert p.frame(p.set_rpm(4614)).hex() == "0205" + "0800001206" + f"{p.crc16(bytes.fromhex('0800001206')):04x}" + "03"
    assert p.set_rpm(-1) == bytes.fromhex("08ffffffff")
    assert p.set_servo_pos(0.5304) == bytes.fromhex("0c0212")        # 530 = 0x0212
    assert p.set_current_brake(2.5) == bytes.fromhex("07000009c4")   # 2500 mA
    assert p.alive() == bytes([30])
    assert p.get_imu_data(0x01F8) == bytes.fromhex("4101f8")
    long = p.frame(bytes([99]) * 300)
    assert long[:3] == bytes([0x03, 0x01, 0x2C]) and long[-1] == 0x03 and len(long) == 3 + 300 + 3


def test_parser_splits_resyncs_and_counts_corrupt_frames():
    good = p.frame(p.set_rpm(1000))
    bad = bytearray(p.frame(p.set_rpm(2000)))
    bad[4] ^= 0xFF  # a payload byte: the CRC no longer matches
    parser = p.FrameParser()
    assert parser.feed(b"\xff\x00" + good[:3]) == []  # line noise, then half a frame
    assert parser.feed(good[3:]) == [p.set_rpm(1000)]
    assert parser.stray_bytes == 2
    assert parser.feed(bytes(bad) + good) == [p.set_rpm(1000)]  # the bad one dropped, never decoded
    assert parser.corrupt >= 1
    wrong_end = bytearray(good)
    wrong_end[-1] = 0x7E
    before = parser.corrupt
    assert parser.feed(bytes(wrong_end)) == []
    assert parser.corrupt > before


def test_values_layout_by_offset():
    payload = p.encode_values(p.Values(temp_fet=41.3, erpm=-12345, duty=0.25, input_voltage=11.1, tachometer=-7,
                                       fault_code=5, controller_id=9))
    # command, temp_fet i16/10, temp_motor i16/10, 4 x current i32/100, duty i16/1000, ERPM i32, V_in i16/10,
    # 4 x energy i32/1e4, tacho i32, tacho_abs i32, fault u8, pid_pos i32/1e6, id u8
    assert len(payload) == 1 + 2 + 2 + 16 + 2 + 4 + 2 + 16 + 4 + 4 + 1 + 4 + 1 == p.VALUES_PAYLOAD_SIZE
    assert payload[0] == p.COMM_GET_VALUES
    assert struct.unpack_from(">h", payload, 1)[0] == 413
    assert struct.unpack_from(">h", payload, 21)[0] == 250
    assert struct.unpack_from(">i", payload, 23)[0] == -12345
    assert struct.unpack_from(">h", payload, 27)[0] == 111
    assert struct.unpack_from(">i", payload, 45)[0] == -7
    assert payload[53] == 5 and payload[58] == 9
    values = p.decode_values(payload)
    assert values.erpm == -12345 and values.input_voltage == pytest.approx(11.1) and values.fault_code == 5


def test_field_names_follow_the_wire_order():
    assert [f.name for f in fields(p.Imu)] == list(p.IMU_FIELDS)
    assert [f.name for f in fields(p.Values)][:9] == ["temp_fet", "temp_motor", "motor_current", "input_current",
                                                       "current_d", "current_q", "duty", "erpm", "input_voltage"]


def test_imu_reply_follows_its_mask():
    imu = p.Imu(roll=0.1, acc_z=1.0, gyro_z=-90.0, q_w=1.0)
    mask = (1 << 0) | (1 << 5) | (1 << 8)
    payload = p.encode_imu(imu, mask)
    assert payload[:3] == bytes([p.COMM_GET_IMU_DATA, 0x01, 0x21]) and len(payload) == 3 + 12
    assert struct.unpack(">3f", payload[3:]) == pytest.approx((0.1, 1.0, -90.0))
    decoded = p.decode_imu(payload)
    assert decoded.acc_z == 1.0 and decoded.gyro_z == -90.0 and decoded.q_w is None
    with pytest.raises(ValueError, match="mask"):
        p.decode_imu(payload[:-2])


def test_bad_input_is_refused_with_reasons():
    with pytest.raises(ValueError, match="payload"):
        p.frame(b"")
    with pytest.raises(ValueError, match="expected 4"):
        p.parse_command(bytes([p.COMM_SET_RPM, 0, 1]))
    with pytest.raises(ValueError, match="COMM_GET_VALUES"):
        p.decode_values(bytes([p.COMM_GET_VALUES, 1, 2]))
    assert p.parse_command(p.set_servo_pos(0.85)).value == pytest.approx(0.85)
    assert p.fault_name(2) == "under voltage" and p.fault_name(77) == "fault code 77"
