"""EMACodebook and RVQBottleneck against the reference implementation (vector-quantize-pytorch's
ResidualVQ, a dev dependency): same codebooks in, same codes, quantized output and EMA updates out."""

from __future__ import annotations

import pytest
import torch
from vector_quantize_pytorch import ResidualVQ

from stylecond.quantization import RVQBottleneck
from stylecond.quantization.ema_codebook import EMACodebook


def _pair(q: int = 3, n: int = 16, d: int = 8) -> tuple[RVQBottleneck, ResidualVQ]:
    ours = RVQBottleneck(dim=d, num_codebooks=q, codebook_size=n, threshold_ema_dead_code=0.0,
                         quantize_dropout=False, decay=0.9)  # fmt: skip
    ref = ResidualVQ(dim=d, num_quantizers=q, codebook_size=n, decay=0.9, kmeans_init=False,
                     threshold_ema_dead_code=0.0, commitment_weight=0.0, rotation_trick=False)  # fmt: skip
    books = torch.randn(q, n, d, generator=torch.Generator().manual_seed(0))
    ours.set_codebooks(books)
    for layer, book in zip(ref.layers, books):  # the reference keeps a heads axis of 1
        cb = layer._codebook
        cb.embed.data.copy_(book[None])
        cb.embed_avg.data.copy_(book[None])
        cb.cluster_size.data.fill_(1.0)
        cb.initted.data.fill_(True)
    return ours, ref


def test_training_updates_match_the_reference() -> None:
    ours, ref = _pair()
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(2, 30, 8, generator=g)
        out = ours(x)
        q_ref, c_ref, _ = ref(x)
        assert torch.equal(out.codes, c_ref)
        torch.testing.assert_close(out.quantized, q_ref, rtol=0, atol=1e-5)
    for layer, ref_layer in zip(ours.layers, ref.layers):
        cb = ref_layer._codebook
        torch.testing.assert_close(layer.cluster_size, cb.cluster_size[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(layer.embed_avg, cb.embed_avg[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(layer.embed, cb.embed[0], rtol=0, atol=1e-5)


def test_eval_codes_match_the_reference_at_every_depth() -> None:
    ours, ref = _pair()
    ours.eval(), ref.eval()
    x = torch.randn(3, 40, 8, generator=torch.Generator().manual_seed(2))
    _, c_ref, _ = ref(x)
    for q in (1, 2, 3):
        assert torch.equal(ours(x, n_q=q).codes, c_ref[..., :q])


def test_kmeans_init_then_dead_codes_are_replaced() -> None:
    cb = EMACodebook(dim=4, codebook_size=8, threshold_ema_dead_code=0.5)
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    cb.init_kmeans(x, torch.Generator().manual_seed(0))
    assert cb.is_inited and float(cb.cluster_size.sum()) == pytest.approx(100.0)
    cb.cluster_size[:3] = 0.0
    assert int(cb.dead_codes().sum()) == 3
    assert cb.replace_dead(x, torch.Generator().manual_seed(1)) == 3
    assert not bool(cb.dead_codes().any())
    replaced = cb.embed[:3]
    assert all(bool((x == row).all(dim=1).any()) for row in replaced)  # batch vectors
    assert cb.replace_dead(x[:0], torch.Generator()) == 0  # nothing to sample from


def test_depth_draws_follow_the_seed_and_resume_with_the_state_dict() -> None:
    a = RVQBottleneck(dim=4, num_codebooks=6, codebook_size=4, seed=7)
    x = torch.randn(2, 10, 4)
    first = [a(x).n_q for _ in range(4)]
    b = RVQBottleneck(dim=4, num_codebooks=6, codebook_size=4, seed=7)
    b.load_state_dict(a.state_dict())
    assert [a(x).n_q for _ in range(6)] == [b(x).n_q for _ in range(6)]
    c = RVQBottleneck(dim=4, num_codebooks=6, codebook_size=4, seed=7)
    assert [c(x).n_q for _ in range(4)] == first
    torch.manual_seed(123)  # the global RNG plays no part
    d = RVQBottleneck(dim=4, num_codebooks=6, codebook_size=4, seed=7)
    assert [d(x).n_q for _ in range(4)] == first
