"""ConditionFuser routing and stacking condition sets for CFG."""

from __future__ import annotations

import pytest
import torch

from stylecond.conditioners.fuser import ConditionFuser, FusedConditions, pad_condition, stack_conditions
from stylecond.conditioners.types import ConditionTensors


def _cond(b: int, s: int, d: int = 4, fill: float = 1.0) -> ConditionTensors:
    mask = torch.ones(b, s, dtype=torch.bool)
    mask[:, -1] = False
    return ConditionTensors(torch.full((b, s, d), fill) * mask[..., None], mask)


def test_prefix_order_style_then_text() -> None:
    style, text = _cond(2, 3, fill=1.0), _cond(2, 5, fill=2.0)
    fused = ConditionFuser()({"text": text, "style": style})
    assert isinstance(fused, FusedConditions) and fused.cross is None
    assert fused.prefix is not None
    assert fused.prefix.embeddings.shape == (2, 8, 4)
    torch.testing.assert_close(fused.prefix.embeddings[:, :3], style.embeddings)
    torch.testing.assert_close(fused.prefix.embeddings[:, 3:], text.embeddings)
    assert torch.equal(fused.prefix.mask, torch.cat([style.mask, text.mask], dim=1))


def test_cross_routing() -> None:
    fuser = ConditionFuser(prefix=("style",), cross=("text",))
    fused = fuser({"style": _cond(2, 3), "text": _cond(2, 5, d=6)})
    assert fused.prefix is not None and fused.prefix.embeddings.shape == (2, 3, 4)
    assert fused.cross is not None and fused.cross.embeddings.shape == (2, 5, 6)


def test_missing_extra_and_mismatched_conditions() -> None:
    fuser = ConditionFuser()
    with pytest.raises(ValueError, match="'style' is missing"):
        fuser({"text": _cond(2, 3)})
    with pytest.raises(ValueError, match="melody"):
        fuser({"text": _cond(2, 3), "style": _cond(2, 3), "melody": _cond(2, 3)})
    with pytest.raises(ValueError, match="batch size"):
        fuser({"text": _cond(2, 3), "style": _cond(3, 3)})
    with pytest.raises(ValueError, match="width"):
        fuser({"text": _cond(2, 3, d=4), "style": _cond(2, 3, d=5)})


def test_bad_configuration() -> None:
    with pytest.raises(ValueError, match="repeated"):
        ConditionFuser(prefix=("text",), cross=("text",))
    with pytest.raises(ValueError, match="at least one"):
        ConditionFuser(prefix=(), cross=())
    with pytest.raises(ValueError, match="single string"):
        ConditionFuser(prefix="text")


def test_stack_conditions_pads_tokens_for_cfg() -> None:
    full = {"text": _cond(2, 5, fill=2.0), "style": _cond(2, 3)}
    style_only = {"text": _cond(2, 1).null(), "style": _cond(2, 3)}
    stacked = stack_conditions([full, style_only])
    assert stacked["text"].embeddings.shape == (4, 5, 4)
    assert not stacked["text"].mask[2:].any() and torch.count_nonzero(stacked["text"].embeddings[2:]) == 0
    torch.testing.assert_close(stacked["text"].embeddings[:2], full["text"].embeddings)
    with pytest.raises(ValueError, match="names"):
        stack_conditions([full, {"text": _cond(2, 5)}])


def test_pad_condition() -> None:
    c = _cond(1, 2)
    padded = pad_condition(c, 4)
    assert padded.embeddings.shape == (1, 4, 4) and not padded.mask[:, 2:].any()
    with pytest.raises(ValueError, match="shorter"):
        pad_condition(c, 1)
