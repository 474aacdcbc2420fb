"""MelSpectrogram parity with ``transformers.audio_utils.spectrogram`` (numpy reference)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from transformers.audio_utils import mel_filter_bank, spectrogram, window_function

from stylecond.mel import MelSpectrogram

CONFIGS: list[dict[str, Any]] = [
    dict(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80, f_min=0.0, f_max=None, power=2.0),
    dict(sample_rate=16000, n_fft=1024, hop_length=320, n_mels=80, f_min=0.0, f_max=None, power=2.0),
    dict(
        sample_rate=24000,
        n_fft=512,
        hop_length=200,
        n_mels=64,
        f_min=30.0,
        f_max=8000.0,
        power=1.0,
        norm="slaney",
        mel_scale="slaney",
    ),
]


def _batch(sample_rate: int, dtype: torch.dtype, seconds: float = 0.5) -> torch.Tensor:
    """[4, T]: a sine, white noise, a decaying two-tone chord and a short noise burst in silence."""
    g = torch.Generator().manual_seed(1)
    n = int(seconds * sample_rate)
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    sine = 0.5 * torch.sin(2 * math.pi * 440.0 * t)
    noise = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    chord = (
        0.3 * (torch.sin(2 * math.pi * 523.25 * t) + torch.sin(2 * math.pi * 659.25 * t)) * torch.exp(-4 * t)
    )
    burst = torch.zeros(n, dtype=torch.float64)
    burst[n // 3 : n // 3 + n // 10] = 0.5 * torch.randn(n // 10, generator=g, dtype=torch.float64)
    return torch.stack([sine, noise, chord, burst]).to(dtype)


def _reference(wav: np.ndarray, cfg: dict, log: bool) -> np.ndarray:
    f_max = cfg["f_max"] if cfg["f_max"] is not None else cfg["sample_rate"] / 2
    fb = mel_filter_bank(
        num_frequency_bins=cfg["n_fft"] // 2 + 1,
        num_mel_filters=cfg["n_mels"],
        min_frequency=cfg["f_min"],
        max_frequency=f_max,
        sampling_rate=cfg["sample_rate"],
        norm=cfg.get("norm"),
        mel_scale=cfg.get("mel_scale", "htk"),
    )
    return spectrogram(
        wav,
        window_function(cfg["n_fft"], "hann"),
        frame_length=cfg["n_fft"],
        hop_length=cfg["hop_length"],
        power=cfg["power"],
        mel_filters=fb,
        mel_floor=1e-10,
        log_mel="log" if log else None,
        dtype=np.dtype(np.float64),
    )


def _module(cfg: dict, log: bool = True) -> MelSpectrogram:
    return MelSpectrogram(**cfg, log=log, mel_floor=1e-10)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_float64_matches_transformers_elementwise(cfg: dict) -> None:
    wav = _batch(cfg["sample_rate"], torch.float64)
    out = _module(cfg)(wav)
    assert out.dtype == torch.float64
    for i in range(wav.shape[0]):
        ref = _reference(wav[i].numpy(), cfg, log=True)
        assert out[i].shape == ref.shape
        np.testing.assert_allclose(out[i].numpy(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_float32_batch_matches_transformers(cfg: dict) -> None:
    """float32 round-off only shows far below the peak: compare power relative to each item's peak
    and log-mel on the bins within 60 dB of it."""
    wav64 = _batch(cfg["sample_rate"], torch.float64)
    wav = wav64.float()
    lin = _module(cfg, log=False)(wav)
    logmel = _module(cfg, log=True)(wav)
    assert lin.dtype == torch.float32 and lin.shape[:2] == (4, cfg["n_mels"])
    for i in range(wav.shape[0]):
        ref_lin = _reference(wav[i].double().numpy(), cfg, log=False)
        peak = ref_lin.max()
        assert np.abs(lin[i].double().numpy() - ref_lin).max() <= 1e-4 * peak
        ref_log = _reference(wav[i].double().numpy(), cfg, log=True)
        loud = ref_lin > peak * 1e-3 ** cfg["power"]  # within 60 dB of the peak
        err = np.abs(logmel[i].double().numpy() - ref_log)[loud]
        assert loud.sum() > 0 and err.max() <= 1e-4 * max(1.0, np.abs(ref_log).max())


def test_batched_equals_single_and_channels_are_averaged() -> None:
    cfg = CONFIGS[0]
    mel = _module(cfg)
    wav = _batch(cfg["sample_rate"], torch.float32)
    batched = mel(wav)
    for i in range(wav.shape[0]):
        torch.testing.assert_close(batched[i], mel(wav[i : i + 1])[0], rtol=1e-5, atol=1e-5)
    stereo = torch.stack([wav, 0.5 * wav], dim=1)  # [B, 2, T]
    torch.testing.assert_close(mel(stereo), mel(0.75 * wav), rtol=1e-5, atol=1e-5)


def test_num_frames_and_frame_rate() -> None:
    mel = MelSpectrogram(sample_rate=16000, hop_length=320)
    assert mel.frame_rate == 50.0
    for n in (1000, 16000, 16001):
        assert mel(torch.zeros(1, n) + 0.01).shape[-1] == mel.num_frames(n)


def test_silence_hits_the_floor_and_bad_shape_raises() -> None:
    mel = MelSpectrogram(sample_rate=16000)
    out = mel(torch.zeros(2, 4000))
    assert torch.allclose(out, torch.full_like(out, math.log(1e-10)))
    with pytest.raises(ValueError, match="wav must be"):
        mel(torch.zeros(4000))


def test_too_short_input_raises_value_error() -> None:
    mel = MelSpectrogram(sample_rate=16000, n_fft=1024)
    with pytest.raises(ValueError, match="n_fft // 2"):
        mel(torch.zeros(1, 512))
    assert mel(torch.zeros(1, 513)).shape == (1, 80, 3)
