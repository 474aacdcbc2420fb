"""Lightning DataModule streaming music (audio, captions, optional codes and style references) from WebDataset shards."""

from __future__ import annotations

import multiprocessing
import warnings
from typing import Any

import lightning as L
import webdataset as wds
from webdataset.shardlists import expand_urls

from datamodules.decoding import CodecExpectation
from datamodules.epoch_loader import EpochLoader
from datamodules.processing import SampleProcessor
from datamodules.skips import SkipCounter
from datamodules.stream import AudioStream
from datamodules.text_recipe import TextRecipe

__all__ = ["WebDatasetAudioDataModule", "expand_shards"]

SPLITS = ("train", "val", "test")


def expand_shards(shards: str | list[str], *, name: str) -> list[str]:
    """Expand brace patterns (``data/shard-{000000..000099}.tar``) and ``::``-joined lists into URLs."""
    items = [shards] if isinstance(shards, str) else list(shards)
    urls = [url for item in items for url in expand_urls(item)]
    if not urls:
        raise ValueError(f"{name} expands to no shard URL: {shards!r}")
    return urls


class WebDatasetAudioDataModule(L.LightningDataModule):
    """Music from WebDataset tar shards: random segments, captions, optional codes and style references.

    A sample is a group of tar members sharing a key: one audio member (``flac``, ``wav``, ``ogg`` or
    ``mp3``), a ``json`` member (``text`` plus optional ``genre``, ``moods``, ``bpm``, ``key``,
    ``instruments``, ``title``), optionally ``codes.npy`` (int16 ``[K, F]``, written by
    ``stylecond make-shards --pretokenize``) and a paired style reference ``style.<ext>``.
    Batches are :class:`~datamodules.batch.AudioBatch`. Shard URLs may be local paths, ``http(s)://``
    or ``pipe:`` commands (e.g. ``pipe:aws s3 cp s3://bucket/shard-000001.tar -``), with brace expansion.

    Training draws shards with replacement per rank and worker (seeded by seed, epoch, rank, worker), so
    every rank runs exactly ``samples_per_epoch // batch_size`` batches per epoch. The training loader is
    resumable: a run resumed from a mid-epoch checkpoint continues the stream where it stopped. Validation and test
    split the shard list by rank and worker and read every sample once (give at least world size x
    workers shards for an even spread). Bad samples are skipped with a warning and counted
    (:meth:`skip_counts`; log them with :class:`~datamodules.skip_logger.DataSkipLogger`).

    Args:
        train_shards: training shard URLs (pattern, ``::``-joined or list); None disables training.
        val_shards: validation shard URLs; None disables validation.
        test_shards: test shard URLs; None disables testing.
        sample_rate: output audio rate in Hz (audio is resampled to it).
        channels: output audio channels (1 = mono downmix).
        segment_seconds: length of the training/eval segments in seconds.
        batch_size: GLOBAL batch size, divided evenly across ranks (must be a multiple of the world size).
        num_workers: DataLoader worker processes per rank.
        samples_per_epoch: GLOBAL samples per training epoch (sets the equal per-rank batch count).
        min_length_ratio: skip tracks shorter than ``min_length_ratio * segment_seconds``; shorter
            kept tracks are zero-padded and masked.
        use_codes: read pre-tokenized ``codes.npy`` members (crops aligned with the audio).
        decode_audio: decode the audio members (False with ``use_codes``: codes-only, fastest).
        codec_frame_rate: frame rate (Hz) of the codes; required with ``use_codes``.
        codec_num_codebooks: number of codebooks K of the codes; required with ``use_codes``.
        codec_cardinality: codes must be below this; None skips the check.
        codec_id: expected json ``codec_id`` of pre-tokenized samples; None accepts any.
        style_seconds: length of the paired style reference in seconds; None does not load references.
        use_paired_style: use ``style.<ext>`` members when present (``has_style`` tells which samples have one).
        merge_metadata_p: training text recipe: probability of merging metadata fields into the text.
        drop_description_p: training text recipe: when merging, probability of dropping the description.
        drop_field_p: training text recipe: when merging, probability of dropping each metadata field.
        seed: base seed for shard sampling, shuffling, crops and text augmentation.
        shuffle_buffer: training sample shuffle buffer (samples held in memory as encoded bytes).
        shuffle_buffer_mb: cap on the bytes the shuffle buffer holds, per loader worker (long tracks in the
            shards fill it long before ``shuffle_buffer`` samples).
        pin_memory: pin batches in page-locked memory (GPU training).
        multiprocessing_context: worker start method (``fork``, ``spawn``, ``forkserver``); None = default.
    """

    def __init__(
        self,
        *,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        test_shards: str | list[str] | None = None,
        sample_rate: int = 32000,
        channels: int = 1,
        segment_seconds: float = 30.0,
        batch_size: int = 16,
        num_workers: int = 4,
        samples_per_epoch: int = 10_000,
        min_length_ratio: float = 0.5,
        use_codes: bool = False,
        decode_audio: bool = True,
        codec_frame_rate: float | None = None,
        codec_num_codebooks: int | None = None,
        codec_cardinality: int | None = None,
        codec_id: str | None = None,
        style_seconds: float | None = None,
        use_paired_style: bool = True,
        merge_metadata_p: float = 0.25,
        drop_description_p: float = 0.5,
        drop_field_p: float = 0.5,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        shuffle_buffer_mb: int = 512,
        pin_memory: bool = False,
        multiprocessing_context: str | None = None,
    ) -> None:
        super().__init__()
        checks = {"sample_rate": sample_rate, "channels": channels, "batch_size": batch_size,
                  "samples_per_epoch": samples_per_epoch}  # fmt: skip
        for arg, value in checks.items():
            if value < 1:
                raise ValueError(f"{arg} must be >= 1, got {value}")
        if not segment_seconds > 0:
            raise ValueError(f"segment_seconds must be > 0, got {segment_seconds}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if not 0.0 <= min_length_ratio <= 1.0:
            raise ValueError(f"min_length_ratio must be in [0, 1], got {min_length_ratio}")
        if style_seconds is not None and not style_seconds > 0:
            raise ValueError(f"style_seconds must be > 0 or None, got {style_seconds}")
        self.codec: CodecExpectation | None = None
        if use_codes:
            if codec_frame_rate is None or codec_num_codebooks is None:
                raise ValueError("use_codes=True needs codec_frame_rate and codec_num_codebooks")
            self.codec = CodecExpectation(num_codebooks=codec_num_codebooks, frame_rate=codec_frame_rate,
                                          cardinality=codec_cardinality, codec_id=codec_id)  # fmt: skip
        elif not decode_audio:
            raise ValueError("decode_audio=False needs use_codes=True (otherwise a batch would be empty)")
        self.shards = {"train": train_shards, "val": val_shards, "test": test_shards}
        for split, shards in self.shards.items():
            if shards is not None:
                expand_shards(shards, name=f"{split}_shards")
        self.sample_rate, self.channels, self.segment_seconds = sample_rate, channels, segment_seconds
        self.batch_size, self.num_workers, self.samples_per_epoch = batch_size, num_workers, samples_per_epoch
        self.min_length_ratio, self.decode_audio = min_length_ratio, decode_audio
        self.style_seconds, self.use_paired_style = style_seconds, use_paired_style
        self.text_recipe = TextRecipe(merge_metadata_p=merge_metadata_p, drop_description_p=drop_description_p,
                                      drop_field_p=drop_field_p)  # fmt: skip
        if shuffle_buffer_mb < 1:
            raise ValueError(f"shuffle_buffer_mb must be >= 1, got {shuffle_buffer_mb}")
        self.seed, self.shuffle_buffer, self.pin_memory = seed, shuffle_buffer, pin_memory
        self.shuffle_buffer_mb = shuffle_buffer_mb
        self.multiprocessing_context = multiprocessing_context
        self._skips: dict[str, list[SkipCounter]] = {s: [] for s in SPLITS}
        self._passes: dict[str, int] = {}
        self.save_hyperparameters()

    # ------------------------------------------------------------------ distribution
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is not None:
            return int(trainer.global_rank), int(trainer.world_size)
        rank, world, _, _ = wds.utils.pytorch_worker_info()
        return int(rank), int(world)

    def local_batch_size(self, world_size: int) -> int:
        """Per-rank batch size: ``batch_size // world_size`` (``ValueError`` if it does not divide)."""
        if self.batch_size % world_size != 0:
            raise ValueError(f"batch_size={self.batch_size} (global) is not divisible by the world size "
                             f"{world_size} (devices x nodes); choose a multiple of {world_size}")  # fmt: skip
        return self.batch_size // world_size

    def _epoch(self, split: str) -> int:
        if self.trainer is not None:
            return int(self.trainer.current_epoch)
        self._passes[split] = self._passes.get(split, -1) + 1
        return self._passes[split]

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str) -> EpochLoader | list[Any]:
        shards = self.shards[split]
        if shards is None:
            return []
        urls = expand_shards(shards, name=f"{split}_shards")
        rank, world = self._rank_and_world()
        local_bs = self.local_batch_size(world)
        train = split == "train"
        if not train and len(urls) < world:
            raise ValueError(
                f"{split}_shards has {len(urls)} shard(s) for {world} rank(s): a rank with no {split} data "
                "would leave the others waiting in their metric sync; give at least one shard per rank"
            )
        if not train and len(urls) < world * max(1, self.num_workers):
            warnings.warn(f"{split}_shards has {len(urls)} shard(s) for {world} rank(s) x "
                          f"{max(1, self.num_workers)} worker(s): some will read nothing", stacklevel=2)  # fmt: skip
        context = multiprocessing.get_context(self.multiprocessing_context) if self.num_workers > 0 else None
        skips = SkipCounter(context=context, split=split)
        self._skips[split].append(skips)
        processor = SampleProcessor(
            sample_rate=self.sample_rate, channels=self.channels, segment_seconds=self.segment_seconds,
            min_length_ratio=self.min_length_ratio, decode_audio=self.decode_audio, codes=self.codec,
            style_seconds=self.style_seconds, use_paired_style=self.use_paired_style,
            text_recipe=self.text_recipe if train else None, train=train,
        )  # fmt: skip
        stream = AudioStream(urls=urls, processor=processor, batch_size=local_bs, train=train, rank=rank,
                             world_size=world, seed=self.seed, shuffle_buffer=self.shuffle_buffer,
                             shuffle_buffer_mb=self.shuffle_buffer_mb, skips=skips)  # fmt: skip
        batches = max(1, self.samples_per_epoch // self.batch_size) if train else None
        return EpochLoader(stream=stream, num_workers=self.num_workers, batches_per_epoch=batches,
                           epoch_fn=lambda: self._epoch(split), context=context, pin_memory=self.pin_memory,
                           consumed_fn=self._consumed_batches if train and self.trainer is not None else None)  # fmt: skip

    def _consumed_batches(self) -> int:
        """Training batches of the current epoch the trainer has stepped on (from its public step count)."""
        trainer = self.trainer
        assert trainer is not None
        if trainer.num_training_batches == float("inf"):
            return 0
        per_epoch, accumulate = int(trainer.num_training_batches), int(trainer.accumulate_grad_batches)
        steps_per_epoch = -(-per_epoch // accumulate)  # Lightning steps on an epoch's last, partial window
        steps_in_epoch = trainer.global_step - trainer.current_epoch * steps_per_epoch
        return max(0, min(steps_in_epoch * accumulate, per_epoch))

    def train_dataloader(self) -> EpochLoader:
        """Endless resampled stream cut into ``samples_per_epoch // batch_size`` batches per rank."""
        if self.shards["train"] is None:
            raise ValueError("train_shards is not set: give training shard URLs to fit")
        loader = self._loader("train")
        assert isinstance(loader, EpochLoader)
        return loader

    def val_dataloader(self) -> EpochLoader | list[Any]:
        """Every validation sample once, deterministic crops (offset 0) and plain json text."""
        return self._loader("val")

    def test_dataloader(self) -> EpochLoader | list[Any]:
        """Every test sample once, like validation."""
        return self._loader("test")

    def predict_dataloader(self) -> EpochLoader | list[Any]:
        """``stylecond predict`` reads the test shards: every sample once, deterministic crops."""
        if self.shards["test"] is None:
            raise ValueError("test_shards is not set: predict reads the test shards")
        return self._loader("test")

    # ------------------------------------------------------------------ skips
    def skip_counts(self, split: str | None = None) -> dict[str, int]:
        """Skipped samples by reason in this process (all workers), for one split or summed over splits."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        totals: dict[str, int] = {}
        for name, counters in self._skips.items():
            for counter in counters if split is None or name == split else []:
                for reason, n in counter.totals().items():
                    totals[reason] = totals.get(reason, 0) + n
        return totals
