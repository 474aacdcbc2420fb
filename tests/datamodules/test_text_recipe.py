from __future__ import annotations

import random

import pytest

from datamodules.text_recipe import TextRecipe, format_field

META = {"text": "a calm piano piece.", "genre": "classical", "moods": ["calm", "sad"], "bpm": 72.0,
        "key": "C minor", "instruments": ["piano"], "title": "Nocturne"}  # fmt: skip


def test_no_merge_keeps_description() -> None:
    recipe = TextRecipe(merge_metadata_p=0.0)
    assert recipe(META, random.Random(0)) == "a calm piano piece."


def test_full_merge_keeps_everything_but_title() -> None:
    text = TextRecipe(merge_metadata_p=1.0, drop_description_p=0.0, drop_field_p=0.0)(META, random.Random(1))
    assert text.startswith("a calm piano piece. ")
    for phrase in ("genre: classical", "moods: calm, sad", "bpm: 72", "key: C minor", "instruments: piano"):
        assert phrase in text
    assert "Nocturne" not in text
    tags = TextRecipe(merge_metadata_p=1.0, drop_description_p=1.0, drop_field_p=0.0)(META, random.Random(1))
    assert "piano piece" not in tags and "genre: classical" in tags


def test_paper_probabilities_and_seeding() -> None:
    recipe = TextRecipe()  # 0.25 / 0.5 / 0.5
    texts = [recipe(META, random.Random(i)) for i in range(4000)]
    assert texts == [recipe(META, random.Random(i)) for i in range(4000)]
    plain = sum(t == "a calm piano piece." for t in texts) / len(texts)
    tag_only = sum("piano piece" not in t for t in texts) / len(texts)
    # plain: 0.75 + 0.25 * P(all 5 fields dropped) = 0.7578; tags only: 0.25 * 0.5 * (1 - 1/32) = 0.121
    assert abs(plain - 0.758) < 0.03 and abs(tag_only - 0.121) < 0.025


def test_empty_metadata_falls_back_to_description() -> None:
    assert TextRecipe(merge_metadata_p=1.0, drop_description_p=1.0)({"text": "x"}, random.Random(0)) == "x"


def test_validation_and_formatting() -> None:
    with pytest.raises(ValueError, match="drop_field_p"):
        TextRecipe(drop_field_p=1.5)
    assert (
        format_field(120.0) == "120" and format_field(["a", "", "b"]) == "a, b" and format_field([]) is None
    )
