"""Human in the loop, without ROS: the recorder core's live labels (success and failure at any step), the
per-step ``intervention`` key and the episode's takeover count, a learned reward and the operator's labels
over it, on a real zarr store with the simulated rig of tests/test_episode_recorder.py; the keyboard's
takeover and failure keys; the optional spec key on old stores. The ROS and twin parts: tests/test_hil_graph.py."""
from __future__ import annotations

import numpy as np
import pytest

from robot_rl.datasets import StoreWriter, TrajectoryReader, validate
from robot_rl.datasets.errors import SpecMismatchError
from robot_rl.datasets.spec import EmbodimentSpec
from robot_rl.drivers.episode_recorder import EpisodeRecorder, open_store
from robot_rl.drivers.stamped import AlignedStreams
from robot_rl.drivers.takeover import HoldOver, PolicyYield
from robot_rl.drivers.teleop import KeyboardDevice
from tests.test_episode_recorder import PERIOD, Rig, record


class HilRig(Rig):
    """The rig, its store with the ``intervention`` key; ``human`` is sent on the intervention stream each
    tick (stamped, as the takeover teleop does, before the tick's command)."""

    def __init__(self, store, **settings):
        super().__init__(store.with_name("unused.zarr"))
        self.recorder.close()
        self.spec = self.spec.with_optional("intervention")
        self.human = False
        writer, _ = open_store(store, self.spec)
        self.recorder = EpisodeRecorder(self.spec, writer, AlignedStreams(self.buffers, stale_after_s=0.5),
                                        clock=lambda: self.t, reset_task=self._reset, **settings)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.recorder.add_intervention(self.t + PERIOD / 2, self.human)
            super().tick()


def test_failure_labels_the_current_step_terminal_with_reward_zero_and_success_at_any_step_ends_there(tmp_path):
    rig = HilRig(tmp_path / "s.zarr")
    rig.tick(2)
    record(rig, ticks=3, ending="failure")
    record(rig, ticks=2, ending="success")
    rig.close()
    reader = TrajectoryReader(tmp_path / "s.zarr")
    failed, succeeded = reader.episode(0), reader.episode(1)
    assert reader.episode_info(0)["success"] is False and reader.episode_info(0)["ended_by"] == "failure"
    assert failed["terminated"].tolist() == [False, False, True] and failed["reward"].tolist() == [0, 0, 0]
    assert not failed["truncated"].any(), "a failure is terminal: the learner does not bootstrap past it"
    assert succeeded["reward"].tolist() == [0, 1] and succeeded["terminated"].tolist() == [False, True]


def test_each_row_stores_who_acted_and_the_episode_counts_takeovers(tmp_path):
    rig = HilRig(tmp_path / "s.zarr")
    rig.tick(2)
    rig.event("start")
    for human in [False, True, True, False, True, False]:
        rig.human = human
        rig.tick()
    rig.event("stop")
    rig.tick()
    rig.close()
    assert validate(tmp_path / "s.zarr") == []
    reader = TrajectoryReader(tmp_path / "s.zarr")
    assert reader.episode(0)["intervention"].tolist() == [False, True, True, False, True, False]
    info = reader.episode_info(0)
    assert info["interventions"] == 2 and info["human_steps"] == 3


def test_without_intervention_messages_every_row_is_the_policys(tmp_path):
    rig = HilRig(tmp_path / "s.zarr")
    rig.recorder.add_intervention = lambda *a, **k: None  # nobody takes over: no teleop in takeover mode
    rig.tick(2)
    record(rig, ticks=3)
    rig.close()
    reader = TrajectoryReader(tmp_path / "s.zarr")
    assert reader.episode(0)["intervention"].tolist() == [False] * 3
    assert reader.episode_info(0)["interventions"] == 0


def test_a_learned_reward_ends_the_episode_as_a_success_and_the_operators_labels_override_it(tmp_path):
    seen = []

    def classifier(obs):  # a stand-in with a known answer: success once the state reaches step 6
        seen.append(int(obs["state"][0]))
        return 0.9 if obs["state"][0] >= 6 else 0.1

    rig = HilRig(tmp_path / "s.zarr", reward_fn=classifier, reward_threshold=0.5)
    rig.tick(2)
    record(rig, ticks=2, ending="failure")      # steps 3, 4: the operator's failure wins at step 4
    rig.event("start")
    rig.tick(4)                                 # steps 6.. : the classifier fires on the first row
    rig.close()
    reader = TrajectoryReader(tmp_path / "s.zarr")
    assert reader.episode_info(0)["ended_by"] == "failure" and reader.episode(0)["reward"].tolist() == [0, 0]
    assert 4 not in seen, "the row the operator labelled is never classified"
    second = reader.episode(1)
    assert reader.episode_info(1)["ended_by"] == "classifier" and reader.episode_info(1)["success"] is True
    assert second["reward"].tolist() == [1.0] and second["terminated"].tolist() == [True]


