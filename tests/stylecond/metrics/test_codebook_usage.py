from __future__ import annotations

import math

import pytest
import torch

from stylecond.metrics.codebook_usage import CodebookUsage


def test_known_usage_perplexity_dead_codes() -> None:
    metric = CodebookUsage(num_codebooks=3, codebook_size=4)
    # codebook 0: uniform over 4 codes; codebook 1: always code 2; codebook 2 only -1 (dropped)
    codes = torch.tensor([[[0, 2, -1], [1, 2, -1]], [[2, 2, -1], [3, 2, -1]]])  # [B=2, T=2, Q=3]
    metric.update(codes)
    out = metric.compute()
    assert out["usage"].tolist() == [1.0, 0.25, 0.0]
    assert out["perplexity"][0].item() == pytest.approx(4.0)
    assert out["perplexity"][1].item() == pytest.approx(1.0)
    assert out["perplexity"][2].item() == 0.0
    assert out["dead_codes"].tolist() == [0.0, 3.0, 4.0]
    assert out["usage_mean"].item() == pytest.approx(1.25 / 3)


def test_mask_layout_partial_codebooks_and_errors() -> None:
    metric = CodebookUsage(num_codebooks=2, codebook_size=3, layout="BQT")
    codes = torch.tensor([[[0, 1, 1, 2]]])  # [B=1, K=1, F=4]: only the first codebook
    metric.update(codes, mask=torch.tensor([[True, True, True, False]]))
    out = metric.compute()
    expected = math.exp(-(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3)))
    assert out["perplexity"][0].item() == pytest.approx(expected)
    assert out["usage"].tolist() == pytest.approx([2 / 3, 0.0])
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        metric.update(torch.tensor([[[3]]]))
    with pytest.raises(ValueError, match="num_codebooks"):
        metric.update(torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        metric.update(torch.zeros(1, 1, 2))
