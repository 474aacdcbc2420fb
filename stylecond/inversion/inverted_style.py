"""``InvertedStyle``: learned textual-inversion vectors on disk (safetensors) and their use in generation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from stylecond.conditioners.fuser import concat_tokens
from stylecond.conditioners.types import ConditionTensors
from stylecond.inversion.fingerprint import config_fingerprint, weights_digest
from stylecond.inversion.tokens import (
    check_mode,
    ensure_tokens,
    expand_text,
    fill_missing,
    learned_condition,
    write_rows,
)

FORMAT = "stylecond-textual-inversion"
VERSION = "1"


@dataclass
class InvertedStyle:
    """Learned pseudo-word vectors plus what is needed to use them safely.

    ``vectors [P, D]``: ``D = text_conditioner.output_dim`` for ``lm_space`` (used directly as text
    condition tokens), ``D = text_conditioner.encoder_dim`` for ``token_embedding`` (rows of the text
    encoder's input table for ``subtokens``). ``fingerprint`` / ``weights`` identify the base model.
    """

    vectors: Tensor
    mode: str
    token: str
    subtokens: list[str]
    fingerprint: str
    weights: str
    prompt: str | None = None
    info: dict[str, str] = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return int(self.vectors.shape[0])

    # ------------------------------------------------------------------ file format
    def save(self, path: str | PathLike[str]) -> Path:
        """Write the vectors and metadata to a safetensors file (no pickle, no model weights)."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "mode": self.mode,
            "token": self.token,
            "subtokens": json.dumps(self.subtokens),
            "num_tokens": str(self.num_tokens),
            "dim": str(int(self.vectors.shape[1])),
            "fingerprint": self.fingerprint,
            "weights_digest": self.weights,
            "prompt": json.dumps(self.prompt),
            "info": json.dumps(self.info, sort_keys=True),
        }
        save_file({"vectors": self.vectors.detach().float().cpu().contiguous()}, str(out), metadata=meta)
        return out

    @classmethod
    def load(cls, path: str | PathLike[str]) -> InvertedStyle:
        """Read a file written by :meth:`save`; ValueError naming the file if it is not one."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"{p}: no such inverted-style file")
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ValueError(
                        f"{p} is not a stylecond textual-inversion file (format={meta.get('format')!r})"
                    )
                vectors = f.get_tensor("vectors")
        except ValueError:
            raise
        except Exception as err:  # safetensors raises its own error types on corrupt files
            raise ValueError(f"{p} is not a readable safetensors file: {err}") from err
        if meta.get("version") != VERSION:
            raise ValueError(
                f"{p} has format version {meta.get('version')!r}; this stylecond reads {VERSION!r}"
            )
        subtokens = json.loads(meta["subtokens"])
        mode = check_mode(meta["mode"])
        if vectors.dim() != 2 or (mode == "token_embedding" and vectors.shape[0] != len(subtokens)):
            raise ValueError(f"{p}: vectors {tuple(vectors.shape)} do not match {len(subtokens)} sub-tokens")
        return cls(
            vectors=vectors,
            mode=mode,
            token=meta["token"],
            subtokens=subtokens,
            fingerprint=meta["fingerprint"],
            weights=meta["weights_digest"],
            prompt=json.loads(meta.get("prompt", "null")),
            info=json.loads(meta.get("info", "{}")),
        )

    # ------------------------------------------------------------------ use with a model
    def check(self, model: Any) -> None:
        """Raise ValueError unless ``model`` is the base model these vectors were learned on."""
        if getattr(model, "text_conditioner", None) is None:
            raise ValueError("the model has no text_conditioner: textual-inversion vectors cannot be used")
        found = config_fingerprint(model)
        if found != self.fingerprint:
            raise ValueError(
                f"these inversion vectors were learned on another base model (config fingerprint "
                f"{self.fingerprint[:12]}, this model {found[:12]}): re-run `stylecond invert` with this model"
            )
        found = weights_digest(model)
        if found != self.weights:
            raise ValueError(
                f"these inversion vectors were learned on a model with the same config but different weights "
                f"(digest {self.weights[:12]}, this model {found[:12]}; retrained?): re-run `stylecond invert`"
            )
        text = model.text_conditioner
        dim = int(text.output_dim if self.mode == "lm_space" else text.encoder_dim)
        if int(self.vectors.shape[1]) != dim:
            raise ValueError(f"vectors have width {self.vectors.shape[1]} but the model expects {dim}")

    def apply_to(self, model: Any) -> Any:
        """Check ``model`` and install the vectors (``token_embedding``: add the sub-tokens, write their rows)."""
        self.check(model)
        if self.mode == "token_embedding":
            ids = ensure_tokens(model.text_conditioner, self.subtokens)
            write_rows(model.text_conditioner, ids, self.vectors)
        return model

    def expand(self, text: str) -> str:
        """``text`` with the pseudo-word replaced by its sub-tokens (``token_embedding``, P > 1)."""
        return expand_text(text, self.token, self.subtokens)

    def text_condition(
        self, model: Any, texts: Sequence[str | None] | None = None, *, batch_size: int = 1
    ) -> ConditionTensors:
        """The ``"text"`` condition ``[B, S, output_dim]`` carrying the learned style.

        ``lm_space``: the encoded ``texts`` (if any) followed by the P learned vectors. ``token_embedding``:
        the encoded ``texts``, each with the pseudo-word (prepended when a text lacks it). Call
        :meth:`apply_to` first.
        """
        text = model.text_conditioner
        rows = list(texts) if texts is not None else [None] * batch_size
        device = text.proj.weight.device
        if self.mode == "lm_space":
            learned = learned_condition(self.vectors.to(device, text.proj.weight.dtype), len(rows))
            if all(t is None for t in rows):
                return learned
            return concat_tokens([text(rows), learned])
        return text(self.token_texts(rows))

    def token_texts(self, texts: Sequence[str | None]) -> list[str]:
        """Prompts for ``token_embedding`` mode: the pseudo-word is added where missing, then expanded."""
        out = []
        for t in texts:
            t = t or self.token
            if self.token not in t:
                t = f"{self.token} {t}"
            out.append(self.expand(t))
        return out

    @torch.no_grad()
    def conditions(
        self,
        model: Any,
        texts: Sequence[str | None] | None = None,
        *,
        batch_size: int = 1,
        style_given: bool = False,
    ) -> dict[str, ConditionTensors]:
        """Named conditions for ``model.generate(condition_overrides=...)``: the text condition plus null
        conditions for every other name the fuser routes (except ``"style"`` when ``style_given``)."""
        self.apply_to(model)
        cond = {"text": self.text_condition(model, texts, batch_size=batch_size)}
        return fill_missing(model, cond, skip=("style",) if style_given else ())
