"""Textual inversion (docs/design.md §1.1): learn pseudo-word vectors for reference audio on a frozen model."""

from __future__ import annotations

from stylecond.inversion.inverted_style import InvertedStyle
from stylecond.inversion.module import TextualInversionModule

__all__ = ["InvertedStyle", "TextualInversionModule"]
