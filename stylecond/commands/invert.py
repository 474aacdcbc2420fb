"""``stylecond invert``: textual inversion of reference audio on a trained model -> ``style.safetensors``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stylecond.audio import AudioError, load_audio
from stylecond.commands.trust_flags import add_trust_arguments, trust_kwargs
from stylecond.inversion.module import DEFAULT_STEPS
from stylecond.inversion.tokens import MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="Directory from `stylecond export`.")
    add_trust_arguments(parser)
    parser.add_argument("--audio", type=Path, nargs="+", required=True, help="Reference track(s).")
    parser.add_argument("--mode", choices=MODES, default="lm_space", help="Where the learned vectors live.")
    parser.add_argument("--tokens", type=int, default=1, help="Number of learned vectors P (default 1).")
    parser.add_argument("--token", default="<my-style>", help="Pseudo-word (default <my-style>).")
    parser.add_argument("--init-word", default=None, help="Initialise from this word (default: zeros).")
    parser.add_argument(
        "--prompt",
        default=None,
        help="Training text (token_embedding: must contain --token; lm_space: prefix).",
    )
    parser.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"Adam steps (default {DEFAULT_STEPS})."
    )
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: per mode).")
    parser.add_argument(
        "--chunk-seconds", type=float, default=10.0, help="Reference chunk length (default 10)."
    )
    parser.add_argument("--batch-size", type=int, default=5, help="Chunks per step (default 5).")
    parser.add_argument(
        "--early-stop", type=int, default=None, help="Stop after N steps without improvement."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device (default cpu).")
    parser.add_argument(
        "--out", type=Path, default=Path("style.safetensors"), help="Output safetensors file."
    )


_FLAGS = {  # constructor argument -> flag, to name the flag in error messages
    "num_tokens": "--tokens",
    "token": "--token",
    "init_word": "--init-word",
    "prompt": "--prompt",
    "learning_rate": "--lr",
    "steps": "--steps",
    "chunk_seconds": "--chunk-seconds",
    "batch_size": "--batch-size",
    "early_stop_patience": "--early-stop",
    "mode": "--mode",
}


def _flagged(err: Exception) -> str:
    msg = str(err)
    for name, flag in _FLAGS.items():
        if msg.startswith(f"{name} "):
            return f"{flag}: {msg}"
    return msg


def _named(message: str, paths: list[Path]) -> str:
    """``message`` with the library's ``audio[i]`` replaced by the file the user gave."""
    for i, path in enumerate(paths):
        message = message.replace(f"audio[{i}]", f"--audio {path}")
    return message


def _check(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1; got {args.steps}")
    if args.tokens < 1:
        raise ValueError(f"--tokens must be >= 1; got {args.tokens}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1; got {args.batch_size}")
    if not args.chunk_seconds > 0:
        raise ValueError(f"--chunk-seconds must be > 0; got {args.chunk_seconds}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be > 0; got {args.lr}")
    if not args.model.is_dir():
        raise ValueError(f"--model: {args.model} is not a directory (use `stylecond export` to make one)")
    if args.out.suffix != ".safetensors":
        raise ValueError(f"--out must end in .safetensors; got {args.out}")


def run(args: argparse.Namespace) -> int:
    import torch

    from stylecond.inversion.module import TextualInversionModule
    from stylecond.models.style_musicgen import StyleMusicGen

    console = Console()
    try:
        _check(args)
        torch.manual_seed(args.seed)
        model = StyleMusicGen.from_pretrained(args.model, map_location=args.device, **trust_kwargs(args))
        audio = []
        for path in args.audio:
            try:
                wav, _ = load_audio(
                    path, sample_rate=int(model.codec.sample_rate), channels=int(model.codec.channels)
                )
            except AudioError as err:
                raise ValueError(f"--audio: {err}") from err
            audio.append(wav)
        try:
            module = TextualInversionModule(
                model=model,
                mode=args.mode,
                num_tokens=args.tokens,
                token=args.token,
                init_word=args.init_word,
                prompt=args.prompt,
                learning_rate=args.lr,
                steps=args.steps,
                chunk_seconds=args.chunk_seconds,
                batch_size=args.batch_size,
                seed=args.seed,
                early_stop_patience=args.early_stop,
            ).to(args.device)
        except ValueError as err:
            raise ValueError(_flagged(err)) from err
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
        )
        start = time.perf_counter()
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"inverting ({args.mode})", total=args.steps, loss=float("nan"))

            def tick(step: int, total: int, loss: float, _task: Any = task) -> None:
                bar.update(_task, completed=step, total=total, loss=loss)

            try:
                history = module.fit(audio, progress=tick)
            except ValueError as err:
                raise ValueError(_named(_flagged(err), args.audio)) from err
        elapsed = time.perf_counter() - start
        out = module.save(args.out)
    except (ValueError, FileNotFoundError, TypeError) as err:
        Console(stderr=True).print(f"stylecond invert: {err}", markup=False)
        return 2
    first, last = history[0], history[-1]
    console.print(
        f"final loss {last:.4f} (first {first:.4f}) after {len(history)} steps in {elapsed:.1f} s; wrote {out}",
        markup=False,
    )
    if args.mode == "token_embedding":
        console.print(
            f'use it: stylecond generate --model {args.model} --inverted {out} --text "{args.token} ..."',
            markup=False,
        )
    else:
        console.print(f"use it: stylecond generate --model {args.model} --inverted {out}", markup=False)
    return 0
