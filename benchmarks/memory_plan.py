"""Memory per GPU for training small, medium and large under DDP and FSDP, from real tensor sizes.

- Parameters: the trainable parts as the shipped configs build them (MusicLM preset, style conditioner
  of small.yaml / medium.yaml, text projection), instantiated on the meta device and counted; the frozen
  parts (T5-base encoder, MERT-v1-95M = HuBERT-base architecture, EnCodec 32 kHz) from their published
  architectures, also on the meta device. fp32 weights (bf16-mixed keeps fp32 master weights), fp32
  gradients, AdamW's two fp32 states, and the EMA callback's fp32 shadow of the trainable weights.
- Activations: what autograd saves for the backward pass, summed over the tensors it really saves
  (``torch.autograd.graph.saved_tensors_hooks``) in forward passes on CPU under bf16 autocast at the
  real width and sequence length, with 1 and 2 layers and 1 and 2 rows; memory is affine in layers and
  rows, so these four runs give it at any depth and batch exactly (parameters and their autocast copies
  are not counted twice: storages are deduplicated and parameter storages excluded). With activation
  checkpointing: what is saved outside the checkpointed layers, each layer's input (kept for the
  recomputation), and one layer's activations alive while it is recomputed.
- FSDP (FSDP2, one shard group over all N GPUs): parameters, gradients, AdamW and EMA divided by N; frozen
  parts whole on every GPU; plus two unsharded fp32 layers (the one computing and the one prefetched).

Not counted: the CUDA context and allocator slack (add 1-3 GiB), DDP's gradient buckets (about 25 MB by
default, transient), the transient peak of the loss over logits, data-loader pinned memory.

Usage: ``python benchmarks/memory_plan.py --batch 8 --seconds 30 --gpus 8``.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from stylecond.conditioners.style import StyleConditioner  # noqa: E402
from stylecond.conditioners.types import ConditionTensors  # noqa: E402
from stylecond.features.hf_encoder import HFAudioEncoderFeatures  # noqa: E402
from stylecond.layers.transformer_layer import TransformerLayer  # noqa: E402
from stylecond.lm.music_lm import MusicLM  # noqa: E402
from stylecond.lm.presets import preset_kwargs  # noqa: E402

K, CARD, FRAME_RATE = 4, 2048, 50.0
STYLE_TOKENS, TEXT_TOKENS = 15, 32  # a 3 s excerpt at 75 Hz / 15; a typical T5 caption (prefix tokens)
GIB = 2**30


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def trainable_params(size: str) -> int:
    """LM + style conditioner (small.yaml / medium.yaml settings) + T5 projection, built on the meta device."""
    with torch.device("meta"):
        lm = MusicLM(num_codebooks=K, card=CARD, **preset_kwargs(size))
        style = StyleConditioner(extractor=HFAudioEncoderFeatures(), output_dim=lm.dim, dim=512, num_layers=8,
                                 num_heads=8, ffn_dim=2048, bias=False, final_norm=False, num_codebooks=6,
                                 codebook_size=1024)  # fmt: skip
        text_proj = nn.Linear(768, lm.dim)
    return count(lm) + count(style) + count(text_proj)


def frozen_params() -> dict[str, int]:
    """T5-base's encoder, MERT-v1-95M (HuBERT-base) and EnCodec 32 kHz, from their architectures."""
    from transformers import EncodecConfig, EncodecModel, HubertConfig, HubertModel, T5Config, T5EncoderModel

    with torch.device("meta"):
        t5 = T5EncoderModel(
            T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
        )
        mert = HubertModel(HubertConfig())  # 768 wide, 12 layers: MERT-v1-95M's size
        encodec = EncodecModel(EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=64, hidden_size=128,
                                             num_lstm_layers=2, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048,
                                             target_bandwidths=[2.2], use_causal_conv=False, normalize=False))  # fmt: skip
    return {"T5-base encoder": count(t5), "MERT-v1-95M": count(mert), "EnCodec 32 kHz": count(encodec)}


