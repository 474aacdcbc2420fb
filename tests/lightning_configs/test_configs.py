"""Every YAML in lightning_configs/ parses and instantiates through the real CLI, offline, without
running anything (test_fits.py fits each of them for real).

small/medium name EnCodec, T5 and MERT on the hub: the codec is pointed at a tiny random EncodecModel
saved locally (its config is read when the codec's sample rate is linked to the datamodule); T5 and
MERT must not be touched at all (their constructors never load). Any network use fails the test.
The fine-tuning configs start from a stylecond export (``--pretrained``), here the checked-in legacy one.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.strategies import DDPStrategy

from stylecond.training.cli import run_lightning_cli

CONFIG_DIR = Path(__file__).resolve().parents[2] / "lightning_configs"
MODEL_CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
TRAINER_PRESETS = sorted((CONFIG_DIR / "trainer").glob("*.yaml"))
HUB_NAMES = ("facebook/encodec_32khz", "google-t5/t5-base", "t5-base", "m-a-p/MERT-v1-95M")
LEGACY_EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_export" / "export"


@pytest.fixture(scope="module")
def tiny_encodec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random EnCodec with the 32 kHz layout: 50 Hz frames, 4 codebooks x 2048 at 2.2 kbps."""
    from transformers import EncodecConfig, EncodecModel

    config = EncodecConfig(
        sampling_rate=32000,
        upsampling_ratios=[8, 5, 4, 4],  # hop 640 -> 50 Hz
        hidden_size=8,
        num_filters=2,
        codebook_size=2048,
        codebook_dim=8,
        num_lstm_layers=1,
        target_bandwidths=[2.2],  # 4 x 11 bits x 50 Hz
        kernel_size=3,
        last_kernel_size=3,
        residual_kernel_size=3,
    )
    path = tmp_path_factory.mktemp("tiny_encodec")
    EncodecModel(config).save_pretrained(path)
    return path


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail on any socket connection and record every hub lookup transformers makes."""
    import transformers.utils.hub as hub

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    looked_up: list[str] = []
    for name in ("cached_file", "cached_files"):
        original = getattr(hub, name)

        def spy(path_or_repo_id: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            looked_up.append(str(path_or_repo_id))
            return _original(path_or_repo_id, *args, **kwargs)

        monkeypatch.setattr(hub, name, spy)
    return looked_up


@pytest.fixture()
def built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``built(*args)``: trainer, model and datamodule of ``stylecond fit *args``, built and not run."""
    monkeypatch.chdir(tmp_path)

    def build(*args: str) -> tuple[Any, Any, Any]:
        cli = run_lightning_cli(list(args), run=False)
        return cli.trainer, cli.model, cli.datamodule

    return build


def _codec_overrides(config: Path, tiny_encodec: Path) -> list[str]:
    """Point hub-backed codecs at the tiny local EnCodec; keep big LMs to one layer (RAM, time)."""
    model = yaml.safe_load(config.read_text())["model"]["init_args"]
    args = []
    if "codec" not in model:  # a fine-tuning config: the architecture comes from the export
        return ["--pretrained", str(LEGACY_EXPORT)]
    if model["codec"]["class_path"].endswith("EncodecCodec"):
        args += ["--model.init_args.codec.init_args.model_name_or_path", str(tiny_encodec)]
    if model["lm"].get("init_args", {}).get("num_layers", 0) > 4:  # medium: 48 layers = 1.4 B parameters
        args += ["--model.init_args.lm.init_args.num_layers", "1"]
    return args


def test_there_are_configs_to_check() -> None:
    names = {p.name for p in MODEL_CONFIGS}
    assert {"debug.yaml", "small.yaml", "medium.yaml"} <= names
    assert "ddp_bf16.yaml" in {p.name for p in TRAINER_PRESETS}
    assert "config.yaml" not in names  # reserved for LightningCLI's own saved config


