"""Samplers against a plain-Python reference on random episode layouts."""
import numpy as np
import pytest

from robot_rl.datasets.samplers import (
    ChunkSampler,
    MixtureSampler,
    SequenceSampler,
    TransitionSampler,
    returns_to_go,
    to_torch,
)
from robot_rl.datasets.source import InMemorySource

G = 0.9
KEYS = ("state", "image")


def make_source(seed, lengths=None, kinds=None, episode_offset=0):
    """Random layout. End kinds: 0 terminated, 1 truncated, 2 neither (recording stopped), 3 both.
    ``state`` is (step, episode) and ``image`` encodes the step, so gathered rows can be checked."""
    rng = np.random.default_rng(seed)
    if lengths is None:
        lengths = rng.integers(1, 9, size=rng.integers(1, 9))
    lengths = np.asarray(lengths)
    if kinds is None:
        kinds = rng.integers(0, 4, size=len(lengths))
    ends = np.cumsum(lengths)
    n = int(ends[-1])
    last = ends - 1
    terminated = np.zeros(n, bool)
    truncated = np.zeros(n, bool)
    terminated[last[np.isin(kinds, (0, 3))]] = True
    truncated[last[np.isin(kinds, (1, 3))]] = True
    episode = np.repeat(np.arange(len(lengths)), lengths) + episode_offset
    data = {
        "action": rng.normal(size=(n, 2)).astype(np.float32),
        "reward": rng.normal(size=n).astype(np.float32),
        "terminated": terminated,
        "truncated": truncated,
        "timestamp": np.arange(n) * 0.1,
        "state": np.stack([np.arange(n), episode], axis=1).astype(np.float32),
        "image": np.broadcast_to((np.arange(n) % 256).astype(np.uint8)[:, None, None, None],
                                 (n, 2, 2, 3)).copy(),
    }
    return InMemorySource(ends, data, KEYS)


def episodes(src):
    start = 0
    for end in src.episode_ends:
        yield start, int(end), bool(src.data["terminated"][end - 1])
        start = int(end)


def ref_returns(src, g):
    r = src.data["reward"]
    out = np.zeros(len(r))
    for s, e, _ in episodes(src):
        acc = 0.0
        for t in reversed(range(s, e)):
            acc = r[t] + g * acc
            out[t] = acc
    return out


def ref_transitions(src, n, g):
    """{t: (n-step reward, next index, discount, m)} for every valid start."""
    r = src.data["reward"]
    out = {}
    for s, e, term in episodes(src):
        for t in range(s, e):
            m = min(n, e - t) if term else min(n, e - 1 - t)
            if m == 0:
                continue
            done = term and t + m == e
            out[t] = (sum(g ** j * r[t + j] for j in range(m)), min(t + m, e - 1),
                      0.0 if done else g ** m, m)
    return out


def ref_chunks(src, h, g):
    """{t: (action chunk, mask, chunk reward, next index, bootstrap discount, td_valid)}."""
    r, a = src.data["reward"], src.data["action"]
    out = {}
    for s, e, term in episodes(src):
        for t in range(s, e):
            length = min(h, e - t)
            chunk = np.stack([a[t + j] if j < length else a[t + length - 1] for j in range(h)])
            mask = np.array([j < length for j in range(h)])
            reward = sum(g ** j * r[t + j] for j in range(length))
            inside = t + h < e
            out[t] = (chunk, mask, reward, t + h if inside else e - 1, g ** h if inside else 0.0,
                      inside or term)
    return out


def ref_window(src, t, history, horizon):
    for s, e, _ in episodes(src):
        if s <= t < e:
            pos = range(t - history + 1, t + horizon)
            return [min(max(i, s), e - 1) for i in pos], [not s <= i < e for i in pos]


def check_rows(obs, index):
    assert np.array_equal(obs["state"][..., 0], index)
    assert np.array_equal(obs["image"][..., 0, 0, 0], index % 256)


