"""Condition fuser: turns named conditions into the LM's prefix tokens and cross-attention input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from stylecond.conditioners.types import ConditionTensors


@dataclass
class FusedConditions:
    """What the LM consumes: ``prefix`` tokens prepended to the audio tokens and ``cross`` for cross-attention.

    Each is ``ConditionTensors(embeddings [B, S, D], mask [B, S])`` or None when nothing goes there.
    """

    prefix: ConditionTensors | None
    cross: ConditionTensors | None


def pad_condition(cond: ConditionTensors, length: int) -> ConditionTensors:
    """Right-pad ``cond`` along S to ``length`` with zero embeddings and False mask."""
    s = cond.embeddings.shape[1]
    if length < s:
        raise ValueError(f"length={length} is shorter than the condition's {s} tokens")
    if length == s:
        return cond
    b, _, d = cond.embeddings.shape
    emb = torch.cat([cond.embeddings, cond.embeddings.new_zeros(b, length - s, d)], dim=1)
    mask = torch.cat([cond.mask, cond.mask.new_zeros(b, length - s)], dim=1)
    return ConditionTensors(emb, mask)


def concat_tokens(items: Sequence[ConditionTensors]) -> ConditionTensors:
    """Concatenate conditions along the token axis S (same B and D); embeddings use the promoted dtype."""
    if not items:
        raise ValueError("concat_tokens needs at least one condition")
    dtype = items[0].embeddings.dtype
    for c in items[1:]:
        dtype = torch.promote_types(dtype, c.embeddings.dtype)
    return ConditionTensors(
        torch.cat([c.embeddings.to(dtype) for c in items], dim=1),
        torch.cat([c.mask for c in items], dim=1),
    )


def stack_conditions(sets: Sequence[Mapping[str, ConditionTensors]]) -> dict[str, ConditionTensors]:
    """Concatenate several condition sets along the batch axis (e.g. the full / style-only / null
    guidance branches of :class:`~stylecond.generation.sampler.DoubleCFGSampler`).

    Every set must hold the same names; shorter token sequences are right-padded (mask False).
    """
    if not sets:
        raise ValueError("stack_conditions needs at least one condition set")
    names = list(sets[0])
    for i, s in enumerate(sets[1:], start=1):
        if set(s) != set(names):
            raise ValueError(f"condition set {i} has names {sorted(s)}; set 0 has {sorted(names)}")
    out: dict[str, ConditionTensors] = {}
    for name in names:
        items = [s[name] for s in sets]
        length = max(c.embeddings.shape[1] for c in items)
        out[name] = ConditionTensors.cat([pad_condition(c, length) for c in items])
    return out


#: default prefix order: style tokens, then text tokens (then the audio tokens, in the LM)
DEFAULT_PREFIX: tuple[str, ...] = ("style", "text")


def null_token(batch_size: int, like: ConditionTensors | Tensor, dim: int | None = None) -> ConditionTensors:
    """An absent condition: one all-zero token with a False mask, ``[B, 1, D]`` (D from ``like``)."""
    ref = like.embeddings if isinstance(like, ConditionTensors) else like
    emb = ref.new_zeros(batch_size, 1, dim if dim is not None else ref.shape[-1])
    return ConditionTensors(emb, torch.zeros(batch_size, 1, dtype=torch.bool, device=emb.device))


class ConditionFuser(nn.Module):
    """Routes named conditions (e.g. ``"style"``, ``"text"``) to the LM's prefix or cross-attention input.

    The one place where conditions become what the LM consumes. Conditions listed in ``prefix`` are
    concatenated along the token axis in that order (style tokens, then text tokens, then the audio
    tokens follow in the LM); those in ``cross`` are concatenated into the cross-attention memory. All
    conditions must share the batch size, and those fused together their embedding width. Every given
    condition must be routed somewhere. With ``fill_absent=True`` (generation), a routed name that is not
    given becomes one null token (zero embedding, False mask).

    Args:
        prefix: Names of the conditions prepended to the audio tokens, in order.
        cross: Names of the conditions the LM cross-attends to, in order.
    """

    def __init__(self, *, prefix: Sequence[str] = DEFAULT_PREFIX, cross: Sequence[str] = ()) -> None:
        super().__init__()
        if isinstance(prefix, str) or isinstance(cross, str):
            raise ValueError("prefix and cross must be sequences of condition names, not a single string")
        self.prefix = tuple(prefix)
        self.cross = tuple(cross)
        every = self.prefix + self.cross
        duplicated = sorted({n for n in every if every.count(n) > 1})
        if duplicated:
            raise ValueError(
                f"condition names may appear once across prefix and cross; repeated: {duplicated}"
            )
        if not every:
            raise ValueError("ConditionFuser needs at least one condition name in prefix or cross")

    @classmethod
    def all_prefix(cls, names: Sequence[str]) -> ConditionFuser:
        """A fuser putting every one of ``names`` in the prefix: style, text, then the others sorted."""
        order = [n for n in DEFAULT_PREFIX if n in names] + sorted(
            n for n in names if n not in DEFAULT_PREFIX
        )
        return cls(prefix=order)

    @property
    def names(self) -> tuple[str, ...]:
        return self.prefix + self.cross

    def extra_repr(self) -> str:
        return f"prefix={self.prefix}, cross={self.cross}"

    def complete(
        self, conditions: Mapping[str, ConditionTensors], *, dim: int | None = None
    ) -> dict[str, ConditionTensors]:
        """``conditions`` plus one null token for every routed name they lack (width ``dim``, default:
        that of the first condition given)."""
        out = dict(conditions)
        if not out:
            raise ValueError("at least one condition is needed to fill the absent ones")
        first = next(iter(out.values()))
        for name in self.names:
            if name not in out:
                out[name] = null_token(first.batch_size, first, dim)
        return out

    def _gather(
        self, names: tuple[str, ...], conditions: Mapping[str, ConditionTensors]
    ) -> ConditionTensors | None:
        if not names:
            return None
        items = [conditions[n] for n in names]
        widths = {n: int(c.embeddings.shape[-1]) for n, c in zip(names, items)}
        if len(set(widths.values())) > 1:
            raise ValueError(f"conditions fused together need the same embedding width; got {widths}")
        return concat_tokens(items)

    def forward(
        self, conditions: Mapping[str, ConditionTensors], *, fill_absent: bool = False
    ) -> FusedConditions:
        """Fuse ``conditions`` (name -> ``ConditionTensors [B, S_name, D]``) into prefix and cross inputs."""
        if fill_absent and conditions:
            conditions = self.complete(conditions)
        for name in self.names:
            if name not in conditions:
                raise ValueError(
                    f"condition {name!r} is missing; the fuser needs {list(self.names)}, got {sorted(conditions)}"
                )
        extra = sorted(set(conditions) - set(self.names))
        if extra:
            raise ValueError(
                f"conditions {extra} are not routed by the fuser (prefix={list(self.prefix)}, cross={list(self.cross)})"
            )
        sizes = {n: conditions[n].batch_size for n in self.names}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"conditions disagree on the batch size: {sizes}")
        return FusedConditions(
            prefix=self._gather(self.prefix, conditions), cross=self._gather(self.cross, conditions)
        )
