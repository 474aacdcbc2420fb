"""benchmarks/gpu_check.py runs unchanged where a GPU exists; here its code runs on CPU and its flags are checked."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.support.benchmark_scripts import load_benchmark


def _load() -> ModuleType:
    return load_benchmark("gpu_check")


@pytest.mark.slow
def test_cpu_smoke_run_prints_one_table(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    args = ["--device", "cpu", "--lm-size", "debug", "--batch", "2", "--seconds", "2", "--steps", "2",
            "--warmup", "1", "--decode-steps", "8"]  # fmt: skip
    _load().main(args)
    lines = capsys.readouterr().out.strip().splitlines()
    table = {
        line.split("|")[1].strip(): line.split("|")[2].strip() for line in lines if line.startswith("| ")
    }
    steps = [v for k, v in table.items() if k.endswith("steps/s")]
    assert len(steps) == 1 and float(steps[0]) > 0
    assert float(table["decode: transformers / ours eager"].rstrip("x")) > 0
    assert "decode: ours with CUDA graphs ms/step" not in table  # CUDA only
    assert table["train: peak memory of the timed steps"] == "-"  # CUDA only
    assert not list(tmp_path.iterdir())  # nothing written to the working directory


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps must be positive"),
        (["--lm-size", "huge"], "--lm-size must be one of"),
        (["--decode-steps", "2"], "--decode-steps must be at least 4"),
        (["--seconds", "-1"], "--seconds must be positive"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_bad_flags_are_named(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _load().main(["--device", "cpu", *argv])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU exists")
def test_no_gpu_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _load().main([])
    assert exit_info.value.code == 2 and "torch sees no CUDA GPU" in capsys.readouterr().err
