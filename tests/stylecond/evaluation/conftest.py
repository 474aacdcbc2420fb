"""Fixtures of the evaluation tests (helpers in tiny_setup.py)."""

from __future__ import annotations

import pytest
from torch import nn

from tests.stylecond.evaluation.tiny_setup import build_model, write_synth_shards


@pytest.fixture(scope="session")
def synth_shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_synth_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="session")
def tiny_model() -> nn.Module:
    return build_model()