LAYOUTS = [make_source(seed) for seed in range(25)] + [
    make_source(100, lengths=[1, 1, 1, 4], kinds=[0, 1, 2, 3]),  # length-1 episodes of every kind
    make_source(101, lengths=[1], kinds=[0]),
]


@pytest.mark.parametrize("n", [1, 3])
def test_transitions_match_reference(n):
    for seed, src in enumerate(LAYOUTS):
        ref = ref_transitions(src, n, G)
        if not ref:  # a single open length-1 episode has nothing to sample
            with pytest.raises(ValueError, match="nothing to sample"):
                TransitionSampler(src, 8, n_step=n, discount=G).sample()
            continue
        batch = TransitionSampler(src, 2000, n_step=n, discount=G, seed=seed).sample()
        t = batch["index"]
        assert set(t.tolist()) == set(ref)  # every valid start drawn, nothing else
        want = np.array([ref[i] for i in t])
        np.testing.assert_allclose(batch["reward"], want[:, 0], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch["n_steps"], want[:, 3])
        np.testing.assert_allclose(batch["discount"], want[:, 2], rtol=1e-6)
        np.testing.assert_array_equal(batch["terminated"], want[:, 2] == 0)
        np.testing.assert_allclose(batch["mc_return"], ref_returns(src, G)[t], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch["action"], src.data["action"][t])
        check_rows(batch["obs"], t)
        check_rows(batch["next_obs"], want[:, 1].astype(np.int64))


@pytest.mark.parametrize("h", [1, 4])
def test_chunks_match_reference(h):
    for seed, src in enumerate(LAYOUTS):
        ref = ref_chunks(src, h, G)
        batch = ChunkSampler(src, 2000, horizon=h, discount=G, seed=seed).sample()
        t = batch["index"]
        assert set(t.tolist()) == set(ref)
        assert batch["action_chunk"].shape == (2000, h, 2) and batch["action_mask"].shape == (2000, h)
        for k, i in enumerate(t[:300]):
            chunk, mask, reward, nxt, boot, valid = ref[i]
            np.testing.assert_array_equal(batch["action_chunk"][k], chunk)
            np.testing.assert_array_equal(batch["action_mask"][k], mask)
            assert batch["chunk_reward"][k] == pytest.approx(reward, rel=1e-5, abs=1e-5)
            assert batch["bootstrap_discount"][k] == pytest.approx(boot, rel=1e-6)
            assert batch["td_valid"][k] == valid
            assert batch["next_obs"]["state"][k, 0] == nxt
        check_rows(batch["obs"], t)
        np.testing.assert_allclose(batch["mc_return"], ref_returns(src, G)[t], rtol=1e-5, atol=1e-5)


def test_sequences_match_reference():
    for seed, src in enumerate(LAYOUTS):
        batch = SequenceSampler(src, 500, history=3, horizon=4, seed=seed).sample()
        assert set(batch) == {"state", "image", "action", "pad_mask", "index"}
        assert batch["state"].shape == (500, 6, 2) and batch["action"].shape == (500, 6, 2)
        assert set(batch["index"].tolist()) == set(range(int(src.episode_ends[-1])))
        for k, t in enumerate(batch["index"]):
            rows, pad = ref_window(src, t, 3, 4)
            np.testing.assert_array_equal(batch["pad_mask"][k], pad)
            np.testing.assert_array_equal(batch["state"][k, :, 0], rows)
            np.testing.assert_array_equal(batch["action"][k], src.data["action"][rows])
        assert np.all(batch["state"][:, 2, 0] == batch["index"])  # position history-1 is the step itself


def test_returns_to_go():
    for src in LAYOUTS:
        got = returns_to_go(src.episode_ends, src.data["reward"], G)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref_returns(src, G), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="reward"):
        returns_to_go(np.array([5]), np.zeros(3, np.float32), G)


def chi_square(counts, p):
    expected = p / p.sum() * counts.sum()
    keep = expected > 0
    assert counts[~keep].sum() == 0
    return float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())


