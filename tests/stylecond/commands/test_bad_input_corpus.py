"""A corpus of awkward inputs goes through make-shards, generate and invert as a user would run them: each
file is either used or named in a one-line error / the skip report; no traceback, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stylecond.cli import main

pytestmark = pytest.mark.slow
SR = 16000


def _sine(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return np.repeat((0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[:, None], channels, axis=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "music"
    root.mkdir()
    (root / "empty.wav").write_bytes(b"")
    (root / "random.flac").write_bytes(np.random.default_rng(0).bytes(5000))
    sf.write(root / "whole.flac", _sine(3.0), SR)
    full = (root / "whole.flac").read_bytes()
    (root / "truncated.flac").write_bytes(full[: len(full) // 2])
    sf.write(root / "one_sample.wav", np.zeros((1, 1), np.float32), SR)
    nan, inf = _sine(2.0), _sine(2.0)
    nan[100] = np.nan
    inf[200] = np.inf
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(root / "inf.wav", inf, SR, subtype="FLOAT")
    (root / "text.wav").write_text("I am not a WAV file, only text pretending to be one.\n" * 20)
    sf.write(root / "silence.wav", np.zeros((2 * SR, 1), np.float32), SR)
    sf.write(root / "clipped.wav", 3 * _sine(2.0), SR, subtype="FLOAT")
    sf.write(root / "stereo_8k.wav", _sine(2.0, 8000, 2), 8000)
    sf.write(root / "hires_96k.flac", _sine(2.0, 96000), 96000)
    sf.write(root / "six_channels.wav", _sine(2.0, SR, 6), SR)
    with sf.SoundFile(root / "twenty_minutes.ogg", "w", samplerate=8000, channels=1, format="OGG") as f:
        block = _sine(60.0, 8000)
        for _ in range(20):
            f.write(block)
    sf.write(root / "song.mp3", _sine(3.0, 32000), 32000, format="MP3")
    sf.write(root / "ünïcödé ♫ name.wav", _sine(2.0), SR)
    sf.write(root / "no_caption.wav", _sine(2.0), SR)
    sf.write(root / "huge_caption.wav", _sine(2.0), SR)
    for path in root.iterdir():
        if path.name not in ("no_caption.wav", "huge_caption.wav"):
            path.with_suffix(".txt").write_text(f"a short caption for {path.name}")
    (root / "huge_caption.txt").write_text("a very long caption " * 50_000)  # 1 MB
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out + captured.err


def test_make_shards_writes_the_good_and_names_every_bad_file(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    code, report = _run(["make-shards", "--input", str(corpus), "--out", str(out), "--sample-rate", str(SR),
                         "--channels", "1", "--segment-seconds", "30"], capsys)  # fmt: skip
    assert code == 0 and "Traceback" not in report
    index = json.loads((out / "index.json").read_text())
    skipped = {
        name.split(" (")[0].split(": ")[0]: reason
        for reason, names in index["skipped"].items()
        for name in names
    }
    written = set()
    for shard in sorted(out.glob("*.tar")):
        import tarfile

        with tarfile.open(shard) as tar:
            written |= {
                json.loads(tar.extractfile(m).read())["source"] for m in tar if m.name.endswith(".json")
            }  # type: ignore[union-attr]
    audio = sorted(p.name for p in corpus.iterdir() if p.suffix != ".txt")
    for name in audio:  # every file is accounted for: written, or skipped with a reason the report names
        assert (name in written) != (name in skipped), name
        if name in skipped:
            assert name in report
    assert {"empty.wav", "random.flac", "text.wav", "nan.wav", "inf.wav", "no_caption.wav"} <= set(skipped)
    assert {
        "twenty_minutes.ogg",
        "song.mp3",
        "ünïcödé ♫ name.wav",
        "six_channels.wav",
        "huge_caption.wav",
    } <= written
    assert index["complete"] and index["total_samples"] == sum(s["samples"] for s in index["shards"])


@pytest.mark.parametrize("command", ["generate", "invert"])
def test_every_file_is_used_or_named_in_one_line(
    corpus: Path, legacy_export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    for path in sorted(p for p in corpus.iterdir() if p.suffix != ".txt" and p.name != "twenty_minutes.ogg"):
        out = tmp_path / (f"{path.stem}.wav" if command == "generate" else f"{path.stem}.safetensors")
        if command == "generate":
            argv = ["generate", "--model", str(legacy_export_dir), "--style-audio", str(path), "--excerpt-length",
                    "0.5", "--duration", "0.2", "--out", str(out)]  # fmt: skip
        else:
            argv = ["invert", "--model", str(legacy_export_dir), "--audio", str(path), "--steps", "1",
                    "--chunk-seconds", "0.5", "--out", str(out)]  # fmt: skip
        code, text = _run(argv, capsys)
        assert "Traceback" not in text, (path.name, text)
        if code == 0:
            assert out.is_file(), path.name
        else:
            assert code == 2 and str(path) in text and not out.exists(), (path.name, text)
            errors = [line for line in text.splitlines() if line.startswith(f"stylecond {command}")]
            assert len(errors) == 1, (path.name, text)
