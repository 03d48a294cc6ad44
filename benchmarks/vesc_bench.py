"""RC car control-path numbers on the VESC protocol twin: state rate beside the 115200-baud wire ceiling,
command latency (topic -> bytes at the VESC), and odometry drift over a driven lap against the twin's truth.

    python benchmarks/vesc_bench.py            # about a minute
    python benchmarks/vesc_bench.py --quick    # about 30 s

Measured against ``EmulatedVescProcess`` (robot_rl.sim.vesc: the VESC's packets answered on a pseudo-terminal
from a process of its own, the MuJoCo car stepping in real time behind it). DDS stays on loopback
(robot_rl.drivers.network's mode, a ROS_DOMAIN_ID of this process's own in 100-199).

1. State rate: ``VescSerial.poll()`` (COMM_GET_VALUES + COMM_GET_IMU_DATA with acc, gyro and quaternion,
   both requests in one write, both replies awaited) back to back. Peer: the rate the 115200-baud wire allows
   for those bytes, 10 bits a byte (start + 8 data + stop): the replies' bytes bound a full-duplex UART (the
   requests travel the other way at the same time). The twin paces its replies at that baud rate; the
   second row turns the pacing off (``baudrate=None``): what the driver's own code costs.
2. Command latency: the car's robot process (python -m robot_rl.drivers.rc_car.node, 50 Hz bus) drives the
   twin; this process publishes ``drive_command`` at 20 Hz, each with a speed of its own (0.3 m/s + 0.5 mm/s
   steps, inside the acceleration limit so the safety core passes it unchanged). A command's latency is the
   time from just before publish() to the arrival at the VESC of the first COMM_SET_RPM carrying its ERPM
   (the twin's log, time.monotonic(): one clock for the host's processes). Peer: the floor of a tick-driven
   bus loop (a command waits for the next tick, uniformly within 20 ms: p50 10 ms, p99 19.8 ms) plus the wire
   time of the drive packets (COMM_SET_RPM + COMM_SET_SERVO_POS: the node sends them first in its tick, before
   the state poll). The twin paces only its replies, not the bytes it receives, so the measured numbers can
   undercut the floor by that wire time (1.6 ms).
3. Odometry drift: the car placed at (1, 0) heading north, driven at 1 m/s with the steering for a 1 m
   rear-axle radius around the arena's central pillar, one lap (2 pi of odometry yaw), through VescSerial at
   50 Hz; BicycleOdometry (a rear-axle model) from the ERPM and the steering command, started at the twin's
   rear axle (the chassis centre is midway between the axles) and compared with the twin's rear axle at the
   end of the lap. Peer: the twin's own pose (ground truth); the ratio is the error per metre driven.
"""
from __future__ import annotations

import os

from robot_rl.drivers.network import apply_dds_environment

apply_dds_environment()
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

import argparse  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from robot_rl.drivers.rc_car.odometry import BicycleOdometry  # noqa: E402
from robot_rl.drivers.rc_car.vesc import IMU_MASK, VescSerial  # noqa: E402
from robot_rl.sim.rc_car import constants as car  # noqa: E402
from robot_rl.sim.vesc import protocol as p  # noqa: E402
from robot_rl.sim.vesc.process import EmulatedVescProcess  # noqa: E402

console = Console(width=150)
BAUD = 115200
BITS_PER_BYTE = 10
BUS_HZ, COMMAND_HZ = 50.0, 20.0


def wire_s(count: int) -> float:
    return count * BITS_PER_BYTE / BAUD


def poll_bytes() -> tuple[int, int]:
    """(request bytes, reply bytes) of one poll, as the protocol frames them."""
    request = len(p.frame(p.get_values())) + len(p.frame(p.get_imu_data(IMU_MASK)))
    imu_fields = bin(IMU_MASK).count("1")
    reply = len(p.frame(bytes(p.VALUES_PAYLOAD_SIZE))) + len(p.frame(bytes(3 + 4 * imu_fields)))
    return request, reply


def drive_bytes() -> int:
    return len(p.frame(p.set_rpm(0))) + len(p.frame(p.set_servo_pos(0.5)))


