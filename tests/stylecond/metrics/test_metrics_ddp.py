"""Two gloo processes give the same FAD and KNN numbers as one process seeing all the data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from stylecond.metrics.fad import FrechetAudioDistance
from stylecond.metrics.knn import KNNStyleMetrics


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "real": torch.randn(40, 6, generator=g, dtype=torch.float64),
        "fake": 0.5 + 2 * torch.randn(40, 6, generator=g, dtype=torch.float64),
        "db": torch.randn(30, 6, generator=g),
        "db_ids": torch.arange(10).repeat_interleave(3),
        "cond": torch.randn(8, 6, generator=g),
        "gen": torch.randn(8, 6, generator=g),
        "cond_ids": torch.arange(8),
    }


def _compute(rank: int, world: int) -> dict[str, float]:
    d = _data()
    fad = FrechetAudioDistance()  # dim sized at the first update
    knn = KNNStyleMetrics(database_embeddings=d["db"], database_track_ids=d["db_ids"], k=3)
    fad.update(d["real"][rank::world], real=True)
    fad.update(d["fake"][rank::world], real=False)
    knn.update(d["cond"][rank::world], d["gen"][rank::world], d["cond_ids"][rank::world])
    out = {"fad": fad.compute().item()}
    out.update({k: v.item() for k, v in knn.compute().items()})
    return out


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.save(_compute(rank, world), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    single = _compute(0, 1)
    assert single["knn_common"] > 0 and single["fad"] > 1
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert got.keys() == single.keys()
        for key, value in single.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