@pytest.mark.parametrize("uniform_over", ["steps", "episodes"])
@pytest.mark.parametrize("weights", [None, [0.0, 1.0, 2.0, 1.0]])
def test_sampling_frequencies(uniform_over, weights):
    lengths = np.array([1, 3, 10, 30])
    src = make_source(7, lengths=lengths, kinds=[0, 0, 0, 0])
    batch = ChunkSampler(src, 40_000, uniform_over=uniform_over, episode_weights=weights, seed=1).sample()
    episode = batch["obs"]["state"][:, 1].astype(np.int64)
    w = np.ones(4) if weights is None else np.array(weights)
    p = w * lengths if uniform_over == "steps" else w
    assert chi_square(np.bincount(episode, minlength=4), p) < 25  # 3 dof: p ~ 1e-5
    # uniform over starts within the longest episode
    steps = batch["index"][episode == 3] - lengths[:3].sum()
    assert chi_square(np.bincount(steps, minlength=30), np.ones(30)) < 90  # 29 dof
    if weights is not None:
        assert not np.any(episode == 0)


def test_transition_weights_skip_unsampleable_episodes():
    # episode 1 is open and one step long: no valid transition, so zero probability under "episodes"
    src = make_source(8, lengths=[4, 1, 4], kinds=[0, 1, 1])
    batch = TransitionSampler(src, 3000, uniform_over="episodes").sample()
    episode = batch["obs"]["state"][:, 1].astype(np.int64)
    assert chi_square(np.bincount(episode, minlength=3), np.array([1.0, 0.0, 1.0])) < 20


class GrowingSource(InMemorySource):
    """Shows ``visible`` episodes; each refresh() commits two more."""

    def __init__(self, full: InMemorySource, visible: int):
        super().__init__(full.episode_ends, full.data, full.obs_keys)
        self.all_ends = self.episode_ends
        self.episode_ends = self.all_ends[:visible]

    def refresh(self):
        old = len(self.episode_ends)
        self.episode_ends = self.all_ends[:old + 2]
        return len(self.episode_ends) - old


def test_growing_source_gets_new_episodes_sampled():
    full = make_source(9, lengths=[5, 7, 3, 6, 8, 4], kinds=[0, 1, 0, 2, 0, 1])
    src = GrowingSource(full, visible=2)
    sampler = TransitionSampler(src, 500, n_step=3, discount=G, episode_weights=[1.0, 0.0])
    first = sampler.sample()["obs"]["state"][:, 1]
    assert set(first.tolist()) == {0.0}
    src.refresh()  # the owner refreshes; the sampler notices the grown episode_ends on its own
    batch = sampler.sample()
    assert set(batch["obs"]["state"][:, 1].tolist()) == {0.0, 2.0, 3.0}  # new episodes weigh 1
    assert sampler.refresh() == 2 and len(sampler) == len(ref_transitions(full, 3, G))
    batch = sampler.sample()
    ref = ref_transitions(full, 3, G)
    t = batch["index"]
    assert set(t.tolist()) == {i for i in ref if not 5 <= i < 12}  # episode 1 keeps weight 0
    np.testing.assert_allclose(batch["reward"], [ref[i][0] for i in t], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch["mc_return"], ref_returns(full, G)[t], rtol=1e-5, atol=1e-5)


def test_empty_source_then_growth():
    src = GrowingSource(make_source(10, lengths=[3, 4], kinds=[0, 0]), visible=0)
    sampler = ChunkSampler(src, 16, horizon=2)
    with pytest.raises(ValueError, match="nothing to sample"):
        sampler.sample()
    src.refresh()
    assert sampler.sample()["index"].max() < 7


