"""The demo's style-classifier table for a quantized LM against the same model in float32.

Reruns ``make demo``'s grid (stage 6, same references, prompts and seeds) and classification (stage 7) on
its exported model, once as exported (float32) and once per quantization mode, and prints each table with
the change of every cell. The float32 table equals ``demo_out/results.md`` (a check that this is the
demo's grid). ``--noise-floor N`` also reruns float32 with N other sampling seeds (same references and
prompts): how much a cell moves when only the sampled tokens change, the scale to read the deltas on.
``--seeds S`` pools every table over S sampling seeds (S x 24 clips per cell, the same seeds for float32
and the quantized LM): the demo's 24 clips cannot resolve a change of 0.05. Usage, after ``make demo``::

    python benchmarks/demo_quantized.py --demo demo_out --modes int4
    python benchmarks/demo_quantized.py --demo demo_out --modes int4 --seeds 4 --noise-floor 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # quality_guard

import torch  # noqa: E402
from quality_guard import VARIANTS, quantize_variant  # noqa: E402
from rich.console import Console  # noqa: E402

from stylecond.demo.data import stage_heldout  # noqa: E402
from stylecond.demo.grid import stage_generate  # noqa: E402
from stylecond.demo.report import Row, _fmt, stage_classify  # noqa: E402
from stylecond.demo.settings import FULL, default_config  # noqa: E402
from stylecond.demo.state import DemoState  # noqa: E402
from stylecond.lm.lowbit_linear import INT4_GROUP_SIZE  # noqa: E402
from stylecond.models.style_musicgen import StyleMusicGen  # noqa: E402


def table(
    demo: Path, variant: str | None, seed: int, sampling_offset: int = 0, group_size: int = INT4_GROUP_SIZE
) -> list[Row]:
    """The demo grid's rows for the exported model, its LM quantized by ``variant`` (None: float32) in groups
    of ``group_size`` inputs, its sampling seeds shifted by ``sampling_offset``."""
    with tempfile.TemporaryDirectory() as out:
        state = DemoState(out=Path(out), settings=FULL.with_seed(seed), config=default_config(),
                          console=Console(quiet=True))  # fmt: skip
        stage_heldout(state)  # the references and the classifier's clips: the demo's
        state.settings = replace(state.settings, seed=seed + sampling_offset)
        model = StyleMusicGen.from_pretrained(demo / "model").eval()
        if variant is not None:
            model.lm = quantize_variant(model.lm, variant, group_size, inplace=True)
        state.model, state.codec = model, model.codec
        stage_generate(state)
        return stage_classify(state)


def _pool(values: list[float | None], counts: list[int]) -> float | None:
    """The fraction over all the clips of cells with fractions ``values`` of ``counts`` clips each."""
    if any(v is None for v in values):
        return None
    return sum(float(v or 0.0) * n for v, n in zip(values, counts)) / sum(counts)


def pooled(
    demo: Path, variant: str | None, seed: int, offsets: list[int], group_size: int = INT4_GROUP_SIZE
) -> list[Row]:
    """:func:`table` over several sampling-seed offsets, each cell pooled over all its clips."""
    tables = [table(demo, variant, seed, offset, group_size) for offset in offsets]
    rows = []
    for cells in zip(*tables):
        counts = [c.n for c in cells]
        rows.append(replace(cells[0], n=sum(counts), to_audio=_pool([c.to_audio for c in cells], counts),
                            to_text=_pool([c.to_text for c in cells], counts)))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("demo_out"), help="make demo's output folder")
    parser.add_argument("--modes", default="int4", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0, help="the demo's --seed (default 0)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--noise-floor", type=int, default=0, help="float32 reruns with other sampling seeds")
    parser.add_argument("--seeds", type=int, default=1, help="sampling seeds pooled into every table")
    parser.add_argument(
        "--group-size", type=int, default=INT4_GROUP_SIZE, help="int4 group size (default: quantize's)"
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.noise_floor < 0:
        parser.error(f"--seeds must be >= 1 and --noise-floor >= 0; got {args.seeds} and {args.noise_floor}")
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in VARIANTS:
            parser.error(f"--modes: unknown mode {m!r}; valid: {', '.join(VARIANTS)}")
    if not (args.demo / "model" / "config.yaml").is_file():
        parser.error(f"--demo: {args.demo / 'model'} is not an export (run make demo first)")
    torch.set_num_threads(args.threads)

    def offsets(j: int) -> list[int]:  # the j-th set of sampling-seed offsets (0: the demo's own seeds)
        return [1000 * (j * args.seeds + r) for r in range(args.seeds)]

    reference = pooled(args.demo, None, args.seed, offsets(0))
    runs = [(m, pooled(args.demo, m, args.seed, offsets(0), args.group_size)) for m in modes]
    runs += [
        (f"fp32 seed+{offsets(i)[0]}", pooled(args.demo, None, args.seed, offsets(i)))
        for i in range(1, args.noise_floor + 1)
    ]
    for name, rows in runs:
        print(
            f"\n| condition | eval_q | β | fp32 → audio | {name} → audio | Δ | fp32 → text | {name} → text | Δ |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        worst = 0.0
        for ref, got in zip(reference, rows):
            deltas = []
            for a, b in ((ref.to_audio, got.to_audio), (ref.to_text, got.to_text)):
                deltas.append("–" if a is None or b is None else f"{b - a:+.2f}")
                if a is not None and b is not None:
                    worst = min(worst, b - a)
            print(f"| {ref.condition} | {ref.eval_q} | {ref.beta} | {_fmt(ref.to_audio)} | {_fmt(got.to_audio)} | "
                  f"{deltas[0]} | {_fmt(ref.to_text)} | {_fmt(got.to_text)} | {deltas[1]} |")  # fmt: skip
        print(f"\n{name}: largest drop of a cell {-worst:.2f} (n = {reference[2].n} clips per cell)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
