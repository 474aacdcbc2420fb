"""HFTextConditioner with tiny random BERT and T5 encoders saved to disk and loaded back by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer, T5Config, T5Model

from stylecond.conditioners.text import HFTextConditioner

WORDS = [
    "a",
    "calm",
    "piano",
    "jazz",
    "rock",
    "with",
    "drums",
    "and",
    "guitar",
    "loud",
    "soft",
    "fast",
    "slow",
]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
DIM = 32


def _tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny_bert")
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full encoder-decoder T5 checkpoint: the conditioner must load its encoder only."""
    path = tmp_path_factory.mktemp("tiny_t5")
    config = T5Config(
        vocab_size=len(VOCAB) + 8,
        d_model=DIM,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
    )
    T5Model(config).save_pretrained(path)
    _tokenizer().save_pretrained(path)
    return path


def _make(path: Path, **kwargs: object) -> HFTextConditioner:
    args: dict[str, object] = {"encoder_dim": DIM, "output_dim": 16, "local_files_only": True, **kwargs}
    return HFTextConditioner(model_name_or_path=str(path), **args)  # type: ignore[arg-type]


def test_constructor_does_not_load(tmp_path: Path) -> None:
    cond = _make(tmp_path / "does-not-exist")
    assert not cond.is_loaded and cond.encoder is None
    assert set(cond.state_dict()) == {"proj.weight", "proj.bias"}
    with pytest.raises(OSError):
        cond.load()


@pytest.mark.parametrize("which", ["bert", "t5"])
def test_shapes_mask_and_null_rows(which: str, bert_dir: Path, t5_dir: Path) -> None:
    path = bert_dir if which == "bert" else t5_dir
    cond = _make(path).eval()
    out = cond(["calm piano", None, "loud rock with drums and guitar", ""])
    assert cond.is_loaded
    if which == "t5":
        assert type(cond.encoder).__name__ == "T5EncoderModel"
    b, s, d = out.embeddings.shape
    assert (b, d) == (4, 16)
    n_long = len(cond.tokenizer("loud rock with drums and guitar")["input_ids"])  # type: ignore[misc]
    assert s == n_long
    assert out.mask[0].sum() == len(cond.tokenizer("calm piano")["input_ids"])  # type: ignore[misc]
    assert out.mask[2].all()
    for null in (1, 3):
        assert not out.mask[null].any()
        assert torch.count_nonzero(out.embeddings[null]) == 0
    # padding positions of a real caption are zero too
    assert torch.count_nonzero(out.embeddings[0][~out.mask[0]]) == 0
    assert torch.count_nonzero(out.embeddings[0][out.mask[0]]) > 0
    assert not torch.allclose(out.embeddings[0, 1], out.embeddings[2, 1])


def test_all_null_batch(bert_dir: Path) -> None:
    out = _make(bert_dir).eval()([None, "   "])
    assert out.embeddings.shape == (2, 1, 16) and not out.mask.any()
    assert torch.count_nonzero(out.embeddings) == 0


def test_max_length_truncates(bert_dir: Path) -> None:
    cond = _make(bert_dir, max_length=4).eval()
    out = cond([" ".join(WORDS)])
    assert out.embeddings.shape[1] == 4 and out.mask.all()


def test_state_dict_holds_projection_only_and_reloads(bert_dir: Path) -> None:
    cond = _make(bert_dir).eval()
    ref = cond(["calm piano"])
    state = cond.state_dict()
    assert set(state) == {"proj.weight", "proj.bias"}
    fresh = _make(bert_dir).eval()
    fresh.load_state_dict(state, strict=True)
    assert not fresh.is_loaded
    torch.testing.assert_close(fresh(["calm piano"]).embeddings, ref.embeddings)


def test_encoder_frozen_in_eval_and_gets_no_grads(bert_dir: Path) -> None:
    cond = _make(bert_dir, word_dropout=0.0)
    cond.load()
    cond.train()
    assert cond.training and cond.encoder is not None and not cond.encoder.training
    out = cond(["calm piano", "jazz song"])
    out.embeddings.sum().backward()
    assert cond.proj.weight.grad is not None and cond.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in cond.encoder.parameters())
    assert all(p.requires_grad for p in cond.parameters() if p is cond.proj.weight or p is cond.proj.bias)


