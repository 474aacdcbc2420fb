"""Stand-in: torchaudio.transforms (only referenced inside non-style code paths)."""


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"torchaudio stub: {type(self).__name__} is not available in the reference env")


class Spectrogram(_Unavailable):
    pass


class MelSpectrogram(_Unavailable):
    pass


class Resample(_Unavailable):
    pass


class Loudness(_Unavailable):
    pass
