"""MusicLM: MusicGen's decoder over K codebook streams, with prefix and cross-attention conditioning.

Decoding API (stable). ``special = model.special_id == model.card``; pattern
space is ``seq [B, K, S]`` from ``model.pattern.build(codes, special)``: step 0 is all ``special``, code
``(k, t)`` sits at step ``model.pattern.positions(T)[k, t]`` (delay pattern: ``t + k + 1``, ``S = T + K``)
and the logits at step s predict the tokens of step s + 1::

    state = model.init_state(batch_size, max_steps, prefix=prefix, cross=cross)  # runs the prefix
    seq = torch.full((B, K, S), special); lay = model.pattern.layout_mask(T)   # [K, S] bool
    for s in range(S - 1):                                  # max_steps >= S - 1
        logits = model.step(seq[:, :, s : s + 1], state)    # [B, K, card], predicts step s + 1
        seq[:, :, s + 1] = torch.where(lay[:, s + 1], sample(logits), special)
    codes, _ = model.pattern.revert_codes(seq, num_frames=T)

``step`` takes ``tokens [B, K, N]`` (N > 1 = prompt prefill) and returns the logits of the last fed step;
``state.offset`` counts the fed steps. Non-cached references: ``forward_sequence(seq) -> [B, K, S, card]``
(pattern space) and ``forward(codes) -> LMOutput`` (aligned to the codes).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecond.conditioners.types import ConditionTensors
from stylecond.layers.transformer import Transformer
from stylecond.lm.outputs import DecodeState, LMOutput, LossOutput
from stylecond.lm.patterns import CodebookPattern, DelayPattern
from stylecond.lm.static_step import DEFAULT_BUCKET, StaticStep
from stylecond.utils.distributed import is_sharded

__all__ = ["DecodeState", "LMOutput", "LossOutput", "MusicLM"]


#: A cache this long (positions) or longer takes :attr:`MusicLM.kv_cache_dtype`; a shorter one keeps the
#: activations' dtype. Measured at the small size (int4, 2 CPU threads): with a bfloat16 cache a 1 s
#: generation decoded 2-4 ms/step slower (torch's bfloat16 attention costs more per call), a 10 s one
#: ~20 % faster (half the cache bytes read per step); they break even around 150-300 steps.
KV_CACHE_DTYPE_MIN_LEN = 512


class MusicLM(L.LightningModule):
    """Decoder-only LM over K parallel codebook streams interleaved by a codebook pattern (MusicGen).

    Inputs are K summed embeddings (``card + 1`` rows each; row ``card`` is the special "no token" id),
    optional prefix conditioning tokens (prepended; all audio positions attend to them; their mask is a
    key padding mask) and optional cross-attention conditioning. One output head per codebook.

    Args:
        num_codebooks: number of codebooks K.
        card: codebook size (the special id is ``card``).
        dim: model width.
        num_heads: attention heads.
        num_layers: transformer layers.
        ffn_dim: FFN hidden width (None = 4 * dim).
        dropout: dropout on the input, residual branches and attention weights.
        pattern: codebook pattern (None = MusicGen's DelayPattern with delays 0..K-1).
        cross_attention: add cross-attention blocks (for cross conditions).
        cross_dim: width of the cross-attention conditions (None = dim).
        max_period: period of the slowest positional sinusoid.
        bias: biases in the transformer's linear layers (MusicGen: False).
        norm_bias: biases in the layer norms (MusicGen: True).
        norm_eps: layer norm epsilon.
        scale_embedding: multiply the summed embeddings by sqrt(dim) (transformers' ``scale_embedding``).
        condition_masks: honour the conditions' masks: masked prefix tokens are attended by nobody and
            masked cross-attention keys are ignored (stylecond, transformers). False attends to every
            condition token, masked ones (zeros) included, as audiocraft's MusicGen does; models loaded
            from audiocraft use False.
        activation_checkpointing: recompute each transformer layer in the backward pass instead of keeping
            its activations (less memory, about a third more compute; the FSDP preset turns it on).
    """

    def __init__(
        self,
        *,
        num_codebooks: int = 4,
        card: int = 2048,
        dim: int = 512,
        num_heads: int = 8,
        num_layers: int = 8,
        ffn_dim: int | None = None,
        dropout: float = 0.0,
        pattern: CodebookPattern | None = None,
        cross_attention: bool = False,
        cross_dim: int | None = None,
        max_period: float = 10000.0,
        bias: bool = False,
        norm_bias: bool = True,
        norm_eps: float = 1e-5,
        scale_embedding: bool = False,
        condition_masks: bool = True,
        activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_codebooks", num_codebooks),
            ("card", card),
            ("dim", dim),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.num_codebooks, self.card, self.dim = num_codebooks, card, dim
        self.condition_masks = condition_masks
        self.pattern = (pattern or DelayPattern()).bind(num_codebooks)
        self.embed_scale = dim**0.5 if scale_embedding else 1.0
        self.embeddings = nn.ModuleList(nn.Embedding(card + 1, dim) for _ in range(num_codebooks))
        self.transformer = Transformer(
            dim=dim,
            num_heads=num_heads,
            num_layers=num_layers,
            ffn_dim=ffn_dim,
            dropout=dropout,
            cross_attention=cross_attention,
            cross_dim=cross_dim,
            bias=bias,
            norm_bias=norm_bias,
            norm_eps=norm_eps,
            max_period=max_period,
            activation_checkpointing=activation_checkpointing,
        )
        self.heads = nn.ModuleList(nn.Linear(dim, card, bias=False) for _ in range(num_codebooks))
        # dtype of the decoding KV cache of at least KV_CACHE_DTYPE_MIN_LEN positions when init_state is not
        # given one (None = the activations'): set by quantize(..., kv_cache_dtype=) to halve the cache bytes
        self.kv_cache_dtype: torch.dtype | None = None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MusicLM:
        """Build from a size preset of :mod:`stylecond.lm.presets` (``debug``, ``base``, ``small``, ``medium``)."""
        from stylecond.lm.presets import preset_kwargs

        return cls(**{**preset_kwargs(name), **overrides})

    @property
    def special_id(self) -> int:
        """Id of the special "no token" entry (== card)."""
        return self.card

    @property
    def has_cross_attention(self) -> bool:
        return self.transformer.has_cross

    # ------------------------------------------------------------------ checks and embeddings
    def _check_ids(self, x: Tensor, name: str, high: int) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_codebooks:
            raise ValueError(f"{name} must have shape [B, K={self.num_codebooks}, T], got {tuple(x.shape)}")
        if x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
            raise ValueError(f"{name} must be an integer tensor, got {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) > high):
            raise ValueError(
                f"{name} must hold ids in 0..{high}, got values in {int(x.min())}..{int(x.max())}"
            )

    def _check_conditions(
        self, batch: int, prefix: ConditionTensors | None, cross: ConditionTensors | None
    ) -> None:
        if prefix is not None and (prefix.batch_size != batch or prefix.embeddings.shape[-1] != self.dim):
            raise ValueError(
                f"prefix must be [B={batch}, P, dim={self.dim}], got {tuple(prefix.embeddings.shape)}"
            )
        if cross is not None:
            if not self.has_cross_attention:
                raise ValueError("cross conditions given but MusicLM was built with cross_attention=False")
            if cross.batch_size != batch or cross.embeddings.shape[-1] != self.transformer.cross_dim:
                raise ValueError(
                    f"cross must be [B={batch}, S, cross_dim={self.transformer.cross_dim}], "
                    f"got {tuple(cross.embeddings.shape)}"
                )

    def _embed(self, seq: Tensor) -> Tensor:
        """``seq [B, K, S]`` -> summed embeddings ``[B, S, dim]``."""
        x = sum(emb(seq[:, k]) for k, emb in enumerate(self.embeddings))
        assert isinstance(x, Tensor)
        return x * self.embed_scale if self.embed_scale != 1.0 else x

    def _logits(self, h: Tensor) -> Tensor:
        """``h [B, S, dim]`` -> ``[B, K, S, card]``."""
        return torch.stack([head(h) for head in self.heads], dim=1)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to() / .half() / ...: drop the fused heads
        self.__dict__.pop("_fused_heads_cache", None)
        return super()._apply(fn, recurse)

    def _fused_heads(self) -> Tensor | None:
        """The K head weights concatenated ``[K * card, dim]`` for one decoding GEMV (None when a head is
        not a plain bias-free ``nn.Linear``, e.g. quantized). Cached; rebuilt when a head's storage, dtype
        or version (in-place update by an optimizer or ``load_state_dict``) changes."""
        heads = [h for h in self.heads if type(h) is nn.Linear and h.bias is None]
        if len(heads) != len(self.heads):
            return None
        weights: list[Tensor] = [h.weight for h in heads if isinstance(h, nn.Linear)]
        key = tuple((w.data_ptr(), w._version, w.dtype, w.device) for w in weights)
        cached = self.__dict__.get("_fused_heads_cache")
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, torch.cat([w.detach() for w in weights], dim=0))
            self.__dict__["_fused_heads_cache"] = cached
        return cached[1]

    def _last_logits(self, h: Tensor, fused: Tensor | None = None) -> Tensor:
        """``h [B, N, dim]`` -> logits of the last position ``[B, K, card]`` (one fused GEMV when possible;
        ``fused``: the :meth:`_fused_heads` weight to use, default the current one)."""
        w = fused if fused is not None else self._fused_heads()
        if w is None:
            return self._logits(h[:, -1:])[:, :, 0]
        return F.linear(h[:, -1], w).view(h.shape[0], self.num_codebooks, self.card)

    # ------------------------------------------------------------------ full (training) path
    def forward_sequence(
        self, seq: Tensor, *, prefix: ConditionTensors | None = None, cross: ConditionTensors | None = None
    ) -> Tensor:
        """Pattern-space forward: ``seq [B, K, S]`` (ids 0..card) -> logits ``[B, K, S, card]`` (step s
        predicts step s+1). Prefix positions are dropped from the output."""
        self._check_ids(seq, "seq", self.card)
        self._check_conditions(seq.shape[0], prefix, cross)
        x = self._embed(seq)
        key_valid, p = None, 0
        if prefix is not None:
            p = prefix.embeddings.shape[1]
            x = torch.cat([prefix.embeddings.to(x.dtype), x], dim=1)
            if self.condition_masks and not bool(prefix.mask.all()):
                ones = torch.ones(seq.shape[0], seq.shape[2], dtype=torch.bool, device=x.device)
                key_valid = torch.cat([prefix.mask.to(x.device), ones], dim=1)
        h = self.transformer(
            x,
            key_valid=key_valid,
            cross=None if cross is None else cross.embeddings.to(x.dtype),
            cross_mask=None if cross is None or not self.condition_masks else cross.mask,
        )
        return self._logits(h[:, p:])

    def forward(
        self, codes: Tensor, *, prefix: ConditionTensors | None = None, cross: ConditionTensors | None = None
    ) -> LMOutput:
        """``codes [B, K, T]`` (ids 0..card-1) -> :class:`LMOutput` with logits ``[B, K, T, card]`` aligned to
        ``codes`` (the pattern is applied inside) and the validity mask ``[B, K, T]``."""
        self._check_ids(codes, "codes", self.card - 1)
        b, k, t = codes.shape
        seq, _ = self.pattern.build(codes, self.special_id)
        logits = self.forward_sequence(
            seq[:, :, :-1], prefix=prefix, cross=cross
        )  # last step predicts nothing
        logits, mask = self.pattern.revert(logits, num_frames=t)
        return LMOutput(logits=logits, mask=mask[None].expand(b, k, t))

    def compute_loss(
        self,
        output: LMOutput,
        codes: Tensor,
        *,
        padding_mask: Tensor | None = None,
        loss_mask: Tensor | None = None,
    ) -> LossOutput:
        """Masked cross-entropy per codebook (float32), averaged over codebooks.

        Args:
            output: the :meth:`forward` output for ``codes``.
            codes: target ``[B, K, T]``.
            padding_mask: ``[B, T]`` bool, True = real frame, False = padding (e.g. ``AudioBatch.codes_mask``).
            loss_mask: ``[B, T]`` bool, True = exclude the frame on all codebooks (anti-copy mask).
        """
        b, k, t = codes.shape
        if output.logits.shape[:3] != codes.shape:
            raise ValueError(
                f"output.logits {tuple(output.logits.shape)} does not match codes {tuple(codes.shape)}"
            )
        valid = output.mask.to(codes.device).bool()
        for name, m in (("padding_mask", padding_mask), ("loss_mask", loss_mask)):
            if m is not None and tuple(m.shape) != (b, t):
                raise ValueError(f"{name} must be [B={b}, T={t}] bool, got {tuple(m.shape)}")
        if padding_mask is not None:
            valid = valid & padding_mask.bool()[:, None, :]
        if loss_mask is not None:
            valid = valid & ~loss_mask.bool()[:, None, :]
        target = codes.clamp(0, self.card - 1).reshape(-1)
        ce = F.cross_entropy(
            output.logits.float().reshape(-1, output.logits.shape[-1]), target, reduction="none"
        )
        w = valid.float()
        per_codebook = (ce.view(b, k, t) * w).sum(dim=(0, 2)) / w.sum(dim=(0, 2)).clamp(min=1.0)
        return LossOutput(loss=per_codebook.mean(), per_codebook=per_codebook)

    # ------------------------------------------------------------------ incremental decoding
    @torch.no_grad()
    def init_state(
        self,
        batch_size: int,
        max_steps: int,
        *,
        prefix: ConditionTensors | None = None,
        cross: ConditionTensors | None = None,
        dtype: torch.dtype | None = None,
        kv_dtype: torch.dtype | None = None,
        check_ids: bool = True,
        cuda_graph: bool | None = None,
    ) -> DecodeState:
        """Allocate the KV cache for ``max_steps`` pattern steps and run ``prefix`` (if any) into it.

        ``dtype`` (the activations') defaults to the parameters' dtype (pass the autocast dtype when decoding
        under autocast); ``kv_dtype`` (the cache's) to :attr:`kv_cache_dtype` for a cache of at least
        ``KV_CACHE_DTYPE_MIN_LEN`` positions, else ``dtype``: attention then runs in ``kv_dtype``.
        Prefix rows whose mask is all False (null conditions) are not run: nothing attends to them (unless
        ``condition_masks`` is off).
        ``check_ids=False`` makes :meth:`step` skip the id range check (two host syncs per step): only for
        callers whose tokens are already validated (e.g. ``generate_codes``); shapes are still checked.
        ``cuda_graph`` (None = on for a model whole on a CUDA device, not FSDP-sharded): single-position
        steps replay CUDA graphs of the step (:mod:`stylecond.lm.static_step`), captured as the cache fills;
        prompts still run eagerly.
        """
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        device = next(self.parameters()).device
        sharded = is_sharded(self)  # FSDP gathers the weights in hooks around every forward: no graphs
        if cuda_graph and (device.type != "cuda" or sharded):
            why = "its parameters are FSDP-sharded" if sharded else f"it is on {device}"
            raise ValueError(f"cuda_graph=True needs the model whole on a CUDA device; {why}")
        self._check_conditions(batch_size, prefix, cross)
        dtype = dtype or next(p.dtype for p in self.parameters() if p.is_floating_point())
        p = 0 if prefix is None else prefix.embeddings.shape[1]
        long = p + max_steps >= KV_CACHE_DTYPE_MIN_LEN
        kv_dtype = kv_dtype or (self.kv_cache_dtype if long else None) or dtype
        cache = self.transformer.allocate_cache(
            batch_size,
            p + max_steps,
            device=device,
            dtype=kv_dtype,
            key_valid=None if prefix is None or not self.condition_masks else prefix.mask,
            cross=None if cross is None else cross.embeddings,
            cross_mask=None if cross is None or not self.condition_masks else cross.mask,
            activation_dtype=dtype,
        )
        if prefix is not None and p:
            active = prefix.mask.to(device).any(dim=1) | (not self.condition_masks)
            rows = None if bool(active.all()) else active.nonzero().flatten()
            self.transformer.prefill(prefix.embeddings.to(device=device, dtype=dtype), cache, rows=rows)
        state = DecodeState(cache=cache, max_steps=max_steps, prefix_len=p, check_ids=check_ids, dtype=dtype)
        if cuda_graph or (cuda_graph is None and device.type == "cuda" and not sharded):
            state.static_step = self.make_static_step(state, cuda_graphs=True)
        return state

    def make_static_step(
        self, state: DecodeState, *, cuda_graphs: bool, bucket: int = DEFAULT_BUCKET
    ) -> StaticStep:
        """The fixed-shape decoding step over ``state``'s cache (see :mod:`stylecond.lm.static_step`):
        CUDA graphs with ``cuda_graphs``, else the same step run eagerly. :meth:`init_state` sets it as
        ``state.static_step`` on CUDA."""
        cache, dtype = state.cache, state.dtype or state.cache.keys.dtype
        fused = self._fused_heads()  # held by the closure: a captured graph reads it by address

        def step_fn(tokens: Tensor, pos: Tensor, span: int) -> Tensor:
            h = self.transformer.static_step(self._embed(tokens).to(dtype), cache, pos, span)
            return self._last_logits(h, fused)

        return StaticStep(
            step_fn, cache, num_codebooks=self.num_codebooks, cuda_graphs=cuda_graphs, bucket=bucket
        )

    @torch.no_grad()
    def step(self, tokens: Tensor, state: DecodeState) -> Tensor:
        """Feed ``tokens [B, K, N]`` (pattern-space ids 0..card) -> logits ``[B, K, card]`` of the last step.

        The logits are in the cache dtype; the K heads run as one GEMV."""
        if state.check_ids:
            self._check_ids(tokens, "tokens", self.card)
        elif tokens.dim() != 3 or tokens.shape[1] != self.num_codebooks:
            raise ValueError(
                f"tokens must have shape [B, K={self.num_codebooks}, N], got {tuple(tokens.shape)}"
            )
        if tokens.shape[0] != state.cache.batch_size or tokens.shape[2] < 1:
            raise ValueError(
                f"tokens must be [B={state.cache.batch_size}, K, N>=1], got {tuple(tokens.shape)}"
            )
        if state.offset + tokens.shape[2] > state.max_steps:
            raise ValueError(
                f"step would feed {state.offset + tokens.shape[2]} steps > max_steps={state.max_steps}"
            )
        if state.static_step is not None and tokens.shape[2] == 1 and not self.training:
            return state.static_step(tokens)
        h = self.transformer(self._embed(tokens).to(state.dtype or state.cache.keys.dtype), cache=state.cache)
        return self._last_logits(h)
