"""``stylecond evaluate``: generate under several settings, measure, write report.json / report.md / plots.

Example::

    stylecond evaluate --model export/ --data 'shards/test-{000000..000003}.tar' \\
        --conditions style,text,text+style --eval-q 1,2,3,4,6 --beta 1,3,5,7 --num-samples 64 \\
        --embedder mel_stats --out report/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from stylecond.commands.sampling_flags import add_sampling_arguments, sampling_from_args
from stylecond.generation.settings import SamplingSettings

__all__ = ["add_arguments", "load_model", "run"]

T = TypeVar("T")

#: words in library error messages -> the flag they come from
_FLAGS = {
    "eval_q": "--eval-q", "beta": "--beta", "conditions": "--conditions", "duration": "--duration",
    "excerpt": "--excerpt-length", "chunk_seconds": "--chunk-seconds", "batch_size": "--batch-size",
    "knn_k": "--knn-k", "top_k": "--top-k", "top_p": "--top-p", "temperature": "--temperature", "cfg_coef": "--cfg",
    "text_pairing": "--text-pairing", "embedder": "--embedder", "classifier": "--kl-classifier",
}  # fmt: skip


def _list(cast: Callable[[str], T], flag: str) -> Callable[[str], list[T]]:
    def parse(text: str) -> list[T]:
        try:
            return [cast(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a comma-separated list, got {text!r}") from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Embedders (--embedder): mel_stats[:SR] (offline default), hf:NAME_OR_PATH, onnx:PATH[@SR], or a\n"
        "class_path JSON/YAML spec (inline or a file) of any stylecond.metrics.embedders.AudioEmbedder.\n"
        "KL classifiers (--kl-classifier): centroid:PATH (NearestCentroidStyleClassifier.save), hf:NAME_OR_PATH."
    )
    add = parser.add_argument
    add("--model", type=Path, required=True, help="directory from `stylecond export` / save_pretrained")
    add(
        "--data",
        required=True,
        help="reference shards (pattern, '::'-list, pipe:) or a folder of audio files",
    )
    add("--conditions", type=_list(str, "--conditions"), default=["style", "text", "text+style"],
        help="comma-separated subset of style,text,text+style (default: all three)")  # fmt: skip
    add("--eval-q", type=_list(int, "--eval-q"), default=[],
        help="style codebooks to evaluate, e.g. 1,2,3,4,6 (default: the model's eval_q)")  # fmt: skip
    add(
        "--beta",
        type=_list(float, "--beta"),
        default=[5.0],
        help="double-CFG β values for text+style (default 5)",
    )
    add(
        "--num-samples", type=int, default=16, help="reference samples read (one generation each per setting)"
    )
    add("--embedder", default="mel_stats", help="embedding of FAD and KNN metrics (default mel_stats)")
    add("--clap", default=None, metavar="NAME_OR_PATH", help="CLAP model for the text-audio score")
    add("--kl-classifier", default=None, metavar="SPEC", help="classifier for the KL metric")
    add("--label-fields", type=_list(str, "--label-fields"), default=["style", "synth.style", "genre"],
        help="metadata fields holding a style label (default style,synth.style,genre)")  # fmt: skip
    add("--text-pairing", choices=("same", "shifted"), default="shifted",
        help="text for text+style: the excerpt's own, or another reference's (default shifted)")  # fmt: skip
    add("--duration", type=float, default=10.0, help="seconds generated per sample (default 10)")
    add("--excerpt-length", type=float, default=3.0, help="seconds of style excerpt (default 3)")
    add(
        "--max-seconds", type=float, default=30.0, help="reference tracks are cut to this length (default 30)"
    )
    add_sampling_arguments(parser, beta=False)  # --cfg, --top-k, --top-p, --temperature
    add("--seed", type=int, default=0)
    add("--batch-size", type=int, default=8, help="samples generated together (default 8)")
    add("--knn-k", type=int, default=5, help="nearest tracks compared by the KNN metrics (default 5)")
    add("--chunk-seconds", type=float, default=1.0, help="FAD / KNN embed chunks of this length (default 1)")
    add("--device", default="cpu", help="torch device for the model (default cpu)")
    add("--save-audio", action="store_true", help="also write the generations to OUT/audio/<setting>/")
    add("--out", type=Path, default=Path("report"), help="output folder (default report/)")


def load_model(path: Path, device: str) -> Any:
    """Load a ``save_pretrained`` directory (any model class with ``generate``); errors name ``--model``."""
    from stylecond.models.pretrained import from_pretrained

    try:
        model = from_pretrained(path, map_location=device)
    except FileNotFoundError as err:
        raise ValueError(f"--model: {err}") from err
    if not callable(getattr(model, "generate", None)) or not hasattr(model, "codec"):
        raise ValueError(f"--model: {path} holds a {type(model).__name__}, which has no generate()/codec")
    return model


def _flagged(err: Exception) -> str:
    msg = str(err)
    if msg.startswith("--"):
        return msg
    for word, flag in _FLAGS.items():
        if word in msg:
            return f"{flag}: {msg}"
    return msg


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from stylecond.audio import AudioError
    from stylecond.evaluation.classifiers import load_classifier
    from stylecond.evaluation.embedder_specs import load_embedder
    from stylecond.evaluation.references import load_references
    from stylecond.evaluation.report import to_markdown, write_report
    from stylecond.evaluation.runner import evaluate
    from stylecond.evaluation.settings import make_settings
    from stylecond.metrics.clap_score import CLAPScore

    console = Console(stderr=True)
    try:
        settings = make_settings(args.conditions, args.eval_q, args.beta)
        if args.num_samples < 1:
            raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
        if not 0 < args.excerpt_length <= args.max_seconds:
            raise ValueError(
                f"--excerpt-length must be in (0, --max-seconds={args.max_seconds}], got {args.excerpt_length}"
            )
        try:
            embedder = load_embedder(args.embedder)
        except (ValueError, ImportError) as err:
            raise ValueError(f"--embedder: {err}") from err
        try:
            kl_classifier = load_classifier(args.kl_classifier) if args.kl_classifier else None
        except (ValueError, ImportError) as err:
            raise ValueError(f"--kl-classifier: {err}") from err
        clap = CLAPScore(model_name_or_path=args.clap) if args.clap else None
        model = load_model(args.model, args.device)
        references = load_references(
            args.data, num_samples=args.num_samples, sample_rate=int(model.codec.sample_rate),
            channels=int(model.codec.channels), max_seconds=args.max_seconds, min_seconds=args.excerpt_length,
            label_fields=args.label_fields,
        )  # fmt: skip
        if len(references) < args.num_samples:
            console.print(
                f"[yellow]--data holds {len(references)} usable samples (< --num-samples {args.num_samples})"
            )
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            overall = bar.add_task("settings", total=None)
            steps = bar.add_task("decoding", total=None)

            def on_batch(label: str, done: int, total: int) -> None:
                bar.update(overall, description=label, completed=done, total=total)

            def on_step(done: int, total: int) -> None:
                bar.update(steps, completed=done, total=total)

            report = evaluate(
                model, references, settings, embedder, duration=args.duration, excerpt_seconds=args.excerpt_length,
                sampling=sampling_from_args(args, getattr(model, "sampling", SamplingSettings()), beta=False),
                seed=args.seed,
                batch_size=args.batch_size, knn_k=args.knn_k, chunk_seconds=args.chunk_seconds,
                text_pairing=args.text_pairing, clap=clap, kl_classifier=kl_classifier,
                audio_dir=args.out / "audio" if args.save_audio else None, progress=on_batch, step_progress=on_step,
            )  # fmt: skip
    except (ValueError, AudioError, OSError) as err:
        console.print(f"[red]stylecond evaluate:[/] {_flagged(err)}", highlight=False)
        return 2
    report.config["model"] = str(args.model)
    report.config["data"] = str(args.data)
    paths = write_report(report, args.out)
    print(to_markdown(report), file=sys.stdout)
    for path in paths.values():
        console.print(f"wrote {path}")
    return 0
