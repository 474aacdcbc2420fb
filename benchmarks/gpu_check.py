"""One-GPU check, about 5 minutes at most: bf16 training speed and memory of ``small``, decoding vs transformers.

- Training: ``lightning_configs/small.yaml`` as shipped (LM, style conditioner, optimizer), with tiny
  random stand-ins for the pretrained EnCodec, T5 and MERT (built offline into a temporary directory,
  so nothing is downloaded), fitted by a Lightning ``Trainer`` at ``bf16-mixed`` on synthetic batches of
  ``--batch`` x ``--seconds`` (pre-tokenized codes plus the audio the style excerpts come from).
  Reports steps/s, tokens/s and the peak GPU memory of the timed steps.
- LM training step: ``benchmarks/bench_train.py``'s step (forward, loss, backward, AdamW) at bf16-mixed
  against ``transformers.MusicgenForCausalLM``'s at the same size and batch.
- Decoding: ``benchmarks/bench_generate.py``'s double-CFG step of a bf16 MusicLM, eager and replayed
  from CUDA graphs (the GPU default, ``stylecond.lm.static_step``), against
  ``transformers.MusicgenForCausalLM.generate`` of the same size, ms per step.

Usage, from the repository root:
    python benchmarks/gpu_check.py                    # on a GPU: small, 8 x 30 s, 20 timed steps
    python benchmarks/gpu_check.py --device cpu --lm-size debug --batch 2 --seconds 2 --steps 2 \\
        --decode-steps 8                              # the same code on CPU, in seconds (a smoke test)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # tests.support (the stand-ins), bench_generate
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

K, CARD, SAMPLE_RATE, FRAME_RATE = 4, 2048, 32000, 50.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", default="cuda", choices=["cuda", "cpu"], help="where to run (default cuda)"
    )
    parser.add_argument("--lm-size", default=None, help="override small.yaml's LM with a preset (e.g. debug)")
    parser.add_argument("--batch", type=int, default=8, help="rows per training step")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of audio per row")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--decode-steps", type=int, default=200, help="decoding steps per timed run")
    args = parser.parse_args(argv)
    from stylecond.lm.presets import PRESETS

    if args.lm_size is not None and args.lm_size not in PRESETS:
        parser.error(f"--lm-size must be one of {sorted(PRESETS)}; got {args.lm_size!r}")
    for flag in ("batch", "steps", "warmup", "decode_steps"):
        if getattr(args, flag) < (0 if flag == "warmup" else 1):
            parser.error(f"--{flag.replace('_', '-')} must be positive; got {getattr(args, flag)}")
    if args.decode_steps < K:
        parser.error(f"--decode-steps must be at least {K} (the delay pattern's length)")
    if not args.seconds > 0:
        parser.error(f"--seconds must be positive; got {args.seconds}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA GPU (torch.cuda.is_available() is False); "
                     "use --device cpu for a smoke run")  # fmt: skip
    return args


def build_model(standins: Path, lm_size: str | None) -> L.LightningModule:
    """small.yaml's model with the stand-ins in place of the three pretrained parts."""
    from stylecond.lm.presets import preset_kwargs
    from stylecond.training.cli import run_lightning_cli
    from tests.support.tiny_hub import tiny_encodec, tiny_mert, tiny_t5

    m, s = "--model.init_args", "--model.init_args.style_conditioner.init_args"
    args = ["-c", str(ROOT / "lightning_configs" / "small.yaml"), "--trainer.logger=false", "--trainer.callbacks=[]",
            f"{m}.codec.init_args.model_name_or_path={tiny_encodec(standins / 'encodec', codebook_size=CARD, num_codebooks=K)}",
            f"{m}.text_conditioner.init_args.model_name_or_path={tiny_t5(standins / 't5')}",
            f"{s}.extractor.init_args.model_name_or_path={tiny_mert(standins / 'mert')}"]  # fmt: skip
    if lm_size is not None:
        args += [f"{m}.lm.init_args.{k}={v}" for k, v in preset_kwargs(lm_size).items() if v is not None]
    model = run_lightning_cli(args, run=False).model
    return model


def batches(n: int, rows: int, seconds: float) -> DataLoader:
    """``n`` synthetic batches: noise audio at 32 kHz (style excerpts) and random codes of the same length."""
    from datamodules.batch import AudioSample, collate

    g = torch.Generator().manual_seed(0)
    length, frames = round(seconds * SAMPLE_RATE), round(seconds * FRAME_RATE)
    samples = [AudioSample(key=f"row{i}", text="a warm jazz trio with brushed drums", sample_rate=SAMPLE_RATE,
                           audio=0.1 * torch.randn(1, length, generator=g), audio_mask=torch.ones(length, dtype=torch.bool),
                           codes=torch.randint(0, CARD, (K, frames), generator=g),
                           codes_mask=torch.ones(frames, dtype=torch.bool)) for i in range(rows)]  # fmt: skip
    batch = collate(samples, frame_rate=FRAME_RATE)
    return DataLoader([batch] * n, batch_size=None)


