from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylecond.metrics.clap_score import CLAPScore


def test_clap_score_runs_in_range(tiny_clap_dir: Path) -> None:
    metric = CLAPScore(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    assert metric.model is None  # lazy
    wav = torch.randn(3, 1, 12000)
    texts = ["rock music with guitar", "slow piano", "a dog"]
    metric.update(wav, texts, sample_rate=24000)  # resampled to the extractor's 16 kHz
    score = metric.compute()
    assert -1.0 <= score.item() <= 1.0 and metric.count.item() == 3
    assert "model.logit_scale_a" not in metric.state_dict()
    # precomputed audio embeddings give the same score
    audio = metric.audio_embeddings(wav, 24000)
    again = CLAPScore(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    again.update(audio, texts)
    assert again.compute().item() == pytest.approx(score.item(), abs=1e-5)
    assert metric.embedding_name.startswith("hf-clap:")


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_clap_score_errors(tiny_clap_dir: Path) -> None:
    metric = CLAPScore(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    with pytest.raises(ValueError, match="texts has 1 entries"):
        metric.update(torch.randn(2, 1, 4000), ["a dog"], sample_rate=16000)
    with pytest.raises(ValueError, match="sequence of strings"):
        metric.update(torch.randn(1, 1, 4000), "a dog", sample_rate=16000)
    with pytest.raises(ValueError, match="before any update"):
        metric.compute()
