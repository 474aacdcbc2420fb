from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import pytest
import soundfile as sf
import yaml

from stylecond.commands import demo
from stylecond.demo.data import shard_pattern, synth_items
from stylecond.demo.settings import QUICK, default_config

matplotlib.use("Agg")


def _args(out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args(["--out", str(out), *extra])


def test_defaults_parse() -> None:
    args = _args(Path("x"))
    assert (args.quick, args.seed, args.config, args.max_minutes, args.threads) == (False, 0, None, None, 1)
    assert default_config().is_file()


@pytest.mark.parametrize(
    ("bad", "flag"),
    [
        (["--config", "nope.yaml"], "--config"),
        (["--max-minutes", "0"], "--max-minutes"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_arguments_return_2(
    tmp_path: Path, bad: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.run(_args(tmp_path / "out", *bad)) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_synth_items_render_only_the_chosen_styles() -> None:
    from datamodules.synth import STYLES

    items = synth_items(("techno", "folk"), 3, 2)
    assert [STYLES[i.index % len(STYLES)] for i in items] == ["techno", "folk", "techno", "folk"]
    assert len({i.key for i in items}) == 4 and all(i.index >= 3 * len(STYLES) for i in items)


def test_shard_pattern(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no shard"):
        shard_pattern(tmp_path)
    (tmp_path / "shard-000000.tar").touch()
    assert shard_pattern(tmp_path) == str(tmp_path / "shard-000000.tar")
    (tmp_path / "shard-000001.tar").touch()
    assert shard_pattern(tmp_path) == str(tmp_path / "shard-{000000..000001}.tar")


@pytest.mark.slow  # ~30-50 s on the shared box: every stage, through the real `stylecond fit` CLI path
def test_quick_demo_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert demo.run(_args(out, "--quick")) == 0

    styles = QUICK.styles
    n_refs = len(styles) * QUICK.refs_per_style
    for split in ("train", "val"):
        assert list((out / "shards" / split).glob("shard-*.tar"))
    assert (out / "mel_codec").is_dir() and (out / "model" / "model.safetensors").is_file()
    exported = yaml.safe_load((out / "model" / "config.yaml").read_text())
    assert (
        exported["init_args"]["window_seconds"] == 1.0
    )  # generate()'s window: the training segment (--data)
    folders = ["style_q1", "style_q3", "style_q6", "text", "text_style_b1", "text_style_b5", "references"]
    for folder in folders:
        wavs = sorted((out / "generations" / folder).glob("*.wav"))
        assert len(wavs) == n_refs, folder
        data, sr = sf.read(wavs[0])
        assert sr == 16000 and len(data) > 0

    image = matplotlib.pyplot.imread(out / "generations.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    rows = [line for line in (out / "results.md").read_text().splitlines() if line.startswith("| ")]
    conditions = [tuple(c.strip() for c in line.strip("|").split("|")[:3]) for line in rows[1:]]
    expected = [("real references", "–", "–"), ("codec round trip", "–", "–")]
    expected += [("style", "1", "–"), ("style", "3", "–"), ("style", "6", "–"), ("text", "–", "–")]
    expected += [("text+style", "6", "1"), ("text+style", "6", "5")]
    assert conditions[: len(expected)] == expected

    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"]["steps"] == 4
    assert summary["chance"] == pytest.approx(1 / len(styles))
    by_condition = {(r["condition"], r["eval_q"], r["beta"]): r for r in summary["style_accuracy"]}
    assert by_condition[("text", "–", "–")]["to_audio"] is None
    for row in summary["style_accuracy"]:
        for key in ("to_audio", "to_text"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0
    predictions = summary["predictions"]
    assert len(predictions) == 6 * n_refs and {p["predicted"] for p in predictions} <= set(styles)
    text_style = [p for p in predictions if p["setting"].startswith("text+style")]
    assert all(p["audio_style"] != p["text_style"] for p in text_style)
    # the quick demo is deterministic (seeded, single process): its exact results, recorded from a run
    third = 1 / 3
    assert [(r["condition"], r["eval_q"], r["beta"], r["to_audio"], r["to_text"]) for r in summary["style_accuracy"]] == [
        ("real references", "–", "–", 1.0, None), ("codec round trip", "–", "–", pytest.approx(2 * third), None),
        ("style", "1", "–", 0.0, None), ("style", "3", "–", pytest.approx(third), None),
        ("style", "6", "–", pytest.approx(third), None), ("text", "–", "–", None, 0.0),
        ("text+style", "6", "1", 0.0, pytest.approx(third)), ("text+style", "6", "5", 0.0, pytest.approx(third)),
    ]  # fmt: skip
    assert [p["predicted"] for p in predictions] == [
        "techno",
        "techno",
        "chiptune",
        "techno",
        "techno",
        "techno",
        "techno",
        "techno",
        "techno",
        "techno",
        "techno",
        "chiptune",
        "techno",
        "chiptune",
        "chiptune",
        "techno",
        "chiptune",
        "chiptune",
    ]
    metrics = summary["training"]["final_metrics"]
    assert (metrics["train/loss"], metrics["val/loss"]) == (2.7402, 2.7472)
    assert summary["model"]["trainable_params"] == 13952 and summary["codec"]["bitrate"] == 200
