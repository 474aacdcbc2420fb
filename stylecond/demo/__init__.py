"""``stylecond demo``: the whole pipeline offline on synthetic music, one function per stage.

Stages (each reads and extends a :class:`~stylecond.demo.state.DemoState`): SynthStyles shards ->
MelCodec fit -> pre-tokenized shards -> ``stylecond fit -c lightning_configs/demo.yaml`` -> export ->
a generation grid (style-only per eval_q, text-only, text+style per beta) -> style accuracy by a
nearest-centroid classifier fitted on held-out real clips (rich table, ``results.md``, PNG grid).
"""

from __future__ import annotations

from stylecond.demo.pipeline import STAGES, run_demo
from stylecond.demo.settings import FULL, QUICK, DemoSettings

__all__ = ["FULL", "QUICK", "STAGES", "DemoSettings", "run_demo"]
