"""Stand-in: torchaudio.functional.filtering (names imported by audiocraft.losses.loudnessloss)."""


def highpass_biquad(*args, **kwargs):
    raise RuntimeError("torchaudio stub: highpass_biquad is not available in the reference env")


def treble_biquad(*args, **kwargs):
    raise RuntimeError("torchaudio stub: treble_biquad is not available in the reference env")