# --- 1. state rate ---------------------------------------------------------------------------------

def state_rate(seconds: float, baudrate: int | None) -> tuple[float, np.ndarray]:
    with EmulatedVescProcess(baudrate=baudrate) as vesc:
        driver = VescSerial(vesc.port)
        driver.connect()
        for _ in range(20):
            driver.poll()
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            driver.poll()
            times.append(time.perf_counter() - t0)
        driver.close()
    times = np.array(times)
    return len(times) / times.sum(), times


def state_table(seconds: float) -> Table:
    request, reply = poll_bytes()
    ceiling = 1.0 / wire_s(reply)
    table = Table(title=f"state rate: VescSerial.poll() back to back for {seconds:g} s (GET_VALUES + GET_IMU_DATA: "
                        f"{request} bytes out, {reply} bytes back per poll)")
    for column in ("twin wire", "polls/s", "p50 ms", "p99 ms", "115200-baud ceiling /s", "ratio"):
        table.add_column(column, justify="right")
    for label, baudrate in (("paced at 115200", BAUD), ("unpaced pty", None)):
        rate, times = state_rate(seconds, baudrate)
        table.add_row(label, f"{rate:.1f}", f"{np.percentile(times, 50) * 1e3:.2f}",
                      f"{np.percentile(times, 99) * 1e3:.2f}", f"{ceiling:.1f}", f"{rate / ceiling:.2f}")
    return table


# --- 2. command latency ----------------------------------------------------------------------------

