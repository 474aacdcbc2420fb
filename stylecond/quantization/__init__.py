"""Vector quantization bottlenecks."""

from __future__ import annotations

from stylecond.quantization.rvq_bottleneck import RVQBottleneck, RVQOutput

__all__ = ["RVQBottleneck", "RVQOutput"]
