"""Generation settings of an evaluation: which conditions are given, how many style codebooks, which β."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CONDITIONS", "Setting", "make_settings"]

#: Condition sets a model is evaluated under.
CONDITIONS: tuple[str, ...] = ("style", "text", "text+style")


@dataclass(frozen=True)
class Setting:
    """One generation setting.

    Attributes:
        condition: ``"style"`` (audio only, plain CFG), ``"text"`` (text only, plain CFG) or
            ``"text+style"`` (both, double CFG with ``beta``).
        eval_q: style codebooks used (1..num_codebooks) for the conditions with style, else None.
        beta: double-CFG β for ``"text+style"`` (None: plain CFG on the full condition), else None.
    """

    condition: str
    eval_q: int | None = None
    beta: float | None = None

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")
        if self.uses_style:
            if self.eval_q is not None and (isinstance(self.eval_q, bool) or self.eval_q < 1):
                raise ValueError(f"eval_q must be an int >= 1, got {self.eval_q!r}")
        elif self.eval_q is not None:
            raise ValueError(f"eval_q applies to conditions with style, not {self.condition!r}")
        if self.beta is not None and self.condition != "text+style":
            raise ValueError(f"beta applies to 'text+style' only, not {self.condition!r}")

    @property
    def uses_style(self) -> bool:
        return "style" in self.condition

    @property
    def uses_text(self) -> bool:
        return "text" in self.condition

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``text+style q=3 β=5``."""
        parts = [self.condition]
        if self.eval_q is not None:
            parts.append(f"q={self.eval_q}")
        if self.beta is not None:
            parts.append(f"β={self.beta:g}")
        return " ".join(parts)

    @property
    def slug(self) -> str:
        """File-system safe name, e.g. ``text+style_q3_b5``."""
        parts = [self.condition]
        if self.eval_q is not None:
            parts.append(f"q{self.eval_q}")
        if self.beta is not None:
            parts.append(f"b{self.beta:g}")
        return "_".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.condition, "eval_q": self.eval_q, "beta": self.beta}


def make_settings(conditions: Sequence[str], eval_qs: Sequence[int], betas: Sequence[float]) -> list[Setting]:
    """The settings grid: ``style`` × eval_q, ``text`` once, ``text+style`` × eval_q × β.

    Empty ``eval_qs`` uses the model's own ``eval_q``; empty ``betas`` uses plain CFG for ``text+style``.
    """
    if not conditions:
        raise ValueError(f"conditions must name at least one of {', '.join(CONDITIONS)}")
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"conditions must be drawn from {', '.join(CONDITIONS)}, got {', '.join(unknown)}")
    qs: list[int | None] = list(dict.fromkeys(eval_qs)) or [None]
    bs: list[float | None] = list(dict.fromkeys(float(b) for b in betas)) or [None]
    out: list[Setting] = []
    for condition in dict.fromkeys(conditions):
        if condition == "text":
            out.append(Setting(condition="text"))
        elif condition == "style":
            out.extend(Setting(condition="style", eval_q=q) for q in qs)
        else:
            out.extend(Setting(condition="text+style", eval_q=q, beta=b) for q in qs for b in bs)
    return out
