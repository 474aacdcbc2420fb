"""Double classifier-free guidance sampler usable with any logits function."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from stylecond.conditioners.fuser import stack_conditions
from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.cfg import cfg, double_cfg
from stylecond.generation.sampling import sample_next
from stylecond.generation.settings import SamplingSettings

LogitsFn = Callable[[Tensor, dict[str, ConditionTensors]], Tensor]

STYLE_KEY = "style"


class DoubleCFGSampler:
    """Guided next-token sampler: double CFG over (text+style, style only, nothing), or plain CFG.

    With a ``"style"`` condition plus at least one other (e.g. ``"text"``) and ``cfg_coef_beta`` set,
    the batch is stacked into three branches ``[full; style only; null]`` (``3 * B`` rows) and guided
    by :func:`~stylecond.generation.cfg.double_cfg`. With a single condition or ``cfg_coef_beta=None``
    it is :func:`~stylecond.generation.cfg.cfg` over ``[full; null]`` (``2 * B`` rows). With no
    condition at all there is one branch and no guidance. Null conditions are ``ConditionTensors.null()``
    (zeros, all-False mask). The logits function is called once per step on the stacked batch.

    The pieces are exposed for KV-cached loops, which stack the conditions once:
    ``guidance_conditions`` -> model forward on ``num_branches * B`` rows -> ``combine`` -> ``sample``.

    Args:
        settings: guidance and sampling settings (default: ``SamplingSettings()``).
    """

    def __init__(self, settings: SamplingSettings | None = None) -> None:
        if settings is not None and not isinstance(settings, SamplingSettings):
            raise ValueError(f"settings must be a SamplingSettings, got {type(settings).__name__}")
        self.settings = settings or SamplingSettings()

    def __repr__(self) -> str:
        return f"DoubleCFGSampler({self.settings})"

    @staticmethod
    def batch_size(conditions: Mapping[str, ConditionTensors] | None) -> int | None:
        """The common batch size B of ``conditions`` (None when empty); ValueError naming a disagreeing one."""
        if not conditions:
            return None
        size: int | None = None
        first = ""
        for name, cond in conditions.items():
            if not isinstance(cond, ConditionTensors):
                raise ValueError(
                    f"conditions[{name!r}] must be a ConditionTensors, got {type(cond).__name__}"
                )
            if size is None:
                size, first = cond.batch_size, name
            elif cond.batch_size != size:
                raise ValueError(
                    f"conditions[{name!r}] has batch size {cond.batch_size} but conditions[{first!r}] has "
                    f"{size}; all conditions must share the batch size"
                )
        return size

    def num_branches(self, conditions: Mapping[str, ConditionTensors] | None) -> int:
        """3 for double CFG, 2 for plain CFG, 1 without conditions."""
        if not conditions:
            return 1
        if self.settings.cfg_coef_beta is not None and STYLE_KEY in conditions and len(conditions) >= 2:
            return 3
        return 2

    def guidance_conditions(
        self, conditions: Mapping[str, ConditionTensors] | None
    ) -> tuple[dict[str, ConditionTensors], int]:
        """Stack the guidance branches along the batch: returns ``(stacked, num_branches)``.

        Each stacked condition has ``num_branches * B`` rows, in the order ``[full; style only; null]``
        (double CFG: every non-style condition is nulled in the middle branch) or ``[full; null]``.
        """
        self.batch_size(conditions)
        n = self.num_branches(conditions)
        if conditions is None or n == 1:
            return {}, 1
        full = dict(conditions)
        null = {name: cond.null() for name, cond in full.items()}
        if n == 2:
            return stack_conditions([full, null]), 2
        style_only = {name: cond if name == STYLE_KEY else null[name] for name, cond in full.items()}
        return stack_conditions([full, style_only, null]), 3

    def combine(self, logits: Tensor, num_branches: int) -> Tensor:
        """Guide stacked ``logits [num_branches * B, ...]`` into ``[B, ...]`` (float32)."""
        if num_branches not in (1, 2, 3):
            raise ValueError(f"num_branches must be 1, 2 or 3, got {num_branches!r}")
        if logits.shape[0] % num_branches:
            raise ValueError(
                f"logits batch {logits.shape[0]} is not a multiple of num_branches={num_branches}"
            )
        s = self.settings
        if num_branches == 1:
            return logits.float()
        if num_branches == 2:
            cond, null = logits.chunk(2, dim=0)
            return cfg(cond, null, s.cfg_coef)
        assert s.cfg_coef_beta is not None
        full, style, null = logits.chunk(3, dim=0)
        return double_cfg(full, style, null, s.cfg_coef, s.cfg_coef_beta)

    def sample(self, guided: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw tokens ``[...]`` from guided ``logits [..., card]`` with this sampler's settings."""
        s = self.settings
        return sample_next(
            guided, top_k=s.top_k, top_p=s.top_p, temperature=s.temperature, generator=generator
        )

    @torch.no_grad()
    def step(
        self,
        logits_fn: LogitsFn,
        tokens: Tensor,
        conditions: Mapping[str, ConditionTensors] | None,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """One guided step: ``logits_fn(tokens repeated, stacked conditions)`` once, combine, sample.

        Args:
            logits_fn: any callable ``(tokens [nB, ...], conditions) -> logits [nB, ..., card]``.
            tokens: the model input for the B samples ``[B, ...]``.
            conditions: name -> ``ConditionTensors [B, S, D]`` ("text" and/or "style"), or None.
            generator: optional random generator.

        Returns:
            next tokens ``[B, ...]`` (the logits' leading shape without ``card``).
        """
        size = self.batch_size(conditions)
        if size is not None and tokens.shape[0] != size:
            raise ValueError(f"tokens has batch size {tokens.shape[0]} but the conditions have {size}")
        stacked, n = self.guidance_conditions(conditions)
        batch = tokens if n == 1 else torch.cat([tokens] * n, dim=0)
        logits = logits_fn(batch, stacked)
        if not isinstance(logits, Tensor) or logits.shape[0] != batch.shape[0]:
            got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"logits_fn must return logits [{batch.shape[0]}, ..., card], got {got}")
        return self.sample(self.combine(logits, n), generator=generator)
