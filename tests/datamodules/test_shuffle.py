"""bounded_shuffle: webdataset's shuffle while under the byte cap (same order), bounded memory above it."""

from __future__ import annotations

import random

import webdataset as wds

from datamodules.shuffle import bounded_shuffle, sample_bytes


def _samples(n: int, size: int) -> list[dict[str, object]]:
    return [{"__key__": f"k{i}", "flac": bytes(size)} for i in range(n)]


def test_same_order_as_webdataset_under_the_cap() -> None:
    data = _samples(500, 10)
    ours = [
        s["__key__"] for s in bounded_shuffle(iter(data), bufsize=64, rng=random.Random(3), max_bytes=10**9)
    ]
    theirs = [s["__key__"] for s in wds.shuffle(64, initial=64, rng=random.Random(3))(iter(data))]
    assert ours == theirs and sorted(ours) == sorted(s["__key__"] for s in data)


def test_buffer_stays_under_the_byte_cap() -> None:
    held: list[int] = []
    buffered: list[dict[str, object]] = []

    def source() -> object:
        for s in _samples(200, 1000):
            buffered.append(s)
            held.append(sum(sample_bytes(b) for b in buffered))
            yield s

    out = []
    for s in bounded_shuffle(iter(source()), bufsize=1000, rng=random.Random(0), max_bytes=10_000):  # type: ignore[arg-type]
        buffered.remove(s)
        out.append(s)
    assert len(out) == 200 and max(held) <= 10_000 + 2 * 1000  # the cap, plus the two items one step reads
