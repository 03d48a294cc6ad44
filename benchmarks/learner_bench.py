"""Learner update rates beside a Python-list ensemble and Stable-Baselines3, and the policy's acting cost.

    python benchmarks/learner_bench.py            # full run (a few minutes)
    python benchmarks/learner_bench.py --quick    # under a minute

Updates, on CPU with one torch thread (``--threads``): the RLPD configuration, 30-D state, 7-D action,
10 critics of 2 x 256 hidden units with LayerNorm, minibatch 256, UTD 20. One UTD cycle is
``SAC.update`` on 20 minibatches: 20 critic steps (each followed by its Polyak step), then one actor and
temperature step. The 20 random minibatches are built once, outside the timing. Rows:

- batched: robot_rl's SAC with its stacked ``CriticEnsemble`` (each layer one ``baddbmm`` over the
  members); the TD target evaluates only the 2 randomly chosen target critics (REDQ's min over 2).
- list, subset in target (peer): the same SAC with critic and target critic swapped for a Python list
  of 10 ``mlp`` critics looped over in Python; the TD target loops over the same 2 chosen members. This
  row differs from "batched" only in stacked matmuls vs a Python loop (and 10x more parameter tensors
  for Adam and the Polyak step to walk over).
- list, all members in target: the list peer evaluating all 10 target critics and then taking the 2
  chosen, as a naive list implementation does: what evaluating only the subset saves.
- SB3 SAC (peer): stable-baselines3 ``SAC.train(gradient_steps=20, batch_size=256)`` with net_arch
  [256, 256] and n_critics=10 on a dummy 30-D / 7-D env, replay buffer filled with 10,000 random
  transitions. It differs from the rows above: no LayerNorm, the min over all 10 target critics, the
  actor loss takes the min over all 10 critics, one actor and temperature step per gradient step (20 per
  cycle, not 1), and replay sampling (numpy) is inside its timing.

DESIGN.md records that on these CPUs 10 critics forward+backward run equally fast (within 5%) as a list
or stacked when every member is evaluated: batching is expected to pay on a GPU (launch overhead),
while on a CPU the saving comes from doing less arithmetic. A second table repeats that measurement
(10 critics forward + backward on one batch of 256, no optimizer), stacked vs list, with and without
LayerNorm. The implementations are timed in interleaved rounds after a warm-up; tables give the best
round (the least disturbed by other processes, as timeit advises) and the median.

Acting: WidowX pick-and-place twin steps per second (state only) with actions from the SAC actor
(``act`` on a batch of one, sampled and deterministic) vs uniform random actions; the difference is the
policy's inference cost per step.

GPU: when CUDA is available, the update eager vs with ``torch.compile`` on the networks (actor, critic,
target critic compiled in place), the list peer eager (where batching should pay) and SB3's SAC on the
GPU; otherwise one line says the GPU rows were skipped. ``--compile-cpu`` adds the same table on CPU.
Prints tables; passes or fails nothing.
"""
from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from robot_rl.algos.batch import Batch
from robot_rl.algos.sac import SAC, ObservationShapes, SACConfig
from robot_rl.nets import CriticEnsemble, EnsembleMLP, mlp
from robot_rl.sim import make_env

console = Console(width=140)
STATE, ACTION, BATCH, UTD, ENSEMBLE = 30, 7, 256, 20, 10


def rlpd_config() -> SACConfig:
    return SACConfig(ensemble_size=ENSEMBLE, target_subset=2, layer_norm=True, target_entropy=-ACTION / 2)


