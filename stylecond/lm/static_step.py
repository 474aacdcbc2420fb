"""The decoding step at fixed shapes, replayed from CUDA graphs on a GPU.

A decoding step of a small LM is hundreds of tiny kernels; on a GPU their launches, not the arithmetic,
set the time. :class:`StaticStep` keeps the step's inputs (tokens, cache position) in static device
buffers and runs :meth:`Transformer.static_step
<stylecond.layers.transformer.Transformer.static_step>`, whose shapes depend only on how many cached
keys it attends to (the *span*). Spans grow in buckets of ``bucket`` positions, so one graph per bucket
serves every step: each is captured the first time a step reaches its bucket, then replayed. Off CUDA
the same step runs eagerly (that is how the CPU tests check it).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from stylecond.layers.kv_cache import KVCache

log = logging.getLogger(__name__)

#: Positions per span bucket: a graph attends to the keys up to the end of its bucket, so a step reads
#: at most this many masked keys more than it needs, and a 1500-step generation captures 6-7 graphs.
DEFAULT_BUCKET = 256

StepFn = Callable[[Tensor, Tensor, int], Tensor]
"""``(tokens [B, K, 1], pos [1], span) -> logits [B, K, card]``, with static shapes for a given span."""


class StaticStep:
    """One cached decoding position at a time, through ``step_fn`` on static buffers.

    Args:
        step_fn: the step (see :data:`StepFn`); it writes the position's keys and values into ``cache``.
        cache: the KV cache ``step_fn`` writes; its ``length`` is advanced here. The unwritten part of the
            cache is zeroed once (masked keys still enter the attention products).
        num_codebooks: K, for the token buffer ``[B, K, 1]``.
        cuda_graphs: capture and replay CUDA graphs (needs a CUDA cache); False runs ``step_fn`` eagerly.
        bucket: positions per span bucket (one graph each).
    """

    def __init__(
        self,
        step_fn: StepFn,
        cache: KVCache,
        *,
        num_codebooks: int,
        cuda_graphs: bool,
        bucket: int = DEFAULT_BUCKET,
    ) -> None:
        if bucket < 1:
            raise ValueError(f"bucket must be >= 1, got {bucket}")
        device = cache.keys.device
        if cuda_graphs and device.type != "cuda":
            raise ValueError(f"CUDA graphs need a KV cache on a CUDA device; this one is on {device}")
        self.step_fn, self.cache, self.bucket, self.cuda_graphs = step_fn, cache, bucket, cuda_graphs
        self.tokens = torch.zeros(cache.batch_size, num_codebooks, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, Tensor]] = {}
        self._stream: torch.cuda.Stream | None = None
        cache.keys[:, :, :, cache.length :].zero_()
        cache.values[:, :, :, cache.length :].zero_()

    def span(self, pos: int) -> int:
        """Keys attended at position ``pos``: up to the end of its bucket, at most the cache's length."""
        return min(self.cache.max_len, (pos // self.bucket + 1) * self.bucket)

    def __call__(self, tokens: Tensor) -> Tensor:
        """Feed ``tokens [B, K, 1]`` at the next cache position -> logits ``[B, K, card]`` (a new tensor)."""
        cache = self.cache
        pos = cache.length
        if pos + 1 > cache.max_len:
            raise ValueError(f"KV cache full: {pos} + 1 positions > max_len={cache.max_len}")
        if tokens.shape != self.tokens.shape:
            raise ValueError(f"tokens must be {tuple(self.tokens.shape)}, got {tuple(tokens.shape)}")
        self.tokens.copy_(tokens)
        self.pos.fill_(pos)
        span = self.span(pos)
        if self.cuda_graphs:
            captured = self.graphs.get(span) or self._capture(span)
            if captured is not None:
                captured[0].replay()
                cache.length = pos + 1
                return captured[1].clone()
        logits = self.step_fn(self.tokens, self.pos, span)
        cache.length = pos + 1
        return logits

    def _capture(self, span: int) -> tuple[torch.cuda.CUDAGraph, Tensor] | None:
        """Capture the step at ``span`` (after one eager warm-up run on a side stream, as CUDA graphs need).
        Both runs rewrite the current position's keys with the same values, so they change nothing. Under
        autocast (a bf16-mixed validation preview) the casts are captured too: autocast's cache of cast
        weights would hand the graph tensors that are freed when the autocast region ends. On a capture
        error the step stays eager from here on, with a warning."""
        device = self.cache.keys.device
        casts: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if torch.is_autocast_enabled("cuda"):
            casts = torch.autocast("cuda", dtype=torch.get_autocast_dtype("cuda"), cache_enabled=False)
        with torch.cuda.device(device):  # the cache's device, whichever is current (cuda:1 ...)
            caller = torch.cuda.current_stream(device)
            try:
                with casts:
                    graph, out = self._record(span, caller)
            except RuntimeError as err:
                torch.cuda.set_stream(caller)  # a failed capture can leave its stream current
                log.warning("CUDA graph capture of the decoding step failed (%s); decoding eagerly", err)
                self.cuda_graphs = False
                return None
        self.graphs[span] = (graph, out)
        return graph, out

    def _record(self, span: int, caller: torch.cuda.Stream) -> tuple[torch.cuda.CUDAGraph, Tensor]:
        """Warm up and capture on this step's own side stream (all its graphs share one pool and stream)."""
        if self._stream is None:
            self._stream = torch.cuda.Stream(caller.device)
        side = self._stream
        side.wait_stream(caller)
        with torch.cuda.stream(side):
            self.step_fn(self.tokens, self.pos, span)
        caller.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        pool = next(iter(self.graphs.values()))[0].pool() if self.graphs else None
        # thread_local: other threads (a DataLoader's pin-memory thread) may allocate during the capture
        with torch.cuda.graph(graph, pool=pool, stream=side, capture_error_mode="thread_local"):
            out = self.step_fn(self.tokens, self.pos, span)
        return graph, out
