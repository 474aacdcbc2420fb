"""Training throughput: a full stylecond training step against transformers' MusicGen decoder.

For each size (``stylecond.lm.presets``), builds a random-initialised ``MusicLM`` (4 codebooks x 2048, text
cross-attention) and a ``transformers.MusicgenForCausalLM`` of the same dimensions (no download), and
times one full training step on the same batch: forward, masked cross-entropy over the K codebooks,
backward, ``torch.optim.AdamW`` step (fused where the build has it, the same for both). Tokens/s counts
codec frames x codebooks trained per second.

It also measures the frozen text encoder's share of a step: the packaged all-MiniLM-L6-v2
(``MiniLMTextConditioner``, verified sha256) encoding B distinct ~16-token captions, without and with
its caption cache (``cache_size``: a run whose captions repeat encodes each one once).

Usage: ``python benchmarks/bench_train.py --sizes base,small --batch 4 --seconds 5 --repeats 3``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from stylecond.conditioners.types import ConditionTensors  # noqa: E402
from stylecond.lm.music_lm import MusicLM  # noqa: E402
from stylecond.lm.presets import PRESETS  # noqa: E402

K, CARD, FRAME_RATE, TEXT_TOKENS = 4, 2048, 50.0, 16
CAPTIONS = [
    "warm jazz trio with brushed drums, walking upright bass and a mellow piano solo",
    "distorted rock guitar riff over pounding drums, energetic and loud, stadium anthem",
    "ambient pads slowly evolving with soft reverb, calm and meditative, no percussion",
    "upbeat funk groove with slap bass, tight horn stabs and a clavinet, danceable",
    "folk ballad with fingerpicked acoustic guitar, gentle harmonica and warm vocals",
    "chiptune melody with square wave arpeggios, fast tempo and playful video game mood",
    "driving techno beat with a rolling bassline, hypnotic synth stabs, 128 bpm",
    "lush string quartet, romantic and slow, with expressive cello and soaring violins",
]


def _adamw(params: Any) -> torch.optim.Optimizer:
    try:
        return torch.optim.AdamW(params, lr=1e-4, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=1e-4)


def _autocast(device: str, bf16: bool) -> Any:
    """bf16 mixed precision (fp32 weights and optimizer) when ``bf16``, else a no-op context."""
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16)


def _best(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (allocations, optimizer state)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ours_step(
    size: str, codes: torch.Tensor, cross: ConditionTensors, device: str, bf16: bool
) -> Callable[[], float]:
    lm = MusicLM.from_preset(size, num_codebooks=K, card=CARD, cross_attention=True).to(device).train()
    opt = _adamw(lm.parameters())

    def step() -> float:
        with _autocast(device, bf16):
            out = lm(codes, cross=cross)
            loss = lm.compute_loss(out, codes).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    step.params = sum(p.numel() for p in lm.parameters())  # type: ignore[attr-defined]
    return step


def hf_step(
    size: str, codes: torch.Tensor, cross: ConditionTensors, device: str, bf16: bool
) -> Callable[[], float]:
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    p = PRESETS[size]
    config = MusicgenDecoderConfig(vocab_size=CARD, num_codebooks=K, hidden_size=p.dim, num_attention_heads=p.num_heads,
                                   num_hidden_layers=p.num_layers, ffn_dim=p.ffn_dim or 4 * p.dim, dropout=0.0,
                                   max_position_embeddings=4096, pad_token_id=CARD, bos_token_id=CARD,
                                   decoder_start_token_id=CARD)  # fmt: skip
    model = MusicgenForCausalLM(config).to(device).train()
    opt = _adamw(model.parameters())
    labels = codes.transpose(1, 2).contiguous()  # [B, T, K]: the model shifts and delays them itself

    def step() -> float:
        with _autocast(device, bf16):
            out = model(labels=labels, encoder_hidden_states=cross.embeddings,
                        encoder_attention_mask=cross.mask.long())  # fmt: skip
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    return step


def text_encoder_seconds(batch: int, dim: int, repeats: int, cache: bool) -> float:
    from stylecond.conditioners.minilm import MiniLMTextConditioner

    conditioner = MiniLMTextConditioner(
        output_dim=dim, word_dropout=0.0, cache_size=1024 if cache else 0
    ).load()
    texts = [CAPTIONS[i % len(CAPTIONS)] + f" take {i}" for i in range(batch)]
    with torch.no_grad():
        return _best(lambda: conditioner(texts), repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="base,small", help="comma-separated MusicLM presets")
    parser.add_argument("--precisions", default="fp32,bf16-mixed", help="comma-separated: fp32, bf16-mixed")
    parser.add_argument("--batch", type=int, default=4, help="rows per step")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of audio per row (50 frames/s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per model (best is reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--no-hf", action="store_true", help="skip transformers (ours and the text encoder only)"
    )
    args = parser.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    precisions = [p for p in args.precisions.split(",") if p]
    if any(s not in PRESETS for s in sizes) or not sizes:
        parser.error(f"--sizes must name presets among {sorted(PRESETS)}; got {args.sizes!r}")
    if any(p not in ("fp32", "bf16-mixed") for p in precisions) or not precisions:
        parser.error(f"--precisions must be fp32 and/or bf16-mixed; got {args.precisions!r}")
    if args.batch < 1 or args.seconds <= 0 or args.repeats < 1:
        parser.error("--batch, --seconds and --repeats must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames = round(args.seconds * FRAME_RATE)
    tokens = args.batch * frames * K
    print(f"# device={device} threads={torch.get_num_threads()} batch={args.batch} frames={frames} "
          f"(tokens/step={tokens}), text cross-attention of {TEXT_TOKENS} tokens, AdamW")  # fmt: skip
    print("| size | params | precision | ours ms/step | ours tokens/s | HF ms/step | HF tokens/s | ours/HF |")
    print("|---|---|---|---|---|---|---|---|")
    step_ms: dict[str, float] = {}
    for size in sizes:
        g = torch.Generator().manual_seed(0)
        codes = torch.randint(0, CARD, (args.batch, K, frames), generator=g).to(device)
        dim = PRESETS[size].dim
        cross = ConditionTensors(torch.randn(args.batch, TEXT_TOKENS, dim, generator=g).to(device),
                                 torch.ones(args.batch, TEXT_TOKENS, dtype=torch.bool, device=device))  # fmt: skip
        for precision in precisions:
            bf16 = precision == "bf16-mixed"
            ours = ours_step(size, codes, cross, device, bf16)
            t_ours = _best(ours, args.repeats)
            params = ours.params  # type: ignore[attr-defined]
            del ours
            step_ms.setdefault(size, 1e3 * t_ours)
            t_hf = None if args.no_hf else _best(hf_step(size, codes, cross, device, bf16), args.repeats)
            hf = (
                ["-"] * 3
                if t_hf is None
                else [f"{1e3 * t_hf:.0f}", f"{tokens / t_hf:.0f}", f"{t_hf / t_ours:.2f}x"]
            )
            cells = [
                size,
                f"{params / 1e6:.0f}M",
                precision,
                f"{1e3 * t_ours:.0f}",
                f"{tokens / t_ours:.0f}",
                *hf,
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
    print()
    print(f"# frozen text encoder: MiniLM on {args.batch} distinct ~16-token captions, share of (encoder + LM "
          f"step at {precisions[0]}); cached: every caption seen before (cache_size > 0)")  # fmt: skip
    print("| size | encoder ms | share | cached ms | cached share |")
    print("|---|---|---|---|---|")
    plain = 1e3 * text_encoder_seconds(args.batch, 512, args.repeats, cache=False)
    cached = 1e3 * text_encoder_seconds(args.batch, 512, args.repeats, cache=True)
    for size, ms in step_ms.items():
        print(f"| {size} | {plain:.1f} | {100 * plain / (plain + ms):.0f}% | {cached:.2f} | "
              f"{100 * cached / (cached + ms):.1f}% |")  # fmt: skip


if __name__ == "__main__":
    main()
