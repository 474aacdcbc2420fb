"""The ``stylecond`` command: LightningCLI subcommands plus the package's own tools.

``fit | validate | test | predict`` go to LightningCLI (see :mod:`stylecond.training.cli`); every other
subcommand lives in its own module under :mod:`stylecond.commands` exposing ``add_arguments(parser)``
and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

LIGHTNING_SUBCOMMANDS: dict[str, str] = {
    "fit": "Train a model from a YAML config (LightningCLI).",
    "validate": "Run validation on a config / checkpoint (LightningCLI).",
    "test": "Run the test loop on a config / checkpoint (LightningCLI).",
    "predict": "Run prediction on a config / checkpoint (LightningCLI).",
}

#: subcommand -> (module under stylecond.commands, one-line help)
TOOL_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("generate", "Generate music from reference audio and/or a text prompt."),
    "export": ("export", "Export a training checkpoint to a from_pretrained directory."),
    "convert": (
        "convert",
        "Convert an audiocraft or transformers MusicGen (path or hub id) to a stylecond export.",
    ),
    "make-shards": ("make_shards", "Write WebDataset shards from audio folders or synthetic styles."),
    "invert": ("invert", "Textual inversion: learn a pseudo-word for reference audio."),
    "evaluate": ("evaluate", "Evaluate a model: FAD, KL, CLAP, KNN style metrics, report and plots."),
    "demo": ("demo", "Offline demo on the embedded defaults (synthetic styles, mel codec, MiniLM)."),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stylecond",
        description="Audio-conditioned music generation (MusicGen-Style) with PyTorch Lightning.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in LIGHTNING_SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    for name, (module, help_text) in TOOL_SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(_module=module)
    return parser


def _run_tool(name: str, module_name: str, argv: list[str]) -> int:
    try:
        module = importlib.import_module(f"stylecond.commands.{module_name}")
    except ModuleNotFoundError as err:
        if err.name != f"stylecond.commands.{module_name}":
            raise
        print(f"stylecond {name}: not yet available in this version.", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"stylecond {name}", description=TOOL_SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not args or args[0] in {"-h", "--help"}:
        parser.print_help()
        raise SystemExit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command in LIGHTNING_SUBCOMMANDS:
        from stylecond.training.cli import run_lightning_cli

        run_lightning_cli([command, *rest])
        raise SystemExit(0)
    if command in TOOL_SUBCOMMANDS:
        raise SystemExit(_run_tool(command, TOOL_SUBCOMMANDS[command][0], rest))
    parser.error(
        f"unknown command {command!r}; choose from {', '.join([*LIGHTNING_SUBCOMMANDS, *TOOL_SUBCOMMANDS])}"
    )
