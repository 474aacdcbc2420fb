"""Write WebDataset tar shards of music (audio + json caption, optionally ``codes.npy``), resumably.

Each shard is written to a hidden temporary name and renamed when complete, so a killed run leaves
no half shard and a re-run with the same inputs and settings skips the finished ones. ``index.json``
(rewritten after every shard) lists the shard names, sample counts and seconds of audio.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from datamodules.track_catalog import SynthItem, TrackItem
from stylecond.audio import convert_channels, load_audio, resample

__all__ = ["ShardResult", "ShardWriter", "WriterOptions", "write_shard"]

INDEX_NAME = "index.json"
Item = TrackItem | SynthItem


@dataclass(frozen=True)
class WriterOptions:
    """How samples are written (part of the resume fingerprint).

    Attributes:
        sample_rate: stored audio rate (Hz); None keeps each file's rate (must equal the codec's if any).
        channels: stored channels; None keeps each file's channels.
        audio_format: ``flac`` or ``wav`` (16-bit PCM).
        codec: codec spec (``mel:DIR``, ``encodec:NAME``) for ``--pretokenize``, or None.
        synth_seconds: clip length of synthetic items; synth_seed: their base seed.
    """

    sample_rate: int | None = None
    channels: int | None = None
    audio_format: str = "flac"
    codec: str | None = None
    synth_seconds: float = 10.0
    synth_seed: int = 0

    def __post_init__(self) -> None:
        if self.audio_format not in ("flac", "wav"):
            raise ValueError(f"--format must be flac or wav, got {self.audio_format!r}")
        if self.sample_rate is not None and not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"--sample-rate must be in 8000..192000 Hz, got {self.sample_rate}")
        if self.channels is not None and self.channels < 1:
            raise ValueError(f"--channels must be >= 1, got {self.channels}")
        if not (self.synth_seconds > 0 and math.isfinite(self.synth_seconds)):
            raise ValueError(f"--seconds must be a positive number of seconds, got {self.synth_seconds}")


def merge_skips(*parts: dict[str, list[str]]) -> dict[str, list[str]]:
    """Skipped names by reason, merged in order (reasons sorted)."""
    out: dict[str, list[str]] = {}
    for part in parts:
        for reason, names in part.items():
            out.setdefault(reason, []).extend(names)
    return dict(sorted(out.items()))


@dataclass
class ShardResult:
    """Outcome of one shard: written samples, their seconds, skipped item keys by reason."""

    name: str
    samples: int
    seconds: float
    skipped: dict[str, list[str]] = field(default_factory=dict)
    resumed: bool = False


_CODECS: dict[str, Any] = {}


def _codec(spec: str) -> Any:
    if spec not in _CODECS:
        from datamodules.codec_loaders import load_codec

        _CODECS[spec] = load_codec(spec).eval()
    return _CODECS[spec]


def _read_item(item: Item, opts: WriterOptions) -> tuple[torch.Tensor, int, str, dict[str, Any]]:
    """``(wav [C, T], rate, text, json fields)``; raises ValueError with a skip reason prefix."""
    if isinstance(item, SynthItem):
        from datamodules.synth import STYLES, SynthStyles

        synth = SynthStyles(sample_rate=opts.sample_rate or 16000, seed=opts.synth_seed)
        clip = synth.clip(STYLES[item.index % len(STYLES)], seconds=opts.synth_seconds,
                          seed=opts.synth_seed * 1_000_003 + item.index)  # fmt: skip
        a = clip.attributes
        meta = {"genre": clip.style, "bpm": a.get("bpm"), "key": f"{a.get('key', '')} {a.get('mode', '')}".strip(),
                "instruments": [a["instrument"]] if a.get("instrument") else [], "synth": a}  # fmt: skip
        return clip.audio.float(), clip.sample_rate, clip.caption, meta
    try:
        data, rate = sf.read(item.path, start=item.start, frames=item.frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ValueError(f"unreadable: {err}") from None
    if data.shape[0] == 0:
        raise ValueError("unreadable: zero samples decoded")
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if not bool(torch.isfinite(wav).all()):
        raise ValueError("nonfinite: NaN or inf samples")
    meta = {**item.metadata, "source": item.source, "segment": item.segment,
            "offset_seconds": item.start / rate}  # fmt: skip
    return wav, int(rate), item.text, meta


def _label(item: Item) -> str:
    """How reports name an item: its input file (and where the segment starts), or its synthetic key."""
    if isinstance(item, SynthItem):
        return item.key
    return item.source if item.segment == 0 else f"{item.source} @ {item.start / item.file_rate:.1f} s"


def _encode_sample(item: Item, opts: WriterOptions) -> tuple[dict[str, bytes], float]:
    wav, rate, text, meta = _read_item(item, opts)
    if opts.channels is not None:
        wav = convert_channels(wav, opts.channels)
    codec = _codec(opts.codec) if opts.codec else None
    target = opts.sample_rate or (codec.sample_rate if codec is not None else rate)
    if codec is not None and target != codec.sample_rate:
        raise ValueError(
            f"codec_rate: stored rate {target} Hz differs from the codec's {codec.sample_rate} Hz"
        )
    wav = resample(wav, rate, target).clamp(-1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, wav.T.numpy(), target, format=opts.audio_format.upper(), subtype="PCM_16")
    members = {opts.audio_format: buf.getvalue()}
    seconds = wav.shape[-1] / target
    meta = {k: v for k, v in meta.items() if v is not None}
    meta.update(text=text, duration=seconds, sample_rate=target, channels=wav.shape[0])
    if codec is not None:  # encode exactly what readers will decode (the 16-bit file)
        stored, _ = load_audio(members[opts.audio_format], channels=codec.channels, name=item.key)
        with torch.no_grad():
            codes = codec.encode(stored.unsqueeze(0))[0]  # [K, F]
        if codec.cardinality > 32768:
            raise ValueError(f"codec_card: cardinality {codec.cardinality} does not fit int16 codes")
        npy = io.BytesIO()
        np.save(npy, codes.cpu().numpy().astype(np.int16), allow_pickle=False)
        members["codes.npy"] = npy.getvalue()
        meta.update(codec_id=codec.codec_id, codec_frame_rate=float(codec.frame_rate),
                    codec_num_codebooks=int(codec.num_codebooks), codec_cardinality=int(codec.cardinality))  # fmt: skip
    members["json"] = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return members, seconds


def write_shard(path: str, items: Sequence[Item], opts: WriterOptions) -> ShardResult:
    """Write ``items`` into the tar ``path`` (via a temporary name); bad items are skipped and reported."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    result = ShardResult(name=final.name, samples=0, seconds=0.0)
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for item in items:
                try:
                    members, seconds = _encode_sample(item, opts)
                except ValueError as err:
                    reason, _, detail = str(err).partition(": ")
                    reason = reason if detail and reason.isidentifier() else "error"
                    result.skipped.setdefault(reason, []).append(f"{_label(item)} ({detail or err})")
                    continue
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{item.key}.{ext}")
                    info.size, info.mode, info.mtime = len(data), 0o644, 0
                    tar.addfile(info, io.BytesIO(data))
                result.samples += 1
                result.seconds += seconds
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _count_tar(path: Path) -> tuple[int, float]:
    """Samples and seconds of a finished shard missing from ``index.json`` (read from its json members)."""
    samples, seconds = 0, 0.0
    with tarfile.open(path) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.name.endswith(".json") else None
            if handle is not None:
                samples += 1
                seconds += float(json.loads(handle.read()).get("duration", 0.0))
    return samples, seconds


