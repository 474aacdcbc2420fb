"""``stylecond demo``: train and evaluate a small MusicGen-Style offline on synthetic music.

``stylecond demo --out demo_out`` (``make demo``) takes a few minutes on 2 CPU cores; ``--quick`` runs the
same stages with a tiny model in seconds (for tests). The stages live in :mod:`stylecond.demo`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny data and model: seconds, for tests")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, training and sampling (default 0)")
    parser.add_argument(
        "--config", type=Path, default=None, help="LightningCLI config (default: lightning_configs/demo.yaml)"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="cap on the training time in minutes (default: the config's trainer.max_time)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the main process (default 1: the data loader worker uses the other core)",
    )


def run(args: argparse.Namespace) -> int:
    from stylecond.demo.settings import FULL, QUICK, default_config

    config = Path(args.config) if args.config is not None else default_config()
    problems = []
    if not config.is_file():
        problems.append(f"--config {config} does not exist (run from a source checkout or pass --config)")
    if args.max_minutes is not None and not args.max_minutes > 0:
        problems.append(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.threads < 1:
        problems.append(f"--threads must be >= 1, got {args.threads}")
    if problems:
        print("stylecond demo: " + "; ".join(problems), file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from stylecond.demo.pipeline import run_demo

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    settings = (QUICK if args.quick else FULL).with_seed(args.seed)
    if args.max_minutes is not None:
        seconds = round(args.max_minutes * 60)
        limit = f"--trainer.max_time=00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        settings = replace(settings, fit_overrides=(*settings.fit_overrides, limit))
    start = time.perf_counter()
    try:
        state = run_demo(args.out, settings=settings, config=config)
    finally:
        torch.set_num_threads(threads)
    state.console.rule(f"[bold]done in {(time.perf_counter() - start) / 60:.1f} min: {state.out}")
    return 0
