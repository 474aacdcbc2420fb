"""GenerationPreview: style-only / text-only / text+style previews to TensorBoard and into the log dir."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from matplotlib.image import imread

from datamodules.batch import AudioBatch
from datamodules.synth import SynthStyles
from stylecond.generation.settings import SamplingSettings
from stylecond.models.pretrained import instantiate_model
from stylecond.models.style_musicgen import StyleMusicGen
from stylecond.training.preview import GenerationPreview, spectrogram_image

DEBUG_YAML = Path(__file__).resolve().parents[3] / "lightning_configs" / "debug.yaml"
SR = 16000


def _batch(b: int = 3, seconds: float = 1.5) -> AudioBatch:
    clips = list(SynthStyles(sample_rate=SR, seed=0).clips(b, seconds=seconds, seed=5))
    audio = torch.stack([c.audio for c in clips])
    return AudioBatch(
        audio=audio,
        audio_mask=torch.ones(b, audio.shape[-1], dtype=torch.bool),
        texts=[c.caption for c in clips],
        keys=[str(i) for i in range(b)],
        metadata=[{} for _ in clips],
        sample_rate=SR,
    )


class _Loader:
    """A validation "dataloader" yielding ready-made batches (a list would be read as several loaders)."""

    def __init__(self, *batches: AudioBatch) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[AudioBatch]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@pytest.fixture(scope="module")
def model(debug_codec: Path) -> StyleMusicGen:
    """debug.yaml's model with the test codec; one training step initialises the style codebooks."""
    config = yaml.safe_load(DEBUG_YAML.read_text())["model"]
    codec_args = config["init_args"]["codec"]["init_args"]
    codec_args.update(weights=str(debug_codec), codebook_size=16, griffin_lim_iters=2)
    torch.manual_seed(0)
    built = instantiate_model(config)
    assert isinstance(built, StyleMusicGen)
    built.configure_model()
    built.train()
    built.shared_step(_batch(), stage="train")
    return built


def _trainer(tmp_path: Path, preview: GenerationPreview) -> L.Trainer:
    loggers = [TensorBoardLogger(tmp_path, name="tb"), CSVLogger(tmp_path, name="tb")]
    return L.Trainer(
        accelerator="cpu",
        logger=loggers,
        callbacks=[preview],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


@pytest.mark.slow
def test_previews_go_to_tensorboard_and_the_log_dir(model: StyleMusicGen, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    preview = GenerationPreview(seconds=0.4, num_examples=2, sampling=SamplingSettings(top_k=8))
    trainer = _trainer(tmp_path, preview)
    trainer.validate(model, dataloaders=_Loader(_batch(), _batch()), verbose=False)

    out = Path(str(trainer.log_dir)) / "previews" / "step_0000000"
    names = [f"{kind}_{i}" for kind in ("reference", "style_only", "text_only", "text_style") for i in (0, 1)]
    assert sorted(p.stem for p in out.glob("*.wav")) == sorted(names)
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(names)
    for name in names:
        wav, sr = sf.read(out / f"{name}.wav", dtype="float32")
        expected = 1.5 if name.startswith("reference") else 0.4
        assert sr == SR and len(wav) / sr == pytest.approx(expected, abs=0.03), name
        assert np.isfinite(wav).all()
        image = imread(out / f"{name}.png")
        assert image.shape[0] == 80 and image.shape[1] > 10 and image.shape[2] in (3, 4)
    # generated previews differ from each other (conditions matter) and from the reference
    a, b = (sf.read(out / f"{n}.wav")[0] for n in ("style_only_0", "text_only_0"))
    assert not np.allclose(a, b)

    events = EventAccumulator(str(trainer.loggers[0].log_dir), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert sorted(tags["audio"]) == sorted(f"preview/{n}" for n in names)
    assert sorted(tags["images"]) == sorted(f"preview/{n}" for n in names)
    assert events.Audio("preview/text_style_1")[0].sample_rate == SR


@pytest.mark.slow
def test_every_n_val_and_training_randomness(
    model: StyleMusicGen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preview = GenerationPreview(
        every_n_val=2, seconds=0.2, num_examples=1, sampling=SamplingSettings(top_k=8)
    )
    trainer = _trainer(tmp_path, preview)
    logged: list[list[str]] = []
    monkeypatch.setattr(preview, "_log", lambda trainer, clips, sr, out: logged.append(sorted(clips)))
    trainer.validate(model, dataloaders=_Loader(_batch()), verbose=False)
    assert logged == []  # 1st validation: not due yet
    torch.manual_seed(123)
    random.seed(123)
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    preview.on_validation_epoch_end(trainer, model)  # 2nd: due (generation seeds the RNG internally)
    assert logged == [["reference_0", "style_only_0", "text_only_0", "text_style_0"]]
    preview.on_validation_epoch_end(trainer, model)  # 3rd: not due
    assert len(logged) == 1
    assert torch.equal(torch.get_rng_state(), torch_state)  # training's random streams are untouched
    assert random.getstate() == py_state


def test_arguments_and_spectrogram() -> None:
    for bad in ({"every_n_val": 0}, {"seconds": 0.0}, {"num_examples": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GenerationPreview(**bad)  # type: ignore[arg-type]
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(SR) / SR)[None]
    image = spectrogram_image(tone, SR)
    assert image.dtype == np.uint8 and image.shape[0] == 80 and image.shape[2] == 3
    brightest = int(image.sum(axis=(1, 2)).argmax())
    assert 40 < brightest < 79  # a 440 Hz tone lights a low mel row (row 0 = top = highest band)
