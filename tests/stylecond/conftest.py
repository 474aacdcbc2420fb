"""A real, small export for tests that need a trained model on disk: the checked-in legacy export."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_export"


@pytest.fixture(scope="session")
def legacy_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``tests/fixtures/legacy_export/export`` whose config points at the fixture's MelCodec."""
    export = tmp_path_factory.mktemp("legacy") / "export"
    shutil.copytree(FIXTURE / "export", export)
    config = yaml.safe_load((export / "config.yaml").read_text())
    config["init_args"]["codec"]["init_args"]["weights"] = str(FIXTURE / "mel_codec")
    (export / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return export
