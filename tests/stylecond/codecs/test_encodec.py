"""EncodecCodec on a tiny random EncodecModel saved locally and loaded back offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import EncodecConfig, EncodecModel

from stylecond.codecs.base import AudioCodec
from stylecond.codecs.encodec import EncodecCodec

SR, HOP, CARD = 3200, 16, 64  # frame rate 200 Hz, 6 bits/code -> 1.2 kbps per codebook


def _tiny_config(**overrides: object) -> EncodecConfig:
    kwargs: dict = dict(
        sampling_rate=SR,
        upsampling_ratios=[4, 4],
        hidden_size=8,
        num_filters=4,
        codebook_size=CARD,
        codebook_dim=8,
        num_lstm_layers=1,
        target_bandwidths=[1.2, 2.4, 4.8],
        kernel_size=3,
        last_kernel_size=3,
        residual_kernel_size=3,
    )
    kwargs.update(overrides)
    return EncodecConfig(**kwargs)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    torch.manual_seed(0)
    model = EncodecModel(_tiny_config())
    with torch.no_grad():
        for name, buf in model.quantizer.named_buffers():  # random codebooks so codes vary
            if name.endswith("codebook.embed"):
                buf.normal_(std=0.05)
    path = tmp_path_factory.mktemp("tiny_encodec")
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def loaded(tiny_path: Path) -> EncodecCodec:
    return EncodecCodec(model_name_or_path=str(tiny_path), bandwidth=4.8).load()


def test_construction_reads_nothing() -> None:
    codec = EncodecCodec(model_name_or_path="/definitely/not/here", bandwidth=2.2)
    assert codec.model is None
    with pytest.raises(OSError):
        _ = codec.sample_rate


@pytest.mark.parametrize(("bandwidth", "k"), [(None, 1), (1.2, 1), (2.4, 2), (4.8, 4)])
def test_shapes_and_codebooks_from_bandwidth(tiny_path: Path, bandwidth: float | None, k: int) -> None:
    codec = EncodecCodec(model_name_or_path=str(tiny_path), bandwidth=bandwidth)
    assert isinstance(codec, AudioCodec)
    assert codec.model is None  # properties read only the config
    assert (codec.sample_rate, codec.channels, codec.cardinality) == (SR, 1, CARD)
    assert codec.frame_rate == SR / HOP and codec.hop_length == HOP
    assert codec.num_codebooks == k
    assert codec.bitrate == pytest.approx(k * 6 * 200)
    assert codec.codec_id == f"encodec:{tiny_path}:{codec.bandwidth:g}"
    wav = 0.1 * torch.randn(2, 1, 1000)
    codes = codec.encode(wav)
    assert codec.model is not None
    assert codes.dtype == torch.long and codes.shape == (2, k, codec.num_frames(1000)) == (2, k, 63)
    assert int(codes.min()) >= 0 and int(codes.max()) < CARD
    assert codes.unique().numel() > 1
    out = codec.decode(codes)
    assert out.shape == (2, 1, 63 * HOP) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_batched_padding_matches_single_encode(loaded: EncodecCodec) -> None:
    codec = loaded
    wav = 0.1 * torch.randn(2, 1, 1000)
    alone = codec.encode(wav[:1, :, :480])
    batched = codec.encode(wav, lengths=torch.tensor([480, 1000]))
    assert alone.shape == (1, 4, 30)
    assert torch.equal(alone[0], batched[0, :, :30])
    # the padding really is ignored: garbage after the length does not change the valid frames
    noisy = wav.clone()
    noisy[0, :, 480:] = 1.0
    assert torch.equal(codec.encode(noisy, lengths=torch.tensor([480, 1000]))[0, :, :30], alone[0])
    with pytest.raises(ValueError, match="lengths"):
        codec.encode(wav, lengths=torch.tensor([0, 1000]))


def test_frozen_and_not_in_checkpoint(loaded: EncodecCodec) -> None:
    codec = loaded
    assert codec.model is not None
    params = list(codec.parameters())
    assert params and all(not p.requires_grad for p in params)  # the model is a real submodule
    codec.train()
    assert not codec.training and not codec.model.training
    assert codec.state_dict() == {}
    codec.load_state_dict({}, strict=True)
    parent = torch.nn.Module()
    parent.codec = codec
    assert list(parent.state_dict()) == []


def test_stereo_input_is_mixed_down_and_bad_inputs_raise(loaded: EncodecCodec) -> None:
    codec = loaded
    mono = 0.1 * torch.randn(1, 1, 320)
    assert torch.equal(codec.encode(mono.expand(1, 2, 320)), codec.encode(mono))
    with pytest.raises(ValueError, match=r"wav must be \[B, C, T\]"):
        codec.encode(mono[0])
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        codec.decode(torch.full((1, 4, 5), CARD))
    with pytest.raises(ValueError, match=r"codes must be \[B, 4, F\]"):
        codec.decode(torch.zeros(1, 3, 5, dtype=torch.long))


def test_invalid_bandwidth_and_chunked_models_raise(tiny_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"bandwidth must be one of \[1.2, 2.4, 4.8\]"):
        _ = EncodecCodec(model_name_or_path=str(tiny_path), bandwidth=3.0).num_codebooks
    with pytest.raises(ValueError, match="positive"):
        EncodecCodec(model_name_or_path=str(tiny_path), bandwidth=-1.0)
    _tiny_config(normalize=True, chunk_length_s=0.5, overlap=0.01).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="chunked/normalising"):
        _ = EncodecCodec(model_name_or_path=str(tmp_path)).sample_rate
