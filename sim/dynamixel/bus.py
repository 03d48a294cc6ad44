"""`ServoBus`: a chain of emulated servos behind a pseudo-terminal, where a U2D2 would be.

The bus owns a pty pair. A driver opens `bus.port` (the slave side, or `link_path`, a stable symlink to
it) with dynamixel-sdk's PortHandler exactly as it would open /dev/ttyUSB0; a thread reads instruction
packets from the master side and writes the servos' status packets back, each after its Return Delay
Time (2 us per unit), in the order a real chain answers (ID order for a broadcast ping, list order for a
sync read). Status Return Level is honoured (0: ping only, 1: ping and reads, 2: everything), servos
also act on writes to their Secondary ID without answering (how the WidowX's shadow servos follow).

A packet whose CRC does not match gets a status packet with the CRC error (3) from the addressed servo,
which is the e-Manual's meaning of that error number; a broadcast one gets no answer.

Faults: `unplug()` hangs the pty up at once, as a pulled USB adapter does (the driver's next read or write
fails with EIO, even one already waiting for an answer; the symlink disappears), then stops the bus;
`replug()` opens a fresh one behind the same symlink; `silence(id)` makes a servo dead to the bus;
`set_overload(id)` latches the overload bit in Hardware Error Status (alert bit in every status packet,
torque off) until a REBOOT.
"""
from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Iterable

from robot_rl.sim.dynamixel import protocol as p
from robot_rl.sim.dynamixel.control_table import OVERLOAD_ERROR_BIT, Servo

RETURN_DELAY_UNIT_S = 2e-6
IDLE_TIMEOUT_S = 0.02  # a partial packet older than this is dropped (the servo's inter-byte timeout)


