"""The sampling flags shared by ``stylecond generate`` and ``stylecond evaluate``, built on ``SamplingSettings``."""

from __future__ import annotations

import argparse

from stylecond.generation.settings import SamplingSettings

DEFAULTS = SamplingSettings()

#: SamplingSettings field -> command-line flag
FLAGS = {
    "cfg_coef": "--cfg",
    "cfg_coef_beta": "--beta",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "temperature": "--temperature",
}


def add_sampling_arguments(parser: argparse.ArgumentParser, *, beta: bool = True) -> None:
    """``--cfg``, ``--beta`` (unless ``beta=False``), ``--top-k``, ``--top-p`` and ``--temperature``."""
    d = DEFAULTS
    parser.add_argument(
        "--cfg", type=float, default=d.cfg_coef, help=f"Guidance strength alpha (default {d.cfg_coef:g})."
    )
    if beta:
        parser.add_argument(
            "--beta",
            type=float,
            default=d.cfg_coef_beta,
            help=f"Double-CFG beta, the text push over the style; 1 = plain CFG (default {d.cfg_coef_beta:g}).",
        )
    parser.add_argument(
        "--top-k",
        type=int,
        default=d.top_k,
        help=f"Sample among the k most likely tokens; 0 = no limit (default {d.top_k}).",
    )
    parser.add_argument(
        "--top-p",
        type=float,
        default=d.top_p,
        help=f"Nucleus sampling mass in [0, 1]; 0 = off (default {d.top_p:g}).",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=d.temperature,
        help=f"Softmax temperature; 0 = greedy (default {d.temperature:g}).",
    )


def sampling_from_args(args: argparse.Namespace, *, beta: bool = True, **fields: object) -> SamplingSettings:
    """``SamplingSettings`` from the parsed flags (``--beta`` too unless ``beta=False``; ``fields`` override
    them); errors name the flag."""
    values: dict[str, object] = {
        "cfg_coef": args.cfg,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "temperature": args.temperature,
    }
    if beta:
        values["cfg_coef_beta"] = args.beta
    values.update(fields)
    return settings_or_flag_error(values)


def settings_or_flag_error(values: dict[str, object]) -> SamplingSettings:
    """``SamplingSettings(**values)``; a bad value raises ValueError starting with its flag."""
    try:
        return SamplingSettings(**values)  # type: ignore[arg-type]
    except ValueError as err:
        msg = str(err)
        for field, flag in sorted(FLAGS.items(), key=lambda item: -len(item[0])):  # cfg_coef_beta first
            if msg.startswith(field):
                raise ValueError(f"{flag}: {msg}") from err
        raise
