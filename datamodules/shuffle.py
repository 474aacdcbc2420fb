"""A sample shuffle buffer bounded by bytes as well as by count.

WebDataset's ``shuffle`` holds up to ``bufsize`` raw samples: with long tracks in the shards that is
``bufsize`` encoded tracks in memory (a 12 MB FLAC x 1000 = 12 GB). :func:`bounded_shuffle` is the same
algorithm (same draws from ``rng``, so the same order while under the cap) that also stops filling once
the buffered members reach ``max_bytes``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

__all__ = ["bounded_shuffle", "sample_bytes"]


def sample_bytes(sample: dict[str, Any]) -> int:
    """Bytes held by a raw sample's members."""
    return sum(len(v) for v in sample.values() if isinstance(v, (bytes, bytearray)))


def _pick(buf: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    k = rng.randint(0, len(buf) - 1)
    sample = buf[k]
    buf[k] = buf[-1]
    buf.pop()
    return sample


def bounded_shuffle(
    data: Iterator[dict[str, Any]], *, bufsize: int, rng: random.Random, max_bytes: int
) -> Iterator[dict[str, Any]]:
    """Shuffle ``data`` through a buffer of at most ``bufsize`` samples and about ``max_bytes`` bytes; it
    starts yielding once either is reached (``webdataset.shuffle(bufsize, initial=bufsize)`` otherwise)."""
    buf: list[dict[str, Any]] = []
    held = 0
    for sample in data:
        buf.append(sample)
        held += sample_bytes(sample)
        if len(buf) < bufsize and held < max_bytes:
            nxt = next(data, None)
            if nxt is not None:
                buf.append(nxt)
                held += sample_bytes(nxt)
        if len(buf) >= bufsize or held >= max_bytes:
            picked = _pick(buf, rng)
            held -= sample_bytes(picked)
            yield picked
    while buf:
        yield _pick(buf, rng)
