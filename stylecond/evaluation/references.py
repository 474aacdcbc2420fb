"""Reference samples for evaluation: whole tracks with their texts, ids and labels, from shards or a folder.

Each reference is one track ``[C, T]`` (at most ``max_seconds`` long) at the model's rate and channels,
its text, its id (the shard key, or the file's relative path) and an optional style label read from its
metadata. The conditioning excerpt of a reference is a ``excerpt_seconds`` window in its middle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylecond.audio import AudioError, crop_or_pad, load_audio

__all__ = ["AUDIO_SUFFIXES", "DEFAULT_LABEL_FIELDS", "ReferenceSet", "find_label", "load_references"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
#: Metadata fields tried in order for a style label (dots walk into nested objects).
DEFAULT_LABEL_FIELDS: tuple[str, ...] = ("style", "synth.style", "genre")


def find_label(metadata: Mapping[str, Any], fields: Sequence[str] = DEFAULT_LABEL_FIELDS) -> str | None:
    """The first non-empty string (or number) found at one of ``fields`` in ``metadata``, else None."""
    for name in fields:
        value: Any = metadata
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    return None


@dataclass
class ReferenceSet:
    """Reference tracks and what describes them (all lists have one entry per track).

    Attributes:
        tracks: ``[C, T_i]`` float32 waveforms at ``sample_rate``.
        texts: the text of each track.
        track_ids: unique id of each track (shard key / relative path).
        labels: style label of each track, or None when not every track has one.
        metadata: the json metadata of each track.
        sample_rate: rate of ``tracks`` in Hz.
        source: where the references came from (for the report).
    """

    tracks: list[Tensor]
    texts: list[str]
    track_ids: list[str]
    sample_rate: int
    labels: list[str] | None = None
    metadata: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.tracks)
        if n == 0:
            raise ValueError("a ReferenceSet needs at least one track")
        for name in ("texts", "track_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} tracks")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"labels has {len(self.labels)} entries for {n} tracks")
        if len(set(self.track_ids)) != n:
            raise ValueError("track_ids must be unique")
        for i, wav in enumerate(self.tracks):
            if wav.dim() != 2 or wav.shape[-1] == 0:
                raise ValueError(f"tracks[{i}] ({self.track_ids[i]}) must be a non-empty [C, T] tensor")

    def __len__(self) -> int:
        return len(self.tracks)

    def seconds(self, i: int) -> float:
        return self.tracks[i].shape[-1] / self.sample_rate

    def excerpt(self, i: int, seconds: float) -> Tensor:
        """The middle ``seconds`` of track ``i`` ``[C, L]`` (zero-padded if the track is shorter)."""
        length = max(1, round(seconds * self.sample_rate))
        wav = self.tracks[i]
        offset = max(0, (wav.shape[-1] - length) // 2)
        return crop_or_pad(wav, length, offset=offset)[0]

    def excerpts(self, indices: Sequence[int], seconds: float) -> Tensor:
        """Middle excerpts of the given tracks ``[B, C, L]``."""
        return torch.stack([self.excerpt(i, seconds) for i in indices])

    def crops(self, seconds: float) -> Tensor:
        """Every track cropped/padded to its first ``seconds`` ``[N, C, L]`` (for batched embedding)."""
        length = max(1, round(seconds * self.sample_rate))
        return torch.stack([crop_or_pad(w, length)[0] for w in self.tracks])

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": len(self),
            "sample_rate": self.sample_rate,
            "seconds": round(sum(self.seconds(i) for i in range(len(self))), 3),
            "labels": None if self.labels is None else sorted(set(self.labels)),
        }


def _finish(
    tracks: list[Tensor], texts: list[str], ids: list[str], metas: list[dict[str, Any]], *,
    sample_rate: int, label_fields: Sequence[str], source: str,
) -> ReferenceSet:  # fmt: skip
    labels = [find_label(m, label_fields) for m in metas]
    clean = [x for x in labels if x is not None]
    return ReferenceSet(
        tracks=tracks, texts=texts, track_ids=ids, sample_rate=sample_rate, metadata=metas, source=source,
        labels=clean if len(clean) == len(labels) else None,
    )  # fmt: skip


def _from_folder(
    folder: Path, *, num_samples: int, sample_rate: int, channels: int, max_seconds: float,
    min_seconds: float, label_fields: Sequence[str],
) -> ReferenceSet:  # fmt: skip
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"--data: {folder} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    tracks: list[Tensor] = []
    texts: list[str] = []
    ids: list[str] = []
    metas: list[dict[str, Any]] = []
    for path in files:
        if len(tracks) >= num_samples:
            break
        try:
            wav, _ = load_audio(path, sample_rate=sample_rate, channels=channels)
        except AudioError as err:
            raise ValueError(f"--data: {err}") from err
        if wav.shape[-1] < min_seconds * sample_rate:
            continue
        meta: dict[str, Any] = {}
        side_json, side_txt = path.with_suffix(".json"), path.with_suffix(".txt")
        if side_json.is_file():
            loaded = json.loads(side_json.read_text())
            meta = loaded if isinstance(loaded, dict) else {}
        text = str(meta.get("text") or (side_txt.read_text().strip() if side_txt.is_file() else ""))
        tracks.append(wav[:, : max(1, round(max_seconds * sample_rate))])
        texts.append(text)
        ids.append(str(path.relative_to(folder)))
        metas.append(meta)
    return _finish(
        tracks, texts, ids, metas, sample_rate=sample_rate, label_fields=label_fields, source=str(folder)
    )


def _from_shards(
    shards: str, *, num_samples: int, sample_rate: int, channels: int, max_seconds: float,
    min_seconds: float, label_fields: Sequence[str],
) -> ReferenceSet:  # fmt: skip
    from datamodules.webdataset_audio import WebDatasetAudioDataModule

    dm = WebDatasetAudioDataModule(
        test_shards=shards, sample_rate=sample_rate, channels=channels, segment_seconds=max_seconds,
        batch_size=1, num_workers=0, min_length_ratio=min(1.0, min_seconds / max_seconds),
    )  # fmt: skip
    tracks: list[Tensor] = []
    texts: list[str] = []
    ids: list[str] = []
    metas: list[dict[str, Any]] = []
    for batch in dm.test_dataloader():
        for j in range(len(batch)):
            if len(tracks) >= num_samples:
                break
            assert batch.audio is not None
            wav = batch.audio[j]
            if batch.audio_mask is not None:
                wav = wav[:, : max(1, int(batch.audio_mask[j].sum()))]
            meta = dict(batch.metadata[j])
            key = batch.keys[j]
            tid = key if key not in ids else f"{Path(str(meta.get('__url__', ''))).name}/{key}"
            tracks.append(wav.float().clone())
            texts.append(batch.texts[j])
            ids.append(tid)
            metas.append(meta)
        if len(tracks) >= num_samples:
            break
    skipped = dm.skip_counts("test")
    if not tracks:
        raise ValueError(f"--data: no usable sample in {shards!r} (skipped: {skipped or 'none'})")
    return _finish(
        tracks, texts, ids, metas, sample_rate=sample_rate, label_fields=label_fields, source=shards
    )


def load_references(
    data: str | Path,
    *,
    num_samples: int,
    sample_rate: int,
    channels: int = 1,
    max_seconds: float = 30.0,
    min_seconds: float = 0.0,
    label_fields: Sequence[str] = DEFAULT_LABEL_FIELDS,
) -> ReferenceSet:
    """Read up to ``num_samples`` references from WebDataset shards or a folder of audio files.

    Args:
        data: shard URLs (pattern, ``::``-joined list, ``pipe:``) or a folder of audio files (with optional
            sidecar ``<name>.json`` holding ``text`` and labels, or ``<name>.txt`` holding the text).
        num_samples: how many references to read (the first ones, in order).
        sample_rate: output rate in Hz (the model's); channels: output channels.
        max_seconds: tracks are cut to this length; min_seconds: shorter tracks are skipped.
        label_fields: metadata fields tried for a style label (see :func:`find_label`).
    """
    if num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {num_samples}")
    if not max_seconds > 0 or min_seconds > max_seconds:
        raise ValueError(
            f"need 0 <= min_seconds <= max_seconds and max_seconds > 0, got {min_seconds}, {max_seconds}"
        )
    kwargs: dict[str, Any] = dict(num_samples=num_samples, sample_rate=sample_rate, channels=channels,
                                  max_seconds=max_seconds, min_seconds=min_seconds, label_fields=label_fields)  # fmt: skip
    path = Path(str(data))
    if path.is_dir():
        return _from_folder(path, **kwargs)
    return _from_shards(str(data), **kwargs)
