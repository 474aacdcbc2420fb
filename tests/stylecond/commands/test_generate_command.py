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


def test_stream_writes_the_same_length_and_reports_the_first_audio(
    legacy_export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate(legacy_export_dir, tmp_path / "whole.wav", "--text", "jazz") == 0
    capsys.readouterr()
    assert _generate(legacy_export_dir, tmp_path / "stream.flac", "--text", "jazz", "--stream") == 0
    err = capsys.readouterr().err
    assert "first audio after" in err and "s of audio in" in err
    whole, sr = sf.read(tmp_path / "whole.wav")
    streamed, sr2 = sf.read(tmp_path / "stream.flac")
    assert sr == sr2 and streamed.shape == whole.shape


@pytest.mark.parametrize("mode", ["int4", "int8", "int8-dynamic"])
def test_quantize_flag_generates(
    legacy_export_dir: Path, tmp_path: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _generate(legacy_export_dir, tmp_path / "q.wav", "--text", "jazz", "--quantize", mode)
    assert code == 0, capsys.readouterr().err  # int4: the legacy export's 32-wide LM fits groups of 32
    assert sf.read(tmp_path / "q.wav")[0].shape[0] == int(0.3 * 16000)


def test_unwritable_out_is_rejected_before_any_work(
    legacy_export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate(tmp_path / "no-such-model", tmp_path / "x.mp3", "--text", "x") == 2
    captured = capsys.readouterr()
    assert "--out" in captured.err and "x.mp3" in captured.err and "no-such-model" not in captured.err
    assert captured.out == ""
    requests = tmp_path / "r.jsonl"
    requests.write_text(
        '{"out": "' + str(tmp_path / "a.wav") + '"}\n{"out": "' + str(tmp_path / "b.ogg") + '"}\n'
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--model", str(legacy_export_dir), "--text", "x", "--requests", str(requests)])
    assert exit_info.value.code == 2
    assert "r.jsonl:2: out" in capsys.readouterr().err and not (tmp_path / "a.wav").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--device", "tpu"], "--device: 'tpu' is not a device"),
        (["--device", "meta"], "--device must be cpu, cuda or cuda:N; got 'meta'"),
        (["--device", "cuda", "--quantize", "int4"], "--quantize runs on stylecond's CPU kernels"),
    ]
    + (
        [] if torch.cuda.is_available() else [(["--device", "cuda"], "--device cuda: torch sees no CUDA GPU")]
    ),
)
def test_bad_device_is_named_before_loading(
    tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _generate(tmp_path / "no-such-model", tmp_path / "x.wav", "--text", "x", *flags) == 2
    err = capsys.readouterr().err
    assert message in err and "no-such-model" not in err and not (tmp_path / "x.wav").exists()


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")),
    ],
)
def test_device_flag_generates(legacy_export_dir: Path, tmp_path: Path, device: str) -> None:
    assert _generate(legacy_export_dir, tmp_path / "out.wav", "--text", "jazz", "--device", device) == 0
    assert sf.read(tmp_path / "out.wav")[0].shape[0] == int(0.3 * 16000)
