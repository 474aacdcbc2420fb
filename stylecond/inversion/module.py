"""``TextualInversionModule``: learn a pseudo-word for reference audio on a frozen text-conditioned music LM."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from stylecond.conditioners.fuser import concat_tokens
from stylecond.conditioners.types import ConditionTensors
from stylecond.inversion.chunks import AudioSource, ReferenceChunks, encode_references, sample_chunks
from stylecond.inversion.fingerprint import config_fingerprint, weights_digest
from stylecond.inversion.inverted_style import InvertedStyle
from stylecond.inversion.tokens import (
    check_mode,
    check_token,
    ensure_tokens,
    expand_text,
    fill_missing,
    learned_condition,
    subtoken_names,
    write_rows,
)
from stylecond.utils.attached import attached_trainer
from stylecond.utils.frozen import exclude_from_checkpoint

#: Defaults measured on the synthetic-styles benchmark (see README "Textual inversion"); the paper's
#: exact values are not public.
DEFAULT_STEPS = 200
DEFAULT_LR = {"lm_space": 1e-1, "token_embedding": 1e-1}

Progress = Callable[[int, int, float], Any]


class TextualInversionModule(L.LightningModule):
    """Textual inversion (docs/design.md §1.1): P new vectors learned so the frozen LM predicts a reference's codes.

    The base model (``StyleMusicGen`` or anything with ``codec``, ``lm``, ``text_conditioner`` and
    ``fuser``) is frozen in place (``requires_grad=False``, eval mode) and left out of this module's
    checkpoints; only ``vectors [P, D]`` train, with Adam on the LM cross-entropy of random chunks of
    the reference tracks' codec tokens (encoded once). Other conditions the fuser routes (e.g. style)
    get null conditions. Train with :meth:`fit` (plain loop) or a Lightning ``Trainer`` after
    :meth:`set_references`; save with :meth:`save`, use with :class:`InvertedStyle`.

    Args:
        model: The trained base model; frozen in place.
        mode: ``"lm_space"``: vectors ``[P, lm width]`` used as text-condition tokens after the text
            encoder's projection (appended to the encoded ``prompt`` if given). ``"token_embedding"``:
            a new token added to the text encoder's vocabulary (P sub-tokens), usable inside any prompt.
        num_tokens: P, the number of learned vectors (>= 1).
        token: The pseudo-word, e.g. ``<my-style>`` (a vocabulary entry in ``token_embedding`` mode).
        init_word: Initialise from this word (``lm_space``: its projected encoding, mean over tokens;
            ``token_embedding``: the mean of its token embeddings); None = zeros.
        prompt: ``token_embedding``: training text containing ``token`` (default: the token alone);
            ``lm_space``: text encoded and followed by the vectors (default: none, the vectors alone).
        learning_rate: Adam learning rate (> 0); None = the measured default of the mode.
        steps: Optimisation steps of :meth:`fit` (>= 1).
        chunk_seconds: Length of the random reference chunks (> 0).
        batch_size: Chunks per step (>= 1).
        seed: Seed of chunk sampling.
        early_stop_patience: Stop when the smoothed loss has not improved by ``early_stop_min_delta`` for
            this many steps; None = never.
        early_stop_min_delta: Minimum improvement of the smoothed loss that resets the patience.
    """

    model: Any  # the base model (duck-typed: codec, lm, text_conditioner, fuser)

    def __init__(
        self,
        *,
        model: nn.Module,
        mode: str = "lm_space",
        num_tokens: int = 1,
        token: str = "<my-style>",
        init_word: str | None = None,
        prompt: str | None = None,
        learning_rate: float | None = None,
        steps: int = DEFAULT_STEPS,
        chunk_seconds: float = 10.0,
        batch_size: int = 5,
        seed: int = 0,
        early_stop_patience: int | None = None,
        early_stop_min_delta: float = 1e-3,
    ) -> None:
        super().__init__()
        self.mode = check_mode(mode)
        self.token = check_token(token)
        text = getattr(model, "text_conditioner", None)
        if text is None:
            raise ValueError(
                "model has no text_conditioner: textual inversion needs a text-conditioned model"
            )
        for name, value, low in (
            ("num_tokens", num_tokens, 1),
            ("steps", steps, 1),
            ("batch_size", batch_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be > 0; got {chunk_seconds}")
        lr = DEFAULT_LR[self.mode] if learning_rate is None else float(learning_rate)
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"learning_rate must be a finite number > 0; got {learning_rate}")
        if early_stop_patience is not None and early_stop_patience < 1:
            raise ValueError(f"early_stop_patience must be >= 1 or None; got {early_stop_patience}")
        if self.mode == "token_embedding" and prompt is not None and token not in prompt:
            raise ValueError(
                f"prompt must contain the token {token!r} in token_embedding mode; got {prompt!r}"
            )
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        model.eval()
        exclude_from_checkpoint(self, "model")
        self.subtokens = subtoken_names(token, num_tokens) if self.mode == "token_embedding" else [token]
        self.init_word = init_word
        self.prompt = prompt
        self.learning_rate = lr
        self.steps = steps
        self.chunk_seconds = float(chunk_seconds)
        self.batch_size = batch_size
        self.seed = seed
        self.early_stop_patience = early_stop_patience
        self.early_stop_min_delta = float(early_stop_min_delta)
        dim = int(text.output_dim if self.mode == "lm_space" else text.encoder_dim)
        self.vectors = nn.Parameter(torch.zeros(num_tokens, dim))
        self.token_ids: list[int] = []
        self.reference_codes: list[Tensor] = []
        self.loss_history: list[float] = []
        self._prepared = False
        self._best = math.inf
        self._smoothed: float | None = None
        self._since_best = 0

    # ------------------------------------------------------------------ setup
    @property
    def text(self) -> Any:
        return self.model.text_conditioner

    @property
    def chunk_frames(self) -> int:
        return max(1, round(self.chunk_seconds * float(self.model.codec.frame_rate)))

    def train(self, mode: bool = True) -> TextualInversionModule:
        super().train(mode)
        self.model.eval()
        return self

    def configure_model(self) -> None:
        self.prepare()

    @torch.no_grad()
    def prepare(self) -> TextualInversionModule:
        """Add the tokens (``token_embedding``) and initialise the vectors (once; may load the text encoder)."""
        if self._prepared:
            return self
        device = self.vectors.device
        if self.mode == "token_embedding":
            self.token_ids = ensure_tokens(self.text, self.subtokens)
        if self.init_word is not None:
            if self.mode == "lm_space":
                enc = self.text([self.init_word])
                init = enc.embeddings[0][enc.mask[0]].mean(0)
            else:
                ids = self.text.tokenizer(self.init_word, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValueError(f"init_word {self.init_word!r} gives no tokens")
                init = self.text.input_embeddings().weight[ids].mean(0)
            self.vectors.copy_(init.to(device, self.vectors.dtype).expand_as(self.vectors))
        self._prepared = True
        return self

    def set_references(self, audio: Sequence[AudioSource], *, sample_rate: int | None = None) -> list[Tensor]:
        """Encode the reference tracks once (``[C, T]`` tensors at ``sample_rate`` or file paths)."""
        self.prepare()
        self.reference_codes = encode_references(audio, codec=self.model.codec, sample_rate=sample_rate)
        return self.reference_codes

    # ------------------------------------------------------------------ conditioning and loss
    @contextmanager
    def _token_vectors(self) -> Iterator[None]:
        """Substitute the learned vectors for the sub-token rows during the text encoder's forward."""
        table = self.text.input_embeddings()
        ids = torch.tensor(self.token_ids, device=table.weight.device)

        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Tensor) -> Tensor:
            input_ids = args[0] if args else kwargs["input"]
            match = input_ids[..., None] == ids  # [B, S, P]
            hit = match.any(-1, keepdim=True)
            learned = self.vectors.to(output.dtype)[match.long().argmax(-1)]
            return torch.where(hit, learned, output)

        handle = table.register_forward_hook(hook, with_kwargs=True)
        table.register_parameter("_inversion_vectors", self.vectors)  # so the frozen encoder runs with grad
        try:
            yield
        finally:
            handle.remove()
            del table._parameters["_inversion_vectors"]

    def text_condition(self, batch_size: int) -> ConditionTensors:
        """The ``"text"`` condition ``[B, S, output_dim]`` made of the current vectors."""
        if self.mode == "token_embedding":
            self.prepare()
            text = expand_text(self.prompt or self.token, self.token, self.subtokens)
            with self._token_vectors():
                one = self.text([text])
        else:
            one = learned_condition(self.vectors, 1)
            if self.prompt is not None:
                one = concat_tokens([self.text([self.prompt]), one])
        return ConditionTensors(one.embeddings.expand(batch_size, -1, -1), one.mask.expand(batch_size, -1))

    def loss(self, codes: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Mean LM cross-entropy of ``codes [B, K, T]`` conditioned on the learned vectors."""
        conditions = fill_missing(self.model, {"text": self.text_condition(codes.shape[0])})
        fused = self.model.fuser(conditions)
        out = self.model.lm(codes, prefix=fused.prefix, cross=fused.cross)
        return self.model.lm.compute_loss(out, codes, padding_mask=padding_mask).loss

    @torch.no_grad()
    def reference_loss(self, audio: Sequence[AudioSource], *, sample_rate: int | None = None) -> float:
        """Mean cross-entropy of whole clips (e.g. held-out ones) under the current vectors."""
        device = self.vectors.device
        codes = encode_references(audio, codec=self.model.codec, sample_rate=sample_rate)
        total = 0.0
        for c in codes:
            total += float(self.loss(c[None].to(device)))
        return total / len(codes)

    # ------------------------------------------------------------------ early stop
    def _record(self, value: float) -> bool:
        """Append ``value`` to the loss curve; True when the plateau criterion says stop."""
        self.loss_history.append(value)
        self._smoothed = value if self._smoothed is None else 0.9 * self._smoothed + 0.1 * value
        if self._smoothed < self._best - self.early_stop_min_delta:
            self._best, self._since_best = self._smoothed, 0
        else:
            self._since_best += 1
        return self.early_stop_patience is not None and self._since_best >= self.early_stop_patience

    # ------------------------------------------------------------------ plain loop
    def fit(
        self,
        audio: Sequence[AudioSource],
        *,
        steps: int | None = None,
        sample_rate: int | None = None,
        progress: Progress | None = None,
    ) -> list[float]:
        """Learn the vectors on ``audio`` (tensors ``[C, T]`` at ``sample_rate`` or file paths).

        Returns the loss curve (one value per step). ``progress(step, total, loss)`` is called each step.
        In ``token_embedding`` mode the learned rows are written into the text encoder's table at the end.
        """
        total = self.steps if steps is None else steps
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
        self.set_references(audio, sample_rate=sample_rate)
        device = self.vectors.device
        optimizer = torch.optim.Adam([self.vectors], lr=self.learning_rate)
        generator = torch.Generator().manual_seed(self.seed)
        self.train()
        for step in range(1, total + 1):
            codes, mask = sample_chunks(
                self.reference_codes,
                batch_size=self.batch_size,
                chunk_frames=self.chunk_frames,
                generator=generator,
            )
            loss = self.loss(codes.to(device), mask.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            stop = self._record(float(loss.detach()))
            if progress is not None:
                progress(step, total, self.loss_history[-1])
            if stop:
                break
        self.eval()
        self.install()
        return list(self.loss_history)

    # ------------------------------------------------------------------ Lightning
    def train_dataloader(self) -> DataLoader:
        if not self.reference_codes:
            raise ValueError("no reference audio: call set_references(audio) before trainer.fit(module)")
        dataset = ReferenceChunks(
            codes=self.reference_codes,
            batch_size=self.batch_size,
            chunk_frames=self.chunk_frames,
            seed=self.seed,
        )
        return DataLoader(dataset, batch_size=None)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        codes, mask = (batch, None) if isinstance(batch, Tensor) else (batch[0], batch[1])
        loss = self.loss(codes.long(), mask)
        self.log("inversion/loss", loss, prog_bar=True, batch_size=codes.shape[0])
        trainer = attached_trainer(self)
        if self._record(float(loss.detach())) and trainer is not None:
            trainer.should_stop = True
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.vectors], lr=self.learning_rate)

    def on_train_end(self) -> None:
        self.install()

    # ------------------------------------------------------------------ results
    def install(self) -> None:
        """``token_embedding``: write the learned rows into the model's text-encoder table (else no-op)."""
        if self.mode == "token_embedding" and self.token_ids:
            write_rows(self.text, self.token_ids, self.vectors)

    def inverted(self) -> InvertedStyle:
        """The learned vectors with the base model's fingerprint (see :class:`InvertedStyle`)."""
        info = {
            "steps": str(len(self.loss_history)),
            "learning_rate": repr(self.learning_rate),
            "chunk_seconds": repr(self.chunk_seconds),
            "batch_size": str(self.batch_size),
            "init_word": str(self.init_word),
        }
        if self.loss_history:
            info["final_loss"] = f"{self.loss_history[-1]:.6f}"
        return InvertedStyle(
            vectors=self.vectors.detach().float().cpu().clone(),
            mode=self.mode,
            token=self.token,
            subtokens=list(self.subtokens),
            fingerprint=config_fingerprint(self.model),
            weights=weights_digest(self.model),
            prompt=self.prompt,
            info=info,
        )

    def save(self, path: str | PathLike[str]) -> Path:
        """Save only the learned vectors (+ metadata, base-model fingerprint) to a safetensors file."""
        return self.inverted().save(path)
