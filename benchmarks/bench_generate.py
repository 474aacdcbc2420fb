"""Decoding speed of stylecond's KV-cached double-CFG generation vs transformers' MusicGen decoder.

For each size (``stylecond.lm.presets``) and dtype, builds a random-initialised ``MusicLM`` (4 codebooks x
2048) and a ``transformers.MusicgenForCausalLM`` of the same dimensions (from ``MusicgenDecoderConfig``, no
download), then times:

- ours: ``generate_codes`` with ``DoubleCFGSampler`` (text + style prefix conditions, 3 branches, so a
  3 x B batch per step; top-k 250);
- transformers: ``MusicgenForCausalLM.generate`` on a 3 x B batch (the CFG-equivalent amount of work;
  do_sample, top-k 250, KV cache).

dtypes: ``fp32``, ``bf16`` (``.to(torch.bfloat16)``, KV cache in bf16) and the modes of the opt-in
``stylecond.lm.quantize.quantize``: ``int4`` (4-bit weights, groups of 32 inputs; stylecond's kernel
where it builds), ``int4-torch`` (the same on torch's packed kernel), ``int8`` (8-bit weights) and
``int8-dynamic`` (fbgemm). The transformers model is converted the same way, so each row's ratio
compares like with like; the summary compares our fastest row with transformers' fp32 (its default) and
with its fastest row of the run among its own variants (fp32, bf16, int8-dynamic).

Reports ms per decoding step, the real-time factor (RTF = compute time / audio time; 50 steps = 1 s of
audio), the speed ratio to transformers, and two roofline fractions (roofline time / measured step time):

- ``mem roofline``: weight bytes streamed per step (in the row's dtype) / the machine's streaming bandwidth,
  measured as the best float32 GEMV bandwidth over the model's own weights (batch 3 x B) in the same run;
- ``kernel roofline``: the same with the bandwidth of the row's own GEMV kernel (bf16 F.linear, int8
  quantized linear) over the same weights: how close the step gets to its kernels alone.

Also, on request: ``--ttfa`` the time to first audio of streaming generation (``stream_codes`` +
``ChunkedDecoder`` on a random EnCodec of ``facebook/encodec_32khz``'s shape, 1 s chunks), and
``--quality-model PATH`` the quantized rows' agreement with fp32 on a trained model (``quality_guard.py``).

Usage: ``python benchmarks/bench_generate.py --sizes base,small --steps 50 --dtypes fp32,bf16,int8-dynamic,int4``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # quality_guard

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from first_audio import encodec_32khz_shaped, time_to_first_audio  # noqa: E402
from quality_guard import VARIANTS, quantize_variant  # noqa: E402
from torch import nn  # noqa: E402

from stylecond.conditioners.types import ConditionTensors  # noqa: E402
from stylecond.generation.generate import generate_codes  # noqa: E402
from stylecond.generation.sampler import DoubleCFGSampler  # noqa: E402
from stylecond.generation.settings import SamplingSettings  # noqa: E402
from stylecond.lm.lowbit_linear import INT4_GROUP_SIZE, Int4Linear, Int8Linear  # noqa: E402
from stylecond.lm.music_lm import MusicLM  # noqa: E402
from stylecond.lm.presets import PRESETS  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, **{name: torch.float32 for name in VARIANTS}}
NUM_CODEBOOKS, CARD, FRAME_RATE = 4, 2048, 50.0
TEXT_TOKENS, STYLE_TOKENS = 20, 15


@dataclass
class Row:
    size: str
    dtype: str
    ours_ms: float
    ours_first_ms: float
    hf_ms: float | None
    weight_mb: float
    bandwidth_gbs: float  # machine streaming bandwidth (best fp32 GEMV over the model's weights)
    kernel_gbs: float  # this dtype's GEMV kernel over the same weights

    @property
    def roofline_ms(self) -> float:
        return self.weight_mb / self.bandwidth_gbs

    @property
    def kernel_roofline_ms(self) -> float:
        return self.weight_mb / self.kernel_gbs

    def cells(self) -> list[str]:
        rtf = self.ours_ms * FRAME_RATE / 1e3
        ratio = f"{self.hf_ms / self.ours_ms:.2f}x" if self.hf_ms else "-"
        hf = f"{self.hf_ms:.1f}" if self.hf_ms else "-"
        hf_rtf = f"{self.hf_ms * FRAME_RATE / 1e3:.2f}" if self.hf_ms else "-"
        roof = self.roofline_ms / self.ours_ms
        kroof = self.kernel_roofline_ms / self.ours_ms
        return [
            self.size,
            self.dtype,
            f"{self.ours_ms:.1f}",
            f"{rtf:.2f}",
            f"{self.ours_first_ms:.0f}",
            hf,
            hf_rtf,
            ratio,
            f"{self.weight_mb:.0f}",
            f"{self.bandwidth_gbs:.1f}",
            f"{100 * roof:.0f}%",
            f"{self.kernel_gbs:.1f}",
            f"{100 * kroof:.0f}%",
        ]


HEADER = [
    "size",
    "dtype",
    "ours ms/step",
    "ours RTF",
    "ours 1st token ms",
    "HF ms/step",
    "HF RTF",
    "HF/ours",
    "weights MB/step",
    "mem GB/s",
    "mem roofline",
    "kernel GB/s",
    "kernel roofline",
]


def _elapsed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def streamed_weights(model: nn.Module) -> list[torch.Tensor]:
    """The 2-D linear weights read at every decoding step (embedding tables excluded: only K rows are read)."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def quantized_linears(model: nn.Module) -> list[tuple[nn.Module, torch.Tensor]]:
    """The int8 dynamically quantized linear layers of ``model`` with their (quantized) weights."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return [(m, m.weight()) for m in model.modules() if isinstance(m, QLinear)]


def lowbit_linears(model: nn.Module) -> list[Int4Linear | Int8Linear]:
    return [m for m in model.modules() if isinstance(m, (Int4Linear, Int8Linear))]


def weight_bytes(model: nn.Module) -> int:
    """Bytes of linear weights streamed per decoding step (int8 weights count 1 byte each, int4 half a byte,
    plus their scales)."""
    float_bytes = sum(w.numel() * w.element_size() for w in streamed_weights(model))
    lowbit = sum(b.numel() * b.element_size() for m in lowbit_linears(model) for b in m.buffers())
    return float_bytes + lowbit + sum(w.numel() for _, w in quantized_linears(model))


@torch.inference_mode()
def measure_bandwidth(model: nn.Module, rows: int, repeats: int) -> float:
    """GB/s achieved by GEMVs (``rows`` input vectors) over the model's linear weights with the model's own
    kernels (F.linear in its dtype, or the int8 quantized linear) = the best case for one decoding step."""
    weights, qlin = streamed_weights(model), quantized_linears(model)
    dense = [(torch.randn(rows, w.shape[1], dtype=w.dtype), w) for w in weights]
    quant: list[tuple[torch.Tensor, nn.Module]] = [(torch.randn(rows, w.shape[1]), m) for m, w in qlin]
    quant += [(torch.randn(rows, m.in_features), m) for m in lowbit_linears(model)]

    def run() -> None:
        for x, w in dense:
            F.linear(x, w)
        for x, m in quant:
            m(x)

    run()
    seconds = min(_elapsed(run) for _ in range(repeats))
    return weight_bytes(model) / seconds / 1e9


def group_size(size: str) -> int:
    """int4's default group (``INT4_GROUP_SIZE``), or the model width when it is narrower."""
    return min(INT4_GROUP_SIZE, PRESETS[size].dim)