def command_latency(commands: int) -> np.ndarray:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from std_msgs.msg import Float64MultiArray

    from robot_rl.drivers.driver_node import COMMAND_QOS

    with EmulatedVescProcess(seed=5) as vesc:
        vesc.place(1.0, 0.0, math.pi / 2)
        namespace = f"/vesc_bench_{os.getpid()}"
        process = subprocess.Popen([sys.executable, "-m", "robot_rl.drivers.rc_car.node", "--backend", "vesc",
                                    "--port", vesc.port, "--enable-torque", "--rate", str(BUS_HZ),
                                    "--ros-args", "-r", f"__ns:={namespace}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        rclpy.init()
        node = Node("vesc_bench_operator", namespace=namespace)
        publisher = node.create_publisher(Float64MultiArray, "drive_command", COMMAND_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        try:
            deadline = time.monotonic() + 60.0
            while publisher.get_subscription_count() == 0 or not vesc.rpm_log():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the car's driver did not come up: {process.stderr.read() if process.poll() else ''}")
                publisher.publish(Float64MultiArray(data=[0.0, 0.0]))
                time.sleep(0.05)
            rng = np.random.default_rng(0)
            sent = []
            period = 1.0 / COMMAND_HZ
            next_at = time.monotonic()
            for i in range(commands):
                next_at += period
                time.sleep(max(0.0, next_at + rng.uniform(0, 1 / BUS_HZ) - time.monotonic()))
                speed = 0.3 + 0.0005 * i  # one ERPM per command; a 1 m circle around the pillar: room for minutes
                t = time.monotonic()
                publisher.publish(Float64MultiArray(data=[0.32, speed]))
                sent.append((t, round(speed * car.SPEED_TO_ERPM_GAIN)))
            time.sleep(0.2)
            log = vesc.rpm_log()
        finally:
            publisher.publish(Float64MultiArray(data=[0.0, 0.0]))
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown()
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
    latencies = []
    for t, erpm in sent:
        arrival = next((at for at, value in log if at >= t and round(value) == erpm), None)
        if arrival is not None:
            latencies.append(arrival - t)
    return np.array(latencies)


def latency_table(latencies: np.ndarray, commands: int) -> Table:
    wire = wire_s(drive_bytes())
    table = Table(title=f"command latency: drive_command publish -> COMM_SET_RPM at the VESC ({len(latencies)} of "
                        f"{commands} commands reached the wire, the others superseded before a bus tick; 20 Hz commands, 50 Hz bus)")
    for column in ("", "p50 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    ms = latencies * 1e3
    table.add_row("measured", *(f"{np.percentile(ms, q):.1f}" for q in (50, 95, 99)), f"{ms.max():.1f}")
    floor = [q / 100 * 1e3 / BUS_HZ + wire * 1e3 for q in (50, 95, 99)]
    table.add_row("floor: tick wait + wire", *(f"{v:.1f}" for v in floor), f"{1e3 / BUS_HZ + wire * 1e3:.1f}")
    table.add_row("ratio", *(f"{np.percentile(ms, q) / f:.2f}" for q, f in zip((50, 95, 99), floor)), "")
    return table


# --- 3. odometry drift -----------------------------------------------------------------------------

def odometry_lap() -> dict:
    radius = 1.0
    steering = math.atan(car.WHEELBASE / radius)
    speed = 1.0
    with EmulatedVescProcess(seed=5) as vesc:
        vesc.place(radius, 0.0, math.pi / 2)
        driver = VescSerial(vesc.port)
        driver.connect()
        start = vesc.ground_truth()
        odom = BicycleOdometry()
        servo = car.STEERING_TO_SERVO_GAIN * steering + car.STEERING_TO_SERVO_OFFSET
        turned, last_yaw, last_stamp = 0.0, 0.0, None
        period = 1.0 / BUS_HZ
        next_at = time.monotonic()
        while turned < 2 * math.pi:
            driver.send_drive(speed * car.SPEED_TO_ERPM_GAIN, servo)
            state = driver.poll()
            dt = 0.0 if last_stamp is None else state.stamp - last_stamp
            last_stamp = state.stamp
            _, _, yaw = odom.update(car.erpm_to_speed(state.values.erpm), steering, dt)
            turned += (yaw - last_yaw + math.pi) % (2 * math.pi) - math.pi
            last_yaw = yaw
            next_at += period
            time.sleep(max(0.0, next_at - time.monotonic()))
        truth = vesc.ground_truth()
        driver.send_brake(10.0)
        driver.close()
    start_rear, truth_rear = _rear_axle(start), _rear_axle(truth)
    c, s = math.cos(start[2]), math.sin(start[2])  # the odometry's frame: the rear axle's at the start
    x = start_rear[0] + c * odom.x - s * odom.y
    y = start_rear[1] + s * odom.x + c * odom.y
    yaw_error = (start[2] + odom.yaw - truth[2] + math.pi) % (2 * math.pi) - math.pi
    return {"odom": (x, y, start[2] + odom.yaw), "truth": (*truth_rear, truth[2]), "distance": odom.distance,
            "position_error": math.hypot(x - truth_rear[0], y - truth_rear[1]), "yaw_error": abs(yaw_error)}


def _rear_axle(pose) -> tuple[float, float]:
    x, y, yaw = pose[:3]
    return x - 0.5 * car.WHEELBASE * math.cos(yaw), y - 0.5 * car.WHEELBASE * math.sin(yaw)


def odometry_table(result: dict) -> tuple[Table, Table]:
    table = Table(title="odometry drift over one lap (1 m radius, 1 m/s, 50 Hz): bicycle model from ERPM and the "
                        "steering command vs the twin's chassis pose")
    for column in ("", "x m", "y m", "yaw rad"):
        table.add_column(column, justify="right")
    table.add_row("odometry, rear axle (end of lap)", *(f"{v:.3f}" for v in result["odom"][:2]),
                  f"{math.remainder(result['odom'][2], 2 * math.pi):.3f}")
    table.add_row("twin ground truth, rear axle", *(f"{v:.3f}" for v in result["truth"]))
    summary = Table(title="drift")
    for column in ("driven m (odometry)", "position error m", "error per metre", "yaw error rad"):
        summary.add_column(column, justify="right")
    summary.add_row(f"{result['distance']:.2f}", f"{result['position_error']:.3f}",
                    f"{result['position_error'] / result['distance']:.3f}", f"{result['yaw_error']:.3f}")
    return table, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seconds, commands = (2.0, 100) if args.quick else (5.0, 300)
    console.print(state_table(seconds))
    latencies = command_latency(commands)
    console.print(latency_table(latencies, commands))
    for table in odometry_table(odometry_lap()):
        console.print(table)


if __name__ == "__main__":
    main()
