"""``stylecond convert SRC OUT``: an audiocraft release, a transformers MusicGen or a stylecond export
(local directory or hub id) -> a stylecond export (``config.yaml`` + ``model.safetensors``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_PARTS = {"t5": "--t5", "mert": "--mert", "encodec": "--encodec"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", help="Local directory or hub id (facebook/musicgen-style, facebook/musicgen-small, ...)."
    )
    parser.add_argument(
        "out_dir", type=Path, help="Directory to write config.yaml and model.safetensors into."
    )
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of SOURCE.")
    parser.add_argument(
        "--format", choices=("auto", "stylecond", "audiocraft", "transformers"), default="auto",
        help="What SOURCE is (default: detected from its files).",
    )  # fmt: skip
    for part, flag in _PARTS.items():
        parser.add_argument(flag, default=None, metavar="NAME_OR_PATH",
                            help=f"audiocraft only: load the {part} part from here instead of the hub name the release names.")  # fmt: skip
    parser.add_argument("--local-files-only", action="store_true", help="Never contact the hub.")


def run(args: argparse.Namespace) -> int:
    import yaml
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from stylecond.models.conversion import convert

    console = Console(stderr=True)
    parts = {k: getattr(args, k) for k in _PARTS if getattr(args, k) is not None}
    start = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"converting {args.source}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, description="writing tensors", completed=done, total=total)

            report = convert(
                args.source, args.out_dir, revision=args.revision, local_files_only=args.local_files_only,
                format=args.format, progress=tick, **parts,
            )  # fmt: skip
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"stylecond convert: {err}", file=sys.stderr)
        return 2
    table = Table(title=f"{report.source} ({report.kind}) -> {report.out_dir}")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for part, n in sorted(report.parameters.items()):
        table.add_row(part, f"{n:,}")
    table.add_row("total", f"{sum(report.parameters.values()):,}", style="bold")
    out = Console()
    out.print(table)
    out.print("resolved config (frozen parts load from the names and paths below):")
    out.print(yaml.safe_dump(report.config, sort_keys=False), markup=False, highlight=False)
    out.print(f"converted in {time.perf_counter() - start:.1f} s: {report.out_dir}")
    return 0