class ShardWriter:
    """Split items into shards of ``shard_size`` and write the missing ones (in ``workers`` processes).

    Args:
        out_dir: output folder (created).
        options: how samples are written.
        shard_size: samples per shard.
        workers: parallel processes (1: in this process).
        prefix: shard file name prefix (``{prefix}-000000.tar``).
    """

    def __init__(self, *, out_dir: str | Path, options: WriterOptions, shard_size: int = 1000, workers: int = 1,
                 prefix: str = "shard") -> None:  # fmt: skip
        if shard_size < 1:
            raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        self.out_dir, self.options = Path(out_dir), options
        self.shard_size, self.workers, self.prefix = shard_size, workers, prefix

    def _fingerprint(self, items: Sequence[Item]) -> str:
        h = hashlib.sha256(json.dumps([asdict(self.options), self.shard_size, self.prefix]).encode())
        for item in items:
            h.update(json.dumps(asdict(item), sort_keys=True, default=str).encode())
        return h.hexdigest()[:16]

    def _write_index(self, fingerprint: str, results: dict[int, ShardResult], n_shards: int,
                     before: dict[str, list[str]]) -> None:  # fmt: skip
        """``index.json``: shards, totals and every skipped item by reason (``before``: skipped while
        listing the inputs), the same names the final report prints. ``complete`` only when every shard
        is written and holds at least one sample in all."""
        shards = [{"name": r.name, "samples": r.samples, "seconds": round(r.seconds, 3), "skipped": r.skipped}
                  for _, r in sorted(results.items())]  # fmt: skip
        skipped = merge_skips(before, *(r.skipped for _, r in sorted(results.items())))
        total = sum(r.samples for r in results.values())
        index = {"format": "stylecond-shards/1", "fingerprint": fingerprint,
                 "complete": len(results) == n_shards and total > 0,
                 "options": asdict(self.options), "shard_size": self.shard_size, "shards": shards,
                 "total_samples": total,
                 "total_hours": sum(r.seconds for r in results.values()) / 3600, "skipped": skipped}  # fmt: skip
        tmp = self.out_dir / f".{INDEX_NAME}.tmp"
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, self.out_dir / INDEX_NAME)

    def run(
        self,
        items: Sequence[Item],
        *,
        on_shard: Callable[[ShardResult, int], None] | None = None,
        skipped: dict[str, list[str]] | None = None,
    ) -> list[ShardResult]:
        """Write every missing shard; returns one result per shard (``resumed`` for pre-existing ones).
        ``skipped``: inputs dropped before writing (by reason), recorded in ``index.json`` too."""
        before = {reason: list(names) for reason, names in (skipped or {}).items()}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        fingerprint = self._fingerprint(items)
        index_path = self.out_dir / INDEX_NAME
        old: dict[str, Any] = json.loads(index_path.read_text()) if index_path.is_file() else {}
        chunks = [list(items[i : i + self.shard_size]) for i in range(0, len(items), self.shard_size)]
        paths = [self.out_dir / f"{self.prefix}-{i:06d}.tar" for i in range(len(chunks))]
        existing = [p for p in paths if p.exists()]
        if existing and old.get("fingerprint") not in (None, fingerprint):
            raise ValueError(f"--out {str(self.out_dir)!r} holds shards written from other inputs or settings "
                             f"(fingerprint {old.get('fingerprint')} != {fingerprint}); use a new --out folder")  # fmt: skip
        known = {s["name"]: s for s in old.get("shards", [])} if old.get("fingerprint") == fingerprint else {}
        results: dict[int, ShardResult] = {}
        for i, p in enumerate(paths):
            if p.exists():
                entry = known.get(p.name)
                samples, seconds = (
                    (int(entry["samples"]), float(entry["seconds"])) if entry else _count_tar(p)
                )
                earlier = {k: list(v) if isinstance(v, list) else ["(earlier run)"] * int(v)
                           for k, v in (entry or {}).get("skipped", {}).items()}  # fmt: skip
                results[i] = ShardResult(
                    name=p.name, samples=samples, seconds=seconds, skipped=earlier, resumed=True
                )
                if on_shard:
                    on_shard(results[i], len(chunks[i]))
        todo = [i for i in range(len(chunks)) if i not in results]
        self._write_index(fingerprint, results, len(chunks), before)

        def done(i: int, result: ShardResult) -> None:
            results[i] = result
            self._write_index(fingerprint, results, len(chunks), before)
            if on_shard:
                on_shard(result, len(chunks[i]))

        if self.workers == 1 or len(todo) <= 1:
            for i in todo:
                done(i, write_shard(str(paths[i]), chunks[i], self.options))
        else:
            with ProcessPoolExecutor(max_workers=self.workers) as pool:
                pending: dict[Future[ShardResult], int] = {}
                queue = list(todo)
                while queue or pending:
                    while queue and len(pending) < 2 * self.workers:
                        i = queue.pop(0)
                        pending[pool.submit(write_shard, str(paths[i]), chunks[i], self.options)] = i
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        done(pending.pop(fut), fut.result())
        return [results[i] for i in range(len(chunks))]
