"""The per-rank streaming dataset behind :class:`~datamodules.webdataset_audio.WebDatasetAudioDataModule`.

Training: shards are drawn with replacement (``wds.ResampledShards``), seeded by (seed, epoch, rank,
worker), so the stream never ends and the loader cuts it into equal-length epochs on every rank.
Evaluation: the shard list is split by rank, then by worker (``wds.split_by_worker``), each shard read
once in order, last partial batch kept: deterministic and complete.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice
from typing import Any

import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from datamodules.batch import AudioBatch, AudioSample, collate
from datamodules.processing import SampleProcessor
from datamodules.shuffle import bounded_shuffle
from datamodules.skips import SkipCounter, SkipSample
from stylecond.utils.seeds import make_seed

__all__ = ["AudioStream", "make_seed"]


class AudioStream(IterableDataset):
    """Iterable of :class:`AudioBatch` for one rank (runs in the main process or in loader workers).

    Args:
        urls: expanded shard URLs.
        processor: per-sample decoding/cropping.
        batch_size: per-rank batch size.
        train: resampled shards, shuffling, dropped partial batches; else one ordered complete pass.
        rank: this process's rank; world_size: number of ranks (captured in the main process, so
            workers started with ``spawn`` still split correctly).
        seed: base seed; the epoch is set before each pass through :attr:`epoch`.
        :attr:`skip_batches` (set before a pass) drops the pass's first batches: a resumed run continues
        the stream where it stopped instead of replaying it.
        shuffle_buffer: sample shuffle buffer size in training (<= 1 disables).
        shuffle_buffer_mb: cap on the encoded bytes the shuffle buffer holds.
        skips: where skipped samples are counted.
        max_empty_shards: training aborts after this many consecutive unreadable shards.
        max_consecutive_skips: training aborts after this many consecutive skipped samples.
    """

    def __init__(
        self,
        *,
        urls: list[str],
        processor: SampleProcessor,
        batch_size: int,
        train: bool,
        rank: int,
        world_size: int,
        seed: int,
        shuffle_buffer: int,
        shuffle_buffer_mb: int = 512,
        skips: SkipCounter,
        max_empty_shards: int = 100,
        max_consecutive_skips: int = 10_000,
    ) -> None:
        super().__init__()
        self.urls = urls
        self.processor = processor
        self.batch_size = batch_size
        self.train = train
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.shuffle_buffer_mb = shuffle_buffer_mb
        self.skips = skips
        self.max_empty_shards = max(max_empty_shards, 2 * len(urls))
        self.max_consecutive_skips = max_consecutive_skips
        self.epoch = 0
        self.skip_batches = 0

    def _split_by_node(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``wds.split_by_node`` with the rank captured at loader creation."""
        return islice(src, self.rank, None, self.world_size) if self.world_size > 1 else src

    def _shards(self, worker_seed: int) -> Iterator[dict[str, Any]]:
        if self.train:
            return iter(wds.ResampledShards(self.urls, worker_seed=lambda: worker_seed, deterministic=True))
        return wds.split_by_worker(self._split_by_node(iter([{"url": u} for u in self.urls])))

    def _samples(self, rng: random.Random, worker_seed: int) -> Iterator[AudioSample]:
        empty_shards = 0

        def counted(shards: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal empty_shards
            for shard in shards:
                empty_shards += 1
                if self.train and empty_shards > self.max_empty_shards:
                    raise RuntimeError(f"{self.max_empty_shards} consecutive training shards held no readable "
                                       f"sample (last {shard['url']!r}); skips: {self.skips.totals()}")  # fmt: skip
                yield shard

        def readable(raw_samples: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            nonlocal empty_shards
            for raw in raw_samples:
                empty_shards = 0
                yield raw

        raw_samples = readable(
            wds.tarfile_to_samples(handler=self.skips.handler)(counted(self._shards(worker_seed)))
        )
        if self.train and self.shuffle_buffer > 1:
            raw_samples = bounded_shuffle(raw_samples, bufsize=self.shuffle_buffer, rng=rng,
                                          max_bytes=self.shuffle_buffer_mb * 1_000_000)  # fmt: skip
        skipped_in_a_row = 0
        for raw in raw_samples:
            try:
                sample = self.processor(raw, rng)
            except SkipSample as skip:
                url, key = str(raw.get("__url__")), str(raw.get("__key__"))
                self.skips.record(skip.reason, url=url, key=key, detail=skip.detail)
                skipped_in_a_row += 1
                if self.train and skipped_in_a_row > self.max_consecutive_skips:
                    raise RuntimeError(f"{self.max_consecutive_skips} consecutive training samples were skipped; "
                                       f"skips: {self.skips.totals()}") from skip  # fmt: skip
                continue
            skipped_in_a_row = 0
            yield sample

    def __iter__(self) -> Iterator[AudioBatch]:
        info = get_worker_info()
        workers = info.num_workers if info is not None else 1
        # the loader takes its batch j from worker j % W, and the uninterrupted pass's batch i came from
        # worker i % W: after skipping S batches, loader worker w continues the stream of worker (w + S) % W,
        # which had made ceil((S - that worker) / W) of the first S batches
        worker = ((info.id if info is not None else 0) + self.skip_batches) % workers
        to_skip = max(0, -(-(self.skip_batches - worker) // workers))
        worker_seed = make_seed(self.seed, self.epoch, self.rank, worker)
        rng = random.Random(worker_seed)
        frame_rate = self.processor.codes.frame_rate if self.processor.codes is not None else None
        batch: list[AudioSample] = []
        for sample in self._samples(rng, worker_seed):
            batch.append(sample)
            if len(batch) == self.batch_size:
                if to_skip > 0:  # made and dropped: crops and text draws stay where they were
                    to_skip -= 1
                else:
                    yield collate(batch, frame_rate=frame_rate)
                batch = []
        if batch and not self.train:
            yield collate(batch, frame_rate=frame_rate)
