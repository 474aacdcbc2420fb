"""RVQBottleneck: depths, straight-through, eval_q slicing, codebook I/O, logging and DDP sync."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from stylecond.quantization import RVQBottleneck


def _rvq(**kw: object) -> RVQBottleneck:
    args: dict[str, object] = dict(dim=8, num_codebooks=6, codebook_size=16)
    args.update(kw)
    return RVQBottleneck(**args)  # type: ignore[arg-type]


def test_quantizer_dropout_covers_all_depths_and_eval_is_deterministic() -> None:
    rvq = _rvq()
    x = torch.randn(2, 40, 8)
    depths = {rvq(x).n_q for _ in range(40)}
    assert depths == set(range(1, 7))
    out = rvq(x)
    assert out.codes.shape == (2, 40, out.n_q) and (out.codes >= 0).all()
    rvq.eval()
    a, b = rvq(x), rvq(x)
    assert a.n_q == b.n_q == 3 and torch.equal(a.codes, b.codes) and torch.equal(a.quantized, b.quantized)


def test_no_dropout_uses_all_codebooks_and_forced_depth() -> None:
    rvq = _rvq(quantize_dropout=False)
    x = torch.randn(2, 30, 8)
    assert {rvq(x).n_q for _ in range(5)} == {6}
    assert rvq(x, n_q=2).codes.shape[-1] == 2


def test_straight_through_gradient_is_identity() -> None:
    rvq = _rvq()
    x = torch.randn(2, 30, 8, requires_grad=True)
    out = rvq(x)
    out.quantized.sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, torch.ones_like(x))


def test_eval_q_error_falls_with_depth_and_decode_matches() -> None:
    rvq = _rvq()
    x = torch.randn(4, 60, 8)
    for _ in range(5):
        rvq(x)
    rvq.eval()
    errs = [F.mse_loss(rvq(x, n_q=k).quantized, x).item() for k in range(1, 7)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    codes = rvq.encode(x, n_q=4)
    assert codes.shape == (4, 60, 4)
    assert torch.allclose(rvq.decode(codes), rvq(x, n_q=4).quantized, atol=1e-5)
    rvq.eval_q = 2
    assert rvq(x).n_q == 2


@pytest.mark.parametrize("bad", [0, 7, -1])
def test_eval_q_out_of_range(bad: int) -> None:
    rvq = _rvq()
    with pytest.raises(ValueError, match=r"1\.\.6"):
        rvq.eval_q = bad
    with pytest.raises(ValueError, match=r"1\.\.6"):
        rvq(torch.randn(1, 4, 8), n_q=bad)
    with pytest.raises(ValueError, match="eval_q"):
        _rvq(eval_q=bad)


def test_bad_input_shapes() -> None:
    rvq = _rvq()
    with pytest.raises(ValueError, match=r"\[B, T, 8\]"):
        rvq(torch.randn(2, 8))
    with pytest.raises(ValueError, match="codes"):
        rvq.decode(torch.full((1, 3, 2), 99))


def test_mask_zeroes_padding_and_marks_codes() -> None:
    rvq = _rvq()
    x = torch.randn(2, 20, 8)
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 12:] = False
    out = rvq(x, mask=mask)
    assert (out.quantized[1, 12:] == 0).all() and (out.codes[1, 12:] == -1).all()
    assert (out.codes[0] >= 0).all()


def test_set_codebooks_and_commitment() -> None:
    rvq = _rvq(num_codebooks=2, eval_q=2, commitment_weight=1.0)
    cents = torch.randn(2, 16, 8)
    rvq.set_codebooks(cents)
    assert torch.allclose(rvq.codebooks, cents)
    rvq.eval()
    x = cents[0, :5][None] + cents[1, 3][None, None]  # exactly representable
    assert torch.allclose(rvq(x).quantized, x, atol=1e-5)
    rvq.train()
    assert rvq(torch.randn(1, 10, 8)).commit_loss.item() > 0
    with pytest.raises(ValueError, match="centroids"):
        rvq.set_codebooks(torch.randn(3, 16, 8))


def test_codebooks_are_buffers_in_state_dict_not_parameters() -> None:
    rvq = _rvq()
    rvq(torch.randn(2, 30, 8))
    assert not list(rvq.parameters())
    sd = rvq.state_dict()
    fresh = _rvq()
    fresh.load_state_dict(sd)
    assert torch.equal(fresh.codebooks, rvq.codebooks)


def test_fit_alone_logs_health_metrics() -> None:
    feats = torch.randn(16, 20, 8)
    trainer = L.Trainer(
        max_steps=3, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    rvq = _rvq()
    trainer.fit(rvq, DataLoader(TensorDataset(feats), batch_size=4))
    logged = trainer.logged_metrics
    assert {"rvq/recon_mse", "rvq/usage_0", "rvq/perplexity_0", "rvq/dead_codes_5"} <= set(logged)
    assert 1.0 <= float(logged["rvq/perplexity_0"]) <= 16.0


# ----------------------------------------------------------------------------- DDP
class _Foreign(L.LightningModule):
    """A user model: linear encoder -> RVQBottleneck child, trained on reconstruction."""

    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.enc = nn.Linear(8, 8)
        self.rvq = RVQBottleneck(dim=8, num_codebooks=3, codebook_size=8, eval_q=2)
        self.out_dir = out_dir

    def training_step(self, batch: list[Tensor], batch_idx: int) -> Tensor:
        out = self.rvq(self.enc(batch[0]))
        return F.mse_loss(out.quantized, batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_train_end(self) -> None:
        torch.save(self.rvq.codebooks.clone(), Path(self.out_dir) / f"rank{self.global_rank}.pt")
        torch.save(torch.tensor(self.rvq.synced), Path(self.out_dir) / f"sync{self.global_rank}.pt")


@pytest.mark.slow
def test_ddp_codebooks_identical_across_ranks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = torch.randn(64, 12, 8) * torch.linspace(0.2, 3.0, 64)[:, None, None]  # ranks see different data
    trainer = L.Trainer(
        max_steps=4, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(_Foreign(str(tmp_path)), DataLoader(TensorDataset(data), batch_size=4, shuffle=False))
    cb0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    cb1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert bool(torch.load(tmp_path / "sync0.pt", weights_only=True))
    assert cb0.abs().sum() > 0
    assert torch.allclose(cb0, cb1, atol=1e-6)


def test_all_masked_batch_is_empty_not_an_error() -> None:
    rvq = _rvq()
    out = rvq(torch.randn(2, 5, 8), mask=torch.zeros(2, 5, dtype=torch.bool))
    assert (out.quantized == 0).all() and (out.codes == -1).all()
