"""Fixtures of the inversion tests: tiny StyleMusicGen models (see tiny_models.py)."""

from __future__ import annotations

import copy

import pytest
from tiny_models import SR, TrainedSetup, build_model, train_tiny
from torch import Tensor

from datamodules.synth import SynthStyles
from stylecond.models.style_musicgen import StyleMusicGen


@pytest.fixture(scope="session")
def synth_audio() -> list[Tensor]:
    """Six 1 s clips (two styles), to fit codecs and serve as references in the fast tests."""
    return [
        c.audio
        for c in SynthStyles(sample_rate=SR).clips(6, seconds=1.0, seed=3, styles=["techno", "ambient"])
    ]


@pytest.fixture(scope="session")
def base_model(synth_audio: list[Tensor]) -> StyleMusicGen:
    """An untrained tiny model (shared: tests that freeze or modify it use ``model``)."""
    model = build_model(fit_audio=synth_audio, dim=32, card=32)
    model.text_conditioner.load()
    return model


@pytest.fixture
def model(base_model: StyleMusicGen) -> StyleMusicGen:
    return copy.deepcopy(base_model)


@pytest.fixture(scope="session")
def trained() -> TrainedSetup:
    return train_tiny()