@pytest.mark.parametrize("config", MODEL_CONFIGS, ids=lambda p: p.name)  # fine-tuning ones from an export
def test_model_config_instantiates_offline(
    config: Path, tiny_encodec: Path, offline: list[str], built: Any, legacy_export_dir: Path
) -> None:
    from stylecond.models.style_musicgen import StyleMusicGen

    args = _codec_overrides(config, tiny_encodec)
    if args[:1] == ["--pretrained"]:  # the architecture first, the fine-tuning settings over it
        trainer, model, data = built("--pretrained", str(legacy_export_dir), "-c", str(config))
    else:
        trainer, model, data = built("-c", str(config), *args)
    assert isinstance(trainer, L.Trainer)
    assert isinstance(model, StyleMusicGen)
    assert model.model_config is not None and model.model_config["class_path"].endswith("StyleMusicGen")
    # shared values are linked once: conditioner widths follow the LM, the datamodule follows the codec
    for cond in (model.text_conditioner, model.style_conditioner):
        if cond is not None:
            assert cond.output_dim == model.lm.dim
    linked = data.hparams
    assert linked["sample_rate"] == model.codec.sample_rate
    assert linked["codec_frame_rate"] == pytest.approx(model.codec.frame_rate)
    assert linked["codec_num_codebooks"] == model.codec.num_codebooks
    assert linked["codec_cardinality"] == model.codec.cardinality
    assert linked["codec_id"] == model.codec.codec_id
    # nothing pretrained was loaded: hub names were never looked up (only the local tiny codec was)
    assert not [name for name in offline if name in HUB_NAMES], offline


def test_hub_configs_describe_musicgen_style(tiny_encodec: Path, offline: list[str], built: Any) -> None:
    """small.yaml: EnCodec 4 x 2048 linked into the LM, T5 text, MERT style features, the paper's recipe."""
    config = CONFIG_DIR / "small.yaml"
    _, model, data = built("-c", str(config), *_codec_overrides(config, tiny_encodec))
    model.check_codec()  # codec (tiny local EnCodec, 4 x 2048) agrees with the LM
    assert (model.lm.num_codebooks, model.lm.card) == (4, 2048)
    assert data.hparams["codec_num_codebooks"] == 4 and data.hparams["codec_cardinality"] == 2048
    assert data.sample_rate == 32000 and data.hparams["codec_frame_rate"] == pytest.approx(50.0)
    assert data.codec is not None  # use_codes: pre-tokenized shards are checked against this codec
    assert model.style_conditioner.rvq.num_codebooks == 6 and model.style_conditioner.eval_q == 3
    assert model.optim.lr == pytest.approx(1e-4) and model.optim.warmup_steps == 4000
    assert getattr(model.text_conditioner, "encoder", None) is None  # T5 not loaded by the constructor


@pytest.mark.parametrize("preset", TRAINER_PRESETS, ids=lambda p: p.name)
@pytest.mark.parametrize("base", ["debug.yaml", "small.yaml"])
def test_trainer_preset_combines_with_model_configs(
    preset: Path,
    base: str,
    tiny_encodec: Path,
    offline: list[str],
    built: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = CONFIG_DIR / base
    args = ["-c", str(config), "-c", str(preset), *_codec_overrides(config, tiny_encodec)]
    # 1. it parses as given (GPU preset): the values the README promises
    with pytest.raises(SystemExit) as exit_info:
        run_lightning_cli(["fit", *args, "--print_config"])
    assert exit_info.value.code in (None, 0)
    printed = yaml.safe_load(capsys.readouterr().out)["trainer"]
    preset_values = yaml.safe_load(preset.read_text())["trainer"]
    for key, value in preset_values.items():
        if key == "strategy":
            assert printed["strategy"]["class_path"].endswith(value["class_path"].rsplit(".", 1)[-1])
        else:
            assert printed[key] == value, key
    # 2. it instantiates on this GPU-less machine once the accelerator is overridden
    trainer, _, _ = built(*args, "--trainer.accelerator", "cpu", "--trainer.devices", "2")
    if "fsdp" in preset.name:
        from stylecond.training.fsdp import FSDP2Strategy

        assert isinstance(trainer.strategy, FSDP2Strategy) and trainer.strategy.activation_checkpointing
    if "ddp" in preset.name:
        assert isinstance(trainer.strategy, DDPStrategy)
        assert trainer.num_devices == 2
        assert printed["sync_batchnorm"] is True and printed["use_distributed_sampler"] is False
    if "bf16" in preset.name:
        assert trainer.precision == "bf16-mixed"
        assert printed["precision"] == "bf16-mixed"
    assert not torch.distributed.is_initialized()  # nothing was launched
