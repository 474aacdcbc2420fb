"""MERT without remote code: a checkpoint in MERT's hub layout (model_type mert_model, MERT-only config
fields, legacy weight-norm names) loads as transformers' native HubertModel, and every hidden layer equals
an independent implementation of MERT-v1's forward (fairseq's post-LN HuBERT) written from its description."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylecond.features import HFAudioEncoderFeatures
from tests.support.tiny_hub import hubert_config, tiny_mert


def reference_hidden_states(sd: dict[str, torch.Tensor], cfg: dict, wav: torch.Tensor) -> list[torch.Tensor]:
    """MERT-v1 / HuBERT-base in eval: group-norm conv stack, LayerNorm + projection, weight-normed
    positional conv (even kernel: last frame dropped), LayerNorm, post-LN layers. ``wav [B, T]``."""
    eps = cfg["layer_norm_eps"]
    x = wav[:, None]
    for i, stride in enumerate(cfg["conv_stride"]):
        x = F.conv1d(x, sd[f"feature_extractor.conv_layers.{i}.conv.weight"], stride=stride)
        if i == 0:
            w, b = (
                sd["feature_extractor.conv_layers.0.layer_norm.weight"],
                sd["feature_extractor.conv_layers.0.layer_norm.bias"],
            )
            x = F.group_norm(x, x.shape[1], w, b, eps)
        x = F.gelu(x)
    x = x.transpose(1, 2)
    x = F.layer_norm(
        x,
        x.shape[-1:],
        sd["feature_projection.layer_norm.weight"],
        sd["feature_projection.layer_norm.bias"],
        eps,
    )
    x = F.linear(x, sd["feature_projection.projection.weight"], sd["feature_projection.projection.bias"])
    v, g = sd["encoder.pos_conv_embed.conv.weight_v"], sd["encoder.pos_conv_embed.conv.weight_g"]
    kernel, groups = cfg["num_conv_pos_embeddings"], cfg["num_conv_pos_embedding_groups"]
    pos = F.conv1d(x.transpose(1, 2), g * v / v.norm(dim=(0, 1), keepdim=True), sd["encoder.pos_conv_embed.conv.bias"],
                   padding=kernel // 2, groups=groups)  # fmt: skip
    pos = pos[:, :, :-1] if kernel % 2 == 0 else pos
    x = F.layer_norm(
        x + F.gelu(pos).transpose(1, 2),
        x.shape[-1:],
        sd["encoder.layer_norm.weight"],
        sd["encoder.layer_norm.bias"],
        eps,
    )
    states, heads = [x], cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layers.{i}."

        def proj(name: str, t: torch.Tensor, p: str = p) -> torch.Tensor:
            return F.linear(t, sd[f"{p}attention.{name}.weight"], sd[f"{p}attention.{name}.bias"])

        b, n, d = x.shape
        q, k, vv = (proj(f"{c}_proj", x).view(b, n, heads, d // heads).transpose(1, 2) for c in "qkv")
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, dim=-1) @ vv
        x = F.layer_norm(
            x + proj("out_proj", att.transpose(1, 2).reshape(b, n, d)),
            (d,),
            sd[p + "layer_norm.weight"],
            sd[p + "layer_norm.bias"],
            eps,
        )
        ff = F.linear(F.gelu(F.linear(x, sd[p + "feed_forward.intermediate_dense.weight"], sd[p + "feed_forward.intermediate_dense.bias"])),
                      sd[p + "feed_forward.output_dense.weight"], sd[p + "feed_forward.output_dense.bias"])  # fmt: skip
        x = F.layer_norm(
            x + ff, (d,), sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"], eps
        )
        states.append(x)
    return states


@pytest.fixture(scope="module")
def mert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mert(tmp_path_factory.mktemp("mert") / "MERT-v1-95M", mert_layout=True)


def test_mert_layout_loads_natively_and_matches_layer_by_layer(mert_dir: Path) -> None:
    config = json.loads((mert_dir / "config.json").read_text())
    assert (
        config["model_type"] == "mert_model" and "auto_map" in config
    )  # no code shipped: only the mapping loads it
    sd = torch.load(mert_dir / "pytorch_model.bin", weights_only=True)
    assert "encoder.pos_conv_embed.conv.weight_g" in sd
    wav = 0.1 * torch.randn(2, 24000, generator=torch.Generator().manual_seed(0))
    expected = reference_hidden_states(sd, hubert_config(), wav)
    for layer in range(len(expected)):
        feat = HFAudioEncoderFeatures(model_name_or_path=str(mert_dir), layer=layer, local_files_only=True)
        with torch.no_grad():
            got = feat(wav[:, None])
        torch.testing.assert_close(got, expected[layer], rtol=0, atol=1e-4, msg=f"hidden layer {layer}")
        assert type(feat.model).__name__ == "HubertModel"
    last = HFAudioEncoderFeatures(model_name_or_path=str(mert_dir), local_files_only=True)
    assert feat.num_frames(24000) == expected[-1].shape[1] == 74  # 75 Hz
    torch.testing.assert_close(last(wav[:, None]), expected[-1], rtol=0, atol=1e-4)


def test_a_mert_option_hubert_lacks_names_it(mert_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "mert_deepnorm"
    bad.mkdir()
    config = json.loads((mert_dir / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "deepnorm": True}))
    (bad / "pytorch_model.bin").write_bytes((mert_dir / "pytorch_model.bin").read_bytes())
    with pytest.raises(ValueError, match="deepnorm.*trust_remote_code"):
        HFAudioEncoderFeatures(model_name_or_path=str(bad), local_files_only=True).load()
