from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.image import imread
from torch import nn

from stylecond import cli
from stylecond.commands import evaluate as evaluate_cmd
from tests.stylecond.evaluation.tiny_setup import build_model, write_synth_shards


@pytest.fixture(scope="module")
def synth_shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_synth_shards(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    return build_model()


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        cli.main(["evaluate", *argv])
    return int(exc.value.code or 0)


@pytest.fixture
def patched_model(tiny_model: nn.Module, monkeypatch: pytest.MonkeyPatch) -> nn.Module:
    """Serve the session's tiny untrained model for any --model path."""
    monkeypatch.setattr(evaluate_cmd, "load_model", lambda path, device: tiny_model)
    return tiny_model


@pytest.mark.slow
def test_evaluate_command_writes_report(patched_model: nn.Module, synth_shards: str, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code = _main([
        "--model", str(tmp_path), "--data", synth_shards, "--conditions", "style,text,text+style",
        "--eval-q", "1,2", "--beta", "1,5", "--num-samples", "3", "--duration", "0.4", "--excerpt-length", "1",
        "--max-seconds", "2", "--top-k", "8", "--knn-k", "2", "--chunk-seconds", "0.25", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    data = json.loads((out / "report.json").read_text())
    assert data["embedder"] == "mel_stats:16k:64"
    assert len(data["settings"]) == 2 + 1 + 4
    for setting in data["settings"]:
        for metric in setting["metrics"].values():
            assert set(metric) == {"value", "embedding"} and metric["embedding"]
    assert data["references"]["labels"] and data["config"]["model"] == str(tmp_path)
    md = (out / "report.md").read_text()
    assert "FAD ↓ [mel_stats:16k:64]" in md and md.count("| text+style |") == 4
    for name in data["plots"]:
        assert imread(out / name).shape[-1] in (3, 4)
    assert set(data["plots"]) == {"style_vs_eval_q.png", "text_vs_beta.png"}


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--conditions", "style,melody"], "--conditions"),
        (["--eval-q", "9"], "--eval-q"),
        (["--embedder", "vggish:x"], "--embedder"),
        (["--kl-classifier", "centroid:/nonexistent.json"], "--kl-classifier"),
        (["--num-samples", "0"], "--num-samples"),
        (["--excerpt-length", "40"], "--excerpt-length"),
    ],
)
def test_bad_flags_are_named(
    patched_model: nn.Module, synth_shards: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], flag: str,
) -> None:  # fmt: skip
    argv = ["--model", str(tmp_path), "--data", synth_shards, "--num-samples", "2", "--duration", "0.2",
            "--excerpt-length", "1", "--max-seconds", "2", "--out", str(tmp_path / "r"), *extra]  # fmt: skip
    assert _main(argv) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "r" / "report.json").exists()


def test_missing_model_dir_names_flag(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--model"):
        evaluate_cmd.load_model(tmp_path / "nope", "cpu")


def test_missing_data_names_flag(
    patched_model: nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _main(["--model", str(tmp_path), "--data", str(empty), "--out", str(tmp_path / "r")]) == 2
    assert "--data" in capsys.readouterr().err
