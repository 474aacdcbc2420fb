"""Size presets: parameter counts (on the meta device) and errors."""

from __future__ import annotations

import pytest
import torch

from stylecond.lm.music_lm import MusicLM
from stylecond.lm.presets import PRESETS


@pytest.mark.parametrize(
    ("name", "millions"),
    [("debug", 1.15), ("base", 33.6), ("small", 318.9), ("medium", 1384.4), ("large", 2449.9)],
)
def test_preset_sizes(name: str, millions: float) -> None:
    with torch.device("meta"):
        lm = MusicLM.from_preset(name)
    size = PRESETS[name]
    assert (lm.dim, len(lm.transformer.layers)) == (size.dim, size.num_layers)
    assert sum(p.numel() for p in lm.parameters()) / 1e6 == pytest.approx(millions, rel=0.01)


def test_preset_overrides_and_unknown() -> None:
    lm = MusicLM.from_preset("debug", num_codebooks=2, card=16)
    assert lm.num_codebooks == 2 and lm.card == 16
    with pytest.raises(ValueError, match="debug"):
        MusicLM.from_preset("huge")
