from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from stylecond.metrics.embedders.onnx import OnnxAudioEmbedder  # noqa: E402


class _Net(nn.Module):
    def __init__(self, frames: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 16, stride=8)
        self.frames = frames

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(wav))  # [B, 4, F]
        return h.transpose(1, 2) if self.frames else h.mean(dim=-1)


def _export(net: nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.randn(2, 1, 1600),),
            str(path),
            input_names=["wav"],
            output_names=["emb"],
            dynamic_axes={"wav": {0: "batch", 2: "time"}, "emb": {0: "batch"}},
            dynamo=False,
        )
    return path


@pytest.mark.parametrize("frames", [False, True])
def test_onnx_matches_torch(tmp_path: Path, frames: bool) -> None:
    net = _Net(frames).eval()
    path = _export(net, tmp_path / "net.onnx")
    emb = OnnxAudioEmbedder(path=path, sample_rate=8000)
    assert emb.dim == 4 and emb.name == "onnx:net.onnx"
    wav = torch.randn(3, 1, 2400)
    with torch.no_grad():
        expected = net(wav)
    expected = expected.mean(dim=1) if frames else expected
    assert torch.allclose(emb(wav), expected, atol=1e-5)
    assert emb(torch.randn(1, 2, 4800), sample_rate=16000).shape == (1, 4)  # resampled, channels averaged


def test_onnx_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        OnnxAudioEmbedder(path=tmp_path / "missing.onnx", sample_rate=8000)(torch.randn(1, 1, 100))
    path = _export(_Net(False), tmp_path / "net.onnx")
    with pytest.raises(ValueError, match="output_index"):
        OnnxAudioEmbedder(path=path, sample_rate=8000, output_index=3).load()
    with pytest.raises(ValueError, match="input_layout"):
        OnnxAudioEmbedder(path=path, sample_rate=8000, input_layout="TB")  # type: ignore[arg-type]
