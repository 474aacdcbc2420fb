"""Demo data stages: SynthStyles shards, the fitted MelCodec, pre-tokenized shards, held-out clips.

Shards go through :class:`datamodules.shard_writer.ShardWriter`, the code behind ``stylecond make-shards``:
raw audio first (``shards/raw-{train,val}``), then, once the codec is fitted on the raw training audio,
again with ``codes.npy`` (``shards/{train,val}``, what training reads).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from stylecond.demo.state import DemoState

#: Seeds of held-out clips start here: far from the shard clips' ``index`` seeds.
HELDOUT_SEED = 10_000_000
REFERENCE_SEED = 20_000_000


def synth_items(styles: tuple[str, ...], first: int, per_style: int) -> list[Any]:
    """``SynthItem``s of ``styles`` only: item ``index`` renders ``STYLES[index % len(STYLES)]``."""
    from datamodules.synth import STYLES
    from datamodules.track_catalog import SynthItem

    columns = [STYLES.index(s) for s in styles]
    rows = range(first, first + per_style)
    return [
        SynthItem(key=f"synth_{r * len(STYLES) + c:07d}", index=r * len(STYLES) + c)
        for r in rows
        for c in columns
    ]


def shard_pattern(directory: Path) -> str:
    """Brace pattern of the ``shard-NNNNNN.tar`` files in ``directory`` (for the datamodule)."""
    names = sorted(p.name for p in directory.glob("shard-*.tar"))
    if not names:
        raise FileNotFoundError(f"no shard-*.tar in {directory}")
    if len(names) == 1:
        return str(directory / names[0])
    first, last = names[0][6:12], names[-1][6:12]
    return str(directory / f"shard-{{{first}..{last}}}.tar")


def _write(state: DemoState, name: str, items: list[Any], codec: str | None) -> None:
    from datamodules.shard_writer import ShardWriter, WriterOptions

    s = state.settings
    options = WriterOptions(
        sample_rate=state.sample_rate, synth_seconds=s.clip_seconds, synth_seed=s.seed, codec=codec
    )
    writer = ShardWriter(out_dir=state.shards / name, options=options, shard_size=s.shard_size)
    with state.progress(eta=True) as bar:
        task = bar.add_task(f"shards/{name}", total=len(items))
        results = writer.run(items, on_shard=lambda _result, n: bar.advance(task, n))
    skipped = {k: len(v) for r in results for k, v in r.skipped.items()}
    if skipped:
        raise RuntimeError(f"shards/{name}: samples skipped while writing: {skipped}")
    state.summary.setdefault("shards", {})[name] = {
        "samples": sum(r.samples for r in results),
        "hours": round(sum(r.seconds for r in results) / 3600, 4),
        "pattern": shard_pattern(state.shards / name),
    }


def _items(state: DemoState) -> dict[str, list[Any]]:
    s = state.settings
    return {
        "train": synth_items(s.styles, 0, s.train_clips_per_style),
        "val": synth_items(s.styles, s.train_clips_per_style, s.val_clips_per_style),
    }


def stage_shards(state: DemoState) -> None:
    """Raw SynthStyles shards (audio + caption json) for train and val."""
    for split, items in _items(state).items():
        _write(state, f"raw-{split}", items, codec=None)


def read_shard_audio(directory: Path) -> Iterator[Tensor]:
    """Every audio member ``[C, T]`` of the shards in ``directory``."""
    from stylecond.audio import load_audio

    for path in sorted(directory.glob("shard-*.tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                handle = tar.extractfile(member) if member.name.endswith((".flac", ".wav")) else None
                if handle is not None:
                    yield load_audio(handle.read(), name=f"{path.name}/{member.name}")[0]


def codec_args(config: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The MelCodec init args of ``config`` (``model.init_args.codec``) with ``overrides``, minus weights."""
    data = yaml.safe_load(config.read_text())
    codec = data["model"]["init_args"]["codec"]
    if not str(codec.get("class_path", "")).endswith("MelCodec"):
        raise ValueError(f"{config}: the demo needs model.init_args.codec to be a MelCodec")
    args = {k: v for k, v in (codec.get("init_args") or {}).items() if k != "weights"}
    args.update(overrides)
    return args


def stage_codec(state: DemoState) -> None:
    """Fit the MelCodec (residual k-means on the raw training audio) and save it to ``mel_codec/``."""
    from stylecond.codecs.mel_codec import MelCodec

    state.codec_args = codec_args(state.config, state.settings.codec_overrides)
    codec = MelCodec(**{**state.codec_args, "seed": state.settings.seed})
    state.codec_args["seed"] = state.settings.seed
    with state.console.status("fit mel codec (residual k-means)"):
        codec.fit(list(read_shard_audio(state.shards / "raw-train")))
    codec.save(state.codec_dir)
    state.codec = codec
    state.summary["codec"] = {
        "codec_id": codec.codec_id,
        "frame_rate": codec.frame_rate,
        "num_codebooks": codec.num_codebooks,
        "cardinality": codec.cardinality,
        "bitrate": round(codec.bitrate),
    }
    state.console.print(
        f"mel codec: {codec.num_codebooks} x {codec.cardinality} codes @ {codec.frame_rate:g} Hz "
        f"({codec.bitrate / 1000:.2f} kbit/s)"
    )


def stage_pretokenize(state: DemoState) -> None:
    """Shards again, with the codec's tokens as ``codes.npy`` (``make-shards --pretokenize --codec mel:DIR``)."""
    for split, items in _items(state).items():
        _write(state, split, items, codec=f"mel:{state.codec_dir.resolve()}")


def stage_heldout(state: DemoState) -> None:
    """Held-out clips (seeds unused by the shards): classifier training set and grid references."""
    from datamodules.synth import SynthStyles

    s = state.settings
    synth = SynthStyles(sample_rate=state.sample_rate, seed=s.seed)

    def clips(first_seed: int, per_style: int) -> list[Any]:
        return [
            synth.clip(style, seconds=s.clip_seconds, seed=first_seed + 1000 * i + j)
            for i, style in enumerate(s.styles)
            for j in range(per_style)
        ]

    state.heldout = clips(HELDOUT_SEED, s.classifier_clips_per_style)
    state.references = clips(REFERENCE_SEED, s.refs_per_style)
    state.summary["heldout_clips"] = len(state.heldout)
    state.summary["reference_clips"] = len(state.references)


def clip_audio(clips: list[Any]) -> list[Tensor]:
    return [torch.as_tensor(c.audio) for c in clips]
