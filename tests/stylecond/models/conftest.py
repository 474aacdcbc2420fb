"""A tiny StyleMusicGen on the embedded defaults (MelCodec, MiniLM, MelFeatures), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules.synth import SynthStyles
from stylecond.codecs.mel_codec import MelCodec


@pytest.fixture(scope="session")
def mel_codec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MelCodec (4 x 16) fitted on a few SynthStyles clips and saved."""
    synth = SynthStyles(sample_rate=16000, seed=0)
    clips = [c.audio for c in synth.clips(8, seconds=1.0, seed=1)]
    codec = MelCodec(num_codebooks=4, codebook_size=16, kmeans_iters=3, griffin_lim_iters=2).fit(clips)
    return codec.save(tmp_path_factory.mktemp("mel_codec"))


def tiny_model_config(codec_dir: Path) -> dict:
    """``{class_path, init_args}`` of a tiny StyleMusicGen (what the CLI stores in checkpoints)."""
    return {
        "class_path": "stylecond.models.style_musicgen.StyleMusicGen",
        "init_args": {
            "codec": {
                "class_path": "stylecond.codecs.mel_codec.MelCodec",
                "init_args": {
                    "num_codebooks": 4,
                    "codebook_size": 16,
                    "griffin_lim_iters": 2,
                    "weights": str(codec_dir),
                },
            },
            "lm": {
                "class_path": "stylecond.lm.music_lm.MusicLM",
                "init_args": {"num_codebooks": 4, "card": 16, "dim": 32, "num_heads": 2, "num_layers": 2},
            },
            "text_conditioner": {
                "class_path": "stylecond.conditioners.minilm.MiniLMTextConditioner",
                "init_args": {"output_dim": 32, "max_length": 16},
            },
            "style_conditioner": {
                "class_path": "stylecond.conditioners.style.StyleConditioner",
                "init_args": {
                    "extractor": {"class_path": "stylecond.features.mel_features.MelFeatures"},
                    "output_dim": 32,
                    "dim": 32,
                    "num_layers": 1,
                    "num_heads": 2,
                    "ffn_dim": 64,
                    "num_codebooks": 6,
                    "codebook_size": 16,
                    "ds_factor": 5,
                    "excerpt_min": 0.5,
                    "excerpt_max": 1.0,
                    "excerpt_length": 1.0,
                },
            },
            "optim": {"lr": 1e-3, "warmup_steps": 1},
        },
    }


@pytest.fixture(scope="session")
def tiny_config(mel_codec_dir: Path) -> dict:
    return tiny_model_config(mel_codec_dir)


@pytest.fixture()
def tiny_model(tiny_config: dict):  # noqa: ANN201
    from stylecond.models.pretrained import instantiate_model

    torch.manual_seed(0)
    model = instantiate_model(tiny_config)
    model.configure_model()
    return model
