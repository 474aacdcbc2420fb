"""Small typed containers passed between conditioners, the fuser and the LM."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ConditionTensors:
    """One condition for the LM: ``embeddings [B, S, D]`` and a validity ``mask [B, S]`` (bool).

    A null condition (dropped or absent) is all-zero embeddings with an all-False mask.
    """

    embeddings: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        if self.embeddings.dim() != 3 or self.mask.shape != self.embeddings.shape[:2]:
            raise ValueError(
                f"ConditionTensors needs embeddings [B, S, D] and mask [B, S]; got "
                f"{tuple(self.embeddings.shape)} and {tuple(self.mask.shape)}"
            )

    @property
    def batch_size(self) -> int:
        return int(self.embeddings.shape[0])

    def nulled(self, keep: Tensor) -> ConditionTensors:
        """Zero the samples where ``keep [B]`` (bool) is False."""
        k = keep.to(self.embeddings.device).bool()
        return ConditionTensors(
            self.embeddings * k[:, None, None].to(self.embeddings.dtype), self.mask & k[:, None]
        )

    def null(self) -> ConditionTensors:
        """The all-zero null condition of the same shape."""
        return ConditionTensors(torch.zeros_like(self.embeddings), torch.zeros_like(self.mask))

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> ConditionTensors:
        """Move to ``device`` and cast the embeddings to ``dtype`` (the mask stays bool)."""
        emb = self.embeddings.to(device=device, dtype=dtype)
        return ConditionTensors(emb, self.mask.to(emb.device))

    @staticmethod
    def cat(items: list[ConditionTensors]) -> ConditionTensors:
        """Concatenate along the batch dimension (same S and D required)."""
        return ConditionTensors(torch.cat([c.embeddings for c in items]), torch.cat([c.mask for c in items]))
