"""Tiny synthetic-style shards and a tiny untrained text+style model (shared by the evaluation tests and
``tests/stylecond/commands/test_evaluate.py``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from stylecond.conditioners.fuser import ConditionFuser
from stylecond.conditioners.types import ConditionTensors
from stylecond.models.generation import GenerationMixin

SR = 16000
NUM_SHARD_SAMPLES = 6  # 3 styles x 2 (SynthStyles round-robin over its styles)
CLIP_SECONDS = 2.0
REAL_STYLE_CONDITIONER = importlib.util.find_spec("stylecond.conditioners.style") is not None


def write_synth_shards(out: Path) -> str:
    """One shard of 6 synthetic clips (json has ``genre`` and ``synth.style``) in ``out``; returns its path."""
    from datamodules.shard_writer import ShardWriter, WriterOptions
    from datamodules.track_catalog import synth_items

    options = WriterOptions(sample_rate=SR, synth_seconds=CLIP_SECONDS, synth_seed=0)
    ShardWriter(out_dir=out, options=options, shard_size=100).run(synth_items(NUM_SHARD_SAMPLES))
    return str(out / "shard-000000.tar")


class MeanMelStyle(nn.Module):
    """Stand-in style conditioner (until ``stylecond.conditioners.style`` lands): ``eval_q`` tokens from the
    mean log-mel of the excerpt, through a random linear map."""

    def __init__(self, *, output_dim: int, num_codebooks: int = 6) -> None:
        super().__init__()
        from stylecond.mel import MelSpectrogram

        self.mel = MelSpectrogram(sample_rate=SR, n_fft=512, hop_length=256, n_mels=16)
        self.proj = nn.Linear(16, output_dim * num_codebooks)
        self.output_dim, self.num_codebooks, self.eval_q = output_dim, num_codebooks, 3
        self.excerpt_length, self.excerpt_start = 1.0, "middle"

    def forward(self, wav: Tensor, *, sample_rate: int, **_: Any) -> SimpleNamespace:
        assert sample_rate == SR
        feats = self.mel(wav.mean(dim=1)).mean(dim=-1)  # [B, 16]
        tokens = self.proj(feats).view(wav.shape[0], self.num_codebooks, self.output_dim)[:, : self.eval_q]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool)
        return SimpleNamespace(condition=ConditionTensors(tokens, mask), excerpt_span=None)


class TinyStyleMusicGen(GenerationMixin, nn.Module):
    """Stand-in with StyleMusicGen's generation attributes (codec, lm, conditioners, fuser, condition())."""

    def __init__(self, *, codec: Any, lm: Any, text_conditioner: Any, style_conditioner: Any) -> None:
        super().__init__()
        self.codec, self.lm = codec, lm
        self.text_conditioner, self.style_conditioner = text_conditioner, style_conditioner
        self.fuser = ConditionFuser()

    def condition(
        self, *, texts: Sequence[str | None] | None, wav: Tensor | None, sample_rate: int,
        style_wav: Tensor | None = None, **_: Any,
    ) -> tuple[dict[str, ConditionTensors], Tensor | None]:  # fmt: skip
        out: dict[str, ConditionTensors] = {}
        if texts is not None:
            out["text"] = self.text_conditioner(list(texts))
        source = wav if wav is not None else style_wav
        if source is not None:
            out["style"] = self.style_conditioner(source, sample_rate=sample_rate).condition
        return out, None


def fit_codec() -> Any:
    from datamodules.synth import SynthStyles
    from stylecond.codecs.mel_codec import MelCodec

    clips = [c.audio for c in SynthStyles(sample_rate=SR).clips(6, seconds=1.0, seed=7)]
    codec = MelCodec(sample_rate=SR, num_codebooks=2, codebook_size=16, kmeans_iters=3, griffin_lim_iters=2)
    return codec.fit(clips)


def build_model() -> nn.Module:
    """Untrained tiny text+style model: the real ``StyleMusicGen`` once the style conditioner exists."""
    from stylecond.conditioners.minilm import MiniLMTextConditioner
    from stylecond.lm.music_lm import MusicLM

    torch.manual_seed(0)
    codec = fit_codec()
    dim = 32
    lm = MusicLM(
        num_codebooks=codec.num_codebooks, card=codec.cardinality, dim=dim, num_heads=2, num_layers=1
    )
    text = MiniLMTextConditioner(output_dim=dim, max_length=16, word_dropout=0.0)
    if not REAL_STYLE_CONDITIONER:
        return TinyStyleMusicGen(codec=codec, lm=lm, text_conditioner=text,
                                 style_conditioner=MeanMelStyle(output_dim=dim)).eval()  # fmt: skip
    from stylecond.conditioners.style import StyleConditioner
    from stylecond.features.mel_features import MelFeatures
    from stylecond.models.style_musicgen import StyleMusicGen

    style = StyleConditioner(
        extractor=MelFeatures(), output_dim=dim, dim=dim, num_layers=1, num_heads=2, ffn_dim=64,
        num_codebooks=6, codebook_size=16, eval_q=3, ds_factor=5, excerpt_length=1.0,
    )  # fmt: skip
    return StyleMusicGen(codec=codec, lm=lm, text_conditioner=text, style_conditioner=style).eval()
