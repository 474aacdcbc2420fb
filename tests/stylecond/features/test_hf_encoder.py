"""HFAudioEncoderFeatures: a tiny random HuBERT saved locally, loaded lazily by path, frozen, not checkpointed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import HubertConfig, HubertModel

from stylecond.features import HFAudioEncoderFeatures

# conv strides 5 * 4 = 20 -> 16 kHz / 20 = 800 Hz
_CONFIG: dict[str, Any] = dict(
    hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
    num_conv_pos_embedding_groups=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny_hubert")
    torch.manual_seed(0)
    HubertModel(HubertConfig(**_CONFIG)).save_pretrained(path)
    return path


def _feat(path: Path, **kw: object) -> HFAudioEncoderFeatures:
    args: dict[str, object] = dict(
        model_name_or_path=str(path), sample_rate=16000, frame_rate=800.0, dim=16, local_files_only=True
    )
    args.update(kw)
    return HFAudioEncoderFeatures(**args)  # type: ignore[arg-type]


def test_lazy_load_by_local_path_layers_and_frames(tiny_hubert: Path) -> None:
    feat = _feat(tiny_hubert, layer=1)
    assert feat.model is None  # nothing loaded by the constructor
    wav = torch.randn(2, 1, 1600)
    out = feat(wav)
    assert feat.model is not None
    assert out.shape == (2, feat.num_frames(1600), 16)
    assert abs(out.shape[1] - 1600 * 800 / 16000) <= 2  # conv receptive field trims a frame or two
    ref = feat.model(input_values=wav[:, 0], output_hidden_states=True).hidden_states[1]
    assert torch.allclose(out, ref)
    last = _feat(tiny_hubert)(wav)
    assert not torch.allclose(last, out)


def test_frozen_and_excluded_from_checkpoint(tiny_hubert: Path) -> None:
    feat = _feat(tiny_hubert)
    feat.load()
    assert feat.frozen and not any(p.requires_grad for p in feat.parameters())
    assert feat.state_dict() == {}
    feat.train()
    assert feat.model is not None and not feat.model.training
    holder = torch.nn.ModuleDict({"ext": feat, "lin": torch.nn.Linear(2, 2)})
    assert set(holder.state_dict()) == {"lin.weight", "lin.bias"}
    holder.load_state_dict(holder.state_dict())


def test_wrong_dim_and_frame_rate_are_clear(tiny_hubert: Path) -> None:
    with pytest.raises(ValueError, match="dim=768.*hidden size 16"):
        _feat(tiny_hubert, dim=768).load()
    with pytest.raises(ValueError, match="frame_rate=75"):
        _feat(tiny_hubert, frame_rate=75.0).load()
    with pytest.raises(ValueError, match="layer"):
        _feat(tiny_hubert, layer=9).load()
