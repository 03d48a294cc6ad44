"""Dynamixel Protocol 2.0 framing: CRC-16, byte stuffing, packet encoding, a streaming parser.

Pure Python, no I/O. A packet on the wire is

    FF FF FD 00 | ID | LEN_L LEN_H | INST | PARAMS... | CRC_L CRC_H

where LEN counts the instruction byte, the (stuffed) parameters and the two CRC bytes. Inside the
instruction and parameters any FF FF FD is sent as FF FF FD FD so that it cannot look like a header;
the CRC covers the stuffed bytes from the header on. A status packet's instruction is 0x55 followed by
an error byte (bit 7: hardware alert, low 7 bits: the result error number).
"""
from __future__ import annotations

from dataclasses import dataclass

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 0xFC

PING, READ, WRITE, REG_WRITE, ACTION, FACTORY_RESET, REBOOT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x08
STATUS, SYNC_READ, SYNC_WRITE = 0x55, 0x82, 0x83

# Result error numbers (the status packet's error byte, low 7 bits) and the alert bit.
ERR_NONE, ERR_RESULT_FAIL, ERR_INSTRUCTION, ERR_CRC = 0, 1, 2, 3
ERR_DATA_RANGE, ERR_DATA_LENGTH, ERR_DATA_LIMIT, ERR_ACCESS = 4, 5, 6, 7
ALERT_BIT = 0x80

MAX_PACKET_LENGTH = 1024  # the SDK's TXPACKET_MAX_LEN; a longer LEN field is taken for noise


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """ROBOTIS' CRC-16 (polynomial 0x8005, initial value 0, not reflected)."""
    for byte in data:
        crc = ((crc << 8) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert an FD after every FF FF FD in the instruction + parameters."""
    out = bytearray()
    for byte in body:
        out.append(byte)
        if byte == 0xFD and out[-3:-1] == b"\xff\xff":
            out.append(0xFD)
    return bytes(out)


def unstuff(body: bytes) -> bytes:
    """Drop the FD that stuffing added after each FF FF FD."""
    out = bytearray()
    i = 0
    while i < len(body):
        out.append(body[i])
        if body[i:i + 2] == b"\xfd\xfd" and out[-3:] == b"\xff\xff\xfd":
            i += 1  # skip the stuffed FD
        i += 1
    return bytes(out)


def encode(packet_id: int, instruction: int, params: bytes = b"") -> bytes:
    """One packet on the wire: header, ID, length, stuffed instruction + params, CRC."""
    body = stuff(bytes([instruction]) + bytes(params))
    length = len(body) + 2
    frame = HEADER + bytes([packet_id, length & 0xFF, length >> 8]) + body
    crc = crc16(frame)
    return frame + bytes([crc & 0xFF, crc >> 8])


def status_packet(servo_id: int, error: int, params: bytes = b"") -> bytes:
    """A status packet: instruction 0x55, the error byte, then the parameters."""
    return encode(servo_id, STATUS, bytes([error & 0xFF]) + bytes(params))


@dataclass(frozen=True)
class Packet:
    """A packet found on the wire; params are unstuffed. crc_ok False: framing was fine, CRC was not."""
    id: int
    instruction: int
    params: bytes
    crc_ok: bool = True


class PacketParser:
    """Finds packets in a byte stream: skips noise before a header, waits for partial packets.

    feed() returns every complete packet found so far, in order. A packet whose CRC does not match is
    returned with crc_ok=False (the servo may answer it with a CRC error) and its bytes are consumed.
    """

    def __init__(self):
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back as a partial packet."""
        return len(self._buffer)

    def clear(self) -> None:
        """Drop a partial packet (what a servo does when the bytes stop coming mid-packet)."""
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        packets = []
        while True:
            self._skip_to_header()
            buf = self._buffer
            if len(buf) < 7:
                return packets
            length = buf[5] | (buf[6] << 8)
            if length < 3 or length > MAX_PACKET_LENGTH:
                del buf[0]  # not a real header
                continue
            total = 7 + length
            if len(buf) < total:
                return packets
            frame = bytes(buf[:total])
            del buf[:total]
            crc = frame[-2] | (frame[-1] << 8)
            body = unstuff(frame[7:-2])
            packets.append(Packet(frame[4], body[0], body[1:], crc16(frame[:-2]) == crc))

    def _skip_to_header(self) -> None:
        buf = self._buffer
        index = buf.find(HEADER)
        if index < 0:
            # Keep a tail that may be the start of a header split across reads.
            keep = next((k for k in (3, 2, 1) if buf.endswith(HEADER[:k])), 0)
            del buf[:len(buf) - keep]
        elif index > 0:
            del buf[:index]
