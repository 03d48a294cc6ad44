"""What every twin task promises, checked on each one with real MuJoCo physics.

Robot-specific checks (joint limits, IK, controllers) are in test_sim_<robot>.py.
"""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from robot_rl.sim import TASKS, Dynamics, make_env, make_expert

ALL_TASKS = [(robot, task) for robot, tasks in TASKS.items() for task in tasks]
EXPERT_NOISE = 0.05  # "low noise" for the 90 % success promise


def rollout(env, seed: int, steps: int, policy=None):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = [obs["state"]]
    for _ in range(steps):
        action = policy(obs) if policy else rng.uniform(-1, 1, env.action_space.shape)
        obs, _, terminated, truncated, _ = env.step(action)
        trace.append(obs["state"])
        if terminated or truncated:
            break
    return np.stack(trace)


@pytest.mark.parametrize("robot,task", ALL_TASKS)
def test_observations_match_the_embodiment_spec(robot, task):
    env = make_env(robot, task)
    obs, info = env.reset(seed=0)
    assert set(obs) == set(env.embodiment.obs_keys)
    for key, spec in env.embodiment.keys().items():
        if key in obs:
            assert obs[key].shape == spec.shape and obs[key].dtype == np.dtype(spec.dtype), key
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and "success" in info
    env.close()


@pytest.mark.parametrize("robot,task", ALL_TASKS)
def test_same_seed_gives_identical_rollouts(robot, task):
    env = make_env(robot, task, dynamics="perturbed")  # noise and jitter must be seeded too
    first, second = rollout(env, 3, 15), rollout(env, 3, 15)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(rollout(env, 3, 15)[0], rollout(env, 4, 15)[0]), "initial state is not randomized"


@pytest.mark.parametrize("robot,task", ALL_TASKS)
@pytest.mark.parametrize("knob", [{"mass_scale": 2.0}, {"friction_scale": 0.3}, {"damping_scale": 4.0},
                                  {"gain_scale": 0.5}, {"action_latency": 2}, {"action_noise": 0.2},
                                  {"sensor_noise": 0.01}])
def test_changing_a_dynamics_knob_changes_the_rollout(robot, task, knob):
    nominal = rollout(make_env(robot, task), 1, 10)
    changed = rollout(make_env(robot, task, dynamics=Dynamics(**knob)), 1, 10)
    n = min(len(nominal), len(changed))
    assert not np.allclose(nominal[:n], changed[:n]), f"{knob} left the rollout unchanged"


@pytest.mark.parametrize("robot,task", ALL_TASKS)
def test_scripted_expert_succeeds_at_least_90_percent(robot, task):
    env = make_env(robot, task)
    successes = 0
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        expert = make_expert(env, noise=EXPERT_NOISE, seed=seed)
        expert.reset()
        success = False
        while True:
            obs, _, terminated, truncated, info = env.step(expert(obs))
            success |= info["success"]
            if terminated or truncated or success:
                break
        successes += success
    assert successes >= 18, f"{robot}/{task}: expert succeeded {successes}/20"


@pytest.mark.parametrize("robot,task", ALL_TASKS)
def test_sparse_reward_is_the_success_indicator(robot, task):
    env = make_env(robot, task, reward_type="sparse")
    env.reset(seed=0)
    expert = make_expert(env, seed=0)
    for _ in range(env.max_steps):
        _, reward, terminated, truncated, info = env.step(expert())
        assert reward == float(info["success"])
        if terminated or truncated:
            break


@pytest.mark.parametrize("robot,task", ALL_TASKS)
def test_cameras_render_non_blank_images(robot, task):
    env_cls = make_env(robot, task).__class__
    env = env_cls(cameras=env_cls.camera_names, image_size=(48, 64))
    obs, _ = env.reset(seed=0)
    for name in env_cls.camera_names:
        image = obs[name]
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert image.std() > 5, f"camera {name!r} rendered a blank image"
    env.close()


@pytest.mark.parametrize("robot,task", ALL_TASKS)
def test_step_limit_truncates(robot, task):
    env = make_env(robot, task, max_steps=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(env.action_space.shape))[2:4] for _ in range(3)]
    assert flags[-1] == (False, True) or flags[-1][0], "the third step of a 3-step limit must end the episode"


def test_registered_with_gymnasium():
    env = gymnasium.make("robot_rl/WidowXReach-v0")
    obs, _ = env.reset(seed=0)
    assert "state" in obs
    env.close()


def test_bad_actions_and_options_are_refused_with_the_fix():
    env = make_env("widowx", "reach")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected shape"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(7, np.nan))
    with pytest.raises(ValueError, match="no camera"):
        make_env("widowx", "reach", cameras=("nope",))
    with pytest.raises(ValueError, match="expected one of"):
        make_env("widowx", "reach", dynamics="no_such_preset")
    with pytest.raises(ValueError, match="unknown"):
        make_env("widowx", "no_such_task")
