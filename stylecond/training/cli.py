"""LightningCLI for ``stylecond fit | validate | test | predict``.

Shared values are linked once here, so YAML never repeats them:

- ``model.lm.dim`` -> the text and style conditioners' ``output_dim``;
- the codec's ``num_codebooks`` / ``codebook_size`` (when given as init args) -> ``model.lm``;
- the instantiated model's codec ``sample_rate`` / ``frame_rate`` / ``num_codebooks`` / ``cardinality`` /
  ``codec_id`` -> the datamodule.

The resolved model config travels inside every checkpoint (``stylecond_config``), so
``stylecond export`` and ``from_pretrained`` rebuild the model without the original YAML.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from stylecond.models.pretrained import CONFIG_NAME, WEIGHTS_NAME, add_model_links, fill_link_targets

#: codec attribute -> datamodule init arg
_CODEC_TO_DATA = {
    "sample_rate": "sample_rate",
    "frame_rate": "codec_frame_rate",
    "num_codebooks": "codec_num_codebooks",
    "cardinality": "codec_cardinality",
    "codec_id": "codec_id",
}


class _CodecAttr:
    """Link compute function ``model -> model.codec.<name>`` (a class, not a closure: the parser that holds
    it is pickled with the trainer's SaveConfigCallback under ``ddp_spawn``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, model: L.LightningModule) -> Any:
        codec = getattr(model, "codec", None)
        return None if codec is None else getattr(codec, self.name)


class StyleCondCLI(LightningCLI):
    """LightningCLI with stylecond's argument links and safe checkpoint loading."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_model_links(parser)
        for attr, target in _CODEC_TO_DATA.items():
            parser.link_arguments(
                "model", f"data.init_args.{target}", _CodecAttr(attr), apply_on="instantiate"
            )

    def before_instantiate_classes(self) -> None:
        sub = self.config.get("subcommand")
        dumped = yaml.safe_load(self.parser.dump(self.config))
        self._model_config: dict[str, Any] = (dumped[sub] if sub else dumped).get("model", {})
        cfg = self.config[sub] if sub else self.config
        if cfg.get("ckpt_path") and cfg.get("weights_only") is None:
            cfg["weights_only"] = True  # never unpickle a checkpoint

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if hasattr(self.model, "model_config"):
            self.model.model_config = fill_link_targets(self._model_config, self.model)


def expand_pretrained(args: Sequence[str]) -> list[str]:
    """``--pretrained DIR`` (a stylecond export) -> ``--model DIR/config.yaml`` right after the subcommand
    (so later ``-c`` configs override it: fine-tuning settings) and ``--model.init_args.init_from DIR``
    at the end. SystemExit(2) naming the flag when DIR is not an export."""
    out, pretrained = [], None
    items = list(args)
    i = 0
    while i < len(items):
        item = items[i]
        if item == "--pretrained" and i + 1 < len(items):
            pretrained, i = items[i + 1], i + 2
            continue
        if item.startswith("--pretrained="):
            pretrained = item.split("=", 1)[1]
        else:
            out.append(item)
        i += 1
    if pretrained is None:
        return out
    directory = Path(pretrained)
    if not (directory / CONFIG_NAME).is_file() or not (directory / WEIGHTS_NAME).is_file():
        print(
            f"stylecond: --pretrained: {directory} is not a stylecond export (config.yaml + model.safetensors); "
            "convert a release first: stylecond convert facebook/musicgen-style DIR",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return [
        *out[:1],
        "--model",
        str(directory / CONFIG_NAME),
        *out[1:],
        f"--model.init_args.init_from={directory}",
    ]


def check_ckpt_path(args: Sequence[str]) -> None:
    """A damaged ``--ckpt_path`` file: one line naming it and SystemExit(2), before Lightning reads it."""
    from stylecond.models.checkpoints import check_checkpoint_file

    items = list(args)
    for i, item in enumerate(items):
        value = None
        if item == "--ckpt_path" and i + 1 < len(items):
            value = items[i + 1]
        elif item.startswith("--ckpt_path="):
            value = item.split("=", 1)[1]
        if value is None or value in ("last", "best", "hpc", "registry", "null", ""):
            continue
        try:
            check_checkpoint_file(value)
        except ValueError as err:
            command = items[0] if items and not items[0].startswith("-") else "fit"
            print(f"stylecond {command}: --ckpt_path: {err}", file=sys.stderr)
            raise SystemExit(2) from None


def run_lightning_cli(args: Sequence[str], *, run: bool = True) -> StyleCondCLI:
    """Run LightningCLI on ``args`` (``[subcommand, *options]``), as if typed after ``stylecond``.

    ``--pretrained DIR`` starts from a stylecond export (see :func:`expand_pretrained`). ``run=False``
    builds the trainer, model and datamodule without running anything (``args`` then has no subcommand).
    """
    saved = sys.argv
    expanded = expand_pretrained(args if run else ["fit", *args])
    check_ckpt_path(expanded)
    # keep the real program path: DDP / FSDP relaunch it ([python, argv[0], ...]) for the other ranks
    sys.argv = [saved[0] if saved else "stylecond", *(expanded if run else expanded[1:])]
    try:
        return StyleCondCLI(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"default_env": False},
            auto_configure_optimizers=False,
            run=run,
        )
    finally:
        sys.argv = saved
