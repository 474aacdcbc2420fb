from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
from torch import Tensor

from stylecond.inversion.module import TextualInversionModule
from stylecond.models.style_musicgen import StyleMusicGen


def small(model: StyleMusicGen, **kwargs: object) -> TextualInversionModule:
    args: dict = dict(model=model, steps=8, chunk_seconds=0.5, batch_size=2, learning_rate=0.1)
    args.update(kwargs)
    return TextualInversionModule(**args)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "prefix"}, "mode"),
        ({"num_tokens": 0}, "num_tokens"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"chunk_seconds": 0.0}, "chunk_seconds"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"token": "my style"}, "token"),
        ({"mode": "token_embedding", "prompt": "solo piano"}, "prompt"),
        ({"early_stop_patience": 0}, "early_stop_patience"),
    ],
)
def test_bad_arguments_name_the_argument(model: StyleMusicGen, kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        small(model, **kwargs)


def test_bad_reference_audio(model: StyleMusicGen) -> None:
    ti = small(model)
    with pytest.raises(ValueError, match="audio"):
        ti.fit([])
    with pytest.raises(ValueError, match=r"audio\[0\]"):
        ti.fit([torch.zeros(1, 2, 3)])
    with pytest.raises(ValueError, match=r"audio\[1\]"):
        ti.fit([torch.zeros(1, 800), torch.full((1, 800), float("nan"))])


def test_lm_space_trains_only_the_vectors(model: StyleMusicGen, synth_audio: list[Tensor]) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ti = small(model, steps=12)
    history = ti.fit(synth_audio[:2])
    assert len(history) == 12 and all(torch.isfinite(torch.tensor(history)))
    assert ti.vectors.abs().sum() > 0  # moved away from the zero init
    assert [n for n, p in ti.named_parameters() if p.requires_grad] == ["vectors"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert list(ti.state_dict()) == ["vectors"]  # the base model stays out of checkpoints
    ti.train()
    assert not model.training and not model.lm.training


def test_lm_space_init_word_is_projected_encoding(model: StyleMusicGen) -> None:
    ti = small(model, init_word="techno", num_tokens=2).prepare()
    enc = model.text_conditioner(["techno"])
    expected = enc.embeddings[0][enc.mask[0]].mean(0)
    assert torch.allclose(ti.vectors[0], expected, atol=1e-6) and torch.allclose(
        ti.vectors[1], expected, atol=1e-6
    )


def test_token_embedding_trains_only_the_new_rows(model: StyleMusicGen, synth_audio: list[Tensor]) -> None:
    table = model.text_conditioner.input_embeddings()
    old_rows = table.weight.detach().clone()
    ti = small(model, mode="token_embedding", num_tokens=2, token="<zz-style>", init_word="music")
    ti.fit(synth_audio[:2])
    ids = ti.token_ids
    assert ti.subtokens == ["<zz-style>", "<zz-style-1>"] and len(ids) == 2
    new_table = model.text_conditioner.input_embeddings().weight
    assert torch.equal(new_table[: old_rows.shape[0]], old_rows)  # every pre-existing row untouched
    assert torch.allclose(new_table[ids], ti.vectors.detach())  # learned rows installed in the table
    music = model.text_conditioner.tokenizer("music", add_special_tokens=False)["input_ids"]
    assert not torch.allclose(ti.vectors.detach()[0], old_rows[music].mean(0))  # trained away from init
    # the pseudo-word works inside any prompt and changes the encoding
    tok = model.text_conditioner.tokenizer.tokenize("<zz-style> <zz-style-1> with a solo piano")
    assert tok[:2] == ["<zz-style>", "<zz-style-1>"]
    a = model.text_conditioner(["<zz-style> <zz-style-1> with a solo piano"]).embeddings
    b = model.text_conditioner(["with a solo piano"]).embeddings
    assert a.shape[1] == b.shape[1] + 2


def test_token_already_in_vocabulary_is_refused(model: StyleMusicGen) -> None:
    with pytest.raises(ValueError, match="already a word"):
        small(model, mode="token_embedding", token="piano").prepare()


def test_early_stop_on_plateau(model: StyleMusicGen, synth_audio: list[Tensor]) -> None:
    ti = small(model, steps=200, learning_rate=1e-9, early_stop_patience=5, early_stop_min_delta=1.0)
    history = ti.fit(synth_audio[:1])
    assert len(history) < 200


def test_lightning_trainer_path(model: StyleMusicGen, synth_audio: list[Tensor]) -> None:
    ti = small(model, mode="lm_space")
    with pytest.raises(ValueError, match="set_references"):
        ti.train_dataloader()
    ti.set_references(synth_audio[:2])
    trainer = L.Trainer(
        max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(ti)
    assert len(ti.loss_history) == 4 and ti.vectors.abs().sum() > 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lm_space", "token_embedding"])
def test_inversion_is_style_specific(trained: Any, mode: str) -> None:
    """Inverting techno references lowers held-out techno cross-entropy more than held-out ambient's."""
    ti = TextualInversionModule(
        model=trained.fresh(),
        mode=mode,
        init_word="music",
        steps=100,
        learning_rate=3e-2,
        chunk_seconds=1.0,
        batch_size=5,
    ).prepare()
    before = {s: ti.reference_loss(trained.held_out[s]) for s in ("techno", "ambient")}
    ti.fit(trained.refs["techno"])
    after = {s: ti.reference_loss(trained.held_out[s]) for s in ("techno", "ambient")}
    drop = {s: before[s] - after[s] for s in before}
    assert drop["techno"] > 0, (before, after)
    assert drop["techno"] > drop["ambient"] + 0.02, (before, after)
