"""``stylecond convert`` and ``stylecond generate --model`` on audiocraft releases, run as a user would:
hub id with a revision, local directory, batch requests, long generation; errors name the source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from stylecond.cli import main
from stylecond.generation.settings import SamplingSettings
from stylecond.lm.quantize import quantize_int8
from stylecond.models.style_musicgen import StyleMusicGen


def _run(*argv: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    return int(exit_info.value.code or 0)


def test_convert_then_generate(
    audiocraft_hub: Path, ref_wav: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "converted"
    assert _run("convert", "facebook/musicgen-style", str(out), "--revision", "v1") == 0
    printed = capsys.readouterr().out
    assert (
        "style_conditioner" in printed and "total" in printed and "class_path" in printed
    )  # summary + config
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert (
            f.metadata()["converted_from"] == "facebook/musicgen-style" and f.metadata()["revision"] == "v1"
        )
    converted = StyleMusicGen.from_pretrained(out)
    direct = StyleMusicGen.from_pretrained("facebook/musicgen-style", revision="v1")
    for key, value in direct.state_dict().items():
        assert torch.equal(value, converted.state_dict()[key]), key
    wav = tmp_path / "a.wav"
    args = ["--style-audio", str(ref_wav), "--text", "funky bass", "--eval-q", "1", "--excerpt-length", "3",
            "--duration", "0.3", "--seed", "1"]  # fmt: skip
    assert _run("generate", "--model", str(out), *args, "--out", str(wav)) == 0 and wav.is_file()
    hub_wav = tmp_path / "b.wav"
    assert (
        _run(
            "generate", "--model", "facebook/musicgen-style", "--revision", "v1", *args, "--out", str(hub_wav)
        )
        == 0
    )
    assert hub_wav.read_bytes() == wav.read_bytes()  # the same model either way


def test_batch_requests_long_generation_and_int8(audiocraft_hub: Path, ref_wav: Path, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    lines = [{"text": "calm solo piano", "out": str(tmp_path / "r1.wav")},
             {"style_audio": str(ref_wav), "eval_q": 3, "cfg_coef_beta": 5, "out": str(tmp_path / "r2.wav")},
             {"text": "fast techno", "style_audio": str(ref_wav), "cfg_coef_beta": "none", "out": str(tmp_path / "r3.wav")}]  # fmt: skip
    requests.write_text("\n".join(json.dumps(x) for x in lines))
    assert (
        _run(
            "generate", "--model", "facebook/musicgen-style", "--requests", str(requests), "--duration", "0.2"
        )
        == 0
    )
    assert all((tmp_path / f"r{i}.wav").is_file() for i in (1, 2, 3))
    model = StyleMusicGen.from_pretrained("facebook/musicgen-style")
    ref = torch.randn(1, 32000 * 4) * 0.1
    long = model.generate(texts=["funky"], style_audio=ref, duration=1.0, window_seconds=0.4, stride_seconds=0.2,
                          seed=0, sampling=SamplingSettings(top_k=8))  # fmt: skip
    assert long.shape[-1] == 32000
    model.lm = quantize_int8(model.lm)
    assert torch.isfinite(model.generate(texts=["funky"], style_audio=ref, duration=0.2, seed=0)).all()


def test_convert_errors_name_the_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("convert", str(tmp_path), str(tmp_path / "out")) == 2
    assert f"{tmp_path} is not a model directory" in capsys.readouterr().err
    assert _run("generate", "--model", str(tmp_path / "missing"), "--text", "x") == 2
