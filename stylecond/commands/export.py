"""``stylecond export CKPT OUT_DIR``: a training checkpoint -> ``config.yaml`` + ``model.safetensors``."""

from __future__ import annotations

import argparse
from pathlib import Path

from stylecond.models.pretrained import export_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="Lightning checkpoint written by `stylecond fit`.")
    parser.add_argument("out_dir", type=Path, help="Directory to write config.yaml and model.safetensors.")


def run(args: argparse.Namespace) -> int:
    try:
        out = export_checkpoint(args.checkpoint, args.out_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"stylecond export: {err}")
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0
