"""The sampling flags shared by ``stylecond generate`` and ``stylecond evaluate``, built on ``SamplingSettings``.

A flag left out keeps the model's own default (``model.sampling``: MusicGen-Style's alpha 3, beta 5,
top-k 250 for stylecond models; what the config says for converted ones).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from stylecond.generation.settings import SamplingSettings

#: SamplingSettings field -> command-line flag
FLAGS = {
    "cfg_coef": "--cfg",
    "cfg_coef_beta": "--beta",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "temperature": "--temperature",
}
#: the value of --beta (or of a request's cfg_coef_beta) that asks for plain CFG
PLAIN_CFG = "none"


def _beta(text: str) -> float | str:
    if text.strip().lower() == PLAIN_CFG:
        return PLAIN_CFG
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--beta takes a number or 'none' (plain CFG), got {text!r}"
        ) from None


def add_sampling_arguments(parser: argparse.ArgumentParser, *, beta: bool = True) -> None:
    """``--cfg``, ``--beta`` (unless ``beta=False``), ``--top-k``, ``--top-p`` and ``--temperature``."""
    d = SamplingSettings()
    note = "default: the model's"
    parser.add_argument(
        "--cfg", type=float, default=None, help=f"Guidance strength alpha ({note}, usually {d.cfg_coef:g})."
    )
    if beta:
        parser.add_argument(
            "--beta", type=_beta, default=None,
            help=f"Double-CFG beta, the text push over the style; 1 or 'none' = plain CFG ({note}, usually {d.cfg_coef_beta:g}).",
        )  # fmt: skip
    parser.add_argument("--top-k", type=int, default=None, help=f"Sample among the k most likely tokens; 0 = no limit ({note}, usually {d.top_k}).")  # fmt: skip
    parser.add_argument("--top-p", type=float, default=None, help=f"Nucleus sampling mass in [0, 1]; 0 = off ({note}, usually {d.top_p:g}).")  # fmt: skip
    parser.add_argument("--temperature", type=float, default=None, help=f"Softmax temperature; 0 = greedy ({note}, usually {d.temperature:g}).")  # fmt: skip


def sampling_with(base: SamplingSettings, values: Mapping[str, object]) -> SamplingSettings:
    """``base`` with the given ``values`` (None = keep base's; ``cfg_coef_beta="none"`` = plain CFG);
    a bad value raises ValueError starting with its flag."""
    changes: dict[str, Any] = {k: (None if v == PLAIN_CFG else v) for k, v in values.items() if v is not None}
    try:
        return dataclasses.replace(base, **changes)
    except (ValueError, TypeError) as err:
        msg = str(err)
        for field, flag in sorted(FLAGS.items(), key=lambda item: -len(item[0])):  # cfg_coef_beta first
            if msg.startswith(field):
                raise ValueError(f"{flag}: {msg}") from err
        raise ValueError(msg) from err


def sampling_from_args(
    args: argparse.Namespace, base: SamplingSettings, *, beta: bool = True
) -> SamplingSettings:
    """``base`` (the model's defaults) with the flags that were given."""
    values = {
        f: getattr(args, flag[2:].replace("-", "_"))
        for f, flag in FLAGS.items()
        if beta or f != "cfg_coef_beta"
    }
    return sampling_with(base, values)
