"""KV-cached, pattern-aware generation with (double) classifier-free guidance, and sliding windows.

The loop works in pattern space (see :mod:`stylecond.lm.patterns`): the sequence ``seq [B, K, S]``
starts with the all-special initial step, each step's logits predict the next step, and steps of a
codebook that hold no code (e.g. before a codebook's delay) hold the special id. The guidance branches
(full, style only, null) are stacked once into the KV cache, so each step is one ``n_branches * B``
forward of one token per codebook.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from stylecond.conditioners.fuser import ConditionFuser
from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.sampler import DoubleCFGSampler

Progress = Callable[[int, int], Any]


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _model_dtype(lm: torch.nn.Module) -> torch.dtype:
    for p in lm.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _model_device(lm: torch.nn.Module) -> torch.device:
    for p in lm.parameters():
        return p.device
    return torch.device("cpu")


def _decode(
    lm: Any,
    *,
    conditions: Mapping[str, ConditionTensors] | None,
    sampler: DoubleCFGSampler,
    num_frames: int,
    prompt_codes: Tensor | None = None,
    batch_size: int | None = None,
    fuser: ConditionFuser | None = None,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
    cuda_graph: bool | None = None,
) -> Iterator[tuple[Tensor, int]]:
    """The decoding loop of :func:`generate_codes`: yields ``(seq [B, K, S], steps)`` once prepared and after
    each sampled step, where the first ``steps`` pattern steps of ``seq`` are final (arguments as there).
    """
    t_total = _check_int(num_frames, "num_frames", 1)
    k, card, special = int(lm.num_codebooks), int(lm.card), int(lm.special_id)
    device = _model_device(lm)
    cond_b = sampler.batch_size(conditions)
    if prompt_codes is not None:
        if not isinstance(prompt_codes, Tensor) or prompt_codes.dim() != 3 or prompt_codes.shape[1] != k:
            got = (
                tuple(prompt_codes.shape) if isinstance(prompt_codes, Tensor) else type(prompt_codes).__name__
            )
            raise ValueError(f"prompt_codes must be a long Tensor [B, K={k}, P], got {got}")
        if prompt_codes.is_floating_point() or prompt_codes.dtype == torch.bool:
            raise ValueError(f"prompt_codes must hold integer codes, got dtype {prompt_codes.dtype}")
        if prompt_codes.numel() and (int(prompt_codes.min()) < 0 or int(prompt_codes.max()) >= card):
            raise ValueError(
                f"prompt_codes must lie in 0..{card - 1} (card={card}); got values in "
                f"{int(prompt_codes.min())}..{int(prompt_codes.max())}"
            )
        if prompt_codes.shape[2] > t_total:
            raise ValueError(
                f"prompt_codes has {prompt_codes.shape[2]} frames, more than num_frames={t_total}"
            )
        if cond_b is not None and prompt_codes.shape[0] != cond_b:
            raise ValueError(
                f"prompt_codes has batch size {prompt_codes.shape[0]} but the conditions have {cond_b}"
            )
    b = (
        cond_b
        if cond_b is not None
        else (prompt_codes.shape[0] if prompt_codes is not None else batch_size or 1)
    )
    _check_int(b, "batch_size", 1)
    p_len = 0 if prompt_codes is None else int(prompt_codes.shape[2])

    pattern = lm.pattern
    s_total = int(pattern.num_steps(t_total))
    pos = pattern.positions(t_total).to(device)  # [K, T]
    layout = pattern.layout_mask(t_total).to(device)  # [K, S]
    known = torch.zeros(k, s_total, dtype=torch.bool, device=device)
    template = torch.full((b, k, s_total), special, dtype=torch.long, device=device)
    if p_len:
        assert prompt_codes is not None
        known.scatter_(1, pos[:, :p_len], True)
        template.scatter_(
            2, pos[:, :p_len].expand(b, k, p_len), prompt_codes.to(device=device, dtype=torch.long)
        )
    # A step is decided when every codebook either holds a prompt code or no code there.
    decided = (known | ~layout).all(dim=0)  # [S]
    n_prefill = int(decided.long().cumprod(0).sum())
    if n_prefill >= s_total:
        yield template, s_total
        return
    sample_mask = layout & ~known  # [K, S] True = to be sampled

    stacked, n_br = sampler.guidance_conditions(conditions)
    dtype = _model_dtype(lm)
    prefix = cross = None
    if stacked:
        fuser = fuser or ConditionFuser.all_prefix(list(stacked))
        fused = fuser({n: c.to(device=device, dtype=dtype) for n, c in stacked.items()}, fill_absent=True)
        prefix, cross = fused.prefix, fused.cross
    # Ids were validated once above (prompt) and come from the sampler (< card) or the special id after:
    # no per-step range check (it costs two host syncs per step).
    state = lm.init_state(
        n_br * b, s_total - 1, prefix=prefix, cross=cross, check_ids=False, cuda_graph=cuda_graph
    )
    seq = template.repeat(n_br, 1, 1)  # [nB, K, S]
    seq_view = seq.view(n_br, b, k, s_total)
    logits = lm.step(seq[:, :, :n_prefill], state)  # predicts step n_prefill
    yield seq[:b], n_prefill
    total_steps = s_total - n_prefill
    for s in range(n_prefill, s_total):
        tok = sampler.sample(sampler.combine(logits, n_br), generator=generator)  # [B, K]
        tok = torch.where(sample_mask[:, s], tok, template[:, :, s])
        seq_view[:, :, :, s] = tok
        if progress is not None:
            progress(s - n_prefill + 1, total_steps)
        yield seq[:b], s + 1
        if s + 1 < s_total:
            logits = lm.step(seq[:, :, s : s + 1], state)


@torch.no_grad()
def generate_codes(
    lm: Any,
    *,
    conditions: Mapping[str, ConditionTensors] | None,
    sampler: DoubleCFGSampler,
    num_frames: int,
    prompt_codes: Tensor | None = None,
    batch_size: int | None = None,
    fuser: ConditionFuser | None = None,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
    cuda_graph: bool | None = None,
) -> Tensor:
    """Generate ``codes [B, K, num_frames]`` with the LM's KV cache and the sampler's guidance.

    Args:
        lm: a ``MusicLM`` (``pattern``, ``num_codebooks``, ``card``, ``special_id``, ``init_state``, ``step``).
        conditions: name -> ``ConditionTensors [B, S, dim]`` ("style", "text"), or None (unconditional).
        sampler: guidance and top-k/top-p/temperature settings.
        num_frames: total frames T to return, prompt included.
        prompt_codes: ``[B, K, P]`` codes to continue (teacher-forced; returned unchanged as the first P
            frames), P <= T.
        batch_size: B when there are neither conditions nor a prompt (default 1).
        fuser: routes the conditions to the LM's prefix / cross-attention; names it routes but
            ``conditions`` lack become one null token each. Default: ``ConditionFuser.all_prefix``
            (every condition as prefix tokens, style first, then text).
        generator: random generator for sampling.
        progress: called as ``progress(steps_done, steps_total)`` after each decoding step.
        cuda_graph: replay CUDA graphs of the decoding step (None = when the LM is on a CUDA device; see
            ``MusicLM.init_state``).
    """
    decoding = _decode(lm, conditions=conditions, sampler=sampler, num_frames=num_frames,
                       prompt_codes=prompt_codes, batch_size=batch_size, fuser=fuser, generator=generator,
                       progress=progress, cuda_graph=cuda_graph)  # fmt: skip
    seq, _ = deque(decoding, maxlen=1)[0]  # run the loop to its end, keep the last state
    codes, _ = lm.pattern.revert_codes(seq, num_frames=num_frames)
    return codes


@torch.no_grad()
def stream_codes(
    lm: Any,
    *,
    conditions: Mapping[str, ConditionTensors] | None,
    sampler: DoubleCFGSampler,
    num_frames: int,
    chunk_frames: int,
    prompt_codes: Tensor | None = None,
    batch_size: int | None = None,
    fuser: ConditionFuser | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[Tensor]:
    """:func:`generate_codes`, yielding ``codes [B, K, n]`` as soon as ``chunk_frames`` more frames are
    complete in every codebook (the last chunk may be shorter; prompt frames are not yielded). The
    concatenated chunks equal :func:`generate_codes`' frames after the prompt, for the same arguments."""
    _check_int(chunk_frames, "chunk_frames", 1)
    ready = lm.pattern.positions(num_frames).max(dim=0).values + 1  # [T] steps needed for frame t
    emitted = 0 if prompt_codes is None else int(prompt_codes.shape[2])
    for seq, steps in _decode(lm, conditions=conditions, sampler=sampler, num_frames=num_frames,
                              prompt_codes=prompt_codes, batch_size=batch_size, fuser=fuser,
                              generator=generator):  # fmt: skip
        done = int((ready <= steps).sum())
        if done - emitted >= chunk_frames or (done == num_frames and done > emitted):
            codes, _ = lm.pattern.revert_codes(seq, num_frames=num_frames)
            yield codes[:, :, emitted:done].clone()
            emitted = done


