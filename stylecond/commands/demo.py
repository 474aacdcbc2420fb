"""``stylecond demo``: an offline end-to-end tour on synthetic music, one function per stage.

Stage 1 (this module): synthesize clips in every style (:class:`datamodules.synth.SynthStyles`), fit the
weight-free :class:`~stylecond.codecs.mel_codec.MelCodec` on them, round-trip them through its codes, and
write WAVs (original + reconstruction), a spectrogram grid PNG and ``summary.json`` into ``--out``. A
nearest-centroid style classifier, fitted on separate clips, reports style accuracy on the originals and
on the reconstructions. Later stages (training, generation) take the same :class:`DemoState`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import Tensor

if TYPE_CHECKING:
    from datamodules.synth import SynthClip
    from stylecond.codecs.base import AudioCodec


@dataclass
class DemoState:
    """Everything the stages share; each stage reads what earlier ones produced and adds its own."""

    out: Path
    seed: int = 0
    sample_rate: int = 16000
    console: Console = field(default_factory=Console)
    clips: list[SynthClip] = field(default_factory=list)
    codec: AudioCodec | None = None
    reconstructions: list[Tensor] = field(default_factory=list)  # [C, T] each, aligned with clips
    summary: dict[str, Any] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)"
    )
    parser.add_argument(
        "--clips-per-style", type=int, default=4, help="clips synthesized per style (default: 4)"
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of each clip in seconds (default: 5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--styles", nargs="+", default=None, help="subset of styles (default: all)")
    parser.add_argument("--codebook-size", type=int, default=1024, help="mel codec entries per codebook")
    parser.add_argument("--griffin-lim-iters", type=int, default=32, help="mel codec Griffin-Lim iterations")


def run(args: argparse.Namespace) -> int:
    from datamodules.synth import STYLES

    problems = []
    if args.clips_per_style < 1:
        problems.append(f"--clips-per-style must be >= 1, got {args.clips_per_style}")
    if not args.seconds > 0:
        problems.append(f"--seconds must be > 0, got {args.seconds}")
    unknown = sorted(set(args.styles or ()) - set(STYLES))
    if unknown:
        problems.append(f"--styles must be drawn from {', '.join(STYLES)}; got {', '.join(unknown)}")
    if problems:
        print("stylecond demo: " + "; ".join(problems), file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    state = DemoState(out=Path(args.out), seed=args.seed)
    state.out.mkdir(parents=True, exist_ok=True)
    state.console.rule("[bold]stylecond demo")
    stage_synthesize(state, clips_per_style=args.clips_per_style, seconds=args.seconds, styles=args.styles)
    stage_codec(state, codebook_size=args.codebook_size, griffin_lim_iters=args.griffin_lim_iters)
    stage_report(state)
    return 0


@contextmanager
def _progress(console: Console) -> Iterator[Progress]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        yield progress


def _write_wavs(state: DemoState, wavs: Iterable[Tensor], suffix: str, description: str) -> None:
    from stylecond.audio import save_audio

    items = list(wavs)
    with _progress(state.console) as progress:
        for i in progress.track(range(len(items)), description=description):
            clip = state.clips[i]
            name = f"{clip.style}_{clip.attributes['seed']}{suffix}.wav"
            save_audio(state.out / "audio" / name, items[i].clamp(-1.0, 1.0), state.sample_rate)


def stage_synthesize(
    state: DemoState, *, clips_per_style: int, seconds: float, styles: Sequence[str] | None = None
) -> None:
    """Synthesize ``clips_per_style`` clips of each style into ``state.clips`` and ``out/audio/*.wav``."""
    from datamodules.synth import STYLES, SynthStyles

    chosen = tuple(styles) if styles else STYLES
    synth = SynthStyles(sample_rate=state.sample_rate, seed=state.seed)
    n = clips_per_style * len(chosen)
    start = time.perf_counter()
    with _progress(state.console) as progress:
        clips = synth.clips(n, seconds=seconds, seed=state.seed, styles=chosen)
        state.clips = list(progress.track(clips, total=n, description="synthesize"))
    elapsed = time.perf_counter() - start
    state.summary["clips"] = n
    state.summary["clips_per_style"] = clips_per_style
    state.summary["styles"] = list(chosen)
    state.summary["seconds_per_clip"] = seconds
    state.summary["synth_realtime_factor"] = round(n * seconds / elapsed, 1)
    (state.out / "captions.json").write_text(
        json.dumps({f"{c.style}_{c.attributes['seed']}": c.caption for c in state.clips}, indent=2)
    )
    _write_wavs(state, (c.audio for c in state.clips), "", "write originals")


def stage_codec(
    state: DemoState, *, codebook_size: int = 1024, griffin_lim_iters: int = 32, batch_size: int = 8
) -> None:
    """Fit a :class:`MelCodec` on the clips, round-trip them, save it to ``out/mel_codec``."""
    from stylecond.codecs.mel_codec import MelCodec

    codec = MelCodec(
        sample_rate=state.sample_rate,
        codebook_size=codebook_size,
        griffin_lim_iters=griffin_lim_iters,
        seed=state.seed,
    )
    if codec.sample_rate != state.sample_rate:
        raise ValueError(f"MelCodec sample_rate {codec.sample_rate} != demo sample rate {state.sample_rate}")
    with state.console.status("fit mel codec (k-means codebooks)"):
        start = time.perf_counter()
        codec.fit([c.audio for c in state.clips])
        fit_seconds = time.perf_counter() - start
    codec.save(state.out / "mel_codec")
    recon: list[Tensor] = []
    with _progress(state.console) as progress, torch.no_grad():
        for i in progress.track(range(0, len(state.clips), batch_size), description="encode / decode"):
            wav = torch.stack([c.audio for c in state.clips[i : i + batch_size]])  # [B, 1, T]
            out = codec.decode(codec.encode(wav))[..., : wav.shape[-1]]
            out = torch.nn.functional.pad(out, (0, wav.shape[-1] - out.shape[-1]))
            recon.extend(out.float().cpu())
    state.codec, state.reconstructions = codec, recon
    state.summary["codec"] = {
        "codec_id": codec.codec_id,
        "frame_rate": codec.frame_rate,
        "num_codebooks": codec.num_codebooks,
        "cardinality": codec.cardinality,
        "bitrate": round(codec.bitrate),
        "fit_seconds": round(fit_seconds, 2),
    }
    _write_wavs(state, recon, "_codec", "write reconstructions")


def stage_report(state: DemoState) -> None:
    """Spectrogram grid PNG, style accuracy (originals vs reconstructions), ``summary.json`` and a table."""
    from datamodules.synth import SynthStyles
    from stylecond.metrics.style_classifier import NearestCentroidStyleClassifier

    styles = state.summary["styles"]
    seconds = state.summary["seconds_per_clip"]
    per_style = max(3, len(state.clips) // len(styles))
    synth = SynthStyles(sample_rate=state.sample_rate, seed=state.seed)
    with state.console.status(
        "fit style classifier on separate clips"
    ):  # different seeds from the demo clips
        train = list(
            synth.clips(per_style * len(styles), seconds=seconds, seed=state.seed + 1, styles=styles)
        )
        clf = NearestCentroidStyleClassifier(sample_rate=state.sample_rate)
        clf.fit([c.audio for c in train], [c.style for c in train])
    labels = [c.style for c in state.clips]
    accuracy = {"originals": clf.score([c.audio for c in state.clips], labels)}
    if state.reconstructions:
        predicted = clf.predict(state.reconstructions)
        accuracy["reconstructions"] = sum(p == t for p, t in zip(predicted, labels)) / len(labels)
        state.summary["reconstruction_confusions"] = dict(
            Counter(f"{t} -> {p}" for p, t in zip(predicted, labels) if p != t)
        )
    state.summary["style_accuracy"] = accuracy
    png = state.out / "spectrograms.png"
    _plot_grid(state, png)
    state.summary["spectrograms"] = str(png)
    (state.out / "summary.json").write_text(json.dumps(state.summary, indent=2))

    table = Table(title="stylecond demo - stage 1", show_header=False)
    per_clip = f"{len(styles)} styles x {state.summary['clips_per_style']}, {seconds:g} s each"
    table.add_row("clips", f"{len(state.clips)} ({per_clip})")
    table.add_row("synthesis speed", f"{state.summary['synth_realtime_factor']:.0f}x real time")
    if "codec" in state.summary:
        c = state.summary["codec"]
        table.add_row(
            "mel codec", f"{c['num_codebooks']} x {c['cardinality']} codes @ {c['frame_rate']:g} Hz"
        )
    for name, value in accuracy.items():
        table.add_row(f"style accuracy ({name})", f"{100 * value:.1f} %")
    table.add_row("output", str(state.out))
    state.console.print(table)


def _plot_grid(state: DemoState, path: Path) -> None:
    """One row per style (its first clip): log-mel of the original and of the reconstruction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylecond.mel import MelSpectrogram

    mel = MelSpectrogram(sample_rate=state.sample_rate, n_mels=80)
    first: dict[str, int] = {}
    for i, clip in enumerate(state.clips):
        first.setdefault(clip.style, i)
    columns = [("original", [c.audio for c in state.clips])]
    if state.reconstructions:
        columns.append(("mel codec reconstruction", state.reconstructions))
    fig, axes = plt.subplots(
        len(first), len(columns), figsize=(5 * len(columns), 1.6 * len(first) + 0.6), squeeze=False
    )
    for row, (style, index) in enumerate(first.items()):
        for col, (title, wavs) in enumerate(columns):
            ax = axes[row][col]
            with torch.no_grad():
                spec = mel(wavs[index].unsqueeze(0))[0].numpy()
            ax.imshow(spec, origin="lower", aspect="auto", vmin=spec.max() - 12, vmax=spec.max())
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=10)
            if col == 0:
                ax.set_ylabel(style, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
