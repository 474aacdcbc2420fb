"""stylecond.audio: loading (paths and bytes), bad files, resampling, channels, crop/pad, loudness, saving."""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from stylecond.audio import (
    AudioError,
    check_finite,
    convert_channels,
    crop_or_pad,
    load_audio,
    normalize_loudness,
    resample,
    save_audio,
)

SR = 16000


def _tone(seconds: float = 0.25, sr: int = SR, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1)  # [T, C]


def _encoded(fmt: str, data: np.ndarray, sr: int = SR, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_load_formats_from_path_and_bytes(tmp_path: Path, fmt: str) -> None:
    data = _tone(channels=2)
    raw = _encoded(fmt, data)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(raw)
    wav, sr = load_audio(path)
    from_bytes, sr_b = load_audio(raw)
    assert sr == sr_b == SR
    assert wav.dtype == torch.float32 and wav.shape[0] == 2
    assert torch.equal(wav, from_bytes)
    if fmt in ("WAV", "FLAC"):  # lossless (16-bit)
        assert wav.shape[1] == data.shape[0]
        assert torch.allclose(wav, torch.from_numpy(data.T), atol=1e-4)
    else:  # lossy: length within a codec frame, energy preserved roughly
        assert abs(wav.shape[1] - data.shape[0]) < 2048
        assert wav.pow(2).mean().sqrt().item() == pytest.approx(float(np.sqrt((data**2).mean())), rel=0.3)


def test_load_resamples_and_converts_channels(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, _tone(0.25, sr=44100, channels=2), 44100, subtype="FLOAT")
    wav, sr = load_audio(path, sample_rate=SR, channels=1)
    assert sr == SR and wav.shape == (1, SR // 4)
    # the 440 Hz tone survives at the mixed level (mean of 0.5 and 1.0 times the tone)
    ref = torch.from_numpy(_tone(0.25, sr=SR)[:, 0]) * 0.75
    mid = slice(500, -500)
    assert torch.allclose(wav[0, mid], ref[mid], atol=2e-3)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4000)), "could not be decoded"),
        (lambda p: p.write_bytes(_encoded("WAV", _tone())[:20]), "could not be decoded"),
        (lambda p: p.write_bytes(_encoded("WAV", _tone())[:3000]), "truncated"),
        (lambda p: p.write_bytes(_encoded("FLAC", _tone(2.0))[:2500]), "could not be decoded"),
        (lambda p: sf.write(p, np.zeros((0, 1), np.float32), SR), "zero length"),
    ],
    ids=[
        "missing",
        "empty",
        "random",
        "truncated_header",
        "truncated_wav_data",
        "truncated_flac",
        "zero_length",
    ],
)
def test_bad_files_raise_audio_error_naming_the_file(tmp_path: Path, make, match: str) -> None:
    path = tmp_path / "bad_file.wav"
    make(path)
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path)
    assert "bad_file.wav" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_float_wav_raises(tmp_path: Path, bad: float) -> None:
    data = _tone()
    data[100, 0] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*non-finite"):
        load_audio(path)
    with pytest.raises(AudioError, match="clip-7.*non-finite"):
        load_audio(path.read_bytes(), name="clip-7")


def test_bytes_errors_use_the_given_name() -> None:
    with pytest.raises(AudioError, match="<bytes>.*empty"):
        load_audio(b"")
    with pytest.raises(AudioError, match="shard/key.flac"):
        load_audio(b"not audio at all" * 10, name="shard/key.flac")


