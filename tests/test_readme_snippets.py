"""Every ```python block of README.md runs, in README order and in one namespace (later blocks continue earlier
ones), inside a folder holding the files the blocks name (``export/``, ``ref.wav``, ``song.mp3``, shards) and
with a local hub cache serving the hub names they use (tiny stand-ins). Only the sizes in ``SHRINK`` change:
the README's numbers describe real runs, the test checks that the code as written works."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
import soundfile as sf

from datamodules.synth import SynthStyles
from stylecond.audio import save_audio
from stylecond.cli import main
from tests.support.tiny_audiocraft import best_state, write_export, xp_config
from tests.support.tiny_hub import fake_hub, snapshot, tiny_encodec, tiny_t5

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"


def blocks() -> list[tuple[int, str]]:
    """``(line, source)`` of each python block."""
    text = README.read_text()
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.S)
    ]


#: (a line the block contains, what to replace, by what): sizes only
SHRINK: list[tuple[str, str, str]] = [
    ("model.generate_stream(", "duration=60.0", "duration=1.0"),
    ("TextualInversionModule(model=model", "steps=200", "steps=2"),
    ("MelCodec(num_codebooks=4, codebook_size=1024)", "clips(32, seconds=5.0)", "clips(4, seconds=5.0)"),
    ("MelCodec(num_codebooks=4, codebook_size=1024)", "codebook_size=1024", "codebook_size=16"),
    ("NearestCentroidStyleClassifier(sample_rate=16000)", "20 * len(STYLES)", "2 * len(STYLES)"),
    ("load_references(", "num_samples=16", "num_samples=2"),
    ("load_references(", "duration=5.0", "duration=0.5"),
    ("load_references(", "[1, 3, 6], [1.0, 5.0]", "[1], [5.0]"),
]


def _shrunk(source: str) -> str:
    for marker, old, new in SHRINK:
        if marker in source:
            assert old in source, f"README block with {marker!r} no longer holds {old!r}: update SHRINK"
            source = source.replace(old, new)
    return source


def _transformers_musicgen(root: Path) -> Path:
    from transformers import (
        AutoTokenizer,
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )  # fmt: skip

    t5, enc = (
        tiny_t5(root / "t5", d_model=24),
        tiny_encodec(root / "encodec", codebook_size=32, num_codebooks=2),
    )
    decoder = MusicgenDecoderConfig(vocab_size=32, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                    ffn_dim=64, num_codebooks=2, max_position_embeddings=256, pad_token_id=32,
                                    bos_token_id=32)  # fmt: skip
    config = MusicgenConfig(text_encoder=T5Config.from_pretrained(t5).to_dict(),
                            audio_encoder=EncodecConfig.from_pretrained(enc).to_dict(), decoder=decoder.to_dict())  # fmt: skip
    out = root / "musicgen-small"
    MusicgenForConditionalGeneration(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(t5).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, legacy_export_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("readme")
    cache = fake_hub(root / "hub")
    cfg = xp_config(eval_q=2)
    write_export(snapshot(cache, "facebook/musicgen-style"), cfg, best_state(cfg))
    work = root / "work"
    work.mkdir()
    shutil.copytree(legacy_export_dir, work / "export")
    (work / "runs").mkdir()
    shutil.copytree(legacy_export_dir, work / "runs" / "export")
    synth = SynthStyles(sample_rate=16000)
    save_audio(work / "ref.wav", synth.clip("jazz", seconds=4.0, seed=0).audio, 16000)
    song = SynthStyles(sample_rate=32000).clip("rock", seconds=16.0, seed=1).audio
    sf.write(work / "song.mp3", song[0].numpy(), 32000, format="MP3")
    with pytest.raises(SystemExit):
        main(["make-shards", "--synth", "4", "--seconds", "2", "--sample-rate", "16000", "--out", str(work / "shards"),
              "--prefix", "test"])  # fmt: skip
    (root / "path-to").mkdir()
    local = _transformers_musicgen(root / "path-to")
    return work, cache, local  # type: ignore[return-value]


@pytest.fixture(scope="module")
def namespace() -> dict[str, Any]:
    return {"__name__": "readme"}


@pytest.mark.parametrize(("line", "source"), blocks(), ids=[f"README.md:{line}" for line, _ in blocks()])
def test_readme_block_runs(
    line: int, source: str, workdir: Any, namespace: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    work, cache, local = workdir
    monkeypatch.chdir(work)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    code = _shrunk(source).replace('"/path/to/musicgen-small"', repr(str(local)))
    exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - our own README


def test_every_python_fence_is_collected() -> None:
    assert len(blocks()) == README.read_text().count("```python") >= 20
