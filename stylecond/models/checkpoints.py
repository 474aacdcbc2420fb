"""Training checkpoints of ``stylecond fit`` (single files, or sharded directories of FSDP runs) ->
an export directory (``stylecond export``)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from stylecond.models.config_safety import checked_config
from stylecond.models.pretrained import build_model
from stylecond.utils.ema_state import split_ema_state

#: rank 0's part of a sharded checkpoint directory (Lightning's ModelParallelStrategy)
SHARDED_METADATA = "meta.pt"


def read_training_checkpoint(checkpoint: str | Path) -> dict[str, Any]:
    """A checkpoint dict with a full ``state_dict``: a file read with ``torch.load(weights_only=True)``,
    or a sharded directory consolidated with ``torch.distributed.checkpoint`` (no unpickling of code)."""
    path = Path(checkpoint)
    if path.is_dir():
        return _read_sharded(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for damaged files
        raise ValueError(
            f"checkpoint {path} cannot be read (truncated or corrupt?): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"checkpoint {path} has no state_dict: it was not written by stylecond fit")
    return ckpt


def check_checkpoint_file(checkpoint: str | Path) -> None:
    """Fail fast, naming the file, when ``checkpoint`` cannot be a whole checkpoint: a missing path, a
    truncated or non-zip file (torch's format keeps its index at the end), a directory without
    ``meta.pt``. Reads only the zip index, not the tensors."""
    path = Path(checkpoint)
    if path.is_dir():
        if not (path / SHARDED_METADATA).is_file():
            raise ValueError(f"{path} is a directory but not a sharded checkpoint (no {SHARDED_METADATA})")
        return
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is not a readable checkpoint (truncated or corrupt?): {err}") from None
    if not any(name.endswith("data.pkl") for name in names):
        raise ValueError(f"{path} is a zip file but not a torch checkpoint (no data.pkl)")


def _read_sharded(path: Path) -> dict[str, Any]:
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    meta = path / SHARDED_METADATA
    if not meta.is_file():
        raise ValueError(f"{path} is a directory but not a sharded checkpoint (no {SHARDED_METADATA})")
    ckpt = torch.load(meta, map_location="cpu", weights_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "consolidated.pt"
        try:
            dcp_to_torch_save(str(path), str(full))
        except Exception as err:  # noqa: BLE001 - torch.distributed.checkpoint raises many types
            raise ValueError(f"sharded checkpoint {path} cannot be consolidated: {err}") from err
        shards = torch.load(full, map_location="cpu", weights_only=True)
    ckpt["state_dict"] = shards["state_dict"]
    return ckpt


def export_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, *, adapters_only: bool = False, use_ema: bool = True
) -> Path:
    """A checkpoint of ``stylecond fit`` -> a ``from_pretrained`` directory in ``out_dir`` (a fine-tuned
    model with its LoRA adapters merged; the EMA weights when the run averaged them and ``use_ema``), or
    only ``out_dir/adapters.safetensors``. The model is rebuilt from the config the checkpoint carries."""
    path = Path(checkpoint)
    ckpt = read_training_checkpoint(path)
    config = config_from_checkpoint(ckpt, path=path)
    config.get("init_args", {}).pop("init_from", None)  # the checkpoint holds every weight
    state = dict(ckpt["state_dict"])
    ema = split_ema_state(state)
    if ema and use_ema:
        state.update(ema)
    model = build_model(config, source=path)
    model.configure_model()
    model.load_state_dict(state, strict=True)
    exporter: Any = model
    if adapters_only:
        return Path(exporter.save_adapters(Path(out_dir) / "adapters.safetensors"))
    return Path(exporter.save_pretrained(out_dir))


def config_from_checkpoint(checkpoint: dict[str, Any], *, path: str | Path = "checkpoint") -> dict[str, Any]:
    """The model config stored in a Lightning checkpoint by ``StyleMusicGen.on_save_checkpoint``."""
    config = checkpoint.get("stylecond_config")
    if not config:
        raise ValueError(
            f"{path} carries no 'stylecond_config': it was not written by `stylecond fit` "
            "(or the model was built without a config)"
        )
    return checked_config(dict(config), source=str(path))
