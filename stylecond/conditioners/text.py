"""Text conditioner: a frozen Hugging Face text encoder plus a trainable projection to the LM width."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import lightning as L
import torch
from torch import Tensor, nn

from stylecond.conditioners.dropout import check_probability, word_dropout
from stylecond.conditioners.types import ConditionTensors
from stylecond.utils.frozen import exclude_from_checkpoint, freeze_
from stylecond.utils.hf_component import load_component

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


def _encoder_only_classes() -> dict[type[PretrainedConfig], type[PreTrainedModel]]:
    """Config type -> encoder-only model class, for encoder-decoder families that ship one."""
    from transformers import (
        MT5Config,
        MT5EncoderModel,
        T5Config,
        T5EncoderModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    return {T5Config: T5EncoderModel, MT5Config: MT5EncoderModel, UMT5Config: UMT5EncoderModel}


def config_hidden_size(config: PretrainedConfig) -> int | None:
    """The width of the encoder's last hidden state as declared by ``config`` (None if unknown)."""
    for attr in ("hidden_size", "d_model", "dim"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


class HFTextConditioner(L.LightningModule):
    """Frozen Hugging Face text encoder (T5, BERT, ...) + trainable ``nn.Linear(encoder_dim, output_dim)``.

    Returns the projected token sequence (no pooling) as a ``ConditionTensors``; padding tokens and null
    texts (``None``, empty or emptied by word dropout) have zero embeddings and a False mask. The encoder
    and tokenizer are loaded on first use (first ``forward``, ``load()`` or ``configure_model()``), never
    in the constructor, by hub name or local path; the encoder is frozen, kept in eval mode and left out
    of checkpoints (only the projection is saved). Encoder-decoder checkpoints (T5 family) load their
    encoder only.

    Args:
        model_name_or_path: Hub name (e.g. ``t5-base``) or local directory of the text encoder and tokenizer.
        encoder_dim: Hidden size of the encoder's last layer (768 for T5-base); checked when loading.
        output_dim: Width of the returned embeddings (the LM's model dimension).
        max_length: Captions are truncated to this many tokens (special tokens included), >= 2.
        word_dropout: In training, probability of dropping each word of a caption before tokenising, in [0, 1).
        local_files_only: Never contact the model hub (also implied by ``HF_HUB_OFFLINE=1``).
        trust_remote_code: Allow repository code to run when loading; only enable for repositories you trust.
        revision: Hub revision (branch, tag or commit) to load; None for the default branch.
        component: Load the encoder from this sub-model of a composite checkpoint instead (e.g.
            ``text_encoder`` of a transformers MusicGen repository, whose root holds the tokenizer).
        cache_size: keep the frozen encoder's outputs for up to this many distinct captions (least recently
            used dropped first, held in CPU memory: about ``tokens x encoder_dim x 4`` bytes each) and
            reuse them instead of re-encoding; 0 disables. Captions are keys after word dropout, so the
            cache helps most in runs without it (or at evaluation). Bypassed while the encoder trains.
    """

    def __init__(
        self,
        *,
        model_name_or_path: str,
        encoder_dim: int,
        output_dim: int,
        max_length: int = 64,
        word_dropout: float = 0.2,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        revision: str | None = None,
        component: str | None = None,
        cache_size: int = 0,
    ) -> None:
        super().__init__()
        if not model_name_or_path:
            raise ValueError(
                "model_name_or_path must be a hub name or a local directory; got an empty string"
            )
        for name, value, low in (
            ("encoder_dim", encoder_dim, 1),
            ("output_dim", output_dim, 1),
            ("max_length", max_length, 2),
            ("cache_size", cache_size, 0),
        ):
            if int(value) < low:
                raise ValueError(f"{name} must be >= {low}; got {value}")
        self.model_name_or_path = str(model_name_or_path)
        self.encoder_dim = int(encoder_dim)
        self.output_dim = int(output_dim)
        self.max_length = int(max_length)
        self.word_dropout = check_probability("word_dropout", word_dropout, allow_one=False)
        self.local_files_only = bool(local_files_only)
        self.trust_remote_code = bool(trust_remote_code)
        self.revision = revision
        self.component = component
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, Tensor] = OrderedDict()  # caption -> hidden [L, encoder_dim] on CPU
        self.proj = nn.Linear(self.encoder_dim, self.output_dim)
        self.encoder: PreTrainedModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        exclude_from_checkpoint(self, "encoder")

    # ------------------------------------------------------------------ loading
    @property
    def is_loaded(self) -> bool:
        return self.encoder is not None and self.tokenizer is not None

    def _model_source(self) -> str:
        """Where ``from_pretrained`` loads from (subclasses may resolve or verify a packaged path)."""
        return self.model_name_or_path

    def _pretrained_kwargs(self) -> dict[str, Any]:
        return {
            "local_files_only": self.local_files_only,
            "trust_remote_code": self.trust_remote_code,
            "revision": self.revision,
        }

    def _load_encoder(self, source: str) -> PreTrainedModel:
        """Load the encoder network: an encoder-only class for known encoder-decoder configs, else AutoModel."""
        from transformers import AutoConfig, AutoModel

        if self.component is not None:
            return cast(
                "PreTrainedModel",
                load_component(
                    source, self.component, revision=self.revision, local_files_only=self.local_files_only
                ),
            )
        kwargs = self._pretrained_kwargs()
        config = AutoConfig.from_pretrained(source, **kwargs)
        for config_cls, model_cls in _encoder_only_classes().items():
            if type(config) is config_cls:
                return model_cls.from_pretrained(source, config=config, dtype=torch.float32, **kwargs)
        model = AutoModel.from_pretrained(source, config=config, dtype=torch.float32, **kwargs)
        if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            encoder = model.get_encoder()
            if not hasattr(encoder, "config"):
                encoder.config = config
            return encoder
        return model

    def _load_tokenizer(self, source: str) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, **self._pretrained_kwargs())
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError(
                    f"tokenizer of {self.model_name_or_path!r} has neither a pad nor an eos token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def load(self) -> HFTextConditioner:
        """Load tokenizer and encoder if not loaded yet (frozen, eval, on the projection's device)."""
        if self.is_loaded:
            return self
        source = self._model_source()
        tokenizer = self._load_tokenizer(source)
        encoder = self._load_encoder(source)
        hidden = config_hidden_size(encoder.config)
        if hidden is not None and hidden != self.encoder_dim:
            raise ValueError(
                f"encoder_dim={self.encoder_dim} but the text encoder {self.model_name_or_path!r} has hidden size "
                f"{hidden}; set encoder_dim={hidden}"
            )
        freeze_(encoder)
        cast(nn.Module, encoder).to(self.proj.weight.device)
        self.encoder = encoder
        self.tokenizer = tokenizer
        return self

    def configure_model(self) -> None:
        self.load()

    def train(self, mode: bool = True) -> HFTextConditioner:
        super().train(mode)
        if self.encoder is not None:
            self.encoder.eval()
        return self

    # ------------------------------------------------------- textual inversion
    def input_embeddings(self) -> nn.Embedding:
        """The encoder's input (token) embedding table, loading the encoder if needed."""
        self.load()
        assert self.encoder is not None
        table = self.encoder.get_input_embeddings()
        if not isinstance(table, nn.Embedding):
            raise TypeError(
                f"{type(self.encoder).__name__} has no nn.Embedding input table; got {type(table)}"
            )
        return table

    def add_tokens(self, tokens: list[str]) -> list[int]:
        """Add new tokens (e.g. ``["<style>"]``) to the tokenizer and grow the embedding table if needed.

        Returns their ids. The new rows are frozen like the rest of the encoder: whoever trains them
        enables their gradients. Raises ValueError if a token is empty, repeated or already known.
        """
        self.load()
        assert self.encoder is not None and self.tokenizer is not None
        vocab = self.tokenizer.get_vocab()
        if not tokens:
            raise ValueError("tokens must list at least one new token")
        for tok in tokens:
            if not tok or tok.strip() != tok or " " in tok:
                raise ValueError(f"token {tok!r} must be non-empty without whitespace")
            if tok in vocab:
                raise ValueError(f"token {tok!r} is already in the vocabulary of {self.model_name_or_path!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"tokens contains duplicates: {tokens}")
        self.tokenizer.add_tokens(list(tokens))
        self._cache.clear()
        ids = [int(self.tokenizer.convert_tokens_to_ids(tok)) for tok in tokens]  # type: ignore[arg-type]
        rows = self.input_embeddings().num_embeddings
        if max(ids) >= rows:
            self.encoder.resize_token_embeddings(max(len(self.tokenizer), max(ids) + 1))
            freeze_(self.encoder)
        return ids

    # ------------------------------------------------------------------ forward
    def _prepare_texts(
        self, texts: Sequence[str | None], generator: torch.Generator | None
    ) -> list[str | None]:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise ValueError(f"texts must be a sequence of str or None; got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError("texts must contain at least one entry")
        out: list[str | None] = []
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise ValueError(f"texts[{i}] must be str or None; got {type(text).__name__}")
            if text is not None and self.training and self.word_dropout > 0:
                text = word_dropout(text, self.word_dropout, generator)
            out.append(text if text is not None and text.strip() else None)
        return out

    def _encode(self, texts: list[str], device: torch.device) -> tuple[Tensor, Tensor]:
        """Tokenise and encode: hidden states ``[N, S, encoder_dim]`` and the token mask ``[N, S]`` bool."""
        assert self.encoder is not None and self.tokenizer is not None
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        attn = batch["attention_mask"].to(device)
        hidden = self.encoder(input_ids=batch["input_ids"].to(device), attention_mask=attn).last_hidden_state
        if hidden.shape[-1] != self.encoder_dim:
            raise ValueError(
                f"encoder_dim={self.encoder_dim} but the encoder returned width {hidden.shape[-1]}"
            )
        return hidden, attn.bool()

    @torch.no_grad()
    def _encode_cached(self, texts: list[str], device: torch.device) -> tuple[Tensor, Tensor]:
        """:meth:`_encode` through the caption cache (outputs right-padded: padding never changes them)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            hidden, mask = self._encode(missing, device)
            for text, h, m in zip(missing, hidden, mask, strict=True):
                self._cache[text] = h[m].cpu()
        found = [self._cache[t] for t in texts]
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        length = max(h.shape[0] for h in found)
        hidden = torch.zeros(len(found), length, self.encoder_dim, dtype=found[0].dtype)
        mask = torch.zeros(len(found), length, dtype=torch.bool)
        for i, h in enumerate(found):
            hidden[i, : h.shape[0]], mask[i, : h.shape[0]] = h, True
        return hidden.to(device), mask.to(device)

    def forward(
        self, texts: Sequence[str | None], *, generator: torch.Generator | None = None
    ) -> ConditionTensors:
        """Encode captions.

        Args:
            texts: B captions; ``None`` or empty gives a null row.
            generator: CPU generator for word dropout (training only); global RNG if None.

        Returns:
            ``ConditionTensors(embeddings [B, S, output_dim], mask [B, S])`` with S the longest tokenised
            caption (1 if every row is null).
        """
        self.load()
        assert self.encoder is not None and self.tokenizer is not None
        prepared = self._prepare_texts(texts, generator)
        device = self.proj.weight.device
        dtype = self.proj.weight.dtype
        rows = [i for i, t in enumerate(prepared) if t is not None]
        if not rows:
            return ConditionTensors(
                torch.zeros(len(prepared), 1, self.output_dim, device=device, dtype=dtype),
                torch.zeros(len(prepared), 1, dtype=torch.bool, device=device),
            )
        texts_in = [t for t in prepared if t is not None]
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in self.encoder.parameters())
        if self.cache_size > 0 and not needs_grad:
            hidden, mask = self._encode_cached(texts_in, device)
        else:
            with torch.set_grad_enabled(needs_grad):
                hidden, mask = self._encode(texts_in, device)
        emb = self.proj(hidden.to(dtype)) * mask[..., None].to(dtype)
        index = torch.tensor(rows, device=device)
        embeddings = torch.zeros(len(prepared), emb.shape[1], self.output_dim, device=device, dtype=emb.dtype)
        full_mask = torch.zeros(len(prepared), emb.shape[1], dtype=torch.bool, device=device)
        embeddings = embeddings.index_copy(0, index, emb)
        full_mask[index] = mask
        return ConditionTensors(embeddings, full_mask)
