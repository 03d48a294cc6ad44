"""An emulated VESC on a pseudo-terminal, answering its UART packets like the real one, backed by the MuJoCo car.

    from robot_rl.sim.vesc import EmulatedVesc
    with EmulatedVesc() as vesc:
        ...  # serial.Serial(vesc.port, 115200): the driver cannot tell

protocol.py frames and decodes packets, wire.py is the pty (a pulled cable, baud-rate pacing), car.py is the
VESC's firmware behaviour over the car's twin with fault injection, process.py runs it in a process of its own.
"""
from robot_rl.sim.lazy import lazy_exports

__getattr__ = lazy_exports(__name__, {
    "EmulatedVesc": "robot_rl.sim.vesc.car",
    "EmulatedVescProcess": "robot_rl.sim.vesc.process",
})
__all__ = ["EmulatedVesc", "EmulatedVescProcess"]
