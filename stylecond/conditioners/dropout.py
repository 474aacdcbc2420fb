"""Conditioning dropout for classifier-free guidance, and word dropout for captions.

Training drops whole conditions so that the LM also learns the "style only", "text only" and
"nothing" branches that double classifier-free guidance needs at inference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_MASK64 = (1 << 64) - 1


def _mix_seed(seed: int, step: int) -> int:
    """A well-mixed 63-bit seed from ``(seed, step)`` (splitmix64 finaliser), identical on every rank."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(step) + 0x632BE59BD9B4E019) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 31
    return x & ((1 << 63) - 1)


def check_probability(name: str, p: float, *, allow_one: bool = True) -> float:
    upper_ok = p <= 1.0 if allow_one else p < 1.0
    if not (p >= 0.0 and upper_ok):
        valid = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be in {valid}; got {p}")
    return float(p)


def word_dropout(text: str, p: float, generator: torch.Generator | None = None) -> str:
    """Drop each whitespace-separated word of ``text`` independently with probability ``p``.

    The kept words are re-joined with single spaces; the result may be ``""`` (every word dropped).
    Random draws come from ``generator`` (CPU ``torch.Generator``) or the global torch RNG.
    """
    p = check_probability("word dropout p", p, allow_one=False)
    words = text.split()
    if p == 0.0 or not words:
        return text
    keep = (torch.rand(len(words), generator=generator) >= p).tolist()
    return " ".join(w for w, k in zip(words, keep) if k)


class ConditioningDropout(nn.Module):
    """Decides which conditions each training sample keeps (classifier-free guidance dropout).

    First everything is dropped with probability ``p_all``; then text and style are dropped
    independently with ``p_text`` and ``p_style``. With the defaults (0.1, 0.4, 0.4) a sample keeps
    both with probability 0.324, style only 0.216, text only 0.216 and nothing 0.244.

    Decisions are drawn from a private generator seeded from ``(seed, step)``, so every DDP rank
    reaches the same decisions for the same step without communicating (and a resumed run repeats
    them). In eval mode nothing is dropped.

    Args:
        p_all: Probability of dropping every condition of a sample (or of the batch), in [0, 1].
        p_text: Probability of then dropping the text condition, in [0, 1].
        p_style: Probability of then dropping the style condition, in [0, 1].
        per_sample: Draw a decision per sample (True) or one for the whole batch (False).
        seed: Base seed; combined with the training step.
    """

    names: tuple[str, str] = ("text", "style")

    def __init__(
        self,
        *,
        p_all: float = 0.1,
        p_text: float = 0.4,
        p_style: float = 0.4,
        per_sample: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.p_all = check_probability("p_all", p_all)
        self.p_text = check_probability("p_text", p_text)
        self.p_style = check_probability("p_style", p_style)
        self.per_sample = bool(per_sample)
        self.seed = int(seed)

    def extra_repr(self) -> str:
        return (
            f"p_all={self.p_all}, p_text={self.p_text}, p_style={self.p_style}, "
            f"per_sample={self.per_sample}, seed={self.seed}"
        )

    def forward(
        self, batch_size: int, *, step: int, device: torch.device | str | None = None
    ) -> dict[str, Tensor]:
        """Keep masks for one batch.

        Args:
            batch_size: Number of samples B (>= 1).
            step: Training step (global step); with ``seed`` it fixes the draws.
            device: Device of the returned masks (CPU by default).

        Returns:
            ``{"text": keep [B] bool, "style": keep [B] bool}`` (True = keep the condition).
        """
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if int(step) < 0:
            raise ValueError(f"step must be >= 0; got {step}")
        if not self.training:
            ones = torch.ones(batch_size, dtype=torch.bool, device=device)
            return {"text": ones, "style": ones.clone()}
        generator = torch.Generator().manual_seed(_mix_seed(self.seed, step))
        n = batch_size if self.per_sample else 1
        u = torch.rand(n, 3, generator=generator)
        keep_any = u[:, 0] >= self.p_all
        keep_text = keep_any & (u[:, 1] >= self.p_text)
        keep_style = keep_any & (u[:, 2] >= self.p_style)
        if not self.per_sample:
            keep_text = keep_text.expand(batch_size)
            keep_style = keep_style.expand(batch_size)
        return {"text": keep_text.clone().to(device), "style": keep_style.clone().to(device)}
