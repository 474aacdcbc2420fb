from __future__ import annotations

import pytest
import torch

from stylecond.metrics.embedders.mel_stats import MelStatsEmbedder
from stylecond.metrics.knn import KNNStyleMetrics


def _line_database() -> tuple[torch.Tensor, list[str]]:
    """Tracks on a line: A near 0, B near 1, C near 2, D far away; two chunks per track."""
    xs = [0.0, 0.05, 1.0, 1.05, 2.0, 2.05, 10.0, 10.05]
    ids = ["A", "A", "B", "B", "C", "C", "D", "D"]
    return torch.tensor(xs).unsqueeze(-1), ids


def test_known_answers_euclidean() -> None:
    db, ids = _line_database()
    metric = KNNStyleMetrics(database_embeddings=db, database_track_ids=ids, k=2, distance="euclidean")
    cond = torch.tensor([[0.1], [0.1]])  # both excerpts from A: top-2 = {A, B}
    gen = torch.tensor([[1.9], [0.02]])  # top-2 = {C, B} (no copy) and {A, B} (copy)
    metric.update(cond, gen, ["A", "A"])
    out = metric.compute()
    assert out["knn_common"].item() == pytest.approx((0.5 + 1.0) / 2)
    assert out["knn_overfit_nn"].item() == pytest.approx(0.5)
    assert out["knn_overfit_rank"].item() == pytest.approx(0.5)
    # A generation nearest to B, with A second: copies by rank, not by nearest neighbour.
    metric.reset()
    metric.update(torch.tensor([[0.1]]), torch.tensor([[0.6]]), ["A"])
    out = metric.compute()
    assert (out["knn_overfit_nn"].item(), out["knn_overfit_rank"].item(), out["knn_common"].item()) == (
        0.0,
        1.0,
        1.0,
    )


def test_track_distance_is_nearest_chunk_and_chunked_queries() -> None:
    db = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    metric = KNNStyleMetrics(database_embeddings=db, database_track_ids=torch.tensor([7, 7, 8, 9]), k=1)
    d = metric.track_distances(torch.tensor([[[0.0, 2.0]]]))  # [1, 1, 2]: cosine distance to each track
    assert d[0, metric.track_index[7]].item() == pytest.approx(0.0, abs=1e-6)  # via its second chunk
    assert d[0, metric.track_index[9]].item() == pytest.approx(1.0, abs=1e-6)
    # Query with two chunks: the closest pair decides.
    cond = torch.tensor([[[-1.0, 0.1], [0.0, -1.0]]])  # nearest: track 9
    gen = torch.tensor([[[0.6, 0.8], [0.0, -1.0]]])  # nearest: track 8
    metric.update(cond, gen, torch.tensor([9]))
    assert metric.compute()["knn_common"].item() == 0.0


def test_waveform_queries_use_embedder() -> None:
    emb = MelStatsEmbedder(sample_rate=8000, n_mels=8, n_fft=256, hop_length=128)
    g = torch.Generator().manual_seed(0)
    tracks = [torch.randn(1, 1, 4000, generator=g) * s for s in (0.01, 0.1, 1.0)]
    db = torch.cat([emb.embed_chunks(t, 0.1).squeeze(0) for t in tracks])  # 5 chunks per track
    ids = torch.arange(3).repeat_interleave(5)
    metric = KNNStyleMetrics(
        database_embeddings=db, database_track_ids=ids, embedder=emb, k=1, chunk_seconds=0.1
    )
    cond, gen = tracks[2][..., :800], tracks[2][..., 800:2400]  # generation copies the conditioning track
    metric.update(cond, gen, torch.tensor([2]), sample_rate=8000)
    out = metric.compute()
    assert out["knn_overfit_nn"].item() == 1.0 and out["knn_common"].item() == 1.0


def test_errors() -> None:
    db, ids = _line_database()
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        KNNStyleMetrics(database_embeddings=db, database_track_ids=ids, k=5)
    with pytest.raises(ValueError, match="entries"):
        KNNStyleMetrics(database_embeddings=db, database_track_ids=ids[:-1])
    metric = KNNStyleMetrics(database_embeddings=db, database_track_ids=ids, k=2)
    with pytest.raises(ValueError, match="not in database"):
        metric.update(torch.zeros(1, 1), torch.zeros(1, 1), ["Z"])
    with pytest.raises(ValueError, match="embedding size"):
        metric.update(torch.zeros(1, 3), torch.zeros(1, 3), ["A"])
    with pytest.raises(ValueError, match="batch sizes"):
        metric.update(torch.zeros(2, 1), torch.zeros(1, 1), ["A", "B"])
