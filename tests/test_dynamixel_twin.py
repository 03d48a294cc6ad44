"""The emulated WidowX servo chain, driven through the real dynamixel-sdk as a driver would drive a U2D2."""
from __future__ import annotations

import os
import random
import termios
import time

import pytest

dxl = pytest.importorskip("dynamixel_sdk")

from robot_rl.sim.dynamixel import protocol as p  # noqa: E402
from robot_rl.sim.dynamixel.process import EmulatedWidowXProcess  # noqa: E402
from robot_rl.sim.widowx.servos import GRIPPER_CLOSED_TICKS, rad_to_ticks, width_to_ticks  # noqa: E402

IDS = range(1, 10)
MODELS = {1: 1020, 2: 1020, 3: 1020, 4: 1020, 5: 1020, 6: 1020, 7: 1020, 8: 1060, 9: 1060}
ADDR_DRIVE_MODE, ADDR_TORQUE, ADDR_LED, ADDR_HW_ERROR = 10, 64, 65, 70
ADDR_GOAL, ADDR_PRESENT = 116, 132


@pytest.fixture
def arm():
    with EmulatedWidowXProcess() as emulated:  # the servos answer from a process of their own, as real ones do
        port = dxl.PortHandler(emulated.port)
        assert port.openPort() and port.setBaudRate(1_000_000)
        yield emulated, port, dxl.PacketHandler(2.0)
        if port.ser is not None:
            port.ser.close()


class _CapturePort:
    """Enough of a PortHandler for the SDK's txPacket: records what it would send."""
    is_using = False

    def __init__(self):
        self.sent = b""

    def clearPort(self):
        pass

    def writePort(self, packet):
        self.sent = bytes(packet)
        return len(packet)


def _sdk_frame(packet_id: int, instruction: int, params: bytes) -> bytes:
    txpacket = [0] * (10 + len(params))
    txpacket[4], txpacket[5], txpacket[6], txpacket[7] = packet_id, (len(params) + 3) & 0xFF, 0, instruction
    txpacket[8:8 + len(params)] = list(params)
    port = _CapturePort()
    assert dxl.PacketHandler(2.0).txPacket(port, txpacket) == dxl.COMM_SUCCESS
    return port.sent


def _s32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


# --- protocol.py -----------------------------------------------------------------------------------
def test_crc_matches_the_emanual_ping_example_and_the_sdk():
    assert p.encode(1, p.PING) == bytes.fromhex("FFFFFD0001030001194E")
    sdk = dxl.PacketHandler(2.0)
    rng = random.Random(0)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        assert p.crc16(data) == sdk.updateCRC(0, list(data), len(data))


def test_encode_matches_the_sdk_frame():
    params = bytes([116, 0, 0x00, 0x08, 0x00, 0x00])
    assert p.encode(7, p.WRITE, params) == _sdk_frame(7, p.WRITE, params)


def test_byte_stuffing_round_trips():
    params = bytes([116, 0, 0xFF, 0xFF, 0xFD, 0x00, 0xFF, 0xFF, 0xFD])
    frame = p.encode(7, p.WRITE, params)
    assert frame.count(b"\xff\xff\xfd\xfd") == 2
    assert frame[5] | frame[6] << 8 == 1 + len(params) + 2 + 2  # the two stuffed bytes count
    assert p.crc16(frame[:-2]) == frame[-2] | frame[-1] << 8
    assert p.PacketParser().feed(frame) == [p.Packet(7, p.WRITE, params)]
    # dynamixel-sdk 4.1.0 (Python) drops its own stuffing (txPacket discards addStuffing's result) and
    # sends such params as they are; a servo reads LEN bytes and finds no FF FF FD FD, so that parses too.
    sent = _sdk_frame(7, p.WRITE, params)
    assert b"\xff\xff\xfd\xfd" not in sent
    assert p.PacketParser().feed(sent) == [p.Packet(7, p.WRITE, params)]


def test_parser_skips_noise_and_joins_partial_packets():
    first, second = p.encode(1, p.PING), p.encode(2, p.READ, bytes([132, 0, 4, 0]))
    parser = p.PacketParser()
    stream = b"\x00\xff\x12\xff\xff" + first + b"\xfd\x00" + second
    found = []
    for i in range(0, len(stream), 3):
        found += parser.feed(stream[i:i + 3])
    assert found == [p.Packet(1, p.PING, b""), p.Packet(2, p.READ, bytes([132, 0, 4, 0]))]
    corrupted = bytearray(first)
    corrupted[-1] ^= 0xFF
    assert parser.feed(bytes(corrupted)) == [p.Packet(1, p.PING, b"", crc_ok=False)]
    assert parser.pending == 0


