from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import torch

from datamodules.decoding import CodecExpectation, decode_audio, decode_codes, decode_json, find_audio_member
from datamodules.skips import SkipCounter, SkipSample

EXPECT = CodecExpectation(num_codebooks=2, frame_rate=50.0, cardinality=16, codec_id="c")


def npy(arr: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def test_decode_codes_good() -> None:
    codes = decode_codes(npy(np.arange(10, dtype=np.int16).reshape(2, 5)), expect=EXPECT, meta={"codec_id": "c"},
                         name="x")  # fmt: skip
    assert codes.dtype == torch.long and codes.shape == (2, 5)


@pytest.mark.parametrize(
    ("data", "meta", "reason", "match"),
    [
        (None, {"codec_id": "c"}, "missing_codes", "no codes.npy"),
        (npy(np.zeros((2, 5), np.int16)), {"codec_id": "d"}, "codec_mismatch", "expected 'c'"),
        (npy(np.zeros((3, 5), np.int16)), {"codec_id": "c"}, "bad_codes", "K=3"),
        (npy(np.full((2, 5), 16, np.int16)), {"codec_id": "c"}, "bad_codes", r"valid range is \[0, 16\)"),
        (npy(np.zeros((2, 5), np.float32)), {"codec_id": "c"}, "bad_codes", "int16"),
        (npy(np.array([{"a": 1}], dtype=object)), {"codec_id": "c"}, "bad_codes", "unreadable"),
        (b"garbage", {"codec_id": "c"}, "bad_codes", "unreadable"),
    ],
)
def test_decode_codes_bad(data: Any, meta: dict[str, Any], reason: str, match: str) -> None:
    with pytest.raises(SkipSample, match=match) as info:
        decode_codes(data, expect=EXPECT, meta=meta, name="shard.tar:key")
    assert info.value.reason == reason


def test_decode_json() -> None:
    assert decode_json(json.dumps({"text": "hi", "bpm": 1}).encode(), name="j")["bpm"] == 1
    for data, reason in (
        (None, "missing_json"),
        (b"[1]", "bad_json"),
        (b'{"text": 3}', "bad_json"),
        (b"\xff", "bad_json"),
    ):
        with pytest.raises(SkipSample) as info:
            decode_json(data, name="j")
        assert info.value.reason == reason


def test_decode_audio(kit: Any) -> None:
    wav = decode_audio(kit.audio_bytes(kit.tone(0.5, channels=2)), sample_rate=8000, channels=1, name="a")
    assert wav.shape == (1, 4000)
    nan = kit.audio_bytes(np.full((100, 1), np.inf, np.float32), fmt="WAV", subtype="FLOAT")
    cases = ((b"\x00" * 64, "", "bad_audio"), (nan, "", "nonfinite_audio"), (b"junk", "style", "bad_style"))
    for data, prefix, reason in cases:
        with pytest.raises(SkipSample, match="shard.tar:k") as info:
            decode_audio(data, sample_rate=8000, channels=1, name="shard.tar:k", reason_prefix=prefix)
        assert info.value.reason == reason
    assert find_audio_member({"json": b"", "ogg": b"", "style.flac": b""}) == "ogg"
    assert find_audio_member({"json": b"", "ogg": b"", "style.flac": b""}, prefix="style.") == "style.flac"


def test_codec_expectation_and_counter_validation() -> None:
    with pytest.raises(ValueError, match="cardinality must be in 1..32768"):
        CodecExpectation(num_codebooks=1, frame_rate=50.0, cardinality=70000)
    with pytest.raises(ValueError, match="unknown skip reason"):
        SkipCounter().record("nope", url="u", key="k", detail="d")
    counter = SkipCounter()
    counter.record("too_short", url="u", key="k", detail="d")
    assert counter.totals() == {"too_short": 1}
