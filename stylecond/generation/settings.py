"""``SamplingSettings``: guidance and sampling knobs, with their defaults written once."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from stylecond.generation.cfg import check_coef


def check_sampling_args(top_k: object, top_p: object, temperature: object) -> tuple[int, float, float]:
    """Validate sampling settings; returns them as ``(int, float, float)`` or raises ValueError naming the bad one."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or int(top_k) < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0.0 <= float(top_p) <= 1.0:
        raise ValueError(f"top_p must be a float in [0, 1] (0 = no nucleus filter), got {top_p!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(float(temperature))
        or float(temperature) < 0.0
    ):
        raise ValueError(f"temperature must be a finite float >= 0 (0 = greedy), got {temperature!r}")
    return int(top_k), float(top_p), float(temperature)


@dataclass(frozen=True)
class SamplingSettings:
    """How each next token is drawn: classifier-free guidance, then top-k / top-p / temperature sampling.

    Used by :class:`~stylecond.generation.sampler.DoubleCFGSampler`, ``StyleMusicGen.generate()``,
    ``stylecond generate`` (``--cfg``, ``--beta``, ``--top-k``, ``--top-p``, ``--temperature``) and
    ``GenerationPreview``. The defaults are MusicGen-Style's: alpha 3, beta 5, top-k 250, temperature 1.

    Args:
        cfg_coef: guidance strength alpha (1 = no guidance).
        cfg_coef_beta: double-CFG beta, how hard the text is pushed over the style (1 = plain CFG on the
            full condition); None = plain CFG always.
        top_k: sample among the k most likely tokens (0 = no limit).
        top_p: nucleus mass in [0, 1] (0 = off).
        temperature: softmax temperature (0 = greedy).
    """

    cfg_coef: float = 3.0
    cfg_coef_beta: float | None = 5.0
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the validated values in place
        set_(self, "cfg_coef", check_coef(self.cfg_coef, "cfg_coef"))
        if self.cfg_coef_beta is not None:
            set_(self, "cfg_coef_beta", check_coef(self.cfg_coef_beta, "cfg_coef_beta"))
        top_k, top_p, temperature = check_sampling_args(self.top_k, self.top_p, self.temperature)
        set_(self, "top_k", top_k)
        set_(self, "top_p", top_p)
        set_(self, "temperature", temperature)

    def replace(self, **changes: Any) -> SamplingSettings:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)
