"""``stylecond make-shards``: write WebDataset shards from an audio folder or from synthetic styles.

Examples::

    stylecond make-shards --input music/ --out shards/train --segment-seconds 30 --workers 4
    stylecond make-shards --synth 200 --out shards/synth --seconds 5 --sample-rate 16000
    stylecond make-shards --input music/ --out shards/tok --pretokenize --codec encodec:facebook/encodec_32khz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

LONG_TRACK_SECONDS = 600  # whole tracks longer than this get a warning suggesting --segment-seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Captions: --input DIR/captions.jsonl (one {'path', 'text', optional 'metadata'/genre/moods/bpm/key/"
        "instruments/title} per line, path relative to DIR), else a sidecar song.json or song.txt per track. "
        "A bad captions line is skipped and reported (file:line); its track falls back to its sidecar, and a "
        "track with no caption at all is skipped (no_caption). --strict stops at the first bad line instead.\n"
        "Codecs for --pretokenize: mel:DIR (saved MelCodec), encodec:NAME_OR_PATH[@KBPS] (Hugging Face EnCodec).\n"
        "Re-running with the same arguments resumes: finished shards are kept."
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", type=Path, help="folder of audio files (searched recursively)")
    src.add_argument(
        "--synth", type=int, metavar="N", help="write N synthetic clips (datamodules.synth.SynthStyles)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder for shard-NNNNNN.tar and index.json"
    )
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    parser.add_argument("--segment-seconds", type=float, default=None,
                        help="cut tracks into pieces of this length (default: whole tracks, with a warning "
                             "for tracks over 10 min)")  # fmt: skip
    parser.add_argument("--min-segment-seconds", type=float, default=1.0,
                        help="drop tracks / last pieces shorter than this (default 1.0)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10.0, help="length of --synth clips (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --synth clips (default 0)")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="resample stored audio to this rate (default: the file's, or the codec's)")  # fmt: skip
    parser.add_argument(
        "--channels", type=int, default=None, help="convert stored audio to this many channels"
    )
    parser.add_argument("--format", dest="audio_format", choices=("flac", "wav"), default="flac",
                        help="stored audio format, 16-bit PCM (default flac)")  # fmt: skip
    parser.add_argument(
        "--pretokenize", action="store_true", help="also store codec tokens as codes.npy (int16)"
    )
    parser.add_argument(
        "--codec", default=None, help="codec for --pretokenize: mel:DIR or encodec:NAME_OR_PATH[@KBPS]"
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel writer processes (default 1)")
    parser.add_argument("--prefix", default="shard", help="shard file name prefix (default 'shard')")
    parser.add_argument(
        "--strict", action="store_true", help="stop at the first unreadable caption instead of skipping it"
    )


def _print_skips(skipped: dict[str, list[str]]) -> None:
    """Every skipped input by reason, on stderr (``index.json``'s ``skipped`` holds the same names)."""
    for reason, names in sorted(skipped.items()):
        print(f"skipped ({reason}, {len(names)}):", file=sys.stderr)
        for name in names:
            print(f"  {name}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from datamodules.shard_writer import ShardResult, ShardWriter, WriterOptions, merge_skips
    from datamodules.track_catalog import SynthItem, TrackItem, discover_tracks, plan_segments, synth_items

    console = Console(stderr=True, soft_wrap=True)  # paths stay on one line
    if args.pretokenize != bool(args.codec):
        console.print(
            "[red]error:[/] --pretokenize and --codec go together (e.g. --pretokenize --codec mel:DIR)"
        )
        return 2
    skipped: dict[str, list[str]] = {}
    try:
        options = WriterOptions(sample_rate=args.sample_rate, channels=args.channels, audio_format=args.audio_format,
                                codec=args.codec, synth_seconds=args.seconds, synth_seed=args.seed)  # fmt: skip
        items: list[TrackItem | SynthItem]
        if args.synth is not None:
            items = list(synth_items(args.synth))
        else:
            tracks, skipped = discover_tracks(args.input, strict=args.strict)
            planned, more = plan_segments(tracks, segment_seconds=args.segment_seconds,
                                          min_segment_seconds=args.min_segment_seconds)  # fmt: skip
            skipped = merge_skips(skipped, more)
            items = list(planned)
            long = [i.source for i in planned if i.frames > LONG_TRACK_SECONDS * i.file_rate]
            if long and args.segment_seconds is None:
                console.print(f"[yellow]warning:[/] {len(long)} track(s) longer than {LONG_TRACK_SECONDS // 60} min "
                              f"are written whole (e.g. {long[0]}); training decodes only its crop of a FLAC/WAV at "
                              "the training rate, but --segment-seconds 30 gives more, shorter samples")  # fmt: skip
        if options.codec:
            from datamodules.codec_loaders import load_codec

            load_codec(options.codec)  # fail fast on a bad spec, before any shard
        writer = ShardWriter(out_dir=args.out, options=options, shard_size=args.shard_size, workers=args.workers,
                             prefix=args.prefix)  # fmt: skip
    except ValueError as err:
        console.print(f"[red]error:[/] {err}")
        return 2
    if not items:
        _print_skips(skipped)
        console.print("[red]error:[/] nothing to write (no usable tracks found)")
        return 1
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("samples", total=len(items))

        def on_shard(result: ShardResult, n_items: int) -> None:
            progress.advance(task, n_items)

        try:
            results = writer.run(items, on_shard=on_shard, skipped=skipped)
        except ValueError as err:
            console.print(f"[red]error:[/] {err}")
            return 2
    skipped = merge_skips(skipped, *(r.skipped for r in results))
    new = [r for r in results if not r.resumed]
    table = Table(title=f"make-shards -> {args.out}")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("examples")
    table.add_row("shards written", str(len(new)), "")
    table.add_row("shards kept (resumed)", str(len(results) - len(new)), "")
    table.add_row("samples written", str(sum(r.samples for r in new)), "")
    table.add_row("samples in all shards", str(sum(r.samples for r in results)), "")
    for reason, names in sorted(skipped.items()):
        table.add_row(f"skipped: {reason}", str(len(names)), "see below")
    hours = sum(r.seconds for r in results) / 3600
    table.add_row("total hours", f"{hours:.3f}", "")
    Console().print(table)
    _print_skips(skipped)
    if sum(r.samples for r in results) == 0:
        console.print("[red]error:[/] nothing was written: every input was skipped (see above)")
        return 1
    return 0
