"""Frozen pretrained submodules: no gradients, always in eval mode, left out of checkpoints.

The module stays a real submodule (so ``.to()``/``.cuda()`` move it) but its parameters are not
saved: the owner reloads it from its hub name or local path.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import Any

from torch import nn


def freeze_(module: nn.Module) -> nn.Module:
    """Turn off gradients and switch ``module`` to eval mode, in place. Returns it."""
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return module


def _drop_keys(
    module: nn.Module, state: OrderedDict[str, Any], prefix: str, local_metadata: Any, *, key: str
) -> None:
    for name in [k for k in state if k.startswith(prefix + key)]:
        del state[name]


def _allow_missing(module: nn.Module, incompatible: Any, *, key: str) -> None:
    for keys in (incompatible.missing_keys, incompatible.unexpected_keys):
        keys[:] = [k for k in keys if not (k.startswith(key) or f".{key}" in k)]


def exclude_from_checkpoint(owner: nn.Module, attr: str) -> None:
    """Leave ``owner.<attr>``'s parameters and buffers out of ``owner.state_dict()``.

    Loading a state dict without those keys is then not an error, even with ``strict=True``.
    The hooks are picklable (``ddp_spawn``, ``copy.deepcopy``).
    """
    key = f"{attr}."
    owner.register_state_dict_post_hook(partial(_drop_keys, key=key))
    owner.register_load_state_dict_post_hook(partial(_allow_missing, key=key))


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad`` (what an optimizer should see)."""
    return [p for p in module.parameters() if p.requires_grad]
