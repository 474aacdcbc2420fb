"""The style bottleneck's RVQ against its reference implementation, vector-quantize-pytorch's ResidualVQ.

Same sizes as MusicGen-Style's bottleneck (6 codebooks x 1024 entries, dim 512), a batch of style
excerpts at feature rate (default 16 x 3 s at 75 Hz = 3600 vectors). Times a training call (search,
EMA update, dead-code replacement) and an eval call at eval_q 3, after warm-up, median of repeats.

Run: ``.venv/bin/python benchmarks/bench_rvq.py [--vectors 3600] [--threads 2] [--repeats 10]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from vector_quantize_pytorch import ResidualVQ

from stylecond.quantization import RVQBottleneck


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=3600)
    ap.add_argument("--codebooks", type=int, default=6)
    ap.add_argument("--codebook-size", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    q, n, d = args.codebooks, args.codebook_size, args.dim
    x = torch.randn(1, args.vectors, d)
    ours = RVQBottleneck(dim=d, num_codebooks=q, codebook_size=n, quantize_dropout=False)
    ref = ResidualVQ(dim=d, num_quantizers=q, codebook_size=n, decay=0.99, kmeans_init=True,
                     threshold_ema_dead_code=0.1, commitment_weight=0.0, rotation_trick=False,
                     quantize_dropout=True)  # fmt: skip
    ours(x), ref(x)  # k-means initialisation
    rows = []
    with torch.no_grad():
        rows.append(("train, all codebooks", median_ms(lambda: ours(x), args.repeats),
                     median_ms(lambda: ref(x), args.repeats)))  # fmt: skip
        ours.eval(), ref.eval()
        rows.append(("eval, eval_q 3", median_ms(lambda: ours(x, n_q=3), args.repeats),
                     median_ms(lambda: ref(x)[1][..., :3], args.repeats)))  # fmt: skip
    print(f"RVQ {q} x {n}, dim {d}, {args.vectors} vectors, {args.threads} threads")
    print("| call | ours (ms) | vector-quantize-pytorch (ms) | reference / ours |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
