"""Pseudo-word helpers: sub-token names, prompt expansion, vocabulary growth and null-filled conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from stylecond.conditioners.types import ConditionTensors

MODES: tuple[str, ...] = ("lm_space", "token_embedding")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


def check_token(token: str) -> str:
    if not isinstance(token, str) or not token or token != token.strip() or any(c.isspace() for c in token):
        raise ValueError(
            f"token must be a non-empty string without whitespace (e.g. '<my-style>'); got {token!r}"
        )
    return token


def subtoken_names(token: str, num_tokens: int) -> list[str]:
    """The P vocabulary entries behind a pseudo-word: ``<s>`` then ``<s-1>``, ``<s-2>``, ... (P > 1)."""
    check_token(token)
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1; got {num_tokens}")
    if token.endswith(">") and len(token) > 1:
        extra = [f"{token[:-1]}-{i}>" for i in range(1, num_tokens)]
    else:
        extra = [f"{token}-{i}" for i in range(1, num_tokens)]
    return [token, *extra]


def expand_text(text: str, token: str, subtokens: list[str]) -> str:
    """Replace every ``token`` in ``text`` by its P sub-tokens (identity for P = 1)."""
    if len(subtokens) == 1:
        return text
    return text.replace(token, " ".join(subtokens))


def ensure_tokens(text_conditioner: Any, tokens: list[str]) -> list[int]:
    """Ids of ``tokens`` in the text conditioner's tokenizer, adding the missing ones (and table rows).

    A token that is already a regular (non-added) entry of the vocabulary or a special token is refused:
    its embedding would be shared with ordinary text.
    """
    text_conditioner.load()
    tok = text_conditioner.tokenizer
    vocab = tok.get_vocab()
    added = tok.get_added_vocab()
    special = set(getattr(tok, "all_special_tokens", []))
    missing = []
    for t in tokens:
        if t in special or (t in vocab and t not in added):
            raise ValueError(
                f"token {t!r} is already a word of the text encoder's vocabulary; choose a new one "
                "such as '<my-style>'"
            )
        if t not in vocab:
            missing.append(t)
    if missing:
        text_conditioner.add_tokens(missing)
    ids = [int(tok.convert_tokens_to_ids(t)) for t in tokens]
    rows = text_conditioner.input_embeddings().num_embeddings
    if max(ids) >= rows:  # added earlier to the tokenizer but the table was never grown
        text_conditioner.encoder.resize_token_embeddings(max(ids) + 1)
        for p in text_conditioner.encoder.parameters():
            p.requires_grad_(False)
    return ids


@torch.no_grad()
def write_rows(text_conditioner: Any, ids: list[int], vectors: Tensor) -> None:
    """Write ``vectors [P, encoder_dim]`` into the input embedding rows ``ids``."""
    table = text_conditioner.input_embeddings()
    index = torch.tensor(ids, device=table.weight.device)
    table.weight.index_copy_(0, index, vectors.detach().to(table.weight.device, table.weight.dtype))


def learned_condition(vectors: Tensor, batch_size: int) -> ConditionTensors:
    """``vectors [P, D]`` -> ``ConditionTensors [B, P, D]`` with an all-True mask."""
    emb = vectors[None].expand(batch_size, -1, -1)
    return ConditionTensors(emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=vectors.device))


def fill_missing(
    model: Any, conditions: Mapping[str, ConditionTensors], *, skip: tuple[str, ...] = ()
) -> dict[str, ConditionTensors]:
    """``conditions`` plus the fuser's null token for every name it routes that they lack (except ``skip``)."""
    full = model.fuser.complete(conditions, dim=int(model.lm.dim))
    return {name: cond for name, cond in full.items() if name in conditions or name not in skip}
