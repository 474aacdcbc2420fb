from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stylecond.metrics.kl import KLDivergence, label_kl


def test_known_values_both_directions() -> None:
    p = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
    q = torch.tensor([[0.9, 0.1], [0.25, 0.75]], dtype=torch.float64)
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    metric = KLDivergence(activation="none", eps=0.0)
    metric.update(q, p)  # generated = q, reference = p
    out = metric.compute()
    assert out["kl_ref_gen"].item() == pytest.approx(kl_pq / 2, rel=1e-9)  # second pair is identical
    assert out["kl_gen_ref"].item() == pytest.approx(kl_qp / 2, rel=1e-9)
    assert label_kl(p, p, eps=0.0).abs().max().item() < 1e-12


def test_logits_and_classifier_on_waveforms() -> None:
    class Clf(nn.Module):
        sample_rate = 8000

        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(1, 3)

        def forward(self, wav: torch.Tensor) -> torch.Tensor:
            return self.proj(wav.pow(2).mean(dim=(1, 2)).unsqueeze(-1))

    clf = Clf()
    gen, ref = torch.randn(4, 1, 800), 2 * torch.randn(4, 1, 800)
    a = KLDivergence(classifier=clf)
    a.update(gen, ref, sample_rate=8000)
    b = KLDivergence()
    with torch.no_grad():
        b.update(clf(gen), clf(ref))
    assert a.compute()["kl_ref_gen"].item() == pytest.approx(b.compute()["kl_ref_gen"].item(), rel=1e-6)
    assert a.compute()["kl_ref_gen"].item() > 0
    c = KLDivergence(classifier=clf)  # input at 16 kHz is resampled to the classifier's 8 kHz
    c.update(torch.randn(2, 1, 1600), torch.randn(2, 1, 1600), sample_rate=16000)
    assert c.count.item() == 2


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_sigmoid_and_errors() -> None:
    metric = KLDivergence(activation="sigmoid")
    metric.update(torch.zeros(2, 4), torch.zeros(2, 4))
    assert metric.compute()["kl_ref_gen"].item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="differ"):
        metric.update(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="no classifier"):
        metric.update(torch.zeros(2, 1, 10), torch.zeros(2, 1, 10))
    with pytest.raises(ValueError, match=">= 0"):
        KLDivergence(activation="none").update(torch.tensor([[-1.0, 2.0]]), torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="before any update"):
        KLDivergence().compute()
    with pytest.raises(ValueError, match="activation"):
        KLDivergence(activation="relu")  # type: ignore[arg-type]
