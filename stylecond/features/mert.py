"""MERT (``m-a-p/MERT-v1-95M``) as transformers' native ``HubertModel``: no repository code runs.

MERT's hub checkpoint is saved from ``MERTModel(HubertModel)``, whose only departures from HuBERT are
options that MERT-v1-95M turns off: CQT input features (``feature_extractor_cqt``), DeepNorm residual
scaling (``deepnorm``) and attention relaxation (``attention_relax``). Its tensors already carry
HuBERT's names (the legacy weight-norm pair ``weight_g``/``weight_v`` is renamed by transformers on
load), so with those options off the checkpoint is a HuBERT checkpoint and its config maps field by
field onto ``HubertConfig``. A MERT config that turns one of them on cannot be mapped: it raises, naming
the field, and the caller may opt in to the repository's own code (``trust_remote_code=True`` with a
pinned ``revision``). tests/stylecond/features/test_mert.py checks the mapping layer by layer against an
independent implementation of MERT's forward.
"""

from __future__ import annotations

from typing import Any

#: MERT-only config fields and the value that makes the model a plain HuBERT
_HUBERT_EQUIVALENT: dict[str, Any] = {"feature_extractor_cqt": False, "deepnorm": False}

#: HubertConfig fields copied from MERT's config when present
_COPIED = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_dropout", "final_dropout",
    "layerdrop", "initializer_range", "layer_norm_eps", "feat_extract_norm", "feat_extract_activation",
    "conv_dim", "conv_stride", "conv_kernel", "conv_bias", "num_conv_pos_embeddings",
    "num_conv_pos_embedding_groups", "conv_pos_batch_norm", "do_stable_layer_norm", "feat_proj_layer_norm",
    "apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks", "mask_feature_prob",
    "mask_feature_length", "mask_feature_min_masks", "vocab_size",
)  # fmt: skip


def is_mert_config(config: dict[str, Any]) -> bool:
    """True for a MERT repository's ``config.json`` (``model_type`` ``mert_model`` / ``MERT``)."""
    return str(config.get("model_type", "")).lower().startswith("mert")


def hubert_config_for_mert(config: dict[str, Any], *, source: str) -> Any:
    """The ``HubertConfig`` computing exactly what MERT's ``config`` computes; ValueError naming the field
    that has no HuBERT equivalent."""
    from transformers import HubertConfig

    for field, plain in _HUBERT_EQUIVALENT.items():
        if bool(config.get(field, plain)) != plain:
            raise ValueError(
                f"{source}: MERT config sets {field}={config[field]!r}, which HuBERT lacks; load it with "
                "trust_remote_code=True and a pinned revision (only for code you trust)"
            )
    # attention relaxation subtracts the row maximum before the softmax: softmax is invariant to it
    return HubertConfig(**{k: config[k] for k in _COPIED if k in config})


def audio_encoder_config(
    source: str, *, revision: str | None, local_files_only: bool, trust_remote_code: bool
) -> Any:
    """The transformers config of the audio encoder ``source`` (a MERT config as its ``HubertConfig``)."""
    from transformers import AutoConfig, PretrainedConfig

    raw, _ = PretrainedConfig.get_config_dict(source, revision=revision, local_files_only=local_files_only)
    if is_mert_config(raw) and not trust_remote_code:
        return hubert_config_for_mert(raw, source=source)
    return AutoConfig.from_pretrained(
        source, revision=revision, local_files_only=local_files_only, trust_remote_code=trust_remote_code
    )


def load_audio_encoder(
    source: str, *, revision: str | None, local_files_only: bool, trust_remote_code: bool
) -> Any:
    """A transformers audio encoder by hub name or local path: MERT as a native ``HubertModel`` (no
    repository code), anything else through ``AutoModel`` (repository code only with ``trust_remote_code``)."""
    from transformers import AutoModel, HubertConfig, HubertModel

    hub: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
    config = audio_encoder_config(source, trust_remote_code=trust_remote_code, **hub)
    if isinstance(config, HubertConfig) and not trust_remote_code:
        return HubertModel.from_pretrained(source, config=config, **hub)
    return AutoModel.from_pretrained(source, config=config, trust_remote_code=trust_remote_code, **hub)
