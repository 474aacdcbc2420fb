"""Import-only stand-in for torchaudio (audiocraft reference env only).

audiocraft imports torchaudio at module level in data/audio_utils.py and modules/chroma.py
(and losses/metrics not used here). Only attribute *access* inside functions happens, and
none of those functions are on the MusicGen-Style model-building / inference path.
"""

__version__ = "0.0.0+stub"
_STUB = True


def _unavailable(name):
    def _f(*args, **kwargs):
        raise RuntimeError(f"torchaudio stub: {name} is not available in the reference env")

    return _f


load = _unavailable("torchaudio.load")
save = _unavailable("torchaudio.save")
info = _unavailable("torchaudio.info")

from . import functional, transforms  # noqa: E402,F401
