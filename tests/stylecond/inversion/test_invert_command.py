from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_models import SR
from torch import Tensor

from stylecond.audio import save_audio
from stylecond.commands import invert
from stylecond.inversion.inverted_style import InvertedStyle
from stylecond.models.style_musicgen import StyleMusicGen


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    invert.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def exported(model: StyleMusicGen, synth_audio: list[Tensor], tmp_path: Path) -> tuple[Path, Path]:
    model.save_pretrained(tmp_path / "model")
    ref = tmp_path / "ref.wav"
    save_audio(ref, synth_audio[0], SR)
    return tmp_path / "model", ref


def test_invert_writes_a_loadable_style(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir, ref = exported
    out = tmp_path / "style.safetensors"
    argv = ["--model", str(model_dir), "--audio", str(ref), str(ref), "--mode", "token_embedding"]
    argv += [
        "--token",
        "<cli>",
        "--steps",
        "3",
        "--chunk-seconds",
        "0.5",
        "--batch-size",
        "2",
        "--out",
        str(out),
    ]
    assert invert.run(parse(argv)) == 0
    assert "final loss" in capsys.readouterr().out
    style = InvertedStyle.load(out)
    assert style.mode == "token_embedding" and style.token == "<cli>" and style.info["steps"] == "3"
    style.check(StyleMusicGen.from_pretrained(model_dir))


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--steps", "0"], "--steps"),
        (["--chunk-seconds", "-1"], "--chunk-seconds"),
        (["--lr", "0"], "--lr"),
        (["--out", "style.pt"], "--out"),
        (["--mode", "token_embedding", "--token", "piano"], "--token"),
        (["--mode", "token_embedding", "--prompt", "solo piano"], "--prompt"),
    ],
)
def test_errors_name_the_flag(
    exported: tuple[Path, Path], capsys: pytest.CaptureFixture, extra: list[str], flag: str
) -> None:
    model_dir, ref = exported
    assert invert.run(parse(["--model", str(model_dir), "--audio", str(ref), "--steps", "1", *extra])) == 2
    assert flag in capsys.readouterr().err


def test_bad_audio_and_model_name_the_flag(
    exported: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir, _ = exported
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage")
    assert invert.run(parse(["--model", str(model_dir), "--audio", str(bad)])) == 2
    assert "--audio" in capsys.readouterr().err
    assert invert.run(parse(["--model", str(tmp_path / "nope"), "--audio", str(bad)])) == 2
    assert "--model" in capsys.readouterr().err
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros((0, 1), np.float32), SR)  # no samples at all
    out = tmp_path / "never.safetensors"
    assert (
        invert.run(
            parse(["--model", str(model_dir), "--audio", str(short), "--steps", "1", "--out", str(out)])
        )
        == 2
    )
    captured = capsys.readouterr()
    assert str(short) in captured.err and "--audio" in captured.err and captured.out == ""
    assert not out.exists()