@contextmanager
def saved_bytes(model: nn.Module, out: list[int]) -> Iterator[None]:
    """Sum the bytes of the distinct non-parameter storages autograd saves inside the block into ``out``."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            out[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


@functools.cache
def activation_bytes(size: str, *, layers: int, rows: int, frames: int, checkpointing: bool) -> int:
    """Saved-for-backward bytes of one bf16-autocast forward (LM with ``layers`` layers) on real CPU tensors."""
    torch.manual_seed(0)
    kwargs = {**preset_kwargs(size), "num_layers": layers}
    lm = MusicLM(num_codebooks=K, card=CARD, activation_checkpointing=checkpointing, **kwargs).train()
    codes = torch.randint(0, CARD, (rows, K, frames))
    prefix = ConditionTensors(torch.randn(rows, STYLE_TOKENS + TEXT_TOKENS, lm.dim),
                              torch.ones(rows, STYLE_TOKENS + TEXT_TOKENS, dtype=torch.bool))  # fmt: skip
    total = [0]
    inputs: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _m, a: inputs.append(a[0].nbytes)) for m in lm.modules()
             if isinstance(m, TransformerLayer)]  # fmt: skip
    with saved_bytes(lm, total), torch.autocast("cpu", dtype=torch.bfloat16):
        lm.compute_loss(lm(codes, prefix=prefix), codes)
    for hook in hooks:
        hook.remove()
    # checkpointed layers keep only their input for the recomputation
    return total[0] + (sum(inputs) if checkpointing else 0)


@dataclass
class Affine:
    """Bytes = base + per_layer * (layers - 1) + per_row terms, fitted on (1|2 layers) x (1|2 rows)."""

    b11: int
    b21: int
    b12: int
    b22: int

    def at(self, layers: int, rows: int) -> float:
        per_layer_row = (self.b22 - self.b12) - (self.b21 - self.b11)
        per_layer = (self.b21 - self.b11) - per_layer_row  # row-independent part of a layer (weight copies)
        per_row = (self.b12 - self.b11) - per_layer_row
        base = self.b11 - per_layer - per_row - per_layer_row
        return base + per_layer * layers + per_row * rows + per_layer_row * layers * rows


def activations(size: str, frames: int, rows: int, layers: int, checkpointing: bool) -> float:
    fit = Affine(*(activation_bytes(size, layers=n, rows=r, frames=frames, checkpointing=checkpointing)
                   for n, r in ((1, 1), (2, 1), (1, 2), (2, 2))))  # fmt: skip
    total = fit.at(layers, rows)
    if checkpointing:  # one layer's own activations are alive again while it is recomputed
        plain = Affine(*(activation_bytes(size, layers=n, rows=r, frames=frames, checkpointing=False)
                         for n, r in ((1, 1), (2, 1), (1, 2), (2, 2))))  # fmt: skip
        total += plain.at(2, rows) - plain.at(1, rows)
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,medium,large", help="comma-separated MusicLM presets")
    parser.add_argument("--batch", type=int, default=8, help="rows per GPU")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per row (50 frames/s)")
    parser.add_argument("--gpus", type=int, default=8, help="FSDP shard group size (all GPUs)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.gpus < 1 or not args.seconds > 0:
        parser.error("--batch, --gpus and --seconds must be positive")
    frames = round(args.seconds * FRAME_RATE)
    frozen = frozen_params()
    frozen_gib = 4 * sum(frozen.values()) / GIB
    print(f"# per GPU, GiB; {args.batch} x {args.seconds:g} s per GPU ({frames} frames + {STYLE_TOKENS + TEXT_TOKENS} "
          f"prefix tokens), bf16-mixed, AdamW, EMA; FSDP over {args.gpus} GPUs; frozen parts "
          + ", ".join(f"{k} {v / 1e6:.0f}M" for k, v in frozen.items()) + f" = {frozen_gib:.2f} GiB fp32 on every GPU")  # fmt: skip
    print("| size | trainable | strategy | weights | grads | AdamW | EMA | activations | activations (ckpt) "
          "| total | total (ckpt) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in [s for s in args.sizes.split(",") if s]:
        p = trainable_params(size)
        layers = preset_kwargs(size)["num_layers"]
        plain = activations(size, frames, args.batch, layers, checkpointing=False) / GIB
        ckpt = activations(size, frames, args.batch, layers, checkpointing=True) / GIB
        with torch.device("meta"):
            layer_params = count(MusicLM(num_codebooks=K, card=CARD, **{**preset_kwargs(size), "num_layers": 1})
                                 .transformer.layers[0])  # fmt: skip
        for strategy, shards in (("DDP", 1), ("FSDP", args.gpus)):
            weights = 4 * p / shards / GIB + frozen_gib + (2 * 4 * layer_params / GIB if shards > 1 else 0.0)
            grads, adam, ema = 4 * p / shards / GIB, 8 * p / shards / GIB, 4 * p / shards / GIB
            states = weights + grads + adam + ema
            cells = [size, f"{p / 1e6:.0f}M", strategy, f"{weights:.1f}", f"{grads:.1f}", f"{adam:.1f}",
                     f"{ema:.1f}", f"{plain:.1f}", f"{ckpt:.1f}", f"{states + plain:.1f}", f"{states + ckpt:.1f}"]  # fmt: skip
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
