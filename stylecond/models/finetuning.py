"""Fine-tuning a pretrained StyleMusicGen: what trains (everything, LoRA adapters, or the style conditioner),
LoRA through peft on the LM's attention and feed-forward layers, adapters saved alone or merged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

ADAPTER_PREFIX = "lm."


@dataclass(frozen=True)
class FineTuning:
    """What trains when a model starts from pretrained weights (``StyleMusicGen(init_from=...)``).

    Args:
        mode: ``full`` (every trainable part), ``lora`` (LoRA adapters on the LM's attention and
            feed-forward layers only; everything else frozen) or ``style`` (the style conditioner only).
        lora_rank: LoRA rank r.
        lora_alpha: LoRA scaling numerator (the update is scaled by alpha / r).
        lora_dropout: dropout on the LoRA branch's input.
        lora_targets: LM module names (suffixes) that get adapters: the fused QKV and output
            projections of self-attention, the cross-attention projections and the two FFN layers.
    """

    mode: Literal["full", "lora", "style"] = "full"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("in_proj", "out_proj", "q_proj", "kv_proj", "linear1", "linear2")

    def __post_init__(self) -> None:
        if self.mode not in ("full", "lora", "style"):
            raise ValueError(f"finetune.mode must be 'full', 'lora' or 'style'; got {self.mode!r}")
        if self.lora_rank < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise ValueError(
                f"finetune needs lora_rank >= 1, lora_alpha > 0, 0 <= lora_dropout < 1; got {self.lora_rank}, "
                f"{self.lora_alpha}, {self.lora_dropout}"
            )


def _lora_layer_type() -> type:
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("finetune.mode 'lora' needs peft: pip install 'stylecond[finetune]'") from err
    return LoraLayer


def has_lora(module: nn.Module) -> bool:
    """Whether LoRA adapters were added to ``module``."""
    try:
        layer_type = _lora_layer_type()
    except ImportError:
        return False
    return any(isinstance(m, layer_type) for m in module.modules())


def add_lora(lm: nn.Module, ft: FineTuning) -> None:
    """Add LoRA adapters to ``lm`` in place (peft); its own weights are frozen, the adapters trainable."""
    from peft import LoraConfig, inject_adapter_in_model

    _lora_layer_type()
    config = LoraConfig(
        r=ft.lora_rank,
        lora_alpha=ft.lora_alpha,
        lora_dropout=ft.lora_dropout,
        target_modules=list(ft.lora_targets),
        bias="none",
    )
    inject_adapter_in_model(config, lm)


def apply_finetuning(model: Any, ft: FineTuning) -> None:
    """Set what trains on ``model`` (a StyleMusicGen) for ``ft.mode``; idempotent."""
    if ft.mode == "full":
        return
    for p in model.parameters():
        p.requires_grad_(False)
    if ft.mode == "style":
        if model.style_conditioner is None:
            raise ValueError("finetune.mode 'style' needs a model with a style_conditioner")
        for name, p in model.style_conditioner.named_parameters():
            if not name.startswith("extractor.") or not getattr(
                model.style_conditioner.extractor, "frozen", True
            ):
                p.requires_grad_(True)
        return
    if not has_lora(model.lm):
        add_lora(model.lm, ft)
    for name, p in model.lm.named_parameters():
        p.requires_grad_("lora_" in name)


def frozen_parts(model: Any, ft: FineTuning | None) -> list[nn.Module]:
    """The top-level parts ``ft`` freezes, which stay in eval mode while the rest trains (no BatchNorm or
    codebook updates, no quantizer dropout, no dropout)."""
    if ft is None or ft.mode == "full":
        return []
    if ft.mode == "style":
        return [m for m in (model.lm, model.text_conditioner) if m is not None]
    return [m for m in (model.style_conditioner,) if m is not None]


def adapter_state_dict(model: Any) -> dict[str, Tensor]:
    """The LoRA tensors of ``model`` (names relative to the model, e.g. ``lm.transformer...lora_A...``)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if ".lora_" in k}


def merged_state_dict(model: Any) -> dict[str, Tensor]:
    """``model.state_dict()`` with every LoRA update merged into its base weight and the adapter tensors
    dropped, named as the plain model's (what an export of the fine-tuned model holds)."""
    layer_type = _lora_layer_type() if has_lora(model) else None
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if layer_type is None:
        return state
    for name, module in model.named_modules():
        if isinstance(module, layer_type):
            base = f"{name}.base_layer.weight"
            layer: Any = module
            delta = layer.get_delta_weight("default").detach().cpu()
            state[base] = (state[base].float() + delta.float()).to(state[base].dtype)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value.contiguous()
    return out


def save_adapters(model: Any, path: str | Path, *, ft: FineTuning, base_digest: str) -> Path:
    """Write the LoRA tensors alone (safetensors) with their settings and the base weights' digest."""
    from safetensors.torch import save_file

    tensors = adapter_state_dict(model)
    if not tensors:
        raise ValueError("the model has no LoRA adapters to save (finetune.mode is not 'lora')")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "stylecond-lora", "rank": str(ft.lora_rank), "alpha": str(ft.lora_alpha),
            "dropout": str(ft.lora_dropout), "targets": ",".join(ft.lora_targets), "base_digest": base_digest}  # fmt: skip
    save_file(tensors, str(out), metadata=meta)
    return out


def read_adapters(path: str | Path) -> tuple[FineTuning, str, Mapping[str, Tensor]]:
    """``(settings, base digest, tensors)`` of an adapter file written by :func:`save_adapters`."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a Mapping
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable adapter file ({err})") from err
    if meta.get("format") != "stylecond-lora":
        raise ValueError(
            f"{path} is not a stylecond LoRA adapter file (metadata format={meta.get('format')!r})"
        )
    ft = FineTuning(mode="lora", lora_rank=int(meta["rank"]), lora_alpha=int(float(meta["alpha"])),
                    lora_dropout=float(meta["dropout"]), lora_targets=tuple(meta["targets"].split(",")))  # fmt: skip
    return ft, meta.get("base_digest", ""), tensors


@torch.no_grad()
def load_adapters(model: Any, path: str | Path, *, base_digest: str) -> FineTuning:
    """Add the adapters of ``path`` to ``model`` (built from the same base weights) and load them."""
    ft, digest, tensors = read_adapters(path)
    if digest and digest != base_digest:
        raise ValueError(f"{path} was trained on other base weights than this model's (digest mismatch)")
    if not has_lora(model.lm):
        add_lora(model.lm, ft)
    expected = {k for k in model.state_dict() if ".lora_" in k}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit this model: missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    model.load_state_dict(tensors, strict=False)
    return ft
