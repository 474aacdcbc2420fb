"""StyleConditioner: token counts, excerpts and anti-copy spans, eval_q, nulling, bad input, foreign model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stylecond.conditioners.style import StyleConditioner, excerpt_frame_mask
from stylecond.features import AudioFeatureExtractor, HFAudioEncoderFeatures, MelFeatures
from stylecond.quantization import RVQBottleneck


class FrameStats(AudioFeatureExtractor):
    """Stand-in extractor: 4 statistics per hop-sized frame; remembers its last input."""

    def __init__(self, sample_rate: int = 24000, hop: int = 320) -> None:
        super().__init__()
        self._sr, self.hop = sample_rate, hop
        self.last: Tensor | None = None

    sample_rate = property(lambda self: self._sr)  # type: ignore[assignment]
    frame_rate = property(lambda self: self._sr / self.hop)  # type: ignore[assignment]
    dim = 4  # type: ignore[assignment]
    frozen = True  # type: ignore[assignment]

    def forward(self, wav: Tensor) -> Tensor:
        self.last = wav
        mono = self._check_wav(wav)
        fr = F.pad(mono, (0, -mono.shape[-1] % self.hop)).unfold(-1, self.hop, self.hop)  # [B, F, hop]
        return (
            torch.stack([fr.mean(-1), fr.std(-1), fr.abs().amax(-1), fr.diff(dim=-1).pow(2).mean(-1)], -1)
            * 10
        )


def _cond(extractor: AudioFeatureExtractor | None = None, **kw: object) -> StyleConditioner:
    args: dict[str, object] = dict(
        extractor=extractor if extractor is not None else FrameStats(),
        output_dim=12, dim=16, num_layers=1, num_heads=2, ffn_dim=32, dropout=0.0,
        num_codebooks=6, codebook_size=16, ds_factor=15,
    )  # fmt: skip
    args.update(kw)
    return StyleConditioner(**args)  # type: ignore[arg-type]


def _music(n: int, seconds: float, sample_rate: int) -> Tensor:
    """``[n, 1, T]`` synthetic music (SynthStyles if available, else random chords)."""
    try:
        from datamodules.synth import SynthStyles

        clips = SynthStyles(sample_rate=sample_rate, seed=0).clips(n, seconds=seconds)
        return torch.stack([c.audio for c in clips])
    except ImportError:
        g = torch.Generator().manual_seed(0)
        t = torch.arange(round(seconds * sample_rate)) / sample_rate
        out = []
        for _ in range(n):
            f0 = 110 * 2 ** (torch.randint(0, 24, (3,), generator=g) / 12)
            out.append(torch.stack([torch.sin(2 * math.pi * f * t) for f in f0]).mean(0))
        return torch.stack(out)[:, None] * 0.5


@pytest.mark.parametrize(("seconds", "tokens"), [(1.5, 8), (3.0, 15), (4.5, 23)])
def test_token_count_at_75hz_ds15(seconds: float, tokens: int) -> None:
    cond = _cond(excerpt_length=seconds).eval()
    out = cond(torch.randn(1, 1, 24000 * 5) * 0.1, sample_rate=24000)
    assert abs(out.condition.embeddings.shape[1] - tokens) <= 1
    assert out.condition.embeddings.shape[1] == cond.num_tokens(seconds)
    assert out.condition.mask.all() and out.excerpt_span is not None
    assert torch.allclose(
        out.excerpt_span[0], torch.tensor([(5 - seconds) / 2, (5 + seconds) / 2]), atol=1e-4
    )


def test_information_rises_with_eval_q_on_music_features() -> None:
    feats = MelFeatures(sample_rate=16000, n_mels=16)(_music(8, 1.0, 16000))  # [8, 51, 16]
    rvq = RVQBottleneck(dim=16, num_codebooks=6, codebook_size=32)
    for _ in range(6):
        rvq(feats)
    rvq.eval()
    errs = [F.mse_loss(rvq(feats, n_q=k).quantized, feats).item() for k in range(1, 7)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.5 * errs[0]


def test_dropout_depths_cover_range_and_eval_deterministic() -> None:
    cond = _cond(extractor=FrameStats(16000, 320), excerpt_min=0.5, excerpt_max=1.0, excerpt_length=1.0)
    wav = torch.randn(2, 1, 16000 * 2) * 0.1
    depths = {cond(wav, sample_rate=16000).rvq.n_q for _ in range(30)}
    assert depths == set(range(1, 7))
    cond.eval()
    a, b = cond(wav, sample_rate=16000), cond(wav, sample_rate=16000)
    assert a.rvq.n_q == 3 and torch.equal(a.condition.embeddings, b.condition.embeddings)
    cond.eval_q = 1
    assert cond.rvq.eval_q == 1 and cond(wav, sample_rate=16000).rvq.n_q == 1
    with pytest.raises(ValueError, match=r"1\.\.6"):
        cond.eval_q = 7


def test_training_excerpts_per_sample_spans_and_padding() -> None:
    ext = FrameStats(16000, 320)  # 50 Hz
    cond = _cond(extractor=ext, ds_factor=5)
    sr, seconds = 16000, 6.0
    ramp = (torch.arange(int(sr * seconds)) / sr + 1.0).expand(4, 1, -1).contiguous()  # value = 1 + time (s)
    out = cond(ramp, sample_rate=sr)
    span = out.excerpt_span
    assert span is not None and span.shape == (4, 2)
    lengths = span[:, 1] - span[:, 0]
    assert ((lengths >= 1.5 - 1e-3) & (lengths <= 4.5 + 1e-3)).all() and (span[:, 1] <= seconds + 1e-4).all()
    assert len(set(lengths.tolist())) == 4  # drawn per sample
    seen = ext.last
    assert seen is not None
    for i in range(4):  # the extractor saw exactly the span of the target
        valid = seen[i, 0] > 0
        assert abs(float(seen[i, 0, 0]) - 1.0 - float(span[i, 0])) < 1e-3
        assert abs(int(valid.sum()) / sr - float(lengths[i])) < 1e-3
    # padded to the longest excerpt, shorter ones masked and zeroed
    mask, emb = out.condition.mask, out.condition.embeddings
    counts = mask.sum(1)
    assert counts.max() == mask.shape[1] and counts.min() < counts.max()
    assert (emb[~mask] == 0).all() and (out.rvq.codes == -1).any()  # padded frames carry no code
    # anti-copy mask over 50 Hz target frames
    tgt = excerpt_frame_mask(span, int(seconds * 50), 50.0)
    for i in range(4):
        idx = tgt[i].nonzero().flatten()
        assert idx[0] == math.floor(float(span[i, 0]) * 50 + 1e-4)
        assert idx[-1] == math.ceil(float(span[i, 1]) * 50 - 1e-4) - 1
        assert len(idx) == idx[-1] - idx[0] + 1


def test_excerpt_frame_mask_exact() -> None:
    m = excerpt_frame_mask(torch.tensor([[1.0, 2.5], [0.01, 0.03]]), 200, 50.0)
    assert m[0].nonzero().flatten().tolist() == list(range(50, 125))
    assert m[1].nonzero().flatten().tolist() == [0, 1]
    with pytest.raises(ValueError, match="span"):
        excerpt_frame_mask(torch.zeros(3), 10, 50.0)


def test_paired_style_wav_null_and_resampling() -> None:
    ext = FrameStats(16000, 320)
    cond = _cond(extractor=ext, excerpt_length=1.0).eval()
    wav = torch.zeros(2, 1, 8000 * 2)
    style = torch.full((2, 1, 8000 * 3), 0.5)
    out = cond(wav, sample_rate=8000, style_wav=style, keep=torch.tensor([True, False]))
    assert out.excerpt_span is None
    assert ext.last is not None and ext.last.shape[-1] == 16000  # 1 s resampled 8 kHz -> 16 kHz
    assert torch.allclose(ext.last[..., 100:-100], torch.tensor(0.5), atol=1e-3)
    assert out.condition.mask[0].all() and not out.condition.mask[1].any()
    assert (out.condition.embeddings[1] == 0).all() and out.condition.embeddings[0].abs().sum() > 0
    null = cond.null_condition(3)
    assert null.embeddings.shape == (3, cond.num_tokens(1.0), 12) and not null.mask.any()


def test_bad_inputs_name_argument_and_minimum() -> None:
    cond = _cond(extractor=FrameStats(16000, 320)).eval()
    with pytest.raises(ValueError, match=r"wav .*at least 3 s"):
        cond(torch.randn(1, 1, 16000), sample_rate=16000)
    with pytest.raises(ValueError, match=r"style_wav .*at least 3 s"):
        cond(torch.randn(1, 1, 64000), sample_rate=16000, style_wav=torch.randn(1, 1, 100))
    bad = torch.randn(1, 1, 64000)
    bad[0, 0, 5] = float("nan")
    with pytest.raises(ValueError, match="wav contains NaN"):
        cond(bad, sample_rate=16000)
    with pytest.raises(ValueError, match=r"wav must be .*\[B, C, T\]"):
        cond(torch.randn(64000), sample_rate=16000)
    cond.train()
    with pytest.raises(ValueError, match=r"at least 1.5 s"):
        cond(torch.randn(1, 1, 16000), sample_rate=16000)
    with pytest.raises(ValueError, match="excerpt_start"):
        _cond(excerpt_start="end")


class ForeignModel(nn.Module):
    """A user's plain model: style tokens -> mean pool -> linear regression head."""

    def __init__(self) -> None:
        super().__init__()
        self.style = _cond(
            extractor=MelFeatures(sample_rate=16000, n_mels=16), excerpt_min=0.5, excerpt_max=1.0
        )
        self.head = nn.Linear(12, 1)

    def forward(self, wav: Tensor) -> Tensor:
        cond = self.style(wav, sample_rate=16000).condition
        pooled = cond.embeddings.sum(1) / cond.mask.sum(1, keepdim=True).clamp_min(1)
        return self.head(pooled).squeeze(-1)


