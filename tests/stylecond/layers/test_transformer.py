"""Transformer stack: positions, masks, causality, padding, cross-attention and the KV cache."""

from __future__ import annotations

import pytest
import torch

from stylecond.layers.attention import causal_padding_mask
from stylecond.layers.transformer import Transformer
from stylecond.utils.positions import sinusoidal_embedding


def _tiny(**kw: object) -> Transformer:
    args: dict = dict(dim=16, num_heads=2, num_layers=2)
    args.update(kw)
    return Transformer(**args).eval()


def test_sinusoids_match_musicgen() -> None:
    from transformers.models.musicgen.modeling_musicgen import MusicgenSinusoidalPositionalEmbedding

    ref = MusicgenSinusoidalPositionalEmbedding.get_embedding(40, 18)
    torch.testing.assert_close(sinusoidal_embedding(torch.arange(40), 18), ref, atol=1e-6, rtol=0)
    emb = sinusoidal_embedding(torch.arange(3), 4)  # half=2: freqs 1, 1e-4 -> cos(p), cos(p/1e4), sin...
    p = torch.arange(3.0)
    torch.testing.assert_close(emb, torch.stack([p.cos(), (p / 1e4).cos(), p.sin(), (p / 1e4).sin()], 1))


def test_causal_padding_mask_by_hand() -> None:
    valid = torch.tensor([[True, False, True, True]])
    m = causal_padding_mask(valid, 0, 4, torch.device("cpu"))
    assert m is not None
    # row i: keys j <= i that are valid, or j == i (padded position 1 still sees itself)
    assert m[0, 0].int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1]]
    assert causal_padding_mask(None, 3, 1, torch.device("cpu")) is None
    m = causal_padding_mask(None, 2, 2, torch.device("cpu"))
    assert m is not None and m[0, 0].int().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_causal_and_padding_invariance() -> None:
    tr = _tiny()
    x = torch.randn(2, 6, 16)
    valid = torch.tensor([[True, False, True, True, True, True]] * 2)
    y = tr(x, key_valid=valid)
    x2 = x.clone()
    x2[:, 1] = torch.randn(2, 16) * 10  # padded position: invisible to the others
    x2[:, 5] = torch.randn(2, 16)  # future position: invisible to the past
    y2 = tr(x2, key_valid=valid)
    keep = [0, 2, 3, 4]
    torch.testing.assert_close(y[:, keep], y2[:, keep])
    assert not torch.allclose(y[:, 5], y2[:, 5])
    assert torch.isfinite(tr(x, key_valid=torch.zeros(2, 6, dtype=torch.bool))).all()


def test_cross_attention_null_row_is_zero_output() -> None:
    tr = _tiny(cross_attention=True, cross_dim=8)
    x, src = torch.randn(2, 5, 16), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    y = tr(x, cross=src, cross_mask=mask)
    y_none = tr(x)
    torch.testing.assert_close(y[1], y_none[1])  # all-masked row = no cross contribution
    assert not torch.allclose(y[0], y_none[0])
    src2 = src.clone()
    src2[0, 2] = 5.0  # masked key of row 0 does not matter
    torch.testing.assert_close(tr(x, cross=src2, cross_mask=mask), y)


def test_cache_matches_full_and_overflows() -> None:
    tr = _tiny(cross_attention=True, cross_dim=8)
    x, src = torch.randn(2, 7, 16), torch.randn(2, 3, 8)
    valid = torch.tensor([[True] * 7, [False, True, False] + [True] * 4])
    cmask = torch.tensor([[True, False, True], [True, True, True]])
    full = tr(x, key_valid=valid, cross=src, cross_mask=cmask)
    cache = tr.allocate_cache(
        2, 7, device=x.device, dtype=x.dtype, key_valid=valid[:, :3], cross=src, cross_mask=cmask
    )
    parts = [tr(x[:, :3], cache=cache)] + [tr(x[:, i : i + 1], cache=cache) for i in range(3, 7)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=0)
    assert cache.length == 7
    with pytest.raises(ValueError, match="max_len"):
        tr(x[:, :1], cache=cache)


def test_prefill_rows_matches_full_prefill() -> None:
    tr = _tiny()
    x = torch.randn(3, 4, 16)
    valid = torch.tensor([[True, False, True, True], [True] * 4, [False] * 4])
    full = tr.allocate_cache(3, 6, device=x.device, dtype=x.dtype, key_valid=valid)
    tr.prefill(x, full)
    part = tr.allocate_cache(3, 6, device=x.device, dtype=x.dtype, key_valid=valid)
    part.keys.fill_(float("nan"))  # stale memory must not leak into skipped rows
    part.values.fill_(float("nan"))
    tr.prefill(x, part, rows=torch.tensor([0, 1]))
    assert part.length == full.length == 4
    torch.testing.assert_close(part.keys[:, :2, :, :4], full.keys[:, :2, :, :4])
    assert torch.equal(part.keys[:, 2, :, :4], torch.zeros_like(part.keys[:, 2, :, :4]))
    nxt = torch.randn(3, 1, 16)
    torch.testing.assert_close(tr(nxt, cache=part), tr(nxt, cache=full), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="empty cache"):
        tr.prefill(x, part)
