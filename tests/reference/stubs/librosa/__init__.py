"""Import-only stand-in for librosa (audiocraft reference env only).

audiocraft.modules.chroma does ``from librosa import filters`` at import time and calls ``filters.chroma``
only when a chroma (melody) conditioner is built, which the parity tests never do.
"""

__version__ = "0.0.0+stub"
from . import filters  # noqa: E402,F401
