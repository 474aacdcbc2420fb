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


def test_matched_pairs_score_higher_than_mismatched(tiny_clap_dir: Path) -> None:
    """The score pairs row i's audio with row i's text: audio embeddings equal to their own caption's text
    embedding score 1, the same embeddings paired with shifted captions score lower."""
    metric = CLAPScore(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    texts = ["rock music with guitar", "slow piano", "a dog", "fast drums"]
    matched_audio = metric.text_embeddings(texts)  # [4, E]: an ideal audio encoder for these captions
    metric.update(matched_audio, texts)
    matched = metric.compute().item()
    shifted = CLAPScore(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    shifted.update(matched_audio, texts[1:] + texts[:1])
    mismatched = shifted.compute().item()
    assert matched == pytest.approx(1.0, abs=1e-5) and mismatched < matched - 0.01


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_clap_score_errors(tiny_clap_dir: Path) -> None:
    metric = CLAPScore(model_name_or_path=str(tiny_clap_dir), local_files_only=True)
    with pytest.raises(ValueError, match="texts has 1 entries"):
        metric.update(torch.randn(2, 1, 4000), ["a dog"], sample_rate=16000)
    with pytest.raises(ValueError, match="sequence of strings"):
        metric.update(torch.randn(1, 1, 4000), "a dog", sample_rate=16000)
    with pytest.raises(ValueError, match="before any update"):
        metric.compute()