def build_ours(size: str, name: str, compile_layers: bool = False) -> MusicLM:
    lm = MusicLM.from_preset(size, num_codebooks=NUM_CODEBOOKS, card=CARD).eval().to(DTYPES[name])
    if name in VARIANTS:
        lm = quantize_variant(lm, name, group_size(size), inplace=True)
    if compile_layers:
        for layer in lm.transformer.layers:
            layer.compile(dynamic=True)
    return lm


def build_hf(size: str, name: str) -> nn.Module:
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    p = PRESETS[size]
    config = MusicgenDecoderConfig(
        vocab_size=CARD,
        num_codebooks=NUM_CODEBOOKS,
        hidden_size=p.dim,
        num_attention_heads=p.num_heads,
        num_hidden_layers=p.num_layers,
        ffn_dim=p.ffn_dim or 4 * p.dim,
        dropout=0.0,
        max_position_embeddings=4096,
        pad_token_id=CARD,
        bos_token_id=CARD,
    )
    model = MusicgenForCausalLM(config).eval().to(DTYPES[name])
    if name in VARIANTS:
        model = quantize_variant(model, name, group_size(size), inplace=True)
    gc = model.generation_config
    gc.pad_token_id = gc.bos_token_id = gc.decoder_start_token_id = CARD
    return model


Runner = Callable[[], tuple[float, float]]