class ServoBus:
    def __init__(self, servos: Iterable[Servo], *, link_path: str | os.PathLike | None = None,
                 lock: threading.RLock | None = None):
        self.servos = list(servos)
        self.lock = lock or threading.RLock()  # guards the servos' memory; share it with the physics
        self.link_path = os.fspath(link_path) if link_path is not None else None
        self.port: str | None = None
        self._master = self._slave = -1
        self._silenced: set[int] = set()
        self._wire = threading.Lock()  # the serving thread's use of the master side, against unplug()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------------------------
    def start(self) -> ServoBus:
        if self._thread is not None:
            return self
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        if self.link_path:
            if os.path.lexists(self.link_path):
                os.unlink(self.link_path)
            os.symlink(self.port, self.link_path)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="dynamixel-bus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the pty; the port (and the symlink) go away."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self.link_path and os.path.lexists(self.link_path):
            os.unlink(self.link_path)

    def unplug(self) -> float:
        """Hang up first (close the master side: the driver's side reports EIO now, not after the bus
        thread has noticed), then stop. The serving thread is never mid-reply when the master closes.
        Returns the hang-up's time.monotonic() (one clock for every process on the host), taken just before
        the close: a reader may see the hang-up before close returns, never before this time."""
        with self._wire:
            self._stop.set()
            hung_up_at = time.monotonic()
            if self._master >= 0:
                os.close(self._master)
                self._master = -1
            if self.link_path and os.path.lexists(self.link_path):
                os.unlink(self.link_path)
        self.stop()
        return hung_up_at

    def replug(self) -> ServoBus:
        """A fresh pty (a new device path) behind the same symlink, as when the U2D2 comes back."""
        self.stop()
        return self.start()

    def __enter__(self) -> ServoBus:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    # --- faults -------------------------------------------------------------------------------
    def servo(self, servo_id: int) -> Servo:
        for servo in self.servos:
            if servo.id == servo_id:
                return servo
        raise KeyError(f"no servo with ID {servo_id} on this bus: IDs are {sorted(s.id for s in self.servos)}")

    def silence(self, servo_id: int) -> None:
        """The servo neither answers nor acts (a cut cable, a dead board)."""
        self._silenced.add(self.servo(servo_id).id)

    def unsilence(self, servo_id: int) -> None:
        self._silenced.discard(servo_id)

    def set_overload(self, servo_id: int) -> None:
        with self.lock:
            self.servo(servo_id).set_hardware_error(OVERLOAD_ERROR_BIT)

    # --- the wire -----------------------------------------------------------------------------
    def _serve(self) -> None:
        parser = p.PacketParser()
        master = self._master
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], IDLE_TIMEOUT_S)
            except (OSError, ValueError):  # unplugged while waiting
                return
            if not ready:
                parser.clear()
                continue
            with self._wire:
                if self._stop.is_set():
                    return
                try:
                    data = os.read(master, 4096)
                    for packet in parser.feed(data):
                        with self.lock:
                            replies = self.handle(packet)
                        _send(master, replies)
                except OSError:
                    return

    # --- the servos' side ---------------------------------------------------------------------
    def _alive(self) -> list[Servo]:
        return sorted((s for s in self.servos if s.id not in self._silenced), key=lambda s: s.id)

    def _addressed(self, packet_id: int) -> tuple[Servo | None, list[Servo]]:
        """The servo that answers this ID, and the servos that follow it by Secondary ID."""
        alive = self._alive()
        primary = next((s for s in alive if s.id == packet_id), None)
        followers = [s for s in alive if s.get("secondary_id") == packet_id and s is not primary]
        return primary, followers

    @staticmethod
    def _reply(servo: Servo, result: int, params: bytes = b"") -> tuple[float, bytes]:
        delay = servo.get("return_delay_time") * RETURN_DELAY_UNIT_S
        return delay, p.status_packet(servo.id, servo.error_byte(result), params)

    def handle(self, packet: p.Packet) -> list[tuple[float, bytes]]:
        """Execute one instruction packet; returns the status packets to send, with their delays."""
        if packet.instruction == p.STATUS:
            return []
        broadcast = packet.id == p.BROADCAST_ID
        if broadcast:
            return self._handle_broadcast(packet)
        primary, followers = self._addressed(packet.id)
        if not packet.crc_ok:
            return [self._reply(primary, p.ERR_CRC)] if primary and primary.get("status_return_level") == 2 else []
        level = primary.get("status_return_level") if primary else 0
        inst, params = packet.instruction, packet.params
        if inst == p.PING:
            return [self._reply(primary, p.ERR_NONE, self._ping_params(primary))] if primary else []
        if inst == p.READ:
            if not primary:
                return []
            if len(params) != 4:
                return [self._reply(primary, p.ERR_DATA_LENGTH)] if level >= 1 else []
            error, data = primary.read(_word(params, 0), _word(params, 2))
            return [self._reply(primary, error, data)] if level >= 1 else []
        if inst == p.WRITE:
            if len(params) < 3:
                return [self._reply(primary, p.ERR_DATA_LENGTH)] if primary and level == 2 else []
            address, data = _word(params, 0), params[2:]
            for follower in followers:
                follower.write(address, data)
            if not primary:
                return []
            error = primary.write(address, data)
            return [self._reply(primary, error)] if level == 2 else []
        if inst == p.REBOOT:
            replies = [self._reply(primary, p.ERR_NONE)] if primary and level == 2 else []
            for servo in ([primary] if primary else []) + followers:
                servo.reboot()
            return replies
        return [self._reply(primary, p.ERR_INSTRUCTION)] if primary and level == 2 else []

    def _handle_broadcast(self, packet: p.Packet) -> list[tuple[float, bytes]]:
        inst, params = packet.instruction, packet.params
        alive = self._alive()
        if not packet.crc_ok:
            return []
        if inst == p.PING:  # every servo answers, lowest ID first
            return [self._reply(s, p.ERR_NONE, self._ping_params(s)) for s in alive]
        if inst == p.WRITE and len(params) >= 3:
            for servo in alive:
                servo.write(_word(params, 0), params[2:])
        elif inst == p.REBOOT:
            for servo in alive:
                servo.reboot()
        elif inst == p.SYNC_READ and len(params) >= 5:
            address, length = _word(params, 0), _word(params, 2)
            replies = []
            for servo_id in params[4:]:  # answers come in the order of the list
                servo = next((s for s in alive if s.id == servo_id), None)
                if servo is not None and servo.get("status_return_level") >= 1:
                    error, data = servo.read(address, length)
                    replies.append(self._reply(servo, error, data))
            return replies
        elif inst == p.SYNC_WRITE and len(params) >= 4:
            address, length = _word(params, 0), _word(params, 2)
            block = 1 + length
            for start in range(4, len(params) - block + 1, block):
                servo_id, data = params[start], params[start + 1:start + block]
                for servo in alive:
                    if servo.id == servo_id or servo.get("secondary_id") == servo_id:
                        servo.write(address, data)
        return []

    @staticmethod
    def _ping_params(servo: Servo) -> bytes:
        model = servo.get("model_number")
        return bytes([model & 0xFF, model >> 8, servo.get("firmware_version")])


def _send(master: int, replies: list[tuple[float, bytes]]) -> None:
    """Each status packet after its servo's Return Delay Time; packets due at once (delay 0, as the WidowX's
    servos are set) go out in one write: every write hands the GIL to the physics thread, and on a loaded
    host taking it back costs a switch interval, which over a sync read's seven answers outlasts the
    driver's timeout."""
    pending = b""
    for delay, reply in replies:
        if delay > 0:
            if pending:
                os.write(master, pending)
                pending = b""
            time.sleep(delay)
        pending += reply
    if pending:
        os.write(master, pending)


def _word(data: bytes, offset: int) -> int:
    return data[offset] | (data[offset + 1] << 8)