def generate_long(
    lm: Any,
    *,
    conditions_fn: Callable[[int], Mapping[str, ConditionTensors] | None],
    sampler: DoubleCFGSampler,
    num_frames: int,
    window_frames: int = 1500,
    stride_frames: int = 900,
    prompt_codes: Tensor | None = None,
    batch_size: int | None = None,
    fuser: ConditionFuser | None = None,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
) -> Tensor:
    """Generate beyond the model's length with a sliding window; returns ``codes [B, K, num_frames]``.

    The first window generates up to ``window_frames`` frames (continuing ``prompt_codes`` if given).
    Each later window is prompted with the last ``window_frames - stride_frames`` frames generated so
    far (the previous window's tail tokens) and adds up to ``stride_frames`` new ones.
    ``conditions_fn(window_index)`` is called once per window (0, 1, ...): return the same conditions to
    keep the style tokens, or new ones (e.g. a re-drawn excerpt).

    Args:
        lm: a ``MusicLM`` (see :func:`generate_codes`).
        conditions_fn: window index -> conditions for that window (or None).
        sampler: guidance and sampling settings.
        num_frames: total frames to return (prompt included).
        window_frames: frames per window (the model's training length; 1500 = 30 s at 50 Hz).
        stride_frames: new frames per later window, 1..window_frames (900 = 18 s at 50 Hz).
        prompt_codes: optional ``[B, K, P]`` codes to continue, P < window_frames.
        batch_size: B when there are neither conditions nor a prompt.
        fuser: see :func:`generate_codes`.
        generator: random generator for sampling.
        progress: called as ``progress(frames_done, num_frames)`` after each window.
    """
    chunks = [] if prompt_codes is None else [prompt_codes]
    for codes in stream_long_codes(lm, conditions_fn=conditions_fn, sampler=sampler, num_frames=num_frames,
                                   window_frames=window_frames, stride_frames=stride_frames,
                                   chunk_frames=window_frames, prompt_codes=prompt_codes, batch_size=batch_size,
                                   fuser=fuser, generator=generator):  # fmt: skip
        chunks.append(codes.to(chunks[0].device) if chunks else codes)
        if progress is not None:
            progress(sum(int(c.shape[2]) for c in chunks), num_frames)
    return torch.cat(chunks, dim=2)


