"""MelCodec reconstruction error vs codebooks / token budget, against noise and mean-frame baselines.

Fits on SynthStyles clips, evaluates on held-out clips plus sines, chords and noise bursts.
Errors are on log-mel frames (natural log of mel power, floor 1e-5): mean absolute error in dB,
and spectral convergence ||M - M'||_F / ||M||_F of the mel magnitude (averaged over clips).
"quantized" compares the codebook reconstruction of the frames; "round-trip" re-analyses the decoded
waveform (mel inversion + Griffin-Lim). Timings are process CPU time.

Run: ``.venv/bin/python benchmarks/bench_mel_codec.py [--train-clips 64] [--threads 2]``
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import Tensor

from datamodules.synth import SynthStyles
from stylecond.codecs.mel_codec import MelCodec

DB = 10.0 / math.log(10.0)  # natural-log power -> dB


def test_signals(sr: int, seconds: float) -> list[Tensor]:
    """Sines, a chord, a chirp and noise bursts (each ``[1, T]``)."""
    n = int(sr * seconds)
    t = torch.arange(n) / sr
    g = torch.Generator().manual_seed(123)
    chord = torch.stack([torch.sin(2 * math.pi * f * t) for f in (261.6, 329.6, 392.0)]).mean(0)
    burst = torch.zeros(n)
    for start in range(0, n, sr // 2):
        burst[start : start + sr // 10] = 0.4 * torch.randn(min(sr // 10, n - start), generator=g)
    chirp = torch.sin(2 * math.pi * (100 * t + 900 * t**2 / seconds))
    return [0.5 * torch.sin(2 * math.pi * 440 * t)[None], 0.5 * chord[None], burst[None], 0.4 * chirp[None]]


def errors(codec: MelCodec, ref: Tensor, est: Tensor) -> tuple[float, float]:
    """(MAE dB, spectral convergence) between log-mel frames ``[B, F, M]``."""
    mae = (est - ref).abs().mean().item() * DB
    a, b = (ref / 2).exp(), (est / 2).exp()  # mel magnitudes
    sc = ((a - b).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)).mean().item()  # mean over items
    return mae, sc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-clips", type=int, default=64, help="5 s SynthStyles clips to fit on")
    ap.add_argument("--test-clips", type=int, default=16, help="held-out 5 s clips")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--griffin-lim-iters", type=int, nargs="+", default=[32])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sr = 16000
    synth = SynthStyles(sample_rate=sr, seed=0)
    train = [c.audio for c in synth.clips(args.train_clips, seconds=5.0, seed=0)]
    test = [c.audio for c in synth.clips(args.test_clips, seconds=5.0, seed=1)] + test_signals(sr, 5.0)
    x = torch.stack(test)  # [B, 1, T]
    print(f"fit: {len(train)} x 5 s clips ({len(train) * 250} frames); test: {x.shape[0]} x 5 s held out")

    rows: list[tuple[str, float, float, float, float | None, float | None]] = []
    base = MelCodec(num_codebooks=1, codebook_size=2)
    ref = base.features(x)
    rms = x.pow(2).mean(-1, keepdim=True).sqrt()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)) * rms
    rows.append(
        ("baseline: white noise, same RMS", 0.0, *errors(base, ref, base.features(noise)), None, None)
    )
    mean_frame = ref.mean(dim=(0, 1), keepdim=True).expand_as(ref)
    rows.append(("baseline: mean frame (0 codebooks)", 0.0, *errors(base, ref, mean_frame), None, None))

    for card, max_k in ((1024, 8), (2048, 4)):
        codec = MelCodec(num_codebooks=max_k, codebook_size=card, griffin_lim_iters=args.griffin_lim_iters[0])
        t0 = time.process_time()
        codec.fit(train)
        fit_s = time.process_time() - t0
        print(f"fit {max_k} x {card}: {fit_s:.1f} s CPU")
        ks = [1, 2, 3, 4, 8] if card == 1024 else [4]
        for k in ks:
            if k > max_k:
                continue
            codes = codec.encode(x, num_codebooks=k)
            q = codec.decode_features(codes)
            mae_q, sc_q = errors(codec, ref, q)
            wav = codec.decode(codes)
            mae_rt, sc_rt = errors(codec, ref, codec.features(wav)[:, : ref.shape[1]])
            bps = k * math.log2(card) * codec.frame_rate
            rows.append((f"MelCodec {k} x {card}", bps, mae_q, sc_q, mae_rt, sc_rt))
        if card == 1024:
            # vocoder ceiling: unquantized mel -> inversion + Griffin-Lim -> mel
            for iters in args.griffin_lim_iters:
                codec.config["griffin_lim_iters"] = iters
                mag = codec.mel_to_magnitude(ref)
                mag = torch.cat([mag, mag[..., -1:]], dim=-1)
                wav = codec.griffin_lim(mag, ref.shape[1] * codec.hop_length)[:, None]
                mae_v, sc_v = errors(codec, ref, codec.features(wav))
                rows.append(
                    (f"no quantization, GL {iters} it (vocoder floor)", math.inf, 0.0, 0.0, mae_v, sc_v)
                )
            codec.config["griffin_lim_iters"] = args.griffin_lim_iters[0]
            ten = torch.cat(test[:2], dim=-1)[None]
            t0 = time.process_time()
            codes = codec.encode(ten, num_codebooks=4)
            enc_s = time.process_time() - t0
            t0 = time.process_time()
            mag = codec.mel_to_magnitude(codec.decode_features(codes))
            inv_s = time.process_time() - t0
            t0 = time.process_time()
            codec.decode(codes)
            dec_s = time.process_time() - t0
            print(
                f"10 s audio, CPU time: encode {enc_s:.3f} s, decode to magnitude {inv_s:.3f} s, "
                f"full decode with {codec.config['griffin_lim_iters']} Griffin-Lim iterations {dec_s:.3f} s"
            )

    print("\n| setting | bits/s | quantized MAE dB | quantized SC | round-trip MAE dB | round-trip SC |")
    print("|---|---|---|---|---|---|")
    for name, bps, mq, sq, mr, sr_ in rows:
        bits = "-" if bps in (0.0, math.inf) else f"{bps:.0f}"
        rt = "-" if mr is None else f"{mr:.2f}"
        rs = "-" if sr_ is None else f"{sr_:.3f}"
        qm = "-" if name.startswith("no quant") else f"{mq:.2f}"
        qs = "-" if name.startswith("no quant") else f"{sq:.3f}"
        print(f"| {name} | {bits} | {qm} | {qs} | {rt} | {rs} |")
    print(
        "EnCodec-shaped budgets: 32 kHz model 4 x 2048 @ 50 Hz = 2200 bit/s; 24 kHz model at 1.5 kbps = 1500 bit/s"
    )


if __name__ == "__main__":
    main()
