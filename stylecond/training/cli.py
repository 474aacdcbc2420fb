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

from collections.abc import Sequence
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

_M = "model.init_args"
#: codec attribute -> datamodule init arg
_CODEC_TO_DATA = {
    "sample_rate": "sample_rate",
    "frame_rate": "codec_frame_rate",
    "num_codebooks": "codec_num_codebooks",
    "cardinality": "codec_cardinality",
    "codec_id": "codec_id",
}


def _codec_attr(name: str) -> Any:
    def compute(model: L.LightningModule) -> Any:
        codec = getattr(model, "codec", None)
        return None if codec is None else getattr(codec, name)

    return compute


class StyleCondCLI(LightningCLI):
    """LightningCLI with stylecond's argument links and safe checkpoint loading."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for cond in ("text_conditioner", "style_conditioner"):
            parser.link_arguments(f"{_M}.lm.init_args.dim", f"{_M}.{cond}.init_args.output_dim")
        parser.link_arguments(f"{_M}.codec.init_args.num_codebooks", f"{_M}.lm.init_args.num_codebooks")
        parser.link_arguments(f"{_M}.codec.init_args.codebook_size", f"{_M}.lm.init_args.card")
        for attr, target in _CODEC_TO_DATA.items():
            parser.link_arguments("model", f"data.init_args.{target}", _codec_attr(attr), apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        dumped = yaml.safe_load(self.parser.dump(cfg, skip_link_targets=False, skip_none=False, format="yaml"))
        self._model_config: dict[str, Any] = dumped.get("model", {})
        ckpt_key = "ckpt_path"
        if sub and cfg.get(ckpt_key) and cfg.get("weights_only") is None:
            cfg["weights_only"] = True  # never unpickle a checkpoint

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if hasattr(self.model, "model_config"):
            self.model.model_config = self._model_config


def run_lightning_cli(args: Sequence[str]) -> StyleCondCLI:
    """Run LightningCLI on ``args`` (``[subcommand, *options]``)."""
    return StyleCondCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=list(args),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"default_env": False},
        auto_configure_optimizers=False,
    )
