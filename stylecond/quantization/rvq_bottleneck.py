"""Residual vector quantizer bottleneck (EMA codebooks, k-means init, quantizer dropout)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from vector_quantize_pytorch import ResidualVQ
from vector_quantize_pytorch import vector_quantize_pytorch as vq_impl

from stylecond.quantization.child_log import log_child_metrics


@dataclass
class RVQOutput:
    """Result of :class:`RVQBottleneck`.

    Attributes:
        quantized: ``[B, T, D]`` quantized features (straight-through gradient to the input; zero at
            masked frames).
        codes: ``[B, T, n_q]`` long codebook indices of the codebooks used (-1 at masked frames).
        n_q: number of codebooks used.
        commit_loss: scalar commitment loss (already weighted; zero if the weight is 0 or in eval).
    """

    quantized: Tensor
    codes: Tensor
    n_q: int
    commit_loss: Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class RVQBottleneck(L.LightningModule):
    """Residual vector quantizer over ``[B, T, D]`` features, wrapping ``vector_quantize_pytorch.ResidualVQ``.

    Codebooks are buffers updated by EMA (not optimizer parameters), initialised by k-means on the
    first batch and refreshed when dead. Training draws the depth ``n_q`` uniformly in
    ``1..num_codebooks`` per batch (quantizer dropout); inference uses the first ``eval_q`` codebooks.
    Gradients pass straight through to the input. Under DDP the codebook statistics are all-reduced,
    so codebooks stay identical on all ranks. Works as a plain ``nn.Module``; logs per-codebook
    usage, perplexity and dead codes when a Trainer is attached (directly or through a parent).

    Args:
        dim: feature dimension D.
        num_codebooks: number of residual codebooks Q.
        codebook_size: entries per codebook N.
        eval_q: codebooks used at inference, in 1..num_codebooks.
        kmeans_init: initialise each codebook by k-means on its first batch.
        kmeans_iters: k-means iterations.
        decay: EMA decay of the codebooks.
        threshold_ema_dead_code: codes whose EMA cluster size falls below this are replaced by batch vectors.
        commitment_weight: weight of the commitment loss (0 = encoder learns only through downstream losses).
        quantize_dropout: draw a random depth per training batch (otherwise all codebooks are used).
        learning_rate: Adam learning rate when fitted alone (only used if the module has trainable parameters).
        log_prefix: prefix of the logged metric names.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_codebooks: int = 6,
        codebook_size: int = 1024,
        eval_q: int = 3,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        decay: float = 0.99,
        threshold_ema_dead_code: float = 0.1,
        commitment_weight: float = 0.0,
        quantize_dropout: bool = True,
        learning_rate: float = 1e-3,
        log_prefix: str = "rvq",
    ) -> None:
        # explicit: Lightning's frame walk would also pick up a parent LightningModule's init args
        hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        if dim < 1 or num_codebooks < 1 or codebook_size < 2:
            raise ValueError(
                f"dim >= 1, num_codebooks >= 1 and codebook_size >= 2 required; got dim={dim}, "
                f"num_codebooks={num_codebooks}, codebook_size={codebook_size}"
            )
        self.save_hyperparameters(hparams)
        self.dim = dim
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.commitment_weight = commitment_weight
        self.quantize_dropout = quantize_dropout
        self.learning_rate = learning_rate
        self.log_prefix = log_prefix
        self._eval_q = self._check_n_q(eval_q, "eval_q")
        self._sync = _distributed()
        self.rvq = ResidualVQ(
            dim=dim,
            num_quantizers=num_codebooks,
            codebook_size=codebook_size,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            decay=decay,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=0.0,  # computed here, on the straight-through output
            quantize_dropout=True,  # needed to decode fewer codebooks; the depth is chosen in forward
            rotation_trick=False,
            sync_codebook=self._sync,
        )
        self._depth_seeds: dict[int, int] = {}
        self.automatic_optimization = False  # codebooks learn by EMA; see training_step

    # ---------------------------------------------------------------- configuration
    def _check_n_q(self, n_q: int, name: str) -> int:
        if not isinstance(n_q, int) or isinstance(n_q, bool) or not 1 <= n_q <= self.num_codebooks:
            raise ValueError(f"{name} must be an int in 1..{self.num_codebooks} (num_codebooks); got {n_q!r}")
        return n_q

    @property
    def eval_q(self) -> int:
        """Codebooks used at inference (1..num_codebooks)."""
        return self._eval_q

    @eval_q.setter
    def eval_q(self, value: int) -> None:
        self._eval_q = self._check_n_q(value, "eval_q")

    def set_sync(self, enabled: bool) -> None:
        """Turn cross-rank codebook synchronisation (all-reduced EMA statistics and k-means) on or off."""
        for layer in self.rvq.layers:
            cb = layer._codebook
            cb.use_ddp = enabled
            sample = vq_impl.sample_vectors_distributed if enabled else vq_impl.batched_sample_vectors
            cb.sample_fn = cb.replace_sample_fn = sample
            reduce_fn = dist.all_reduce if enabled else vq_impl.noop
            cb.kmeans_all_reduce_fn = cb.all_reduce_fn = reduce_fn
        self._sync = enabled

    def configure_model(self) -> None:
        """Sync codebooks across ranks when running distributed (also re-checked on every forward)."""
        self.set_sync(_distributed())

    def _maybe_update_sync(self) -> None:
        wanted = _distributed()
        if wanted != self._sync:
            self.set_sync(wanted)

    # ---------------------------------------------------------------- codebooks
    @property
    def codebooks(self) -> Tensor:
        """``[Q, N, D]`` codebook vectors (detached)."""
        return self.rvq.codebooks.detach()

    @torch.no_grad()
    def set_codebooks(self, centroids: Tensor) -> None:
        """Load ``centroids [Q, N, D]`` (e.g. from an external k-means) and mark the codebooks initialised."""
        expected = (self.num_codebooks, self.codebook_size, self.dim)
        if tuple(centroids.shape) != expected or not torch.isfinite(centroids).all():
            raise ValueError(f"centroids must be finite with shape {expected}; got {tuple(centroids.shape)}")
        for layer, c in zip(self.rvq.layers, centroids):
            cb = layer._codebook
            cb.embed.data.copy_(c[None].to(cb.embed))
            cb.embed_avg.data.copy_(c[None].to(cb.embed_avg))
            cb.cluster_size.data.fill_(1.0)
            cb.initted.data.fill_(True)

    # ---------------------------------------------------------------- forward
    def _seed_for_depth(self, n_q: int) -> int:
        """A seed making ResidualVQ's quantizer dropout keep exactly ``n_q`` codebooks."""
        if n_q not in self._depth_seeds:
            seed = 0
            while random.Random(seed).randrange(0, self.num_codebooks) != n_q - 1:
                seed += 1
            self._depth_seeds[n_q] = seed
        return self._depth_seeds[n_q]

    def _check_input(self, x: Tensor, mask: Tensor | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be [B, T, {self.dim}]; got shape {tuple(x.shape)}")
        if mask is not None and (mask.shape != x.shape[:2] or mask.dtype != torch.bool):
            raise ValueError(
                f"mask must be bool [B, T] = {tuple(x.shape[:2])}; got {tuple(mask.shape)} {mask.dtype}"
            )

    def forward(self, x: Tensor, *, n_q: int | None = None, mask: Tensor | None = None) -> RVQOutput:
        """Quantize ``x [B, T, D]`` (``mask [B, T]`` bool: valid frames) -> :class:`RVQOutput`.

        ``n_q`` forces the depth; by default training draws it (quantizer dropout), eval uses ``eval_q``.
        """
        self._check_input(x, mask)
        if n_q is not None:
            self._check_n_q(n_q, "n_q")
        self._maybe_update_sync()
        codes, quantized, n_used = self._quantize(x.detach().float(), n_q, mask)
        quantized = quantized.to(x.dtype)
        out = x + (quantized - x).detach()  # straight-through
        if mask is not None:
            out = out * mask[..., None].to(out.dtype)
        commit = self._commit_loss(x, codes, mask)
        if self.training:
            self._log_health(codes, mask)
        return RVQOutput(quantized=out, codes=codes, n_q=n_used, commit_loss=commit)

    def _quantize(self, x: Tensor, n_q: int | None, mask: Tensor | None) -> tuple[Tensor, Tensor, int]:
        """Codes ``[B, T, n]`` (-1 where masked), quantized ``[B, T, D]`` (no gradient) and ``n``.

        Masked inputs are handled by quantizing the valid frames only (``[1, N, D]``): ResidualVQ's own
        ``mask`` path goes through einx, whose per-shape graph solving costs ~0.2 s for every new length.
        """
        if mask is not None and not bool(mask.any()):  # nothing to quantize
            n = n_q or (self.num_codebooks if self.training else self.eval_q)
            return (
                torch.full((*x.shape[:2], n), -1, dtype=torch.long, device=x.device),
                torch.zeros_like(x),
                n,
            )
        flat = x[mask][None] if mask is not None else x  # [1, N, D] or [B, T, D]
        if self.training:
            if n_q is None and not self.quantize_dropout:
                n_q = self.num_codebooks
            seed = None if n_q is None else self._seed_for_depth(n_q)
            q_flat, c_flat, _ = self.rvq(flat, rand_quantize_dropout_fixed_seed=seed)
            used = (c_flat != -1).reshape(-1, c_flat.shape[-1]).any(dim=0)
            n_used = int(used.sum().item()) if c_flat.numel() else (n_q or self.num_codebooks)
            c_flat = c_flat[..., :n_used]
        else:
            n_used = n_q if n_q is not None else self.eval_q
            _, c_flat, _ = self.rvq(flat)
            c_flat = c_flat[..., :n_used]
            q_flat = self._lookup(c_flat).sum(0)
        if mask is None:
            return c_flat, q_flat.detach(), n_used
        codes = torch.full((*x.shape[:2], n_used), -1, dtype=torch.long, device=x.device)
        codes[mask] = c_flat[0]
        quantized = torch.zeros_like(x)
        quantized[mask] = q_flat[0].detach().to(x.dtype)
        return codes, quantized, n_used

    def _lookup(self, codes: Tensor) -> Tensor:
        """``codes [..., q]`` -> per-codebook vectors ``[q, ..., D]`` (zero where a code is -1)."""
        books = self.rvq.codebooks  # [Q, N, D]
        out = [
            books[i][codes[..., i].clamp_min(0)] * (codes[..., i] >= 0)[..., None]
            for i in range(codes.shape[-1])
        ]
        return torch.stack(out)

    def _commit_loss(self, x: Tensor, codes: Tensor, mask: Tensor | None) -> Tensor:
        if self.commitment_weight <= 0 or not self.training:
            return x.new_zeros(())
        residual = x
        losses = []
        for code in self._lookup(codes).detach().to(x.dtype):  # [q, B, T, D]
            err = (residual - code).pow(2).mean(dim=-1)  # [B, T]
            losses.append(err[mask].mean() if mask is not None else err.mean())
            residual = residual - code
        return self.commitment_weight * torch.stack(losses).mean()

    @torch.no_grad()
    def encode(self, x: Tensor, *, n_q: int | None = None, mask: Tensor | None = None) -> Tensor:
        """``x [B, T, D]`` -> codes ``[B, T, n_q]`` (default ``eval_q``); never updates the codebooks."""
        self._check_input(x, mask)
        k = self._check_n_q(n_q, "n_q") if n_q is not None else self.eval_q
        was_training = self.training
        self.eval()
        try:
            codes, _, _ = self._quantize(x.float(), k, mask)
        finally:
            self.train(was_training)
        return codes

    def decode(self, codes: Tensor) -> Tensor:
        """``codes [B, T, q]`` (any q <= num_codebooks; -1 = masked) -> ``[B, T, D]``."""
        if codes.dim() != 3 or not 1 <= codes.shape[-1] <= self.num_codebooks:
            raise ValueError(
                f"codes must be [B, T, q] with q in 1..{self.num_codebooks}; got {tuple(codes.shape)}"
            )
        if codes.dtype not in (torch.int64, torch.int32) or bool(
            ((codes < -1) | (codes >= self.codebook_size)).any()
        ):
            raise ValueError(
                f"codes must be integer indices in 0..{self.codebook_size - 1} (or -1 for masked)"
            )
        return self._lookup(codes.long()).sum(0)

    # ---------------------------------------------------------------- health metrics
    @torch.no_grad()
    def codebook_stats(self, codes: Tensor) -> dict[str, Tensor]:
        """Per-codebook usage (fraction of entries hit), perplexity and dead-code count for ``codes [B, T, q]``."""
        stats: dict[str, Tensor] = {}
        for i in range(codes.shape[-1]):
            c = codes[..., i]
            c = c[c >= 0]
            counts = torch.bincount(c, minlength=self.codebook_size).float()
            probs = counts / counts.sum().clamp_min(1.0)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
            stats[f"usage_{i}"] = (counts > 0).float().mean()
            stats[f"perplexity_{i}"] = entropy.exp()
        for i, layer in enumerate(self.rvq.layers):
            cb = layer._codebook
            stats[f"dead_codes_{i}"] = (cb.cluster_size < cb.threshold_ema_dead_code).sum().float()
        return stats

    def _log_health(self, codes: Tensor, mask: Tensor | None) -> None:
        if getattr(self, "_trainer", None) is None:
            return
        stats: dict[str, Tensor | float] = {
            f"{self.log_prefix}/{k}": v for k, v in self.codebook_stats(codes).items()
        }
        stats[f"{self.log_prefix}/n_q"] = float(codes.shape[-1])
        log_child_metrics(self, stats, batch_size=codes.shape[0])

    # ---------------------------------------------------------------- fitting alone on features
    @staticmethod
    def _features_from_batch(batch: Any) -> Tensor:
        if isinstance(batch, Tensor):
            return batch
        items: Sequence[Any] = list(batch.values()) if isinstance(batch, Mapping) else list(batch)
        for item in items:
            if isinstance(item, Tensor) and item.dim() == 3:
                return item
        raise ValueError("batch must be a features tensor [B, T, D] or a dict/tuple containing one")

    def training_step(self, batch: Any, batch_idx: int = 0) -> Tensor:
        """Reconstruction MSE + commitment on a features batch ``[B, T, D]`` (codebooks learn by EMA)."""
        x = self._features_from_batch(batch)
        out = self(x)
        recon = F.mse_loss(out.quantized.detach(), x)
        loss = recon + out.commit_loss
        if self._trainer is not None:  # manual optimization: stepping (even a mock optimizer) counts steps
            opts = self.optimizers()
            opt = opts[0] if isinstance(opts, list) else opts
            if loss.requires_grad:
                opt.zero_grad()
                self.manual_backward(loss)
            opt.step()
        log_child_metrics(self, {f"{self.log_prefix}/recon_mse": recon.detach()}, batch_size=x.shape[0])
        return loss.detach()

    def validation_step(self, batch: Any, batch_idx: int = 0) -> Tensor:
        x = self._features_from_batch(batch)
        recon = F.mse_loss(self(x).quantized, x)
        log_child_metrics(self, {f"{self.log_prefix}/val_recon_mse": recon}, batch_size=x.shape[0])
        return recon

    def configure_optimizers(self) -> torch.optim.Optimizer | None:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.learning_rate) if params else None
