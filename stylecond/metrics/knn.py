"""Nearest-neighbour style metrics: KNN_common@k (style adherence) and KNN_overfit (copying)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from stylecond.metrics.embedders.base import AudioEmbedder


class KNNStyleMetrics(Metric):
    """KNN_common@k and KNN_overfit of generations against a database of embedded track chunks.

    The distance from a query to a database *track* is the smallest distance between any of the query's
    embeddings and any of that track's chunk embeddings. For each (conditioning excerpt C, generation G)
    pair, :meth:`compute` averages:

    - ``knn_common``: ``|top-k tracks(C) ∩ top-k tracks(G)| / k`` (style adherence, higher = closer);
    - ``knn_overfit_nn``: 1 if G's nearest track is C's own track (copying, lower = more novel);
    - ``knn_overfit_rank``: 1 if C's own track is among G's top-k tracks.

    Queries are waveforms ``[B, C, T]`` (embedded with ``embedder``, per chunk if ``chunk_seconds``),
    embeddings ``[B, D]`` or chunk embeddings ``[B, N, D]`` when ``embedder`` is None. States are sums,
    reduced with ``"sum"`` under DDP; the database is replicated on every rank.

    Args:
        database_embeddings: Chunk embeddings of the reference database ``[N, D]``.
        database_track_ids: Track of each chunk ``[N]`` (a tensor of ints or a sequence of hashable ids).
        embedder: Embedding model for waveform queries (must match the database's embedding).
        k: Number of nearest tracks compared; at most the number of distinct tracks.
        distance: ``"cosine"`` (1 - cosine similarity) or ``"euclidean"``.
        chunk_seconds: Embed waveform queries in chunks of this length (``None``: one embedding per clip).
    """

    is_differentiable = False
    higher_is_better: bool | None = None
    full_state_update = False

    common_sum: Tensor
    overfit_nn_sum: Tensor
    overfit_rank_sum: Tensor
    count: Tensor
    database: Tensor
    chunk_track: Tensor

    def __init__(
        self,
        *,
        database_embeddings: Tensor,
        database_track_ids: Tensor | Sequence[Hashable],
        embedder: AudioEmbedder | None = None,
        k: int = 5,
        distance: Literal["cosine", "euclidean"] = "cosine",
        chunk_seconds: float | None = None,
    ) -> None:
        super().__init__()
        if database_embeddings.dim() != 2 or database_embeddings.shape[0] == 0:
            raise ValueError(
                f"database_embeddings must be [N, D] with N >= 1, got {tuple(database_embeddings.shape)}"
            )
        if not bool(torch.isfinite(database_embeddings).all()):
            raise ValueError("database_embeddings contain NaN or inf values")
        ids = (
            database_track_ids.tolist()
            if isinstance(database_track_ids, Tensor)
            else list(database_track_ids)
        )
        if len(ids) != database_embeddings.shape[0]:
            raise ValueError(
                f"database_track_ids has {len(ids)} entries, database_embeddings has {database_embeddings.shape[0]} rows"
            )
        self.track_index: dict[Hashable, int] = {}
        for tid in ids:
            self.track_index.setdefault(tid, len(self.track_index))
        self.num_tracks = len(self.track_index)
        if not 1 <= k <= self.num_tracks:
            raise ValueError(f"k must be in [1, {self.num_tracks}] (number of database tracks), got {k}")
        if distance not in ("cosine", "euclidean"):
            raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")
        if chunk_seconds is not None and not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        self.embedder = embedder
        self.k = k
        self.distance = distance
        self.chunk_seconds = chunk_seconds
        db = database_embeddings.detach().float()
        self.register_buffer(
            "database", F.normalize(db, dim=-1) if distance == "cosine" else db, persistent=False
        )
        chunk_track = torch.tensor([self.track_index[t] for t in ids], dtype=torch.long)
        self.register_buffer("chunk_track", chunk_track, persistent=False)
        for state in ("common_sum", "overfit_nn_sum", "overfit_rank_sum", "count"):
            self.add_state(state, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def _queries(self, x: Tensor, sample_rate: int | None, name: str) -> Tensor:
        """Waveforms or embeddings -> query embeddings ``[B, Nq, D]``."""
        if self.embedder is not None and x.dim() == 3:
            if self.chunk_seconds is None:
                q = self.embedder(x, sample_rate).unsqueeze(1)
            else:
                q = self.embedder.embed_chunks(x, self.chunk_seconds, sample_rate=sample_rate)
        elif x.dim() == 2:
            q = x.unsqueeze(1)
        elif x.dim() == 3:
            q = x
        else:
            raise ValueError(
                f"{name} must be waveforms [B, C, T], embeddings [B, D] or [B, N, D], got {tuple(x.shape)}"
            )
        if q.shape[-1] != self.database.shape[-1]:
            raise ValueError(
                f"{name}: embedding size {q.shape[-1]} differs from the database's {self.database.shape[-1]}"
            )
        if not bool(torch.isfinite(q).all()):
            raise ValueError(f"{name}: embeddings contain NaN or inf values")
        return q.detach().float().to(self.database.device)

    def track_distances(self, queries: Tensor) -> Tensor:
        """Query embeddings ``[B, Nq, D]`` -> distance to every database track ``[B, num_tracks]``."""
        if self.distance == "cosine":
            d = 1 - F.normalize(queries, dim=-1) @ self.database.T  # [B, Nq, N]
        else:
            d = torch.cdist(queries, self.database.unsqueeze(0).expand(queries.shape[0], -1, -1))
        d = d.amin(dim=1)  # [B, N]
        out = torch.full((d.shape[0], self.num_tracks), float("inf"), device=d.device, dtype=d.dtype)
        return out.scatter_reduce(1, self.chunk_track.expand_as(d), d, reduce="amin")

    def nearest_tracks(self, queries: Tensor) -> Tensor:
        """Indices of the ``k`` nearest tracks, nearest first ``[B, k]`` (indices into ``track_index``)."""
        return self.track_distances(queries).topk(self.k, dim=-1, largest=False).indices

    def update(
        self,
        cond: Tensor,
        gen: Tensor,
        cond_track_ids: Tensor | Sequence[Hashable],
        *,
        sample_rate: int | None = None,
    ) -> None:
        """Add pairs: conditioning excerpts and generations (waveforms ``[B, C, T]`` or embeddings) and
        the database track id of each excerpt ``[B]``."""
        ids = cond_track_ids.tolist() if isinstance(cond_track_ids, Tensor) else list(cond_track_ids)
        missing = [t for t in ids if t not in self.track_index]
        if missing:
            raise ValueError(f"cond_track_ids not in database_track_ids: {missing[:5]}")
        top_c = self.nearest_tracks(self._queries(cond, sample_rate, "cond"))
        top_g = self.nearest_tracks(self._queries(gen, sample_rate, "gen"))
        if top_c.shape[0] != len(ids) or top_g.shape[0] != len(ids):
            raise ValueError(
                f"batch sizes differ: cond {top_c.shape[0]}, gen {top_g.shape[0]}, cond_track_ids {len(ids)}"
            )
        own = torch.tensor([self.track_index[t] for t in ids], device=top_g.device)
        common = (top_c.unsqueeze(2) == top_g.unsqueeze(1)).any(dim=2).sum(dim=1).double() / self.k
        self.common_sum = self.common_sum + common.sum().to(self.common_sum.device)
        self.overfit_nn_sum = self.overfit_nn_sum + (top_g[:, 0] == own).sum().to(self.count.device)
        self.overfit_rank_sum = self.overfit_rank_sum + (top_g == own[:, None]).any(1).sum().to(
            self.count.device
        )
        self.count = self.count + len(ids)

    def compute(self) -> dict[str, Tensor]:
        """``{"knn_common", "knn_overfit_nn", "knn_overfit_rank"}`` averaged over pairs."""
        if float(self.count) == 0:
            raise ValueError("KNNStyleMetrics.compute() called before any update()")
        return {
            "knn_common": self.common_sum / self.count,
            "knn_overfit_nn": self.overfit_nn_sum / self.count,
            "knn_overfit_rank": self.overfit_rank_sum / self.count,
        }
