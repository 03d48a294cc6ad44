"""The zarr trajectory store: write episodes, read and sample them, check and repair stores.

    from robot_rl.datasets import EmbodimentSpec, StoreWriter, TrajectoryReader, TransitionSampler

Importing this package registers the store's JPEG codec with zarr. torch is imported only by
``to_torch``.
"""
from robot_rl.datasets.copy import copy_store
from robot_rl.datasets.errors import (
                                      CorruptChunkError,
                                      FormatVersionError,
                                      NotAStoreError,
                                      SpecMismatchError,
                                      StoreError,
                                      StoreLockedError,
                                      UncommittedTailError,
)
from robot_rl.datasets.prefetch import Prefetcher
from robot_rl.datasets.reader import TrajectoryReader
from robot_rl.datasets.repair import recover, validate
from robot_rl.datasets.samplers import (
                                      ChunkSampler,
                                      MixtureSampler,
                                      SequenceSampler,
                                      TransitionSampler,
                                      returns_to_go,
                                      to_torch,
)
from robot_rl.datasets.source import InMemorySource, StepSource
from robot_rl.datasets.spec import CameraSpec, EmbodimentSpec, KeySpec
from robot_rl.datasets.writer import EpisodeWriter, StoreWriter, create_store

__all__ = [
    "CameraSpec", "ChunkSampler", "CorruptChunkError", "EmbodimentSpec", "EpisodeWriter", "FormatVersionError",
    "InMemorySource", "KeySpec", "MixtureSampler", "NotAStoreError", "Prefetcher", "SequenceSampler",
    "SpecMismatchError", "StepSource", "StoreError", "StoreLockedError", "StoreWriter", "TrajectoryReader",
    "TransitionSampler", "UncommittedTailError", "copy_store", "create_store", "recover", "returns_to_go", "to_torch", "validate",
]
