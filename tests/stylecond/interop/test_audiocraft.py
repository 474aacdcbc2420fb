"""Loading audiocraft releases (layout written by tests/support/tiny_audiocraft.py; parity with audiocraft's
own code is `make test-reference`): what is built from xp.cfg, where the weights land, hub ids with
revisions, and one clear error per bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

from stylecond.interop.audiocraft import read_package
from stylecond.interop.audiocraft_config import UnsupportedAudiocraftModel, XpConfig
from stylecond.models.style_musicgen import StyleMusicGen
from tests.support.tiny_audiocraft import best_state, write_export, xp_config
from tests.support.tiny_hub import tiny_encodec, tiny_mert, tiny_t5


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("parts")
    return {
        "t5": str(tiny_t5(root / "t5")),
        "mert": str(tiny_mert(root / "mert")),
        "encodec": str(tiny_encodec(root / "enc")),
    }


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    cfg = xp_config()
    state = best_state(cfg)
    return write_export(tmp_path_factory.mktemp("release") / "musicgen-style", cfg, state), state


def test_every_part_comes_from_xp_cfg_and_the_weights_land(
    release: tuple[Path, dict[str, torch.Tensor]], parts: dict[str, str]
) -> None:
    path, state = release
    model = StyleMusicGen.from_pretrained(path, **parts)
    sc, lm = model.style_conditioner, model.lm
    assert model.fuser.prefix == ("style", "text") and model.fuser.cross == ()
    assert (lm.num_codebooks, lm.card, lm.dim, len(lm.transformer.layers)) == (2, 32, 64, 2)
    assert not lm.condition_masks  # audiocraft attends to every condition token
    assert (sc.rvq.num_codebooks, sc.rvq.codebook_size, sc.eval_q, sc.ds_factor) == (3, 16, 2, 15)
    assert (sc.excerpt_length, sc.excerpt_start, sc.excerpt_min, sc.excerpt_max) == (3.0, "random", 1.5, 4.5)
    assert len(sc.encoder.layers) == 4 and sc.encoder.layers[0].linear1.out_features == 1024  # xsmall: d 256
    assert (model.sampling.cfg_coef, model.sampling.cfg_coef_beta) == (3.0, None)  # audiocraft's defaults
    drop = model.conditioning_dropout
    assert (drop.p_all, drop.p_text, drop.p_style) == (0.1, 0.4, 0.4)
    assert model.codec.model_name_or_path == parts["encodec"]
    ours = model.state_dict()
    p = "condition_provider.conditioners."
    for mine, theirs in [
        ("lm.heads.1.weight", "linears.1.weight"), ("lm.embeddings.0.weight", "emb.0.weight"),
        ("lm.transformer.layers.1.self_attn.in_proj.weight", "transformer.layers.1.self_attn.in_proj_weight"),
        ("lm.transformer.out_norm.bias", "out_norm.bias"),
        ("text_conditioner.proj.weight", f"{p}description.output_proj.weight"),
        ("style_conditioner.input_proj.bias", f"{p}self_wav.embed.bias"),
        ("style_conditioner.encoder.layers.3.linear2.weight", f"{p}self_wav.transformer.layers.3.linear2.weight"),
        ("style_conditioner.rvq.layers.2.embed", f"{p}self_wav.rvq.vq.layers.2._codebook.embed"),
        ("style_conditioner.batch_norm.running_var", f"{p}self_wav.batch_norm.running_var"),
    ]:  # fmt: skip
        assert torch.equal(ours[mine], state[theirs]), mine


def test_text_musicgen_uses_cross_attention(tmp_path: Path, parts: dict[str, str]) -> None:
    cfg = xp_config(style=False)
    model = StyleMusicGen.from_pretrained(write_export(tmp_path / "small", cfg, best_state(cfg)), **parts)
    assert model.style_conditioner is None and model.fuser.cross == ("text",) and model.lm.has_cross_attention
    wav = model.generate(texts=["calm solo piano"], duration=0.2, seed=0)
    assert wav.shape[:2] == (1, 1)


def test_xp_cfg_interpolations_resolve_on_access() -> None:
    cfg = XpConfig(yaml.safe_dump(xp_config()), source="x")
    style = cfg.get("conditioners.self_wav.style")
    assert style["sample_rate"] == 32000 and style["num_codebooks_lm"] == 2
    bad = XpConfig("user: ${oc.env:USER}\nname: a-${user}", source="x")
    with pytest.raises(ValueError, match="cannot be resolved"):
        bad.get("user")


def test_hub_id_with_revision(audiocraft_hub: Path) -> None:
    assert StyleMusicGen.from_pretrained("facebook/musicgen-style").style_conditioner.eval_q == 2
    model = StyleMusicGen.from_pretrained("facebook/musicgen-style", revision="v1")
    assert model.style_conditioner.eval_q == 1
    assert model.text_conditioner.model_name_or_path == "t5-base"  # its parts load by hub name
    with pytest.raises(FileNotFoundError, match="facebook/musicgen-nope"):
        StyleMusicGen.from_pretrained("facebook/musicgen-nope")


def test_bad_inputs_get_one_clear_error_naming_the_file(
    tmp_path: Path, release: tuple[Path, dict[str, torch.Tensor]], parts: dict[str, str]
) -> None:
    path, state = release
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        StyleMusicGen.from_pretrained(tmp_path)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "state_dict.bin").write_bytes((path / "state_dict.bin").read_bytes())
    with pytest.raises(FileNotFoundError, match="state_dict.bin"):
        StyleMusicGen.from_pretrained(lonely)  # found it, but not compression_state_dict.bin
    truncated = tmp_path / "truncated"
    write_export(truncated, xp_config(), state)
    data = (truncated / "state_dict.bin").read_bytes()
    (truncated / "state_dict.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{truncated / 'state_dict.bin'}.*truncated or corrupt"):
        StyleMusicGen.from_pretrained(truncated, **parts)
    pickled = tmp_path / "pickled"
    write_export(pickled, xp_config(), state)
    torch.save(
        {"best_state": state, "xp.cfg": Path("pickled")}, pickled / "state_dict.bin"
    )  # a Python object
    with pytest.raises(ValueError, match="needs pickle"):
        StyleMusicGen.from_pretrained(pickled, **parts)
    melody = xp_config()
    melody["conditioners"]["self_wav"]["model"] = "chroma_stem"
    with pytest.raises(UnsupportedAudiocraftModel, match="chroma_stem"):
        StyleMusicGen.from_pretrained(write_export(tmp_path / "melody", melody, state), **parts)
    full = write_export(
        tmp_path / "full", xp_config(), state, compression={"best_state": {}, "xp.cfg": "", "exported": True}
    )
    with pytest.raises(UnsupportedAudiocraftModel, match="full audiocraft compression model"):
        StyleMusicGen.from_pretrained(full, **parts)
    extra = {**state, "condition_provider.conditioners.self_wav.mystery": torch.zeros(1)}
    with pytest.raises(UnsupportedAudiocraftModel, match="mystery"):
        StyleMusicGen.from_pretrained(write_export(tmp_path / "extra", xp_config(), extra), **parts)
    with pytest.raises(ValueError, match="t6"):
        StyleMusicGen.from_pretrained(path, t6="x")


def test_parts_apply_to_audiocraft_only(legacy_export_dir: Path) -> None:
    with pytest.raises(ValueError, match="audiocraft releases only"):
        StyleMusicGen.from_pretrained(legacy_export_dir, t5="t5-small")


def test_read_package_refuses_pickle_without_running_it(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("code ran",))

    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps({"best_state": Boom()}))
    with pytest.raises(ValueError, match="evil.bin"):
        read_package(path)
