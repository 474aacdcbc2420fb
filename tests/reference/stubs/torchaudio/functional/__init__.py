"""Stand-in: torchaudio.functional (imported by audiocraft.losses.loudnessloss via solvers)."""

from . import filtering  # noqa: F401
from .filtering import highpass_biquad, treble_biquad  # noqa: F401
