from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from datamodules.batch import AudioBatch
from datamodules.webdataset_audio import WebDatasetAudioDataModule

SR = 16000


def dm(**kw: Any) -> WebDatasetAudioDataModule:
    args: dict[str, Any] = dict(sample_rate=SR, segment_seconds=1.0, batch_size=2, num_workers=0,
                                samples_per_epoch=8, shuffle_buffer=4, min_length_ratio=0.0)  # fmt: skip
    args.update(kw)
    return WebDatasetAudioDataModule(**args)


def collect(loader: Any) -> list[AudioBatch]:
    return list(loader)


def test_round_trip_validation_reads_every_sample_once(make_shards: Any, kit: Any) -> None:
    pattern = make_shards(3, 3)
    module = dm(val_shards=pattern, batch_size=4)
    for _ in range(2):  # two epochs: same complete, deterministic pass
        batches = collect(module.val_dataloader())
        keys = [k for b in batches for k in b.keys]
        assert sorted(keys) == sorted(f"k{s}_{i}" for s in range(3) for i in range(3))
        assert [len(b) for b in batches] == [4, 4, 1]
        for b in batches:
            assert b.audio is not None and b.audio.shape[1:] == (1, SR) and b.audio_mask is not None
            assert b.audio_mask.all()
            for key, text, wav in zip(b.keys, b.texts, b.audio):
                assert text == f"text of {key}"
                s, i = (int(x) for x in key[1:].split("_"))
                ref = torch.from_numpy(kit.tone(1.0, 200.0 + 50 * (s * 3 + i))[:, 0])
                assert torch.allclose(wav[0], ref, atol=1e-4)  # 16-bit FLAC round trip


def test_two_ranks_disjoint_validation_and_equal_training_batches(make_shards: Any, monkeypatch: Any) -> None:
    pattern = make_shards(4, 2)
    seen, train_counts = [], []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        module = dm(train_shards=pattern, val_shards=pattern, batch_size=4, samples_per_epoch=12)
        batches = collect(module.val_dataloader())
        seen.append({k for b in batches for k in b.keys})
        train = collect(module.train_dataloader())
        assert all(len(b) == 2 for b in train)  # global batch 4 / 2 ranks
        train_counts.append(len(train))
    assert seen[0].isdisjoint(seen[1])
    assert len(seen[0] | seen[1]) == 8
    assert train_counts == [3, 3]  # 12 samples / global batch 4 on every rank


