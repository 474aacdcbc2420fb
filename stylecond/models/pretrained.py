"""``save_pretrained`` / ``from_pretrained``: a directory with ``config.yaml`` + ``model.safetensors``.

No training state and no pickles: the config is YAML (``class_path`` / ``init_args``), the weights are
safetensors. Frozen pretrained parts (text encoder, feature extractor, EnCodec) are not stored; they are
reloaded by name or path from the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser
from lightning import LightningModule
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"


def add_model_links(parser: ArgumentParser, model_key: str = "model") -> None:
    """Link the values a StyleMusicGen config shares, once: ``lm.dim`` -> the conditioners' ``output_dim``,
    the codec's ``num_codebooks`` / ``codebook_size`` -> the LM's (used by the CLI and by the loaders, so a
    stored config without link targets rebuilds the same model)."""
    m = f"{model_key}.init_args"
    for cond in ("text_conditioner", "style_conditioner"):
        parser.link_arguments(f"{m}.lm.init_args.dim", f"{m}.{cond}.init_args.output_dim")
    parser.link_arguments(f"{m}.codec.init_args.num_codebooks", f"{m}.lm.init_args.num_codebooks")
    parser.link_arguments(f"{m}.codec.init_args.codebook_size", f"{m}.lm.init_args.card")


def instantiate_model(config: dict[str, Any]) -> LightningModule:
    """Instantiate a LightningModule from a ``{class_path, init_args}`` dict (no weights)."""
    if "class_path" not in config:
        raise ValueError(f"model config needs a 'class_path' key; got keys {sorted(config)}")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningModule, "model", required=True)
    add_model_links(parser)
    cfg = parser.parse_object({"model": config})
    model = parser.instantiate_classes(cfg).model
    model.model_config = config
    return model


def save_pretrained(model: LightningModule, directory: str | Path, *, config: dict[str, Any]) -> Path:
    """Write ``config.yaml`` and ``model.safetensors`` for ``model`` into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def from_pretrained(directory: str | Path, *, map_location: str | torch.device = "cpu") -> LightningModule:
    """Load a model written by :func:`save_pretrained` (or ``stylecond export``)."""
    path = Path(directory)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found: is {path} a stylecond export directory?")
    config = yaml.safe_load((path / CONFIG_NAME).read_text())
    model = instantiate_model(config)
    model.configure_model()
    state = load_file(str(path / WEIGHTS_NAME), device=str(map_location))
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """A Lightning checkpoint of ``stylecond fit`` -> a :func:`from_pretrained` directory in ``out_dir``.

    The checkpoint is read with ``torch.load(weights_only=True)`` (no unpickling of code); the model is
    rebuilt from the config it carries and written with :func:`save_pretrained`.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    config = config_from_checkpoint(ckpt, path=path)
    model = instantiate_model(config)
    model.configure_model()
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return save_pretrained(model, out_dir, config=config)


def config_from_checkpoint(checkpoint: dict[str, Any], *, path: str | Path = "checkpoint") -> dict[str, Any]:
    """The model config stored in a Lightning checkpoint by ``StyleMusicGen.on_save_checkpoint``."""
    config = checkpoint.get("stylecond_config")
    if not config:
        raise ValueError(
            f"{path} carries no 'stylecond_config': it was not written by `stylecond fit` "
            "(or the model was built without a config)"
        )
    return dict(config)