# --- the chain through the SDK -------------------------------------------------------------------
def test_ping_finds_nine_servos_with_their_models(arm):
    _, port, ph = arm
    for servo_id in IDS:
        model, result, error = ph.ping(port, servo_id)
        assert (result, error, model) == (dxl.COMM_SUCCESS, 0, MODELS[servo_id])
    assert ph.ping(port, 42)[1] == dxl.COMM_RX_TIMEOUT
    found, result = ph.broadcastPing(port)
    assert result == dxl.COMM_SUCCESS
    assert {i: model for i, (model, _) in found.items()} == MODELS


def test_register_access_rules(arm):
    _, port, ph = arm
    assert ph.read2ByteTxRx(port, 9, 0) == (1060, dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, ADDR_LED, 1) == (dxl.COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 1, ADDR_LED) == (1, dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, ADDR_TORQUE, 1) == (dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, 9, 5) == (dxl.COMM_SUCCESS, dxl.ERRNUM_ACCESS)  # EEPROM, torque on
    assert ph.write1ByteTxRx(port, 1, ADDR_TORQUE, 0) == (dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 1, 9, 5) == (dxl.COMM_SUCCESS, 0)
    assert ph.read1ByteTxRx(port, 1, 9) == (5, dxl.COMM_SUCCESS, 0)
    assert ph.write4ByteTxRx(port, 1, ADDR_PRESENT, 0)[1] == dxl.ERRNUM_ACCESS  # read-only
    assert ph.write1ByteTxRx(port, 1, ADDR_GOAL, 0)[1] == dxl.ERRNUM_DATA_LENGTH  # part of a register
    assert ph.write1ByteTxRx(port, 1, ADDR_TORQUE, 7)[1] == dxl.ERRNUM_DATA_RANGE
    assert ph.write4ByteTxRx(port, 2, ADDR_GOAL, 0)[1] == dxl.ERRNUM_DATA_LIMIT  # beyond the shoulder's limit
    assert ph.write4ByteTxRx(port, 8, 102, 0)[1] == dxl.ERRNUM_ACCESS  # the XL430 has no Goal Current
    model, result, error = ph.readTxRx(port, 1, 0, 200)
    assert (result, error) == (dxl.COMM_SUCCESS, dxl.ERRNUM_ACCESS)


def test_stuffed_register_bytes_through_the_sdk(arm):
    _, port, ph = arm
    # Goal Velocity -1 then Profile Acceleration 253: the bytes FF FF FF FF FD 00 00 00.
    data = list((-1).to_bytes(4, "little", signed=True) + (253).to_bytes(4, "little"))
    assert ph.writeTxRx(port, 1, 104, 8, data) == (dxl.COMM_SUCCESS, 0)
    assert ph.readTxRx(port, 1, 106, 5) == ([0xFF, 0xFF, 0xFD, 0, 0], dxl.COMM_SUCCESS, 0)


def test_sync_write_moves_the_twin_and_shadows_follow(arm):
    emulated, port, ph = arm
    targets = {1: rad_to_ticks(0.5), 2: rad_to_ticks(-0.3), 4: rad_to_ticks(0.4), 6: rad_to_ticks(0.3),
               7: rad_to_ticks(0.8), 8: rad_to_ticks(-0.5), 9: round(width_to_ticks(0.050))}
    for servo_id in IDS:
        assert ph.write1ByteTxRx(port, servo_id, ADDR_TORQUE, 1) == (dxl.COMM_SUCCESS, 0)
    writer = dxl.GroupSyncWrite(port, ph, ADDR_GOAL, 4)
    for servo_id, ticks in targets.items():
        assert writer.addParam(servo_id, ticks.to_bytes(4, "little", signed=True))
    assert writer.txPacket() == dxl.COMM_SUCCESS
    reader = dxl.GroupSyncRead(port, ph, ADDR_PRESENT, 4)
    for servo_id in IDS:
        assert reader.addParam(servo_id)

    # Until every joint is there and the arm has settled (the others' motion shakes a joint that has
    # arrived); the twin steps in real time, slower on a loaded host.
    deadline, previous = time.monotonic() + 10.0, None
    while True:
        assert reader.txRxPacket() == dxl.COMM_SUCCESS
        present = {i: _s32(reader.getData(i, ADDR_PRESENT, 4)) for i in IDS}
        arrived = all(abs(present[i] - t) <= 25 for i, t in targets.items())
        settled = previous is not None and all(abs(present[i] - previous[i]) <= 2 for i in IDS)
        if arrived and settled or time.monotonic() > deadline:
            break
        previous = present
        time.sleep(0.05)
    assert {i: present[i] for i in targets} == pytest.approx(targets, abs=25)
    assert abs(present[3] - present[2]) <= 2 and abs(present[5] - present[4]) <= 2  # reversed drive mode
    q = emulated.joint_positions()
    assert q[:6] == pytest.approx([0.5, -0.3, 0.4, 0.3, 0.8, -0.5], abs=0.04)
    assert q[6] == pytest.approx(0.050, abs=0.002)

    # Without the reverse bit a shadow shows its mirrored mount.
    assert ph.write1ByteTxRx(port, 3, ADDR_TORQUE, 0) == (dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 3, ADDR_DRIVE_MODE, 0) == (dxl.COMM_SUCCESS, 0)
    time.sleep(0.05)
    shadow, master = ph.read4ByteTxRx(port, 3, ADDR_PRESENT)[0], ph.read4ByteTxRx(port, 2, ADDR_PRESENT)[0]
    assert abs(shadow - (4096 - master)) <= 2


