"""The README's fine-tuning commands, run as written on tiny stand-ins: convert, make-shards, LoRA fit,
export, generate. Only hub names are mapped to local stand-ins and sizes shrunk (flags appended)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import soundfile as sf
import torch

from datamodules.synth import SynthStyles
from stylecond.audio import save_audio
from stylecond.cli import main
from tests.support.fit_args import CARD, CONFIG_DIR, Assets, K, run_overrides
from tests.support.tiny_audiocraft import best_state, write_export, xp_config

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """The ``stylecond ...`` lines of the block after the ``finetune-commands`` marker, as argv lists."""
    text = README.read_text()
    block = re.search(r"<!-- finetune-commands.*?-->\n```bash\n(.*?)```", text, re.S)
    assert block is not None, "README.md lost its finetune-commands block"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    return [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("stylecond ")]


def _run(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None), argv


def test_readme_lora_finetune_then_generate(assets: Assets, in_tmp: Path) -> None:
    commands = readme_commands()
    assert [c[0] for c in commands] == ["convert", "make-shards", "fit", "export", "generate"]
    convert, make_shards, fit, export, generate = commands
    # Meta's release, as audiocraft lays it out, at a tiny size; your music: 12 captioned 5 s tracks
    cfg = xp_config(style=True, n_q=K, card=CARD, dim=32)
    release = write_export(in_tmp / "release", cfg, best_state(cfg, seed=1))
    music = in_tmp / "my_music"
    music.mkdir()
    for i, clip in enumerate(SynthStyles(sample_rate=32000, seed=0).clips(12, seconds=5.0)):
        save_audio(music / f"track{i}.wav", clip.audio, 32000)
        (music / f"track{i}.txt").write_text(f"{clip.style} music, take {i}")
    save_audio(in_tmp / "ref.wav", clip.audio, 32000)
    local = {
        "facebook/musicgen-style": str(release),
        "encodec:facebook/encodec_32khz": f"encodec:{assets.encodec}",
    }

    def mapped(argv: list[str]) -> list[str]:  # the README runs in a clone: configs are relative to its root
        return [
            str(CONFIG_DIR.parent / a) if a.startswith("lightning_configs/") else local.get(a, a)
            for a in argv
        ]

    _run([*mapped(convert), f"--t5={assets.t5}", f"--mert={assets.mert}", f"--encodec={assets.encodec}"])
    _run([*mapped(make_shards), "--shard-size", "4", "--segment-seconds", "5"])
    assert sorted(p.name for p in Path("shards").glob("*.tar")) == [f"shard-00000{i}.tar" for i in range(3)]
    d = "--data.init_args"
    _run([*mapped(fit), *run_overrides(4), f"{d}.segment_seconds=4.0", f"{d}.batch_size=2", f"{d}.num_workers=0",
          f"{d}.samples_per_epoch=8", "--trainer.precision=32-true"])  # fmt: skip
    _run(export)
    assert (Path("my-style") / "model.safetensors").is_file()
    _run([*generate, "--duration", "1"])
    wav, sr = sf.read("out.wav", dtype="float32", always_2d=True)
    assert sr == 32000 and wav.shape[0] == pytest.approx(32000, abs=1000)
    assert bool(torch.isfinite(torch.from_numpy(wav)).all())
