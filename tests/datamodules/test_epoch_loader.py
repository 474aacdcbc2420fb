"""The training loader resumes mid-epoch: it skips the batches already trained on instead of replaying them."""

from __future__ import annotations

from typing import Any

import pytest

from datamodules.epoch_loader import EpochLoader
from datamodules.webdataset_audio import WebDatasetAudioDataModule


def _loader(pattern: str, **kw: Any) -> EpochLoader:
    args: dict[str, Any] = dict(train_shards=pattern, sample_rate=16000, segment_seconds=0.5, batch_size=2,
                                samples_per_epoch=14, shuffle_buffer=4, min_length_ratio=0.0)  # fmt: skip
    args.update(kw)
    return WebDatasetAudioDataModule(**args).train_dataloader()


def _keys(loader: EpochLoader) -> list[tuple[str, ...]]:
    return [tuple(b.keys) for b in loader]


@pytest.mark.parametrize("workers", [0, 3])
def test_resume_mid_epoch_continues_the_stream(make_shards: Any, workers: int) -> None:
    pattern = make_shards(2, 4, seconds=1.0)
    full = _keys(_loader(pattern, num_workers=workers))
    assert len(full) == 7 and len(set(full)) > 1
    for done in (1, 4, 5):  # with 3 workers: resumed in the middle of each worker's share
        loader = _loader(pattern, num_workers=workers)
        loader.load_state_dict(
            {"epoch": 0, "batches": done, "seed": 0, "batch_size": 2, "world_size": 1, "rank": 0}
        )
        assert _keys(loader) == full[done:], done
        assert len(_keys(loader)) == 7  # the skip applies once: the next epoch is whole


def test_state_dict_round_trip_and_its_limits(make_shards: Any) -> None:
    pattern = make_shards(2, 4, seconds=1.0)
    loader = _loader(pattern)
    iterator = iter(loader)
    next(iterator), next(iterator)
    state = loader.state_dict()  # without a trainer it counts the batches it handed out
    assert state == {"epoch": 0, "batches": 2, "seed": 0, "batch_size": 2, "world_size": 1, "rank": 0}
    resumed = _loader(pattern)
    resumed.load_state_dict(state)
    assert [tuple(b.keys) for b in iterator] == _keys(resumed)

    other_epoch = _loader(pattern)
    other_epoch.load_state_dict(
        {**state, "epoch": 5}
    )  # an epoch's end-of-epoch checkpoint resumes into the next
    assert _keys(other_epoch) == _keys(_loader(pattern))

    changed = _loader(pattern, batch_size=4, samples_per_epoch=28)
    with pytest.warns(UserWarning, match=r"batch_size 2 -> 4.*from the start of the epoch"):
        changed.load_state_dict(state)
    assert len(_keys(changed)) == 7
