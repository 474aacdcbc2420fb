"""``stylecond export CKPT OUT_DIR``: a training checkpoint -> ``config.yaml`` + ``model.safetensors``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylecond.models.pretrained import config_from_checkpoint, instantiate_model, save_pretrained


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="Lightning checkpoint written by `stylecond fit`.")
    parser.add_argument("out_dir", type=Path, help="Directory to write config.yaml and model.safetensors.")


def export_checkpoint(checkpoint: Path, out_dir: Path) -> Path:
    """Load ``checkpoint`` safely (``weights_only=True``) and write a ``from_pretrained`` directory."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = config_from_checkpoint(ckpt, path=checkpoint)
    model = instantiate_model(config)
    model.configure_model()
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return save_pretrained(model, out_dir, config=config)


def run(args: argparse.Namespace) -> int:
    try:
        out = export_checkpoint(args.checkpoint, args.out_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"stylecond export: {err}")
        return 2
    print(f"exported {args.checkpoint} -> {out}")
    return 0
