"""generate() beyond one training segment keeps its style tokens; generate_stream() yields the same tokens'
audio piece by piece."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import stylecond.generation.generate as gen
from datamodules.synth import SynthStyles
from stylecond.conditioners.style import StyleConditioner
from stylecond.models.streaming import ChunkedDecoder
from stylecond.models.style_musicgen import StyleMusicGen


@pytest.fixture()
def reference() -> torch.Tensor:
    return SynthStyles(sample_rate=16000).clip("jazz", seconds=2.0, seed=1).audio  # [C, T]


def _record_windows(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each decoding window's keyword arguments (its conditions, prompt and length)."""
    windows: list[dict[str, Any]] = []
    original = gen.stream_codes

    def spy(*args: Any, **kwargs: Any) -> Any:
        windows.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(gen, "stream_codes", spy)
    return windows


def _count_style_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    forward = StyleConditioner.forward

    def spy(self: StyleConditioner, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(StyleConditioner, "forward", spy)
    return calls


def test_three_segments_keep_the_same_style_tokens(
    tiny_model: StyleMusicGen, reference: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_model.window_seconds = 1.0  # trained on 1 s segments: windows of 50 frames, 30 new per window
    windows, style_calls = _record_windows(monkeypatch), _count_style_calls(monkeypatch)
    wav = tiny_model.generate(texts=["jazz"], style_audio=reference, duration=3.0, seed=0)
    assert wav.shape[-1] == 3 * 16000
    assert [w["num_frames"] for w in windows] == [50, 50, 50, 50, 30]  # 50 + 3 x 30 + 10 = 150 frames
    assert all(w["prompt_codes"].shape[2] == 20 for w in windows[1:])  # each continues the previous tail
    first = windows[0]["conditions"]["style"]
    for w in windows[1:]:
        assert torch.equal(w["conditions"]["style"].embeddings, first.embeddings)
    assert len(style_calls) == 1  # computed once, not per window


def test_redraw_style_draws_a_new_excerpt_per_window(
    tiny_model: StyleMusicGen, reference: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_model.window_seconds = 1.0
    windows, style_calls = _record_windows(monkeypatch), _count_style_calls(monkeypatch)
    starts: list[int] = []
    draw = StyleConditioner._draw_spans

    def spy(self: StyleConditioner, *args: Any, **kwargs: Any) -> Any:
        start, length = draw(self, *args, **kwargs)
        starts.append(int(start[0]))
        return start, length

    monkeypatch.setattr(StyleConditioner, "_draw_spans", spy)
    tiny_model.generate(
        style_audio=reference, duration=2.0, seed=0, redraw_style=True, excerpt_start="middle"
    )
    assert len(windows) == len(style_calls) == 3
    assert starts[0] == 8000 and len(set(starts)) == 3  # the middle, then a random excerpt per window


def test_window_comes_from_the_training_segment(
    tiny_model: StyleMusicGen, reference: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    windows = _record_windows(monkeypatch)
    tiny_model.window_seconds = None  # unknown: MusicGen's 30 s, so 2 s is one window
    tiny_model.generate(style_audio=reference, duration=2.0, seed=0)
    assert windows == []
    tiny_model.window_seconds = 1.5
    tiny_model.generate(style_audio=reference, duration=2.0, seed=0)
    assert [w["num_frames"] for w in windows] == [75, 55]  # then 30 frames of context + the 25 still missing
    windows.clear()
    tiny_model.generate(style_audio=reference, duration=2.0, seed=0, window_seconds=0.5, stride_seconds=0.5)
    assert [w["num_frames"] for w in windows] == [25, 25, 25, 25]  # no overlap: stride = window
    with pytest.raises(ValueError, match="stride_seconds must be in"):
        tiny_model.generate(style_audio=reference, duration=2.0, window_seconds=0.5, stride_seconds=1.0)


def test_stream_yields_the_tokens_generate_decodes(
    tiny_model: StyleMusicGen, reference: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_model.window_seconds = 1.0
    decoded: list[torch.Tensor] = []
    decode = tiny_model.codec.decode
    monkeypatch.setattr(tiny_model.codec, "decode", lambda codes: decoded.append(codes) or decode(codes))
    whole = tiny_model.generate(texts=["jazz"], style_audio=reference, duration=1.5, seed=3)
    codes = decoded[-1]
    pushed: list[torch.Tensor] = []
    push = ChunkedDecoder.push
    monkeypatch.setattr(ChunkedDecoder, "push", lambda self, c: pushed.append(c) or push(self, c))
    pieces = list(
        tiny_model.generate_stream(
            texts=["jazz"], style_audio=reference, duration=1.5, seed=3, chunk_seconds=0.2
        )
    )
    assert torch.equal(torch.cat(pushed, dim=2), codes)  # the same tokens, 10 frames at a time
    assert [c.shape[2] for c in pushed[:-1]] == [10] * (len(pushed) - 1)
    assert len(pieces) > 3 and all(p.shape[-1] > 0 for p in pieces)
    streamed = torch.cat(pieces, dim=-1)
    assert streamed.shape == whole.shape
    # MelCodec's Griffin-Lim draws phases per decode: compare log-mel spectra (see test_streaming.py)
    a, b = tiny_model.codec.features(streamed), tiny_model.codec.features(whole)
    assert float((a - b).norm() / b.norm()) < 0.25
    with pytest.raises(ValueError, match="chunk_seconds"):
        next(tiny_model.generate_stream(texts=["x"], chunk_seconds=0))
