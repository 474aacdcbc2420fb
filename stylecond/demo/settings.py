"""What the demo does, as data: the full run (``make demo``) and the seconds-long ``--quick`` run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stylecond.generation.settings import SamplingSettings

#: Styles of the full demo: six of the ten ``SynthStyles`` that differ most (timbre, tempo, register, drums).
DEMO_STYLES: tuple[str, ...] = ("chiptune", "ambient", "techno", "rock", "strings", "folk")


def default_config() -> Path:
    """``lightning_configs/demo.yaml`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "lightning_configs" / "demo.yaml"


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and knobs of one demo run (model hyper-parameters live in the YAML config).

    Args:
        styles: SynthStyles names used for data, references and the classifier.
        train_clips_per_style / val_clips_per_style: clips per style in the train / val shards.
        clip_seconds: length of every synthesized clip.
        classifier_clips_per_style: held-out clips per style the style classifier is fitted on.
        refs_per_style: held-out reference clips per style used as style conditions in the grid.
        shard_size: samples per shard.
        codec_overrides: MelCodec init args replacing the config's (both for fitting and for training).
        fit_overrides: extra LightningCLI arguments (``--trainer.max_steps 5``, ...).
        eval_qs: style codebooks used for the style-only rows.
        betas: double-CFG betas for the text+style rows.
        text_style_eval_q: eval_q of the text+style rows (6: the strongest style, so beta has room to pull
            toward the text; at 3 the text already dominates at beta 1 in this demo).
        duration: seconds generated per sample.
        excerpt_length: seconds of reference audio the style is taken from.
        sampling: guidance and sampling (alpha 3, top-k 50; each cell sets its beta).
        seed: base seed of data, training and sampling.
    """

    styles: tuple[str, ...] = DEMO_STYLES
    train_clips_per_style: int = 40
    val_clips_per_style: int = 2
    clip_seconds: float = 4.0
    classifier_clips_per_style: int = 6
    refs_per_style: int = 4
    shard_size: int = 64
    codec_overrides: dict[str, Any] = field(default_factory=dict)
    fit_overrides: tuple[str, ...] = ()
    eval_qs: tuple[int, ...] = (1, 3, 6)
    betas: tuple[float, ...] = (1.0, 5.0)
    text_style_eval_q: int = 6
    duration: float = 3.0
    excerpt_length: float = 1.5
    sampling: SamplingSettings = SamplingSettings(top_k=50)
    seed: int = 0

    def with_seed(self, seed: int) -> DemoSettings:
        return replace(self, seed=seed)


FULL = DemoSettings()

#: Seconds, for tests: tiny data, a tiny model and a few training steps through the same code path.
QUICK = DemoSettings(
    styles=("chiptune", "ambient", "techno"),
    train_clips_per_style=2,
    val_clips_per_style=1,
    clip_seconds=1.5,
    classifier_clips_per_style=2,
    refs_per_style=1,
    shard_size=4,
    codec_overrides={"codebook_size": 16, "kmeans_iters": 2, "griffin_lim_iters": 2, "inversion_iters": 2},
    fit_overrides=(
        "--trainer.max_steps=4",
        "--trainer.val_check_interval=2",
        "--model.init_args.lm.init_args.dim=16",
        "--model.init_args.lm.init_args.num_layers=1",
        "--model.init_args.lm.init_args.num_heads=2",
        "--model.init_args.style_conditioner.init_args.dim=16",
        "--model.init_args.style_conditioner.init_args.num_layers=1",
        "--model.init_args.style_conditioner.init_args.num_heads=2",
        "--model.init_args.style_conditioner.init_args.ffn_dim=32",
        "--model.init_args.style_conditioner.init_args.codebook_size=8",
        "--model.init_args.style_conditioner.init_args.excerpt_min=0.5",
        "--model.init_args.style_conditioner.init_args.excerpt_max=0.5",
        "--model.init_args.style_conditioner.init_args.excerpt_length=0.5",
        "--data.init_args.segment_seconds=1.0",
        "--data.init_args.batch_size=4",
        "--data.init_args.samples_per_epoch=16",
        "--data.init_args.num_workers=0",
    ),
    duration=0.5,
    excerpt_length=0.5,
    sampling=SamplingSettings(top_k=8),
)
