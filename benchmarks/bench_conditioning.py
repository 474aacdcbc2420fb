"""Cost (and, with a trained model, adherence) of textual inversion vs one StyleConditioner forward.

Cost per reference track: textual inversion runs ``--steps`` Adam steps (default: the module's measured
default) on random chunks of the track; the style conditioner runs one forward on a 3 s excerpt. Both on
the same model, in the same run, on the same device. Without ``--model`` an untrained model of the demo
size (lightning_configs/demo.yaml) is built: the cost does not depend on the weights, adherence does, so
it is then not measured (the output says so).

Adherence (``--model DIR``, a trained StyleMusicGen with both conditioners, e.g. the demo's export):
for each style, a synthetic reference track is inverted (lm_space) and used for generation (plain CFG),
and the same track is given to the style conditioner; a NearestCentroidStyleClassifier fitted on other
synthetic clips labels the generations; accuracy = fraction labelled with the reference's style.

    python benchmarks/bench_conditioning.py [--model DIR] [--steps 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.synth import STYLES, SynthStyles  # noqa: E402
from stylecond.generation.settings import SamplingSettings  # noqa: E402
from stylecond.inversion.generate_hook import inverted_overrides  # noqa: E402
from stylecond.inversion.module import DEFAULT_STEPS, TextualInversionModule  # noqa: E402
from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier  # noqa: E402
from stylecond.models.pretrained import instantiate_model  # noqa: E402
from stylecond.models.style_musicgen import StyleMusicGen  # noqa: E402

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "lightning_configs" / "demo.yaml"


def demo_sized_model(sample_rate: int) -> Any:
    """An untrained StyleMusicGen of the demo's size, its MelCodec fitted on a few synthetic clips."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())["model"]
    args = config["init_args"]
    args["codec"]["init_args"].pop("weights", None)
    dim = int(args["lm"]["init_args"].get("dim", 512))
    for name in ("text_conditioner", "style_conditioner"):
        args[name]["init_args"]["output_dim"] = dim
    args.pop("optim", None)
    model: Any = instantiate_model(config)
    clips = SynthStyles(sample_rate=sample_rate).clips(2 * len(STYLES), seconds=2.0, seed=7)
    model.codec.fit([c.audio for c in clips])
    return model.eval()


def timed(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_cost(model: Any, ref: torch.Tensor, args: argparse.Namespace) -> dict[str, float]:
    sr = int(model.codec.sample_rate)

    def invert() -> None:
        ti = TextualInversionModule(
            model=model, steps=args.steps, chunk_seconds=args.chunk_seconds, batch_size=args.batch_size
        )
        ti.fit([ref])

    ti_seconds = timed(invert, args.ti_repeats)
    excerpt = ref[None, :, : int(3.0 * sr)]
    sc = model.style_conditioner
    with torch.no_grad():
        sc(excerpt, sample_rate=sr)  # warm-up
        style_seconds = timed(lambda: sc(excerpt, sample_rate=sr), args.style_repeats)
    return {
        "textual_inversion_s": ti_seconds,
        "style_conditioner_s": style_seconds,
        "ratio": ti_seconds / style_seconds,
    }


def measure_adherence(model: Any, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    sr = int(model.codec.sample_rate)
    synth = SynthStyles(sample_rate=sr)
    styles = list(args.styles)
    train = list(synth.clips(6 * len(styles), seconds=4.0, seed=11, styles=styles))
    clf = NearestCentroidStyleClassifier(sample_rate=sr).fit(
        [c.audio for c in train], [c.style for c in train]
    )
    hits = {"textual_inversion": 0, "style_conditioner": 0}
    total = 0
    for i, style in enumerate(styles):
        ref = synth.clip(style, seconds=args.ref_seconds, seed=500 + i).audio
        ti = TextualInversionModule(model=model, chunk_seconds=args.chunk_seconds, batch_size=args.batch_size)
        ti.fit([ref], steps=args.steps)
        path = ti.save(out_dir / f"{style}.safetensors")
        rows, overrides = inverted_overrides(model, path, None)
        common = dict(duration=args.duration, seed=i, sampling=SamplingSettings(cfg_coef_beta=None))
        for j in range(args.generations):
            wav_ti = model.generate(
                texts=rows, condition_overrides=overrides, **{**common, "seed": 100 * i + j}
            )
            wav_sc = model.generate(texts=[None], style_audio=ref, **{**common, "seed": 100 * i + j})
            hits["textual_inversion"] += int(clf.predict([wav_ti[0].cpu()])[0] == style)
            hits["style_conditioner"] += int(clf.predict([wav_sc[0].cpu()])[0] == style)
            total += 1
    return {f"{k}_accuracy": v / total for k, v in hits.items()} | {"generations": total, "styles": styles}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", type=Path, default=None, help="trained StyleMusicGen export (enables adherence)"
    )
    p.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="inversion steps (default: module default)"
    )
    p.add_argument("--chunk-seconds", type=float, default=10.0)
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--ref-seconds", type=float, default=30.0, help="length of the reference track")
    p.add_argument("--ti-repeats", type=int, default=1)
    p.add_argument("--style-repeats", type=int, default=20)
    p.add_argument("--styles", nargs="+", default=["techno", "ambient", "chiptune", "jazz"])
    p.add_argument("--generations", type=int, default=2, help="generations per style and method")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per generation")
    p.add_argument("--out", type=Path, default=Path("bench_conditioning_out"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model: Any
    if args.model is not None:
        model = StyleMusicGen.from_pretrained(args.model)
        source = f"trained model {args.model}"
    else:
        model = demo_sized_model(16000)
        source = "untrained model of the demo size (lightning_configs/demo.yaml)"
    if model.style_conditioner is None or model.text_conditioner is None:
        raise SystemExit("the model needs both a text and a style conditioner")
    sr = int(model.codec.sample_rate)
    ref = SynthStyles(sample_rate=sr).clip("techno", seconds=args.ref_seconds, seed=1).audio
    result: dict[str, Any] = {
        "model": source,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "chunk_seconds": args.chunk_seconds,
        "batch_size": args.batch_size,
        "reference_seconds": args.ref_seconds,
        "cost_per_reference": measure_cost(model, ref, args),
    }
    if args.model is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        result["adherence"] = measure_adherence(model, args, args.out)
    else:
        result["adherence"] = "not measured: no trained model given (--model DIR); cost only"
    cost = result["cost_per_reference"]
    print(f"model: {source}")
    print(
        f"textual inversion ({args.steps} steps): {cost['textual_inversion_s']:.2f} s per reference; "
        f"style conditioner (3 s excerpt): {cost['style_conditioner_s'] * 1000:.1f} ms; "
        f"ratio {cost['ratio']:.0f}x"
    )
    print(f"adherence: {result['adherence']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
