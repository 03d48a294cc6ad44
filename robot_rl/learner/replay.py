"""Where batches come from: the offline dataset (opened read-only, never modified) and the run's own
online store (the actor's episodes), mixed at each phase's ratio with exact counts per batch; the
operator's steps in the online store also go to the demonstration side (robot_rl.learner.interventions)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robot_rl.algos.batch import Batch, to_batch
from robot_rl.datasets import (
    ChunkSampler,
    EmbodimentSpec,
    MixtureSampler,
    StoreWriter,
    TrajectoryReader,
    TransitionSampler,
    create_store,
)
from robot_rl.datasets.layout import list_children, store_exists
from robot_rl.datasets.merged import MergedReader
from robot_rl.learner.interventions import demo_side, human_sampler
from robot_rl.learner.run_storage import child, parent

ACTOR_STORES = "online"  # run_dir/online/actor_<k>.zarr: one store per Ray actor (a store has one writer)


class Replay:
    def __init__(self, spec: EmbodimentSpec, keys: tuple[str, ...], online_url: str | os.PathLike,
                 offline_url: str | os.PathLike | None, *, batch_size: int, discount: float, n_step: int,
                 chunk: int, seed: int, offline_in_memory: bool = True, device: str = "cpu", writer: bool = True,
                 hil_ratio: float = 0.5):
        if not 0.0 <= hil_ratio < 1.0:
            raise ValueError(f"hil_ratio={hil_ratio}: expected the share of a batch drawn from the operator's steps "
                             "in phases without offline data, in [0, 1)")
        self.hil_ratio = float(hil_ratio)
        self.keys, self.batch_size, self.device = keys, batch_size, device
        self.sampler_args = dict(keys=keys, discount=discount, **(
            {"horizon": chunk} if chunk > 1 else {"n_step": n_step}))
        self.sampler_class = ChunkSampler if chunk > 1 else TransitionSampler
        # ``writer=False``: another process (the actor of `robot-rl finetune`) is the store's writer and
        # this one only reads it. Otherwise the in-progress episode of a killed run is dropped on open.
        self.writer = StoreWriter.open_or_create(online_url, spec, on_tail="drop") if writer else None
        self.online_reader = TrajectoryReader(online_url) if writer else online_stores(online_url, spec, keys)
        seeds = np.random.SeedSequence(seed).spawn(3)
        self.online = self.sampler_class(self.online_reader, batch_size, seed=np.random.default_rng(seeds[0]),
                                         **self.sampler_args)
        self.offline = None
        if offline_url is not None:
            reader = TrajectoryReader(offline_url)
            check_dataset(reader.spec, spec, keys, offline_url)
            source = reader.to_memory() if offline_in_memory else reader
            self.offline = self.sampler_class(source, batch_size, seed=np.random.default_rng(seeds[1]),
                                              **self.sampler_args)
        self.human = human_sampler(self.sampler_class, self.online_reader, batch_size,
                                   seed=np.random.default_rng(seeds[2]), **self.sampler_args)
        self.drawn = {"offline": 0, "online": 0}  # rows sampled from each over the run; "human" once drawn
        self._mixtures: dict[tuple, MixtureSampler] = {}

    @property
    def online_steps(self) -> int:
        return self.online_reader.num_steps

    def online_ready(self) -> bool:
        return len(self.online) >= 1

    def refresh(self) -> int:
        """Pick up episodes the actor committed since the last call."""
        return self.online.refresh()

    def sample(self, offline_ratio: float, batch_size: int | None = None) -> Batch:
        b = batch_size or self.batch_size
        if offline_ratio > 0 and self.offline is None:
            raise ValueError("this phase samples the offline dataset but no dataset= was given")
        mixture = self._mixture(offline_ratio, b)
        for sampler, count in zip(mixture.samplers, mixture.counts):
            side = "offline" if sampler is self.offline else "human" if sampler is self.human else "online"
            self.drawn[side] = self.drawn.get(side, 0) + int(count)
        sample = mixture.sample()
        # source: 0 the offline dataset, 1 the actor's rows (the human steps among them), whatever the mixture
        sample["source"] = np.repeat([int(s is not self.offline) for s in mixture.samplers], mixture.counts)
        return to_batch(sample, self.device)

    def _mixture(self, offline_ratio: float, batch_size: int) -> MixtureSampler:
        """One mixture per (ratios, batch size), built on first use: sample() runs utd times per step. The
        demonstration side's split between the dataset and the human steps follows their sizes."""
        offline_rows = len(self.offline) if self.offline is not None and offline_ratio > 0 else 0
        dataset, human = demo_side(offline_ratio, self.hil_ratio, offline_rows, len(self.human))
        key = (round(dataset, 4), round(human, 4), batch_size)
        if key not in self._mixtures:
            if len(self._mixtures) > 64:  # the human share moves with every takeover: keep the recent ones
                self._mixtures.clear()
            pairs = [(s, r) for s, r in ((self.offline, dataset), (self.human, human),
                                         (self.online, 1.0 - dataset - human)) if r > 1e-9]
            self._mixtures[key] = MixtureSampler(pairs, batch_size)
        return self._mixtures[key]

    def state(self) -> dict:
        return {"drawn": dict(self.drawn), "rng": {
            "online": self.online.rng.bit_generator.state, "human": self.human.rng.bit_generator.state,
            **({"offline": self.offline.rng.bit_generator.state} if self.offline else {})}}

    def restore(self, state: dict) -> None:
        self.drawn = dict(state["drawn"])
        self.online.rng.bit_generator.state = state["rng"]["online"]
        if "human" in state["rng"]:
            self.human.rng.bit_generator.state = state["rng"]["human"]
        if self.offline is not None and "offline" in state["rng"]:
            self.offline.rng.bit_generator.state = state["rng"]["offline"]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def open_for_reading(url, spec: EmbodimentSpec, keys: tuple[str, ...]) -> TrajectoryReader:
    """Create the online store with ``spec`` if it does not exist yet; else check it holds ``keys`` (and
    actions) in the twin's shapes: a hardware recorder's store has no ``task_state``, for one. Never opens
    a writer: the rows after the last commit belong to a writer that may be running. Returns a reader."""
    if not store_exists(url):
        create_store(url, spec)
    reader = TrajectoryReader(url)
    check_dataset(reader.spec, spec, keys, url)
    return reader


