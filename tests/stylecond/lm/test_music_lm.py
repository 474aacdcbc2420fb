"""MusicLM: shapes, alignment, loss masks, KV-cached decoding == full forward, bad inputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from stylecond.conditioners.types import ConditionTensors
from stylecond.lm.music_lm import MusicLM
from stylecond.lm.patterns import CodebookPattern, DelayPattern, ParallelPattern

K, CARD, D = 3, 13, 32


def _lm(**kw: object) -> MusicLM:
    args: dict = dict(num_codebooks=K, card=CARD, dim=D, num_heads=4, num_layers=2)
    args.update(kw)
    return MusicLM(**args).eval()


def _codes(b: int = 2, t: int = 6) -> torch.Tensor:
    return torch.randint(0, CARD, (b, K, t))


def test_forward_shapes_and_alignment() -> None:
    lm = _lm()
    codes = _codes()
    out = lm(codes)
    assert out.logits.shape == (2, K, 6, CARD) and out.mask.shape == (2, K, 6) and out.mask.all()
    seq, _ = lm.pattern.build(codes, lm.special_id)
    full = lm.forward_sequence(seq)
    for k in range(K):  # code (k, t) sits at step t + k + 1 and is predicted by step t + k
        torch.testing.assert_close(out.logits[:, k], full[:, k, k : k + 6])


def test_prediction_depends_only_on_earlier_steps() -> None:
    lm = _lm()
    codes = _codes(1, 5)
    out = lm(codes).logits
    changed = codes.clone()
    changed[0, 0, 3] = (codes[0, 0, 3] + 1) % CARD  # code (0, 3) sits at step 4
    out2 = lm(changed).logits
    # predictions made at steps <= 3, i.e. (k, t) with t + k <= 3, are unchanged
    for k in range(K):
        for t in range(5):
            same = torch.allclose(out[0, k, t], out2[0, k, t])
            assert same == (t + k <= 3), (k, t)


def test_loss_matches_manual_and_masks() -> None:
    lm = _lm()
    codes = _codes(2, 6)
    out = lm(codes)
    loss = lm.compute_loss(out, codes)
    manual = torch.stack(
        [F.cross_entropy(out.logits[:, k].reshape(-1, CARD), codes[:, k].reshape(-1)) for k in range(K)]
    )
    torch.testing.assert_close(loss.per_codebook, manual)
    torch.testing.assert_close(loss.loss, manual.mean())

    padding = torch.ones(2, 6, dtype=torch.bool)
    padding[1, 4:] = False
    anti_copy = torch.zeros(2, 6, dtype=torch.bool)
    anti_copy[0, 1:3] = True
    keep = padding & ~anti_copy
    masked = lm.compute_loss(out, codes, padding_mask=padding, loss_mask=anti_copy)
    for k in range(K):
        ce = F.cross_entropy(out.logits[:, k][keep], codes[:, k][keep])
        torch.testing.assert_close(masked.per_codebook[k], ce)
    # frames excluded by the masks do not move the loss however wrong their logits are
    logits2 = out.logits.clone()
    logits2[~keep[:, None, :].expand(2, K, 6)] = 100.0
    out2 = type(out)(logits=logits2, mask=out.mask)
    torch.testing.assert_close(
        lm.compute_loss(out2, codes, padding_mask=padding, loss_mask=anti_copy).loss, masked.loss
    )
    none = lm.compute_loss(out, codes, loss_mask=torch.ones(2, 6, dtype=torch.bool))
    assert none.loss.item() == 0.0


def test_gradients_reach_all_parameters() -> None:
    lm = _lm(dropout=0.1, cross_attention=True).train()
    codes = _codes()
    prefix = ConditionTensors(torch.randn(2, 3, D), torch.ones(2, 3, dtype=torch.bool))
    cross = ConditionTensors(torch.randn(2, 4, D), torch.ones(2, 4, dtype=torch.bool))
    lm.compute_loss(lm(codes, prefix=prefix, cross=cross), codes).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lm.parameters())


def _conditions(b: int) -> tuple[ConditionTensors, ConditionTensors]:
    pmask = torch.ones(b, 4, dtype=torch.bool)
    pmask[0, 1] = False  # padded prefix token
    pmask[b - 1] = False  # null prefix (all masked)
    cmask = torch.ones(b, 5, dtype=torch.bool)
    cmask[0, 3:] = False
    cmask[b - 1] = False  # null cross condition
    return ConditionTensors(torch.randn(b, 4, D), pmask), ConditionTensors(torch.randn(b, 5, 24), cmask)


@pytest.mark.parametrize(
    ("use_prefix", "use_cross", "pattern"),
    [(False, False, None), (True, False, None), (False, True, None), (True, True, ParallelPattern())],
)
def test_incremental_equals_full(use_prefix: bool, use_cross: bool, pattern: CodebookPattern | None) -> None:
    lm = _lm(cross_attention=use_cross, cross_dim=24, pattern=pattern)
    b, t = 3, 5
    prefix, cross = _conditions(b)
    kw: dict[str, Any] = dict(prefix=prefix if use_prefix else None, cross=cross if use_cross else None)
    seq, _ = lm.pattern.build(_codes(b, t), lm.special_id)
    s = seq.shape[2]
    full = lm.forward_sequence(seq, **kw)
    state = lm.init_state(b, s, **kw)
    for i in range(s):  # step by step
        logits = lm.step(seq[:, :, i : i + 1], state)
        assert logits.shape == (b, K, CARD)
        torch.testing.assert_close(logits, full[:, :, i], atol=1e-5, rtol=0)
    assert state.offset == s
    state = lm.init_state(b, s, **kw)  # prompt prefill, then single steps
    torch.testing.assert_close(lm.step(seq[:, :, :3], state), full[:, :, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(lm.step(seq[:, :, 3:4], state), full[:, :, 3], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="max_steps"):
        lm.step(seq[:, :, :s], state)


def test_masked_prefix_content_is_ignored() -> None:
    lm = _lm()
    codes = _codes()
    prefix, _ = _conditions(2)
    out = lm(codes, prefix=prefix).logits
    emb = prefix.embeddings.clone()
    emb[~prefix.mask] = 7.0
    torch.testing.assert_close(lm(codes, prefix=ConditionTensors(emb, prefix.mask)).logits, out)
    assert not torch.allclose(out, lm(codes).logits)  # the valid prefix tokens do matter


def test_bad_inputs() -> None:
    lm = _lm()
    with pytest.raises(ValueError, match=r"codes.*0\.\.12"):
        lm(torch.full((1, K, 4), CARD))
    with pytest.raises(ValueError, match="codes"):
        lm(-torch.ones(1, K, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="codes"):
        lm(torch.zeros(1, K + 1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        lm(torch.zeros(1, K, 4))
    with pytest.raises(ValueError, match="prefix"):
        lm(_codes(), prefix=ConditionTensors(torch.zeros(2, 2, D + 1), torch.ones(2, 2, dtype=torch.bool)))
    with pytest.raises(ValueError, match="cross_attention"):
        lm(_codes(), cross=ConditionTensors(torch.zeros(2, 2, D), torch.ones(2, 2, dtype=torch.bool)))
    with pytest.raises(ValueError, match="tokens"):
        lm.step(torch.full((2, K, 1), CARD + 1), lm.init_state(2, 3))
    with pytest.raises(ValueError, match="loss_mask"):
        codes = _codes()
        lm.compute_loss(lm(codes), codes, loss_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="K=3"):
        _lm(pattern=DelayPattern(delays=[0, 1]))


def test_decoding_fast_paths_match_reference() -> None:
    """Unchecked ids, fused heads (rebuilt after an in-place weight update) and the skipped null prefix."""
    lm = _lm()
    b, t = 3, 4
    prefix, _ = _conditions(b)  # row b - 1 is a null (all-masked) prefix: its prefix pass is skipped
    seq, _ = lm.pattern.build(_codes(b, t), lm.special_id)
    s = seq.shape[2]
    state = lm.init_state(b, s, prefix=prefix, check_ids=False)
    assert state.check_ids is False
    assert bool((state.cache.keys[:, b - 1, :, : prefix.embeddings.shape[1]] == 0).all())
    with pytest.raises(ValueError, match="tokens"):  # shapes are still checked
        lm.step(seq[:, :2, :1], state)
    full = lm.forward_sequence(seq, prefix=prefix)
    for i in range(2):
        torch.testing.assert_close(lm.step(seq[:, :, i : i + 1], state), full[:, :, i], atol=1e-5, rtol=0)
    with torch.no_grad():  # an optimizer-like in-place update must invalidate the fused head weight
        head = lm.heads[1]
        assert isinstance(head, torch.nn.Linear)
        head.weight.mul_(-2.0)
    full = lm.forward_sequence(seq, prefix=prefix)
    torch.testing.assert_close(lm.step(seq[:, :, 2:3], state), full[:, :, 2], atol=1e-5, rtol=0)
    lm64 = lm.double()  # .to() drops the cache as well
    state = lm64.init_state(b, s, prefix=prefix)
    out = lm64.step(seq[:, :, :1], state)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, lm64.forward_sequence(seq, prefix=prefix)[:, :, 0])
