"""Where the EMA callback keeps its averaged weights inside a checkpoint (read by the model, the export
and the callback itself, so it lives below all three)."""

from __future__ import annotations

from typing import Any

#: prefix of the averaged weights inside a checkpoint's state_dict
EMA_PREFIX = "_ema."
#: where a checkpoint's averaged weights wait between the model's and the callback's on_load_checkpoint
EMA_STATE_KEY = "ema_state_dict"


def split_ema_state(state: dict[str, Any]) -> dict[str, Any]:
    """Remove the ``_ema.*`` entries from a checkpoint's ``state_dict`` (in place) and return them by name."""
    return {k[len(EMA_PREFIX) :]: state.pop(k) for k in [k for k in state if k.startswith(EMA_PREFIX)]}
