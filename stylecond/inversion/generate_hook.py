"""Glue for ``stylecond generate --inverted style.safetensors``: texts and condition overrides."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any

from stylecond.conditioners.types import ConditionTensors
from stylecond.inversion.inverted_style import InvertedStyle


def inverted_overrides(
    model: Any,
    path: str | PathLike[str],
    texts: Sequence[str | None] | None,
    *,
    style_given: bool = False,
) -> tuple[list[str | None] | None, dict[str, ConditionTensors]]:
    """Load ``path`` into ``model`` and return ``(texts, condition_overrides)`` for ``model.generate``.

    ``token_embedding``: the pseudo-word's rows are written into the model's text encoder and the texts
    come back with the pseudo-word expanded (prepended to texts lacking it; the pseudo-word alone when
    ``texts`` is None). ``lm_space``: texts come back as None and the ``"text"`` override holds the
    encoded texts followed by the learned vectors. Either way every other condition the fuser routes gets
    a null override, except ``"style"`` when ``style_given`` (the reference audio then provides it).
    With only a null style, use plain CFG (``cfg_coef_beta=None``): double CFG would multiply alpha by beta.
    Raises ValueError naming the file if it is unreadable or was learned on another base model.
    """
    style = InvertedStyle.load(path)
    try:
        style.apply_to(model)
        rows: list[str | None] = list(texts) if texts is not None else [None]
        overrides = style.conditions(model, rows, batch_size=len(rows), style_given=style_given)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    if style.mode == "token_embedding":
        overrides.pop("text")
        return list(style.token_texts(rows)), overrides
    return None, overrides
