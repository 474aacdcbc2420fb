"""``stylecond generate``: music from a text prompt and/or reference audio with a trained model."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from stylecond.audio import AudioError, AudioWriter, audio_format, load_audio, save_audio
from stylecond.commands.sampling_flags import FLAGS as SAMPLING_FLAGS
from stylecond.commands.sampling_flags import add_sampling_arguments, sampling_with
from stylecond.commands.trust_flags import add_trust_arguments, trust_kwargs
from stylecond.lm.quantize import QUANTIZE_MODES, quantize

_FLAGS = {  # request field -> command-line flag (for error messages)
    "text": "--text",
    "style_audio": "--style-audio",
    "eval_q": "--eval-q",
    "excerpt_length": "--excerpt-length",
    **SAMPLING_FLAGS,
    "duration": "--duration",
    "seed": "--seed",
    "out": "--out",
    "inverted": "--inverted",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="A stylecond export, an audiocraft release or a transformers MusicGen: local directory or hub id "
        "(e.g. facebook/musicgen-style).",
    )
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit) of --model.")
    add_trust_arguments(parser)
    parser.add_argument("--text", default=None, help="Text prompt.")
    parser.add_argument("--style-audio", type=Path, default=None, help="Reference audio file.")
    parser.add_argument("--eval-q", type=int, default=None, help="Style codebooks 1..Q (fewer = looser).")
    parser.add_argument("--excerpt-length", type=float, default=None, help="Seconds of reference used.")
    add_sampling_arguments(parser)
    parser.add_argument(
        "--inverted", type=Path, default=None, help="Learned style from `stylecond invert` (safetensors)."
    )
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds to generate.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out.wav"), help="Output WAV/FLAC path.")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default=None,
        help="Quantize the LM's linear layers for faster CPU decoding (int4: 4-bit weights in groups of 32; "
        "int8: 8-bit weights; int8-dynamic: fbgemm). Changes the numbers slightly.",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="Where to generate: cpu (default), cuda or cuda:N. On a GPU the decoding step is replayed from "
        "CUDA graphs.",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="Write the audio while it is generated (1 s chunks, crossfaded joins) and print the time to first audio.",
    )
    parser.add_argument(
        "--redraw-style",
        action="store_true",
        help="Beyond one window: a new random excerpt of --style-audio per window (default: the same style tokens).",
    )
    parser.add_argument(
        "--requests",
        type=Path,
        default=None,
        help="Batch mode: a jsonl file, one request per line with fields text, style_audio, out and any of "
        "eval_q, excerpt_length, cfg_coef, cfg_coef_beta ('none' = plain CFG), top_k, top_p, temperature, "
        "duration, seed.",
    )


def _device(name: str, quantize_mode: str | None) -> torch.device:
    """The ``--device`` to generate on; ValueError naming the flag when it cannot be used."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device: {name!r} is not a device (cpu, cuda or cuda:N)") from err
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N; got {name!r}")
    if device.type == "cuda":
        if quantize_mode is not None:
            raise ValueError("--quantize runs on stylecond's CPU kernels: use it with --device cpu")
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def _check_out(out: Any, where: str) -> None:
    """Reject an output path whose format cannot be written, before any work."""
    try:
        audio_format(str(out))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _requests(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = {
        "text": args.text,
        "style_audio": args.style_audio,
        "eval_q": args.eval_q,
        "excerpt_length": args.excerpt_length,
        "cfg_coef": args.cfg,
        "cfg_coef_beta": args.beta,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "temperature": args.temperature,
        "duration": args.duration,
        "seed": args.seed,
        "out": args.out,
        "inverted": args.inverted,
    }
    if args.requests is None:
        _check_out(base["out"], "--out")
        return [base]
    if not args.requests.is_file():
        raise ValueError(f"--requests: {args.requests} does not exist")
    out = []
    for lineno, line in enumerate(args.requests.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"--requests: {args.requests}:{lineno} is not valid JSON ({err.msg})") from err
        unknown = set(item) - set(base)
        if unknown:
            raise ValueError(f"--requests: {args.requests}:{lineno} has unknown fields {sorted(unknown)}")
        if "out" not in item:
            raise ValueError(f"--requests: {args.requests}:{lineno} needs an 'out' field")
        _check_out(item["out"], f"--requests: {args.requests}:{lineno}: out")
        out.append({**base, **item})
    return out


def generate_one(
    model: Any,
    request: dict[str, Any],
    progress: Any = None,
    *,
    stream: bool = False,
    redraw_style: bool = False,
) -> Path:
    """Run one request (see ``--requests``) and write its audio; errors name the flag. ``stream`` writes
    the audio as it is generated and prints the time to the first audio."""
    style = None
    style_sr = None
    if request["style_audio"] is not None:
        try:
            style, style_sr = load_audio(str(request["style_audio"]))
        except AudioError as err:
            raise ValueError(f"--style-audio: {err}") from err
    if request["text"] is None and style is None and request["inverted"] is None:
        raise ValueError("give --text, --style-audio, --inverted or a combination")
    if style is not None and model.style_conditioner is not None:
        needed = float(request["excerpt_length"] or model.style_conditioner.excerpt_length)
        have = style.shape[-1] / float(style_sr or 1)
        if have < needed:
            raise ValueError(
                f"--style-audio: {request['style_audio']} lasts {have:.2f} s, shorter than the "
                f"{needed:.2f} s excerpt (--excerpt-length)"
            )
    texts: list[str | None] | None = None if request["text"] is None else [request["text"]]
    overrides = None
    sampling = sampling_with(model.sampling, {field: request[field] for field in SAMPLING_FLAGS})
    if request["inverted"] is not None:
        from stylecond.inversion.generate_hook import inverted_overrides

        try:
            texts, overrides = inverted_overrides(
                model, request["inverted"], texts, style_given=style is not None
            )
        except (ValueError, FileNotFoundError) as err:
            raise ValueError(f"--inverted: {err}") from err
        if (
            style is None
        ):  # only the learned text: plain CFG (a null style would scale guidance by alpha*beta)
            sampling = sampling.replace(cfg_coef_beta=None)
    kwargs = dict(
        texts=texts,
        condition_overrides=overrides,
        style_audio=None if style is None else style[None],
        style_sample_rate=style_sr,
        duration=request["duration"],
        eval_q=request["eval_q"],
        excerpt_length=request["excerpt_length"],
        sampling=sampling,
        seed=request["seed"],
        redraw_style=redraw_style,
    )
    out = Path(request["out"])
    sample_rate = int(model.codec.sample_rate)
    try:
        if not stream:
            wav = model.generate(**kwargs, progress=progress)
            save_audio(out, wav[0].float().cpu(), sample_rate)
            return out
        started = time.perf_counter()
        writer = None
        try:
            for piece in model.generate_stream(**kwargs):
                if writer is None:
                    writer = AudioWriter(out, sample_rate=sample_rate, channels=int(piece.shape[1]))
                    print(f"first audio after {time.perf_counter() - started:.2f} s", file=sys.stderr)
                writer.write(piece[0])
                if progress is not None:
                    progress(writer.frames, round(float(request["duration"]) * sample_rate))
        finally:
            if writer is not None:
                writer.close()
        assert writer is not None
        seconds = writer.frames / sample_rate
        print(f"{seconds:.1f} s of audio in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    except ValueError as err:
        msg = str(err)
        for field, flag in _FLAGS.items():
            if field in msg and flag not in msg:
                msg = f"{flag}: {msg}"
                break
        raise ValueError(msg) from err
    return out


def run(args: argparse.Namespace) -> int:
    from stylecond.models.style_musicgen import StyleMusicGen

    try:
        requests = _requests(args)
        device = _device(args.device, args.quantize)
        model = StyleMusicGen.from_pretrained(
            args.model, revision=args.revision, map_location=device, **trust_kwargs(args)
        )
        if args.quantize is not None:
            model.lm = quantize(model.lm, args.quantize, inplace=True)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"stylecond generate: {err}", file=sys.stderr)
        return 2
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"))
    with Progress(*columns, TimeRemainingColumn()) as bar:
        for request in requests:
            task = bar.add_task(f"generating {request['out']}", total=None)

            def tick(done: int, total: int, _task: Any = task) -> None:
                bar.update(_task, completed=done, total=total)

            try:
                out = generate_one(
                    model, request, progress=tick, stream=args.stream, redraw_style=args.redraw_style
                )
            except ValueError as err:
                bar.stop()
                print(f"stylecond generate: {err}", file=sys.stderr)
                return 2
            bar.console.print(f"wrote {out}")
    return 0
