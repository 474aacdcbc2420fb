"""``--allow-class-path`` and ``--trust-remote-code``: what a loaded model's config may run (shared by the
commands that load a model)."""

from __future__ import annotations

import argparse
from typing import Any


def add_trust_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-class-path",
        action="append",
        default=[],
        metavar="PATH",
        help="A class beyond stylecond's own that the model's config may name (repeatable). Configs naming "
        "any other class are refused: loading a model runs no code you did not choose.",
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Let parts whose config asks for a hub repository's own code run it (off: such requests are "
        "turned off with a warning). Only for repositories you trust.",
    )


def trust_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``from_pretrained`` keyword arguments of the flags above."""
    return {
        "allow_class_paths": tuple(args.allow_class_path),
        "trust_remote_code": bool(args.trust_remote_code),
    }
