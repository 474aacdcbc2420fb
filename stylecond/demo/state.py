"""The state the demo stages share: each stage reads what earlier ones produced and adds its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import Tensor

from stylecond.demo.settings import DemoSettings

if TYPE_CHECKING:
    from datamodules.synth import SynthClip
    from stylecond.codecs.mel_codec import MelCodec
    from stylecond.demo.grid import Generation
    from stylecond.models.style_musicgen import StyleMusicGen


@dataclass
class DemoState:
    """Paths, settings and the artefacts of every stage (``summary`` ends up in ``summary.json``)."""

    out: Path
    settings: DemoSettings
    config: Path
    console: Console = field(default_factory=Console)
    sample_rate: int = 16000
    codec_args: dict[str, Any] = field(default_factory=dict)
    codec: MelCodec | None = None
    heldout: list[SynthClip] = field(default_factory=list)  # classifier training clips
    references: list[SynthClip] = field(default_factory=list)  # style references of the grid
    roundtrips: list[Tensor] = field(default_factory=list)  # [C, T] codec round trips of the references
    checkpoint: Path | None = None
    model: StyleMusicGen | None = None
    generations: list[Generation] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def shards(self) -> Path:
        return self.out / "shards"

    @property
    def codec_dir(self) -> Path:
        return self.out / "mel_codec"

    @property
    def model_dir(self) -> Path:
        return self.out / "model"

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage, announce it and record its wall-clock seconds in ``summary['timings']``."""
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 1)
        self.console.print(f"[dim]{name}: {self.timings[name]:.1f} s")

    def progress(self, *, eta: bool = False) -> Progress:
        """A rich progress bar on the demo console (with a time-remaining column when ``eta``)."""
        timer = TimeRemainingColumn() if eta else TimeElapsedColumn()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), timer)
        return Progress(*columns, console=self.console)

    def write_summary(self) -> Path:
        self.summary["timings_seconds"] = dict(self.timings)
        path = self.out / "summary.json"
        path.write_text(json.dumps(self.summary, indent=2, default=str))
        return path
