"""How far a quantized LM's guided next-token distribution moves from float32's, on a trained model.

The float32 LM samples ``steps`` decoding steps (double CFG, the model's settings, a seeded generator);
then the quantized LM is teacher-forced on exactly those tokens. At every step both guided distributions
(after ``DoubleCFGSampler.combine``) are compared:

- greedy agreement: the fraction of (row, codebook) cells whose argmax is the same;
- mean KL(float32 || quantized) of the guided softmax (temperature 1), in nats.

Teacher forcing keeps one early disagreement from cascading, so the figures measure the quantization, not
the chaos of sampling. Used by ``bench_generate.py --quality-model``; runnable alone:
``python benchmarks/quality_guard.py --model demo_out/model --modes int4,int8,int8-dynamic``.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from datamodules.synth import SynthStyles  # noqa: E402
from stylecond.generation.generate import generate_codes  # noqa: E402
from stylecond.generation.sampler import DoubleCFGSampler  # noqa: E402
from stylecond.lm.lowbit_linear import INT4_GROUP_SIZE  # noqa: E402
from stylecond.lm.quantize import QUANTIZE_MODES, quantize  # noqa: E402

# what the benchmarks accept: quantize()'s modes (int4 on stylecond's kernel, 16-bit activations), int4
# with 8-bit activations, and int4 on torch's packed kernel, for comparison: name -> quantize() arguments
VARIANTS: dict[str, dict[str, Any]] = {
    **{m: {"mode": m} for m in QUANTIZE_MODES},
    "int4-a8": {"mode": "int4", "activation_bits": 8},
    "int4-torch": {"mode": "int4", "kernel": "torch"},
}


def quantize_variant(model: Any, name: str, group_size: int, inplace: bool = False) -> Any:
    """``quantize`` with the arguments of variant ``name`` (see ``VARIANTS``)."""
    return quantize(model, group_size=group_size, inplace=inplace, **VARIANTS[name])


class _Recorder(DoubleCFGSampler):
    """Records each step's guided logits; samples normally, or replays ``forced`` tokens."""

    def __init__(self, base: DoubleCFGSampler, forced: list[Tensor] | None = None) -> None:
        super().__init__(base.settings)
        self.guided: list[Tensor] = []
        self.tokens: list[Tensor] = []
        self.forced = forced

    def sample(self, guided: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        self.guided.append(guided.float())
        tok = (
            super().sample(guided, generator=generator)
            if self.forced is None
            else self.forced[len(self.tokens)]
        )
        self.tokens.append(tok)
        return tok


@dataclass
class Quality:
    mode: str
    agreement: float  # greedy-token agreement with float32
    mean_kl: float  # nats per (row, codebook, step)
    steps: int


def conditions_for(model: Any, *, text: str, style: str, seed: int) -> dict[str, Any]:
    """Real conditions of ``model`` for one prompt: its text encoder on ``text`` and its style conditioner
    on a 10 s SynthStyles clip of ``style`` (whichever the model has)."""
    sr = int(model.codec.sample_rate)
    wav = None
    if model.style_conditioner is not None:
        wav = SynthStyles(sample_rate=sr, seed=seed).clip(style, seconds=10.0, seed=seed).audio[None]
    texts = [text] if model.text_conditioner is not None else None
    with torch.no_grad():
        out = model.condition(texts=texts, wav=None, style_wav=wav, sample_rate=sr, excerpt_start="middle")
    return dict(out.conditions)


@torch.no_grad()
def measure(model: Any, modes: list[str], *, steps: int = 200, seed: int = 0, text: str = "jazz",
            style: str = "jazz", group_size: int = INT4_GROUP_SIZE) -> list[Quality]:  # fmt: skip
    """Quality of each quantization mode of ``model.lm`` against float32 (see the module docstring)."""
    model.eval()
    lm = model.lm
    conditions = conditions_for(model, text=text, style=style, seed=seed)
    k = int(lm.num_codebooks)
    frames = steps - k + 1  # the delay pattern decodes T + K - 1 steps for T frames
    reference = _Recorder(DoubleCFGSampler(model.sampling))
    generator = torch.Generator().manual_seed(seed)
    generate_codes(lm, conditions=conditions, sampler=reference, num_frames=frames, fuser=model.fuser,
                   generator=generator)  # fmt: skip
    ref = torch.stack(reference.guided)  # [S, B, K, card]
    results = []
    for mode in modes:
        q = quantize_variant(lm, mode, group_size)
        replay = _Recorder(DoubleCFGSampler(model.sampling), forced=reference.tokens)
        generate_codes(q, conditions=conditions, sampler=replay, num_frames=frames, fuser=model.fuser)
        got = torch.stack(replay.guided)
        # the first K - 1 steps hold codebooks the delay pattern has not started: leave them out
        r, g = ref[k - 1 :], got[k - 1 :]
        agree = float((r.argmax(-1) == g.argmax(-1)).float().mean())
        p = r.log_softmax(-1)
        kl = float((p.exp() * (p - g.log_softmax(-1))).sum(-1).mean())
        results.append(Quality(mode, agree, kl, int(r.shape[0])))
        del q
    return results


def table(results: list[Quality]) -> str:
    """The results as a markdown table (what the benchmarks print)."""
    rows = [f"| {q.mode} | {q.agreement:.3f} | {q.mean_kl:.4f} | {q.steps} |" for q in results]
    return "\n".join(["| mode | greedy agreement | mean KL (nats) | steps |", "|---|---|---|---|", *rows])


def main(argv: list[str] | None = None) -> int:
    from stylecond.models.style_musicgen import StyleMusicGen

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", required=True, help="export directory or any StyleMusicGen.from_pretrained source"
    )
    parser.add_argument(
        "--modes", default=",".join(QUANTIZE_MODES), help=f"comma-separated: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in VARIANTS:
            parser.error(f"--modes: unknown mode {m!r}; valid: {', '.join(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model = StyleMusicGen.from_pretrained(args.model)
    except (ValueError, OSError) as err:
        parser.error(f"--model: {err}")
    print(table(measure(model, modes, steps=args.steps, seed=args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
