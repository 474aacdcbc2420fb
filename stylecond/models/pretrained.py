"""``save_pretrained`` / ``from_pretrained``: a directory with ``config.yaml`` + ``model.safetensors``.

No training state and no pickles: the config is YAML (``class_path`` / ``init_args``), the weights are
safetensors. Frozen pretrained parts (text encoder, feature extractor, EnCodec) are not stored; they are
reloaded by name or path from the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError, ArgumentParser
from lightning import LightningModule
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stylecond.models.config_safety import checked_config, read_config_file

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


def fill_link_targets(config: dict[str, Any], model: Any) -> dict[str, Any]:
    """``config`` with the values :func:`add_model_links` links, read from the built ``model``.

    A config dumped by the CLI leaves link targets out, and a link whose source the chosen class lacks
    (``EncodecCodec`` has no ``codebook_size`` init arg) is not re-derived when the config is loaded
    again: writing the built values in makes a stored config rebuild the same model.
    """
    args = config.get("init_args", {})
    lm = args.get("lm")
    if isinstance(lm, dict):
        lm.setdefault("init_args", {}).update(
            num_codebooks=int(model.lm.num_codebooks), card=int(model.lm.card)
        )
    for name in ("text_conditioner", "style_conditioner"):
        part = args.get(name)
        if isinstance(part, dict) and getattr(model, name, None) is not None:
            part.setdefault("init_args", {})["output_dim"] = int(getattr(model, name).output_dim)
    return config


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


def save_pretrained(
    model: LightningModule,
    directory: str | Path,
    *,
    config: dict[str, Any],
    state: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``config.yaml`` and ``model.safetensors`` (``state``, default ``model.state_dict()``)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in (state or model.state_dict()).items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    (out / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def from_pretrained(
    directory: str | Path,
    *,
    map_location: str | torch.device = "cpu",
    allow_class_paths: Iterable[str] = (),
    trust_remote_code: bool = False,
) -> LightningModule:
    """Load a model written by :func:`save_pretrained` (or ``stylecond export``). The config may name only
    stylecond's classes and ``allow_class_paths``, and runs repository code only with ``trust_remote_code``
    (:mod:`stylecond.models.config_safety`); a damaged file gets a ValueError naming it."""
    path = Path(directory)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name} not found: is {path} a stylecond export directory?")
    config = checked_config(
        read_config_file(path / CONFIG_NAME),
        source=str(path / CONFIG_NAME),
        allow_class_paths=allow_class_paths,
        trust_remote_code=trust_remote_code,
    )
    model = build_model(config, source=path / CONFIG_NAME)
    model.configure_model()
    state = read_weights(path / WEIGHTS_NAME, device=str(map_location))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[:3]
        raise ValueError(
            f"{path / WEIGHTS_NAME} does not fit {path / CONFIG_NAME}: {' '.join(first)}"
        ) from None
    return model.to(map_location).eval()


def build_model(config: dict[str, Any], *, source: str | Path) -> LightningModule:
    """:func:`instantiate_model`, with a config error reported as a ValueError naming ``source``."""
    try:
        return instantiate_model(config)
    except (ArgumentError, TypeError, KeyError) as err:
        message = " ".join(str(err).split())
        raise ValueError(f"{source}: the model config does not build: {message[:400]}") from None


def read_weights(path: str | Path, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path``; a ValueError naming it when it is truncated or corrupt."""
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} cannot be read as safetensors (truncated or corrupt?): {err}") from None


def load_initial_weights(
    model: LightningModule, directory: str | Path, *, new_parts: tuple[str, ...] = ()
) -> None:
    """Initialise ``model`` from the export in ``directory``: every tensor must fit (names and shapes),
    except those of the top-level ``new_parts``, which keep their fresh initialisation."""
    path = Path(directory)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    if not weights.is_file():
        raise FileNotFoundError(
            f"init_from: {weights} not found; give a stylecond export directory (stylecond convert / export)"
        )
    state = read_weights(weights)
    expected = model.state_dict()

    def is_new(key: str) -> bool:
        return key.split(".", 1)[0] in new_parts

    missing = sorted(k for k in expected if k not in state and not is_new(k))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(
        k for k in expected if k in state and not is_new(k) and state[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong:
        raise ValueError(
            f"init_from: {weights} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shapes {wrong[:5]} (init_new lists the parts that may be absent)"
        )
    model.load_state_dict({k: v for k, v in state.items() if not is_new(k)}, strict=False)
