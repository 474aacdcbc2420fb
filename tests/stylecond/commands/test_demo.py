from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import pytest
import soundfile as sf

from stylecond.commands import demo

matplotlib.use("Agg")


def _args(out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(["--out", str(out), *extra])


def test_defaults_parse() -> None:
    args = _args(Path("x"))
    assert (args.clips_per_style, args.seconds, args.seed, args.styles) == (4, 5.0, 0, None)


@pytest.mark.parametrize("bad", [["--clips-per-style", "0"], ["--seconds", "0"], ["--styles", "polka"]])
def test_bad_arguments_return_2(tmp_path: Path, bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.run(_args(tmp_path / "out", *bad)) == 2
    assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # ~5-15 s, mostly imports (lightning) and the mel codec's k-means / Griffin-Lim
def test_stage_one_writes_wavs_png_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    styles = ["chiptune", "techno", "folk"]
    args = _args(out, "--clips-per-style", "1", "--seconds", "0.5", "--styles", *styles)
    args.codebook_size, args.griffin_lim_iters = 16, 2
    assert demo.run(args) == 0

    wavs = sorted((out / "audio").glob("*.wav"))
    originals = [p for p in wavs if not p.stem.endswith("_codec")]
    recons = [p for p in wavs if p.stem.endswith("_codec")]
    assert len(originals) == len(recons) == len(styles)
    for path in wavs:
        data, sr = sf.read(path)
        assert sr == 16000 and len(data) == 8000
    assert {p.stem.split("_")[0] for p in originals} == set(styles)

    png = out / "spectrograms.png"
    image = matplotlib.pyplot.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == len(styles) and summary["styles"] == styles
    assert set(summary["style_accuracy"]) == {"originals", "reconstructions"}
    accuracy = summary["style_accuracy"]["reconstructions"]
    assert 0.0 <= accuracy <= 1.0
    assert sum(summary["reconstruction_confusions"].values()) == round((1 - accuracy) * len(styles))
    assert summary["codec"]["cardinality"] == 16
    assert (out / "mel_codec").is_dir()
    captions = json.loads((out / "captions.json").read_text())
    assert len(captions) == len(styles) and all("bpm" in c for c in captions.values())
