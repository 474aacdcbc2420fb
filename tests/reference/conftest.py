"""The reference side of the parity tests: tiny MusicGen-Style and MusicGen models built, exported and
reloaded by audiocraft's own code (builders, ``export_lm``, loaders), on tiny random stand-ins of T5,
MERT and EnCodec served under their hub names from a local hub cache. Run by ``make test-reference``
in .venv-ref (audiocraft is never a dependency of the package)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# before huggingface_hub is imported: audiocraft loads 't5-base' and 'm-a-p/MERT-v1-95M' by hub name
HUB_CACHE = Path(tempfile.mkdtemp(prefix="stylecond_ref_hub_"))
os.environ["HF_HUB_CACHE"] = str(HUB_CACHE)
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402

from tests.support.audiocraft_reference import Reference, build  # noqa: E402
from tests.support.tiny_audiocraft import xp_config  # noqa: E402
from tests.support.tiny_hub import fake_hub  # noqa: E402


@pytest.fixture(scope="session")
def hub() -> Path:
    return fake_hub(HUB_CACHE)


@pytest.fixture(scope="session")
def style_reference(hub: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """MusicGen-Style: MERT style conditioner (xsmall transformer, 3 x 16 RVQ), T5, 2 x 32 LM tokens."""
    return build(tmp_path_factory.mktemp("ref"), "style", xp_config(style=True), seed=11)


@pytest.fixture(scope="session")
def text_reference(hub: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Text MusicGen: T5 through cross-attention."""
    return build(tmp_path_factory.mktemp("ref"), "text", xp_config(style=False), seed=12)
