"""Codebook usage of a residual vector quantizer (or codec): used fraction, perplexity, dead codes."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchmetrics import Metric


class CodebookUsage(Metric):
    """Per-codebook code histograms accumulated over batches (DDP: summed).

    :meth:`compute` returns ``usage [Q]`` (fraction of the ``codebook_size`` entries used at least once),
    ``perplexity [Q]`` (``exp`` of the entropy of the code distribution; ``codebook_size`` when uniform),
    ``dead_codes [Q]`` (entries never used) and their means ``usage_mean``, ``perplexity_mean``,
    ``dead_codes_mean``. Index ``-1`` (a quantizer dropped in training) and masked frames are ignored;
    codebooks that saw no valid code report usage 0, perplexity 0 and every entry dead.

    Args:
        num_codebooks: Number of codebooks ``Q``.
        codebook_size: Entries per codebook.
        layout: ``"BTQ"`` for RVQ codes ``[B, T, Q]``, ``"BQT"`` for codec codes ``[B, K, F]``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    counts: Tensor

    def __init__(
        self, *, num_codebooks: int, codebook_size: int, layout: Literal["BTQ", "BQT"] = "BTQ"
    ) -> None:
        super().__init__()
        if num_codebooks < 1:
            raise ValueError(f"num_codebooks must be >= 1, got {num_codebooks}")
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if layout not in ("BTQ", "BQT"):
            raise ValueError(f"layout must be 'BTQ' or 'BQT', got {layout!r}")
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.layout = layout
        self.add_state(
            "counts", torch.zeros(num_codebooks, codebook_size, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, codes: Tensor, mask: Tensor | None = None) -> None:
        """Add ``codes`` (``[B, T, Q]`` or ``[B, Q, T]`` per ``layout``, Q <= num_codebooks) with an
        optional valid-frame ``mask [B, T]`` (True = counted)."""
        if codes.dim() != 3 or codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise ValueError(
                f"codes must be an integer tensor [B, T, Q] or [B, Q, T], got {codes.dtype} {tuple(codes.shape)}"
            )
        btq = codes if self.layout == "BTQ" else codes.transpose(1, 2)
        q = btq.shape[2]
        if q > self.num_codebooks:
            raise ValueError(f"codes have {q} codebooks, more than num_codebooks={self.num_codebooks}")
        if bool(((btq < -1) | (btq >= self.codebook_size)).any()):
            raise ValueError(
                f"codes must be in [0, {self.codebook_size - 1}] (or -1 for dropped), got out-of-range values"
            )
        valid = btq >= 0
        if mask is not None:
            if mask.shape != btq.shape[:2]:
                raise ValueError(f"mask must be [B, T] = {tuple(btq.shape[:2])}, got {tuple(mask.shape)}")
            valid = valid & mask.bool().unsqueeze(-1).to(valid.device)
        flat = btq.clamp_min(0).reshape(-1, q).T  # [Q, B*T]
        add = torch.zeros(q, self.codebook_size, dtype=torch.float64, device=self.counts.device)
        add.scatter_add_(1, flat.to(add.device), valid.reshape(-1, q).T.double().to(add.device))
        counts = self.counts.clone()
        counts[:q] += add
        self.counts = counts

    def compute(self) -> dict[str, Tensor]:
        """Usage fraction, perplexity and dead-code count per codebook ``[Q]`` and their means."""
        total = self.counts.sum(dim=1, keepdim=True)
        probs = self.counts / total.clamp_min(1)
        entropy = -(probs * probs.clamp_min(1e-30).log()).sum(dim=1)
        perplexity = torch.where(total.squeeze(1) > 0, entropy.exp(), torch.zeros_like(entropy))
        used = (self.counts > 0).sum(dim=1)
        usage = used.double() / self.codebook_size
        dead = (self.codebook_size - used).double()
        return {
            "usage": usage,
            "perplexity": perplexity,
            "dead_codes": dead,
            "usage_mean": usage.mean(),
            "perplexity_mean": perplexity.mean(),
            "dead_codes_mean": dead.mean(),
        }
