"""The demo's stages in order, and :func:`run_demo`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from stylecond.demo.data import stage_codec, stage_heldout, stage_pretokenize, stage_shards
from stylecond.demo.grid import stage_generate
from stylecond.demo.report import stage_report
from stylecond.demo.settings import DemoSettings
from stylecond.demo.state import DemoState
from stylecond.demo.train import stage_export, stage_train

#: (title, stage) in the order they run.
STAGES: tuple[tuple[str, Callable[[DemoState], None]], ...] = (
    ("1/7 synthesize shards", stage_shards),
    ("2/7 fit the mel codec", stage_codec),
    ("3/7 pre-tokenize shards", stage_pretokenize),
    ("4/7 train (stylecond fit -c demo.yaml)", stage_train),
    ("5/7 export", stage_export),
    ("6/7 generate the grid", stage_generate),
    ("7/7 classify and report", stage_report),
)


def run_demo(
    out: str | Path, *, settings: DemoSettings, config: str | Path, console: Console | None = None
) -> DemoState:
    """Run every stage into ``out``; returns the final state (its ``summary`` is in ``summary.json``)."""
    state = DemoState(out=Path(out), settings=settings, config=Path(config), console=console or Console())
    state.out.mkdir(parents=True, exist_ok=True)
    stage_heldout(state)
    for title, stage in STAGES:
        with state.stage(title):
            stage(state)
    return state
