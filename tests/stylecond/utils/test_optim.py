"""AdamW parameter groups and the cosine schedule with warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from stylecond.utils.optim import OptimConfig, build_optimizer, cosine_with_warmup, param_groups


def test_cosine_schedule_warms_up_then_decays_to_the_floor() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = cosine_with_warmup(opt, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    factor = sched.lr_lambdas[0]
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert factor(14) == factor(100) == 0.1
    assert OptimConfig().total_steps is None  # default: the trainer decides


def test_norms_embeddings_and_biases_are_not_decayed() -> None:
    model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    model[1].weight.requires_grad_(True)
    decay, no_decay = param_groups(model, weight_decay=0.1, no_decay_norms_embeddings=True)
    assert [id(p) for p in decay["params"]] == [id(model[1].weight)]
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].weight), id(model[1].bias), id(model[2].weight), id(model[2].bias)
    }  # fmt: skip
    out = build_optimizer(model, OptimConfig(lr=2e-4, warmup_steps=0), total_steps=10)
    assert isinstance(out["optimizer"], torch.optim.AdamW) and out["lr_scheduler"]["interval"] == "step"
