"""Residual vector quantizer bottleneck (EMA codebooks, k-means init, quantizer dropout, DDP sync)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecond.quantization.ema_codebook import EMACodebook
from stylecond.utils.distributed import all_reduce_sum_, broadcast_, is_distributed


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


def _mix(seed: int, counter: int) -> int:
    """A 63-bit seed from ``(seed, counter)`` (splitmix64 finaliser): distinct streams per call."""
    z = (seed * 0x9E3779B97F4A7C15 + counter + 1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFF


class RVQBottleneck(L.LightningModule):
    """Residual vector quantizer over ``[B, T, D]`` features with EMA codebooks.

    Codebooks are buffers updated by EMA (not optimizer parameters), initialised by k-means on the
    first batch and refreshed when dead (:class:`~stylecond.quantization.ema_codebook.EMACodebook`).
    Training draws the depth ``n_q`` uniformly in ``1..num_codebooks`` per batch (quantizer dropout);
    inference uses the first ``eval_q`` codebooks, or the ``n_q`` passed to :meth:`forward`. Gradients
    pass straight through to the input.

    Random draws (depth, k-means samples, dead-code replacements) come from a private stream seeded by
    ``seed`` and the number of training calls so far (a buffer, so it resumes with a checkpoint): every
    DDP rank draws the same depth. Under ``torch.distributed`` the codebook statistics are summed across
    ranks and initialisations and replacements are broadcast from rank 0, so the codebooks stay
    identical; each training call makes the same collectives on every rank, whatever its data.

    Health metrics (usage, perplexity, dead codes per codebook) come from :meth:`health_metrics`; the
    module that owns the bottleneck logs them (this one does when fitted alone).

    Args:
        dim: feature dimension D.
        num_codebooks: number of residual codebooks Q.
        codebook_size: entries per codebook N.
        eval_q: codebooks used at inference, in 1..num_codebooks.
        kmeans_init: initialise each codebook by k-means on its first batch.
        kmeans_iters: k-means iterations.
        decay: EMA decay of the codebooks.
        threshold_ema_dead_code: codes whose EMA cluster size falls below this are replaced by batch vectors.
        commitment_weight: weight of the commitment loss returned in ``commit_loss`` (0 = the encoder
            learns only through downstream losses, as in MusicGen-Style).
        quantize_dropout: draw a random depth per training batch (otherwise all codebooks are used).
        sync: sum codebook statistics across ranks (None = whenever ``torch.distributed`` runs > 1 process).
        seed: seed of the bottleneck's own random stream.
        learning_rate: Adam learning rate when fitted alone (only used if the module has trainable parameters).
        log_prefix: prefix of the metric names from :meth:`health_metrics`.
    """

    draws: Tensor

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
        sync: bool | None = None,
        seed: int = 0,
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
        if commitment_weight < 0:
            raise ValueError(f"commitment_weight must be >= 0; got {commitment_weight}")
        self.save_hyperparameters(hparams)
        self.dim = dim
        self.num_codebooks = num_codebooks
        self.codebook_size = codebook_size
        self.commitment_weight = commitment_weight
        self.quantize_dropout = quantize_dropout
        self.sync = sync
        self.seed = seed
        self.learning_rate = learning_rate
        self.log_prefix = log_prefix
        self._eval_q = self.check_n_q(eval_q, "eval_q")
        self.layers = nn.ModuleList(
            EMACodebook(
                dim=dim,
                codebook_size=codebook_size,
                kmeans_init=kmeans_init,
                kmeans_iters=kmeans_iters,
                decay=decay,
                threshold_ema_dead_code=threshold_ema_dead_code,
            )
            for _ in range(num_codebooks)
        )
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_pre_hook(_upgrade_vector_quantize_pytorch_keys)
        self.automatic_optimization = False  # codebooks learn by EMA; see training_step

    # ---------------------------------------------------------------- configuration
    def check_n_q(self, n_q: int, name: str) -> int:
        if not isinstance(n_q, int) or isinstance(n_q, bool) or not 1 <= n_q <= self.num_codebooks:
            raise ValueError(f"{name} must be an int in 1..{self.num_codebooks} (num_codebooks); got {n_q!r}")
        return n_q

    @property
    def eval_q(self) -> int:
        """Default number of codebooks used at inference (1..num_codebooks)."""
        return self._eval_q

    @eval_q.setter
    def eval_q(self, value: int) -> None:
        self._eval_q = self.check_n_q(value, "eval_q")

    @property
    def synced(self) -> bool:
        """Whether a training call sums statistics across ranks now."""
        return is_distributed() if self.sync is None else self.sync

    # ---------------------------------------------------------------- codebooks
    @property
    def codebooks(self) -> Tensor:
        """``[Q, N, D]`` codebook vectors (detached)."""
        return torch.stack([layer.embed for layer in self._codebooks()]).detach()

    def _codebooks(self) -> list[EMACodebook]:
        return [layer for layer in self.layers if isinstance(layer, EMACodebook)]

    @torch.no_grad()
    def set_codebooks(self, centroids: Tensor) -> None:
        """Load ``centroids [Q, N, D]`` (e.g. from an external k-means) and mark the codebooks initialised."""
        expected = (self.num_codebooks, self.codebook_size, self.dim)
        if tuple(centroids.shape) != expected or not torch.isfinite(centroids).all():
            raise ValueError(f"centroids must be finite with shape {expected}; got {tuple(centroids.shape)}")
        for layer, c in zip(self._codebooks(), centroids):
            layer.embed.copy_(c.to(layer.embed))
            layer.embed_avg.copy_(c.to(layer.embed_avg))
            layer.cluster_size.fill_(1.0)
            layer.inited.fill_(1.0)

    # ---------------------------------------------------------------- forward
    def _check_input(self, x: Tensor, mask: Tensor | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"x must be [B, T, {self.dim}]; got shape {tuple(x.shape)}")
        if mask is not None and (mask.shape != x.shape[:2] or mask.dtype != torch.bool):
            raise ValueError(
                f"mask must be bool [B, T] = {tuple(x.shape[:2])}; got {tuple(mask.shape)} {mask.dtype}"
            )

    def forward(self, x: Tensor, *, n_q: int | None = None, mask: Tensor | None = None) -> RVQOutput:
        """Quantize ``x [B, T, D]`` (``mask [B, T]`` bool: valid frames) -> :class:`RVQOutput`.

        ``n_q`` sets the depth; by default training draws it (quantizer dropout) and eval uses ``eval_q``.
        """
        self._check_input(x, mask)
        if n_q is not None:
            self.check_n_q(n_q, "n_q")
        flat = x.detach().float()
        flat = flat[mask] if mask is not None else flat.reshape(-1, self.dim)  # [N, D] valid frames
        if self.training:
            codes_flat, q_flat, n_used = self._train_quantize(flat, n_q)
        else:
            n_used = n_q if n_q is not None else self.eval_q
            codes_flat = self._codes(flat, n_used)
            q_flat = self._lookup(codes_flat).sum(0)  # [N, D]
        codes = torch.full((*x.shape[:2], n_used), -1, dtype=torch.long, device=x.device)
        quantized = torch.zeros_like(x)
        if mask is not None:
            codes[mask] = codes_flat
            quantized[mask] = q_flat.to(x.dtype)
        else:
            codes = codes_flat.view(*x.shape[:2], n_used)
            quantized = q_flat.view_as(x).to(x.dtype)
        out = x + (quantized - x).detach()  # straight-through
        if mask is not None:
            out = out * mask[..., None].to(out.dtype)
        return RVQOutput(
            quantized=out, codes=codes, n_q=n_used, commit_loss=self._commit_loss(x, codes, mask)
        )

    def _codes(self, flat: Tensor, n_q: int) -> Tensor:
        """Residual nearest-entry search with the current codebooks: ``[N, n_q]`` (no update)."""
        codes = []
        residual = flat
        for layer in self._codebooks()[:n_q]:
            c = layer.nearest(residual)
            codes.append(c)
            residual = residual - layer.embed[c].float()
        return torch.stack(codes, dim=-1) if codes else flat.new_zeros(flat.shape[0], 0, dtype=torch.long)

    @torch.no_grad()
    def _train_quantize(self, flat: Tensor, n_q: int | None) -> tuple[Tensor, Tensor, int]:
        """Codes ``[N, n]`` and quantized ``[N, D]`` of a training call (with the codebooks as they were),
        then the EMA update, dead-code replacement and cross-rank sync."""
        generator = torch.Generator().manual_seed(_mix(self.seed, int(self.draws)))
        self.draws += 1
        if n_q is None:
            drawn = int(torch.randint(1, self.num_codebooks + 1, (1,), generator=generator))
            n_q = drawn if self.quantize_dropout else self.num_codebooks
        sync = self.synced
        if not all(layer.is_inited for layer in self._codebooks()):
            self._init_codebooks(flat, generator, sync=sync)
        layers = self._codebooks()[:n_q]
        inputs, codes, vectors = [], [], []
        residual = flat
        for layer in layers:
            c = layer.nearest(residual)
            inputs.append(residual)
            codes.append(c)
            vectors.append(layer.embed[c].float())
            residual = residual - vectors[-1]
        stats: list[Tensor] = []
        for inp, c in zip(inputs, codes):
            stats.append(torch.bincount(c, minlength=self.codebook_size).float())
            stats.append(torch.zeros(self.codebook_size, self.dim, device=flat.device).index_add_(0, c, inp))
        if sync:
            all_reduce_sum_(stats)
        for i, layer in enumerate(layers):
            layer.ema_update(stats[2 * i], stats[2 * i + 1])
        # the statistics are equal on every rank, so is this decision; rank 0's replacements then win
        any_dead = any(bool(layer.dead_codes().any()) for layer in layers)
        for layer, inp in zip(layers, inputs):
            layer.replace_dead(inp, generator)
        if sync and any_dead and layers[0].threshold_ema_dead_code > 0:
            broadcast_([t for layer in layers for t in (layer.cluster_size, layer.embed, layer.embed_avg)])
        out = torch.stack(codes, dim=-1)
        return out, torch.stack(vectors).sum(0), n_q

    def _init_codebooks(self, flat: Tensor, generator: torch.Generator, *, sync: bool) -> None:
        """k-means the codebooks not yet initialised, each on the residual left by those before it (all
        depths at once, so eval at any depth has codebooks); rank 0's result is broadcast."""
        residual = flat
        layers = self._codebooks()
        for layer in layers:
            if not layer.is_inited and flat.shape[0]:
                layer.init_kmeans(residual, generator)
            residual = residual - layer.embed[layer.nearest(residual)].float()
        if sync:
            broadcast_(
                [
                    t
                    for layer in layers
                    for t in (layer.inited, layer.cluster_size, layer.embed, layer.embed_avg)
                ]
            )

    def _lookup(self, codes: Tensor) -> Tensor:
        """``codes [..., q]`` -> per-codebook vectors ``[q, ..., D]`` (zero where a code is -1)."""
        layers = self._codebooks()
        out = [
            layers[i].embed[codes[..., i].clamp_min(0)] * (codes[..., i] >= 0)[..., None]
            for i in range(codes.shape[-1])
        ]
        if not out:
            return codes.new_zeros((0, *codes.shape[:-1], self.dim), dtype=torch.float32)
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
        k = self.check_n_q(n_q, "n_q") if n_q is not None else self.eval_q
        flat = x.float()[mask] if mask is not None else x.float().reshape(-1, self.dim)
        codes = torch.full((*x.shape[:2], k), -1, dtype=torch.long, device=x.device)
        if mask is not None:
            codes[mask] = self._codes(flat, k)
            return codes
        return self._codes(flat, k).view(*x.shape[:2], k)

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
        for i, layer in enumerate(self._codebooks()):
            stats[f"dead_codes_{i}"] = layer.dead_codes().sum().float()
        return stats

    def health_metrics(self, out: RVQOutput) -> dict[str, Tensor]:
        """``{log_prefix}/usage_i``, ``/perplexity_i``, ``/dead_codes_i`` and ``/n_q`` for a forward's output."""
        stats = {f"{self.log_prefix}/{k}": v for k, v in self.codebook_stats(out.codes).items()}
        stats[f"{self.log_prefix}/n_q"] = torch.tensor(float(out.n_q))
        return stats

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
        # manual optimization: stepping (even the placeholder optimizer) advances trainer.global_step
        opts = self.optimizers()
        opt = opts[0] if isinstance(opts, list) else opts
        if loss.requires_grad:
            opt.zero_grad()
            self.manual_backward(loss)
        opt.step()
        self.log_dict(
            {f"{self.log_prefix}/recon_mse": recon.detach(), **self.health_metrics(out)},
            batch_size=x.shape[0],
        )
        return loss.detach()

    def validation_step(self, batch: Any, batch_idx: int = 0) -> Tensor:
        x = self._features_from_batch(batch)
        recon = F.mse_loss(self(x).quantized, x)
        self.log(f"{self.log_prefix}/val_recon_mse", recon, batch_size=x.shape[0])
        return recon

    def configure_optimizers(self) -> torch.optim.Optimizer | None:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.learning_rate) if params else None


def _upgrade_vector_quantize_pytorch_keys(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: Any
) -> None:
    """Rename the buffers of exports written with vector-quantize-pytorch's ``ResidualVQ`` (stylecond 0.1):
    ``rvq.layers.{i}._codebook.{embed, embed_avg, cluster_size, initted}`` (with a leading heads axis of 1)
    -> ``layers.{i}.{embed, embed_avg, cluster_size, inited}``; exports without ``draws`` start at 0."""
    old = f"{prefix}rvq.layers."
    for key in [k for k in state_dict if k.startswith(old)]:
        value = state_dict.pop(key)
        index, _, name = key[len(old) :].partition("._codebook.")
        if name == "initted":
            state_dict[f"{prefix}layers.{index}.inited"] = value.reshape(1).float()
        elif name in ("embed", "embed_avg", "cluster_size"):
            state_dict[f"{prefix}layers.{index}.{name}"] = value.reshape(value.shape[1:])
    if f"{prefix}draws" not in state_dict and f"{prefix}layers.0.embed" in state_dict:
        state_dict[f"{prefix}draws"] = torch.zeros((), dtype=torch.long)