def test_mixture_exact_counts_and_labels():
    a = make_source(11)
    b = make_source(12, episode_offset=100)
    sa, sb = TransitionSampler(a, 1, seed=1), TransitionSampler(b, 1, seed=2)
    batch = MixtureSampler([(sa, 0.5), (sb, 0.5)], batch_size=256).sample()
    assert np.array_equal(batch["source"], np.repeat([0, 1], 128))
    assert np.array_equal(batch["obs"]["state"][:, 1] >= 100, batch["source"] == 1)
    assert batch["reward"].shape == (256,) and batch["obs"]["image"].shape == (256, 2, 2, 3)
    for ratios, size, want in [((0.2, 0.3, 0.5), 7, [1, 2, 4]), ((1 / 3,) * 3, 10, [4, 3, 3]),
                               ((0.0, 1.0, 0.0), 5, [0, 5, 0])]:
        mix = MixtureSampler([(TransitionSampler(a, 1), r) for r in ratios], batch_size=size)
        got = mix.sample()["source"]
        assert np.array_equal(np.bincount(got, minlength=3), want) and len(got) == size


def test_determinism_under_seed():
    src = LAYOUTS[3]

    def batches(seed):
        s = TransitionSampler(src, 64, n_step=3, seed=seed)
        return [s.sample() for _ in range(3)]

    same, other = batches(5), batches(6)
    for x, y in zip(same, batches(5)):
        assert np.array_equal(x["index"], y["index"]) and np.array_equal(x["reward"], y["reward"])
    assert not all(np.array_equal(x["index"], y["index"]) for x, y in zip(same, other))


def test_to_torch_dtypes():
    torch = pytest.importorskip("torch")
    src = LAYOUTS[0]
    mix = MixtureSampler([(TransitionSampler(src, 1), 0.5), (TransitionSampler(src, 1), 0.5)], 32)
    batch = to_torch(mix.sample())
    want = {"action": torch.float32, "reward": torch.float32, "discount": torch.float32,
            "terminated": torch.bool, "mc_return": torch.float32, "index": torch.int64,
            "n_steps": torch.int64, "source": torch.int64}
    for key, dtype in want.items():
        assert batch[key].dtype == dtype, key
    assert batch["obs"]["image"].dtype == torch.uint8 and batch["obs"]["image"].shape == (32, 2, 2, 3)
    assert batch["next_obs"]["state"].dtype == torch.float32
    chunk = to_torch(ChunkSampler(src, 8, horizon=3).sample())
    assert chunk["action_mask"].dtype == torch.bool and chunk["td_valid"].dtype == torch.bool
    assert chunk["action_chunk"].shape == (8, 3, 2)


@pytest.mark.parametrize("make, name", [
    (lambda s: TransitionSampler(s, 0), "batch_size"),
    (lambda s: TransitionSampler(s, 8, n_step=0), "n_step"),
    (lambda s: ChunkSampler(s, 8, horizon=0), "horizon"),
    (lambda s: SequenceSampler(s, 8, history=0), "history"),
    (lambda s: TransitionSampler(s, 8, discount=1.5), "discount"),
    (lambda s: TransitionSampler(s, 8, uniform_over="trajectories"), "uniform_over"),
    (lambda s: TransitionSampler(s, 8, episode_weights=[1.0] * 99), "episode_weights"),
    (lambda s: TransitionSampler(s, 8, episode_weights=-np.ones(len(s.episode_ends))), "episode_weights"),
    (lambda s: TransitionSampler(s, 8, keys=("wrist_cam",)), "keys"),
    (lambda s: TransitionSampler(s, 8, episode_weights=np.zeros(len(s.episode_ends))).sample(),
     "nothing to sample"),
    (lambda s: MixtureSampler([(TransitionSampler(s, 1), 0.5), (TransitionSampler(s, 1), 0.4)], 8),
     "ratios"),
    (lambda s: MixtureSampler([], 8), "samplers"),
    (lambda s: MixtureSampler([(TransitionSampler(s, 1), 0.5), (ChunkSampler(s, 1), 0.5)], 8).sample(),
     "different batch keys"),
    (lambda s: TransitionSampler(InMemorySource(np.zeros(0, np.int64), {}, KEYS), 8).sample(),
     "nothing to sample"),
])
def test_bad_arguments_raise(make, name):
    with pytest.raises(ValueError, match=name):
        make(LAYOUTS[0])
