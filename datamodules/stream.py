"""The per-rank streaming dataset behind :class:`~datamodules.webdataset_audio.WebDatasetAudioDataModule`.

Training: shards are drawn with replacement (``wds.ResampledShards``), seeded by (seed, epoch, rank,
worker), so the stream never ends and the loader cuts it into equal-length epochs on every rank.
Evaluation: the shard list is split by rank, then by worker (``wds.split_by_worker``), each shard read
once in order, last partial batch kept: deterministic and complete.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from itertools import islice
from typing import Any

import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from datamodules.batch import AudioBatch, AudioSample, collate
from datamodules.processing import SampleProcessor
from datamodules.skips import SkipCounter, SkipSample

__all__ = ["AudioStream", "EpochLoader", "make_seed"]


def make_seed(*parts: Any) -> int:
    """A stable 63-bit seed from ``parts`` (``hash()`` of strings is salted per process; this is not)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little") >> 1


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
        shuffle_buffer: sample shuffle buffer size in training (<= 1 disables).
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
        self.skips = skips
        self.max_empty_shards = max(max_empty_shards, 2 * len(urls))
        self.max_consecutive_skips = max_consecutive_skips
        self.epoch = 0

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
            raw_samples = wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=rng)(raw_samples)
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
        worker = info.id if info is not None else 0
        worker_seed = make_seed(self.seed, self.epoch, self.rank, worker)
        rng = random.Random(worker_seed)
        frame_rate = self.processor.codes.frame_rate if self.processor.codes is not None else None
        batch: list[AudioSample] = []
        for sample in self._samples(rng, worker_seed):
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch, frame_rate=frame_rate)
                batch = []
        if batch and not self.train:
            yield collate(batch, frame_rate=frame_rate)


class EpochLoader:
    """Wraps a ``DataLoader`` over an :class:`AudioStream`: sets the epoch, cuts training epochs.

    A new ``DataLoader`` (and new workers, which receive the updated epoch) is built per pass.

    Args:
        stream: the dataset.
        num_workers: loader worker processes.
        batches_per_epoch: stop after this many batches (training); None runs to exhaustion.
        epoch_fn: returns the epoch for the next pass (e.g. the trainer's ``current_epoch``).
        context: multiprocessing context for the workers (must match the skip counter's).
        pin_memory: pin batches (for GPU training).
    """

    def __init__(
        self,
        *,
        stream: AudioStream,
        num_workers: int,
        batches_per_epoch: int | None,
        epoch_fn: Any,
        context: Any,
        pin_memory: bool = False,
    ) -> None:
        self.stream = stream
        self.num_workers = num_workers
        self.batches_per_epoch = batches_per_epoch
        self.epoch_fn = epoch_fn
        self.context = context
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        if self.batches_per_epoch is None:
            raise TypeError("evaluation loaders have no length: they read every shard once")
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[AudioBatch]:
        self.stream.epoch = int(self.epoch_fn())
        loader = DataLoader(
            self.stream,
            batch_size=None,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            multiprocessing_context=self.context if self.num_workers > 0 else None,
            persistent_workers=False,
        )
        iterator = iter(loader)
        count = 0
        try:
            while self.batches_per_epoch is None or count < self.batches_per_epoch:
                try:
                    batch = next(iterator)
                except StopIteration:
                    if self.batches_per_epoch is not None:
                        raise RuntimeError(f"the training stream ended after {count} of {self.batches_per_epoch}"
                                           " batches; shards may be empty or unreadable") from None  # fmt: skip
                    return
                count += 1
                yield batch
        finally:
            del iterator  # shuts the workers down (flushing their skip counts)
