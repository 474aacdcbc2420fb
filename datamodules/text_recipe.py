"""Training text from a sample's metadata (the MusicGen / MusicGen-Style text augmentation recipe).

With probability ``merge_metadata_p`` the metadata fields (genre, moods, bpm, key, instruments, ...)
are appended to the description as ``"field: value"`` phrases, each field dropped with probability
``drop_field_p`` and their order shuffled; when merging, the description itself is dropped with
probability ``drop_description_p`` (so the model also learns from tag-only prompts). Otherwise the
description is used as is.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TextRecipe", "format_field"]

DEFAULT_FIELDS: tuple[str, ...] = ("genre", "moods", "bpm", "key", "instruments")


def format_field(value: Any) -> str | None:
    """``"a, b"`` for lists, ``"120"`` for whole floats, the string itself; None for empty/unusable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        parts = [p for p in (format_field(v) for v in value) if p]
        return ", ".join(parts) or None
    return None


class TextRecipe:
    """Seeded text augmentation: metadata merging and description/field dropout.

    Args:
        merge_metadata_p: probability of appending metadata fields to the description (paper: 0.25).
        drop_description_p: when merging, probability of dropping the description (paper: 0.5).
        drop_field_p: when merging, probability of dropping each metadata field (paper: 0.5).
        fields: metadata fields that may be merged, in json order of preference.
    """

    def __init__(
        self,
        *,
        merge_metadata_p: float = 0.25,
        drop_description_p: float = 0.5,
        drop_field_p: float = 0.5,
        fields: Sequence[str] = DEFAULT_FIELDS,
    ) -> None:
        for name, p in (
            ("merge_metadata_p", merge_metadata_p),
            ("drop_description_p", drop_description_p),
            ("drop_field_p", drop_field_p),
        ):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        self.merge_metadata_p = merge_metadata_p
        self.drop_description_p = drop_description_p
        self.drop_field_p = drop_field_p
        self.fields = tuple(fields)

    def __call__(self, meta: Mapping[str, Any], rng: random.Random) -> str:
        """Text for one sample from its json ``meta`` (``text`` + optional fields), drawn with ``rng``."""
        description = str(meta.get("text") or "").strip()
        if rng.random() >= self.merge_metadata_p:
            return description
        phrases = []
        for name in self.fields:
            value = format_field(meta.get(name))
            keep = rng.random() >= self.drop_field_p  # draw for every field: stable random stream
            if value is not None and keep:
                phrases.append(f"{name}: {value}")
        rng.shuffle(phrases)
        tags = ". ".join(phrases)
        if not tags:
            return description
        if description and rng.random() >= self.drop_description_p:
            return f"{description.rstrip('.')}. {tags}"
        return tags
