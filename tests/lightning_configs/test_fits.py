"""Real fits of every shipped config, through `stylecond fit`, on tiny local stand-ins of exactly the
classes each config names (only size, path and - on this GPU-less machine - hardware fields overridden):
validation, GenerationPreview, EMA, a checkpoint, a --ckpt_path resume, export and generation from the
export; the DDP and FSDP presets with 2 CPU processes (gloo); fine-tuning converted released models."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from stylecond.cli import main
from stylecond.models.style_musicgen import StyleMusicGen
from stylecond.training.cli import run_lightning_cli
from tests.support.fit_args import CONFIG_DIR, Assets, child_env, data_overrides, hub_overrides, run_overrides

pytestmark = pytest.mark.slow

#: every shipped YAML and the test that fits it for real
FITTED_BY = {
    "debug.yaml": "tests/stylecond/training/test_cli.py (fast_dev_run, bf16, kill-and-resume, export, generate)",
    "demo.yaml": "tests/stylecond/commands/test_demo.py (stylecond demo --quick runs stylecond fit -c demo.yaml)",
    "small.yaml": "test_small_fit_resume_export_generate",
    "medium.yaml": "test_medium_fit",
    "finetune_style.yaml": "test_finetune_style_lora / test_finetune_style_full_and_style_modes",
    "finetune_text_to_style.yaml": "test_finetune_text_to_style",
    "trainer/ddp_bf16.yaml": "test_ddp_preset_with_small",
    "trainer/fsdp_bf16.yaml": "test_fsdp_preset_with_medium",
}


def test_every_shipped_config_is_fitted_for_real() -> None:
    shipped = {str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml")}
    assert shipped == set(FITTED_BY)


def _cli(*args: str) -> Any:
    return run_lightning_cli(["fit", *args])


def _run(*argv: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code in (0, None), argv


def _metrics(trainer: Any) -> list[dict[str, str]]:
    from lightning.pytorch.loggers import CSVLogger

    csv_logger = next(lg for lg in trainer.loggers if isinstance(lg, CSVLogger))
    with (Path(csv_logger.log_dir) / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_small_fit_resume_export_generate(assets: Assets, in_tmp: Path, tmp_path: Path) -> None:
    config = str(CONFIG_DIR / "small.yaml")
    cli = _cli("-c", config, *hub_overrides(assets), *run_overrides(4))
    trainer, model = cli.trainer, cli.model
    assert trainer.global_step == 4 and model.lm.card == 32
    val = [float(r["val/loss"]) for r in _metrics(trainer) if r.get("val/loss")]
    assert len(val) == 2 and all(0 < v < 10 for v in val)  # two validations, on frames the excerpt left
    run = Path(trainer.log_dir)
    assert (run / "previews" / "step_0000004" / "text_style_1.wav").is_file()  # GenerationPreview
    ckpt = run / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    ema = {k[len("_ema.") :]: v for k, v in state.items() if k.startswith("_ema.")}
    assert ema and not torch.equal(ema["lm.heads.0.weight"], state["lm.heads.0.weight"])  # EMA lags
    resumed = _cli("-c", config, *hub_overrides(assets), *run_overrides(6), f"--ckpt_path={ckpt}")
    assert resumed.trainer.global_step == 6
    out = tmp_path / "export"
    _run("export", str(Path(resumed.trainer.log_dir) / "checkpoints" / "last.ckpt"), str(out))
    exported = load_file(str(out / "model.safetensors"))
    final = torch.load(Path(resumed.trainer.log_dir) / "checkpoints" / "last.ckpt", weights_only=True)[
        "state_dict"
    ]
    assert torch.equal(exported["lm.heads.0.weight"], final["_ema.lm.heads.0.weight"])  # the averaged weights
    from datamodules.synth import SynthStyles
    from stylecond.audio import save_audio

    ref = tmp_path / "ref.flac"
    save_audio(ref, SynthStyles(sample_rate=32000).clip("rock", seconds=4.0, seed=0).audio, 32000)
    wav = tmp_path / "gen.wav"
    _run("generate", "--model", str(out), "--text", "rock with drums", "--style-audio", str(ref), "--duration", "0.5",
         "--out", str(wav))  # fmt: skip
    assert wav.is_file()


def test_medium_fit(assets: Assets, in_tmp: Path) -> None:
    cli = _cli("-c", str(CONFIG_DIR / "medium.yaml"), *hub_overrides(assets), *run_overrides(2))
    assert (
        cli.trainer.global_step == 2 and (Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt").is_file()
    )


def _finetune(export: Path, config: str, assets: Assets, *extra: str) -> Any:
    return _cli("--pretrained", str(export), "-c", str(CONFIG_DIR / config), *data_overrides(assets), *extra)


def test_finetune_style_lora(released: dict[str, Path], assets: Assets, in_tmp: Path, tmp_path: Path) -> None:
    base = released["musicgen-style"]
    base_state = load_file(str(base / "model.safetensors"))
    before = StyleMusicGen.from_pretrained(base)
    # lr, precision: the test's own (quicker, deterministic on CPU); the rest is finetune_style.yaml's
    cli = _finetune(base, "finetune_style.yaml", assets, *run_overrides(16), "--trainer.val_check_interval=8",
                    "--model.init_args.optim.lr=3e-3", "--model.init_args.optim.warmup_steps=1",
                    "--trainer.precision=32-true")  # fmt: skip
    model = cli.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n for n in trainable)  # only the adapters train
    val = [float(r["val/loss"]) for r in _metrics(cli.trainer) if r.get("val/loss")]
    assert val[-1] < val[0], val  # held-out loss drops
    ckpt = Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    for key, value in base_state.items():  # every base weight unchanged (LoRA-wrapped ones under base_layer)
        wrapped = key[: -len(".weight")] + ".base_layer.weight"
        assert torch.equal(state[wrapped if wrapped in state else key], value), key
    merged_dir, adapters_dir = tmp_path / "merged", tmp_path / "adapters"
    _run("export", str(ckpt), str(merged_dir))
    _run("export", str(ckpt), str(adapters_dir), "--adapters")
    merged = StyleMusicGen.from_pretrained(merged_dir)
    reloaded = before.load_adapters(adapters_dir / "adapters.safetensors")
    codes = torch.randint(0, 32, (2, 4, 30), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = merged.lm(codes).logits
        b = reloaded.lm(codes).logits
        c = StyleMusicGen.from_pretrained(base).lm(codes).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert (a - c).abs().max() > 1e-3  # the adapters changed the model
    with pytest.raises(ValueError, match="other base weights"):
        StyleMusicGen.from_pretrained(released["musicgen-small"]).load_adapters(
            adapters_dir / "adapters.safetensors"
        )


@pytest.mark.parametrize("mode", ["full", "style"])
def test_finetune_style_full_and_style_modes(
    mode: str, released: dict[str, Path], assets: Assets, in_tmp: Path
) -> None:
    base = load_file(str(released["musicgen-style"] / "model.safetensors"))
    cli = _finetune(released["musicgen-style"], "finetune_style.yaml", assets, *run_overrides(2),
                    f"--model.init_args.finetune.mode={mode}")  # fmt: skip
    state = {k: v for k, v in cli.model.state_dict().items()}
    changed = {k for k, v in base.items() if v.is_floating_point() and not torch.equal(state[k].cpu(), v)}
    assert any(k.startswith("style_conditioner.") for k in changed)
    assert any(k.startswith("lm.") for k in changed) == (mode == "full")


def test_finetune_text_to_style(released: dict[str, Path], assets: Assets, in_tmp: Path) -> None:
    s = "--model.init_args.style_conditioner.init_args"
    cli = _finetune(released["musicgen-small"], "finetune_text_to_style.yaml", assets, *run_overrides(2),
                    f"{s}.extractor.init_args.model_name_or_path={assets.mert}", f"{s}.dim=32", f"{s}.num_layers=1",
                    f"{s}.num_heads=2", f"{s}.ffn_dim=64", f"{s}.codebook_size=16")  # fmt: skip
    model = cli.model
    assert model.fuser.prefix == ("style",) and model.fuser.cross == ("text",)
    assert model.style_conditioner.rvq.layers[0].is_inited  # the new conditioner trained with the LM
    assert cli.trainer.global_step == 2


def _child_fit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stylecond", "fit", *args], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_ddp_preset_with_small(assets: Assets, tmp_path: Path) -> None:
    report = "tests.support.rank_state.RankReport"
    done = _child_fit("-c", str(CONFIG_DIR / "small.yaml"), "-c", str(CONFIG_DIR / "trainer" / "ddp_bf16.yaml"),
                      *hub_overrides(assets), *run_overrides(4), "--trainer.devices=2",
                      "--trainer.sync_batchnorm=false",  # GPU-only; averaged by the model on any backend
                      f"--data.init_args.val_shards={assets.shards}/shard-{{000001..000002}}.tar",
                      f"--trainer.callbacks+={report}", f"--trainer.callbacks.out_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, value in ranks[0]["buffers"].items():  # RVQ codebooks, BatchNorm statistics
        assert torch.equal(value, ranks[1]["buffers"][name]), name


def test_fsdp_preset_with_medium(assets: Assets, tmp_path: Path) -> None:
    report = "tests.support.rank_state.RankReport"
    preset = ["-c", str(CONFIG_DIR / "medium.yaml"), "-c", str(CONFIG_DIR / "trainer" / "fsdp_bf16.yaml"),
              *hub_overrides(assets), "--trainer.devices=2",
              f"--data.init_args.val_shards={assets.shards}/shard-{{000001..000002}}.tar",
              f"--trainer.callbacks+={report}", f"--trainer.callbacks.out_dir={tmp_path}"]  # fmt: skip
    done = _child_fit(*preset, *run_overrides(4), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = tmp_path / "runs" / "medium" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_dir() and len(list(ckpt.glob("*.distcp"))) == 2  # sharded: one file per rank
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    sharded, trainable = ranks[0]["sharded"], ranks[0]["trainable"]
    assert sharded["lm.transformer.layers.0.linear1.weight"] and sharded["text_conditioner.proj.weight"]
    frozen = [
        n
        for n in sharded
        if n.startswith(("codec.", "text_conditioner.encoder.", "style_conditioner.extractor."))
    ]
    assert frozen and not any(sharded[n] or trainable[n] for n in frozen)  # frozen: whole and untrained
    for name, value in ranks[0]["buffers"].items():
        assert torch.equal(value, ranks[1]["buffers"][name]), name
    resumed = _child_fit(*preset, *run_overrides(6), f"--ckpt_path={ckpt}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    last = next(
        p for p in sorted((tmp_path / "runs" / "medium").glob("*/checkpoints/last.ckpt")) if p != ckpt
    )
    out = tmp_path / "export"
    _run("export", str(last), str(out))  # consolidates the shards
    model = StyleMusicGen.from_pretrained(out)
    assert torch.isfinite(model.generate(texts=["calm piano"], duration=0.2, seed=0)).all()
