"""Classifier-free guidance (plain and double), token sampling and the KV-cached generation loop."""

from __future__ import annotations

from stylecond.generation.cfg import cfg, double_cfg
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.generation.sampling import sample_next
from stylecond.generation.settings import SamplingSettings

__all__ = ["DoubleCFGSampler", "SamplingSettings", "cfg", "double_cfg", "sample_next"]
