"""Stable seeds derived from a tuple of values, and seeding every global random generator at once."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

__all__ = ["make_seed", "seed_all"]


def make_seed(*parts: Any) -> int:
    """A stable 63-bit seed from ``parts`` (``hash()`` of strings is salted per process; this is not)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") >> 1


def seed_all(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy's global generator and python's ``random``."""
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % 2**32)
    random.seed(seed)
