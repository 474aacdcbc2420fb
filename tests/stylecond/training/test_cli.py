"""``stylecond fit`` on lightning_configs/debug.yaml end to end: fast_dev_run, bf16, kill-and-resume, export."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
import torch

import stylecond.training.cli as training_cli
from stylecond.cli import main
from stylecond.models.style_musicgen import StyleMusicGen


def _run(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code in (0, None), f"stylecond {' '.join(argv)} exited with {exit_info.value.code}"


@pytest.fixture()
def clis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    """Run in ``tmp_path`` (runs/ goes there) and keep every CLI object ``stylecond.cli.main`` builds."""
    built: list[Any] = []
    original = training_cli.run_lightning_cli

    def keep(args: Any) -> Any:
        built.append(original(args))
        return built[-1]

    monkeypatch.setattr(training_cli, "run_lightning_cli", keep)
    monkeypatch.chdir(tmp_path)
    return built


def _train_losses(metrics_csv: Path) -> dict[int, float]:
    with metrics_csv.open() as f:
        rows = list(csv.DictReader(f))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def test_fast_dev_run(clis: list[Any], debug_args: Callable[..., list[str]]) -> None:
    _run(["fit", *debug_args("--trainer.fast_dev_run", "true")])
    trainer = clis[0].trainer
    assert trainer.global_step == 1
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))
    assert not Path("runs").exists()  # fast_dev_run writes no logs and no checkpoints
    # the style bottleneck's health, logged by the model through Lightning's public self.log
    logged = trainer.callback_metrics
    assert {"style/rvq/usage_0", "style/rvq/perplexity_0", "style/rvq/dead_codes_5", "style/rvq/n_q"} <= set(
        logged
    )
    assert 0.5 <= float(logged["style/excerpt_seconds"]) <= 1.0


@pytest.mark.slow
def test_bf16_mixed_step_on_cpu(
    clis: list[Any], debug_args: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bool, torch.dtype]] = []
    original = StyleMusicGen.training_step

    def spy(self: StyleMusicGen, batch: Any, batch_idx: int) -> torch.Tensor:
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, batch, batch_idx)

    monkeypatch.setattr(StyleMusicGen, "training_step", spy)
    _run(["fit", *debug_args("--trainer.fast_dev_run", "true", "--trainer.precision", "bf16-mixed")])
    trainer = clis[0].trainer
    assert trainer.precision == "bf16-mixed"
    assert seen == [(True, torch.bfloat16)]  # the step really ran under CPU bf16 autocast
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    params = list(clis[0].model.parameters())
    assert all(p.dtype == torch.float32 for p in params)  # mixed: fp32 master weights


@pytest.mark.slow
def test_kill_and_resume_continues_the_run(
    clis: list[Any], debug_args: Callable[..., list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    n, k = 4, 3
    # 6 batches per epoch from 2 loader workers, validation every 3 steps (it saves last.ckpt): the run
    # killed after step N leaves a checkpoint of step K, mid-epoch; the resumed run crosses an epoch.
    # The schedule spans 2N steps everywhere.
    common = ("--model.init_args.optim.total_steps", str(2 * n), "--data.init_args.samples_per_epoch", "24",
              "--data.init_args.num_workers", "2", "--trainer.val_check_interval", str(k))  # fmt: skip
    _run(["fit", *debug_args("--trainer.max_steps", str(2 * n), *common)])  # the uninterrupted run
    _run(["fit", *debug_args("--trainer.max_steps", str(n), *common)])  # killed after its N-th step
    uninterrupted, run0 = Path("runs/debug/version_0"), Path("runs/debug/version_1")
    last = run0 / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == k and saved["lr_schedulers"][0]["last_epoch"] == k
    [loader_state] = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_state["epoch"] == 0 and loader_state["batches"] == k  # trained on, not fetched ahead

    loads: list[tuple[str, Any]] = []
    restored: dict[str, torch.Tensor] = {}
    original_load, original_start = torch.load, StyleMusicGen.on_train_start

    def load_spy(f: Any, *args: Any, **kwargs: Any) -> Any:
        loads.append((str(f), kwargs.get("weights_only")))
        return original_load(f, *args, **kwargs)

    def start_spy(self: StyleMusicGen) -> None:
        restored.update({k: v.detach().clone() for k, v in self.state_dict().items()})
        original_start(self)

    monkeypatch.setattr(torch, "load", load_spy)
    monkeypatch.setattr(StyleMusicGen, "on_train_start", start_spy)
    _run(["fit", *debug_args("--trainer.max_steps", str(2 * n), *common, "--ckpt_path", str(last))])
    monkeypatch.setattr(torch, "load", original_load)

    cli = clis[-1]
    assert cli.config["fit"]["weights_only"] is True  # the CLI's default when resuming
    assert loads and all(weights_only is True for _, weights_only in loads), loads
    assert cli.trainer.global_step == 2 * n
    # the resumed run starts from the checkpoint's weights and buffers (RVQ codebooks, BN statistics)
    assert restored.keys() == saved["state_dict"].keys()
    for key, value in saved["state_dict"].items():
        torch.testing.assert_close(restored[key], value, rtol=0, atol=0, msg=key)
    assert cli.trainer.lr_scheduler_configs[0].scheduler.last_epoch == 2 * n
    # the killed run and its resumption log exactly the losses of the uninterrupted run, step by step:
    # same data (the stream skipped the K batches already trained on), same dropout draws (StepSeed)
    full = _train_losses(uninterrupted / "metrics.csv")
    first = _train_losses(run0 / "metrics.csv")
    second = _train_losses(Path("runs/debug/version_2/metrics.csv"))
    assert sorted(full) == list(range(2 * n))
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(k, 2 * n))
    assert second == {step: loss for step, loss in full.items() if step >= k}, (full, second)
    assert first == {step: loss for step, loss in full.items() if step < n}, (full, first)
    assert full[2 * n - 1] < full[0]


@pytest.mark.slow
def test_fit_export_from_pretrained_generate(
    clis: list[Any], debug_args: Callable[..., list[str]], tmp_path: Path
) -> None:
    from datamodules.synth import SynthStyles
    from stylecond.audio import save_audio

    preview = ("--trainer.callbacks.seconds=0.3", "--trainer.callbacks.num_examples=1")  # the last callback
    _run(["fit", *debug_args("--trainer.max_steps", "2", "--trainer.val_check_interval", "2", *preview)])
    run = Path("runs/debug/version_0")
    # the validation preview wrote audio and spectrograms into the log dir
    previews = run / "previews" / "step_0000002"
    for name in ("reference_0", "style_only_0", "text_only_0", "text_style_0"):
        assert (previews / f"{name}.wav").is_file() and (previews / f"{name}.png").is_file(), name

    _run(["export", str(run / "checkpoints" / "last.ckpt"), str(tmp_path / "export")])
    model = StyleMusicGen.from_pretrained(tmp_path / "export")
    trained = clis[0].model.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, trained[key], rtol=0, atol=0, msg=key)

    clip = SynthStyles(sample_rate=16000, seed=0).clip("jazz", seconds=1.5, seed=7)
    save_audio(tmp_path / "ref.wav", clip.audio, 16000)
    out = tmp_path / "gen.wav"
    args = ["--model", str(tmp_path / "export"), "--style-audio", str(tmp_path / "ref.wav")]
    _run(["generate", *args, "--text", "calm jazz", "--duration", "0.5", "--out", str(out)])
    wav, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == 16000 and wav.shape[0] == pytest.approx(8000, abs=400)
    assert bool(torch.isfinite(torch.from_numpy(wav)).all()) and float(abs(wav).max()) > 0


@pytest.mark.slow
def test_validate_test_and_predict_subcommands(clis: list[Any], debug_args: Callable[..., list[str]]) -> None:
    shards = [a for a in debug_args() if "shard-000002" in a][0]
    _run(["validate", *debug_args("--trainer.logger", "false")])
    assert math.isfinite(float(clis[-1].trainer.callback_metrics["val/loss"]))
    _run(["test", *debug_args("--trainer.logger", "false", "--data.init_args.test_shards", shards)])
    assert math.isfinite(float(clis[-1].trainer.callback_metrics["test/loss"]))
    _run(
        [
            "predict",
            *debug_args("--trainer.logger", "false", "--data.init_args.test_shards", shards),
            "--trainer.limit_predict_batches",
            "1",
        ]
    )
    predictions = clis[-1].trainer.predict_loop.predictions
    assert predictions and predictions[0]["wav"].dim() == 3
    assert len(predictions[0]["keys"]) == predictions[0]["wav"].shape[0]