def _sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a timestamp means the step is done (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours_runner(lm: MusicLM, steps: int, batch: int, cuda_graph: bool | None = None) -> Runner:
    """A warmed-up closure running ``steps`` double-CFG decoding steps; it returns (steady seconds per
    step, seconds to the first token including the conditioning prefix). Runs on ``lm``'s device
    (``cuda_graph``: see ``generate_codes``)."""
    device = next(lm.parameters()).device
    g = torch.Generator(device=device).manual_seed(0)
    conditions = {
        "text": ConditionTensors(
            torch.randn(batch, TEXT_TOKENS, lm.dim, generator=g, device=device),
            torch.ones(batch, TEXT_TOKENS, dtype=torch.bool, device=device),
        ),
        "style": ConditionTensors(
            torch.randn(batch, STYLE_TOKENS, lm.dim, generator=g, device=device),
            torch.ones(batch, STYLE_TOKENS, dtype=torch.bool, device=device),
        ),
    }
    sampler = DoubleCFGSampler(SamplingSettings())  # alpha 3, beta 5, top-k 250
    # S - 1 = T + K - 1 decoding steps for T frames (delay pattern)
    frames = steps - NUM_CODEBOOKS + 1

    def run(n: int) -> tuple[float, float]:
        stamps: list[float] = []
        t0 = time.perf_counter()
        generate_codes(
            lm,
            conditions=conditions,
            sampler=sampler,
            num_frames=n,
            generator=g,
            progress=lambda done, total: (_sync(device), stamps.append(time.perf_counter())),
            cuda_graph=cuda_graph,
        )
        return (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1), stamps[0] - t0

    run(2)  # warm-up
    return lambda: run(frames)


def hf_runner(model: nn.Module, steps: int, batch: int) -> Runner:
    """Same as :func:`ours_runner` for transformers' generate on a 3 x B batch (timed by a streamer)."""
    from transformers.generation.streamers import BaseStreamer

    device = next(model.parameters()).device
    input_ids = torch.full((3 * batch * NUM_CODEBOOKS, 1), CARD, dtype=torch.long, device=device)

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def put(self, value: object) -> None:  # once for the input ids, then once per step
            _sync(device)
            self.stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    @torch.inference_mode()
    def run(n: int) -> tuple[float, float]:
        clock = Clock()
        t0 = time.perf_counter()
        model.generate(  # type: ignore[operator]
            input_ids,
            max_new_tokens=n,
            do_sample=True,
            top_k=250,
            num_return_sequences=1,
            guidance_scale=None,
            streamer=clock,
        )
        st = clock.stamps
        return (st[-1] - st[1]) / max(len(st) - 2, 1), st[1] - t0

    run(2)
    return lambda: run(steps)


def summary(rows: list[Row]) -> list[str]:
    """Per size: our fastest row against transformers' fp32 and its fastest row of the run."""
    lines = []
    for size in dict.fromkeys(r.size for r in rows):
        mine = [r for r in rows if r.size == size]
        ours = min(mine, key=lambda r: r.ours_ms)
        text = f"{size}: ours fastest {ours.dtype} {ours.ours_ms:.1f} ms/step (RTF {ours.ours_ms * FRAME_RATE / 1e3:.2f})"
        hf_fp32 = [r.hf_ms for r in mine if r.dtype == "fp32" and r.hf_ms]
        if hf_fp32:
            text += f"; transformers fp32 / ours = {hf_fp32[0] / ours.ours_ms:.2f}x"
        hf = [r for r in mine if r.hf_ms and r.dtype in ("fp32", "bf16", "int8-dynamic")]
        if hf:
            fastest = min(hf, key=lambda r: r.hf_ms or 0.0)
            assert fastest.hf_ms is not None
            text += f"; transformers fastest ({fastest.dtype}, {fastest.hf_ms:.1f}) / ours = {fastest.hf_ms / ours.ours_ms:.2f}x"
        lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="base,small", help="comma-separated presets (debug, base, small, medium)"
    )
    parser.add_argument("--steps", type=int, default=50, help="decoding steps per run (50 = 1 s of audio)")
    parser.add_argument(
        "--dtypes", default="fp32,bf16,int8-dynamic,int4", help=f"comma-separated: {', '.join(DTYPES)}"
    )
    parser.add_argument("--batch", type=int, default=1, help="prompts per run (the forward batch is 3x this)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per measurement (best of; ours and HF interleaved)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (0 = torch default; 1 is steadier on a shared CPU)",
    )
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers baseline")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile our transformer layers (dynamic=True) before timing",
    )
    parser.add_argument(
        "--ttfa", action="store_true", help="also time the first audio of streaming generation"
    )
    parser.add_argument(
        "--quality-model",
        default=None,
        help="a trained model (export directory or from_pretrained source): print the quantized dtypes' "
        "agreement with fp32 over --quality-steps steps (quality_guard.py)",
    )
    parser.add_argument("--quality-steps", type=int, default=200)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [s for s in args.sizes.split(",") if s]
    dtypes = [d for d in args.dtypes.split(",") if d]
    for s in sizes:
        if s not in PRESETS:
            parser.error(f"--sizes: unknown preset {s!r}; valid: {sorted(PRESETS)}")
    for d in dtypes:
        if d not in DTYPES:
            parser.error(f"--dtypes: unknown dtype {d!r}; valid: {sorted(DTYPES)}")
    if args.steps < NUM_CODEBOOKS:
        parser.error(f"--steps must be >= {NUM_CODEBOOKS}")
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, steps {args.steps}, batch 3x{args.batch}"
    )
    rows: list[Row] = []
    ttfa: dict[tuple[str, str], float] = {}
    codec = None
    for size in sizes:
        fp32_ref: MusicLM | None = None  # the bandwidth probe for non-fp32 rows
        for name in dtypes:
            lm = build_ours(size, name, args.compile)
            probe = lm if name == "fp32" else fp32_ref
            if probe is None:
                probe = fp32_ref = build_ours(size, "fp32")
            weight_mb = weight_bytes(lm) / 1e6
            bw = kernel_bw = 0.0
            runners = {"ours": ours_runner(lm, args.steps, args.batch)}
            model = None
            if not args.no_hf:
                model = build_hf(size, name)
                runners["hf"] = hf_runner(model, args.steps, args.batch)
            # Interleave bandwidth probes and timed runs so all see the same machine load; keep the best of each.
            best = {key: (float("inf"), float("inf")) for key in runners}
            for _ in range(args.repeats):
                bw = max(bw, measure_bandwidth(probe, 3 * args.batch, 2))
                kernel_bw = bw if probe is lm else max(kernel_bw, measure_bandwidth(lm, 3 * args.batch, 2))
                for key, run in runners.items():
                    step_s, first_s = run()
                    best[key] = (min(best[key][0], step_s), min(best[key][1], first_s))
            ours, ours_first = best["ours"][0] * 1e3, best["ours"][1] * 1e3
            hf = best["hf"][0] * 1e3 if "hf" in best else None
            if args.ttfa:
                if codec is None:
                    codec = encodec_32khz_shaped(tempfile.mkdtemp(prefix="encodec32k-"))
                ttfa[(size, name)] = time_to_first_audio(lm, codec, args.batch, text_tokens=TEXT_TOKENS,
                                                         style_tokens=STYLE_TOKENS)  # fmt: skip
            del lm, model, runners
            row = Row(size, name, ours, ours_first, hf, weight_mb, bw, kernel_bw or bw)
            rows.append(row)
            print(" | ".join(f"{h}={c}" for h, c in zip(HEADER, row.cells())), flush=True)
    print()
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(row.cells()) + " |")
    print(
        "\nms/step: steady state (first to last step, best of the repeats); 1st token: includes running the "
        f"{STYLE_TOKENS}+{TEXT_TOKENS}-token conditioning prefix (x3 branches) into the KV cache.\n"
        "RTF = compute time / audio time (50 steps = 1 s); mem roofline = (weight bytes / fp32 GEMV bandwidth) / "
        "step time; kernel roofline = the same with the row dtype's own GEMV kernel."
    )
    print()
    for line in summary(rows):
        print(line)
    if ttfa:
        print("\ntime to first audio (streaming, 1 s chunks, EnCodec 32 kHz shape):")
        for (size, name), seconds in ttfa.items():
            print(f"  size={size} | dtype={name} | first audio after {seconds:.2f} s")
    if args.quality_model:
        print_quality(args.quality_model, [d for d in dtypes if d in VARIANTS], args.quality_steps)
    return 0


def print_quality(source: str, modes: list[str], steps: int) -> None:
    from quality_guard import measure, table

    from stylecond.models.style_musicgen import StyleMusicGen

    if not modes:
        return
    model = StyleMusicGen.from_pretrained(source)
    print(
        f"\nquality guard on {source} ({steps} steps, teacher-forced on fp32's samples, guided distribution):"
    )
    print(table(measure(model, modes, steps=steps)))


if __name__ == "__main__":
    raise SystemExit(main())