def test_word_dropout_only_in_training(bert_dir: Path) -> None:
    cond = _make(bert_dir, word_dropout=0.5)
    text = "calm piano jazz rock with drums and guitar loud soft"
    tokenizer = cond.load().tokenizer
    assert tokenizer is not None
    n_full = len(tokenizer(text)["input_ids"])
    cond.eval()
    assert all(cond([text]).mask.sum() == n_full for _ in range(3))
    cond.train()
    g = torch.Generator().manual_seed(1)
    lengths = [int(cond([text], generator=g).mask.sum()) for _ in range(5)]
    assert all(n < n_full for n in lengths)
    # the same generator seed repeats the same dropout
    again = cond([text], generator=torch.Generator().manual_seed(1))
    first = cond([text], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again.embeddings, first.embeddings)


def test_encoder_dim_mismatch_is_a_clear_error(bert_dir: Path) -> None:
    cond = _make(bert_dir, encoder_dim=DIM + 1)
    with pytest.raises(ValueError, match=f"encoder_dim={DIM + 1}.*hidden size {DIM}"):
        cond(["calm piano"])


@pytest.mark.parametrize(
    "kwargs",
    [{"encoder_dim": 0}, {"output_dim": 0}, {"max_length": 1}, {"word_dropout": 1.0}, {"word_dropout": -0.1}],
)
def test_bad_arguments(kwargs: dict[str, object], tmp_path: Path) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        _make(tmp_path, **kwargs)


def test_bad_texts(bert_dir: Path) -> None:
    cond = _make(bert_dir).eval()
    with pytest.raises(ValueError, match="texts"):
        cond("calm piano")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        cond(["calm", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one"):
        cond([])


@pytest.mark.parametrize("which", ["bert", "t5"])
def test_add_tokens_for_textual_inversion(which: str, bert_dir: Path, t5_dir: Path) -> None:
    cond = _make(bert_dir if which == "bert" else t5_dir).eval()
    before = cond.input_embeddings().num_embeddings
    ids = cond.add_tokens(["<style>", "<style2>"])
    table = cond.input_embeddings()
    assert len(set(ids)) == 2 and max(ids) < table.num_embeddings
    assert table.num_embeddings >= before and not table.weight.requires_grad
    assert cond.tokenizer is not None
    assert ids[0] in cond.tokenizer("a <style> song")["input_ids"]
    with pytest.raises(ValueError, match="already in the vocabulary"):
        cond.add_tokens(["<style>"])
    # enabling grads on the table lets gradients reach the new row through the frozen encoder
    table.weight.requires_grad_(True)
    cond(["a <style> song"]).embeddings.sum().backward()
    assert table.weight.grad is not None and table.weight.grad[ids[0]].abs().sum() > 0
    assert table.weight.grad[ids[1]].abs().sum() == 0


def test_moves_with_module_and_loads_on_configure_model(bert_dir: Path) -> None:
    cond = _make(bert_dir).to(torch.float64)
    cond.configure_model()
    assert cond.is_loaded
    out = cond.eval()(["calm"])
    assert out.embeddings.dtype == torch.float64


def test_caption_cache_gives_the_encoder_outputs_and_encodes_each_caption_once(bert_dir: Path) -> None:
    plain, cached = _make(bert_dir).eval(), _make(bert_dir, cache_size=2).eval()
    cached.load_state_dict(plain.state_dict())
    calls: list[int] = []
    cached.load()
    assert cached.encoder is not None
    cached.encoder.register_forward_hook(lambda module, args, kwargs_out: calls.append(1))
    texts = ["calm piano", None, "loud rock with drums and guitar", "calm piano"]
    for _ in range(2):  # the second pass is served from the cache
        got, want = cached(texts), plain(texts)
        assert torch.equal(got.mask, want.mask)
        torch.testing.assert_close(got.embeddings, want.embeddings, rtol=1e-5, atol=1e-6)
    assert len(calls) == 1 and len(cached._cache) == 2  # one encoder call for the 2 distinct captions
    cached(["soft strings"])  # the least recently used caption goes ("calm piano" came last in texts)
    assert list(cached._cache) == ["calm piano", "soft strings"]
    # while the encoder trains (textual inversion), the cache is bypassed and gradients flow
    cached.input_embeddings().weight.requires_grad_(True)
    cached(["calm piano"]).embeddings.sum().backward()
    assert cached.input_embeddings().weight.grad is not None and len(calls) == 3
    with pytest.raises(ValueError, match="cache_size"):
        _make(bert_dir, cache_size=-1)