def actor_store(root, actor_id: int) -> Path | str:
    """The store that actor ``actor_id`` of ``robot-rl finetune actors=N`` appends to, under the run's
    shared root (robot_rl.learner.run_storage: the run folder or an object-store URL)."""
    return child(child(root, ACTOR_STORES), f"actor_{actor_id}.zarr")


def actor_stores(root) -> list[Path | str]:
    """Every actor's store under the run's shared root, by actor id."""
    ids = [name[len("actor_"):-len(".zarr")] for name in list_children(child(root, ACTOR_STORES))
           if name.startswith("actor_") and name.endswith(".zarr")]
    return [actor_store(root, k) for k in sorted(int(i) for i in ids if i.isdigit())]


def online_stores(url, spec: EmbodimentSpec, keys: tuple[str, ...]) -> MergedReader:
    """What the learner of ``robot-rl finetune`` consumes: the run's online store (one actor) and the
    stores of its Ray actors beside it (``online/actor_<k>.zarr``, picked up as they appear), as one
    source. Each is checked as :func:`open_for_reading` checks the online store."""
    open_for_reading(url, spec, keys)
    root = parent(url)
    return MergedReader(lambda: [url, *actor_stores(root)],
                        on_open=lambda reader: check_dataset(reader.spec, spec, keys, reader.url))


def check_dataset(found: EmbodimentSpec, expected: EmbodimentSpec, keys: tuple[str, ...], url) -> None:
    """The dataset must hold every key the networks read, with the twin's shapes, and its actions."""
    have, want = found.keys(), expected.keys()
    for key in (*keys, "action"):
        if key not in have:
            raise ValueError(f"dataset={url} has no key {key!r} (it has {sorted(have)}); record it with "
                             f"`robot-rl collect` on the same task, or drop {key!r} from obs_keys/cameras")
        if tuple(have[key].shape) != tuple(want[key].shape):
            raise ValueError(f"dataset={url}: key {key!r} has shape {tuple(have[key].shape)}, the twin gives "
                             f"{tuple(want[key].shape)}: the dataset is from another robot or task")
