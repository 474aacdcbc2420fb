"""Tiny audiocraft models built, exported and reloaded by audiocraft's own code (reference env only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Reference:
    """An audiocraft ``MusicGen`` and the export directory it was loaded from."""

    musicgen: Any
    export: Path
    cfg: dict[str, Any]


def _perturb(module: torch.nn.Module, g: torch.Generator) -> None:
    """Non-trivial values everywhere (a loader that forgets a tensor fails), RVQ codebooks marked inited."""
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            if name.endswith("_codebook.inited"):
                t.fill_(1.0)  # else audiocraft's codebook runs k-means on its first batch, even in eval
            elif name.endswith("num_batches_tracked"):
                t.fill_(1000)
            elif name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith(("running_mean", "_codebook.embed", "_codebook.embed_avg")):
                t.copy_(torch.randn(t.shape, generator=g) * (0.1 if "running" in name else 1.0))
            elif name.endswith("_codebook.cluster_size"):
                t.copy_(torch.rand(t.shape, generator=g))
            elif t.is_floating_point():
                t.add_(0.02 * torch.randn(t.shape, generator=g))


def build(root: Path, name: str, cfg_dict: dict[str, Any], seed: int) -> Reference:
    from audiocraft.models import builders, loaders
    from audiocraft.models.musicgen import MusicGen
    from audiocraft.utils import export
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(cfg_dict)
    torch.manual_seed(seed)
    lm = builders.get_lm_model(cfg)
    _perturb(lm, torch.Generator().manual_seed(seed))
    checkpoint = root / f"{name}_checkpoint.th"  # the minimal training checkpoint export_lm reads
    torch.save(
        {"best_state": {"model": lm.state_dict()}, "fsdp_best_state": {}, "xp.cfg": cfg_dict}, checkpoint
    )
    out = root / name
    out.mkdir()
    export.export_lm(checkpoint, out / "state_dict.bin")
    export.export_pretrained_compression_model("facebook/encodec_32khz", out / "compression_state_dict.bin")
    musicgen = MusicGen(
        name, loaders.load_compression_model(out, device="cpu"), loaders.load_lm_model(out, device="cpu")
    )
    return Reference(musicgen, out, cfg_dict)
