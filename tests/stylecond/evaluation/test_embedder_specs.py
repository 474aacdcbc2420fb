from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylecond.evaluation.embedder_specs import available_prefixes, load_embedder, register_embedder_loader
from stylecond.metrics.embedders.hf_audio import HFAudioEmbedder
from stylecond.metrics.embedders.mel_stats import MelStatsEmbedder
from stylecond.metrics.embedders.onnx import OnnxAudioEmbedder


def test_builtin_prefixes() -> None:
    default = load_embedder()
    assert isinstance(default, MelStatsEmbedder) and default.sample_rate == 16000
    assert load_embedder("mel_stats:22050").sample_rate == 22050
    hf = load_embedder("hf:some/model")
    assert isinstance(hf, HFAudioEmbedder) and hf.model_name_or_path == "some/model" and hf.model is None
    onnx = load_embedder("onnx:/models/vggish.onnx@32000")
    assert (
        isinstance(onnx, OnnxAudioEmbedder)
        and onnx.path == "/models/vggish.onnx"
        and onnx.sample_rate == 32000
    )
    assert load_embedder("onnx:x.onnx").sample_rate == 16000


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("vggish", "valid prefixes: hf, mel_stats, onnx"),
        ("hf:", "hf:NAME_OR_PATH"),
        ("onnx:x.onnx@fast", "positive integer"),
        ("mel_stats:0", "positive integer"),
        ("", "non-empty"),
        ('{"class_path": "torch.nn.Linear"}', "class_path"),
        ("missing.yaml", "does not exist"),
    ],
)
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_embedder(spec)


def test_class_path_specs(tmp_path: Path) -> None:
    spec = {
        "class_path": "stylecond.metrics.embedders.mel_stats.MelStatsEmbedder",
        "init_args": {"n_mels": 32},
    }
    inline = load_embedder(json.dumps(spec))
    assert isinstance(inline, MelStatsEmbedder) and inline.n_mels == 32
    path = tmp_path / "emb.yaml"
    path.write_text(
        "class_path: stylecond.metrics.embedders.mel_stats.MelStatsEmbedder\ninit_args:\n  n_mels: 16\n"
    )
    from_file = load_embedder(str(path))
    assert isinstance(from_file, MelStatsEmbedder) and from_file.n_mels == 16


def test_register_loader() -> None:
    register_embedder_loader("tiny_mel", lambda arg: MelStatsEmbedder(n_mels=int(arg or 8)))
    assert "tiny_mel" in available_prefixes()
    emb = load_embedder("tiny_mel:4")
    assert isinstance(emb, MelStatsEmbedder) and emb.n_mels == 4
    with pytest.raises(ValueError, match="identifier"):
        register_embedder_loader("bad prefix", lambda arg: MelStatsEmbedder())
