"""SampleProcessor: a long track costs the memory of its crop, not of the track, and gives the same crop;
random damage to a sample's members (truncation, bit flips) is always a counted skip, never a crash or NaN."""

from __future__ import annotations

import io
import json
import random
import tracemalloc
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamodules.decoding import CodecExpectation
from datamodules.processing import SampleProcessor
from datamodules.skips import SkipSample
from stylecond.audio import crop_or_pad, load_audio

SR = 16000


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(round(seconds * SR)) / SR)).astype(np.float32)[:, None]


def audio_bytes(data: np.ndarray, fmt: str = "FLAC") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, SR, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _raw(seconds: float, fmt: str = "FLAC") -> dict[str, Any]:
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal((round(seconds * SR), 1))).astype(np.float32)
    return {"__key__": "long", "__url__": "mem", "json": json.dumps({"text": "a long track"}).encode(),
            fmt.lower(): audio_bytes(noise, fmt=fmt)}  # fmt: skip


@pytest.mark.parametrize("fmt", ["FLAC", "WAV"])
def test_a_long_track_is_decoded_only_where_it_is_cropped(fmt: str) -> None:
    raw = _raw(300.0, fmt)  # 5 minutes: 19 MB as float32
    processor = SampleProcessor(sample_rate=SR, channels=1, segment_seconds=2.0)
    tracemalloc.start()
    sample = processor(raw, random.Random(7))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, f"peak {peak / 1e6:.1f} MB for a 2 s crop of a 5 min track"
    full, _ = load_audio(
        raw[fmt.lower()], sample_rate=SR, channels=1
    )  # the whole-track decode, for reference
    offset = round(sample.metadata["crop_offset_seconds"] * SR)
    want, mask = crop_or_pad(full, 2 * SR, offset=offset)
    assert sample.audio is not None and torch.equal(sample.audio, want) and bool(mask.all())
    assert random.Random(7).randint(0, full.shape[-1] - 2 * SR) == offset  # the same draw as before


def test_short_and_codes_paths_keep_their_padding() -> None:
    raw = _raw(1.0)
    sample = SampleProcessor(sample_rate=SR, channels=1, segment_seconds=1.5, train=False)(
        raw, random.Random(0)
    )
    assert sample.audio is not None and sample.audio.shape == (1, int(1.5 * SR))
    assert int(sample.audio_mask.sum()) == SR  # type: ignore[union-attr]
    wav, _ = load_audio(raw["flac"], channels=1)
    assert torch.equal(sample.audio[:, :SR], wav)


MEMBERS = ("flac", "json", "codes.npy", "style.flac")


def _good() -> dict[str, Any]:
    codes = np.random.default_rng(1).integers(0, 16, (2, 50)).astype(np.int16)
    buf = io.BytesIO()
    np.save(buf, codes)
    return {"__key__": "k", "__url__": "fuzz", "flac": audio_bytes(tone(1.0)), "style.flac": audio_bytes(tone(1.0, 330.0)),
            "json": json.dumps({"text": "a tone", "codec_id": "tiny"}).encode(), "codes.npy": buf.getvalue()}  # fmt: skip


GOOD = _good()
PROCESSOR = SampleProcessor(sample_rate=SR, channels=1, segment_seconds=0.5, style_seconds=0.25,
                            codes=CodecExpectation(num_codebooks=2, frame_rate=50.0, cardinality=16, codec_id="tiny"))  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(
    member=st.sampled_from(MEMBERS),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), max_size=8),
)
def test_damaged_members_are_skipped_never_fatal(
    member: str, cut: float, flips: list[tuple[float, int]]
) -> None:
    data = bytearray(GOOD[member][: max(0, round(cut * len(GOOD[member])))] if cut < 1.0 else GOOD[member])
    for where, bit in flips:
        if data:
            data[min(len(data) - 1, int(where * len(data)))] ^= 1 << bit
    raw = {**GOOD, member: bytes(data)}
    try:
        sample = PROCESSOR(raw, random.Random(0))
    except SkipSample as skip:
        assert skip.reason and str(skip)
        return
    for t in (sample.audio, sample.style_audio):
        assert t is not None and bool(torch.isfinite(t).all())
    assert sample.codes is not None and int(sample.codes.min()) >= 0 and int(sample.codes.max()) < 16
