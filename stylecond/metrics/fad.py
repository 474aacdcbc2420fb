"""Fréchet Audio Distance as a DDP-reducible torchmetrics metric with a pluggable embedder."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from stylecond.metrics.embedders.base import AudioEmbedder


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix (eigendecomposition, float64)."""
    vals, vecs = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """Fréchet distance between Gaussians ``N(mu1 [D], sigma1 [D, D])`` and ``N(mu2, sigma2)``.

    ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)``, computed in float64 with
    symmetric eigendecompositions (no complex ``sqrtm``), so the result is real and >= 0 up to rounding.
    """
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    root1 = _sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    vals = torch.linalg.eigvalsh((middle + middle.T) / 2)
    cross = vals.clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * cross


class FrechetAudioDistance(Metric):
    """FAD between the embeddings of reference ("real") and generated audio (lower is better).

    ``update(x, real=...)`` takes waveforms ``[B, C, T]`` (embedded with ``embedder``; ``[B, N, D]``
    chunks when ``chunk_seconds`` is set, each chunk counting as one sample as with VGGish) or
    precomputed embeddings ``[B, D]``. States are sums (count, sum, sum of outer products, float64) reduced
    with ``"sum"``, so the metric is exact under DDP. Without ``dim`` the states are sized at the first
    update; under DDP every rank must then see at least one batch, or pass ``dim``.

    Args:
        embedder: Embedding model for waveform inputs (``None``: only embeddings are accepted).
        dim: Embedding size (``None``: the states are sized at the first update).
        chunk_seconds: Embed waveforms in chunks of this length (``None``: one embedding per clip).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    real_n: Tensor
    real_sum: Tensor
    real_outer: Tensor
    fake_n: Tensor
    fake_sum: Tensor
    fake_outer: Tensor

    def __init__(
        self,
        *,
        embedder: AudioEmbedder | None = None,
        dim: int | None = None,
        chunk_seconds: float | None = None,
    ) -> None:
        super().__init__()
        if dim is not None and dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        self.embedder = embedder
        self.chunk_seconds = chunk_seconds
        d = dim or 0
        for kind in ("real", "fake"):
            self.add_state(f"{kind}_n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{kind}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{kind}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def embedding_name(self) -> str:
        """Name of the embedding model behind the numbers (``"precomputed"`` without an embedder)."""
        return self.embedder.name if self.embedder is not None else "precomputed"

    def embed(self, x: Tensor, sample_rate: int | None = None) -> Tensor:
        """Waveforms ``[B, C, T]`` -> ``[M, D]`` embeddings; 2-D input is taken as embeddings already."""
        if x.dim() == 2:
            emb = x
        elif x.dim() == 3:
            if self.embedder is None:
                raise ValueError(
                    "x is a waveform [B, C, T] but the metric has no embedder; pass embeddings [B, D]"
                )
            if self.chunk_seconds is None:
                emb = self.embedder(x, sample_rate)
            else:
                emb = self.embedder.embed_chunks(x, self.chunk_seconds, sample_rate=sample_rate).flatten(0, 1)
        else:
            raise ValueError(
                f"x must be waveforms [B, C, T] or embeddings [B, D], got shape {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(emb).all()):
            raise ValueError("embeddings contain NaN or inf values")
        return emb.detach().double()

    def update(self, x: Tensor, *, real: bool, sample_rate: int | None = None) -> None:
        """Add a batch: ``x`` waveforms ``[B, C, T]`` at ``sample_rate`` or embeddings ``[B, D]``."""
        emb = self.embed(x, sample_rate)
        kind = "real" if real else "fake"
        d = emb.shape[1]
        total: Tensor = getattr(self, f"{kind}_sum")
        if total.numel() == 0:
            for k in ("real", "fake"):
                if getattr(self, f"{k}_sum").numel() == 0:
                    setattr(self, f"{k}_sum", torch.zeros(d, dtype=torch.float64, device=emb.device))
                    setattr(self, f"{k}_outer", torch.zeros(d, d, dtype=torch.float64, device=emb.device))
            total = getattr(self, f"{kind}_sum")
        if total.shape[0] != d:
            raise ValueError(f"embedding size {d} differs from the metric's dim {total.shape[0]}")
        setattr(self, f"{kind}_n", getattr(self, f"{kind}_n") + emb.shape[0])
        setattr(self, f"{kind}_sum", total + emb.sum(dim=0))
        setattr(self, f"{kind}_outer", getattr(self, f"{kind}_outer") + emb.T @ emb)

    def forward(self, x: Tensor, *, real: bool, sample_rate: int | None = None) -> None:  # type: ignore[override]
        """Same as :meth:`update` (a per-batch FAD is meaningless, so nothing is returned)."""
        self.update(x, real=real, sample_rate=sample_rate)

    def statistics(self, real: bool) -> tuple[Tensor, Tensor]:
        """Mean ``[D]`` and unbiased covariance ``[D, D]`` of the real or generated embeddings."""
        kind = "real" if real else "fake"
        n: Tensor = getattr(self, f"{kind}_n")
        if float(n) < 2:
            raise ValueError(f"FAD needs at least 2 {kind} embeddings, got {int(n)}")
        mean = getattr(self, f"{kind}_sum") / n
        cov = (getattr(self, f"{kind}_outer") - n * torch.outer(mean, mean)) / (n - 1)
        return mean, cov

    def compute(self) -> Tensor:
        """Fréchet distance between the two Gaussians (float64 scalar)."""
        mu_r, cov_r = self.statistics(True)
        mu_f, cov_f = self.statistics(False)
        return frechet_distance(mu_r, cov_r, mu_f, cov_f).clamp_min(0)
