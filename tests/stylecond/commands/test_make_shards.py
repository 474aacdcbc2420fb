from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from stylecond.commands import make_shards

SR = 8000


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    make_shards.add_arguments(parser)
    return make_shards.run(parser.parse_args(list(argv)))


def members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_synth_resume_skips_finished_shards(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = (
        "--synth",
        "5",
        "--out",
        str(out),
        "--seconds",
        "0.3",
        "--shard-size",
        "2",
        "--sample-rate",
        "16000",
    )
    assert run(*args) == 0
    shards = sorted(out.glob("shard-*.tar"))
    assert [len(members(p)) for p in shards] == [4, 4, 2]  # flac + json per sample
    index = json.loads((out / "index.json").read_text())
    assert (
        index["complete"]
        and index["total_samples"] == 5
        and [s["samples"] for s in index["shards"]] == [2, 2, 1]
    )
    # simulate a killed run: shard 1 missing, a stale temporary file left behind
    mtimes = {p.name: p.stat().st_mtime_ns for p in shards}
    shards[1].unlink()
    (out / ".shard-000001.tar.tmp999").write_bytes(b"half")
    assert run(*args) == 0
    assert shards[1].exists() and shards[0].stat().st_mtime_ns == mtimes[shards[0].name]
    assert shards[2].stat().st_mtime_ns == mtimes[shards[2].name]
    assert json.loads((out / "index.json").read_text())["total_samples"] == 5
    (out / "index.json").unlink()  # killed before the index was written: shards are counted from the tars
    shards[2].unlink()
    assert run(*args) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["total_samples"] == 5 and abs(index["total_hours"] - 1.5 / 3600) < 1e-9
    assert run("--synth", "6", *args[2:]) == 2  # other inputs into the same folder are refused


def test_killed_shard_leaves_no_partial_file(tmp_path: Path, monkeypatch: Any) -> None:
    from datamodules import shard_writer
    from datamodules.track_catalog import synth_items

    calls = {"n": 0}
    real = shard_writer._encode_sample

    def dying(item: Any, opts: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(item, opts)

    monkeypatch.setattr(shard_writer, "_encode_sample", dying)
    writer = shard_writer.ShardWriter(out_dir=tmp_path, options=shard_writer.WriterOptions(synth_seconds=0.2),
                                      shard_size=3)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        writer.run(synth_items(3))
    assert list(tmp_path.glob("*.tar*")) == [] and list(tmp_path.glob(".*tmp*")) == []


def test_folder_with_captions_segments_and_bad_files(tmp_path: Path, capsys: Any) -> None:
    src = tmp_path / "music"
    (src / "album").mkdir(parents=True)
    t = np.arange(int(2.5 * SR)) / SR
    sf.write(src / "album" / "long.wav", np.sin(2 * np.pi * 300 * t).astype(np.float32), SR)
    sf.write(src / "side.flac", np.zeros((SR, 2), np.float32), SR)
    (src / "side.txt").write_text("sidecar caption\n")
    sf.write(src / "uncaptioned.wav", np.zeros(SR, np.float32), SR)
    (src / "broken.wav").write_bytes(b"RIFF....junk")
    (src / "captions.jsonl").write_text(
        json.dumps({"path": "album/long.wav", "text": "a long tone", "genre": "drone", "metadata": {"bpm": 60}})
        + "\n" + json.dumps({"path": "broken.wav", "text": "broken"}) + "\n"
    )  # fmt: skip
    out = tmp_path / "out"
    code = run("--input", str(src), "--out", str(out), "--segment-seconds", "1", "--min-segment-seconds", "0.5",
               "--channels", "1", "--format", "wav", "--shard-size", "10", "--workers", "2")  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    report = captured.out + captured.err
    assert "skipped: no_caption" in report and "uncaptioned.wav" in report and "skipped: unreadable" in report
    names = members(out / "shard-000000.tar")
    assert names == ["album_long__0000.wav", "album_long__0000.json", "album_long__0001.wav",
                     "album_long__0001.json", "album_long__0002.wav", "album_long__0002.json",
                     "side__0000.wav", "side__0000.json"]  # fmt: skip
    with tarfile.open(out / "shard-000000.tar") as tar:
        meta = json.loads(tar.extractfile("album_long__0002.json").read())  # type: ignore[union-attr]
    assert meta["text"] == "a long tone" and meta["genre"] == "drone" and meta["bpm"] == 60
    assert meta["offset_seconds"] == 2.0 and meta["duration"] == 0.5 and meta["channels"] == 1
    index = json.loads((out / "index.json").read_text())
    assert index["total_samples"] == 4 and abs(index["total_hours"] - 3.5 / 3600) < 1e-9


def test_bad_arguments(tmp_path: Path) -> None:
    assert run("--synth", "2", "--out", str(tmp_path), "--pretokenize") == 2
    assert run("--synth", "2", "--out", str(tmp_path), "--pretokenize", "--codec", "nope:x") == 2
    assert run("--input", str(tmp_path / "missing"), "--out", str(tmp_path)) == 2


def _tone(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.sin(2 * np.pi * 220 * np.arange(int(seconds * SR)) / SR).astype(np.float32), SR)


def test_bad_captions_are_skipped_named_and_counted(tmp_path: Path, capsys: Any) -> None:
    src, out = tmp_path / "music", tmp_path / "out"
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        _tone(src / name)
    (src / "b.txt").write_text("b from its sidecar")
    (src / "d.json").write_text("{not json")
    for i in range(5):  # more unreadable files than a short report would name
        (src / f"broken{i}.wav").write_bytes(b"RIFF....junk")
        (src / f"broken{i}.txt").write_text("captioned but unreadable")
    lines = [json.dumps({"path": "a.wav", "text": "a"}), json.dumps({"path": "b.wav", "text": None}), "{oops",
             json.dumps({"path": "c.wav"})]  # fmt: skip
    (src / "captions.jsonl").write_text("\n".join(lines) + "\n")
    assert run("--input", str(src), "--out", str(out)) == 0
    err = capsys.readouterr().err
    index = json.loads((out / "index.json").read_text())
    skipped = index["skipped"]
    assert [e.split(": ")[0] for e in skipped["bad_caption"]] == [
        f"{src}/captions.jsonl:{n}" for n in (2, 3, 4)
    ] + [f"{src}/d.json"]
    assert skipped["no_caption"] == ["c.wav", "d.wav"]
    assert len(skipped["unreadable"]) == 5
    for names in skipped.values():  # the console names every skipped input that index.json records
        assert [name for name in names if name not in err] == []
    assert index["total_samples"] == 2 and index["complete"]  # a, and b through its sidecar
    with tarfile.open(out / "shard-000000.tar") as tar:
        texts = sorted(
            json.loads(tar.extractfile(m).read())["text"]
            for m in tar.getmembers()
            if m.name.endswith(".json")
        )  # type: ignore[union-attr]
    assert texts == ["a", "b from its sidecar"]

    strict = tmp_path / "strict"
    assert run("--input", str(src), "--out", str(strict), "--strict") == 2
    assert "captions.jsonl:2: field 'text' must be a string" in capsys.readouterr().err
    assert not strict.exists() or not list(strict.iterdir())


@pytest.mark.parametrize(
    ("flags", "named"),
    [(("--seconds", "0"), "--seconds"), (("--seconds", "nan"), "--seconds"), (("--sample-rate", "4000"), "--sample-rate"),
     (("--channels", "0"), "--channels")],
)  # fmt: skip
def test_invalid_flags_fail_before_anything_is_written(
    tmp_path: Path, capsys: Any, flags: tuple[str, str], named: str
) -> None:
    out = tmp_path / "out"
    assert run("--synth", "3", "--out", str(out), *flags) == 2
    assert named in capsys.readouterr().err
    assert not out.exists()


def test_a_run_that_writes_nothing_is_not_complete(tmp_path: Path) -> None:
    src, out = tmp_path / "music", tmp_path / "out"
    src.mkdir()
    (src / "x.wav").write_bytes(b"RIFF....junk")
    (src / "x.txt").write_text("a caption")
    assert run("--input", str(src), "--out", str(out)) != 0
    index = out / "index.json"
    assert not index.exists() or not json.loads(index.read_text())["complete"]