def test_foreign_model_trains_and_gradients_reach_transformer() -> None:
    model = ForeignModel()
    wav = _music(4, 1.5, 16000)
    target = torch.linspace(-1, 1, 4)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-2)
    before = [p.detach().clone() for p in model.style.encoder.parameters()]
    for _ in range(20):
        opt.zero_grad()
        loss = F.mse_loss(model(wav), target)
        loss.backward()
        grads = [p.grad for p in model.style.encoder.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
        opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.style.encoder.parameters()))


def test_frozen_extractor_not_in_state_dict_or_optimizer(tmp_path: Path) -> None:
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
        conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    HubertModel(cfg).save_pretrained(tmp_path)
    ext = HFAudioEncoderFeatures(
        model_name_or_path=str(tmp_path), sample_rate=16000, frame_rate=800.0, dim=16, local_files_only=True
    )
    cond = _cond(extractor=ext, excerpt_length=0.1, ds_factor=20)
    cond.configure_model()
    assert ext.model is not None
    assert not any(k.startswith("extractor.") for k in cond.state_dict())
    trainable = {id(p) for p in cond.parameters() if p.requires_grad}
    assert not any(id(p) in trainable for p in ext.parameters())
    cond.train()
    assert not ext.model.training and cond.encoder.training
    out = cond.eval()(torch.randn(1, 1, 4000) * 0.1, sample_rate=16000)
    assert out.condition.embeddings.shape == (1, cond.num_tokens(0.1), 12)
    fresh = _cond(extractor=HFAudioEncoderFeatures(model_name_or_path=str(tmp_path), sample_rate=16000,
                                                   frame_rate=800.0, dim=16, local_files_only=True),
                  excerpt_length=0.1, ds_factor=20)  # fmt: skip
    fresh.load_state_dict(cond.state_dict())