def stream_long_codes(
    lm: Any,
    *,
    conditions_fn: Callable[[int], Mapping[str, ConditionTensors] | None],
    sampler: DoubleCFGSampler,
    num_frames: int,
    window_frames: int,
    stride_frames: int,
    chunk_frames: int,
    prompt_codes: Tensor | None = None,
    batch_size: int | None = None,
    fuser: ConditionFuser | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[Tensor]:
    """The sliding windows of :func:`generate_long`, yielding new ``codes [B, K, n]`` in chunks of up to
    ``chunk_frames`` as they are decoded (see :func:`stream_codes`); prompt frames are not yielded."""
    total = _check_int(num_frames, "num_frames", 1)
    window = _check_int(window_frames, "window_frames", 1)
    stride = _check_int(stride_frames, "stride_frames", 1)
    if stride > window:
        raise ValueError(f"stride_frames must be in 1..window_frames={window}, got {stride}")
    if (
        isinstance(prompt_codes, Tensor)
        and prompt_codes.dim() == 3
        and prompt_codes.shape[2] >= min(window, total)
    ):
        raise ValueError(
            f"prompt_codes has {prompt_codes.shape[2]} frames; it must be shorter than "
            f"window_frames={window} and num_frames={total}"
        )
    context = window - stride
    out = prompt_codes
    index = 0
    while out is None or out.shape[2] < total:
        done = 0 if out is None else int(out.shape[2])
        prompt = out if index == 0 else (out[:, :, done - min(context, done) :] if context > 0 else None)  # type: ignore[index]
        ctx = 0 if prompt is None else int(prompt.shape[2])
        for codes in stream_codes(lm, conditions=conditions_fn(index), sampler=sampler,
                                  num_frames=min(window, ctx + total - done), chunk_frames=chunk_frames,
                                  prompt_codes=prompt, batch_size=batch_size, fuser=fuser,
                                  generator=generator):  # fmt: skip
            out = codes if out is None else torch.cat([out, codes.to(out.device)], dim=2)
            yield codes
        index += 1
