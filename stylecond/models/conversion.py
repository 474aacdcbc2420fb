"""Load any supported source as a model, or convert it to a stylecond export (``config.yaml`` +
``model.safetensors``) without holding two copies of its weights."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning import LightningModule
from torch import Tensor

from stylecond.models.config_safety import read_config_file
from stylecond.models.pretrained import CONFIG_NAME, WEIGHTS_NAME, from_pretrained, instantiate_model
from stylecond.models.sources import Format, Source, read_source, resolve_source
from stylecond.utils.safetensors_io import write_safetensors


def check_state(model: LightningModule, state: Mapping[str, Tensor], *, source: str) -> None:
    """ValueError naming ``source`` unless ``state`` has exactly the model's tensors with their shapes."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source}: its weights do not fit the model its config describes: missing {missing[:6]}"
            f"{' ...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}{' ...' if len(unexpected) > 6 else ''}"
        )
    for name, target in expected.items():
        if tuple(state[name].shape) != tuple(target.shape):
            raise ValueError(
                f"{source}: {name} has shape {tuple(state[name].shape)}, the model expects {tuple(target.shape)}"
            )


def load_pretrained(
    source: str | Path,
    *,
    revision: str | None = None,
    map_location: str | torch.device = "cpu",
    local_files_only: bool = False,
    format: Format = "auto",
    allow_class_paths: Iterable[str] = (),
    trust_remote_code: bool = False,
    **parts: Any,
) -> LightningModule:
    """A ready model (eval mode) from a stylecond export, an audiocraft release or a transformers MusicGen
    (local directory or hub id). ``parts`` (audiocraft only): ``t5``, ``mert``, ``encodec`` (hub name or
    local path replacing the one the release names) and ``t5_revision``, ``mert_revision``, ``encodec_revision``.
    An export's config may name only stylecond's classes and ``allow_class_paths``, and runs repository
    code only with ``trust_remote_code`` (:mod:`stylecond.models.config_safety`)."""
    src = resolve_source(source, revision=revision, local_files_only=local_files_only, format=format)
    if src.kind == "stylecond":
        if parts:
            raise ValueError(
                f"{sorted(parts)} apply to audiocraft releases only; {src.name} is a stylecond export"
            )
        return from_pretrained(src.directory, map_location=map_location, allow_class_paths=allow_class_paths,
                               trust_remote_code=trust_remote_code)  # fmt: skip
    config, state = read_source(src, local_files_only=local_files_only, **parts)
    model = instantiate_model(config)
    check_state(model, state, source=src.name)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


@dataclass
class ConversionReport:
    """What :func:`convert` wrote: the source, its kind, the output directory, the resolved config and the
    parameter count per top-level part (``lm``, ``style_conditioner``, ...)."""

    source: str
    kind: str
    out_dir: Path
    config: dict[str, Any]
    parameters: dict[str, int] = field(default_factory=dict)


def _count(state: Mapping[str, Tensor]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, t in state.items():
        part = name.split(".", 1)[0]
        out[part] = out.get(part, 0) + t.numel()
    return out


def convert(
    source: str | Path,
    out_dir: str | Path,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    format: Format = "auto",
    progress: Callable[[int, int], None] | None = None,
    **parts: Any,
) -> ConversionReport:
    """Write ``source`` as a stylecond export in ``out_dir``.

    The source's tensors stay memory-mapped and are written one at a time in their stored dtype, so the
    conversion holds no second copy of the weights. The config and the weights are checked against the
    model (built on the meta device: no memory) before anything is written.
    """
    src: Source = resolve_source(source, revision=revision, local_files_only=local_files_only, format=format)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if src.kind == "stylecond":
        config = read_config_file(src.directory / CONFIG_NAME)  # a damaged export fails before any copy
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(src.directory / name, out / name)
        from safetensors import safe_open

        counts: dict[str, int] = {}
        with safe_open(str(out / WEIGHTS_NAME), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a Mapping
                part = key.split(".", 1)[0]
                counts[part] = counts.get(part, 0) + math.prod(f.get_slice(key).get_shape())
        return ConversionReport(src.name, src.kind, out, config, counts)
    config, state = read_source(src, local_files_only=local_files_only, **parts)
    with torch.device("meta"):
        model = instantiate_model(config)
    check_state(model, state, source=src.name)
    metadata = {
        "format": "pt",
        "converted_from": src.name,
        "source_kind": src.kind,
        "revision": str(revision or ""),
    }
    write_safetensors(out / WEIGHTS_NAME, state, metadata=metadata, progress=progress)
    (out / CONFIG_NAME).write_text(yaml.safe_dump(config, sort_keys=False))
    return ConversionReport(src.name, src.kind, out, config, _count(state))
