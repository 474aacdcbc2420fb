from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from stylecond.metrics.embedders.hf_audio import HFAudioEmbedder


def _tiny_wav2vec2(path: Path, *, hubert: bool = False, with_feature_extractor: bool = True) -> Path:
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    kwargs: dict[str, Any] = dict(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    model = HubertModel(HubertConfig(**kwargs)) if hubert else Wav2Vec2Model(Wav2Vec2Config(**kwargs))
    model.save_pretrained(path)
    if with_feature_extractor:
        Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(path)
    return path


def test_wav2vec2_by_local_path(tmp_path: Path) -> None:
    path = _tiny_wav2vec2(tmp_path / "w2v")
    emb = HFAudioEmbedder(model_name_or_path=str(path), layer=1, pooling="max", local_files_only=True)
    assert emb.model is None and emb.dim == 16  # dim from the config alone: weights not loaded yet
    assert emb.name == "hf:w2v:layer1:max"
    wav = torch.randn(2, 1, 3200)
    out = emb(wav)
    assert emb.sample_rate == 16000  # read from the feature extractor
    assert out.shape == (2, 16) and torch.isfinite(out).all()
    assert not any(p.requires_grad for p in emb.parameters())
    assert emb.state_dict() == {}
    assert torch.allclose(emb(wav[:1]), out[:1], atol=1e-5)  # per-clip independence
    assert emb(torch.randn(1, 2, 1600), sample_rate=8000).shape == (1, 16)  # resampled, stereo averaged
    assert emb.embed_chunks(torch.randn(2, 1, 8000), 0.2).shape == (2, 2, 16)


def test_hubert_without_feature_extractor_needs_sample_rate(tmp_path: Path) -> None:
    path = _tiny_wav2vec2(tmp_path / "hubert", hubert=True, with_feature_extractor=False)
    with pytest.raises(ValueError, match="sample_rate is required"):
        HFAudioEmbedder(model_name_or_path=str(path), local_files_only=True)(torch.randn(1, 1, 1600))
    emb = HFAudioEmbedder(model_name_or_path=str(path), sample_rate=16000, layer=0, pooling="cls")
    assert emb(torch.randn(3, 1, 1600)).shape == (3, 16)
    bad = HFAudioEmbedder(model_name_or_path=str(path), sample_rate=16000, layer=7)
    with pytest.raises(ValueError, match=r"layer must be in \[-3, 2\]"):
        bad(torch.randn(1, 1, 1600))


def test_rate_mismatch_and_pooling_are_rejected(tmp_path: Path) -> None:
    path = _tiny_wav2vec2(tmp_path / "w2v")
    with pytest.raises(ValueError, match="differs from the feature extractor"):
        HFAudioEmbedder(model_name_or_path=str(path), sample_rate=24000).load()
    with pytest.raises(ValueError, match="pooling"):
        HFAudioEmbedder(model_name_or_path=str(path), pooling="sum")  # type: ignore[arg-type]


def test_clap_audio_tower(tiny_clap_dir: Path) -> None:
    emb = HFAudioEmbedder(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    assert emb.is_clap and emb.dim == 8 and emb.name.startswith("hf-clap:")
    out = emb(torch.randn(2, 1, 8000), sample_rate=16000)
    assert out.shape == (2, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
