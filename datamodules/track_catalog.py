"""What ``make-shards`` writes: audio tracks with captions found in a folder, cut into segments, or synthetic clips.

Captions come from ``captions.jsonl`` at the top of the folder (one object per line: ``path`` relative
to the folder, ``text``, optional ``metadata`` object and/or fields such as ``genre``, ``moods``,
``bpm``, ``key``, ``instruments``, ``title``) or, for tracks it does not list, from a sidecar next to
the track: ``song.json`` (same fields) or ``song.txt`` (the text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

__all__ = ["INPUT_EXTENSIONS", "SynthItem", "TrackItem", "discover_tracks", "plan_segments", "synth_items"]

#: Audio files picked up from input folders (anything soundfile decodes among these).
INPUT_EXTENSIONS: tuple[str, ...] = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")
METADATA_FIELDS: tuple[str, ...] = ("genre", "moods", "bpm", "key", "instruments", "title")


@dataclass(frozen=True)
class TrackItem:
    """One segment of one audio file: ``frames`` samples (at the file's rate) from ``start``."""

    key: str
    path: str
    source: str
    segment: int
    start: int
    frames: int
    file_rate: int
    text: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SynthItem:
    """Clip ``index`` of :class:`~datamodules.synth.SynthStyles` (regenerated deterministically in workers)."""

    key: str
    index: int


@dataclass
class Track:
    path: Path
    source: str
    text: str
    metadata: dict[str, Any]


def _key(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", source.rsplit(".", 1)[0]).strip("_") or "track"


def _caption_entry(entry: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    text = entry.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{where}: field 'text' must be a string, got {text!r}")
    meta = dict(entry.get("metadata") or {})
    meta.update({k: entry[k] for k in METADATA_FIELDS if k in entry})
    return text, meta


def _read_captions_jsonl(path: Path, bad: list[str] | None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Captions by relative path. A line that cannot be used raises ValueError, or with ``bad`` given is
    appended to it as ``file:line (reason)`` and skipped."""
    captions: dict[str, tuple[str, dict[str, Any]]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: invalid json ({err})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise ValueError(
                    f"{where}: each line must be an object with a string 'path' (relative to the folder)"
                )
            captions[Path(entry["path"]).as_posix()] = _caption_entry(entry, where)
        except ValueError as err:
            if bad is None:
                raise
            bad.append(str(err))
    return captions


def _sidecar(track: Path) -> tuple[str, dict[str, Any]] | None:
    js, txt = track.with_suffix(".json"), track.with_suffix(".txt")
    if js.is_file():
        try:
            entry = json.loads(js.read_text(encoding="utf-8", errors="replace"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{js}: invalid json ({err})") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{js}: must hold a json object with a 'text' field")
        return _caption_entry(entry, str(js))
    if txt.is_file():
        return txt.read_text(encoding="utf-8", errors="replace").strip(), {}
    return None


def discover_tracks(
    input_dir: str | Path, *, strict: bool = False
) -> tuple[list[Track], dict[str, list[str]]]:
    """Tracks under ``input_dir`` (recursive, sorted) with captions, and skipped files by reason.

    A ``captions.jsonl`` line or sidecar that cannot be used is reported under ``bad_caption``
    (``file:line (reason)``) and skipped: the track falls back to its sidecar, and a track left without
    any caption is skipped as ``no_caption``. ``strict``: raise ValueError at the first bad caption instead.
    """
    root = Path(input_dir)
    if not root.is_dir():
        raise ValueError(f"--input {str(root)!r} is not a folder")
    jsonl = root / "captions.jsonl"
    bad: list[str] | None = None if strict else []
    captions = _read_captions_jsonl(jsonl, bad) if jsonl.is_file() else {}
    tracks: list[Track] = []
    skipped: dict[str, list[str]] = {}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS)
    for path in files:
        source = path.relative_to(root).as_posix()
        caption = captions.get(source)
        if caption is None:
            try:
                caption = _sidecar(path)
            except ValueError as err:
                if bad is None:
                    raise
                bad.append(str(err))
        if caption is None:
            skipped.setdefault("no_caption", []).append(source)
            continue
        tracks.append(Track(path=path, source=source, text=caption[0], metadata=caption[1]))
    if bad:
        skipped["bad_caption"] = bad
    return tracks, skipped


def plan_segments(
    tracks: list[Track], *, segment_seconds: float | None, min_segment_seconds: float
) -> tuple[list[TrackItem], dict[str, list[str]]]:
    """Cut each track into ``segment_seconds`` pieces (None: whole tracks); keep a last piece >= the minimum."""
    if segment_seconds is not None and not segment_seconds > 0:
        raise ValueError(f"--segment-seconds must be > 0, got {segment_seconds}")
    items: list[TrackItem] = []
    skipped: dict[str, list[str]] = {}
    used: set[str] = set()
    for track in tracks:
        try:
            info = sf.info(str(track.path))
            rate, total = int(info.samplerate), int(info.frames)
        except (sf.LibsndfileError, RuntimeError) as err:
            skipped.setdefault("unreadable", []).append(f"{track.source} ({err})")
            continue
        if total <= 0 or total < min_segment_seconds * rate:
            skipped.setdefault("too_short", []).append(track.source)
            continue
        length = total if segment_seconds is None else max(1, round(segment_seconds * rate))
        base = key = _key(track.source)
        n = 1
        while key in used:
            n, key = n + 1, f"{base}-{n + 1}"
        used.add(key)
        for seg, start in enumerate(range(0, total, length)):
            frames = min(length, total - start)
            if seg > 0 and frames < min_segment_seconds * rate:
                break
            items.append(TrackItem(key=f"{key}__{seg:04d}", path=str(track.path), source=track.source,
                                   segment=seg, start=start, frames=frames, file_rate=rate, text=track.text,
                                   metadata=track.metadata))  # fmt: skip
    return items, skipped


def synth_items(n: int) -> list[SynthItem]:
    """``n`` synthetic clip items (clip ``i`` is regenerated from its index)."""
    if n < 1:
        raise ValueError(f"--synth must be >= 1 clip, got {n}")
    return [SynthItem(key=f"synth_{i:07d}", index=i) for i in range(n)]
