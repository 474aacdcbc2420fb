"""The one sinusoidal-position helper: MusicGen's spacing (the LM) and the transformer spacing (the style
encoder of stylecond 0.1 exports), each checked against its formula written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from stylecond.utils.positions import sinusoidal_embedding


@pytest.mark.parametrize(("spacing", "divisor"), [("musicgen", 3), ("transformer", 4)])
def test_spacing_formulas_by_hand(spacing: str, divisor: int) -> None:
    dim, positions = 8, torch.arange(5.0)
    freqs = [10000.0 ** (-i / divisor) for i in range(dim // 2)]
    ref = torch.stack(
        [
            torch.tensor([math.cos(p * f) for f in freqs] + [math.sin(p * f) for f in freqs])
            for p in positions.tolist()
        ]
    )
    torch.testing.assert_close(sinusoidal_embedding(positions, dim, spacing=spacing), ref.float())  # type: ignore[arg-type]


def test_odd_width_is_zero_padded_and_bad_spacing_named() -> None:
    emb = sinusoidal_embedding(torch.arange(3), 5)
    assert emb.shape == (3, 5) and bool((emb[:, -1] == 0).all())
    with pytest.raises(ValueError, match="spacing"):
        sinusoidal_embedding(torch.arange(3), 4, spacing="rope")  # type: ignore[arg-type]
