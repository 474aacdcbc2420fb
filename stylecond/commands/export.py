"""``stylecond export CKPT OUT_DIR``: a training checkpoint -> ``config.yaml`` + ``model.safetensors``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylecond.models.checkpoints import export_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="Checkpoint of `stylecond fit` (a file, or the directory of a sharded FSDP run).",
    )
    parser.add_argument("out_dir", type=Path, help="Directory to write config.yaml and model.safetensors.")
    parser.add_argument(
        "--adapters",
        action="store_true",
        help="LoRA fine-tuning: write only the adapters (OUT_DIR/adapters.safetensors) instead of the merged model.",
    )
    parser.add_argument(
        "--no-ema", action="store_true", help="Export the raw weights even when the run kept an EMA of them."
    )


def run(args: argparse.Namespace) -> int:
    try:
        out = export_checkpoint(
            args.checkpoint, args.out_dir, adapters_only=args.adapters, use_ema=not args.no_ema
        )
    except (FileNotFoundError, ValueError) as err:
        print(f"stylecond export: {err}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0
