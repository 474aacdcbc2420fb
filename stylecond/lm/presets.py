"""Size presets of :class:`~stylecond.lm.music_lm.MusicLM` (MusicGen's sizes plus a tiny debug one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LMSize:
    """Transformer size of a MusicLM.

    Args:
        dim: model width.
        num_heads: attention heads.
        num_layers: transformer layers.
        ffn_dim: FFN hidden width (None = 4 * dim).
    """

    dim: int
    num_heads: int
    num_layers: int
    ffn_dim: int | None = None


PRESETS: dict[str, LMSize] = {
    "debug": LMSize(dim=64, num_heads=4, num_layers=2),
    "base": LMSize(dim=512, num_heads=8, num_layers=8),
    "small": LMSize(dim=1024, num_heads=16, num_layers=24),
    "medium": LMSize(dim=1536, num_heads=24, num_layers=48),
    "large": LMSize(dim=2048, num_heads=32, num_layers=48),
}


def preset_kwargs(name: str) -> dict[str, Any]:
    """MusicLM keyword arguments of preset ``name`` (ValueError naming the valid presets)."""
    if name not in PRESETS:
        raise ValueError(f"unknown MusicLM preset {name!r}; valid presets: {sorted(PRESETS)}")
    return asdict(PRESETS[name])
