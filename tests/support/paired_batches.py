"""A data module whose ranks see different mixes of paired style references (for the DDP test)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from datamodules.batch import AudioBatch, AudioSample, collate
from datamodules.synth import SynthStyles


class RankMixedPairs(L.LightningDataModule):
    """Rank 0: every row has a paired ``style.<ext>`` reference; other ranks: every other row has one.

    Args:
        batches: training batches per rank; batch_size: rows per batch; sample_rate, seconds: the clips.
    """

    def __init__(
        self, *, batches: int = 3, batch_size: int = 4, sample_rate: int = 16000, seconds: float = 2.0
    ):
        super().__init__()
        self.batches, self.batch_size, self.sample_rate, self.seconds = (
            batches,
            batch_size,
            sample_rate,
            seconds,
        )

    def _batch(self, rank: int, index: int) -> AudioBatch:
        synth = SynthStyles(sample_rate=self.sample_rate, seed=rank)
        samples = []
        for row in range(self.batch_size):
            clip = synth.clip(["jazz", "rock"][row % 2], seconds=self.seconds, seed=100 * index + row)
            paired = rank == 0 or row % 2 == 0
            style = synth.clip("jazz", seconds=self.seconds, seed=7 + row).audio if paired else clip.audio
            mask = torch.ones(clip.audio.shape[-1], dtype=torch.bool)
            samples.append(AudioSample(key=f"r{rank}_{index}_{row}", text=f"{clip.style} music",
                                       sample_rate=self.sample_rate, audio=clip.audio, audio_mask=mask,
                                       style_audio=style * paired, style_mask=mask, has_style=paired))  # fmt: skip
        return collate(samples)

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return DataLoader([self._batch(rank, i) for i in range(self.batches)], batch_size=None)
