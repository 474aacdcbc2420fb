"""Time to first audio of streaming generation: the conditioning prefix, the decoding steps of the first
chunk and its codec decode (``stream_codes`` + ``ChunkedDecoder``, as ``generate_stream`` runs them), on a
random EnCodec with ``facebook/encodec_32khz``'s architecture. Used by ``bench_generate.py --ttfa``."""

from __future__ import annotations

import time

import torch

from stylecond.conditioners.types import ConditionTensors
from stylecond.generation.sampler import DoubleCFGSampler
from stylecond.lm.music_lm import MusicLM


def encodec_32khz_shaped(folder: str) -> object:
    """A random-initialised EnCodec with ``facebook/encodec_32khz``'s architecture (no download), saved to
    ``folder`` and loaded through ``EncodecCodec``: the decoder streaming generation runs."""
    from transformers import EncodecConfig, EncodecModel

    from stylecond.codecs.encodec import EncodecCodec

    config = EncodecConfig(
        sampling_rate=32000, audio_channels=1, num_filters=64, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048,
        hidden_size=128, num_lstm_layers=2, norm_type="weight_norm", use_causal_conv=False, pad_mode="reflect",
        target_bandwidths=[2.2], normalize=False, compress=2, num_residual_layers=1,
    )  # fmt: skip
    EncodecModel(config).save_pretrained(folder)
    return EncodecCodec(model_name_or_path=folder, local_files_only=True)


@torch.inference_mode()
def time_to_first_audio(
    lm: MusicLM, codec: object, batch: int, *, text_tokens: int, style_tokens: int, chunk_seconds: float = 1.0
) -> float:
    """Seconds from the call to the first audio piece of a streamed double-CFG generation (conditioning
    prefix, the first chunk's decoding steps and its codec decode); best of 2."""
    from stylecond.generation.generate import stream_codes
    from stylecond.models.streaming import ChunkedDecoder

    device = next(lm.parameters()).device
    g = torch.Generator(device=device).manual_seed(0)
    conditions = {
        name: ConditionTensors(
            torch.randn(batch, n, lm.dim, generator=g), torch.ones(batch, n, dtype=torch.bool)
        )
        for name, n in (("text", text_tokens), ("style", style_tokens))
    }
    chunk = round(chunk_seconds * float(codec.frame_rate))  # type: ignore[attr-defined]
    best = float("inf")
    for _ in range(2):
        decoder = ChunkedDecoder.for_codec(codec)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        for codes in stream_codes(lm, conditions=conditions, sampler=DoubleCFGSampler(), num_frames=2 * chunk,
                                  chunk_frames=chunk, generator=g):  # fmt: skip
            if decoder.push(codes).shape[-1]:
                break
        best = min(best, time.perf_counter() - t0)
    return best
