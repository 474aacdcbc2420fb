"""Converting an audiocraft release of the released size (MusicGen-Style medium: 1.5B LM) on CPU.

Writes a random-initialised checkpoint in audiocraft's layout (``state_dict.bin`` with the tensor names
and shapes of the released MusicGen-Style: LM d 1536, 24 heads, 48 layers, 4 x 2048; style encoder d 512,
8 layers, RVQ 6 x 1024; ``xp.cfg``) plus a ``compression_state_dict.bin`` pointer, then runs
``stylecond convert`` on it in a child process and reports the wall time and the child's peak resident
memory (``ru_maxrss``) against the checkpoint's size. The target is a peak of at most 1.3x the checkpoint.

Run: ``.venv/bin/python benchmarks/bench_convert.py [--workdir /tmp/bench_convert] [--layers 48] [--keep]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.tiny_audiocraft import best_state, write_export, xp_config  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_convert"))
    ap.add_argument("--layers", type=int, default=48, help="LM layers (48 = the released medium size)")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint and the export")
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    src, out = args.workdir / "musicgen-style-medium", args.workdir / "converted"
    cfg = xp_config(style_scale="default", dim=1536, n_q=4, card=2048, num_layers=args.layers, n_q_out=6,
                    eval_q=3, bins=1024)  # fmt: skip
    cfg["transformer_lm"]["num_heads"] = 24
    t0 = time.perf_counter()
    state = best_state(cfg)
    params = sum(t.numel() for t in state.values())
    write_export(src, cfg, state)
    del state
    size = (src / "state_dict.bin").stat().st_size
    print(
        f"checkpoint: {params / 1e9:.2f} B parameters, {size / 2**30:.2f} GiB, written in {time.perf_counter() - t0:.0f} s"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stylecond", "convert", str(src), str(out)], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
    out_size = (out / "model.safetensors").stat().st_size
    print("| what | value |\n|---|---|")
    print(f"| conversion time | {seconds:.1f} s |")
    print(f"| peak RAM of `stylecond convert` | {peak / 2**30:.2f} GiB |")
    print(f"| checkpoint size | {size / 2**30:.2f} GiB |")
    print(f"| peak / checkpoint | {peak / size:.2f}x (target <= 1.3x) |")
    print(f"| model.safetensors | {out_size / 2**30:.2f} GiB |")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    torch.set_num_threads(2)


if __name__ == "__main__":
    main()
