"""A tiny text-conditioned music model trained briefly on synthetic styles, shared by the inversion tests."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from datamodules.synth import SynthStyles
from stylecond.codecs.mel_codec import MelCodec
from stylecond.conditioners.fuser import ConditionFuser
from stylecond.conditioners.minilm import MiniLMTextConditioner
from stylecond.conditioners.types import ConditionTensors
from stylecond.lm.music_lm import MusicLM
from stylecond.models.generation import GenerationMixin

SR = 16000
STYLES = ("techno", "ambient", "chiptune")
CLIP_SECONDS = 2.0
CROP = 50  # frames (1 s) per training crop


class TinyTextMusicGen(GenerationMixin, nn.Module):
    """Stand-in with StyleMusicGen's attributes (used while ``stylecond.models.style_musicgen`` is not importable)."""

    def __init__(
        self, *, codec: MelCodec, lm: MusicLM, text_conditioner: MiniLMTextConditioner, fuser: Any
    ) -> None:
        super().__init__()
        self.codec, self.lm, self.text_conditioner, self.fuser = codec, lm, text_conditioner, fuser
        self.style_conditioner = None
        self.model_config: dict[str, Any] | None = None

    def condition(
        self, *, texts: Sequence[str | None] | None, wav: Tensor | None, sample_rate: int, **_: Any
    ) -> tuple[dict[str, ConditionTensors], Tensor | None]:
        return ({} if texts is None else {"text": self.text_conditioner(list(texts))}), None


def build_model(codec: MelCodec, *, fuser: ConditionFuser) -> nn.Module:
    torch.manual_seed(0)
    lm = MusicLM(num_codebooks=codec.num_codebooks, card=codec.cardinality, dim=64, num_heads=4, num_layers=2)
    text = MiniLMTextConditioner(output_dim=64, word_dropout=0.0)
    try:
        from stylecond.models.style_musicgen import StyleMusicGen
    except ImportError:  # the style conditioner (engineer C) is not there yet
        return TinyTextMusicGen(codec=codec, lm=lm, text_conditioner=text, fuser=fuser)
    return StyleMusicGen(codec=codec, lm=lm, text_conditioner=text, style_conditioner=None, fuser=fuser)


@dataclass
class TrainedSetup:
    model: nn.Module
    clips: dict[str, list[Tensor]]  # style -> held-out clips [1, T] (seeds not used in training)
    refs: dict[str, list[Tensor]]  # style -> reference clips for inversion

    def fresh(self) -> nn.Module:
        """A deep copy of the trained model (inversion freezes and may grow the text vocabulary)."""
        return copy.deepcopy(self.model)


def train_tiny(steps: int = 150, *, fuser: ConditionFuser | None = None) -> TrainedSetup:
    synth = SynthStyles(sample_rate=SR)
    train = list(synth.clips(8 * len(STYLES), seconds=2 * CLIP_SECONDS, seed=1, styles=STYLES))
    codec = MelCodec(sample_rate=SR, num_codebooks=2, codebook_size=64, kmeans_iters=5, griffin_lim_iters=4)
    codec.fit([c.audio for c in train])
    model = build_model(codec, fuser=fuser or ConditionFuser(prefix=("text",)))
    with torch.no_grad():
        codes = codec.encode(torch.stack([c.audio for c in train]))
    text = model.text_conditioner.load()
    with torch.no_grad():  # the encoder is frozen: encode the captions once, train the projection + LM
        tok = text.tokenizer([c.caption for c in train], padding=True, return_tensors="pt")
        hidden = text.encoder(**tok).last_hidden_state
        mask = tok["attention_mask"].bool()
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("codec")]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(train), generator=g)[:8]
        keep = (torch.rand(8, generator=g) > 0.3)[:, None]  # 30% null text, for guidance
        m = mask[idx] & keep
        cond = ConditionTensors(text.proj(hidden[idx]) * m[..., None], m)
        fused = model.fuser({"text": cond} | _nulls(model, 8))
        start = int(torch.randint(codes.shape[-1] - CROP + 1, (1,), generator=g))
        crop = codes[idx, :, start : start + CROP]  # random crops: less memorisation of the few clips
        out = model.lm(crop, prefix=fused.prefix, cross=fused.cross)
        loss = model.lm.compute_loss(out, crop).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    held = {
        s: [c.audio for c in synth.clips(3, seconds=CLIP_SECONDS, seed=50 + i, styles=[s])]
        for i, s in enumerate(STYLES)
    }
    refs = {
        s: [c.audio for c in synth.clips(2, seconds=CLIP_SECONDS * 2, seed=90 + i, styles=[s])]
        for i, s in enumerate(STYLES)
    }
    return TrainedSetup(model=model, clips=held, refs=refs)


def _nulls(model: nn.Module, b: int) -> dict[str, ConditionTensors]:
    return {
        n: ConditionTensors(torch.zeros(b, 1, model.lm.dim), torch.zeros(b, 1, dtype=torch.bool))
        for n in model.fuser.names
        if n != "text"
    }


@pytest.fixture(scope="session")
def trained() -> TrainedSetup:
    return train_tiny()
