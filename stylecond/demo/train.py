"""Demo training stages: ``stylecond fit -c lightning_configs/demo.yaml`` (the real CLI path) and export."""

from __future__ import annotations

from pathlib import Path

import yaml

from stylecond.demo.data import shard_pattern
from stylecond.demo.state import DemoState


def fit_arguments(state: DemoState) -> list[str]:
    """The ``fit`` command line: the demo config, the fitted codec, the demo shards, then the overrides."""
    s = state.settings
    args = [
        "fit",
        "-c",
        str(state.config),
        f"--seed_everything={s.seed}",
        f"--trainer.default_root_dir={state.out / 'train'}",
        f"--trainer.logger.init_args.save_dir={state.out / 'train'}",
        f"--model.init_args.codec.init_args.weights={state.codec_dir.resolve()}",
        f"--data.init_args.train_shards={shard_pattern(state.shards / 'train')}",
        f"--data.init_args.val_shards={shard_pattern(state.shards / 'val')}",
    ]
    args += [f"--model.init_args.codec.init_args.{k}={v}" for k, v in s.codec_overrides.items()]
    args.append(f"--model.init_args.codec.init_args.seed={s.seed}")
    return args + list(s.fit_overrides)


def stage_train(state: DemoState) -> None:
    """Train through ``run_lightning_cli(["fit", ...])``; record the last checkpoint and the losses."""
    from stylecond.training.cli import run_lightning_cli

    args = fit_arguments(state)
    state.console.print("[dim]stylecond " + " ".join(args[:3]) + " \\\n    " + " \\\n    ".join(args[3:]))
    (state.out / "fit_command.txt").write_text("stylecond " + " ".join(args) + "\n")
    cli = run_lightning_cli(args)
    trainer = cli.trainer
    ckpt = getattr(trainer.checkpoint_callback, "last_model_path", "") or ""
    if not ckpt:
        ckpt_dir = Path(str(getattr(trainer.checkpoint_callback, "dirpath", "") or ""))
        candidates = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise RuntimeError("training wrote no checkpoint (is ModelCheckpoint in the config's callbacks?)")
        ckpt = str(candidates[-1])
    state.checkpoint = Path(ckpt)
    metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    state.summary["training"] = {
        "steps": int(trainer.global_step),
        "checkpoint": str(state.checkpoint),
        "final_metrics": metrics,
        "log_dir": str(trainer.log_dir),
    }
    if state.summary["training"]["steps"] < 1:
        raise RuntimeError("training ran no step")


def stage_export(state: DemoState) -> None:
    """``stylecond export CKPT out/model`` then ``StyleMusicGen.from_pretrained(out/model)``."""
    from stylecond.models.checkpoints import export_checkpoint
    from stylecond.models.style_musicgen import StyleMusicGen

    if state.checkpoint is None:
        raise RuntimeError("no checkpoint to export: run stage_train first")
    export_checkpoint(state.checkpoint, state.model_dir)
    state.model = StyleMusicGen.from_pretrained(state.model_dir)
    config = yaml.safe_load((state.model_dir / "config.yaml").read_text())
    params = sum(p.numel() for p in state.model.parameters() if p.requires_grad)
    state.summary["model"] = {"dir": str(state.model_dir), "trainable_params": params, "config": config}
    state.console.print(
        f"exported {state.checkpoint.name} -> {state.model_dir} ({params / 1e6:.2f} M trainable)"
    )
