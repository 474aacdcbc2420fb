"""benchmarks/demo_quantized.py: its pooling over sampling seeds and its flags (the grid itself needs make demo)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.support.benchmark_scripts import load_benchmark


def _load() -> ModuleType:
    return load_benchmark("demo_quantized")


def test_pool_counts_every_clip() -> None:
    pool = _load()._pool
    assert pool([0.5, 1.0], [24, 24]) == pytest.approx(0.75)
    assert pool([0.0, 1.0], [12, 36]) == pytest.approx(0.75)
    assert pool([0.5, None], [24, 24]) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--seeds", "0"], "--seeds must be >= 1"), (["--modes", "int3"], "--modes: unknown mode 'int3'")],
)
def test_bad_flags_are_named(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _load().main(["--demo", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
