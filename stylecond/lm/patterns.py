"""Codebook interleaving patterns: how K parallel codebook streams become one sequence of steps.

Conventions (MusicGen): the pattern sequence ``seq [B, K, S]`` starts with one initial step that holds
no code; code ``(k, t)`` sits at step ``positions(T)[k, t] >= 1``; every step of a codebook that holds
no code holds the special id (``card``). The LM's output at step ``s`` predicts the tokens of step
``s + 1``, so :meth:`CodebookPattern.revert` shifts logits by one step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import Tensor


class CodebookPattern(abc.ABC):
    """Abstract codebook pattern: places code ``(k, t)`` at a step of the pattern sequence.

    Subclasses implement :meth:`positions` and :meth:`num_steps`; build/revert are generic. A pattern may
    be created without knowing K (``num_codebooks=None``); the LM binds it with :meth:`bind`.

    Args:
        num_codebooks: number of codebooks K, or None to let the LM fill it in.
    """

    def __init__(self, *, num_codebooks: int | None = None) -> None:
        if num_codebooks is not None and num_codebooks < 1:
            raise ValueError(f"num_codebooks must be >= 1, got {num_codebooks}")
        self.num_codebooks = num_codebooks

    @abc.abstractmethod
    def bind(self, num_codebooks: int) -> CodebookPattern:
        """A copy of this pattern for exactly ``num_codebooks`` codebooks (ValueError if incompatible)."""

    @abc.abstractmethod
    def num_steps(self, num_frames: int) -> int:
        """Length S of the pattern sequence for T = ``num_frames`` frames (initial step included)."""

    @abc.abstractmethod
    def num_frames(self, num_steps: int) -> int:
        """Inverse of :meth:`num_steps`: the number of frames T a full sequence of S steps holds."""

    @abc.abstractmethod
    def positions(self, num_frames: int) -> Tensor:
        """Step index of each code: ``[K, T]`` long, all in ``1..S-1``, distinct within a codebook."""

    @property
    def k(self) -> int:
        if self.num_codebooks is None:
            raise ValueError(f"{type(self).__name__} is not bound to a number of codebooks; call .bind(K)")
        return self.num_codebooks

    def _check_bind(self, num_codebooks: int) -> None:
        if self.num_codebooks is not None and self.num_codebooks != num_codebooks:
            raise ValueError(
                f"{type(self).__name__} has num_codebooks={self.num_codebooks}; the LM has K={num_codebooks}"
            )

    def _check_frames(self, num_frames: int) -> None:
        if num_frames < 0:
            raise ValueError(f"num_frames must be >= 0, got {num_frames}")

    def layout_mask(self, num_frames: int) -> Tensor:
        """``[K, S]`` bool: True where step s of codebook k holds a real code."""
        pos = self.positions(num_frames)
        mask = torch.zeros(self.k, self.num_steps(num_frames), dtype=torch.bool)
        mask.scatter_(1, pos, True)
        return mask

    def _check_codes(self, x: Tensor, name: str, min_dim: int) -> None:
        if x.dim() < min_dim or x.shape[1] != self.k:
            raise ValueError(
                f"{name} must have shape [B, K={self.k}, ...] with >= {min_dim} dims, got {tuple(x.shape)}"
            )

    def build(self, codes: Tensor, special: int) -> tuple[Tensor, Tensor]:
        """Interleave ``codes [B, K, T]`` into ``seq [B, K, S]`` (``special`` where no code) and its mask [K, S]."""
        self._check_codes(codes, "codes", 3)
        b, k, t = codes.shape
        pos = self.positions(t).to(codes.device)
        seq = codes.new_full((b, k, self.num_steps(t)), special)
        seq.scatter_(2, pos.unsqueeze(0).expand(b, k, t), codes)
        return seq, self.layout_mask(t).to(codes.device)

    def _gather(self, x: Tensor, num_frames: int, shift: int) -> tuple[Tensor, Tensor]:
        """Gather ``x [B, K, S', ...]`` at ``positions - shift``; positions beyond S' are masked (zeros)."""
        b, k, s = x.shape[:3]
        idx = self.positions(num_frames).to(x.device) - shift  # [K, T]
        mask = (idx < s) & (idx >= 0)
        idx = idx.clamp(0, max(s - 1, 0))
        if s == 0:
            out = x.new_zeros((b, k, num_frames, *x.shape[3:]))
            return out, mask
        view = idx.view(1, k, num_frames, *([1] * (x.dim() - 3)))
        out = torch.gather(x, 2, view.expand(b, k, num_frames, *x.shape[3:]))
        keep = mask.view(1, k, num_frames, *([1] * (x.dim() - 3))).to(out.dtype)
        return out * keep if not mask.all() else out, mask

    def revert_codes(self, seq: Tensor, *, num_frames: int | None = None) -> tuple[Tensor, Tensor]:
        """Undo :meth:`build`: ``seq [B, K, S']`` -> ``codes [B, K, T]`` and mask [K, T] (False = not in seq).

        ``num_frames`` defaults to :meth:`num_frames` of S'; missing codes come back as 0.
        """
        self._check_codes(seq, "seq", 3)
        t = self.num_frames(seq.shape[2]) if num_frames is None else num_frames
        self._check_frames(t)
        return self._gather(seq, t, shift=0)

    def revert(self, logits: Tensor, *, num_frames: int | None = None) -> tuple[Tensor, Tensor]:
        """Align model outputs ``[B, K, S', card]`` (step s predicts step s+1) to ``[B, K, T, card]``.

        Returns the aligned logits and mask [K, T] (False where the prediction is not in the input).
        """
        self._check_codes(logits, "logits", 4)
        t = self.num_frames(logits.shape[2]) if num_frames is None else num_frames
        self._check_frames(t)
        return self._gather(logits, t, shift=1)


class DelayPattern(CodebookPattern):
    """MusicGen's delay pattern: codebook k is delayed by ``delays[k]`` steps (default k).

    Code ``(k, t)`` sits at step ``t + delays[k] + 1``; S = T + max(delays) + 1. For K=2, T=3
    (``a``/``b`` the codes, ``_`` the special id)::

        k=0: _ a0 a1 a2 _
        k=1: _ _  b0 b1 b2

    Args:
        delays: one non-negative delay per codebook; None = ``[0, 1, ..., K-1]``.
        num_codebooks: K, or None (taken from ``delays`` if given, else bound by the LM).
    """

    def __init__(self, *, delays: Sequence[int] | None = None, num_codebooks: int | None = None) -> None:
        if delays is not None:
            delays = [int(d) for d in delays]
            if not delays or min(delays) < 0:
                raise ValueError(f"delays must be a non-empty list of non-negative ints, got {delays}")
            if num_codebooks is not None and num_codebooks != len(delays):
                raise ValueError(f"delays has {len(delays)} entries but num_codebooks={num_codebooks}")
            num_codebooks = len(delays)
        super().__init__(num_codebooks=num_codebooks)
        self._delays = delays

    @property
    def delays(self) -> list[int]:
        return list(self._delays) if self._delays is not None else list(range(self.k))

    def bind(self, num_codebooks: int) -> DelayPattern:
        self._check_bind(num_codebooks)
        if self._delays is not None:
            if len(self._delays) != num_codebooks:
                raise ValueError(
                    f"delays {self._delays} has {len(self._delays)} entries; the LM has K={num_codebooks}"
                )
            return DelayPattern(delays=self._delays)
        return DelayPattern(num_codebooks=num_codebooks)

    def num_steps(self, num_frames: int) -> int:
        self._check_frames(num_frames)
        return num_frames + max(self.delays) + 1

    def num_frames(self, num_steps: int) -> int:
        return max(num_steps - max(self.delays) - 1, 0)

    def positions(self, num_frames: int) -> Tensor:
        self._check_frames(num_frames)
        d = torch.tensor(self.delays, dtype=torch.long)
        return torch.arange(num_frames, dtype=torch.long)[None, :] + d[:, None] + 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(delays={self._delays}, num_codebooks={self.num_codebooks})"


class ParallelPattern(DelayPattern):
    """All codebooks of frame t predicted together at step ``t + 1`` (S = T + 1); a delay pattern with zero delays.

    Args:
        num_codebooks: K, or None to let the LM fill it in.
    """

    def __init__(self, *, num_codebooks: int | None = None) -> None:
        super().__init__(
            delays=None if num_codebooks is None else [0] * num_codebooks, num_codebooks=num_codebooks
        )

    @property
    def delays(self) -> list[int]:
        return [0] * self.k

    def bind(self, num_codebooks: int) -> ParallelPattern:
        self._check_bind(num_codebooks)
        return ParallelPattern(num_codebooks=num_codebooks)