class StepClock(L.Callback):
    """Wall time of each training step (CUDA synchronised); peak memory over the steps after ``warmup``."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.times, self._t0 = warmup, [], 0.0
        self.peak_bytes: int | None = None

    def _sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.warmup and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self._sync(pl_module)
        self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._t0)
            if pl_module.device.type == "cuda":
                self.peak_bytes = torch.cuda.max_memory_allocated(pl_module.device)


def train_check(args: argparse.Namespace, standins: Path) -> dict[str, str]:
    model = build_model(standins, args.lm_size)
    clock = StepClock(args.warmup)
    total = args.warmup + args.steps
    trainer = L.Trainer(accelerator=args.device, devices=1, precision="bf16-mixed", max_steps=total,
                        limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])  # fmt: skip
    trainer.fit(model, train_dataloaders=batches(total, args.batch, args.seconds))
    step = statistics.median(clock.times)
    tokens = args.batch * round(args.seconds * FRAME_RATE) * K
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    peak = "-" if clock.peak_bytes is None else f"{clock.peak_bytes / 2**30:.1f} GiB"
    size = args.lm_size or "small"
    return {
        f"train {size} ({params / 1e6:.0f}M trainable), bf16-mixed, {args.batch} x {args.seconds:g} s: steps/s": f"{1 / step:.2f}",
        "train: tokens/s (frames x codebooks)": f"{tokens / step:.0f}",
        "train: peak memory of the timed steps": peak,
    }  # fmt: skip


def lm_step_check(args: argparse.Namespace) -> dict[str, str]:
    """``benchmarks/bench_train.py``'s LM training step (forward, loss, backward, AdamW) against transformers'."""
    from bench_train import TEXT_TOKENS, hf_step, ours_step

    from stylecond.conditioners.types import ConditionTensors
    from stylecond.lm.presets import PRESETS

    size = args.lm_size or "small"
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, CARD, (args.batch, K, round(args.seconds * FRAME_RATE)), generator=g).to(
        args.device
    )
    cross = ConditionTensors(torch.randn(args.batch, TEXT_TOKENS, PRESETS[size].dim, generator=g).to(args.device),
                             torch.ones(args.batch, TEXT_TOKENS, dtype=torch.bool, device=args.device))  # fmt: skip
    times = {}
    for name, build in (("ours", ours_step), ("hf", hf_step)):
        step = build(size, codes, cross, args.device, True)
        step()  # warm-up
        runs = []
        for _ in range(3):
            _sync(args.device)
            t0 = time.perf_counter()
            step()
            _sync(args.device)
            runs.append(time.perf_counter() - t0)
        times[name] = min(runs)
        del step
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return {
        f"LM train step {size} bf16-mixed, {args.batch} x {args.seconds:g} s: ours ms": f"{1e3 * times['ours']:.1f}",
        "LM train step: transformers MusicgenForCausalLM ms": f"{1e3 * times['hf']:.1f}",
        "LM train step: transformers / ours": f"{times['hf'] / times['ours']:.2f}x",
    }


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def decode_check(args: argparse.Namespace) -> dict[str, str]:
    from bench_generate import build_hf, build_ours, hf_runner, ours_runner

    size = args.lm_size or "small"
    ours = build_ours(size, "bf16").to(args.device)
    hf = build_hf(size, "bf16").to(args.device)
    cuda = args.device == "cuda"
    runners = {"eager": ours_runner(ours, args.decode_steps, 1, cuda_graph=False),
               "hf": hf_runner(hf, args.decode_steps, 1)}  # fmt: skip
    if cuda:  # the default on a GPU: the step replayed from CUDA graphs (stylecond.lm.static_step)
        runners["graphs"] = ours_runner(ours, args.decode_steps, 1, cuda_graph=True)
    best = {name: min(run()[0] for _ in range(2)) for name, run in runners.items()}
    rows = {
        f"decode {size} bf16, double CFG (3 x 1 rows), {args.decode_steps} steps: ours eager ms/step": f"{1e3 * best['eager']:.2f}",
        "decode: transformers MusicgenForCausalLM ms/step": f"{1e3 * best['hf']:.2f}",
        "decode: transformers / ours eager": f"{best['hf'] / best['eager']:.2f}x",
    }  # fmt: skip
    if cuda:
        rows["decode: ours with CUDA graphs ms/step"] = f"{1e3 * best['graphs']:.2f}"
        rows["decode: transformers / ours with CUDA graphs"] = f"{best['hf'] / best['graphs']:.2f}x"
        rows["decode: eager / CUDA graphs"] = f"{best['eager'] / best['graphs']:.2f}x"
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    rows: dict[str, str] = {"device": f"{name}, torch {torch.__version__}"}
    with tempfile.TemporaryDirectory(prefix="stylecond-gpu-check-") as tmp:
        rows.update(train_check(args, Path(tmp)))
    if args.device == "cuda":
        torch.cuda.empty_cache()
    rows.update(lm_step_check(args))
    rows.update(decode_check(args))
    rows["wall time of this check"] = f"{time.perf_counter() - started:.0f} s"
    width = max(len(k) for k in rows)
    print(f"| {'check'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|---|")
    for key, value in rows.items():
        print(f"| {key.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
