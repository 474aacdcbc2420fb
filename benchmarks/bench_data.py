"""Data-loading throughput: raw-audio shards (decode + resample + encode) vs pre-tokenized shards.

Writes synthetic shards (``stylecond make-shards --synth``) at ``--source-rate``, fits a small
MelCodec on a few clips, writes the same clips pre-tokenized, then measures samples per second of
``WebDatasetAudioDataModule`` training loaders with 1 and 2 workers:

- ``raw``: decode FLAC, resample to 16 kHz, crop, then ``codec.encode`` in the main process (what a
  training step does when shards hold audio only);
- ``codes+audio``: pre-tokenized codes plus the decoded audio (needed for a style excerpt);
- ``codes only``: ``decode_audio=False``.

It compares them with the samples per second one training step of a debug-size ``MusicLM``
consumes (forward, loss, backward, AdamW step on CPU). Run::

    .venv/bin/python benchmarks/bench_data.py --clips 48 --seconds 10 --batch-size 8 --batches 6
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _make_shards(root: Path, args: argparse.Namespace) -> tuple[str, str, Any]:
    from datamodules.synth import SynthStyles
    from stylecond.cli import main as cli_main
    from stylecond.codecs.mel_codec import MelCodec

    codec = MelCodec(codebook_size=args.codebook_size, kmeans_iters=4)
    synth = SynthStyles(sample_rate=16000, seed=1)
    codec.fit(c.audio for c in synth.clips(8, seconds=4.0, seed=1))
    codec.save(root / "codec")
    common = [
        "--synth",
        str(args.clips),
        "--seconds",
        str(args.seconds),
        "--shard-size",
        str(args.shard_size),
    ]
    for out, extra in (("raw", ["--sample-rate", str(args.source_rate)]),
                       ("tok", ["--pretokenize", "--codec", f"mel:{root / 'codec'}"])):  # fmt: skip
        try:
            cli_main(["make-shards", *common, "--out", str(root / out), *extra])
        except SystemExit as done:
            if done.code:
                raise
    n = (args.clips + args.shard_size - 1) // args.shard_size
    pattern = "{" + f"000000..{n - 1:06d}" + "}"
    return str(root / "raw" / f"shard-{pattern}.tar"), str(root / "tok" / f"shard-{pattern}.tar"), codec


def _throughput(dm: Any, batches: int, encode: Any = None) -> float:
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # warm-up: worker start and the first shard
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        batch = next(it)
        if encode is not None:
            with torch.no_grad():
                encode(batch.audio)
        n += len(batch)
    elapsed = time.perf_counter() - start
    del it
    return n / elapsed


def _train_step_rate(codec: Any, args: argparse.Namespace) -> tuple[float, str]:
    try:
        from stylecond.lm.music_lm import MusicLM
    except ImportError as err:  # pragma: no cover - depends on the LM being present
        return float("nan"), f"MusicLM unavailable ({err}); measure a training step and fill this row in"
    lm = MusicLM.from_preset("debug", num_codebooks=codec.num_codebooks, card=codec.cardinality)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-4)
    frames = round(args.segment_seconds * codec.frame_rate)
    codes = torch.randint(0, codec.cardinality, (args.batch_size, codec.num_codebooks, frames))
    times = []
    for _ in range(4):
        t = time.perf_counter()
        out = lm(codes)
        loss = lm.compute_loss(out, codes).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return args.batch_size / min(
        times[1:]
    ), f"MusicLM preset 'debug', K={codec.num_codebooks}, {frames} frames"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length written to the shards")
    p.add_argument("--segment-seconds", type=float, default=10.0, help="training segment length")
    p.add_argument(
        "--source-rate", type=int, default=32000, help="rate of the raw shards (resampled to 16 kHz)"
    )
    p.add_argument("--shard-size", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=6, help="timed batches per configuration")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--codebook-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="torch threads in the main process")
    p.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from datamodules.webdataset_audio import WebDatasetAudioDataModule

    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        raw, tok, codec = _make_shards(Path(tmp), args)
        base: dict[str, Any] = dict(sample_rate=16000, segment_seconds=args.segment_seconds, batch_size=args.batch_size,
                                    samples_per_epoch=args.batch_size * (args.batches + 2), shuffle_buffer=16)  # fmt: skip
        codes: dict[str, Any] = dict(use_codes=True, codec_frame_rate=codec.frame_rate,
                                     codec_num_codebooks=codec.num_codebooks, codec_id=codec.codec_id)  # fmt: skip
        for w in args.workers:
            rows.append(("raw: decode + resample + encode", str(w), _throughput(
                WebDatasetAudioDataModule(train_shards=raw, num_workers=w, **base), args.batches, codec.encode)))  # fmt: skip
            rows.append(("pre-tokenized: codes + audio", str(w), _throughput(
                WebDatasetAudioDataModule(train_shards=tok, num_workers=w, **base, **codes), args.batches)))  # fmt: skip
            rows.append(("pre-tokenized: codes only", str(w), _throughput(
                WebDatasetAudioDataModule(train_shards=tok, num_workers=w, decode_audio=False, **base, **codes),
                args.batches)))  # fmt: skip
        step, what = _train_step_rate(codec, args)
        rows.append((f"one training step ({what})", "-", step))
    lines = [f"{args.segment_seconds:g} s segments, batch {args.batch_size}, raw shards at {args.source_rate} Hz, "
             f"MelCodec K={codec.num_codebooks} x {codec.cardinality} @ {codec.frame_rate:g} Hz, CPU, "
             f"{args.threads} main-process thread(s)", "",
             "| pipeline | workers | samples/s |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {w} | {rate:.1f} |" for name, w, rate in rows]
    text = "\n".join(lines)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
