from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import torch

from datamodules.synth import MODES, STYLE_SPECS, STYLES, SynthClip, SynthStyles
from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier


@pytest.fixture(scope="module")
def synth() -> SynthStyles:
    return SynthStyles(sample_rate=16000, seed=0)


def test_at_least_eight_named_styles() -> None:
    assert len(STYLES) >= 8
    assert len(set(STYLES)) == len(STYLES)
    assert set(STYLES) == set(STYLE_SPECS)


@pytest.mark.parametrize("style", STYLES)
def test_every_style_renders_valid_audio_and_caption(synth: SynthStyles, style: str) -> None:
    clip = synth.clip(style, seconds=1.0, seed=3)
    assert isinstance(clip, SynthClip)
    assert clip.style == style and clip.sample_rate == 16000
    assert clip.audio.shape == (1, 16000) and clip.audio.dtype == torch.float32
    assert torch.isfinite(clip.audio).all()
    assert clip.audio.abs().max() <= 0.95
    assert clip.audio.pow(2).mean().sqrt() > 0.02  # not silent
    attrs = clip.attributes
    spec = STYLE_SPECS[style]
    assert attrs["style"] == style
    assert spec.bpm[0] <= attrs["bpm"] <= spec.bpm[1]
    assert attrs["mode"] in spec.modes and attrs["mode"] in MODES
    assert attrs["drums"] == (spec.drums is not None)
    for word in (spec.label, f"{attrs['key']} {attrs['mode']}", f"{attrs['bpm']} bpm", attrs["instrument"]):
        assert word in clip.caption
    assert ("with drums" if attrs["drums"] else "without drums") in clip.caption
    json.dumps(attrs)  # JSON-safe metadata for shards


def test_same_seed_identical_different_seed_differs(synth: SynthStyles) -> None:
    a = synth.clip("jazz", seconds=0.7, seed=5)
    b = SynthStyles(sample_rate=16000, seed=0).clip("jazz", seconds=0.7, seed=5)
    assert torch.equal(a.audio, b.audio) and a.caption == b.caption
    assert not torch.equal(a.audio, synth.clip("jazz", seconds=0.7, seed=6).audio)
    assert not torch.equal(a.audio, SynthStyles(seed=1).clip("jazz", seconds=0.7, seed=5).audio)


def test_clips_of_one_style_vary(synth: SynthStyles) -> None:
    clips = [synth.clip("rock", seconds=0.5, seed=s) for s in range(8)]
    assert len({(c.attributes["key"], c.attributes["bpm"]) for c in clips}) >= 4
    assert len({c.caption for c in clips}) >= 4


@pytest.mark.parametrize(
    ("sample_rate", "seconds"), [(16000, 0.01), (16000, 1.37), (8000, 0.5), (44100, 0.25)]
)
def test_any_length_and_sample_rate(sample_rate: int, seconds: float) -> None:
    clip = SynthStyles(sample_rate=sample_rate).clip("chiptune", seconds=seconds, seed=0)
    assert clip.audio.shape == (1, round(seconds * sample_rate))
    assert clip.sample_rate == sample_rate
    assert torch.isfinite(clip.audio).all() and clip.audio.abs().max() <= 1.0


def test_clips_round_robin(synth: SynthStyles) -> None:
    clips = list(synth.clips(5, seconds=0.2, seed=2, styles=["funk", "folk"]))
    assert [c.style for c in clips] == ["funk", "folk", "funk", "folk", "funk"]
    assert clips[0].attributes["seed"] != clips[2].attributes["seed"]
    again = synth.clip("folk", seconds=0.2, seed=clips[1].attributes["seed"])
    assert torch.equal(again.audio, clips[1].audio)
    assert [c.style for c in synth.clips(len(STYLES), seconds=0.1)] == list(STYLES)


def test_bad_arguments_raise(synth: SynthStyles) -> None:
    with pytest.raises(ValueError, match="style"):
        synth.clip("polka", seconds=1.0)
    with pytest.raises(ValueError, match="seconds"):
        synth.clip("rock", seconds=0.0)
    with pytest.raises(ValueError, match="sample_rate"):
        SynthStyles(sample_rate=100)
    with pytest.raises(ValueError, match="styles"):
        list(synth.clips(2, seconds=0.1, styles=["rock", "polka"]))
    with pytest.raises(ValueError, match="n must"):
        list(synth.clips(-1, seconds=0.1))


def test_speed_is_measured(synth: SynthStyles, record_property: Callable[[str, object], None]) -> None:
    seconds = 4.0
    start = time.perf_counter()
    clips = list(synth.clips(len(STYLES), seconds=seconds, seed=9))
    elapsed = time.perf_counter() - start
    factor = len(clips) * seconds / elapsed
    record_property("synth_realtime_factor", factor)
    print(f"SynthStyles: {factor:.0f}x real time at 16 kHz")
    assert len(clips) == len(STYLES)


def test_styles_are_learnable_by_nearest_centroid(synth: SynthStyles) -> None:
    seconds = 1.5
    train = list(synth.clips(4 * len(STYLES), seconds=seconds, seed=0))
    held_out = list(synth.clips(4 * len(STYLES), seconds=seconds, seed=1))
    train_seeds = {(c.style, c.attributes["seed"]) for c in train}
    assert not train_seeds & {(c.style, c.attributes["seed"]) for c in held_out}
    clf = NearestCentroidStyleClassifier(sample_rate=16000).fit(
        [c.audio for c in train], [c.style for c in train]
    )
    accuracy = clf.score([c.audio for c in held_out], [c.style for c in held_out])
    print(f"nearest-centroid style accuracy on held-out clips: {accuracy:.3f}")
    assert accuracy >= 0.9
