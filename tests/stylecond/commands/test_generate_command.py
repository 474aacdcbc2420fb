"""``stylecond generate`` on a real export: settings reach the blocks that use them, errors name the flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

from datamodules.synth import SynthStyles
from stylecond.audio import save_audio
from stylecond.cli import main
from stylecond.quantization.rvq_bottleneck import RVQBottleneck


def _generate(export: Path, out: Path, *flags: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model", str(export), "--duration", "0.3", "--out", str(out), *flags])
    return int(exit_info.value.code or 0)


@pytest.fixture(scope="module")
def ref_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "ref.wav"
    save_audio(path, SynthStyles(sample_rate=16000).clip("techno", seconds=2.0, seed=0).audio, 16000)
    return path


def test_eval_q_flag_reaches_the_quantizer_as_an_argument(
    legacy_export_dir: Path, ref_wav: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    forward = RVQBottleneck.forward

    def spy(self: RVQBottleneck, x: torch.Tensor, **kwargs: object) -> object:
        seen.append(kwargs.get("n_q"))
        return forward(self, x, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RVQBottleneck, "forward", spy)
    assert (
        _generate(legacy_export_dir, tmp_path / "a.wav", "--style-audio", str(ref_wav), "--eval-q", "2") == 0
    )
    assert 2 in seen  # the style bottleneck (the MelCodec's own RVQ is not called while generating)


def test_sampling_flags_change_the_output(legacy_export_dir: Path, tmp_path: Path) -> None:
    def wav(name: str, *flags: str) -> torch.Tensor:
        assert _generate(legacy_export_dir, tmp_path / name, "--text", "fast techno", *flags) == 0
        return torch.from_numpy(sf.read(tmp_path / name, dtype="float32")[0])

    greedy = wav("greedy.wav", "--temperature", "0", "--seed", "1")
    assert torch.equal(greedy, wav("greedy2.wav", "--temperature", "0", "--seed", "2"))  # no randomness left
    assert torch.equal(greedy, wav("top1.wav", "--top-k", "1", "--seed", "3"))  # top-1 is greedy
    sampled = wav("k0.wav", "--top-k", "0", "--seed", "1")  # 0 = no limit
    assert not torch.equal(greedy, sampled)
    assert not torch.equal(sampled, wav("p.wav", "--top-k", "0", "--top-p", "0.3", "--seed", "1"))
    assert not torch.equal(sampled, wav("t.wav", "--top-k", "0", "--temperature", "0.5", "--seed", "1"))


@pytest.mark.parametrize(
    ("flags", "named"),
    [(("--top-k", "-1"), "--top-k"), (("--temperature", "-0.5"), "--temperature"), (("--top-p", "2"), "--top-p"),
     (("--beta", "nan"), "--beta"), (("--eval-q", "9"), "--eval-q")],
)  # fmt: skip
def test_bad_sampling_flags_are_named(
    legacy_export_dir: Path,
    tmp_path: Path,
    flags: tuple[str, str],
    named: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _generate(legacy_export_dir, tmp_path / "x.wav", "--text", "x", *flags) == 2
    captured = capsys.readouterr()
    assert named in captured.out + captured.err
    assert not (tmp_path / "x.wav").exists()