def test_corrupted_crc_gets_a_crc_error_status(arm):
    _, port, ph = arm
    packet = bytearray(p.encode(4, p.PING))
    packet[-2] ^= 0x5A
    port.writePort(bytes(packet))
    port.setPacketTimeout(11)
    rx, result = ph.rxPacket(port, False)
    assert result == dxl.COMM_SUCCESS and rx[4] == 4 and rx[8] == dxl.ERRNUM_CRC
    broadcast = bytearray(p.encode(p.BROADCAST_ID, p.PING))
    broadcast[-1] ^= 0x01
    port.writePort(bytes(broadcast))
    port.setPacketTimeout(11)
    assert ph.rxPacket(port, False)[1] == dxl.COMM_RX_TIMEOUT


def test_silenced_servo_times_out_while_the_others_answer(arm):
    emulated, port, ph = arm
    emulated.silence(5)
    assert ph.ping(port, 5)[1] == dxl.COMM_RX_TIMEOUT
    assert all(ph.ping(port, i)[1] == dxl.COMM_SUCCESS for i in IDS if i != 5)
    reader = dxl.GroupSyncRead(port, ph, ADDR_PRESENT, 4)
    for servo_id in (4, 5, 6):
        reader.addParam(servo_id)
    assert reader.txRxPacket() == dxl.COMM_RX_TIMEOUT
    emulated.unsilence(5)
    assert ph.ping(port, 5)[:2] == (1020, dxl.COMM_SUCCESS)


def test_overload_sets_the_alert_bit_until_reboot(arm):
    emulated, port, ph = arm
    assert ph.write1ByteTxRx(port, 4, ADDR_TORQUE, 1) == (dxl.COMM_SUCCESS, 0)
    emulated.set_overload(4)
    _, result, error = ph.ping(port, 4)
    assert result == dxl.COMM_SUCCESS and error & dxl.ERRBIT_ALERT
    assert "Hardware error" in ph.getRxPacketError(error)
    assert ph.read1ByteTxRx(port, 4, ADDR_HW_ERROR) == (0x20, dxl.COMM_SUCCESS, dxl.ERRBIT_ALERT)
    assert ph.read1ByteTxRx(port, 4, ADDR_TORQUE)[0] == 0
    assert ph.write1ByteTxRx(port, 4, ADDR_TORQUE, 1)[1] == dxl.ERRBIT_ALERT | dxl.ERRNUM_RESULT_FAIL
    assert ph.ping(port, 3)[2] == 0  # the others are fine
    assert ph.reboot(port, 4) == (dxl.COMM_SUCCESS, dxl.ERRBIT_ALERT)  # answered before the reboot
    assert ph.read1ByteTxRx(port, 4, ADDR_HW_ERROR) == (0, dxl.COMM_SUCCESS, 0)
    assert ph.write1ByteTxRx(port, 4, ADDR_TORQUE, 1) == (dxl.COMM_SUCCESS, 0)


def test_unplug_fails_the_next_call_and_replug_comes_back(arm):
    emulated, port, ph = arm
    link = emulated.port
    assert os.path.realpath(link) == emulated.device()
    emulated.unplug()
    assert not os.path.lexists(link)
    # The SDK's txPacket flushes the input first: termios.error (EIO) on the hung-up tty (as on a pulled
    # USB adapter), and as the SDK had already marked the port in use, later calls report it busy.
    with pytest.raises(termios.error):
        ph.ping(port, 1)
    assert ph.ping(port, 1)[1] == dxl.COMM_PORT_BUSY
    emulated.replug()
    fresh = dxl.PortHandler(link)
    assert fresh.openPort()
    try:
        assert ph.ping(fresh, 1)[:2] == (1020, dxl.COMM_SUCCESS)
    finally:
        fresh.closePort()


def test_gripper_ticks_cover_the_finger_range():
    assert round(width_to_ticks(0.030)) == GRIPPER_CLOSED_TICKS