class ListCritic(nn.Module):
    """The peer: E separate ``mlp`` critics in a Python list, with CriticEnsemble's interface.
    ``target_all``: evaluate every member even when a subset is asked for, then take the subset."""

    def __init__(self, feature_dim: int, action_dim: int, config: SACConfig, target_all: bool = False):
        super().__init__()
        self.ensemble_size, self.target_all = config.ensemble_size, target_all
        self.members = nn.ModuleList(mlp(feature_dim + action_dim, config.hidden, 1, config.layer_norm)
                                     for _ in range(config.ensemble_size))

    def forward(self, features: torch.Tensor, action: torch.Tensor,
                members: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        if members is None or self.target_all:
            q = torch.stack([member(x).squeeze(-1) for member in self.members])
            return q if members is None else q[members]
        return torch.stack([self.members[i](x).squeeze(-1) for i in members.tolist()])

    random_members = CriticEnsemble.random_members


def batched_sac() -> SAC:
    return SAC(ObservationShapes({"state": STATE}), ACTION, rlpd_config())


def list_sac(target_all: bool) -> SAC:
    agent = batched_sac()
    agent.critic = ListCritic(agent.encoder.out_dim, ACTION, agent.config, target_all)
    agent.target_critic = copy.deepcopy(agent.critic).requires_grad_(False)
    agent.optimizers["critic"] = torch.optim.Adam([*agent.encoder.parameters(), *agent.critic.parameters()],
                                                  lr=agent.config.critic_lr)
    return agent


def random_batches(n: int, device: str = "cpu") -> list[Batch]:
    def one() -> Batch:
        rand = lambda *shape: torch.randn(*shape, device=device)  # noqa: E731
        ones = torch.ones(BATCH, device=device)
        return Batch(obs={"state": rand(BATCH, STATE)}, action=torch.rand(BATCH, ACTION, device=device) * 2 - 1,
                     reward=rand(BATCH), discount=0.99 * ones, next_obs={"state": rand(BATCH, STATE)},
                     valid=ones, mc_return=rand(BATCH), source=torch.zeros(BATCH, dtype=torch.long, device=device))
    return [one() for _ in range(n)]


class DummyEnv(gym.Env):
    """Only the spaces matter: SB3 reads them to build its networks and replay buffer."""
    observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (ACTION,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def sb3_cycle(transitions: int = 10_000, device: str = "cpu") -> Callable[[], None]:
    from stable_baselines3 import SAC as SB3SAC
    from stable_baselines3.common.logger import Logger

    model = SB3SAC("MlpPolicy", DummyEnv(), policy_kwargs=dict(net_arch=[256, 256], n_critics=ENSEMBLE),
                   batch_size=BATCH, buffer_size=transitions, learning_starts=0, target_entropy=-ACTION / 2,
                   device=device, seed=0)
    buffer, rng = model.replay_buffer, np.random.default_rng(0)
    buffer.observations[:] = rng.standard_normal(buffer.observations.shape)
    buffer.next_observations[:] = rng.standard_normal(buffer.next_observations.shape)
    buffer.actions[:] = rng.uniform(-1, 1, buffer.actions.shape)
    buffer.rewards[:] = rng.standard_normal(buffer.rewards.shape)
    buffer.full = True
    model.set_logger(Logger(None, []))  # train() records scalars; write them nowhere
    return lambda: model.train(gradient_steps=UTD, batch_size=BATCH)


def timed_rounds(runners: dict[str, Callable[[], None]], rounds: int, calls: int,
                 sync: Callable[[], None] = lambda: None) -> dict[str, tuple[float, float]]:
    """{name: (best, median) calls/s over rounds}, the runners interleaved round by round so a busy
    phase of the machine hits all of them alike. The best round is the least disturbed one (as timeit)."""
    for run in runners.values():  # warm-up: allocator, caches, compilation
        run()
    rates = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            sync()
            start = time.perf_counter()
            for _ in range(calls):
                run()
            sync()
            rates[name].append(calls / (time.perf_counter() - start))
    return {name: (max(r), float(np.median(r))) for name, r in rates.items()}


def update_table(title: str, results: dict[str, tuple[float, float]], reference: str, caption: str) -> Table:
    table = Table(title=title, caption=caption)
    for column in ("implementation", "critic updates/s", "UTD cycles/s", "ms per cycle", f"{reference} / this",
                   "median critic updates/s"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    ref = results[reference][0]
    for name, (cycles, median) in results.items():
        table.add_row(name, f"{UTD * cycles:.1f}", f"{cycles:.2f}", f"{1e3 / cycles:.0f}", f"{ref / cycles:.2f}x",
                      f"{UTD * median:.1f}")
    return table


def critic_alone(rounds: int, calls: int) -> Table:
    """DESIGN.md's measurement: 10 critics forward + backward on one batch, no optimizer, stacked vs list."""
    x = torch.randn(BATCH, STATE + ACTION)
    runners = {}
    for layer_norm in (True, False):
        stacked = EnsembleMLP(ENSEMBLE, STATE + ACTION, (256, 256), 1, layer_norm)
        members = nn.ModuleList(mlp(STATE + ACTION, (256, 256), 1, layer_norm) for _ in range(ENSEMBLE))
        runners[layer_norm, "batched"] = lambda net=stacked: net(x).sum().backward()
        runners[layer_norm, "list"] = lambda nets=members: torch.stack([net(x) for net in nets]).sum().backward()
    results = timed_rounds(runners, rounds, 10 * calls)
    table = Table(title=f"critic ensemble alone: {ENSEMBLE} x (2 x 256) forward + backward, batch {BATCH}, "
                        f"best of {rounds} rounds")
    for column in ("critic", "batched fwd+bwd/s", "list fwd+bwd/s", "batched / list"):
        table.add_column(column, justify="left" if column == "critic" else "right")
    for layer_norm in (True, False):
        batched, listed = results[layer_norm, "batched"][0], results[layer_norm, "list"][0]
        table.add_row("LayerNorm" if layer_norm else "no LayerNorm", f"{batched:.1f}", f"{listed:.1f}",
                      f"{batched / listed:.2f}x")
    return table


def cpu_updates(rounds: int, calls: int, threads: int) -> Table:
    batches = random_batches(UTD)
    runners = {name: (lambda agent=agent: agent.update(batches)) for name, agent in (
        ("batched (robot_rl)", batched_sac()),
        ("list, subset in target (peer)", list_sac(target_all=False)),
        ("list, all members in target", list_sac(target_all=True)))}
    runners["SB3 SAC (peer)"] = sb3_cycle()
    torch.set_num_threads(threads)  # in case a library changed it while building
    results = timed_rounds(runners, rounds, calls)
    title = (f"CPU updates, {threads} thread(s): RLPD config (E={ENSEMBLE}, 2 x 256, LayerNorm, target subset 2, "
             f"batch {BATCH}, UTD {UTD}); best of {rounds} rounds x {calls} cycles")
    caption = ("one cycle = 20 critic steps + 1 actor/temperature step; SB3: no LayerNorm, min over all 10 "
               "critics in target and actor loss, 20 actor steps per cycle, replay sampling included")
    return update_table(title, results, "batched (robot_rl)", caption)


def compiled_updates(rounds: int, calls: int, device: str = "cuda") -> Table | None:
    """Eager vs ``torch.compile`` (networks compiled in place) and the list peer, on ``device``."""
    if device == "cuda" and not torch.cuda.is_available():
        console.print("no GPU available (torch.cuda.is_available() is False): GPU eager vs torch.compile rows skipped")
        return None
    batches = random_batches(UTD, device)
    eager, compiled, listed = batched_sac().to(device), batched_sac().to(device), list_sac(False).to(device)
    for net in (compiled.actor, compiled.critic, compiled.target_critic):
        net.compile()
    runners = {"batched, eager": lambda: eager.update(batches),
               "batched, torch.compile": lambda: compiled.update(batches),
               "list, subset in target, eager": lambda: listed.update(batches),
               "SB3 SAC (peer)": sb3_cycle(device=device)}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    try:
        results = timed_rounds(runners, rounds, calls, sync)
    except Exception as error:  # a missing compiler backend (triton, a C++ toolchain) must not end the run
        console.print(f"{device}: torch.compile failed ({type(error).__name__}: {str(error).splitlines()[0]}); "
                      "compiled rows skipped")
        del runners["batched, torch.compile"]
        results = timed_rounds(runners, rounds, calls, sync)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    return update_table(f"{name} updates: same config; best of {rounds} rounds x {calls} cycles", results,
                        "batched, eager", "torch.compile: actor, critic and target critic compiled in place; "
                        "SB3 as in the CPU table (its replay buffer stays in host memory, as SB3 keeps it)")


def acting_runner(policy: Callable[[dict], np.ndarray], steps: int, seed: int) -> Callable[[], None]:
    env = make_env("widowx", "pick_place")
    obs = [env.reset(seed=seed)[0]]

    def run():
        for _ in range(steps):
            obs[0], _, terminated, truncated, _ = env.step(policy(obs[0]))
            if terminated or truncated:
                obs[0] = env.reset()[0]
    return run


def acting(rounds: int, steps: int) -> Table:
    env = make_env("widowx", "pick_place")
    shapes = ObservationShapes({k: space.shape[0] for k, space in env.observation_space.spaces.items()})
    action_shape = env.action_space.shape
    env.close()  # only its spaces were needed
    agent = SAC(shapes, action_shape[0], rlpd_config())
    rng = np.random.default_rng(0)
    act = lambda deterministic: lambda obs: agent.act({k: v[None] for k, v in obs.items()}, deterministic)[0]  # noqa: E731
    policies = {"random actions (env only)": lambda obs: rng.uniform(-1, 1, action_shape),
                "SAC actor, sampled": act(False), "SAC actor, deterministic": act(True)}
    results = timed_rounds({name: acting_runner(policy, steps, seed) for seed, (name, policy)
                            in enumerate(policies.items())}, rounds, 1)
    table = Table(title=f"acting: WidowX pick_place twin, state only ({'+'.join(shapes.state)}), "
                        f"best of {rounds} rounds x {steps} steps")
    for column in ("actions from", "env steps/s", "x random", "policy ms per step", "median steps/s"):
        table.add_column(column, justify="left" if column == "actions from" else "right")
    random_rate = results["random actions (env only)"][0] * steps
    for name, (calls, median) in results.items():
        rate = calls * steps
        table.add_row(name, f"{rate:.0f}", f"{rate / random_rate:.2f}x", f"{1e3 / rate - 1e3 / random_rate:.2f}",
                      f"{median * steps:.0f}")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and steps (under a minute)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--compile-cpu", action="store_true",
                        help="also time eager vs torch.compile on CPU (about 30 s of compilation; needs a C++ compiler)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rounds, calls, steps = (3, 1, 300) if args.quick else (7, 3, 1000)
    console.print(cpu_updates(rounds, calls, args.threads))
    console.print(critic_alone(rounds, calls))
    console.print(acting(rounds, steps))
    for device in ("cuda", *(["cpu"] if args.compile_cpu else [])):
        table = compiled_updates(rounds, calls, device)
        if table is not None:
            console.print(table)


if __name__ == "__main__":
    main()
