"""Reference tracks for textual inversion: encoded once, then cropped into random chunks of codes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from stylecond.audio import check_finite, convert_channels, load_audio, resample

AudioSource = Tensor | str | PathLike[str]


def load_reference(
    source: AudioSource, *, codec: Any, sample_rate: int | None = None, index: int = 0
) -> Tensor:
    """``source`` (``[C, T]`` tensor at ``sample_rate`` or an audio file) -> ``[C', T']`` at the codec's rate."""
    if isinstance(source, (str, PathLike)):
        wav, _ = load_audio(Path(source), sample_rate=int(codec.sample_rate), channels=int(codec.channels))
        return wav
    if not isinstance(source, Tensor) or source.dim() != 2 or source.shape[-1] == 0:
        got = tuple(source.shape) if isinstance(source, Tensor) else type(source).__name__
        raise ValueError(f"audio[{index}] must be a [C, T] tensor (T > 0) or an audio file path; got {got}")
    check_finite(source, f"audio[{index}]")
    wav = source.float()
    rate = int(sample_rate or codec.sample_rate)
    if rate != int(codec.sample_rate):
        wav = resample(wav, rate, int(codec.sample_rate))
    return convert_channels(wav, int(codec.channels))


@torch.no_grad()
def encode_references(
    audio: Sequence[AudioSource], *, codec: Any, sample_rate: int | None = None, block_seconds: float = 60.0
) -> list[Tensor]:
    """Encode whole reference tracks once: a list of codes ``[K, F_i]`` (long, on CPU).

    Tracks longer than ``block_seconds`` are encoded in blocks (a whole number of codec frames each).
    """
    if isinstance(audio, (str, Tensor, PathLike)) or len(audio) == 0:
        raise ValueError("audio must be a non-empty list of [C, T] tensors or audio file paths")
    device = next((b.device for b in codec.buffers()), torch.device("cpu"))
    hop = int(codec.hop_length)
    block = max(hop, int(block_seconds * codec.sample_rate) // hop * hop)
    out = []
    for i, source in enumerate(audio):
        wav = load_reference(source, codec=codec, sample_rate=sample_rate, index=i)
        parts = [
            codec.encode(wav[None, :, s : s + block].to(device))[0].cpu()
            for s in range(0, wav.shape[-1], block)
        ]
        codes = torch.cat(parts, dim=-1).long()
        if codes.shape[-1] < 1:
            raise ValueError(f"audio[{i}] is too short to give a single codec frame")
        out.append(codes)
    return out


def sample_chunks(
    codes: Sequence[Tensor], *, batch_size: int, chunk_frames: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Random chunks of the reference codes: ``codes [B, K, T]`` and ``padding_mask [B, T]`` (True = real).

    A track is drawn with probability proportional to its length, then a uniform start; tracks shorter
    than ``chunk_frames`` give their whole length, right-padded with code 0 and masked out.
    """
    lengths = torch.tensor([c.shape[-1] for c in codes], dtype=torch.float)
    length = int(min(chunk_frames, int(lengths.max())))
    k = int(codes[0].shape[0])
    batch = torch.zeros(batch_size, k, length, dtype=torch.long)
    mask = torch.zeros(batch_size, length, dtype=torch.bool)
    tracks = torch.multinomial(lengths, batch_size, replacement=True, generator=generator)
    for row, t in enumerate(tracks.tolist()):
        track = codes[t]
        n = min(length, track.shape[-1])
        start = int(torch.randint(track.shape[-1] - n + 1, (1,), generator=generator))
        batch[row, :, :n] = track[:, start : start + n]
        mask[row, :n] = True
    return batch, mask


class ReferenceChunks(IterableDataset):
    """Endless stream of random reference chunks ``(codes [K, T], padding_mask [T])`` for a DataLoader.

    Use with ``DataLoader(ds, batch_size=None)``: each item is already a batch
    ``(codes [B, K, T], padding_mask [B, T])`` from :func:`sample_chunks`.

    Args:
        codes: encoded reference tracks ``[K, F_i]`` (see :func:`encode_references`).
        batch_size: chunks per batch.
        chunk_frames: frames per chunk.
        seed: seed of the chunk sampling (each worker offsets it by its id).
    """

    def __init__(self, *, codes: Sequence[Tensor], batch_size: int, chunk_frames: int, seed: int = 0) -> None:
        super().__init__()
        if not codes:
            raise ValueError("codes must hold at least one encoded reference track")
        self.codes = list(codes)
        self.batch_size = int(batch_size)
        self.chunk_frames = int(chunk_frames)
        self.seed = int(seed)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        info = torch.utils.data.get_worker_info()
        g = torch.Generator().manual_seed(self.seed + (0 if info is None else 7919 * (info.id + 1)))
        while True:
            yield sample_chunks(
                self.codes, batch_size=self.batch_size, chunk_frames=self.chunk_frames, generator=g
            )
