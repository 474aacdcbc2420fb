"""One vector-quantizer codebook learned by exponential moving averages (no gradient, no optimizer).

The update rule is the usual EMA codebook (VQ-VAE-2, SoundStream, EnCodec, vector-quantize-pytorch):
``cluster_size <- lerp(cluster_size, counts, 1 - decay)``, ``embed_avg <- lerp(embed_avg, sums, 1 - decay)``
and ``embed = embed_avg / laplace_smoothed(cluster_size)``. Initialisation is k-means on the first batch;
entries whose EMA cluster size falls below a threshold are "dead" and replaced by vectors of the batch.
The caller (:class:`~stylecond.quantization.rvq_bottleneck.RVQBottleneck`) decides when and across which
ranks statistics are summed; this module only holds the buffers and the arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def squared_distances(x: Tensor, embed: Tensor) -> Tensor:
    """``||x_i - e_j||^2`` clamped at 1e-8, ``[N, K]`` for ``x [N, D]`` and ``embed [K, D]`` (float32)."""
    xy = (x @ embed.t()) * -2.0
    return (x.pow(2).sum(-1)[:, None] + embed.pow(2).sum(-1)[None, :] + xy).clamp_min(1e-8)


def sample_rows(x: Tensor, num: int, generator: torch.Generator) -> Tensor:
    """``num`` rows of ``x [N, D]``: without replacement when ``N >= num``, else with replacement."""
    n = x.shape[0]
    if n >= num:
        idx = torch.randperm(n, generator=generator)[:num]
    else:
        idx = torch.randint(0, n, (num,), generator=generator)
    return x[idx.to(x.device)]


class EMACodebook(nn.Module):
    """``codebook_size`` vectors of width ``dim``, held as buffers and learned by EMA.

    Buffers (the names audiocraft's ``EuclideanCodebook`` uses): ``inited [1]`` (1.0 once initialised),
    ``cluster_size [K]``, ``embed [K, D]`` (the codebook) and ``embed_avg [K, D]``.

    Args:
        dim: vector width D.
        codebook_size: entries K.
        kmeans_init: initialise by k-means on the first batch (else random uniform, initialised at once).
        kmeans_iters: Lloyd iterations of that k-means.
        decay: EMA decay.
        threshold_ema_dead_code: entries whose EMA cluster size falls below this are replaced (0 = never).
        eps: Laplace smoothing of the cluster sizes.
    """

    inited: Tensor
    cluster_size: Tensor
    embed: Tensor
    embed_avg: Tensor

    def __init__(
        self,
        *,
        dim: int,
        codebook_size: int,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        decay: float = 0.99,
        threshold_ema_dead_code: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1); got {decay}")
        self.dim, self.codebook_size = dim, codebook_size
        self.kmeans_iters, self.decay, self.eps = kmeans_iters, decay, eps
        self.threshold_ema_dead_code = threshold_ema_dead_code
        embed = torch.zeros(codebook_size, dim)
        if not kmeans_init:
            nn.init.kaiming_uniform_(embed)
        self.register_buffer("inited", torch.tensor([0.0 if kmeans_init else 1.0]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self.codebook_size}, decay={self.decay}"

    @property
    def is_inited(self) -> bool:
        return bool(self.inited.item())

    def nearest(self, x: Tensor) -> Tensor:
        """Index ``[N]`` of the nearest entry for each row of ``x [N, D]`` (float32)."""
        return squared_distances(x, self.embed.float()).argmin(dim=-1)

    @torch.no_grad()
    def init_kmeans(self, x: Tensor, generator: torch.Generator) -> None:
        """Initialise from ``x [N, D]`` (float32) by k-means; marks the codebook initialised."""
        means = sample_rows(x, self.codebook_size, generator)
        counts = torch.zeros(self.codebook_size, device=x.device)
        for _ in range(self.kmeans_iters):
            assign = squared_distances(x, means).argmin(dim=-1)
            counts = torch.bincount(assign, minlength=self.codebook_size).float()
            sums = torch.zeros_like(means).index_add_(0, assign, x)
            empty = counts == 0
            means = torch.where(empty[:, None], means, sums / counts.clamp_min(1.0)[:, None])
        self.embed_avg.copy_(means * counts[:, None])
        self.cluster_size.copy_(counts)
        self._normalise()
        self.inited.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, counts: Tensor, sums: Tensor) -> None:
        """Move the statistics toward this batch's ``counts [K]`` and per-entry ``sums [K, D]``."""
        self.cluster_size.lerp_(counts.to(self.cluster_size), 1.0 - self.decay)
        self.embed_avg.lerp_(sums.to(self.embed_avg), 1.0 - self.decay)
        self._normalise()

    def _normalise(self) -> None:
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    def dead_codes(self) -> Tensor:
        """``[K]`` bool: entries whose EMA cluster size is below the threshold."""
        return self.cluster_size < self.threshold_ema_dead_code

    @torch.no_grad()
    def replace_dead(self, x: Tensor, generator: torch.Generator) -> int:
        """Replace dead entries by rows of ``x [N, D]`` (at most N at a time, without duplicates); returns
        how many were replaced. A replaced entry restarts with cluster size ``threshold_ema_dead_code``."""
        if self.threshold_ema_dead_code <= 0 or x.shape[0] == 0:
            return 0
        dead = self.dead_codes().nonzero().flatten()
        if dead.numel() == 0:
            return 0
        if (
            dead.numel() > x.shape[0]
        ):  # replacing more would duplicate vectors: the rest wait for later batches
            keep = torch.randperm(dead.numel(), generator=generator)[: x.shape[0]]
            dead = dead[keep.to(dead.device)]
        new = sample_rows(x, dead.numel(), generator).to(self.embed)
        reset = self.threshold_ema_dead_code
        self.embed[dead] = new
        self.cluster_size[dead] = reset
        self.embed_avg[dead] = new * reset
        return int(dead.numel())
