"""KL divergence between an audio classifier's label distributions on reference and generated audio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import julius
import torch
from torch import Tensor
from torchmetrics import Metric


def label_kl(p: Tensor, q: Tensor, *, eps: float = 1e-6) -> Tensor:
    """``KL(p || q)`` per row of probability tensors ``[B, L]`` -> ``[B]`` (``eps`` guards log(0))."""
    p = p.double()
    q = q.double()
    return (p * ((p + eps).log() - (q + eps).log())).sum(dim=-1)


class KLDivergence(Metric):
    """Mean per-pair KL divergence between classifier label distributions (lower is better).

    Each generated clip is paired with its reference clip (same text / conditioning), as in the
    MusicGen evaluations; both directions are reported by :meth:`compute`:
    ``{"kl_ref_gen": mean KL(p_ref || p_gen), "kl_gen_ref": mean KL(p_gen || p_ref)}``.
    Inputs are waveforms ``[B, C, T]`` (run through ``classifier``) or the classifier's outputs ``[B, L]``.

    Args:
        classifier: Callable mapping waveforms ``[B, C, T]`` to logits or probabilities ``[B, L]``
            (e.g. an ``nn.Module``; if it has a ``sample_rate`` attribute, inputs are resampled to it).
        activation: ``"softmax"`` when the outputs are logits (single-label), ``"sigmoid"`` for multi-label
            logits (each row is then renormalised to sum to 1), ``"none"`` when they are probabilities.
        eps: Added to probabilities before the logarithm.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    kl_ref_gen: Tensor
    kl_gen_ref: Tensor
    count: Tensor

    def __init__(
        self,
        *,
        classifier: Callable[[Tensor], Tensor] | None = None,
        activation: Literal["softmax", "sigmoid", "none"] = "softmax",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if activation not in ("softmax", "sigmoid", "none"):
            raise ValueError(f"activation must be 'softmax', 'sigmoid' or 'none', got {activation!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.classifier = classifier
        self.activation = activation
        self.eps = eps
        self.add_state("kl_ref_gen", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("kl_gen_ref", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def probabilities(self, x: Tensor, sample_rate: int | None = None, *, name: str = "x") -> Tensor:
        """Waveforms ``[B, C, T]`` or classifier outputs ``[B, L]`` -> label probabilities ``[B, L]``."""
        if x.dim() == 3:
            if self.classifier is None:
                raise ValueError(f"{name} is a waveform [B, C, T] but the metric has no classifier")
            rate = getattr(self.classifier, "sample_rate", None)
            if sample_rate is not None and rate is not None and int(rate) != sample_rate:
                x = julius.resample_frac(x.float(), int(sample_rate), int(rate))
            with torch.no_grad():
                out = self.classifier(x)
        elif x.dim() == 2:
            out = x
        else:
            raise ValueError(
                f"{name} must be waveforms [B, C, T] or classifier outputs [B, L], got {tuple(x.shape)}"
            )
        out = out.detach().double()
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"{name}: classifier outputs contain NaN or inf")
        if self.activation == "softmax":
            return out.softmax(dim=-1)
        probs = out.sigmoid() if self.activation == "sigmoid" else out
        if bool((probs < 0).any()):
            raise ValueError(f"{name}: probabilities must be >= 0 (use activation='softmax' for logits)")
        return probs / probs.sum(dim=-1, keepdim=True).clamp_min(1e-12)

    def update(self, generated: Tensor, reference: Tensor, *, sample_rate: int | None = None) -> None:
        """Add pairs: ``generated`` and ``reference`` waveforms ``[B, C, T]`` or classifier outputs ``[B, L]``."""
        p_gen = self.probabilities(generated, sample_rate, name="generated")
        p_ref = self.probabilities(reference, sample_rate, name="reference")
        if p_gen.shape != p_ref.shape:
            raise ValueError(
                f"generated and reference label shapes differ: {tuple(p_gen.shape)} vs {tuple(p_ref.shape)}"
            )
        self.kl_ref_gen = self.kl_ref_gen + label_kl(p_ref, p_gen, eps=self.eps).sum()
        self.kl_gen_ref = self.kl_gen_ref + label_kl(p_gen, p_ref, eps=self.eps).sum()
        self.count = self.count + p_gen.shape[0]

    def compute(self) -> dict[str, Tensor]:
        """``{"kl_ref_gen", "kl_gen_ref"}`` means over all pairs."""
        if float(self.count) == 0:
            raise ValueError("KLDivergence.compute() called before any update()")
        return {"kl_ref_gen": self.kl_ref_gen / self.count, "kl_gen_ref": self.kl_gen_ref / self.count}
