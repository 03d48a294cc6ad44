"""Twin step rates beside robosuite, on one core.

    python benchmarks/sim_bench.py            # every twin task, 2000 steps each
    python benchmarks/sim_bench.py --quick    # 300 steps each (what `make demo` runs)

For each twin task: environment steps per second with uniform random actions, state only and with
one 128 x 128 camera rendered offscreen (MUJOCO_GL=egl), and the real-time factor (simulated seconds
per wall second). The peer, measured in the same run: robosuite 1.5.2 Lift (Panda, OSC_POSE through
the BASIC composite controller, 20 Hz), without cameras and with its 128 x 128 `agentview` camera. Resets are included in the timing, as in
training. The process is pinned to one core and to one thread. A second table gives each scripted
expert's success rate on nominal and perturbed dynamics, beside robosuite Lift's expert. Prints
tables; passes or fails nothing. Target from the twins issue: every twin task, state only, at least 10x robosuite Lift.
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from robot_rl.sim import TASKS, env_class, make_env, make_expert  # noqa: E402
from robot_rl.sim.robosuite_adapter import RobosuiteEnv, RobosuiteLiftExpert  # noqa: E402

console = Console(width=140)


def steps_per_second(env, steps: int, seed: int = 0) -> tuple[float, float]:
    """(env steps per wall second, simulated seconds per wall second) with random actions."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(20):  # warm-up: JIT, renderer context, caches
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    env.reset(seed=seed + 1)
    sim_time, episode_start = 0.0, env.unwrapped.time
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        if terminated or truncated:
            sim_time += env.unwrapped.time - episode_start
            env.reset(seed=seed + 2 + i)
            episode_start = env.unwrapped.time
    wall = time.perf_counter() - start
    sim_time += env.unwrapped.time - episode_start
    return steps / wall, sim_time / wall


def expert_success(env, expert_for, episodes: int, noise: float = 0.05) -> tuple[float, float]:
    """(success rate, mean steps of the successful episodes) of a scripted expert over seeds 0..n-1."""
    successes, steps = 0, []
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert = expert_for(env, noise, seed)
        expert.reset()
        done, t = False, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(expert(obs))
            done, t = terminated or truncated, t + 1
        successes += info["success"]
        steps += [t] if info["success"] else []
    return successes / episodes, float(np.mean(steps)) if steps else float("nan")


def expert_table(episodes: int) -> Table:
    table = Table(title=f"scripted experts: success over {episodes} seeded episodes at action noise 0.05")
    for column in ("task", "nominal success", "steps to success", "perturbed success", "steps to success"):
        table.add_column(column, justify="left" if column == "task" else "right")
    peer = RobosuiteEnv("Lift", robot="Panda", control_rate_hz=20.0, max_steps=100)
    rate, length = expert_success(peer, lambda env, noise, seed: RobosuiteLiftExpert(env, noise, seed), episodes)
    peer.close()
    table.add_row("robosuite Lift (peer)", f"{rate:.0%}", f"{length:.1f}", "", "")
    for robot, tasks in TASKS.items():
        for task in tasks:
            cells = []
            for dynamics in ("nominal", "perturbed"):
                rate, length = expert_success(make_env(robot, task, dynamics=dynamics), make_expert, episodes)
                cells += [f"{rate:.0%}", f"{length:.1f}"]
            table.add_row(f"{robot}/{task}", *cells)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 steps per measurement")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--experts", type=int, default=50, help="episodes per expert (0: skip that table)")
    args = parser.parse_args()
    steps = 300 if args.quick else args.steps
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    peer = RobosuiteEnv("Lift", robot="Panda", control_rate_hz=20.0)
    peer_rate, peer_rtf = steps_per_second(peer, max(steps // 4, 100))
    peer.close()
    peer = RobosuiteEnv("Lift", robot="Panda", control_rate_hz=20.0, cameras=("agentview",))
    peer_cam_rate, _ = steps_per_second(peer, max(steps // 8, 50))
    peer.close()

    table = Table(title=f"twin step rates on one core ({steps} random-action steps each); "
                        "peer: robosuite Lift (Panda, OSC, 20 Hz) in the same run")
    for column in ("task", "control Hz", "state-only steps/s", "x robosuite Lift", "real-time factor",
                   "1 x 128x128 camera steps/s", "x robosuite Lift (cam)"):
        table.add_column(column, justify="left" if column == "task" else "right")
    table.add_row("robosuite Lift (peer)", "20", f"{peer_rate:.0f}", "1.0x", f"{peer_rtf:.1f}",
                  f"{peer_cam_rate:.0f}", "1.0x")
    for robot, tasks in TASKS.items():
        for task in tasks:
            env = make_env(robot, task)
            rate, rtf = steps_per_second(env, steps)
            hz = env.control_rate_hz
            env.close()
            camera = make_env(robot, task, cameras=env_class(robot, task).camera_names[:1])
            cam_rate, _ = steps_per_second(camera, max(steps // 4, 50))
            camera.close()
            table.add_row(f"{robot}/{task}", f"{hz:g}", f"{rate:.0f}", f"{rate / peer_rate:.1f}x", f"{rtf:.1f}",
                          f"{cam_rate:.0f}", f"{cam_rate / peer_cam_rate:.1f}x")
    console.print(table)
    episodes = min(args.experts, 10) if args.quick else args.experts
    if episodes:
        console.print(expert_table(episodes))


if __name__ == "__main__":
    main()
