"""Style conditioner: audio excerpt -> features -> transformer -> RVQ bottleneck -> few prefix tokens."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from torch import Tensor, nn

from stylecond.audio import resample
from stylecond.conditioners.types import ConditionTensors
from stylecond.features.base import AudioFeatureExtractor
from stylecond.layers.transformer import Transformer
from stylecond.quantization.rvq_bottleneck import RVQBottleneck, RVQOutput
from stylecond.utils.positions import Spacing

#: where an inference excerpt starts: "middle", "random" or a time in seconds (clipped to fit)
ExcerptStart = Literal["middle", "random"] | float


@dataclass
class StyleOutput:
    """Result of :class:`StyleConditioner`.

    Attributes:
        condition: style tokens ``[B, S, output_dim]`` and mask ``[B, S]``.
        excerpt_span: ``[B, 2]`` (start, end) in seconds of each excerpt within ``wav``, or None when the
            excerpt came from a separate ``style_wav`` (then nothing needs masking).
        rvq: bottleneck output at feature rate (before downsampling).
        excerpt_seconds: ``[B]`` length of each excerpt in seconds.
    """

    condition: ConditionTensors
    excerpt_span: Tensor | None
    rvq: RVQOutput
    excerpt_seconds: Tensor


def excerpt_frame_mask(span: Tensor, num_frames: int, frame_rate: float) -> Tensor:
    """Frames at ``frame_rate`` overlapping each excerpt ``span [B, 2]`` (seconds) -> ``[B, num_frames]`` bool.

    Frame ``f`` covers ``[f / frame_rate, (f + 1) / frame_rate)``; True = covered (mask the LM loss there).
    """
    if span.dim() != 2 or span.shape[-1] != 2:
        raise ValueError(f"span must be [B, 2] (start, end) seconds; got {tuple(span.shape)}")
    eps = 1e-4
    first = torch.floor(span[:, 0:1].double() * frame_rate + eps)
    last = torch.ceil(span[:, 1:2].double() * frame_rate - eps)
    f = torch.arange(num_frames, device=span.device, dtype=torch.float64)[None]
    return (f >= first) & (f < last)


class StyleConditioner(L.LightningModule):
    """Feed-forward style conditioner (MusicGen-Style): a few seconds of audio -> a few discrete-bottleneck tokens.

    ``excerpt -> extractor -> linear -> transformer encoder (non-causal, pre-norm) -> BatchNorm1d(affine=False)
    -> RVQBottleneck -> keep every ds_factor-th frame -> linear to output_dim``. Training draws, per sample,
    an excerpt of random length in ``[excerpt_min, excerpt_max]`` s at a random start of ``wav`` (the
    target itself) and returns its span so the LM can mask its loss there (anti-copy); inference takes
    ``excerpt_length`` s from the middle (or a random place). Works as a plain ``nn.Module``.

    Args:
        extractor: feature extractor (frozen pretrained encoder, codec tokens or mel).
        output_dim: width of the emitted tokens (the LM's model dim).
        dim: transformer width.
        num_layers: transformer layers.
        num_heads: attention heads.
        ffn_dim: feed-forward hidden size.
        dropout: transformer dropout.
        sinusoidal_positions: add sine/cosine positions to the encoder input.
        position_spacing: frequency spacing of those sinusoids: "transformer" (stylecond 0.1's) or
            "musicgen" (audiocraft's; see :mod:`stylecond.utils.positions`).
        bias: biases in the encoder's attention and feed-forward layers (audiocraft's encoder has none).
        final_norm: a LayerNorm after the encoder's last layer (audiocraft's encoder has none).
        input_proj: a linear layer from the extractor's width to ``dim`` (False: the extractor must
            already output ``dim``, as audiocraft's EnCodec-token variant does).
        batch_norm: normalise the encoder output with ``BatchNorm1d(affine=False)`` before the bottleneck.
        num_codebooks: RVQ codebooks.
        codebook_size: entries per codebook.
        eval_q: codebooks used at inference (1..num_codebooks).
        ds_factor: keep every ds_factor-th bottleneck frame.
        excerpt_min: shortest training excerpt (s).
        excerpt_max: longest training excerpt (s).
        excerpt_length: inference excerpt length (s).
        excerpt_start: inference excerpt position, "middle" or "random".
        kmeans_iters: RVQ k-means initialisation iterations.
        decay: RVQ EMA decay.
        threshold_ema_dead_code: RVQ dead-code threshold.
        commitment_weight: RVQ commitment loss weight (0 in the paper).
    """

    def __init__(
        self,
        *,
        extractor: AudioFeatureExtractor,
        output_dim: int,
        dim: int = 512,
        num_layers: int = 8,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        dropout: float = 0.1,
        sinusoidal_positions: bool = True,
        position_spacing: Spacing = "transformer",
        bias: bool = True,
        final_norm: bool = True,
        input_proj: bool = True,
        batch_norm: bool = True,
        num_codebooks: int = 6,
        codebook_size: int = 1024,
        eval_q: int = 3,
        ds_factor: int = 15,
        excerpt_min: float = 1.5,
        excerpt_max: float = 4.5,
        excerpt_length: float = 3.0,
        excerpt_start: Literal["middle", "random"] = "middle",
        kmeans_iters: int = 10,
        decay: float = 0.99,
        threshold_ema_dead_code: float = 0.1,
        commitment_weight: float = 0.0,
    ) -> None:
        # explicit: Lightning's frame walk would also pick up a parent LightningModule's init args
        hparams = {k: v for k, v in locals().items() if k not in ("self", "__class__", "extractor")}
        super().__init__()
        if not 0 < excerpt_min <= excerpt_max or excerpt_length <= 0:
            raise ValueError(
                f"need 0 < excerpt_min <= excerpt_max and excerpt_length > 0; got excerpt_min={excerpt_min}, "
                f"excerpt_max={excerpt_max}, excerpt_length={excerpt_length}"
            )
        if excerpt_start not in ("middle", "random"):
            raise ValueError(f"excerpt_start must be 'middle' or 'random'; got {excerpt_start!r}")
        if ds_factor < 1:
            raise ValueError(f"ds_factor must be >= 1; got {ds_factor}")
        self.save_hyperparameters(hparams)
        self.extractor = extractor
        self.output_dim = output_dim
        self.ds_factor = ds_factor
        self.excerpt_min, self.excerpt_max = excerpt_min, excerpt_max
        self.excerpt_length = excerpt_length
        self.excerpt_start = excerpt_start
        if not input_proj and extractor.dim != dim:
            raise ValueError(f"input_proj=False needs extractor.dim == dim; got {extractor.dim} and {dim}")
        self.input_proj: nn.Module = nn.Linear(extractor.dim, dim) if input_proj else nn.Identity()
        self.encoder = Transformer(
            dim=dim,
            num_heads=num_heads,
            num_layers=num_layers,
            ffn_dim=ffn_dim,
            dropout=dropout,
            bias=bias,
            causal=False,
            final_norm=final_norm,
            positions=sinusoidal_positions,
            position_spacing=position_spacing,
        )
        self.batch_norm: nn.Module = nn.BatchNorm1d(dim, affine=False) if batch_norm else nn.Identity()
        self.rvq = RVQBottleneck(
            dim=dim,
            num_codebooks=num_codebooks,
            codebook_size=codebook_size,
            eval_q=eval_q,
            kmeans_iters=kmeans_iters,
            decay=decay,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=commitment_weight,
            log_prefix="style/rvq",
        )
        self.output_proj = nn.Linear(dim, output_dim)
        self.register_load_state_dict_pre_hook(_upgrade_torch_encoder_keys)

    # ---------------------------------------------------------------- properties
    @property
    def eval_q(self) -> int:
        """Default codebooks used at inference (the bottleneck's); ``forward(n_q=...)`` overrides it per call."""
        return self.rvq.eval_q

    @eval_q.setter
    def eval_q(self, value: int) -> None:
        self.rvq.eval_q = value

    @property
    def token_rate(self) -> float:
        """Style tokens per second."""
        return self.extractor.frame_rate / self.ds_factor

    def num_tokens(self, seconds: float) -> int:
        """Style tokens emitted for an excerpt of ``seconds``."""
        frames = self.extractor.num_frames(round(seconds * self.extractor.sample_rate))
        return math.ceil(frames / self.ds_factor)

    def null_condition(self, batch_size: int, *, seconds: float | None = None) -> ConditionTensors:
        """All-zero style condition for ``batch_size`` samples (``seconds`` defaults to ``excerpt_length``)."""
        n = self.num_tokens(seconds if seconds is not None else self.excerpt_length)
        emb = torch.zeros(batch_size, n, self.output_dim, device=self.output_proj.weight.device)
        return ConditionTensors(emb, torch.zeros(batch_size, n, dtype=torch.bool, device=emb.device))

    def configure_model(self) -> None:
        """Load a lazily loaded extractor (call from a parent's ``configure_model`` too)."""
        self.extractor.load()

    def health_metrics(self, out: StyleOutput) -> dict[str, Tensor]:
        """The bottleneck's usage, perplexity and dead codes (``style/rvq/...``) and
        ``style/excerpt_seconds`` for a training forward's output: the owning module logs them."""
        metrics = self.rvq.health_metrics(out.rvq)
        metrics["style/excerpt_seconds"] = out.excerpt_seconds.float().mean()
        return metrics

    # ---------------------------------------------------------------- excerpt selection
    @staticmethod
    def _check_audio(wav: Tensor, name: str, sample_rate: int, min_seconds: float, shortest: int) -> None:
        if wav.dim() != 3 or not wav.is_floating_point():
            raise ValueError(
                f"{name} must be a float tensor [B, C, T]; got shape {tuple(wav.shape)} {wav.dtype}"
            )
        if not bool(torch.isfinite(wav).all()):
            raise ValueError(f"{name} contains NaN or infinite samples; every sample must be finite")
        need = math.ceil(min_seconds * sample_rate - 1e-6)
        if shortest < need:
            raise ValueError(
                f"{name} is {shortest / sample_rate:.3f} s long ({shortest} samples at {sample_rate} Hz); "
                f"the style excerpt needs at least {min_seconds:g} s ({need} samples)"
            )

    def _draw_spans(
        self,
        totals: Tensor,
        sample_rate: int,
        *,
        excerpt_length: float,
        excerpt_start: ExcerptStart,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, Tensor]:
        """Excerpt start and length in samples, ``[B]`` each, within each row's ``totals [B]`` samples.

        Training: length uniform in ``[excerpt_min, excerpt_max]`` s at a uniform start. Eval:
        ``excerpt_length`` s at ``excerpt_start``. Draws use ``generator`` (CPU; default: the global RNG).
        """
        totals = totals.cpu().long()
        batch = totals.shape[0]
        if self.training:
            hi = (totals.double() / sample_rate).clamp(max=self.excerpt_max)
            u = torch.rand(batch, generator=generator, dtype=torch.float64)
            seconds = self.excerpt_min + u * (hi - self.excerpt_min).clamp_min(0.0)
            length = torch.minimum((seconds * sample_rate).round().long().clamp_min(1), totals)
            v = torch.rand(batch, generator=generator, dtype=torch.float64)
            start = torch.minimum((v * (totals - length + 1).double()).long(), totals - length)
            return start, length
        length = torch.minimum(torch.full_like(totals, round(excerpt_length * sample_rate)), totals)
        room = totals - length
        if excerpt_start == "middle":
            start = room // 2
        elif excerpt_start == "random":
            start = (torch.rand(batch, generator=generator, dtype=torch.float64) * (room + 1).double()).long()
            start = torch.minimum(start, room)
        elif isinstance(excerpt_start, (int, float)) and not isinstance(excerpt_start, bool):
            start = torch.minimum(torch.full_like(totals, max(0, round(excerpt_start * sample_rate))), room)
        else:
            raise ValueError(f"excerpt_start must be 'middle', 'random' or seconds; got {excerpt_start!r}")
        return start, length

    def _crop(self, wav: Tensor, start: Tensor, length: Tensor) -> Tensor:
        """``wav [B, C, T]`` -> excerpts padded with zeros to the longest, ``[B, C, max(length)]``."""
        start, length = start.to(wav.device), length.to(wav.device)
        n = int(length.max())
        idx = start[:, None] + torch.arange(n, device=wav.device)[None]  # [B, n]
        valid = torch.arange(n, device=wav.device)[None] < length[:, None]
        idx = torch.where(valid, idx, torch.zeros_like(idx))
        out = torch.gather(wav, 2, idx[:, None].expand(-1, wav.shape[1], -1))
        return out * valid[:, None].to(out.dtype)

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        wav: Tensor,
        *,
        sample_rate: int,
        style_wav: Tensor | None = None,
        lengths: Tensor | None = None,
        keep: Tensor | None = None,
        n_q: int | None = None,
        excerpt_length: float | None = None,
        excerpt_start: ExcerptStart | None = None,
        generator: torch.Generator | None = None,
    ) -> StyleOutput:
        """Style tokens for ``wav [B, C, T]`` at ``sample_rate`` (or for ``style_wav [B, C, Ts]`` if given).

        Args:
            wav: audio the excerpt is drawn from (in training: the target itself).
            sample_rate: rate of ``wav`` / ``style_wav``.
            style_wav: a separate reference to draw the excerpt from instead (span is then None).
            lengths: ``[B]`` valid samples of each row (the rest is padding; default: all).
            keep: ``[B]`` bool; False nulls that row's style (zero embeddings, empty mask).
            n_q: codebooks used (default: drawn in training, ``eval_q`` at inference).
            excerpt_length: inference excerpt length in seconds (default: the constructor's).
            excerpt_start: inference excerpt position, "middle", "random" or seconds (default: the
                constructor's).
            generator: CPU random generator of the excerpt draws (default: the global RNG).
        """
        name, source = ("style_wav", style_wav) if style_wav is not None else ("wav", wav)
        if wav.dim() != 3:
            raise ValueError(f"wav must be [B, C, T]; got shape {tuple(wav.shape)}")
        if source.shape[0] != wav.shape[0]:
            raise ValueError(f"style_wav batch {source.shape[0]} differs from wav batch {wav.shape[0]}")
        batch = source.shape[0]
        if lengths is None:
            totals = torch.full((batch,), source.shape[-1], dtype=torch.long)
        elif tuple(lengths.shape) != (batch,) or int(lengths.max()) > source.shape[-1]:
            raise ValueError(f"lengths must be [B] = [{batch}] samples <= {source.shape[-1]}; got {lengths}")
        else:
            totals = lengths.cpu().long()
        length_s = float(excerpt_length) if excerpt_length is not None else self.excerpt_length
        if not length_s > 0:
            raise ValueError(f"excerpt_length must be > 0 seconds; got {excerpt_length!r}")
        min_s = self.excerpt_min if self.training else length_s
        self._check_audio(source, name, sample_rate, min_s, int(totals.min()) if batch else 0)
        if keep is not None and keep.shape != (batch,):
            raise ValueError(f"keep must be a bool tensor [B] = [{batch}]; got {tuple(keep.shape)}")
        if n_q is not None:
            self.rvq.check_n_q(n_q, "n_q")
        start, length = self._draw_spans(
            totals,
            sample_rate,
            excerpt_length=length_s,
            excerpt_start=excerpt_start if excerpt_start is not None else self.excerpt_start,
            generator=generator,
        )
        excerpt = self._crop(source, start, length)
        ext_sr, ext_len = self.extractor.sample_rate, length
        if sample_rate != ext_sr:
            excerpt = resample(excerpt, sample_rate, ext_sr)
            ext_len = (length.double() * ext_sr / sample_rate).round().long()
        feats = self.extractor(excerpt.to(self.output_proj.weight.dtype))  # [B, F, De]
        num_f = torch.tensor(
            [self.extractor.num_frames(int(n)) for n in ext_len.tolist()], device=feats.device
        )
        frames = torch.arange(feats.shape[1], device=feats.device)
        valid = frames[None] < num_f.clamp(1, feats.shape[1])[:, None]  # [B, F]
        rvq_out = self._encode(feats, valid, n_q)
        tokens = rvq_out.quantized[:, :: self.ds_factor]
        mask = valid[:, :: self.ds_factor]
        emb = self.output_proj(tokens) * mask[..., None].to(tokens.dtype)
        cond = ConditionTensors(emb, mask)
        if keep is not None:
            cond = cond.nulled(keep.bool())
        span = None
        if style_wav is None:
            span = (torch.stack([start, start + length], dim=-1).double() / sample_rate).float()
            span = span.to(wav.device)
        seconds = (length.double() / sample_rate).float().to(wav.device)
        return StyleOutput(condition=cond, excerpt_span=span, rvq=rvq_out, excerpt_seconds=seconds)

    def _encode(self, feats: Tensor, valid: Tensor, n_q: int | None) -> RVQOutput:
        """``feats [B, F, De]`` with ``valid [B, F]`` -> bottleneck output ``[B, F, dim]``."""
        x = self.encoder(self.input_proj(feats), key_valid=valid)
        normed = torch.zeros_like(x)
        normed[valid] = self.batch_norm(x[valid])  # statistics over valid frames only
        return self.rvq(normed, mask=valid, n_q=n_q)


def _upgrade_torch_encoder_keys(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: object
) -> None:
    """Rename the keys of exports whose encoder was ``torch.nn.TransformerEncoder`` (stylecond 0.1):
    ``encoder.layers.{i}.self_attn.in_proj_{weight,bias}`` -> ``...self_attn.in_proj.{weight,bias}`` and
    ``final_norm.*`` -> ``encoder.out_norm.*`` (the rest already matches)."""
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        new = None
        if rest.startswith("encoder.layers.") and ".self_attn.in_proj_" in rest:
            new = rest.replace(".self_attn.in_proj_", ".self_attn.in_proj.")
        elif rest.startswith("final_norm."):
            new = "encoder.out_norm." + rest[len("final_norm.") :]
        if new is not None:
            state_dict[prefix + new] = state_dict.pop(key)