def test_batch_size_must_divide_world_size(make_shards: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    module = dm(train_shards=make_shards(1, 2), batch_size=4)
    with pytest.raises(ValueError, match=r"batch_size=4.*world size 3"):
        module.train_dataloader()


def test_bad_samples_skipped_and_counted(tmp_path: Path, kit: Any, caplog: Any) -> None:
    good = {f"g{i}": kit.sample(f"g{i}") for i in range(3)}
    bad = {
        "corrupt": {"flac": b"not a flac file at all" * 10, "json": b'{"text": "x"}'},
        "nojson": {"flac": kit.audio_bytes(kit.tone(1.0))},
        "nan": {
            "wav": kit.audio_bytes(np.full((800, 1), np.nan, np.float32), fmt="WAV", subtype="FLOAT"),
            "json": b'{"text": "x"}',
        },  # fmt: skip
        "badjson": {"flac": kit.audio_bytes(kit.tone(1.0)), "json": b"{oops"},
    }
    url = kit.write_tar(tmp_path / "mixed.tar", {**dict(list(good.items())[:2]), **bad, "g2": good["g2"]})
    module = dm(val_shards=url, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="datamodules.skips"):
        keys = [k for b in collect(module.val_dataloader()) for k in b.keys]
    assert sorted(keys) == ["g0", "g1", "g2"]
    assert module.skip_counts() == {"bad_audio": 1, "missing_json": 1, "nonfinite_audio": 1, "bad_json": 1}
    assert module.skip_counts("val") == module.skip_counts() and module.skip_counts("train") == {}
    assert any("mixed.tar" in r.getMessage() and "'corrupt'" in r.getMessage() for r in caplog.records)


def test_truncated_shard_is_counted_not_fatal(tmp_path: Path, kit: Any) -> None:
    url = kit.write_tar(tmp_path / "t.tar", {f"g{i}": kit.sample(f"g{i}") for i in range(3)})
    data = Path(url).read_bytes()
    Path(url).write_bytes(data[: len(data) // 2])
    module = dm(val_shards=[url, str(tmp_path / "missing.tar")], batch_size=2)
    keys = [k for b in collect(module.val_dataloader()) for k in b.keys]
    assert 1 <= len(keys) < 3
    assert module.skip_counts()["shard_error"] >= 2


def test_short_clips_are_padded_and_masked(tmp_path: Path, kit: Any) -> None:
    url = kit.write_tar(tmp_path / "short.tar", {"short": kit.sample("short", seconds=0.25)})
    batch = collect(dm(val_shards=url).val_dataloader())[0]
    assert batch.audio is not None and batch.audio_mask is not None
    assert batch.audio.shape == (1, 1, SR)
    assert int(batch.audio_mask.sum()) == SR // 4
    assert batch.audio[0, 0, SR // 4 :].abs().max() == 0
    module = dm(val_shards=url, min_length_ratio=0.5)
    assert collect(module.val_dataloader()) == [] and module.skip_counts() == {"too_short": 1}


def test_paired_style_audio_used_when_present(tmp_path: Path, kit: Any) -> None:
    paired = kit.sample("paired")
    paired["style.wav"] = kit.audio_bytes(kit.tone(0.5, 1000.0), fmt="WAV")
    url = kit.write_tar(tmp_path / "style.tar", {"paired": paired, "plain": kit.sample("plain")})
    batch = collect(dm(val_shards=url, style_seconds=0.5).val_dataloader())[0]
    assert batch.keys == ["paired", "plain"]
    assert batch.has_style is not None and batch.has_style.tolist() == [True, False]
    assert batch.style_audio is not None and batch.style_audio.shape == (2, 1, SR // 2)
    ref = torch.from_numpy(kit.tone(0.5, 1000.0)[:, 0])
    assert torch.allclose(batch.style_audio[0, 0], ref, atol=1e-4)
    assert batch.style_audio[1].abs().max() == 0
    assert batch.style_mask is not None and batch.style_mask[0].all() and not batch.style_mask[1].any()
    off = collect(dm(val_shards=url, style_seconds=0.5, use_paired_style=False).val_dataloader())[0]
    assert off.has_style is not None and not off.has_style.any()


def test_pretokenized_codes_match_on_the_fly_encoding(tmp_path: Path, tiny_codec: Any) -> None:
    from datamodules.shard_writer import ShardWriter, WriterOptions
    from datamodules.track_catalog import synth_items

    opts = WriterOptions(codec="tiny:x", synth_seconds=1.0)
    ShardWriter(out_dir=tmp_path, options=opts, shard_size=2).run(synth_items(3))
    meta = json.loads((tmp_path / "index.json").read_text())
    assert meta["complete"] and meta["total_samples"] == 3
    codec_args = dict(use_codes=True, codec_frame_rate=50.0, codec_num_codebooks=2, codec_cardinality=16,
                      codec_id="tiny-test-codec")  # fmt: skip
    pattern = str(tmp_path / "shard-{000000..000001}.tar")
    val = collect(dm(val_shards=pattern, **codec_args).val_dataloader())
    assert sum(len(b) for b in val) == 3
    for b in val:
        assert b.codes is not None and b.codes.shape == (len(b), 2, 50) and b.frame_rate == 50.0
        assert torch.equal(tiny_codec.encode(b.audio), b.codes)
    # random training crops: codes and audio stay aligned (crop in frames, audio offset derived)
    train = dm(train_shards=pattern, segment_seconds=0.3, samples_per_epoch=6, **codec_args)
    for b in collect(train.train_dataloader()):
        assert b.codes is not None and b.codes.shape[-1] == 15
        assert torch.equal(tiny_codec.encode(b.audio), b.codes)
    only_codes = collect(dm(val_shards=pattern, decode_audio=False, **codec_args).val_dataloader())
    assert only_codes[0].audio is None and only_codes[0].codes is not None
    wrong = dm(val_shards=pattern, **{**codec_args, "codec_id": "other", "codec_num_codebooks": 2})
    assert collect(wrong.val_dataloader()) == [] and wrong.skip_counts() == {"codec_mismatch": 3}


@pytest.mark.slow
def test_make_shards_pretokenize_with_mel_codec(tmp_path: Path) -> None:
    from datamodules.synth import SynthStyles
    from stylecond.cli import main
    from stylecond.codecs.mel_codec import MelCodec

    codec = MelCodec(codebook_size=8, num_codebooks=2, kmeans_iters=2)
    codec.fit(c.audio for c in SynthStyles(sample_rate=SR).clips(2, seconds=0.5))
    codec.save(tmp_path / "codec")
    with pytest.raises(SystemExit) as done:
        main(["make-shards", "--synth", "3", "--seconds", "0.5", "--out", str(tmp_path / "tok"), "--pretokenize",
              "--codec", f"mel:{tmp_path / 'codec'}"])  # fmt: skip
    assert done.value.code == 0
    loaded = MelCodec.load(tmp_path / "codec")
    module = dm(val_shards=str(tmp_path / "tok" / "shard-000000.tar"), segment_seconds=0.5, batch_size=4, use_codes=True,
                codec_frame_rate=loaded.frame_rate, codec_num_codebooks=2, codec_cardinality=8,
                codec_id=loaded.codec_id)  # fmt: skip
    (batch,) = collect(module.val_dataloader())
    assert batch.codes is not None and batch.codes.shape == (3, 2, 25) and len(batch) == 3
    assert torch.equal(loaded.encode(batch.audio), batch.codes)


def test_training_epochs_are_reseeded_and_reproducible(make_shards: Any) -> None:
    pattern = make_shards(2, 3, seconds=2.0)
    module = dm(train_shards=pattern, samples_per_epoch=6)
    loader = module.train_dataloader()
    epochs = [[(tuple(b.keys), b.audio.sum().item()) for b in loader] for _ in range(2)]  # type: ignore[union-attr]
    assert epochs[0] != epochs[1]
    again = dm(train_shards=pattern, samples_per_epoch=6).train_dataloader()
    assert [(tuple(b.keys), b.audio.sum().item()) for b in again] == epochs[0]  # type: ignore[union-attr]


@pytest.mark.slow
def test_two_workers_with_trainer_and_skip_logger(tmp_path: Path, make_shards: Any, kit: Any) -> None:
    import lightning as L

    from datamodules.skip_logger import DataSkipLogger

    pattern = make_shards(2, 3)
    bad = kit.write_tar(tmp_path / "bad.tar", {"nojson": {"flac": kit.audio_bytes(kit.tone(1.0))},
                                               "ok": kit.sample("ok")})  # fmt: skip
    module = dm(
        train_shards=pattern, val_shards=[*pattern_list(pattern), bad], num_workers=2, samples_per_epoch=4
    )

    class Probe(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.val_keys: list[str] = []

        def training_step(self, batch: AudioBatch, batch_idx: int) -> torch.Tensor:
            assert batch.audio is not None
            return (batch.audio.mean() * self.w).sum() + self.w.pow(2).sum()

        def validation_step(self, batch: AudioBatch, batch_idx: int) -> None:
            self.val_keys += batch.keys

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    probe = Probe()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, callbacks=[DataSkipLogger()])  # fmt: skip
    trainer.fit(probe, datamodule=module)
    assert trainer.num_training_batches == 2
    assert sorted(probe.val_keys) == sorted([*(f"k{s}_{i}" for s in range(2) for i in range(3)), "ok"])
    assert module.skip_counts("val") == {"missing_json": 1}
    assert trainer.callback_metrics["data/skipped/val/missing_json"] == 1
    assert trainer.callback_metrics["data/skipped/val/total"] == 1


def pattern_list(pattern: str) -> list[str]:
    from datamodules.webdataset_audio import expand_shards

    return expand_shards(pattern, name="test")
