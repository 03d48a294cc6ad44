"""Emulated Dynamixel servos on a pseudo-terminal, answering Protocol 2.0 like a real chain behind a U2D2.

    from robot_rl.sim.dynamixel import EmulatedWidowX
    with EmulatedWidowX() as arm:
        ...  # dynamixel_sdk.PortHandler(arm.port), PacketHandler(2.0): the driver cannot tell

protocol.py frames packets, control_table.py holds the servos' registers and access rules, bus.py serves
them on a pty with fault injection, widowx_chain.py backs the WidowX chain with its MuJoCo twin.
"""
from robot_rl.sim.dynamixel.bus import ServoBus
from robot_rl.sim.dynamixel.control_table import XL430_W250, XM430_W350, Servo
from robot_rl.sim.dynamixel.process import EmulatedWidowXProcess
from robot_rl.sim.dynamixel.widowx_chain import EmulatedWidowX, make_widowx_servos

__all__ = ["XL430_W250", "XM430_W350", "EmulatedWidowX", "EmulatedWidowXProcess", "Servo", "ServoBus", "make_widowx_servos"]