def test_a_learned_reward_is_refused_on_the_twin(tmp_path):
    with pytest.raises(ValueError, match="reward_fn: the twin task gives the reward"):
        Rig(tmp_path / "s.zarr", twin=True, reward_fn=lambda obs: 1.0)


def test_an_old_store_stays_readable_and_appendable_by_an_old_spec(tmp_path):
    rig = Rig(tmp_path / "old.zarr")
    rig.tick(2)
    record(rig, ticks=2)
    rig.close()
    assert "optional_keys" not in rig.spec.to_dict(), "specs without optional keys serialize as before"
    reader = TrajectoryReader(tmp_path / "old.zarr")
    assert "intervention" not in reader.spec.keys() and reader.num_episodes == 1
    StoreWriter.open_or_create(tmp_path / "old.zarr", rig.spec).close()
    with pytest.raises(SpecMismatchError, match="optional_keys"):
        EmbodimentSpec.from_dict({**rig.spec.to_dict(), "optional_keys": ["nonsense"]})


def test_the_keyboard_tab_toggles_the_takeover_and_5_is_a_failure():
    keyboard = KeyboardDevice(speed=0.5)
    assert not keyboard.input_from_keys(["w"]).held
    taken = keyboard.input_from_keys(["\t", "w"])
    assert taken.held and taken.delta[0] == 0.5
    assert keyboard.input_from_keys([]).held, "held until Tab again"
    assert not keyboard.input_from_keys(["\t"]).held
    assert keyboard.input_from_keys(["5"]).failure


def test_a_spacemouse_holds_while_deflected_and_a_moment_after():
    now = [0.0]
    hold = HoldOver(hold_s=0.5, clock=lambda: now[0])
    assert not hold.update(False) and hold.update(True)
    now[0] = 0.4
    assert hold.update(False), "a pause shorter than hold_s keeps the takeover"
    now[0] = 1.0
    assert not hold.update(False)


def test_the_policy_yields_while_held_and_resumes_once():
    policy = PolicyYield()
    policy.update(False)
    assert not policy.held and not policy.take_resumed()
    policy.update(True)
    policy.update(True)
    assert policy.held and policy.takeovers == 1
    policy.update(False)
    assert policy.take_resumed() and not policy.take_resumed()
    assert np.isclose(policy.takeovers, 1)


# --- the finetune actor's graph with takeover -------------------------------------------------------

def test_the_finetune_actor_graph_wires_takeover_interventions_and_the_learned_reward():
    from robot_rl.drivers.recorder_node import parse_args as recorder_args
    from robot_rl.drivers.teleop import parse_args as teleop_args
    from robot_rl.drivers.widowx.node import parse_args as robot_args
    from robot_rl.launch.graphs import Options, finetune_actor

    graph = {p.name: p for p in finetune_actor(Options(backend="dynamixel", checkpoint="run", out="o.zarr", steps=40,
                                                       camera_devices={"front": "0"}, teleop="spacemouse",
                                                       takeover=True, reward_classifier="clf"))}
    operator = teleop_args(list(graph["operator"].args))
    assert operator.takeover and not operator.buttons_only and operator.device == "spacemouse"
    recorder = recorder_args(list(graph["recorder"].args))
    assert recorder.interventions and recorder.reward_classifier == "clf"
    twin = {p.name: p for p in finetune_actor(Options(checkpoint="run", out="o.zarr", steps=40, teleop="scripted",
                                                      takeover=True, takeover_budget=30))}
    robot = robot_args(list(twin["widowx"].args))
    assert robot.scripted_takeover and robot.takeover_budget == 30 and robot.policy == "run"
    with pytest.raises(ValueError, match="teleop=scripted"):
        finetune_actor(Options(checkpoint="run", out="o.zarr", steps=40, takeover=True))
    with pytest.raises(ValueError, match="the classifier is for hardware"):
        finetune_actor(Options(checkpoint="run", out="o.zarr", steps=40, reward_classifier="clf"))
    with pytest.raises(ValueError, match="needs an operator device"):
        finetune_actor(Options(backend="dynamixel", checkpoint="run", out="o.zarr", steps=40, teleop="none",
                               cameras=(), takeover=True))
    with pytest.raises(SystemExit):
        robot_args(["--backend", "twin", "--scripted-takeover"])