def test_silence_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros((SR // 4, 1), np.float32), SR)
    wav, _ = load_audio(path)
    assert wav.abs().max() == 0
    with pytest.warns(UserWarning, match="silent"):
        out = normalize_loudness(wav)
    assert torch.equal(out, wav)


def test_resample_lengths_and_identity() -> None:
    x = torch.randn(2, 3, 441)
    assert resample(x, 44100, 44100) is x
    assert resample(x, 44100, 16000).shape == (2, 3, 160)
    assert resample(x, 44100, 48000).shape == (2, 3, 480)
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_resample_keeps_a_low_tone_and_removes_aliasing() -> None:
    sr_in, sr_out = 48000, 16000
    t = torch.arange(sr_in // 4) / sr_in
    low = torch.sin(2 * math.pi * 500 * t)
    high = torch.sin(2 * math.pi * 12000 * t)  # above the new Nyquist (8 kHz)
    out_low, out_high = resample(low, sr_in, sr_out), resample(high, sr_in, sr_out)
    ref = torch.sin(2 * math.pi * 500 * torch.arange(sr_out // 4) / sr_out)
    assert torch.allclose(out_low[200:-200], ref[200:-200], atol=1e-2)
    assert out_high[200:-200].abs().max() < 0.05


def test_convert_channels() -> None:
    st = torch.stack([torch.ones(10), -torch.ones(10) * 3])  # [2, T]
    assert torch.equal(convert_channels(st, 1), torch.full((1, 10), -1.0))
    assert torch.equal(convert_channels(st[:1], 2), torch.ones(2, 10))
    assert convert_channels(torch.zeros(4, 6, 10), 2).shape == (4, 2, 10)
    assert convert_channels(st, 2) is st
    with pytest.raises(ValueError, match="cannot convert 2 channels to 3"):
        convert_channels(st, 3)


def test_crop_or_pad_masks() -> None:
    x = torch.arange(10.0).expand(2, 1, 10)
    out, valid = crop_or_pad(x, 4, offset=3)
    assert torch.equal(out[0, 0], torch.tensor([3.0, 4.0, 5.0, 6.0])) and bool(valid.all())
    out, valid = crop_or_pad(x, 6, offset=7)
    assert out.shape == (2, 1, 6)
    assert torch.equal(out[1, 0], torch.tensor([7.0, 8.0, 9.0, 0.0, 0.0, 0.0]))
    assert valid.tolist() == [True, True, True, False, False, False]
    out, valid = crop_or_pad(x, 12)
    assert valid.sum() == 10 and out[..., 10:].abs().sum() == 0
    with pytest.raises(ValueError, match="offset must be in"):
        crop_or_pad(x, 4, offset=11)
    with pytest.raises(ValueError, match="length"):
        crop_or_pad(x, 0)


def test_normalize_loudness_per_item() -> None:
    x = torch.randn(3, 2, 8000) * torch.tensor([0.01, 0.1, 1.0])[:, None, None]
    y = normalize_loudness(x, target_db=-20.0)
    rms_db = 20 * torch.log10(y.pow(2).mean(dim=(1, 2)).sqrt())
    assert torch.allclose(rms_db, torch.full((3,), -20.0), atol=1e-3)
    mono = normalize_loudness(torch.randn(8000), target_db=-30.0)
    assert 20 * math.log10(mono.pow(2).mean().sqrt().item()) == pytest.approx(-30.0, abs=1e-3)
    with pytest.raises(ValueError, match="target_db"):
        normalize_loudness(x, target_db=3.0)


def test_check_finite() -> None:
    check_finite(torch.zeros(3), "ok")
    with pytest.raises(AudioError, match=r"'w'.*1 NaN, 1 inf"):
        check_finite(torch.tensor([0.0, math.nan, -math.inf]), "w")


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_save_audio_round_trip_in_blocks(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stylecond.audio as audio

    monkeypatch.setattr(audio, "SAVE_BLOCK_SECONDS", 0.01)  # many blocks for a short file
    wav = torch.from_numpy(_tone(0.2, channels=2).T.copy())
    path = save_audio(tmp_path / "sub" / f"out{suffix}", wav, SR)
    back, sr = load_audio(path)
    assert sr == SR and back.shape == wav.shape
    assert torch.allclose(back, wav, atol=1e-4)
    exact = save_audio(tmp_path / "exact.wav", wav, SR, subtype="FLOAT")
    assert torch.equal(load_audio(exact)[0], wav)


def test_save_audio_clips_and_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="clipping"):
        path = save_audio(tmp_path / "loud.wav", torch.tensor([[0.5, 2.0, -3.0]]), SR)
    back, _ = load_audio(path)
    assert back[0, 1] == pytest.approx(1.0, abs=1e-4) and back[0, 2] == pytest.approx(-1.0, abs=1e-4)
    with pytest.raises(ValueError, match=r"\.flac or \.wav"):
        save_audio(tmp_path / "x.mp3", torch.zeros(1, 10), SR)
    with pytest.raises(AudioError, match="non-finite"):
        save_audio(tmp_path / "nan.wav", torch.tensor([[math.nan]]), SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_audio(tmp_path / "mono.flac", torch.zeros(100), SR)  # [T] accepted as mono, no warning
