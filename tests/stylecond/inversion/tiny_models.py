"""Tiny text-conditioned StyleMusicGen models (MelCodec + tiny MusicLM + MiniLM) for the inversion tests
and the benchmark's self-test."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from datamodules.synth import SynthStyles
from stylecond.conditioners.types import ConditionTensors
from stylecond.models.pretrained import instantiate_model
from stylecond.models.style_musicgen import StyleMusicGen

SR = 16000
STYLES = ("techno", "ambient", "chiptune")
CROP = 50  # frames (1 s) per training crop


def model_config(*, dim: int = 64, card: int = 64, fuser: tuple[str, ...] = ("text",)) -> dict[str, Any]:
    return {
        "class_path": "stylecond.models.style_musicgen.StyleMusicGen",
        "init_args": {
            "codec": {
                "class_path": "stylecond.codecs.mel_codec.MelCodec",
                "init_args": {
                    "num_codebooks": 2,
                    "codebook_size": card,
                    "kmeans_iters": 5,
                    "griffin_lim_iters": 2,
                },
            },
            "lm": {
                "class_path": "stylecond.lm.music_lm.MusicLM",
                "init_args": {"num_codebooks": 2, "card": card, "dim": dim, "num_heads": 4, "num_layers": 2},
            },
            "text_conditioner": {
                "class_path": "stylecond.conditioners.minilm.MiniLMTextConditioner",
                "init_args": {"output_dim": dim, "word_dropout": 0.0},
            },
            "fuser": {
                "class_path": "stylecond.conditioners.fuser.ConditionFuser",
                "init_args": {"prefix": list(fuser)},
            },
        },
    }


def build_model(*, fit_audio: list[Tensor], **kwargs: Any) -> StyleMusicGen:
    """A StyleMusicGen built from its config (so ``model_config`` is set), codec fitted on ``fit_audio``."""
    torch.manual_seed(0)
    model = instantiate_model(model_config(**kwargs))
    assert isinstance(model, StyleMusicGen)
    model.codec.fit(fit_audio)
    return model.eval()


def caption(clip: Any) -> str:
    """Training caption: the style name only (a tiny LM learns to use short captions in a few steps)."""
    return f"{clip.style.replace('_', ' ')} music"


def null_others(model: StyleMusicGen, b: int) -> dict[str, ConditionTensors]:
    return {
        n: ConditionTensors(torch.zeros(b, 1, model.lm.dim), torch.zeros(b, 1, dtype=torch.bool))
        for n in model.fuser.names
        if n != "text"
    }


def train(model: StyleMusicGen, clips: list[Any], *, steps: int) -> StyleMusicGen:
    """Train the LM and the text projection on random 1 s crops of ``clips`` (30% null captions)."""
    codec, text = model.codec, model.text_conditioner.load()
    with torch.no_grad():  # the encoder is frozen: encode the captions once
        codes = codec.encode(torch.stack([c.audio for c in clips]))
        tok = text.tokenizer([caption(c) for c in clips], padding=True, return_tensors="pt")
        hidden = text.encoder(**tok).last_hidden_state
        mask = tok["attention_mask"].bool()
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("codec")]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(clips), generator=g)[:8]
        m = mask[idx] & (torch.rand(len(idx), generator=g) > 0.3)[:, None]
        cond = ConditionTensors(text.proj(hidden[idx]) * m[..., None], m)
        fused = model.fuser({"text": cond} | null_others(model, len(idx)))
        start = int(torch.randint(codes.shape[-1] - CROP + 1, (1,), generator=g))
        crop = codes[idx, :, start : start + CROP]
        loss = model.lm.compute_loss(model.lm(crop, prefix=fused.prefix, cross=fused.cross), crop).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@dataclass
class TrainedSetup:
    model: StyleMusicGen
    held_out: dict[str, list[Tensor]]  # style -> clips [1, T] not used in training
    refs: dict[str, list[Tensor]]  # style -> reference tracks for inversion

    def fresh(self) -> StyleMusicGen:
        """A deep copy of the trained model (inversion freezes it and may grow its vocabulary)."""
        return copy.deepcopy(self.model)


def train_tiny(steps: int = 400, *, clips_per_style: int = 8) -> TrainedSetup:
    synth = SynthStyles(sample_rate=SR)
    clips = list(synth.clips(clips_per_style * len(STYLES), seconds=4.0, seed=1, styles=STYLES))
    model = train(build_model(fit_audio=[c.audio for c in clips]), clips, steps=steps)
    held = {
        s: [c.audio for c in synth.clips(3, seconds=2.0, seed=50 + i, styles=[s])]
        for i, s in enumerate(STYLES)
    }
    refs = {
        s: [c.audio for c in synth.clips(2, seconds=4.0, seed=90 + i, styles=[s])]
        for i, s in enumerate(STYLES)
    }
    return TrainedSetup(model=model, held_out=held, refs=refs)
